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
import { abandonUpdate, backfillStatusQuery, pauseUpdate, resumeUpdate, statusQuery, type BackfillProgress, type MigrateStatus } from '../../workflows/messages';
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

// ── backfill.window: a backfill paced by the maintenance window ──────────────────────────────

/** r1 adds `plan`; r2 has no DDL (no lock: it never waits itself) and backfills `plan`, paced by r2's window. */
function pacedBackfillRevisions(window: unknown, backfill: Record<string, unknown>): string {
  return writeMigrations({
    'r1_add_plan.js': `module.exports = {
      id: 'r1', parent: null, message: 'add plan',
      upgrade(op) { op.addColumn('accounts', 'plan', 'text'); },
      downgrade(op) { op.dropColumn('accounts', 'plan'); },
    };`,
    'r2_fill_plan.js': `module.exports = {
      id: 'r2', parent: 'r1', message: 'fill plan', window: ${JSON.stringify(window)},
      backfill: ${JSON.stringify({ table: 'accounts', set: { plan: "'free'" }, where: 'plan IS NULL', targetBatchMs: 0, sliceCallMs: 1000, ...backfill })},
      upgrade() {},
      downgrade() {},
    };`,
  });
}

const seedAccounts = (rows: number) => db.query(`INSERT INTO accounts SELECT g, 'user' || g || '@example.com' FROM generate_series(1, ${rows}) g`);
const filled = async () => Number((await db.query('SELECT count(*) AS n FROM accounts WHERE plan IS NOT NULL')).rows[0].n);

/** The backfill's own progress (live; the migration's copy is refreshed at most once a minute), once `accept` says so. */
const untilBackfill = (handle: WorkflowHandle<typeof migrate>, what: string, accept: (b: BackfillProgress) => boolean, timeoutMs?: number) =>
  eventually(
    what,
    async () => {
      const id = (await handle.query(statusQuery)).backfillWorkflowId;
      if (!id) return undefined;
      const b = await env.client.workflow.getHandle(id).query(backfillStatusQuery);
      return accept(b) ? b : undefined;
    },
    timeoutMs,
  );

/** [scheduled, closed] workflow times of every backfillSlice call of the migration's backfill. */
async function sliceCalls(handle: WorkflowHandle<typeof migrate>): Promise<Array<[number, number]>> {
  const id = (await handle.query(statusQuery)).backfillWorkflowId!;
  const events = (await env.client.workflow.getHandle(id).fetchHistory()).events ?? [];
  const at = (e: (typeof events)[number]) => Number(e.eventTime?.seconds ?? 0) * 1000 + Math.round((e.eventTime?.nanos ?? 0) / 1e6);
  const scheduled = new Map<string, number>();
  const calls: Array<[number, number]> = [];
  for (const e of events) {
    if (e.activityTaskScheduledEventAttributes?.activityType?.name === 'backfillSlice') scheduled.set(String(e.eventId), at(e));
    const closed = e.activityTaskCompletedEventAttributes ?? e.activityTaskFailedEventAttributes ?? e.activityTaskCanceledEventAttributes ?? e.activityTaskTimedOutEventAttributes;
    const from = closed && scheduled.get(String(closed.scheduledEventId));
    if (from !== undefined && from !== null && closed) calls.push([from, at(e)]);
  }
  return calls;
}

test("a backfill with window { outside: 'wait' } waits for the window (skipped), stops after its batch when it closes, and goes on at the next opening", async () => {
  await seedAccounts(2000);
  const { spec, opensAt } = await windowAhead(3);
  const closesAt = opensAt + HOUR;
  // 100 rows/s inside: 20 s of real time for 2,000 rows, so the window can close mid-way.
  const dir = pacedBackfillRevisions(spec, { batchSize: 50, window: { outside: 'wait', maxRowsPerSecond: 100 } });
  await withMigration(dir, async (handle) => {
    // r1 ran at once (no window); r2's backfill waits for the window, with nothing done, and the
    // migration's status says so.
    const waiting = await untilBackfill(handle, 'the backfill to wait for its window', (b) => /^waiting for window /.test(b.waiting ?? ''));
    expect(waiting.waiting).toMatch(/opens in [23] h \d+ m$/);
    expect(waiting.window).toMatchObject({ cron: spec.cron, timezone: 'Asia/Tokyo', open: false, opensAt, closesAt, outside: 'wait', insideMaxRowsPerSecond: 100 });
    expect(waiting.rowsDone).toBe(0);
    expect(waiting.rowsPerSecond).toBe(0);
    const shown = await eventually('the migration to show the wait', async () => {
      const st = await handle.query(statusQuery);
      return /^waiting for window /.test(st.backfill?.waiting ?? '') ? st : undefined;
    });
    expect(shown.state).toBe('backfilling');
    expect(await versions()).toEqual(['r1']);
    expect(await filled()).toBe(0);
    expect(await sliceCalls(handle)).toEqual([]);

    // Skip to the opening: the backfill runs inside the window at the window's pace.
    await env.sleep(opensAt - (await env.currentTimeMs()) + 1000);
    const running = await untilBackfill(handle, 'the backfill to run inside the window', (b) => b.rowsDone > 0);
    expect(running.window).toMatchObject({ open: true });
    expect(running.waiting ?? null).toBeNull();
    expect(running.maxRowsPerSecond).toBe(100);

    // Pause (no activity runs, so the clock can move), skip to 5 s before the closing, resume:
    // the window closes while slices run.
    await handle.executeUpdate(pauseUpdate.name, { args: [{}] });
    await untilBackfill(handle, 'the backfill to pause', (b) => b.state === 'paused');
    await env.sleep(closesAt - (await env.currentTimeMs()) - 5000);
    await handle.executeUpdate(resumeUpdate.name, { args: [{}] });
    await untilBackfill(handle, 'the backfill to resume', (b) => b.slices.some((sl) => sl.state === 'running'));
    const stopped = await untilBackfill(
      handle,
      'the backfill to stop at the closing',
      (b) => /^waiting for window /.test(b.waiting ?? '') && b.slices.every((sl) => sl.state !== 'running'),
      30_000,
    );
    expect(stopped.window).toMatchObject({ open: false, opensAt: opensAt + 24 * HOUR });
    expect(stopped.rowsDone).toBeLessThan(2000);
    const rowsAtClose = await filled();
    expect(rowsAtClose).toBe(stopped.rowsUpdated);
    // Stopped after the batch it was in: nothing moves while it waits.
    await new Promise((r) => setTimeout(r, 1500));
    expect(await filled()).toBe(rowsAtClose);
    // Every call closed within a batch (and its pacing pause) after the closing.
    for (const [, end] of await sliceCalls(handle)) expect(end).toBeLessThan(closesAt + 2000);

    // Awaiting the result skips to the next day's opening: the rest is done from the checkpoint.
    const result = await handle.result();
    expect(result.outcome).toBe('done');
    const calls = await sliceCalls(handle);
    for (const [start] of calls) {
      const inFirst = start >= opensAt && start < closesAt;
      const inSecond = start >= opensAt + 24 * HOUR && start < closesAt + 24 * HOUR;
      expect(inFirst || inSecond).toBe(true);
    }
    expect(calls.some(([start]) => start >= opensAt + 24 * HOUR)).toBe(true);
  });
  expect(await filled()).toBe(2000);
  expect(await versions()).toEqual(['r2']);
}, 120_000);

test("a backfill with window { maxRowsPerSecond } runs outside windows at its own pace and inside at the window's", async () => {
  await seedAccounts(3000);
  const { spec, opensAt } = await windowAhead(3);
  const dir = pacedBackfillRevisions(spec, { batchSize: 50, maxRowsPerSecond: 100, window: { maxRowsPerSecond: null } });
  await withMigration(dir, async (handle) => {
    const outside = await untilBackfill(handle, 'the backfill to run outside the window', (b) => b.rowsDone > 0);
    expect(outside.waiting ?? null).toBeNull();
    expect(outside.window).toMatchObject({ open: false, opensAt, outside: 'run', insideMaxRowsPerSecond: null });
    expect(outside.maxRowsPerSecond).toBe(100);
    // Pause, skip into the window, resume: no limit inside, so the rest is done at once.
    await handle.executeUpdate(pauseUpdate.name, { args: [{}] });
    await untilBackfill(handle, 'the backfill to pause', (b) => b.state === 'paused');
    const before = await filled();
    expect(before).toBeLessThan(3000);
    await env.sleep(opensAt - (await env.currentTimeMs()) + 1000);
    const inside = await untilBackfill(handle, 'the window to open', (b) => b.window?.open === true);
    expect(inside.maxRowsPerSecond).toBeNull();
    await handle.executeUpdate(resumeUpdate.name, { args: [{}] });
    const started = Date.now();
    expect((await handle.result()).outcome).toBe('done');
    // At 100 rows/s the rest would take (3000 - before) / 100 s; unlimited it takes a fraction.
    expect(Date.now() - started).toBeLessThan(((3000 - before) / 100) * 1000 * 0.5);
  });
  expect(await filled()).toBe(3000);
}, 120_000);
