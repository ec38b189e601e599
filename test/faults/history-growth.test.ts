/**
 * Fault 13, history growth: with a small continue-as-new threshold `migrate` starts new runs at a
 * gate, between steps and while it waits in `failed`, and its backfill child starts a new run after
 * every slice call. Nothing a person did or the backfill achieved may be lost at a boundary:
 * approvals, a pause, a throttle, progress, a failed check that still waits for retry.
 */
import type { Client } from '@temporalio/client';
import { backfill } from '../../workflows';
import {
  approveSignal,
  backfillStatusQuery,
  pauseSignal,
  resumeSignal,
  retrySignal,
  statusQuery,
  throttleSignal,
  type BackfillInput,
  type BackfillProgress,
  type MigrateInput,
  type MigrateStatus,
} from '../../workflows/messages';
import { eventually, sleep, untilState, untilStatus, useFaultLab, versionRows, withWorker, writeMigrations, type LabDatabase } from './harness';

const lab = useFaultLab();

/** The input the current run of a workflow was started with (a continued run carries its state in it). */
async function currentRunInput<T>(client: Client, workflowId: string): Promise<{ runId: string; input: T }> {
  const handle = client.workflow.getHandle(workflowId);
  const { runId } = await handle.describe();
  const history = await client.workflow.getHandle(workflowId, runId).fetchHistory();
  const payload = history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
  return { runId, input: JSON.parse(Buffer.from(payload!.data!).toString()) as T };
}

/** A trigger logging every row a backfill batch writes, with its transaction: batch sizes, in order. */
async function logBatches(db: LabDatabase, table: string): Promise<void> {
  await db.sql(`CREATE TABLE batch_log (xid xid8 NOT NULL, id bigint NOT NULL)`);
  await db.sql(`CREATE FUNCTION log_row() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN INSERT INTO batch_log VALUES (pg_current_xact_id(), NEW.id); RETURN NEW; END $$`);
  await db.sql(`CREATE TRIGGER ${table}_log AFTER UPDATE ON ${table} FOR EACH ROW EXECUTE FUNCTION log_row()`);
}

/** Batch sizes in commit order. */
async function batchSizes(db: LabDatabase): Promise<number[]> {
  const rows = await db.sql<{ n: number }>(`SELECT count(*)::int AS n FROM batch_log GROUP BY xid ORDER BY xid`);
  return rows.map((r) => r.n);
}

test('fault 13: migrate continues as new at a gate, between steps and while failed; approvals, pause, throttle, progress and a failed check survive', async () => {
  const db = await lab.database();
  await db.sql('CREATE TABLE accounts (id bigint PRIMARY KEY, email text NOT NULL)');
  await db.sql(`INSERT INTO accounts SELECT g, 'u' || g FROM generate_series(1, 600) g`);
  await db.sql('ANALYZE accounts');
  // The check wants every account's org to exist; orgs stays empty until the test "fixes the data".
  await db.sql('CREATE TABLE orgs (id bigint PRIMARY KEY)');
  await logBatches(db, 'accounts');
  const dir = writeMigrations({
    'g1.js': `module.exports = { id: 'g1', parent: null, message: 'add and fill org_id', phase: 'expand',
      gate: { name: 'expand', prompt: 'start the expand phase?' },
      upgrade(op) { op.addColumn('accounts', 'org_id', 'bigint'); },
      downgrade(op) { op.dropColumn('accounts', 'org_id'); },
      backfill: { table: 'accounts', set: { org_id: '1 + id % 7' }, where: 'org_id IS NULL', batchSize: 50, targetBatchMs: 0, sliceCallMs: 1 },
      check: { name: 'every account has an existing org', failingRows: 'SELECT a.id FROM accounts a WHERE NOT EXISTS (SELECT 1 FROM orgs o WHERE o.id = a.org_id) ORDER BY a.id' } };`,
    'g2.js': `module.exports = { id: 'g2', parent: 'g1', message: 'add tier', phase: 'contract',
      gate: { name: 'deploy', prompt: 'deploy the app that writes org_id' },
      upgrade(op) { op.addColumn('accounts', 'tier', 'int'); }, downgrade(op) { op.dropColumn('accounts', 'tier'); } };`,
    'g3.js': `module.exports = { id: 'g3', parent: 'g2', message: 'add note',
      upgrade(op) { op.addColumn('accounts', 'note', 'text'); }, downgrade(op) { op.dropColumn('accounts', 'note'); } };`,
  });
  const knobs: Partial<MigrateInput> = { continueAsNewAfterEvents: 20, backfillContinueAsNewAfterCalls: 1 };
  await withWorker(lab, db, dir, async (w) => {
    const handle = await w.start(knobs);
    const { workflowId } = handle;
    const latest = lab.env.client.workflow.getHandle<typeof import('../../workflows').migrate>(workflowId);
    const status = () => latest.query(statusQuery);

    // ── at the gate: pause and throttle for the backfill ahead, and decisions that do not fit ──
    const gated = await untilState(latest, 'awaiting-approval');
    expect(gated.runs).toBe(1);
    const firstExecutionRunId = (await latest.describe()).runId;
    await latest.signal(pauseSignal, {});
    await latest.signal(throttleSignal, { batchSize: 20, delayMs: 5 });
    await latest.signal(approveSignal, { by: 'mallory', gate: 'deploy' });
    await latest.signal(approveSignal, { by: '' });
    const atGate = await untilStatus(latest, 'a new run while waiting at the gate', (s) => s.runs >= 2 && s.state === 'awaiting-approval', 60_000);
    expect((await lab.env.client.workflow.getHandle(workflowId, firstExecutionRunId).describe()).status.name).toBe('CONTINUED_AS_NEW');
    // The gate is the same gate (same since), and what was sent before the boundary is all there.
    expect(atGate.gate).toMatchObject({ name: 'expand', revision: 'g1', since: gated.gate!.since });
    expect(atGate.control).toMatchObject({ paused: true, throttle: { batchSize: 20, delayMs: 5 } });
    expect(atGate.approvals.map((a) => [a.by, a.accepted])).toEqual([
      ['mallory', false],
      ['', false],
    ]);
    // The knob itself travels with the run.
    const carriedAtGate = await currentRunInput<MigrateInput>(lab.env.client, workflowId);
    expect(carriedAtGate.input).toMatchObject(knobs);
    expect(carriedAtGate.runId).not.toBe(firstExecutionRunId);

    // ── approve: the backfill starts paused, with the throttle handed over ──
    await latest.signal(approveSignal, { by: 'alice', gate: 'expand', comment: 'go' });
    const paused = await untilStatus(latest, 'the backfill to start paused', (s) => s.state === 'paused' && s.backfill?.state === 'paused', 60_000);
    expect(paused.backfill).toMatchObject({ rowsDone: 0, batchSize: 20, delayMs: 5 });
    await sleep(1000);
    expect((await db.sql('SELECT id FROM accounts WHERE org_id IS NOT NULL LIMIT 1')).length).toBe(0);

    // ── resume: the child continues as new after every slice call; progress only grows ──
    await latest.signal(resumeSignal, {});
    const child = lab.env.client.workflow.getHandle(paused.backfillWorkflowId!);
    const seen: BackfillProgress[] = [];
    const childStatus = async () => {
      const s = await child.query(backfillStatusQuery);
      seen.push(s);
      return s;
    };
    await eventually('a few child runs with rows done', async () => {
      const s = await childStatus();
      return (s.runs ?? 0) >= 4 && s.rowsDone >= 60;
    }, 60_000);

    // A pause sent to migrate reaches whatever run of the child is current, and holds.
    await latest.signal(pauseSignal, {});
    const childPaused = await eventually('the child to pause', async () => {
      const s = await childStatus();
      return s.state === 'paused' ? s : undefined;
    }, 30_000);
    const stoppedAt = (await db.sql<{ n: number }>('SELECT count(*)::int AS n FROM accounts WHERE org_id IS NOT NULL'))[0].n;
    expect(stoppedAt).toBeLessThan(600);
    expect(childPaused.rowsDone).toBe(stoppedAt);
    await sleep(1500);
    expect((await db.sql<{ n: number }>('SELECT count(*)::int AS n FROM accounts WHERE org_id IS NOT NULL'))[0].n).toBe(stoppedAt);
    expect((await untilState(latest, 'paused')).control.paused).toBe(true);
    await latest.signal(resumeSignal, {});

    // ── the check fails; the migration continues as new while it waits in failed ──
    const failed = await untilState(latest, 'failed', 90_000);
    expect(failed.failure).toMatchObject({ kind: 'check', revision: 'g1', type: 'CheckFailed', options: ['retry', 'rollback', 'abandon'] });
    expect(failed.check).toMatchObject({ revision: 'g1', passed: false, attempts: 1 });
    expect(failed.check!.failingCount).toBeGreaterThan(0);
    // The run that hit the failure continues as new at once (its history is past the threshold): wait
    // for a run that was started with the failure in its carried state.
    await eventually('a run started while failed', async () => {
      const { input } = await currentRunInput<MigrateInput>(lab.env.client, workflowId);
      return input.carried?.status.state === 'failed' && input.carried.status.failure?.kind === 'check';
    }, 60_000);
    const carried = await status();
    // The new run did not re-run the check: it still waits for a person, with the same failure.
    expect(carried.state).toBe('failed');
    expect(carried.failure).toEqual(failed.failure);
    expect(carried.check).toMatchObject({ passed: false, attempts: 1 });
    await sleep(1000);
    expect((await status()).state).toBe('failed');
    expect((await status()).check?.attempts).toBe(1);
    expect(await versionRows(db)).toEqual({ version: [], pending: ['g1'] });

    await db.sql('INSERT INTO orgs SELECT g FROM generate_series(1, 7) g');
    await latest.signal(retrySignal, { by: 'alice' });
    // ── the next gate, in yet another run (it continued as new after g1 was stamped) ──
    const second = await untilStatus(latest, 'the deploy gate', (s) => s.state === 'awaiting-approval' && s.gate?.name === 'deploy', 60_000);
    expect(second.runs).toBeGreaterThan(carried.runs);
    expect((await currentRunInput<MigrateInput>(lab.env.client, workflowId)).input.carried?.status.failure).toBeNull();
    expect(second.check).toMatchObject({ revision: 'g1', passed: true, attempts: 2 });
    expect(second.backfill).toMatchObject({ state: 'done', rowsDone: 600 });
    expect(second.approvals.filter((a) => a.accepted).map((a) => [a.decision, a.by, a.gate])).toEqual([
      ['approve', 'alice', 'expand'],
      ['retry', 'alice', null],
    ]);
    // The lease is still held, by this migration: a continue-as-new is not the end of a migration.
    expect(await db.sql('SELECT workflow_id FROM phasegate_lease')).toEqual([{ workflow_id: workflowId }]);
    await latest.signal(approveSignal, { by: 'bob', gate: 'deploy' });
    const result = await latest.result();
    expect(result).toMatchObject({ outcome: 'done', applied: ['g1', 'g2', 'g3'] });

    const final: MigrateStatus = await status();
    expect(final.state).toBe('done');
    expect(final.runs).toBeGreaterThanOrEqual(4);
    expect(final.control).toMatchObject({ paused: false, throttle: { batchSize: 20, delayMs: 5 } });
    // Every decision once, numbered without a gap across the runs; the audit table agrees.
    expect(final.approvals.map((a) => a.seq)).toEqual([1, 2, 3, 4, 5]);
    const audit = await db.sql<{ decision: string; decided_by: string }>('SELECT decision, decided_by FROM phasegate_approval ORDER BY id');
    expect(audit).toEqual([
      { decision: 'approve', decided_by: 'mallory' },
      { decision: 'approve', decided_by: '' },
      { decision: 'approve', decided_by: 'alice' },
      { decision: 'retry', decided_by: 'alice' },
      { decision: 'approve', decided_by: 'bob' },
    ]);
    // The child ran many runs; progress never went backwards at a boundary.
    const childResult = await lab.env.client.workflow.getHandle<typeof backfill>(paused.backfillWorkflowId!).result();
    expect(childResult).toMatchObject({ rowsDone: 600, rowsUpdated: 600 });
    expect(childResult.runs).toBeGreaterThanOrEqual(10);
    for (let i = 1; i < seen.length; i++) expect(seen[i].rowsDone).toBeGreaterThanOrEqual(seen[i - 1].rowsDone);
  });
  // The throttle held in every child run: no batch above 20 rows, and every row written exactly once.
  const sizes = await batchSizes(db);
  expect(sizes.length).toBeGreaterThanOrEqual(30);
  expect(Math.max(...sizes)).toBeLessThanOrEqual(20);
  expect((await db.sql<{ n: number }>('SELECT count(*)::int AS n FROM (SELECT id FROM batch_log GROUP BY id HAVING count(*) > 1) d'))[0].n).toBe(0);
  expect(await versionRows(db)).toEqual({ version: ['g3'], pending: [] });
  expect((await db.sql('SELECT count(*)::int AS n FROM phasegate_lease'))[0]).toEqual({ n: 0 });
});

test('fault 13: backfill continues as new after every slice call; a pause crosses the boundary, the throttle and progress survive', async () => {
  const db = await lab.database();
  await db.sql(`CREATE FUNCTION slow(x bigint) RETURNS bigint LANGUAGE sql AS $$ SELECT x FROM (SELECT pg_sleep(0.001)) s $$`);
  await db.sql(`CREATE TABLE items (id bigint PRIMARY KEY, v bigint, n int NOT NULL DEFAULT 0)`);
  await db.sql(`INSERT INTO items (id) SELECT g FROM generate_series(1, 500) g`);
  await logBatches(db, 'items');
  const updated = async () => (await db.sql<{ n: number }>('SELECT count(*)::int AS n FROM items WHERE v IS NOT NULL'))[0].n;
  await withWorker(lab, db, writeMigrations({}), async (w) => {
    const input: BackfillInput = {
      database: 'app',
      revision: 'h13',
      spec: { table: 'items', set: { v: 'slow(id)', n: 'n + 1' }, where: 'v IS NULL', batchSize: 40, targetBatchMs: 0 },
      sliceCallMs: 1,
      maxSliceCallsBeforeContinueAsNew: 1,
    };
    const started = await lab.env.client.workflow.start(backfill, { workflowId: `backfill-h13-${db.name}`, taskQueue: w.taskQueue, args: [input] });
    const { workflowId } = started;
    const handle = lab.env.client.workflow.getHandle<typeof backfill>(workflowId);
    const seen: BackfillProgress[] = [];
    const status = async () => {
      const s = await handle.query(backfillStatusQuery);
      seen.push(s);
      return s;
    };
    await eventually('three runs', async () => ((await status()).runs ?? 0) >= 3, 60_000);

    // A throttle in one run holds in every later run.
    await handle.signal(throttleSignal, { batchSize: 15 });
    await eventually('the throttle applied', async () => (await status()).lastSignal?.startsWith('throttle applied'), 30_000);
    const throttledIn = (await status()).runs ?? 0;
    await eventually('more runs after the throttle', async () => ((await status()).runs ?? 0) >= throttledIn + 3, 60_000);

    // Pause until one lands inside a run's only slice call: that run then continues as new while
    // paused, and the new run must start paused (its input says so) and stay paused.
    let crossed: { runId: string; input: BackfillInput } | null = null;
    for (let attempt = 0; attempt < 6 && !crossed; attempt++) {
      await handle.signal(pauseSignal, {});
      const paused = await eventually('paused', async () => {
        const s = await status();
        return s.state === 'paused' ? s : undefined;
      }, 30_000);
      const current = await currentRunInput<BackfillInput>(lab.env.client, workflowId);
      if (current.input.state?.paused) {
        crossed = current;
        expect(current.input.state.throttle).toEqual({ batchSize: 15 });
        const stoppedAt = await updated();
        expect(stoppedAt).toBeLessThan(500);
        expect(paused.rowsDone).toBe(stoppedAt);
        await sleep(1500);
        expect(await updated()).toBe(stoppedAt);
        expect((await status()).state).toBe('paused');
        // No run was started while paused: the pause does not spin continue-as-new.
        expect((await lab.env.client.workflow.getHandle(workflowId).describe()).runId).toBe(current.runId);
      }
      await handle.signal(resumeSignal, {});
      if (!crossed) await eventually('a run after resuming', async () => ((await status()).runs ?? 0) > (paused.runs ?? 0), 30_000);
    }
    expect(crossed).not.toBeNull();

    const result = await handle.result();
    expect(result).toMatchObject({ rowsDone: 500, rowsUpdated: 500 });
    expect(result.runs).toBeGreaterThanOrEqual(10);
    expect(result.runs).toBe((await status()).runs);
    for (let i = 1; i < seen.length; i++) expect(seen[i].rowsDone).toBeGreaterThanOrEqual(seen[i - 1].rowsDone);
    expect((await lab.env.client.workflow.getHandle(workflowId, started.firstExecutionRunId).describe()).status.name).toBe('CONTINUED_AS_NEW');
  });
  // 40-row batches until the throttle, then never more than 15; every row written exactly once.
  const sizes = await batchSizes(db);
  const firstSmall = sizes.findIndex((n) => n < 40);
  expect(firstSmall).toBeGreaterThan(0);
  expect(sizes.slice(0, firstSmall).every((n) => n === 40)).toBe(true);
  expect(sizes.slice(firstSmall).every((n) => n <= 15)).toBe(true);
  expect((await db.sql<{ bad: number }>('SELECT count(*) FILTER (WHERE v IS DISTINCT FROM id OR n <> 1)::int AS bad FROM items'))[0].bad).toBe(0);
});
