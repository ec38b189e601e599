/**
 * A worker process SIGKILLed after a non-transactional revision's DDL and before its version stamp:
 * the step resumes on a new worker, re-runs its idempotent statements, and the revision is
 * recorded exactly once. (Alembic's autocommit_block leaves this gap open.)
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { migrate } from '../../workflows';
import { statusQuery } from '../../workflows/messages';
import { connectTestTemporal, createTestDatabase, eventually, spawnWorkerProcess, uniqueId, writeMigrations, type TestDatabase } from '../helpers';

let env: TestWorkflowEnvironment;
let db: TestDatabase;

beforeAll(async () => {
  env = await connectTestTemporal();
  db = await createTestDatabase();
  await db.query('CREATE TABLE accounts (id bigint PRIMARY KEY, email text NOT NULL)');
  await db.query(`INSERT INTO accounts SELECT g, 'u' || g FROM generate_series(1, 1000) g`);
});
afterAll(async () => {
  await db?.drop();
  await env?.teardown();
});

test('SIGKILL between a CONCURRENTLY build and the stamp: resumed elsewhere, stamped exactly once', async () => {
  const dir = writeMigrations({
    'ccc001_index_email.js': `module.exports = {
      id: 'ccc001', parent: null, message: 'index accounts.email', transactional: false,
      upgrade(op) {
        op.sql('CREATE INDEX CONCURRENTLY IF NOT EXISTS accounts_email_idx ON accounts (email)');
        // Stands for any slow statement after the DDL: the window in which the worker dies.
        op.sql('SELECT pg_sleep(2)');
      },
      downgrade(op) { op.sql('DROP INDEX CONCURRENTLY IF EXISTS accounts_email_idx'); },
    };`,
  });
  const taskQueue = uniqueId('crash');
  const config = {
    temporal: { address: env.address, taskQueue },
    databases: { app: { url: db.url, migrationsDirectory: dir } },
  };
  const first = spawnWorkerProcess(config);
  const handle = await env.client.workflow.start(migrate, {
    workflowId: uniqueId('migrate-app'),
    taskQueue,
    args: [{ database: 'app', target: 'head', direction: 'upgrade' }],
  });

  // The DDL has committed and the step is inside its slow statement: no stamp yet.
  await eventually('the index build to finish and the sleep to start', async () => {
    const { rows } = await db.query(
      `SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'SELECT pg_sleep%' AND state = 'active'`,
    );
    return rows.length > 0;
  });
  const index = await db.query(`SELECT indisvalid FROM pg_index WHERE indexrelid = 'accounts_email_idx'::regclass`);
  expect(index.rows).toEqual([{ indisvalid: true }]);
  expect((await db.query(`SELECT to_regclass('phasegate_version') AS t`)).rows[0].t).toBeNull();

  await first.kill('SIGKILL');
  const second = spawnWorkerProcess(config);
  try {
    const result = await handle.result();
    expect(result.applied).toEqual(['ccc001']);
    const status = await handle.query(statusQuery);
    expect(status.steps[0]).toMatchObject({ revision: 'ccc001', state: 'applied' });
  } catch (err) {
    throw new Error(`${(err as Error).message}\nsecond worker output:\n${second.output()}`);
  } finally {
    await second.kill('SIGTERM');
  }
  const { rows } = await db.query('SELECT version_num FROM phasegate_version');
  expect(rows).toEqual([{ version_num: 'ccc001' }]);
  const indexes = await db.query(`SELECT indexname FROM pg_indexes WHERE tablename = 'accounts' ORDER BY 1`);
  expect(indexes.rows.map((r) => r.indexname)).toEqual(['accounts_email_idx', 'accounts_pkey']);
});
