/**
 * Maintenance windows and soaks on Temporal's time-skipping test server (test/support/time-skipping.ts)
 * and real PostgreSQL: a step that takes ACCESS EXCLUSIVE waits in `waiting-for-window` until the
 * window opens hours later (skipped, not waited), then runs inside it; a CONCURRENTLY step never
 * waits; abandon while waiting changes nothing; a 24-hour soak ends by its timer.
 */
import type { WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import type { PhasegateConfigInput } from '../../lib/config';
import { migrate } from '../../workflows';
import { abandonUpdate, statusQuery, type MigrateStatus } from '../../workflows/messages';
import { PhasegateState } from '../../workflows/search-attributes';
import { createPhasegateWorker } from '../../workers/worker';
import { createTestDatabase, eventually, silentLog, testConfig, uniqueId, writeMigrations, type TestDatabase } from '../helpers';
import { startTimeSkipping } from '../support/time-skipping';

let env: TestWorkflowEnvironment;
let bundle: WorkflowBundleWithSourceMap;
let db: TestDatabase;

beforeAll(async () => {
  ({ env, bundle } = await startTimeSkipping());
}, 300_000);
afterAll(() => env?.teardown());
beforeEach(async () => {
  db = await createTestDatabase();
  await db.query('CREATE TABLE accounts (id bigint PRIMARY KEY, email text NOT NULL)');
});
afterEach(() => db.drop());

const HOUR = 3_600_000;

/**
 * A daily one-hour window in Asia/Tokyo (UTC+9 all year, no DST) opening at the first full hour
 * at least `hoursAhead` after the server's clock (which earlier tests of this file moved on).
 */
async function windowAhead(hoursAhead: number): Promise<{ spec: { cron: string; duration: string; timezone: string }; opensAt: number }> {
  const now = await env.currentTimeMs();
  const opensAt = Math.ceil((now + hoursAhead * HOUR) / HOUR) * HOUR;
  const tokyoHour = (new Date(opensAt).getUTCHours() + 9) % 24;
  return { spec: { cron: `0 ${tokyoHour} * * *`, duration: '1h', timezone: 'Asia/Tokyo' }, opensAt };
}

function addColumnRevision(window: unknown): string {
  return writeMigrations({
    'r1_add_plan.js': `module.exports = {
      id: 'r1', parent: null, message: 'add plan',
      ${window === undefined ? '' : `window: ${JSON.stringify(window)},`}
      upgrade(op) { op.addColumn('accounts', 'plan', 'text'); },
      downgrade(op) { op.dropColumn('accounts', 'plan'); },
    };`,
  });
}

async function withMigration<T>(dir: string, body: (handle: WorkflowHandle<typeof migrate>) => Promise<T>, database: Partial<NonNullable<PhasegateConfigInput['databases']>[string]> = {}): Promise<T> {
  const config = testConfig({ databases: { app: { url: db.url, migrationsDirectory: dir, ...database } } });
  const taskQueue = uniqueId('window');
  const { worker } = await createPhasegateWorker({ config, log: silentLog, workflowBundle: bundle, taskQueue, connection: env.nativeConnection });
  return worker.runUntil(async () => {
    const handle = await env.client.workflow.start(migrate, { workflowId: uniqueId('migrate-app'), taskQueue, args: [{ database: 'app', target: 'head', direction: 'upgrade' }] });
    try {
      return await body(handle);
    } finally {
      // A workflow left running (a failed assertion) would get workflow tasks nobody polls once its
      // timer fires, and the test server stops skipping time for the rest of the file.
      if ((await handle.describe()).status.name === 'RUNNING') await handle.terminate('test over');
    }
  });
}

const untilState = (handle: WorkflowHandle<typeof migrate>, state: MigrateStatus['state']) =>
  eventually(`state ${state}`, async () => {
    const s = await handle.query(statusQuery);
    return s.state === state ? s : undefined;
  });

/** The version table's rows; none while the migration has not created it yet. */
const versions = async () => {
  if ((await db.query("SELECT to_regclass('phasegate_version') IS NULL AS missing")).rows[0].missing) return [];
  return (await db.query<{ version_num: string }>('SELECT version_num FROM phasegate_version')).rows.map((r) => r.version_num);
};
const hasPlanColumn = async () =>
  (await db.query("SELECT 1 FROM information_schema.columns WHERE table_name = 'accounts' AND column_name = 'plan'")).rowCount === 1;

/** When (workflow time) each applyRevision activity was scheduled. */
async function applyTimes(handle: WorkflowHandle<typeof migrate>): Promise<number[]> {
  const times: number[] = [];
  for (const event of (await handle.fetchHistory()).events ?? []) {
    if (event.activityTaskScheduledEventAttributes?.activityType?.name === 'applyRevision') {
      times.push(Number(event.eventTime?.seconds ?? 0) * 1000 + Math.round((event.eventTime?.nanos ?? 0) / 1e6));
    }
  }
  return times;
}

async function timerMs(handle: WorkflowHandle<typeof migrate>): Promise<number[]> {
  const timers: number[] = [];
  for (const event of (await handle.fetchHistory()).events ?? []) {
    const fire = event.timerStartedEventAttributes?.startToFireTimeout;
    if (fire) timers.push(Number(fire.seconds ?? 0) * 1000 + Math.round((fire.nanos ?? 0) / 1e6));
  }
  return timers;
}

test('an ACCESS EXCLUSIVE step waits for its window (hours, skipped), then runs inside it', async () => {
  const { spec, opensAt } = await windowAhead(3);
  await withMigration(addColumnRevision(spec), async (handle) => {
    const waiting = await untilState(handle, 'waiting-for-window');
    expect(waiting.window).toEqual({
      cron: spec.cron,
      timezone: 'Asia/Tokyo',
      duration: '1h',
      opensAt: new Date(opensAt).toISOString(),
      closesAt: new Date(opensAt + HOUR).toISOString(),
      revision: 'r1',
    });
    expect(waiting.waiting).toMatch(new RegExp(`^waiting for window ${spec.cron.replace(/\*/g, '\\*')} \\(Asia/Tokyo\\), opens in [23] h \\d+ m$`));
    expect(waiting.steps.map((s) => s.state)).toEqual(['waiting-for-window']);
    expect((await handle.describe()).typedSearchAttributes.get(PhasegateState)).toBe('waiting-for-window');
    // Nothing ran: no version row, no column, no applyRevision scheduled.
    expect(await versions()).toEqual([]);
    expect(await hasPlanColumn()).toBe(false);
    expect(await applyTimes(handle)).toEqual([]);

    // Awaiting the result lets the test server skip the timer.
    const result = await handle.result();
    expect(result.outcome).toBe('done');
    const [appliedAt] = await applyTimes(handle);
    expect(appliedAt).toBeGreaterThanOrEqual(opensAt);
    expect(appliedAt).toBeLessThan(opensAt + HOUR);
    const done = await handle.query(statusQuery);
    expect(done.window).toBeNull();
    expect(done.steps.map((s) => s.state)).toEqual(['applied']);
  });
  expect(await versions()).toEqual(['r1']);
  expect(await hasPlanColumn()).toBe(true);
});

test('a step with only CREATE INDEX CONCURRENTLY (SHARE UPDATE EXCLUSIVE) does not wait for the window', async () => {
  const { spec } = await windowAhead(3);
  const dir = writeMigrations({
    'r1_index.js': `module.exports = {
      id: 'r1', parent: null, message: 'index email', transactional: false, window: ${JSON.stringify(spec)},
      upgrade(op) { op.createIndex('accounts_email', 'accounts', ['email'], { concurrently: true }); },
      downgrade(op) { op.dropIndex('accounts_email', { concurrently: true }); },
    };`,
  });
  const before = await env.currentTimeMs();
  await withMigration(dir, async (handle) => {
    expect((await handle.result()).outcome).toBe('done');
    expect(await timerMs(handle)).toEqual([]);
    const [appliedAt] = await applyTimes(handle);
    // Started at once: well before the window (3+ hours away).
    expect(appliedAt - before).toBeLessThan(HOUR);
  });
  expect(await versions()).toEqual(['r1']);
  expect((await db.query("SELECT 1 FROM pg_indexes WHERE indexname = 'accounts_email'")).rowCount).toBe(1);
});

test('abandon while waiting for the config default window leaves the database unchanged', async () => {
  const { spec } = await windowAhead(5);
  // No window in the revision: the database's config default applies.
  await withMigration(
    addColumnRevision(undefined),
    async (handle) => {
      const waiting = await untilState(handle, 'waiting-for-window');
      expect(waiting.window).toMatchObject({ cron: spec.cron, revision: 'r1' });
      const answer = await handle.executeUpdate(abandonUpdate, { args: [{ by: 'alice', reason: 'not this week' }] });
      expect(answer.state).toBe('waiting-for-window');
      const result = await handle.result();
      expect(result.outcome).toBe('abandoned');
      expect(await applyTimes(handle)).toEqual([]);
    },
    { window: spec },
  );
  expect(await versions()).toEqual([]);
  expect(await hasPlanColumn()).toBe(false);
});

test("a revision's window: false opts out of the config default", async () => {
  const { spec } = await windowAhead(5);
  await withMigration(
    addColumnRevision(false),
    async (handle) => {
      expect((await handle.result()).outcome).toBe('done');
      expect(await timerMs(handle)).toEqual([]);
    },
    { window: spec },
  );
  expect(await versions()).toEqual(['r1']);
});

test('a 24-hour soak ends by its timer, without skipSoak', async () => {
  const dir = writeMigrations({
    'r1_add_plan.js': `module.exports = {
      id: 'r1', parent: null, message: 'add plan', soak: '24 hours',
      upgrade(op) { op.addColumn('accounts', 'plan', 'text'); },
      downgrade(op) { op.dropColumn('accounts', 'plan'); },
    };`,
    'r2_index_plan.js': `module.exports = {
      id: 'r2', parent: 'r1', message: 'index plan',
      upgrade(op) { op.sql('CREATE INDEX accounts_plan ON accounts (plan)'); },
      downgrade(op) { op.sql('DROP INDEX accounts_plan'); },
    };`,
  });
  await withMigration(dir, async (handle) => {
    const soaking = await untilState(handle, 'soaking');
    expect(Date.parse(soaking.soak!.until) - Date.parse(soaking.soak!.since)).toBe(24 * HOUR);
    expect(await versions()).toEqual(['r1']);
    const result = await handle.result();
    expect(result.applied).toEqual(['r1', 'r2']);
    expect(result.outcome).toBe('done');
    expect((await timerMs(handle)).some((ms) => ms > 23 * HOUR && ms <= 24 * HOUR)).toBe(true);
    const [, r2At] = await applyTimes(handle);
    expect(r2At - Date.parse(soaking.soak!.since)).toBeGreaterThanOrEqual(24 * HOUR);
    expect(approvals(await handle.query(statusQuery))).toEqual([]);
  });
  expect(await versions()).toEqual(['r2']);
});

const approvals = (s: MigrateStatus) => s.approvals.map((a) => a.decision);
