/**
 * `migrate` end to end: the real workflow on the Temporal dev server, real activities, real
 * PostgreSQL. Checks the schema and the version table after upgrade and downgrade.
 */
import type { WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import pg from 'pg';
import type { PhasegateConfigInput } from '../../lib/config';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { migrate } from '../../workflows';
import { statusQuery } from '../../workflows/messages';
import { createPhasegateWorker } from '../../workers/worker';
import {
  bundleWorkflows,
  connectTestTemporal,
  createTestDatabase,
  silentLog,
  testConfig,
  uniqueId,
  writeMigrations,
  type TestDatabase,
} from '../helpers';

const revisions = {
  'aaa111_add_org_id.js': `module.exports = {
    id: 'aaa111', parent: null, message: 'add org_id', phase: 'expand',
    upgrade(op) { op.addColumn('accounts', 'org_id', 'bigint'); },
    downgrade(op) { op.dropColumn('accounts', 'org_id'); },
  };`,
  'bbb222_create_orgs.js': `module.exports = {
    id: 'bbb222', parent: 'aaa111', message: 'create orgs',
    upgrade(op) { op.createTable('orgs', (t) => { t.bigIncrements('id'); t.text('name').notNullable(); }); },
    downgrade(op) { op.dropTable('orgs'); },
  };`,
};

let env: TestWorkflowEnvironment;
let bundle: WorkflowBundleWithSourceMap;
let db: TestDatabase;

beforeAll(async () => {
  env = await connectTestTemporal();
  bundle = await bundleWorkflows();
});
afterAll(() => env?.teardown());

beforeEach(async () => {
  db = await createTestDatabase();
  await db.query('CREATE TABLE accounts (id bigint PRIMARY KEY, email text NOT NULL)');
  await db.query(`INSERT INTO accounts SELECT g, 'u' || g FROM generate_series(1, 100) g`);
});
afterEach(() => db.drop());

async function run(
  input: { target: string; direction: 'upgrade' | 'downgrade' },
  migrationsDirectory: string,
  options: { defaults?: PhasegateConfigInput['defaults']; whileRunning?: (handle: WorkflowHandle<typeof migrate>) => Promise<void> } = {},
) {
  const config = testConfig({ databases: { app: { url: db.url, migrationsDirectory } }, defaults: options.defaults });
  const taskQueue = uniqueId('migrate');
  const { worker } = await createPhasegateWorker({
    config,
    log: silentLog,
    workflowBundle: bundle,
    taskQueue,
    connection: env.nativeConnection,
  });
  const workflowId = uniqueId('migrate-app');
  return worker.runUntil(async () => {
    const handle = await env.client.workflow.start(migrate, { workflowId, taskQueue, args: [{ database: 'app', ...input }] });
    await options.whileRunning?.(handle);
    const result = await handle.result();
    const status = await handle.query(statusQuery);
    return { result, status };
  });
}

async function columns(table: string): Promise<string[]> {
  const { rows } = await db.query<{ column_name: string }>(
    `SELECT column_name FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position`,
    [table],
  );
  return rows.map((r) => r.column_name);
}

async function versionRows(): Promise<string[]> {
  const { rows } = await db.query<{ version_num: string }>('SELECT version_num FROM phasegate_version ORDER BY 1');
  return rows.map((r) => r.version_num);
}

test('upgrade head applies every revision in order and records the head in phasegate_version', async () => {
  const dir = writeMigrations(revisions);
  const { result, status } = await run({ target: 'head', direction: 'upgrade' }, dir);

  expect(result.applied).toEqual(['aaa111', 'bbb222']);
  expect(result.headsAfter).toEqual(['bbb222']);
  expect(await columns('accounts')).toEqual(['id', 'email', 'org_id']);
  expect(await columns('orgs')).toEqual(['id', 'name']);
  expect(await versionRows()).toEqual(['bbb222']);
  expect(status.state).toBe('done');
  expect(status.revision).toBe('bbb222');
  expect(status.steps.map((s) => [s.revision, s.state])).toEqual([
    ['aaa111', 'applied'],
    ['bbb222', 'applied'],
  ]);
});

test('downgrade base reverses every revision and empties the version table; its steps read undone', async () => {
  const dir = writeMigrations(revisions);
  await run({ target: 'head', direction: 'upgrade' }, dir);
  const { result, status } = await run({ target: 'base', direction: 'downgrade' }, dir);

  expect(result.applied).toEqual(['bbb222', 'aaa111']);
  expect(status.steps.map((s) => [s.revision, s.state])).toEqual([
    ['bbb222', 'undone'],
    ['aaa111', 'undone'],
  ]);
  expect(await columns('accounts')).toEqual(['id', 'email']);
  expect(await columns('orgs')).toEqual([]);
  expect(await versionRows()).toEqual([]);
});

test('a second upgrade to head has nothing to do', async () => {
  const dir = writeMigrations(revisions);
  await run({ target: 'head', direction: 'upgrade' }, dir);
  const { result, status } = await run({ target: 'head', direction: 'upgrade' }, dir);
  expect(result.applied).toEqual([]);
  expect(status.steps).toEqual([]);
  expect(await versionRows()).toEqual(['bbb222']);
});

test('a step blocked by another session retries after lock_timeout, and status names the table and the blocking pid', async () => {
  const dir = writeMigrations({ 'aaa111_add_org_id.js': revisions['aaa111_add_org_id.js'] });
  const blocker = new pg.Client({ connectionString: db.url });
  await blocker.connect();
  const { rows } = await blocker.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
  await blocker.query('BEGIN');
  await blocker.query('LOCK TABLE accounts IN ACCESS SHARE MODE');
  const seen: string[] = [];
  const { result, status } = await run({ target: 'head', direction: 'upgrade' }, dir, {
    defaults: { lockTimeoutMs: 100, lockRetry: { initialDelayMs: 100, maxDelayMs: 200, maxAttempts: 100 } },
    async whileRunning(handle) {
      const deadline = Date.now() + 30_000;
      while (Date.now() < deadline) {
        const s = await handle.query(statusQuery);
        if (s.waiting) seen.push(s.waiting);
        if (seen.length >= 2) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      await blocker.query('ROLLBACK');
      await blocker.end();
    },
  });
  expect(seen[0]).toMatch(new RegExp(`^waiting for lock on accounts \\(AccessExclusiveLock\\), blocked by pid ${rows[0].pid} \\(idle in transaction\\); attempt \\d+ of 100`));
  expect(result.applied).toEqual(['aaa111']);
  expect(status.waiting).toBeNull();
  expect(status.steps[0].attempts).toBeGreaterThan(1);
  expect(await columns('accounts')).toEqual(['id', 'email', 'org_id']);
});
