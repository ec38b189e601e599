/**
 * Fault 9: the Temporal server goes away under a running migration and comes back. Its own dev
 * server (test/support/restartable-temporal.ts, state in a SQLite file) is stopped with SIGTERM and
 * started again on the same port; the shared dev server other files use is never touched.
 *
 * The worker is an in-process SDK worker with its own NativeConnection to that server, as a
 * deployment has one. It is not restarted: the SDK keeps retrying its polls while the frontend is
 * unreachable and picks up work again once it is back (a worker whose polls fail for good would
 * reject `runUntil`, and the test with it). What was in flight meanwhile — a backfill slice's
 * heartbeats and completion — may be lost; the server times the activity out and it runs again
 * from the last committed batch. Nothing a person sent is lost: a signal Temporal accepted is in
 * the persisted history.
 */
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { approveSignal, backfillStatusQuery, statusQuery } from '../../workflows/messages';
import { startRestartableTemporal, type RestartableTemporal } from '../support/restartable-temporal';
import {
  accountsTable,
  checkpoints,
  eventually,
  sleep,
  untilState,
  untilStatus,
  useFaultLab,
  versionRows,
  withWorker,
  writeMigrations,
  type FaultLab,
  type LabDatabase,
} from './harness';

const shared = useFaultLab();
let temporal: RestartableTemporal;
/** The shared lab's bundle and databases, but Temporal is the restartable server. */
let lab: FaultLab;

beforeAll(async () => {
  temporal = await startRestartableTemporal();
  const env = await TestWorkflowEnvironment.createFromExistingServer({ address: temporal.address });
  lab = { env, bundle: shared.bundle, database: () => shared.database() };
}, 120_000);
afterAll(async () => {
  await lab?.env.teardown();
  await temporal?.destroy();
});

/** The server is down for `ms`; meanwhile the worker keeps running (it is never restarted). */
async function outage(ms: number): Promise<void> {
  await temporal.stop('SIGTERM');
  try {
    await sleep(ms);
  } finally {
    await temporal.start();
  }
}

async function filled(db: LabDatabase): Promise<number> {
  try {
    return (await db.sql<{ n: number }>('SELECT count(org_id)::int AS n FROM accounts'))[0].n;
  } catch {
    return 0;
  }
}

test('fault 9: Temporal stopped mid-backfill for 15 s: the same worker carries on once it is back; exact checksum, every row counted once', async () => {
  const N = 60_000;
  const rev = 'f09a00000001';
  const db = await lab.database();
  await accountsTable(db, N);
  const dir = writeMigrations({
    [`${rev}_org_id.js`]: `module.exports = {
      id: '${rev}', parent: null, message: 'add and fill accounts.org_id',
      upgrade(op) { op.addColumn('accounts', 'org_id', 'bigint'); },
      downgrade(op) { op.dropColumn('accounts', 'org_id'); },
      backfill: { table: 'accounts', set: { org_id: '1 + id % 50' }, where: 'org_id IS NULL', batchSize: 500, maxRowsPerSecond: 3000, sliceCallMs: 2000 },
      check: { name: 'no NULLs left in accounts.org_id', failingRows: 'SELECT id FROM accounts WHERE org_id IS NULL' },
    };`,
  });

  await withWorker(lab, db, dir, async (w) => {
    const handle = await w.start();
    const { runId } = await handle.describe();
    const childId = await eventually('the backfill child', async () => (await handle.query(statusQuery)).backfillWorkflowId, 30_000);
    await eventually('some rows filled', async () => (await filled(db)) >= 6_000, 60_000);

    await temporal.stop('SIGTERM');
    const downAt = Date.now();
    let filledWhileDown = 0;
    try {
      // The database is fine meanwhile; the worker just cannot reach Temporal.
      while (Date.now() - downAt < 15_000) {
        filledWhileDown = await filled(db);
        await sleep(1000);
      }
    } finally {
      await temporal.start();
    }
    expect(filledWhileDown).toBeLessThan(N);

    // Same workflow, same run: the migration was not restarted, it went on.
    const run = await handle.describe();
    expect(run.status.name).toBe('RUNNING');
    expect(run.runId).toBe(runId);
    const result = await handle.result();
    expect(result).toMatchObject({ outcome: 'done', applied: [rev], headsAfter: [rev] });
    const status = await handle.query(statusQuery);
    expect(status).toMatchObject({ state: 'done', waiting: null, failure: null });
    expect(status.backfill).toMatchObject({ state: 'done', rowsDone: N, rowsUpdated: N });
    expect(status.check).toMatchObject({ passed: true, failingCount: 0 });
    const child = lab.env.client.workflow.getHandle(childId);
    expect(await child.result()).toMatchObject({ rowsDone: N, rowsUpdated: N });
    expect((await child.query(backfillStatusQuery)).rowsDone).toBe(N);
  });

  const [sums] = await db.sql<{ n: number; nulls: number; wrong: number; sum: string; expected: string }>(
    `SELECT count(*)::int AS n, count(*) FILTER (WHERE org_id IS NULL)::int AS nulls,
            count(*) FILTER (WHERE org_id IS DISTINCT FROM 1 + id % 50)::int AS wrong, sum(org_id)::text AS sum,
            (SELECT sum(1 + g % 50)::text FROM generate_series(1, $1::int) g) AS expected
     FROM accounts`,
    [N],
  );
  expect(sums).toEqual({ n: N, nulls: 0, wrong: 0, sum: sums.expected, expected: sums.expected });
  expect(await versionRows(db)).toEqual({ version: [rev], pending: [] });
  expect((await checkpoints(db, rev)).rows).toBe(0);
  expect(await db.sql('SELECT count(*)::int AS n FROM phasegate_lease')).toEqual([{ n: 0 }]);
}, 120_000);

test('fault 9: Temporal restarted at gates: an approve sent just before the restart is kept, one after it works, each audited exactly once', async () => {
  const [r1, r2] = ['f09b00000001', 'f09b00000002'];
  const db = await lab.database();
  await accountsTable(db, 100);
  const gated = (id: string, parent: string | null, gate: string, column: string) => `module.exports = {
    id: '${id}', parent: ${parent ? `'${parent}'` : 'null'}, message: 'add accounts.${column}',
    gate: { name: '${gate}', prompt: 'ready for ${gate}?' },
    upgrade(op) { op.addColumn('accounts', '${column}', 'text'); },
    downgrade(op) { op.dropColumn('accounts', '${column}'); },
  };`;
  const dir = writeMigrations({
    [`${r1}_plan.js`]: gated(r1, null, 'deploy', 'plan'),
    [`${r2}_tier.js`]: gated(r2, r1, 'cutover', 'tier'),
  });

  await withWorker(lab, db, dir, async (w) => {
    const handle = await w.start();
    const { runId } = await handle.describe();
    const first = await untilState(handle, 'awaiting-approval', 30_000);
    expect(first.gate).toMatchObject({ name: 'deploy', revision: r1 });

    // Accepted by Temporal, then the server goes away at once (the worker may not have seen it yet).
    await handle.signal(approveSignal, { by: 'alice' });
    await outage(3_000);

    // The approval survived the restart: the migration went past the first gate to the second.
    const second = await untilStatus(handle, 'waiting at the second gate', (s) => s.state === 'awaiting-approval' && s.gate?.name === 'cutover', 60_000);
    expect(second.gate).toMatchObject({ name: 'cutover', revision: r2 });
    expect(second.approvals).toEqual([expect.objectContaining({ decision: 'approve', by: 'alice', gate: 'deploy', accepted: true })]);

    // Waiting at a gate is state Temporal keeps: a restart changes nothing about it.
    await outage(3_000);
    const still = await untilState(handle, 'awaiting-approval', 30_000);
    expect(still.gate).toMatchObject({ name: 'cutover', revision: r2 });
    expect(still.approvals).toHaveLength(1);

    // A signal after the restart reaches the same run.
    await handle.signal(approveSignal, { by: 'bob' });
    expect(await handle.result()).toMatchObject({ outcome: 'done', applied: [r1, r2], headsAfter: [r2] });
    const status = await handle.query(statusQuery);
    expect(status.auditErrors).toEqual([]);
    expect(status.approvals).toEqual([
      expect.objectContaining({ decision: 'approve', by: 'alice', gate: 'deploy', accepted: true }),
      expect.objectContaining({ decision: 'approve', by: 'bob', gate: 'cutover', accepted: true }),
    ]);
    expect((await handle.describe()).runId).toBe(runId);
  });

  expect(await db.sql('SELECT decision, decided_by, gate, revision, accepted FROM phasegate_approval ORDER BY id')).toEqual([
    { decision: 'approve', decided_by: 'alice', gate: 'deploy', revision: r1, accepted: true },
    { decision: 'approve', decided_by: 'bob', gate: 'cutover', revision: r2, accepted: true },
  ]);
  expect(await versionRows(db)).toEqual({ version: [r2], pending: [] });
  expect(await db.sql(`SELECT column_name FROM information_schema.columns WHERE table_name = 'accounts' ORDER BY ordinal_position`)).toEqual([
    { column_name: 'id' },
    { column_name: 'email' },
    { column_name: 'plan' },
    { column_name: 'tier' },
  ]);
}, 120_000);
