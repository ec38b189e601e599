/**
 * @pg-matrix: its SQL, catalog or server behaviour can differ by PostgreSQL major; `npm run test:pg15` runs it again on 15.
 * runCheck against a real PostgreSQL, in MockActivityEnvironment: a bounded sample and a capped
 * count on a table with many failing rows, its own statement timeout, cancellation that reaches
 * the backend, and a retry that stops the scan an earlier attempt left running.
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { createActivities } from '../../activities';
import { CHECK_COUNT_CAP, CHECK_SAMPLE_SIZE, type CheckHeartbeat, type RunCheckInput } from '../../activities/checks';
import { DatabasePools } from '../../activities/db';
import type { CheckSpec } from '../../lib/revision';
import { createTestDatabase, eventually, runActivity, silentLog, testConfig, type TestDatabase } from '../helpers';

let db: TestDatabase;
let pools: DatabasePools;
let activities: ReturnType<typeof createActivities>;

const VIOLATING = 50_000;

beforeAll(async () => {
  db = await createTestDatabase();
  const config = testConfig({ databases: { app: { url: db.url } } });
  pools = new DatabasePools(config);
  activities = createActivities({ config, pools, log: silentLog });
  // No autovacuum: its reads must not blur the scan counters a test reads.
  await db.query(`CREATE TABLE accounts (id bigint PRIMARY KEY, org_id bigint) WITH (autovacuum_enabled = false)`);
  await db.query(`INSERT INTO accounts (id, org_id) SELECT g, CASE WHEN g <= 100 THEN 1 END FROM generate_series(1, $1::int + 100) g`, [VIOLATING]);
  await db.query(`CREATE TABLE tiny (id int PRIMARY KEY)`);
  await db.query(`INSERT INTO tiny VALUES (1), (2), (3)`);
});
afterAll(async () => {
  await pools?.close();
  await db?.drop();
});

const newEnv = (attempt = 1) => new MockActivityEnvironment({ attempt }, { logger: new DefaultLogger('ERROR') });

const input = (check: CheckSpec & { timeoutMs?: number }): RunCheckInput => ({ database: 'app', revision: 'r1', check });

/** A check that runs until cancelled: one row, and pg_sleep for far longer than any test waits. */
const sleepingCheck = (name: string, timeoutMs = 120_000) => input({ name, failingRows: 'SELECT id FROM tiny WHERE id = 1 AND pg_sleep(60) IS NOT NULL', timeoutMs });

/** Sessions other than the probe's own that are (or were last) running a pg_sleep check. */
async function sleepingBackends(): Promise<{ pid: number; state: string }[]> {
  const { rows } = await db.query<{ pid: number; state: string }>(
    `SELECT pid, state FROM pg_stat_activity
      WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE '%pg_sleep(60)%'`,
  );
  return rows;
}

async function seqTuplesRead(table: string): Promise<number> {
  const { rows } = await db.query<{ n: number }>(`SELECT coalesce(seq_tup_read, 0)::int AS n FROM pg_stat_user_tables WHERE relname = $1`, [table]);
  return rows[0].n;
}

/** Settles to the value or the error, so a rejection before the test awaits it is not unhandled. */
const settle = <T>(p: Promise<T>): Promise<{ value?: T; error?: Error & Record<string, unknown> }> =>
  p.then(
    (value) => ({ value }),
    (error: Error & Record<string, unknown>) => ({ error }),
  );

test('a check with 50,000 failing rows reads a bounded number of them: a capped count and a sample of 10', async () => {
  const before = await seqTuplesRead('accounts');
  const result = await runActivity(activities.runCheck, input({ name: 'every account has an org', failingRows: 'SELECT id FROM accounts WHERE org_id IS NULL;' }));

  expect(result).toMatchObject({ name: 'every account has an org', passed: false, failingCount: CHECK_COUNT_CAP, failingCountCapped: true });
  expect(result.sample).toHaveLength(CHECK_SAMPLE_SIZE);
  for (const row of result.sample) expect(Object.keys(row)).toEqual(['id']);

  // The scans stopped after the sample and the capped count, far short of the 50,000 failing rows.
  // A backend that exits flushes its scan counters at once (an idle one waits up to 10 s).
  await pools.close();
  const read = await eventually('the check\'s scan counters to reach pg_stat_user_tables', async () => {
    const now = await seqTuplesRead('accounts');
    return now > before ? now - before : null;
  }, 10_000);
  expect(read).toBeGreaterThan(CHECK_COUNT_CAP);
  expect(read).toBeLessThan(3 * CHECK_COUNT_CAP);
});

test('a passing check passes with a count of 0; a few failing rows are counted exactly', async () => {
  const passing = await runActivity(activities.runCheck, input({ name: 'orgs are positive', failingRows: 'SELECT id FROM accounts WHERE org_id <= 0' }));
  expect(passing).toEqual({ name: 'orgs are positive', passed: true, failingCount: 0, failingCountCapped: false, sample: [] });

  const few = await runActivity(activities.runCheck, input({ name: 'no small ids', failingRows: 'SELECT id FROM tiny WHERE id < 3 ORDER BY id' }));
  expect(few).toEqual({ name: 'no small ids', passed: false, failingCount: 2, failingCountCapped: false, sample: [{ id: 1 }, { id: 2 }] });

  // More than the sample, fewer than the cap: the count is exact, the sample stays at 10.
  const some = await runActivity(activities.runCheck, input({ name: 'org 1 is empty', failingRows: 'SELECT id FROM accounts WHERE org_id = 1' }));
  expect(some).toMatchObject({ passed: false, failingCount: 100, failingCountCapped: false });
  expect(some.sample).toHaveLength(CHECK_SAMPLE_SIZE);
});

test('a check that runs past its timeoutMs fails quickly as CheckTimedOut and leaves no scan behind', async () => {
  const t0 = Date.now();
  const { error } = await settle(runActivity(activities.runCheck, sleepingCheck('tiny rows are fast', 300)));
  expect(Date.now() - t0).toBeLessThan(3_000);
  expect(error).toMatchObject({ type: 'CheckTimedOut', nonRetryable: true });
  expect(error?.message).toContain('"tiny rows are fast"');
  expect(error?.message).toContain('300 ms');
  expect(error?.message).toMatch(/index/);
  expect(error?.message).toMatch(/timeoutMs/);

  await eventually('the timed-out scan to leave pg_stat_activity', async () => (await sleepingBackends()).length === 0, 1_000);
});

test('an invalid timeoutMs is refused before anything runs', async () => {
  const check = { name: 'bad timeout', failingRows: 'SELECT 1', timeoutMs: '5s' } as unknown as CheckSpec;
  await expect(runActivity(activities.runCheck, input(check))).rejects.toMatchObject({ type: 'InvalidCheckSpec', nonRetryable: true });
});

test('cancelling the activity cancels the scan in PostgreSQL and rejects with the cancellation; it heartbeats meanwhile', async () => {
  const env = newEnv();
  const beats: CheckHeartbeat[] = [];
  env.on('heartbeat', (d: CheckHeartbeat) => beats.push(d));
  const outcome = settle(env.run(activities.runCheck, sleepingCheck('cancel me')));

  await eventually('the check\'s scan to run', async () => (await sleepingBackends()).some((b) => b.state === 'active'), 10_000);
  // One statement runs all along; heartbeats keep flowing through it.
  await eventually('three heartbeats during one statement', async () => beats.length >= 3, 8_000);
  expect(beats[beats.length - 1]).toMatchObject({ revision: 'r1', check: 'cancel me' });
  expect(beats[beats.length - 1].runningMs).toBeGreaterThanOrEqual(3_000);

  const cancelledAt = Date.now();
  env.cancel();
  const { value, error } = await outcome;
  expect(value).toBeUndefined();
  expect(error).toMatchObject({ name: 'CancelledFailure' });
  expect(Date.now() - cancelledAt).toBeLessThan(2_000);
  await eventually('the cancelled scan to leave pg_stat_activity', async () => (await sleepingBackends()).length === 0, 2_000);
});

test('a retry stops the scan its earlier attempt left running before it starts its own', async () => {
  const first = settle(newEnv(1).run(activities.runCheck, sleepingCheck('retried')));
  await eventually('the first attempt\'s scan to run', async () => (await sleepingBackends()).some((b) => b.state === 'active'), 10_000);

  // As if the first attempt timed out in Temporal while its worker kept scanning.
  const second = await newEnv(2).run(activities.runCheck, input({ name: 'retried', failingRows: 'SELECT id FROM tiny WHERE id > 3' }));
  expect(second).toMatchObject({ passed: true, failingCount: 0 });
  expect((await sleepingBackends()).filter((b) => b.state === 'active')).toEqual([]);

  const { error } = await first;
  expect(error).toMatchObject({ type: 'CheckCancelled' });
});
