/**
 * Soak periods (revision `soak`) in `migrate`, on the real dev server and real PostgreSQL: the next
 * step (and its gate) stays closed for the soak as a durable timer; an approval sent while soaking
 * is refused with when the gate opens; `skipSoak` ends it early only for an approver, audited;
 * abandon while soaking leaves the database as it is.
 */
import type { WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import type { PhasegateConfigInput } from '../../lib/config';
import { migrate } from '../../workflows';
import { abandonUpdate, approveUpdate, skipSoakUpdate, statusQuery, type MigrateStatus } from '../../workflows/messages';
import { createPhasegateWorker } from '../../workers/worker';
import { bundleWorkflows, connectTestTemporal, createTestDatabase, eventually, silentLog, testConfig, uniqueId, writeMigrations, type TestDatabase } from '../helpers';

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
});
afterEach(() => db.drop());

/** r1 adds a column and soaks; r2 (gated when `gated`) adds an index on it. */
function soaking(soak: string, gated: boolean): string {
  return writeMigrations({
    'r1_add_plan.js': `module.exports = {
      id: 'r1', parent: null, message: 'add plan', soak: ${JSON.stringify(soak)},
      upgrade(op) { op.addColumn('accounts', 'plan', 'text'); },
      downgrade(op) { op.dropColumn('accounts', 'plan'); },
    };`,
    'r2_index_plan.js': `module.exports = {
      id: 'r2', parent: 'r1', message: 'index plan',
      ${gated ? "gate: { name: 'contract', prompt: 'the app reads plan' }," : ''}
      upgrade(op) { op.sql('CREATE INDEX accounts_plan ON accounts (plan)'); },
      downgrade(op) { op.sql('DROP INDEX accounts_plan'); },
    };`,
  });
}

async function withMigration<T>(dir: string, body: (handle: WorkflowHandle<typeof migrate>) => Promise<T>, databases?: PhasegateConfigInput['databases']): Promise<T> {
  const config = testConfig({ databases: databases ?? { app: { url: db.url, migrationsDirectory: dir } } });
  const taskQueue = uniqueId('soak');
  const { worker } = await createPhasegateWorker({ config, log: silentLog, workflowBundle: bundle, taskQueue, connection: env.nativeConnection });
  return worker.runUntil(async () => {
    const handle = await env.client.workflow.start(migrate, { workflowId: uniqueId('migrate-app'), taskQueue, args: [{ database: 'app', target: 'head', direction: 'upgrade' }] });
    return body(handle);
  });
}

const untilState = (handle: WorkflowHandle<typeof migrate>, state: MigrateStatus['state']) =>
  eventually(`state ${state}`, async () => {
    const s = await handle.query(statusQuery);
    return s.state === state ? s : undefined;
  });

const versions = async () => (await db.query<{ version_num: string }>('SELECT version_num FROM phasegate_version')).rows.map((r) => r.version_num);

async function refusal(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    return String((err as { cause?: { message?: string } }).cause?.message ?? (err as Error).message);
  }
  throw new Error('expected the update to be refused');
}

test('a soak holds the next gate closed; approve is refused with when it opens; skipSoak only by an approver, audited', async () => {
  const dir = soaking('1 hour', true);
  await withMigration(
    dir,
    async (handle) => {
      const soak = await untilState(handle, 'soaking');
      expect(soak.soak).toMatchObject({ revision: 'r1', next: 'r2', nextGate: 'contract' });
      expect(Date.parse(soak.soak!.until) - Date.parse(soak.soak!.since)).toBe(3_600_000);
      expect(soak.gate).toBeNull();
      expect(await versions()).toEqual(['r1']);

      expect(await refusal(handle.executeUpdate(approveUpdate, { args: [{ by: 'alice' }] }))).toMatch(
        new RegExp(`soaks after r1 until ${soak.soak!.until.replace(/[.]/g, '\\.')}; gate "contract" opens then`),
      );
      expect(await refusal(handle.executeUpdate(skipSoakUpdate, { args: [{ by: 'mallory' }] }))).toContain('"mallory" may not end this soak (approvers: alice)');
      expect(await refusal(handle.executeUpdate(skipSoakUpdate, { args: [{ by: 'alice', extra: 1 } as never] }))).toContain('unknown field(s) "extra"');

      const answer = await handle.executeUpdate(skipSoakUpdate, { args: [{ by: 'alice', comment: 'metrics are flat' }] });
      expect(answer.message).toBe('skipSoak accepted in state soaking');
      const gated = await untilState(handle, 'awaiting-approval');
      expect(gated.soak).toBeNull();
      expect(gated.gate).toMatchObject({ name: 'contract', revision: 'r2' });
      await handle.executeUpdate(approveUpdate, { args: [{ by: 'alice' }] });
      expect((await handle.result()).outcome).toBe('done');
    },
    { app: { url: db.url, migrationsDirectory: dir, approvers: ['alice'] } },
  );
  expect(await versions()).toEqual(['r2']);
  const audit = await db.query('SELECT decision, decided_by, gate, revision, comment, accepted FROM phasegate_approval ORDER BY id');
  expect(audit.rows).toEqual([
    // Refused Updates never enter history (their validator refused them), so only the accepted ones are audited.
    { decision: 'skipSoak', decided_by: 'alice', gate: 'contract', revision: 'r1', comment: 'metrics are flat', accepted: true },
    { decision: 'approve', decided_by: 'alice', gate: 'contract', revision: 'r2', comment: null, accepted: true },
  ]);
});

test('without a gate, the next step starts when the soak timer fires (a durable timer in history)', async () => {
  await withMigration(soaking('3 seconds', false), async (handle) => {
    const soak = await untilState(handle, 'soaking');
    expect((await handle.query(statusQuery)).steps.map((s) => s.state)).toEqual(['applied', 'pending']);
    const result = await handle.result();
    expect(result.applied).toEqual(['r1', 'r2']);
    // The workflow waited on a timer of the soak's length, started when r1 was done.
    const timers: number[] = [];
    for (const event of (await handle.fetchHistory()).events ?? []) {
      const fire = event.timerStartedEventAttributes?.startToFireTimeout;
      if (fire) timers.push(Number(fire.seconds ?? 0) * 1000 + Math.round((fire.nanos ?? 0) / 1e6));
    }
    expect(timers.some((ms) => ms > 2000 && ms <= 3000)).toBe(true);
    expect(Date.parse(soak.soak!.until) - Date.parse(soak.soak!.since)).toBe(3000);
  });
  expect(await versions()).toEqual(['r2']);
});

test('abandon while soaking ends the migration and leaves the database at the soaking revision', async () => {
  await withMigration(soaking('1 hour', true), async (handle) => {
    await untilState(handle, 'soaking');
    await handle.executeUpdate(abandonUpdate, { args: [{ by: 'alice', reason: 'keep r1 for now' }] });
    expect((await handle.result()).outcome).toBe('abandoned');
  });
  expect(await versions()).toEqual(['r1']);
});

test('a soak that is not a duration is refused when the plan is built, naming the file', async () => {
  const { buildPlan } = await import('../../lib/plan');
  const { loadRevisionDirectory } = await import('../../lib/revision-files');
  const revisions = loadRevisionDirectory(soaking('a while', true));
  await expect(buildPlan({ database: 'app', revisions, currentHeads: [], target: 'head', direction: 'upgrade' })).rejects.toThrow(/soak "a while" is not a duration/);
});
