/**
 * Backfill progress that tells the truth (issue 10, item 4): 0 rows/s and "ETA paused" while
 * paused; after resume a rate measured from the resume on (not averaged over the pause); a finished
 * backfill shows its average rate over the time it was not paused, in the child and in the parent.
 * Set-up (a database per test, in-process workers) comes from the fault harness.
 */
import { formatBackfillLine } from '../../lib/commands/format-status';
import type { BackfillSpec } from '../../lib/revision';
import { backfill } from '../../workflows';
import { backfillStatusQuery, pauseSignal, resumeSignal, statusQuery, throttleSignal, type BackfillInput } from '../../workflows/messages';
import { eventually, sleep, uniqueId, useFaultLab, withWorker, writeMigrations, type LabDatabase } from '../faults/harness';

const lab = useFaultLab();
let db: LabDatabase;

beforeEach(async () => {
  db = await lab.database();
  // About 1 ms per row: the pacing below, not the machine, sets the rate.
  await db.sql(`CREATE FUNCTION slow(x bigint) RETURNS bigint LANGUAGE sql AS $$ SELECT x FROM (SELECT pg_sleep(0.001)) s $$`);
});

async function itemsTable(rows: number): Promise<void> {
  await db.sql(`CREATE TABLE items (id bigint PRIMARY KEY, v bigint)`);
  await db.sql(`INSERT INTO items (id) SELECT g FROM generate_series(1, $1::int) g`, [rows]);
  await db.sql('ANALYZE items');
}

async function updatedRows(): Promise<number> {
  const rows = await db.sql<{ n: number }>(`SELECT count(*)::int AS n FROM items WHERE v IS NOT NULL`);
  return rows[0].n;
}

test('paused shows 0 rows/s and ETA paused; after resume the rate is the new one, not an average over the pause; done shows the average over active time', async () => {
  const rows = 5000;
  await itemsTable(rows);
  await withWorker(lab, db, writeMigrations({}), async ({ taskQueue }) => {
    const spec: BackfillSpec = { table: 'items', set: { v: 'slow(id)' }, where: 'v IS NULL', batchSize: 20, targetBatchMs: 0, maxRowsPerSecond: 100 };
    // Slice calls of 1 s: the workflow measures progress about every second.
    const input: BackfillInput = { database: 'app', revision: 'fff666', spec, sliceCallMs: 1000 };
    const started = Date.now();
    const handle = await lab.env.client.workflow.start(backfill, { workflowId: uniqueId('backfill-app'), taskQueue, args: [input] });
    const status = () => handle.query(backfillStatusQuery);
    await eventually('a measured rate', async () => {
      const s = await status();
      return s.rowsDone >= 200 && (s.rowsPerSecond ?? 0) > 0;
    }, 60_000);

    // 1. Paused: nothing moves, so 0 rows/s and no ETA — not the rate from before the pause.
    const pausedAt = Date.now();
    await handle.signal(pauseSignal, {});
    const paused = await eventually('paused', async () => {
      const s = await status();
      return s.state === 'paused' ? s : undefined;
    }, 30_000);
    expect(paused).toMatchObject({ state: 'paused', rowsPerSecond: 0, etaSeconds: null, paused: true });
    expect(formatBackfillLine(paused)).toContain('0 rows/s, ETA paused');
    const stoppedAt = await updatedRows();
    expect(paused.rowsDone).toBe(stoppedAt);

    // Long enough paused that an average over the pause would be far off; faster once resumed.
    await sleep(6000);
    expect((await status()).rowsPerSecond).toBe(0);
    await handle.signal(throttleSignal, { maxRowsPerSecond: 300 });
    await eventually('the throttle applied', async () => (await status()).lastSignal?.startsWith('throttle applied'));
    const resumedAt = Date.now();
    await handle.signal(resumeSignal, {});
    const pausedMs = resumedAt - pausedAt;

    // 2. A few seconds after resume the rate is what the table shows now.
    await sleep(1500);
    const rows1 = await updatedRows();
    const t1 = Date.now();
    await sleep(3500);
    const rows2 = await updatedRows();
    const t2 = Date.now();
    const real = ((rows2 - rows1) * 1000) / (t2 - t1);
    const resumed = await status();
    expect(resumed.state).toBe('running');
    expect(resumed.rowsDone).toBeLessThan(rows);
    expect(real).toBeGreaterThan(50);
    expect(resumed.rowsPerSecond).not.toBeNull();
    // Averaged with the pause (the old window), the rate would read about half of this or less.
    expect(resumed.rowsPerSecond!).toBeGreaterThan(real * 0.7);
    expect(resumed.rowsPerSecond!).toBeLessThan(real * 1.35);
    const etaFromReal = (rows - resumed.rowsDone) / real;
    expect(resumed.etaSeconds).not.toBeNull();
    expect(resumed.etaSeconds!).toBeGreaterThan(etaFromReal * 0.7 - 1);
    expect(resumed.etaSeconds!).toBeLessThan(etaFromReal * 1.35 + 1);
    expect(formatBackfillLine(resumed)).toMatch(/\(running\): \d+ of ~\d+ rows, \d+ rows\/s, ETA \d+ (s|min)\b/);

    // 3. Done: the average over the time it was not paused.
    const result = await handle.result();
    const wallMs = Date.now() - started;
    expect(result.rowsDone).toBe(rows);
    expect(result.activeMs).toBeGreaterThan(1000);
    expect(result.activeMs!).toBeLessThan(wallMs - pausedMs + 2000);
    expect(result.activeMs!).toBeGreaterThan(result.durationMs - pausedMs - 2000);
    expect(result.averageRowsPerSecond).toBe(Math.round((rows * 1000) / result.activeMs!));
    const final = await status();
    expect(final).toMatchObject({ state: 'done', rowsDone: rows, averageRowsPerSecond: result.averageRowsPerSecond, elapsedSeconds: Math.round(result.activeMs! / 1000) });
    expect(formatBackfillLine(final)).toBe(`backfill items (done): ${rows} rows in ${final.elapsedSeconds} s, average ${result.averageRowsPerSecond} rows/s`);
  });
});

test("the parent's copy: 0 rows/s while paused, and the average once the backfill is done", async () => {
  await db.sql('CREATE TABLE accounts (id bigint PRIMARY KEY, email text NOT NULL)');
  await db.sql(`INSERT INTO accounts SELECT g, 'u' || g FROM generate_series(1, 3000) g`);
  const dir = writeMigrations({
    'p1_org_id.js': `module.exports = {
      id: 'p1', parent: null, message: 'add and fill org_id',
      upgrade(op) { op.addColumn('accounts', 'org_id', 'bigint'); },
      downgrade(op) { op.dropColumn('accounts', 'org_id'); },
      backfill: { table: 'accounts', set: { org_id: '1 + id % 7' }, where: 'org_id IS NULL', batchSize: 50, maxRowsPerSecond: 500, targetBatchMs: 0, sliceCallMs: 1000 },
    };`,
  });
  await withWorker(lab, db, dir, async ({ start }) => {
    const handle = await start();
    await eventually('rows done in the backfill', async () => ((await handle.query(statusQuery)).backfillWorkflowId ? true : undefined), 30_000);
    const childId = (await handle.query(statusQuery)).backfillWorkflowId!;
    await eventually('a measured rate', async () => ((await lab.env.client.workflow.getHandle(childId).query(backfillStatusQuery)).rowsPerSecond ?? 0) > 0, 30_000);

    await handle.signal(pauseSignal, {});
    const paused = await eventually('the parent to show paused', async () => {
      const s = await handle.query(statusQuery);
      return s.state === 'paused' && s.backfill?.state === 'paused' ? s : undefined;
    }, 30_000);
    expect(paused.backfill).toMatchObject({ rowsPerSecond: 0, etaSeconds: null });

    await handle.signal(resumeSignal, {});
    await expect(handle.result()).resolves.toMatchObject({ outcome: 'done', applied: ['p1'] });
    const done = await handle.query(statusQuery);
    expect(done.backfill).toMatchObject({ state: 'done', rowsDone: 3000 });
    expect(done.backfill!.averageRowsPerSecond).toBeGreaterThan(0);
    expect(done.backfill!.elapsedSeconds).toBeGreaterThanOrEqual(1);
    // elapsedSeconds is rounded: the average is 3000 rows over elapsedSeconds ± 0.5 s.
    expect(done.backfill!.averageRowsPerSecond).toBeLessThanOrEqual(3000 / Math.max(0.5, done.backfill!.elapsedSeconds! - 0.5));
    expect(formatBackfillLine(done.backfill!)).toMatch(/^backfill accounts \(done\): 3000 rows in \d+ s, average \d+ rows\/s$/);
  });
});
