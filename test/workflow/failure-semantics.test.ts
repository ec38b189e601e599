/**
 * The failure-semantics table (README "Failure semantics"), one test per row: real workflow on the
 * Temporal dev server, real activities, real PostgreSQL. Nothing destructive happens without a
 * person; a permanent failure waits in `failed`; a bad input never wedges a workflow.
 */
import type { WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import pg from 'pg';
import type { PhasegateConfigInput } from '../../lib/config';
import { migrate } from '../../workflows';
import {
  abandonUpdate,
  approveSignal,
  approveUpdate,
  rejectSignal,
  retrySignal,
  retryUpdate,
  rollbackSignal,
  statusQuery,
  throttleSignal,
  throttleUpdate,
  type MigrateStatus,
} from '../../workflows/messages';
import { createPhasegateWorker } from '../../workers/worker';
import {
  bundleWorkflows,
  connectTestTemporal,
  createTestDatabase,
  eventually,
  silentLog,
  testConfig,
  uniqueId,
  writeMigrations,
  type TestDatabase,
} from '../helpers';

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
  await db.query(`INSERT INTO accounts SELECT g, 'u' || g FROM generate_series(1, 200) g`);
});
afterEach(() => db.drop());

const rev = (id: string, parent: string | null, body: string) => `module.exports = { id: '${id}', parent: ${parent ? `'${parent}'` : 'null'}, message: '${id}', ${body} };`;
const addColumn = (column: string) =>
  `upgrade(op) { op.addColumn('accounts', '${column}', 'bigint'); }, downgrade(op) { op.dropColumn('accounts', '${column}'); }`;

async function withWorker<T>(
  dir: string,
  body: (start: (input?: Record<string, unknown>, workflowId?: string) => Promise<WorkflowHandle<typeof migrate>>) => Promise<T>,
  defaults?: PhasegateConfigInput['defaults'],
): Promise<T> {
  const config = testConfig({ databases: { app: { url: db.url, migrationsDirectory: dir } }, defaults });
  const taskQueue = uniqueId('failures');
  const { worker } = await createPhasegateWorker({ config, log: silentLog, workflowBundle: bundle, taskQueue, connection: env.nativeConnection });
  return worker.runUntil(() =>
    body((input = {}, workflowId = uniqueId('migrate-app')) =>
      env.client.workflow.start(migrate, { workflowId, taskQueue, args: [{ database: 'app', target: 'head', direction: 'upgrade', ...input } as never] }),
    ),
  );
}

const statusOf = (handle: WorkflowHandle<typeof migrate>) => handle.query(statusQuery);
const untilState = (handle: WorkflowHandle<typeof migrate>, state: MigrateStatus['state'], timeoutMs = 60_000) =>
  eventually(
    `state ${state}`,
    async () => {
      const s = await statusOf(handle);
      return s.state === state ? s : undefined;
    },
    timeoutMs,
  );

async function columns(): Promise<string[]> {
  const { rows } = await db.query<{ column_name: string }>(
    `SELECT column_name FROM information_schema.columns WHERE table_name = 'accounts' ORDER BY ordinal_position`,
  );
  return rows.map((r) => r.column_name);
}

async function versionRows(): Promise<string[]> {
  const { rows } = await db.query<{ version_num: string }>(`SELECT version_num FROM phasegate_version ORDER BY 1`);
  return rows.map((r) => r.version_num);
}

test('a SQL error stops in failed without rolling anything back; retry after fixing the cause finishes', async () => {
  const dir = writeMigrations({
    'r1.js': rev('r1', null, addColumn('org_id')),
    'r2.js': rev('r2', 'r1', `upgrade(op) { op.sql('ALTER TABLE orgs ADD COLUMN tier int'); }, downgrade(op) { op.sql('ALTER TABLE orgs DROP COLUMN tier'); }`),
  });
  await withWorker(dir, async (start) => {
    const handle = await start();
    const failed = await untilState(handle, 'failed');
    expect(failed.failure).toMatchObject({ kind: 'revision', revision: 'r2', type: 'SqlError', options: ['retry', 'rollback', 'abandon'] });
    expect(failed.failure!.message).toContain('relation "orgs" does not exist');
    expect((await handle.describe()).status.name).toBe('RUNNING');
    // The earlier step stays: a failure is never a reason to drop a column by itself.
    expect(await columns()).toEqual(['id', 'email', 'org_id']);
    expect(await versionRows()).toEqual(['r1']);

    // An Update refuses what does not fit the state, before it enters history.
    await expect(handle.executeUpdate(approveUpdate, { args: [{ by: 'alice' }] })).rejects.toMatchObject({ cause: { message: expect.stringContaining('no gate is waiting') } });
    await db.query('CREATE TABLE orgs (id bigint PRIMARY KEY)');
    const answer = await handle.executeUpdate(retryUpdate, { args: [{ by: 'alice' }] });
    expect(answer).toMatchObject({ accepted: true, verb: 'retry', state: 'failed' });
    expect(await handle.result()).toMatchObject({ outcome: 'done', applied: ['r1', 'r2'] });
  });
  expect(await versionRows()).toEqual(['r2']);
  const audit = await db.query(`SELECT decision, decided_by FROM phasegate_approval ORDER BY id`);
  expect(audit.rows).toEqual([{ decision: 'retry', decided_by: 'alice' }]);
});

test('rollback after a failure undoes only the steps since the last approved gate; pastGates undoes the rest', async () => {
  const dir = writeMigrations({
    'r1.js': rev('r1', null, addColumn('org_id')),
    'r2.js': rev('r2', 'r1', `gate: { name: 'deploy', prompt: 'deploy the app that writes org_id' }, ${addColumn('tier')}`),
    'r3.js': rev('r3', 'r2', `upgrade(op) { op.sql('SELECT no_such_function()'); }, downgrade(op) {}`),
  });
  await withWorker(dir, async (start) => {
    const handle = await start();
    await untilState(handle, 'awaiting-approval');
    await handle.signal(approveSignal, { by: 'alice' });
    await untilState(handle, 'failed');
    await handle.signal(rollbackSignal, { by: 'bob', reason: 'not today' });
    const result = await handle.result();
    expect(result).toMatchObject({ outcome: 'rolled-back', rolledBack: ['r2'] });
    const status = await statusOf(handle);
    expect(status.state).toBe('rolled-back');
    expect(status.rollback).toMatchObject({ by: 'bob', undone: ['r2'], kept: [{ revision: 'r1', reason: expect.stringContaining('gate "deploy", which alice approved') }] });
  });
  // r1 lies behind the approved gate: the deployed app writes org_id, so it stays.
  expect(await columns()).toEqual(['id', 'email', 'org_id']);
  expect(await versionRows()).toEqual(['r1']);
});

test('rollback {pastGates: true} also undoes the steps behind a gate a person approved', async () => {
  const dir = writeMigrations({
    'r1.js': rev('r1', null, addColumn('org_id')),
    'r2.js': rev('r2', 'r1', `gate: { name: 'deploy', prompt: 'ready for deploy?' }, ${addColumn('tier')}`),
    'r3.js': rev('r3', 'r2', `upgrade(op) { op.sql('SELECT no_such_function()'); }, downgrade(op) {}`),
  });
  await withWorker(dir, async (start) => {
    const handle = await start();
    await untilState(handle, 'awaiting-approval');
    await handle.signal(approveSignal, { by: 'alice' });
    await untilState(handle, 'failed');
    await handle.signal(rollbackSignal, { by: 'bob', pastGates: true });
    expect(await handle.result()).toMatchObject({ outcome: 'rolled-back', rolledBack: ['r2', 'r1'], headsAfter: [] });
    expect((await statusOf(handle)).rollback).toMatchObject({ undone: ['r2', 'r1'], kept: [] });
  });
  expect(await columns()).toEqual(['id', 'email']);
  expect(await versionRows()).toEqual([]);
  const audit = await db.query(`SELECT decision, decided_by, comment FROM phasegate_approval ORDER BY id`);
  expect(audit.rows).toEqual([
    { decision: 'approve', decided_by: 'alice', comment: null },
    { decision: 'rollback', decided_by: 'bob', comment: 'pastGates' },
  ]);
});

test('reject at a gate undoes only the steps applied since the previous approved gate', async () => {
  const dir = writeMigrations({
    'r1.js': rev('r1', null, addColumn('a')),
    'r2.js': rev('r2', 'r1', `gate: { name: 'first', prompt: 'ready for first?' }, ${addColumn('b')}`),
    'r3.js': rev('r3', 'r2', addColumn('c')),
    'r4.js': rev('r4', 'r3', `gate: { name: 'second', prompt: 'ready for second?' }, ${addColumn('d')}`),
  });
  await withWorker(dir, async (start) => {
    const handle = await start();
    await untilState(handle, 'awaiting-approval');
    await handle.signal(approveSignal, { by: 'alice', gate: 'first' });
    await eventually('the second gate', async () => (await statusOf(handle)).gate?.name === 'second');
    await handle.signal(rejectSignal, { by: 'carol', reason: 'app not ready' });
    expect(await handle.result()).toMatchObject({ outcome: 'rolled-back', rolledBack: ['r3', 'r2'] });
    expect((await statusOf(handle)).rollback?.kept).toEqual([{ revision: 'r1', reason: expect.stringContaining('gate "first"') }]);
  });
  expect(await columns()).toEqual(['id', 'email', 'a']);
  expect(await versionRows()).toEqual(['r1']);
});

test('cancel during a long statement cancels it in PostgreSQL and rolls nothing back', async () => {
  const dir = writeMigrations({
    'r1.js': rev('r1', null, addColumn('org_id')),
    'r2.js': rev('r2', 'r1', `upgrade(op) { op.sql('SELECT pg_sleep(120)'); }, downgrade(op) {}`),
  });
  await withWorker(dir, async (start) => {
    const handle = await start();
    await eventually('pg_sleep running', async () => (await db.query(`SELECT 1 FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(120)'`)).rows.length > 0);
    const cancelledAt = Date.now();
    await handle.cancel();
    await expect(handle.result()).rejects.toMatchObject({ cause: { name: 'CancelledFailure' } });
    // Cancellation reaches the activity at its next heartbeat (heartbeatTimeout 10 s → within ~8 s).
    expect(Date.now() - cancelledAt).toBeLessThan(15_000);
    expect((await db.query(`SELECT 1 FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(120)' AND state = 'active'`)).rows).toEqual([]);
    expect((await statusOf(handle)).state).toBe('cancelled');
  });
  expect(await columns()).toEqual(['id', 'email', 'org_id']);
  expect(await versionRows()).toEqual(['r1']);
  expect((await db.query('SELECT count(*)::int AS n FROM phasegate_lease')).rows).toEqual([{ n: 0 }]);
});

test('a rollback that cannot finish stops in failed saying what was and was not undone; abandon ends it as it is', async () => {
  const dir = writeMigrations({
    'r1.js': rev('r1', null, `upgrade(op) { op.addColumn('accounts', 'a', 'bigint'); }, downgrade(op) { op.sql('ALTER TABLE accounts DROP COLUMN no_such_column'); }`),
    'r2.js': rev('r2', 'r1', addColumn('b')),
    'r3.js': rev('r3', 'r2', `upgrade(op) { op.sql('SELECT 1/0'); }, downgrade(op) {}`),
  });
  await withWorker(dir, async (start) => {
    const handle = await start();
    await untilState(handle, 'failed');
    await handle.signal(rollbackSignal, { by: 'bob' });
    const stuck = await eventually('the rollback to fail', async () => {
      const s = await statusOf(handle);
      return s.state === 'failed' && s.failure?.kind === 'rollback' ? s : undefined;
    });
    expect(stuck.failure).toMatchObject({ revision: 'r1', options: ['retry', 'abandon'] });
    expect(stuck.rollback).toMatchObject({ undone: ['r2'] });
    await handle.executeUpdate(abandonUpdate, { args: [{ by: 'bob', reason: 'fix by hand' }] });
    expect(await handle.result()).toMatchObject({ outcome: 'abandoned', rolledBack: ['r2'] });
    const status = await statusOf(handle);
    expect(status.state).toBe('abandoned');
    expect(status.rollback?.kept).toEqual([{ revision: 'r1', reason: 'rollback abandoned' }]);
  });
  expect(await columns()).toEqual(['id', 'email', 'a']);
  expect(await versionRows()).toEqual(['r1']);
});

test.each([
  ['a misspelt field', { db: 'demo' }, ['"database" is required', 'unknown field(s) "db"']],
  ['a string', 'demo', ['must be a JSON object']],
  ['null', null, ['must be a JSON object']],
  ['direction "down"', { database: 'app', direction: 'down' }, ['"direction" must be "upgrade" or "downgrade"']],
  ['autoApprove as a string', { database: 'app', autoApprove: 'false' }, ['"autoApprove" must be true or false']],
  ['target as an array', { database: 'app', target: ['head'] }, ['"target" must be a string']],
])('bad input (%s) fails at once, non-retryably, listing every problem', async (_name, input, problems) => {
  const dir = writeMigrations({ 'r1.js': rev('r1', null, addColumn('org_id')) });
  const taskQueue = uniqueId('bad-input');
  const { worker } = await createPhasegateWorker({
    config: testConfig({ databases: { app: { url: db.url, migrationsDirectory: dir } } }),
    log: silentLog,
    workflowBundle: bundle,
    taskQueue,
    connection: env.nativeConnection,
  });
  await worker.runUntil(async () => {
    const handle = await env.client.workflow.start('migrate', { workflowId: uniqueId('migrate-bad'), taskQueue, args: [input] });
    const error = await handle.result().then(
      () => null,
      (err: unknown) => err as { cause?: { type?: string; nonRetryable?: boolean; message?: string } },
    );
    expect(error?.cause).toMatchObject({ type: 'InvalidInput', nonRetryable: true });
    for (const problem of problems) expect(error?.cause?.message).toContain(problem);
  });
  expect(await columns()).toEqual(['id', 'email']);
});

test('bad control payloads: a signal is recorded and ignored with the reason, an Update is refused, the workflow lives on', async () => {
  const dir = writeMigrations({
    'r1.js': rev('r1', null, `gate: { name: 'deploy', prompt: 'ready for deploy?' }, ${addColumn('org_id')}`),
  });
  await withWorker(dir, async (start) => {
    const handle = await start();
    await untilState(handle, 'awaiting-approval');
    await handle.signal(throttleSignal, { batchSize: -5 });
    await handle.signal('throttle', { batchSize: 'lots' });
    await handle.signal('approve', 'junk');
    await handle.signal(approveSignal, { by: 'eve\u0000' });
    await expect(handle.executeUpdate(throttleUpdate, { args: [{ batchSize: -5 }] })).rejects.toMatchObject({
      cause: { message: expect.stringContaining('batchSize must be at least 10') },
    });
    const status = await eventually('four recorded refusals', async () => {
      const s = await statusOf(handle);
      return s.ignoredSignals.length === 2 && s.approvals.length === 2 ? s : undefined;
    });
    expect(status.ignoredSignals.map((s) => s.reason)).toEqual([
      expect.stringContaining('batchSize must be at least 10'),
      expect.stringContaining('batchSize must be a number'),
    ]);
    expect(status.approvals.map((a) => a.ignoredReason)).toEqual([expect.stringContaining('expected an object'), expect.stringContaining('must not contain a NUL')]);
    expect(status.state).toBe('awaiting-approval');
    await handle.signal(approveSignal, { by: 'alice' });
    expect((await handle.result()).outcome).toBe('done');
    expect((await statusOf(handle)).auditErrors).toEqual([]);
  });
  // Every decision is audited, the NUL one with the character replaced (text cannot hold NUL).
  const audit = await db.query(`SELECT decided_by, accepted FROM phasegate_approval ORDER BY id`);
  expect(audit.rows).toEqual([
    { decided_by: '', accepted: false },
    { decided_by: 'eve\uFFFD', accepted: false },
    { decided_by: 'alice', accepted: true },
  ]);
});

test('one migration per database: a second migrate under another workflow id is refused at once', async () => {
  const dir = writeMigrations({ 'r1.js': rev('r1', null, `gate: { name: 'deploy', prompt: 'ready for deploy?' }, ${addColumn('org_id')}`) });
  await withWorker(dir, async (start) => {
    const first = await start({}, uniqueId('migrate-demo'));
    await untilState(first, 'awaiting-approval');
    const second = await start({}, uniqueId('migrate-dup'));
    await expect(second.result()).rejects.toMatchObject({
      cause: { cause: { type: 'MigrationInProgress', message: expect.stringContaining(`${first.workflowId} is migrating database "app"`) } },
    });
    await first.signal(approveSignal, { by: 'alice' });
    expect((await first.result()).outcome).toBe('done');
  });
  expect(await columns()).toEqual(['id', 'email', 'org_id']);
});

test('a lock that is never released leaves the migration blocked, not failed; retry after the blocker ends finishes', async () => {
  const dir = writeMigrations({ 'r1.js': rev('r1', null, addColumn('org_id')) });
  const blocker = new pg.Client({ connectionString: db.url });
  await blocker.connect();
  const { rows } = await blocker.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
  await blocker.query('BEGIN');
  await blocker.query('LOCK TABLE accounts IN ACCESS SHARE MODE');
  try {
    await withWorker(
      dir,
      async (start) => {
        const handle = await start();
        const blocked = await untilState(handle, 'blocked');
        expect(blocked.failure).toMatchObject({ kind: 'lock', revision: 'r1', type: 'LockTimeout' });
        expect(blocked.failure!.message).toContain(`blocked by pid ${rows[0].pid}`);
        await blocker.query('ROLLBACK');
        await handle.signal(retrySignal, { by: 'alice' });
        expect((await handle.result()).outcome).toBe('done');
      },
      { lockTimeoutMs: 300, lockRetry: { initialDelayMs: 10, maxDelayMs: 20, maxAttempts: 3 } },
    );
  } finally {
    await blocker.end();
  }
  expect(await columns()).toEqual(['id', 'email', 'org_id']);
});

test('a non-transactional step whose SQL merely mentions CONCURRENTLY keeps its lock_timeout', async () => {
  // The old regex on the SQL text set lock_timeout 0 here, and the step queued behind the blocker forever.
  const dir = writeMigrations({
    'r1.js': `module.exports = { id: 'r1', parent: null, message: 'r1', transactional: false,
      upgrade(op) { op.sql('-- not built CONCURRENTLY\\nALTER TABLE accounts ADD COLUMN IF NOT EXISTS org_id bigint'); },
      downgrade(op) { op.dropColumn('accounts', 'org_id'); } };`,
  });
  const blocker = new pg.Client({ connectionString: db.url });
  await blocker.connect();
  await blocker.query('BEGIN');
  await blocker.query('LOCK TABLE accounts IN ACCESS SHARE MODE');
  try {
    await withWorker(
      dir,
      async (start) => {
        const handle = await start();
        await untilState(handle, 'blocked', 30_000);
        await blocker.query('ROLLBACK');
        await handle.signal(retrySignal, { by: 'alice' });
        expect((await handle.result()).outcome).toBe('done');
      },
      { lockTimeoutMs: 50, lockRetry: { initialDelayMs: 10, maxDelayMs: 20, maxAttempts: 2 } },
    );
  } finally {
    await blocker.end();
  }
});

test('a throttle and a pause sent before the backfill starts are handed to it; the parent history stays bounded', async () => {
  await db.query(`INSERT INTO accounts SELECT g, 'u' || g FROM generate_series(201, 3000) g`);
  const dir = writeMigrations({
    'r1.js': rev('r1', null, `gate: { name: 'deploy', prompt: 'ready for deploy?' }, ${addColumn('org_id')},
      backfill: { table: 'accounts', set: { org_id: 'id % 7' }, where: 'org_id IS NULL', batchSize: 10, targetBatchMs: 0, sliceCallMs: 1 }`),
  });
  await withWorker(dir, async (start) => {
    const handle = await start();
    await untilState(handle, 'awaiting-approval');
    await handle.executeUpdate(throttleUpdate, { args: [{ batchSize: 20 }] });
    await handle.signal('pause', {});
    await handle.signal(approveSignal, { by: 'alice' });
    const paused = await eventually('the backfill to report paused', async () => {
      const st = await statusOf(handle);
      return st.state === 'paused' && st.backfill?.state === 'paused' ? st : undefined;
    });
    expect(paused.backfill).toMatchObject({ state: 'paused', batchSize: 20, rowsDone: 0 });
    await handle.signal('resume', {});
    expect((await handle.result()).outcome).toBe('done');
    const child = env.client.workflow.getHandle(paused.backfillWorkflowId!);
    const childEvents = (await child.fetchHistory()).events ?? [];
    const sliceCalls = childEvents.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'backfillSlice').length;
    // 3000 rows / 20 per batch, one batch per call: about 150 slice calls in the child ...
    expect(sliceCalls).toBeGreaterThan(100);
    // ... and a parent history that does not grow with them.
    const parentEvents = (await handle.fetchHistory()).events?.length ?? 0;
    expect(parentEvents).toBeLessThan(120);
  });
  const { rows } = await db.query(`SELECT count(*)::int AS n FROM accounts WHERE org_id IS DISTINCT FROM id % 7`);
  expect(rows).toEqual([{ n: 0 }]);
});

test('the approvals log in status is bounded; the audit table keeps every decision', async () => {
  const dir = writeMigrations({ 'r1.js': rev('r1', null, `gate: { name: 'deploy', prompt: 'ready for deploy?' }, ${addColumn('org_id')}`) });
  await withWorker(dir, async (start) => {
    const handle = await start();
    await untilState(handle, 'awaiting-approval');
    for (let i = 0; i < 110; i++) await handle.signal(approveSignal, { by: 'mallory', gate: 'other' });
    await handle.signal(approveSignal, { by: 'alice' });
    await handle.result();
    expect((await statusOf(handle)).approvals).toHaveLength(100);
  });
  expect((await db.query('SELECT count(*)::int AS n FROM phasegate_approval')).rows).toEqual([{ n: 111 }]);
});
