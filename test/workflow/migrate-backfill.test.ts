/**
 * A revision with a backfill: `migrate` runs it as a child workflow, shows its progress in
 * `status`, forwards pause/resume/throttle to it, and only then runs the revision's check.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { migrate } from '../../workflows';
import { backfillStatusQuery, backfillWorkflowId, pauseSignal, resumeSignal, statusQuery, throttleSignal } from '../../workflows/messages';
import { createPhasegateWorker } from '../../workers/worker';
import { bundleWorkflows, connectTestTemporal, createTestDatabase, eventually, silentLog, testConfig, uniqueId, writeMigrations, type TestDatabase } from '../helpers';

let env: TestWorkflowEnvironment;
let bundle: WorkflowBundleWithSourceMap;
let db: TestDatabase;

beforeAll(async () => {
  env = await connectTestTemporal();
  bundle = await bundleWorkflows();
  db = await createTestDatabase();
  await db.query('CREATE TABLE accounts (id bigint PRIMARY KEY, email text NOT NULL)');
  await db.query(`INSERT INTO accounts SELECT g, 'u' || g FROM generate_series(1, 20000) g`);
});
afterAll(async () => {
  await db?.drop();
  await env?.teardown();
});

test('pause and resume sent to migrate reach its backfill; the check runs after the last row', async () => {
  const dir = writeMigrations({
    'b1_org_id.js': `module.exports = {
      id: 'b1', parent: null, message: 'add and fill org_id',
      upgrade(op) { op.addColumn('accounts', 'org_id', 'bigint'); },
      downgrade(op) { op.dropColumn('accounts', 'org_id'); },
      backfill: { table: 'accounts', set: { org_id: '1 + id % 7' }, where: 'org_id IS NULL', batchSize: 100, maxRowsPerSecond: 1000, targetBatchMs: 0 },
      check: { name: 'no NULLs left in accounts.org_id', failingRows: 'SELECT id FROM accounts WHERE org_id IS NULL' },
    };`,
  });
  const config = testConfig({ databases: { app: { url: db.url, migrationsDirectory: dir } } });
  const taskQueue = uniqueId('migrate-backfill');
  const { worker } = await createPhasegateWorker({ config, log: silentLog, workflowBundle: bundle, taskQueue, connection: env.nativeConnection });
  const workflowId = uniqueId('migrate-app');
  await worker.runUntil(async () => {
    const handle = await env.client.workflow.start(migrate, { workflowId, taskQueue, args: [{ database: 'app', target: 'head', direction: 'upgrade' }] });
    // The parent hears from its backfill only on state changes (bounded history); live progress
    // comes from the child, whose id the parent's status names.
    const childId = await eventually('the parent to name its backfill child', async () => (await handle.query(statusQuery)).backfillWorkflowId, 30_000);
    expect(childId).toBe(backfillWorkflowId(workflowId, 'b1'));
    await eventually('rows done in the backfill', async () => ((await env.client.workflow.getHandle(childId).query(backfillStatusQuery)).rowsDone ?? 0) > 0, 30_000);

    await handle.signal(pauseSignal, {});
    const paused = await eventually('the parent to show paused', async () => {
      const s = await handle.query(statusQuery);
      return s.state === 'paused' ? s : undefined;
    });
    const child = env.client.workflow.getHandle(backfillWorkflowId(workflowId, 'b1'));
    const done1 = (await db.query<{ n: string }>('SELECT count(*) AS n FROM accounts WHERE org_id IS NOT NULL')).rows[0].n;
    await new Promise((r) => setTimeout(r, 1500));
    const done2 = (await db.query<{ n: string }>('SELECT count(*) AS n FROM accounts WHERE org_id IS NOT NULL')).rows[0].n;
    expect(done2).toBe(done1);
    expect(Number(done1)).toBeLessThan(20000);
    expect(paused.backfill?.state).toBe('paused');
    expect((await child.describe()).status.name).toBe('RUNNING');
    // No batch transaction is left open while paused.
    const open = await db.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in transaction%'`);
    expect(open.rows[0].n).toBe(0);

    await handle.signal(throttleSignal, { batchSize: 500, maxRowsPerSecond: 1_000_000 });
    await handle.signal(resumeSignal, {});
    const result = await handle.result();
    expect(result).toMatchObject({ outcome: 'done', applied: ['b1'] });
    const status = await handle.query(statusQuery);
    expect(status.backfill).toMatchObject({ state: 'done', rowsDone: 20000 });
    expect(status.check).toMatchObject({ name: 'no NULLs left in accounts.org_id', passed: true });
    expect(status.ignoredSignals).toEqual([]);
  });
  const { rows } = await db.query(`SELECT count(*)::int AS n, sum(org_id)::bigint AS s FROM accounts`);
  const expected = (await db.query(`SELECT sum(1 + g % 7)::bigint AS s FROM generate_series(1, 20000) g`)).rows[0].s;
  expect(rows[0]).toEqual({ n: 20000, s: expected });
});
