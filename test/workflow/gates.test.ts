/**
 * Gates, audit, checks and rollback in `migrate`, on the real dev server and real PostgreSQL.
 */
import type { WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import type { PhasegateConfigInput } from '../../lib/config';
import { migrate } from '../../workflows';
import { approveSignal, rejectSignal, retrySignal, statusQuery, type MigrateStatus } from '../../workflows/messages';
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
  await db.query(`INSERT INTO accounts SELECT g, 'u' || g FROM generate_series(1, 50) g`);
});
afterEach(() => db.drop());

/**
 * r1 adds org_id (checked: no NULLs); r2, behind gate "deploy", makes it NOT NULL. With
 * `filled`, r1's column gets a constant default, so its check passes at once.
 */
function twoPhases(gate: Record<string, unknown> = {}, filled = true): string {
  return writeMigrations({
    'r1_add_org_id.js': `module.exports = {
      id: 'r1', parent: null, message: 'add org_id', phase: 'expand',
      upgrade(op) { op.addColumn('accounts', 'org_id', 'bigint'${filled ? ", { default: '0' }" : ''}); },
      downgrade(op) { op.dropColumn('accounts', 'org_id'); },
      check: { name: 'every account has an org', failingRows: 'SELECT id FROM accounts WHERE org_id IS NULL ORDER BY id' },
    };`,
    'r2_enforce.js': `module.exports = {
      id: 'r2', parent: 'r1', message: 'enforce org_id', phase: 'contract',
      gate: ${JSON.stringify({ name: 'deploy', prompt: 'deploy the app that writes org_id', ...gate })},
      upgrade(op) { op.alterColumn('accounts', 'org_id', { nullable: false }); },
      downgrade(op) { op.alterColumn('accounts', 'org_id', { nullable: true }); },
    };`,
  });
}

async function withMigration<T>(
  dir: string,
  body: (handle: WorkflowHandle<typeof migrate>) => Promise<T>,
  opts: { autoApprove?: boolean; databases?: PhasegateConfigInput['databases'] } = {},
): Promise<T> {
  const config = testConfig({ databases: opts.databases ?? { app: { url: db.url, migrationsDirectory: dir } } });
  const taskQueue = uniqueId('gates');
  const { worker } = await createPhasegateWorker({ config, log: silentLog, workflowBundle: bundle, taskQueue, connection: env.nativeConnection });
  return worker.runUntil(async () => {
    const handle = await env.client.workflow.start(migrate, {
      workflowId: uniqueId('migrate-app'),
      taskQueue,
      args: [{ database: 'app', target: 'head', direction: 'upgrade', ...(opts.autoApprove ? { autoApprove: true } : {}) }],
    });
    return body(handle);
  });
}

const statusOf = (handle: WorkflowHandle<typeof migrate>) => handle.query(statusQuery);
const untilState = (handle: WorkflowHandle<typeof migrate>, state: MigrateStatus['state']) =>
  eventually(`state ${state}`, async () => {
    const s = await statusOf(handle);
    return s.state === state ? s : undefined;
  });

async function fillOrgIds(): Promise<void> {
  await db.query('UPDATE accounts SET org_id = id % 7');
}

async function nullable(column: string): Promise<string | undefined> {
  const { rows } = await db.query(`SELECT is_nullable FROM information_schema.columns WHERE table_name = 'accounts' AND column_name = $1`, [column]);
  return rows[0]?.is_nullable;
}

test('a failed check stops in failed with its numbers; retry after fixing the data passes it', async () => {
  await withMigration(twoPhases({}, false), async (handle) => {
    const failed = await untilState(handle, 'failed');
    expect(failed.failure).toMatchObject({ kind: 'check', revision: 'r1', type: 'CheckFailed', options: ['retry', 'rollback', 'abandon'] });
    // The check's revision is not stamped until its check passes: pending, not in the version table.
    expect((await db.query(`SELECT to_regclass('phasegate_version') AS t`)).rows).toEqual([{ t: null }]);
    expect((await db.query('SELECT version_num FROM phasegate_version_pending')).rows).toEqual([{ version_num: 'r1' }]);
    expect(failed.check).toMatchObject({ revision: 'r1', name: 'every account has an org', passed: false, failingCount: 50 });
    expect(failed.check!.sample).toHaveLength(10);
    expect(failed.check!.sample[0]).toEqual({ id: '1' });

    await fillOrgIds();
    await handle.signal(retrySignal, { by: 'alice' });
    const gated = await untilState(handle, 'awaiting-approval');
    expect(gated.check).toMatchObject({ passed: true, attempts: 2 });
    await handle.signal(approveSignal, { by: 'alice' });
    await handle.result();
  });
});

test('approvals for the wrong gate, from non-approvers, without "by", or before the gate are recorded and ignored', async () => {
  const dir = twoPhases();
  await withMigration(
    dir,
    async (handle) => {
      // Sent at once: the workflow is still planning or applying r1, no gate is waiting yet.
      await handle.signal(approveSignal, { by: 'alice' });
      const waiting = await untilState(handle, 'awaiting-approval');
      expect(waiting.gate).toMatchObject({ name: 'deploy', revision: 'r2', prompt: 'deploy the app that writes org_id', approvers: ['alice', 'bob'] });

      await handle.signal(approveSignal, { by: 'alice', gate: 'contract' });
      await handle.signal(approveSignal, { by: 'mallory' });
      await handle.signal(approveSignal, { by: '' });
      await eventually('four ignored approvals', async () => (await statusOf(handle)).approvals.length === 4);
      expect((await statusOf(handle)).state).toBe('awaiting-approval');

      await handle.signal(approveSignal, { by: 'bob', gate: 'deploy', comment: 'app v42 is out' });
      const result = await handle.result();
      expect(result.outcome).toBe('done');
      const { approvals } = await statusOf(handle);
      expect(approvals.map((a) => [a.by, a.accepted, a.ignoredReason])).toEqual([
        ['alice', false, expect.stringContaining('no gate is waiting')],
        ['alice', false, 'this approve names gate "contract", but the workflow waits at gate "deploy"'],
        ['mallory', false, '"mallory" is not an approver of gate "deploy" (approvers: alice, bob)'],
        ['', false, expect.stringContaining('"by" must name who decides')],
        ['bob', true, null],
      ]);
    },
    { databases: { app: { url: db.url, migrationsDirectory: dir, approvers: ['alice', 'bob'] } } },
  );
  expect(await nullable('org_id')).toBe('NO');
  const audit = await db.query(
    `SELECT decided_by, gate, revision, decision, accepted, comment, workflow_id LIKE 'migrate-app-%' AS wf FROM phasegate_approval ORDER BY id`,
  );
  expect(audit.rows).toHaveLength(5);
  expect(audit.rows[4]).toEqual({ decided_by: 'bob', gate: 'deploy', revision: 'r2', decision: 'approve', accepted: true, comment: 'app v42 is out', wf: true });
});

test('a rejection with onReject rollback undoes the applied phases: schema and version table end where they started', async () => {
  await withMigration(twoPhases(), async (handle) => {
    await untilState(handle, 'awaiting-approval');
    expect((await db.query('SELECT version_num FROM phasegate_version')).rows).toEqual([{ version_num: 'r1' }]);
    await handle.signal(rejectSignal, { by: 'carol', reason: 'app not ready' });
    const result = await handle.result();
    expect(result).toMatchObject({ outcome: 'rolled-back', applied: ['r1'], rolledBack: ['r1'], headsAfter: [] });
    const status = await statusOf(handle);
    expect(status.state).toBe('rolled-back');
    expect(status.rollback).toEqual({ reason: 'gate "deploy" rejected by carol: app not ready', by: 'carol', undone: ['r1'], kept: [] });
  });
  expect(await nullable('org_id')).toBeUndefined();
  expect((await db.query('SELECT version_num FROM phasegate_version')).rows).toEqual([]);
});

test('a rejection with onReject hold keeps the gate waiting; a later approval opens it', async () => {
  await withMigration(twoPhases({ onReject: 'hold' }), async (handle) => {
    await untilState(handle, 'awaiting-approval');
    await handle.signal(rejectSignal, { by: 'carol', reason: 'wait for Monday' });
    const held = await eventually('the gate to be held', async () => (await statusOf(handle)).gate?.heldBy ?? undefined);
    expect(held).toMatchObject({ by: 'carol', reason: 'wait for Monday' });
    expect((await statusOf(handle)).state).toBe('awaiting-approval');
    await handle.signal(approveSignal, { by: 'dave' });
    expect((await handle.result()).outcome).toBe('done');
  });
  expect(await nullable('org_id')).toBe('NO');
});

test('a gate that expires without a decision is treated as rejected (rollback), and the expiry is audited', async () => {
  await withMigration(twoPhases({ expireAfter: '2 seconds', remindAfter: '1 second' }), async (handle) => {
    const waiting = await untilState(handle, 'awaiting-approval');
    expect(waiting.gate?.expiresAt).not.toBeNull();
    const result = await handle.result();
    expect(result.outcome).toBe('rolled-back');
    const status = await statusOf(handle);
    expect(status.approvals).toEqual([expect.objectContaining({ decision: 'expire', by: 'phasegate', accepted: true })]);
  });
  const audit = await db.query(`SELECT decision, decided_by FROM phasegate_approval`);
  expect(audit.rows).toEqual([{ decision: 'expire', decided_by: 'phasegate' }]);
});

test('autoApprove passes every gate and records who approved', async () => {
  await withMigration(
    twoPhases(),
    async (handle) => {
      expect((await handle.result()).outcome).toBe('done');
      expect((await statusOf(handle)).approvals).toEqual([expect.objectContaining({ by: 'autoApprove', gate: 'deploy', accepted: true })]);
    },
    { autoApprove: true },
  );
  expect(await nullable('org_id')).toBe('NO');
});

test('cancelling the workflow at a gate stops it safely: nothing is rolled back, and a later upgrade continues from there', async () => {
  const dir = twoPhases();
  await withMigration(dir, async (handle) => {
    await untilState(handle, 'awaiting-approval');
    await handle.cancel();
    await expect(handle.result()).rejects.toMatchObject({ cause: { name: 'CancelledFailure' } });
    const status = await statusOf(handle);
    expect(status.state).toBe('cancelled');
    expect(status.steps.map((s) => [s.revision, s.state])).toEqual([
      ['r1', 'applied'],
      ['r2', 'pending'],
    ]);
  });
  expect(await nullable('org_id')).toBe('YES');
  expect((await db.query('SELECT version_num FROM phasegate_version')).rows).toEqual([{ version_num: 'r1' }]);
  await withMigration(
    dir,
    async (handle) => {
      const result = await handle.result();
      expect(result).toMatchObject({ outcome: 'done', applied: ['r2'] });
    },
    { autoApprove: true },
  );
  expect(await nullable('org_id')).toBe('NO');
});

test('the UI can list migrations awaiting approval through the PhasegateState search attribute', async () => {
  await withMigration(twoPhases(), async (handle) => {
    await untilState(handle, 'awaiting-approval');
    await eventually('the visibility store to show the workflow', async () => {
      for await (const wf of env.client.workflow.list({ query: `PhasegateState = "awaiting-approval" AND PhasegateDatabase = "app"` })) {
        if (wf.workflowId === handle.workflowId) return true;
      }
      return false;
    });
    const description = await handle.describe();
    expect(description.memo?.plan).toMatchObject({ steps: ['r1 [check]: add org_id', 'r2 [gate]: enforce org_id'] });
    await handle.signal(approveSignal, { by: 'erin' });
    await handle.result();
  });
});
