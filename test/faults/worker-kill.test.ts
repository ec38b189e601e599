/**
 * Fault matrix case 8: the worker process is SIGKILLed (an OOM kill, a node lost) and the migration
 * resumes on a new process with nothing applied twice — checked against exact truth: a checksum of
 * every row, the version table, and counters that a second application would move.
 *
 * (a) five times mid-backfill at random points (seeded: PHASEGATE_FAULT_SEED=<n> replays a run);
 * (b) mid-DDL, inside a transactional revision: PostgreSQL rolls the transaction back, the retry
 *     applies it once;
 * (c) after the COMMIT of a transactional revision (DDL and version row durable) and before its
 *     activity completed, held open by the test-only PHASEGATE_TEST_PAUSE_AFTER_COMMIT_MS
 *     (activities/migrations.ts): the retry finds it applied and applies nothing.
 *
 * The non-transactional variant (CONCURRENTLY build done, stamp not yet written) is
 * test/integration/worker-crash.test.ts; killing a bare `backfill` workflow's worker mid-batch is
 * test/integration/backfill-crash.test.ts. Here everything goes through `migrate`.
 */
import { defaultPayloadConverter } from '@temporalio/common';
import type { WorkerProcess } from '../helpers';
import { statusQuery } from '../../workflows/messages';
import { eventually, seededRandom, sleep, useFaultLab, versionRows, workerProcesses, writeMigrations, type LabDatabase, type MigrateHandle } from './harness';

const lab = useFaultLab();

/**
 * How each applyRevision activity of the run ended: the attempt that completed (a killed attempt
 * makes it 2 or more) and the outcome it returned.
 */
async function applyRevisionAttempts(handle: MigrateHandle): Promise<Array<{ attempt: number; outcome: string }>> {
  const history = await handle.fetchHistory();
  const scheduled = new Set<string>();
  const attempts = new Map<string, number>();
  const ended: Array<{ attempt: number; outcome: string }> = [];
  for (const event of history.events ?? []) {
    const s = event.activityTaskScheduledEventAttributes;
    if (s?.activityType?.name === 'applyRevision') scheduled.add(String(event.eventId));
    const started = event.activityTaskStartedEventAttributes;
    if (started && scheduled.has(String(started.scheduledEventId))) attempts.set(String(started.scheduledEventId), started.attempt ?? 0);
    const completed = event.activityTaskCompletedEventAttributes;
    if (completed && scheduled.has(String(completed.scheduledEventId))) {
      const payload = completed.result?.payloads?.[0];
      const result = payload ? defaultPayloadConverter.fromPayload<{ outcome: string }>(payload) : { outcome: '?' };
      ended.push({ attempt: attempts.get(String(completed.scheduledEventId)) ?? 0, outcome: result.outcome });
    }
  }
  return ended;
}

/** `accounts (id, n)` with n = 0 everywhere, and a log that each application of a revision adds a row to. */
async function tables(db: LabDatabase, rows: number): Promise<void> {
  await db.sql('CREATE TABLE accounts (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0)');
  await db.sql('INSERT INTO accounts (id) SELECT g FROM generate_series(1, $1::int) g', [rows]);
  await db.sql('ANALYZE accounts');
  await db.sql('CREATE TABLE applied_log (revision text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())');
}

async function appliedLog(db: LabDatabase): Promise<string[]> {
  return (await db.sql<{ revision: string }>('SELECT revision FROM applied_log ORDER BY at')).map((r) => r.revision);
}

async function sumN(db: LabDatabase): Promise<number> {
  return (await db.sql<{ s: number }>('SELECT coalesce(sum(n), 0)::int AS s FROM accounts'))[0].s;
}

async function columnExists(db: LabDatabase, column: string): Promise<boolean> {
  const rows = await db.sql(`SELECT 1 FROM pg_attribute WHERE attrelid = 'accounts'::regclass AND attname = $1 AND NOT attisdropped`, [column]);
  return rows.length > 0;
}

/** temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_STARTED (the proto package is not a direct dependency). */
const PENDING_ACTIVITY_STARTED = 2;

/**
 * The live process running a started `activity` of workflow `workflowId`, from Temporal's pending
 * activities (a worker's identity is `<pid>@<host>`). Two processes poll the task queue, so the
 * survivor takes over at once and no worker start-up lies on the path of a retry.
 */
async function runningWorker(workflowId: string, activity: string, live: WorkerProcess[]): Promise<WorkerProcess | undefined> {
  const description = await lab.env.client.workflow.getHandle(workflowId).describe();
  for (const pending of description.raw.pendingActivities ?? []) {
    if (pending.activityType?.name !== activity || Number(pending.state) !== PENDING_ACTIVITY_STARTED) continue;
    const worker = live.find((w) => pending.lastWorkerIdentity?.startsWith(`${w.pid}@`));
    if (worker) return worker;
  }
  return undefined;
}

/** Returns once `worker` polls its task queue (a process bundles the workflow code first: seconds, more under load). */
async function running(worker: WorkerProcess): Promise<void> {
  await eventually(`worker ${worker.pid} to start`, async () => /"state":"RUNNING"/.test(worker.output()), 150_000);
}

/** Runs `body` with the worker processes; on failure, their output goes into the message. */
async function withProcesses<T>(procs: ReturnType<typeof workerProcesses>, context: () => string, body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${context()}\n${procs.output().slice(-20_000)}`);
  } finally {
    await procs.stopAll();
  }
}

test('fault 8a: SIGKILL mid-backfill 5 times at seeded random points: resumed on new processes, every row written once, version table exact', async () => {
  const seed = Number(process.env.PHASEGATE_FAULT_SEED ?? Date.now() % 2 ** 31);
  const random = seededRandom(seed);
  console.log(`fault 8a: seed ${seed} (replay with PHASEGATE_FAULT_SEED=${seed})`);
  const ROWS = 12_000;
  const db = await lab.database();
  await tables(db, ROWS);
  // About 0.5 ms per row: a 100-row batch is a ~50 ms statement a SIGKILL can land in.
  await db.sql(`CREATE FUNCTION slow(x bigint) RETURNS bigint LANGUAGE sql AS $$ SELECT x FROM (SELECT pg_sleep(0.0005)) s $$`);
  // Plain ADD COLUMN (no IF NOT EXISTS) and a log row: applying the statements twice would fail or show.
  // The backfill's n = n + 1 counts how often each row was written; `where` makes a repeat a no-op.
  const dir = writeMigrations({
    'k001_backfill.js': `module.exports = { id: 'k001', parent: null, message: 'add v and backfill it',
      backfill: { table: 'accounts', set: { v: 'slow(id)', n: 'n + 1' }, where: 'v IS NULL', batchSize: 100, targetBatchMs: 0 },
      upgrade(op) {
        op.sql('ALTER TABLE accounts ADD COLUMN v bigint');
        op.sql("INSERT INTO applied_log (revision) VALUES ('k001')");
      },
      downgrade(op) { op.sql('ALTER TABLE accounts DROP COLUMN v'); } };`,
  });
  const procs = workerProcesses(lab, db, dir);
  const kills: Array<{ kill: number; waitedForRows: number; delayMs: number; rowsAtKill: number; pid: number; atMs: number }> = [];
  const context = () => `seed ${seed}; kills ${JSON.stringify(kills)}`;
  const written = async () =>
    (await columnExists(db, 'v')) ? (await db.sql<{ n: number }>('SELECT count(*)::int AS n FROM accounts WHERE v IS NOT NULL'))[0].n : 0;

  await withProcesses(procs, context, async () => {
    // Six processes, all started before the migration (a process bundles the workflow code when
    // it starts, tens of seconds on a loaded machine): each kill leaves started ones to take over.
    let live: WorkerProcess[] = Array.from({ length: 6 }, () => procs.spawn());
    await Promise.all(live.map(running));
    const started = Date.now();
    const handle = await procs.start();
    const backfillWorkflowId = await eventually('the backfill to start', async () => (await handle.query(statusQuery).catch(() => null))?.backfillWorkflowId, 80_000);
    for (let kill = 1; kill <= 5; kill++) {
      const before = await written();
      const waitedForRows = 200 + Math.floor(random() * 800);
      const delayMs = Math.floor(random() * 500);
      await eventually(`backfill progress of ${waitedForRows} rows before kill ${kill}`, async () => (await written()) >= before + waitedForRows, 80_000);
      await sleep(delayMs);
      const victim = await eventually('the process running the backfill slice', () => runningWorker(backfillWorkflowId, 'backfillSlice', live), 30_000);
      await victim.kill('SIGKILL');
      const rowsAtKill = await written();
      kills.push({ kill, waitedForRows, delayMs, rowsAtKill, pid: victim.pid, atMs: Date.now() - started });
      // Mid-backfill: not every row is written yet, and the version row waits for the backfill.
      expect(rowsAtKill).toBeLessThan(ROWS);
      expect((await versionRows(db)).version).toEqual([]);
      // Another process takes the slice over after the heartbeat timeout.
      live = live.filter((w) => w !== victim);
    }
    console.log(`fault 8a: seed ${seed}: kills ${JSON.stringify(kills)}`);

    const result = await handle.result();
    expect(result).toMatchObject({ outcome: 'done', applied: ['k001'] });
    const status = await handle.query(statusQuery);
    expect(status.steps.map((s) => [s.revision, s.state])).toEqual([['k001', 'applied']]);
    // Walked and changed exactly once per row: a batch counted twice would push these past ROWS.
    expect(status.backfill).toMatchObject({ state: 'done', rowsDone: ROWS, rowsUpdated: ROWS });
  });

  // Every row: v = id and written exactly once (n = 1), none missing, none extra.
  const [check] = await db.sql<{ actual: string; expected: string; rows: number; wrong: number }>(`
    SELECT md5(string_agg(id || ':' || coalesce(v::text, '-') || ':' || n, ',' ORDER BY id)) AS actual,
           (SELECT md5(string_agg(g || ':' || g || ':1', ',' ORDER BY g)) FROM generate_series(1, ${ROWS}) g) AS expected,
           count(*)::int AS rows,
           count(*) FILTER (WHERE v IS DISTINCT FROM id OR n <> 1)::int AS wrong
    FROM accounts`);
  expect({ rows: check.rows, wrong: check.wrong, checksum: check.actual }).toEqual({ rows: ROWS, wrong: 0, checksum: check.expected });
  expect(await appliedLog(db)).toEqual(['k001']);
  expect(await versionRows(db)).toEqual({ version: ['k001'], pending: [] });
  expect(await db.sql('SELECT backfill_id FROM phasegate_backfill_progress')).toEqual([]);
}, 360_000);

test('fault 8b: SIGKILL mid-DDL in a transactional revision: PostgreSQL rolls it back, the retry on a new process applies it once', async () => {
  const ROWS = 2_000;
  const db = await lab.database();
  await tables(db, ROWS);
  // Statements that a second application would show: plain ADD COLUMN, n = n + 1, a log row; then
  // a slow statement in the same transaction, in which the worker dies.
  const dir = writeMigrations({
    'd001_slow_ddl.js': `module.exports = { id: 'd001', parent: null, message: 'slow transactional DDL',
      upgrade(op) {
        op.sql('ALTER TABLE accounts ADD COLUMN w int');
        op.sql('UPDATE accounts SET n = n + 1');
        op.sql("INSERT INTO applied_log (revision) VALUES ('d001')");
        op.sql('SELECT pg_sleep(2.5)');
      },
      downgrade(op) { op.sql('ALTER TABLE accounts DROP COLUMN w'); } };`,
  });
  const procs = workerProcesses(lab, db, dir);
  let killedPid = 0;
  await withProcesses(procs, () => `killed backend ${killedPid}`, async () => {
    const live = [procs.spawn(), procs.spawn()];
    await Promise.all(live.map(running));
    const handle = await procs.start();
    const [inFlight] = await eventually('the transaction to reach its pg_sleep', async () => {
      const rows = await db.sql<{ pid: number }>(
        `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'SELECT pg_sleep%' AND state = 'active'`,
      );
      return rows.length ? rows : undefined;
    });
    killedPid = inFlight.pid;
    const victim = await eventually('the process running the step', () => runningWorker(handle.workflowId, 'applyRevision', live), 30_000);
    await victim.kill('SIGKILL');

    // The dead worker's transaction ends when its statement does (PostgreSQL cannot send the result):
    // rolled back whole. The retry cannot have committed yet (it starts after the 10 s heartbeat
    // timeout at the earliest, and sleeps 2.5 s itself).
    await eventually('the killed worker’s backend to end', async () =>
      (await db.sql('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [killedPid])).length === 0,
    );
    expect({ column: await columnExists(db, 'w'), sumN: await sumN(db), log: await appliedLog(db), versions: await versionRows(db) }).toEqual({
      column: false,
      sumN: 0,
      log: [],
      versions: { version: [], pending: [] },
    });

    const result = await handle.result();
    expect(result).toMatchObject({ outcome: 'done', applied: ['d001'] });
    const status = await handle.query(statusQuery);
    expect(status.steps.map((s) => [s.revision, s.state])).toEqual([['d001', 'applied']]);
    // The activity completed on a retry (the killed attempt never did) and applied the statements then.
    const attempts = await applyRevisionAttempts(handle);
    expect(attempts).toHaveLength(1);
    expect(attempts[0].attempt).toBeGreaterThanOrEqual(2);
    expect(attempts[0].outcome).toBe('applied');
  });
  expect({ column: await columnExists(db, 'w'), sumN: await sumN(db), log: await appliedLog(db), versions: await versionRows(db) }).toEqual({
    column: true,
    sumN: ROWS,
    log: ['d001'],
    versions: { version: ['d001'], pending: [] },
  });
}, 240_000);

test('fault 8c: SIGKILL after a transactional revision committed, before its activity completed: the retry finds it applied, nothing runs twice', async () => {
  const ROWS = 2_000;
  const db = await lab.database();
  await tables(db, ROWS);
  const dir = writeMigrations({
    'c001_ddl.js': `module.exports = { id: 'c001', parent: null, message: 'transactional DDL',
      upgrade(op) {
        op.sql('ALTER TABLE accounts ADD COLUMN c int');
        op.sql('UPDATE accounts SET n = n + 1');
        op.sql("INSERT INTO applied_log (revision) VALUES ('c001')");
      },
      downgrade(op) { op.sql('ALTER TABLE accounts DROP COLUMN c'); } };`,
  });
  const procs = workerProcesses(lab, db, dir);
  await withProcesses(procs, () => '', async () => {
    // Both processes pause after a COMMIT that applied the step (a retry that finds it applied
    // does not pause); the one that runs it first is killed in that pause.
    process.env.PHASEGATE_TEST_PAUSE_AFTER_COMMIT_MS = '120000';
    let live: WorkerProcess[];
    try {
      live = [procs.spawn(), procs.spawn()];
    } finally {
      delete process.env.PHASEGATE_TEST_PAUSE_AFTER_COMMIT_MS;
    }
    await Promise.all(live.map(running));
    const handle = await procs.start();
    const paused = await eventually('the step to commit and pause', async () =>
      live.find((w) => w.output().includes('fault injection: PHASEGATE_TEST_PAUSE_AFTER_COMMIT_MS')),
    60_000);

    // Committed: DDL, data change and version row are all durable; the workflow still waits for the activity.
    expect({ column: await columnExists(db, 'c'), sumN: await sumN(db), log: await appliedLog(db), versions: await versionRows(db) }).toEqual({
      column: true,
      sumN: ROWS,
      log: ['c001'],
      versions: { version: ['c001'], pending: [] },
    });
    const during = await handle.query(statusQuery);
    expect({ state: during.state, step: during.steps[0]?.state }).toEqual({ state: 'applying', step: 'applying' });

    await paused.kill('SIGKILL');
    const result = await handle.result();
    expect(result).toMatchObject({ outcome: 'done', applied: ['c001'] });
    // The survivor completed it without pausing: it found the step applied.
    expect(live.filter((w) => w.output().includes('fault injection: PHASEGATE_TEST_PAUSE_AFTER_COMMIT_MS')).map((w) => w.pid)).toEqual([paused.pid]);
    const status = await handle.query(statusQuery);
    expect(status.steps.map((s) => [s.revision, s.state])).toEqual([['c001', 'already-applied']]);
    const attempts = await applyRevisionAttempts(handle);
    expect(attempts).toHaveLength(1);
    expect(attempts[0].attempt).toBeGreaterThanOrEqual(2);
    expect(attempts[0].outcome).toBe('already-applied');
  });
  expect({ column: await columnExists(db, 'c'), sumN: await sumN(db), log: await appliedLog(db), versions: await versionRows(db) }).toEqual({
    column: true,
    sumN: ROWS,
    log: ['c001'],
    versions: { version: ['c001'], pending: [] },
  });
}, 240_000);
