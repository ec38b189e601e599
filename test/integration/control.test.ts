/**
 * Steering a running migration from outside: phasegate's control commands and the real `temporal`
 * CLI send the same plain-JSON signals, and status shows what the workflow did with them.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { approve, pause, reject, status, throttle } from '../../lib/commands';
import { formatStatus } from '../../lib/commands/format-status';
import type { PhasegateConfig } from '../../lib/config';
import { findTemporalCli } from '../../lib/local/temporal-cli';
import { migrate } from '../../workflows';
import { createPhasegateWorker } from '../../workers/worker';
import { bundleWorkflows, connectTestTemporal, createTestDatabase, eventually, silentLog, testConfig, uniqueId, writeMigrations, type TestDatabase } from '../helpers';

let env: TestWorkflowEnvironment;
let bundle: WorkflowBundleWithSourceMap;
let db: TestDatabase;
let config: PhasegateConfig;

beforeAll(async () => {
  env = await connectTestTemporal();
  bundle = await bundleWorkflows();
});
afterAll(() => env?.teardown());
beforeEach(async () => {
  db = await createTestDatabase();
  await db.query('CREATE TABLE accounts (id bigint PRIMARY KEY)');
  const dir = writeMigrations({
    'g1_gated.js': `module.exports = {
      id: 'g1', parent: null, message: 'add plan', gate: { name: 'go', prompt: 'is marketing ready?' },
      upgrade(op) { op.addColumn('accounts', 'plan', 'text'); },
      downgrade(op) { op.dropColumn('accounts', 'plan'); },
    };`,
  });
  config = testConfig({ databases: { app: { url: db.url, migrationsDirectory: dir } } });
});
afterEach(() => db.drop());

async function atGate<T>(body: (workflowId: string) => Promise<T>): Promise<T> {
  const taskQueue = uniqueId('control');
  const { worker } = await createPhasegateWorker({ config, log: silentLog, workflowBundle: bundle, taskQueue, connection: env.nativeConnection });
  const workflowId = uniqueId('migrate-app');
  return worker.runUntil(async () => {
    await env.client.workflow.start(migrate, { workflowId, taskQueue, args: [{ database: 'app', target: 'head', direction: 'upgrade' }] });
    await eventually('the gate', async () => (await status({ config, workflowId, client: env.client })).status.state === 'awaiting-approval');
    return body(workflowId);
  });
}

test('status shows the gate and how to answer it; the real temporal CLI approves it', async () => {
  await atGate(async (workflowId) => {
    const shown = await status({ config, workflowId, client: env.client });
    expect(shown).toMatchObject({ execution: 'RUNNING', status: { gate: { name: 'go', prompt: 'is marketing ready?' } } });
    const text = formatStatus(shown);
    expect(text).toContain('gate "go" before g1: is marketing ready?');
    expect(text).toContain(`temporal workflow signal --workflow-id ${workflowId} --name approve --input '{"by":"<you>"}'`);

    const cli = findTemporalCli(path.resolve(__dirname, '../..'))!;
    await promisify(execFile)(cli.path, [
      'workflow', 'signal', '--address', env.address, '--workflow-id', workflowId, '--name', 'approve', '--input', '{"by":"ops-oncall","comment":"via temporal CLI"}',
    ]);
    await expect(env.client.workflow.getHandle(workflowId).result()).resolves.toMatchObject({ outcome: 'done', applied: ['g1'] });
    const done = await status({ config, workflowId, client: env.client });
    expect(done.execution).toBe('COMPLETED');
    expect(done.status.approvals).toEqual([expect.objectContaining({ by: 'ops-oncall', comment: 'via temporal CLI', accepted: true })]);
  });
  const { rows } = await db.query(`SELECT column_name FROM information_schema.columns WHERE table_name = 'accounts' ORDER BY 1`);
  expect(rows.map((r) => r.column_name)).toEqual(['id', 'plan']);
});

test('reject from the command layer rolls the change back; a pause that does not fit is refused at once with the reason', async () => {
  await atGate(async (workflowId) => {
    // An Update: the workflow's validator answers before anything enters history.
    await expect(pause({ config, workflowId, client: env.client })).rejects.toMatchObject({
      type: 'ControlRefused',
      message: `${workflowId} refused pause: this migration has no backfill to pause (state awaiting-approval)`,
    });
    expect((await status({ config, workflowId, client: env.client })).status.ignoredSignals).toEqual([]);
    const answer = await reject({ config, workflowId, client: env.client, by: 'pm', reason: 'not this week' });
    expect(answer.answer).toMatchObject({ accepted: true, verb: 'reject', state: 'awaiting-approval' });
    await expect(env.client.workflow.getHandle(workflowId).result()).resolves.toMatchObject({ outcome: 'rolled-back' });
  });
});

test('bad control input is refused before anything is sent', async () => {
  await expect(throttle({ config, workflowId: 'migrate-nowhere', client: env.client })).rejects.toMatchObject({ type: 'InvalidThrottle' });
  await expect(throttle({ config, workflowId: 'migrate-nowhere', client: env.client, batchSize: -5 })).rejects.toMatchObject({
    type: 'InvalidThrottle',
    message: 'throttle batchSize must be a positive number (delayMs and maxRowsPerSecond may be 0); got -5',
  });
  await expect(approve({ config, workflowId: uniqueId('migrate-missing'), client: env.client, by: 'x' })).rejects.toMatchObject({ type: 'MigrationNotFound' });
});

test('approve names the waiting gate by an unambiguous prefix; another gate is refused with the reason; the audit names the full gate', async () => {
  await atGate(async (workflowId) => {
    await expect(approve({ config, workflowId, client: env.client, by: 'ops', gate: 'deploy' })).rejects.toMatchObject({
      type: 'ControlRefused',
      message: `${workflowId} refused approve: this approve names gate "deploy", but the workflow waits at gate "go"`,
    });
    const answer = await approve({ config, workflowId, client: env.client, by: 'ops', gate: 'g' });
    expect(answer.answer).toMatchObject({ accepted: true, verb: 'approve' });
    await env.client.workflow.getHandle(workflowId).result();
    const done = await status({ config, workflowId, client: env.client });
    expect(done.status.approvals).toEqual([expect.objectContaining({ by: 'ops', gate: 'go', accepted: true })]);
    const { rows } = await db.query(`SELECT decision, decided_by, gate FROM phasegate_approval WHERE workflow_id = $1`, [workflowId]);
    expect(rows).toEqual([{ decision: 'approve', decided_by: 'ops', gate: 'go' }]);
  });
});

test('a verb on a finished migration says how it ended and what to start instead', async () => {
  const workflowId = await atGate(async (id) => {
    await approve({ config, workflowId: id, client: env.client, by: 'ops' });
    await env.client.workflow.getHandle(id).result();
    return id;
  });
  await expect(pause({ config, workflowId, client: env.client })).rejects.toMatchObject({
    type: 'MigrationFinished',
    message: expect.stringMatching(new RegExp(`^${workflowId} completed at g1 \\(20\\d\\d-.+Z\\); there is nothing to pause\\. Start a new one with phasegate upgrade --database app$`)),
  });
});

test('status --database finds a migration started with any workflow id (a UI start), running first', async () => {
  const alias = `ui${Date.now().toString(36)}`;
  const uiConfig = testConfig({ databases: { [alias]: { url: db.url, migrationsDirectory: config.databases.app.migrationsDirectory } } });
  const taskQueue = uniqueId('control');
  const { worker } = await createPhasegateWorker({ config: uiConfig, log: silentLog, workflowBundle: bundle, taskQueue, connection: env.nativeConnection });
  const workflowId = uniqueId('started-in-the-ui');
  await worker.runUntil(async () => {
    await env.client.workflow.start(migrate, { workflowId, taskQueue, args: [{ database: alias, target: 'head', direction: 'upgrade' }] });
    const found = await eventually('the search attribute to be indexed', async () => {
      const s = await status({ config: uiConfig, database: alias, client: env.client }).catch(() => null);
      return s?.workflowId === workflowId && s.status.state === 'awaiting-approval' ? s : null;
    });
    expect(found!.status.gate?.name).toBe('go');
    await approve({ config: uiConfig, database: alias, client: env.client, by: 'ops' });
    await env.client.workflow.getHandle(workflowId).result();
    // Finished: the newest one is still the one status shows.
    expect((await status({ config: uiConfig, database: alias, client: env.client })).workflowId).toBe(workflowId);
  });
  // With no worker left to answer the query, status says how it ended instead of waiting.
  await expect(status({ config: uiConfig, database: alias, client: env.client })).rejects.toMatchObject({
    type: 'StatusUnavailable',
    message: expect.stringMatching(new RegExp(`^${workflowId} completed at g1 \\(.+\\); its full status needs a running worker`)),
  });
});

test('after a cancel from the UI, or a terminate, a verb says how the migration ended', async () => {
  for (const end of ['cancel', 'terminate'] as const) {
    const workflowId = await atGate(async (id) => {
      const handle = env.client.workflow.getHandle(id);
      if (end === 'cancel') await handle.cancel();
      else await handle.terminate('operator pressed Terminate');
      await handle.result().catch(() => undefined);
      return id;
    });
    const how = end === 'cancel' ? 'cancelled' : 'terminated';
    await expect(approve({ config, workflowId, client: env.client, by: 'ops' })).rejects.toMatchObject({
      type: 'MigrationFinished',
      message: expect.stringMatching(new RegExp(`^${workflowId} ${how} \\(20\\d\\d-.+Z\\); there is nothing to approve\\. Start a new one with phasegate upgrade`)),
    });
  }
});
