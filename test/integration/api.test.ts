/**
 * The programmatic API as a deploy pipeline uses it (README "From code"), in-process against the
 * shared test stack: `createWorker` serving the project, `upgrade({ until: 'gate' })` stopping at
 * the gate with exit code 2 while the workflow waits, a second start refused as typed, `approve`,
 * `follow` to the end (exit code 0), and the typed errors of the unhappy paths, each before
 * anything changes: no migration to follow, Temporal unreachable.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { approve, createWorker, exitCodeFor, follow, isPhasegateError, upgrade } from '../../index';
import type { PhasegateConfig } from '../../lib/config';
import { bundleWorkflows, connectTestTemporal, createTestDatabase, silentLog, testConfig, uniqueId, writeMigrations, type TestDatabase } from '../helpers';

const revisions = {
  'a1_add_plan.js': `module.exports = {
    id: 'a1', parent: null, message: 'add accounts.plan',
    upgrade(op) { op.addColumn('accounts', 'plan', 'text'); },
    downgrade(op) { op.dropColumn('accounts', 'plan'); },
  };`,
  'b2_backfill_plan.js': `module.exports = {
    id: 'b2', parent: 'a1', message: 'backfill accounts.plan',
    gate: { name: 'deploy', prompt: 'ship the app that writes plan' },
    backfill: { table: 'accounts', set: { plan: "'free'" }, where: 'plan IS NULL', batchSize: 100 },
    upgrade() {},
    downgrade() {},
  };`,
};

let env: TestWorkflowEnvironment;
let bundle: WorkflowBundleWithSourceMap;
let db: TestDatabase;
let alias: string;
let config: PhasegateConfig;

beforeAll(async () => {
  env = await connectTestTemporal();
  bundle = await bundleWorkflows();
});
afterAll(() => env?.teardown());

beforeEach(async () => {
  db = await createTestDatabase();
  await db.query('CREATE TABLE accounts (id bigint PRIMARY KEY, email text NOT NULL)');
  await db.query("INSERT INTO accounts SELECT g, 'u' || g FROM generate_series(1, 1000) g");
  alias = uniqueId('api').replace('-', '_');
  config = testConfig({ databases: { [alias]: { url: db.url, migrationsDirectory: writeMigrations(revisions) } } });
});
afterEach(() => db.drop());

const versions = async () => (await db.query<{ version_num: string }>('SELECT version_num FROM phasegate_version ORDER BY 1')).rows.map((r) => r.version_num);

async function failure(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected a failure');
}

test('a pipeline: upgrade until the gate (exit 2), a second start refused, approve, follow to the end (exit 0)', async () => {
  const taskQueue = uniqueId('api');
  const worker = await createWorker({ config, connection: env.nativeConnection, taskQueue, workflowBundle: bundle, log: silentLog });
  expect(worker.databases).toEqual([alias]);
  const running = worker.run();
  try {
    const atGate = await upgrade({ config, client: env.client, database: alias, taskQueue, until: 'gate', pollIntervalMs: 200 });
    expect(atGate).toMatchObject({ outcome: 'awaiting-approval', applied: ['a1'], gate: { name: 'deploy', revision: 'b2', prompt: 'ship the app that writes plan' } });
    expect(exitCodeFor(atGate)).toBe(2);
    // It stopped following; the workflow still waits, and the database is where the gate holds it.
    expect(await versions()).toEqual(['a1']);

    const twice = await failure(upgrade({ config, client: env.client, database: alias, taskQueue, until: 'gate' }));
    expect(isPhasegateError(twice, 'MigrationAlreadyRunning')).toBe(true);

    await approve({ config, client: env.client, database: alias, gate: 'deploy', by: 'pipeline' });
    const done = await follow({ config, client: env.client, database: alias, until: 'gate', pollIntervalMs: 200 });
    expect(done).toMatchObject({ outcome: 'done', headsAfter: ['b2'], workflowId: atGate.workflowId });
    expect(exitCodeFor(done)).toBe(0);
    expect((await db.query('SELECT count(*)::int AS n FROM accounts WHERE plan = $1', ['free'])).rows[0].n).toBe(1000);
    expect(await versions()).toEqual(['b2']);
  } finally {
    worker.shutdown();
    await running;
  }
});

test('typed errors before anything changes: nothing to follow, Temporal unreachable', async () => {
  const nothing = await failure(follow({ config, client: env.client, database: alias }));
  expect(isPhasegateError(nothing, 'MigrationNotFound')).toBe(true);

  const unreachable = await failure(upgrade({ config, database: alias, temporal: { address: '127.0.0.1:1' } }));
  expect(isPhasegateError(unreachable, 'TemporalUnreachable')).toBe(true);
  expect((unreachable as Error).message).toContain('127.0.0.1:1');
  // The plan was built from the database (read only); nothing was written.
  expect((await db.query("SELECT to_regclass('public.phasegate_version')::text AS t")).rows[0].t).toBeNull();
  expect((await db.query("SELECT count(*)::int AS n FROM information_schema.columns WHERE table_name = 'accounts' AND column_name = 'plan'")).rows[0].n).toBe(0);
});
