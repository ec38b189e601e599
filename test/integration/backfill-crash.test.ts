/**
 * The backfill against real worker processes: SIGKILLed mid-batch three times and restarted, it
 * still finishes with every row written exactly once (a checksum over the table); and two worker
 * processes share the slices of a `parallelism: 4` backfill.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { BackfillSpec } from '../../lib/revision';
import { backfill } from '../../workflows';
import { connectTestTemporal, createTestDatabase, eventually, spawnWorkerProcess, uniqueId, type TestDatabase, type WorkerProcess } from '../helpers';

let env: TestWorkflowEnvironment;
let db: TestDatabase;

beforeAll(async () => {
  env = await connectTestTemporal();
});
afterAll(() => env?.teardown());

beforeEach(async () => {
  db = await createTestDatabase();
  // About 0.5 ms per row: a 200-row batch is a ~100 ms statement a SIGKILL can land in.
  await db.query(`CREATE FUNCTION slow(x bigint) RETURNS bigint LANGUAGE sql AS $$ SELECT x FROM (SELECT pg_sleep(0.0005)) s $$`);
});
afterEach(() => db.drop());

const ROWS = 12_000;

async function accountsTable(): Promise<void> {
  await db.query(`CREATE TABLE accounts (id bigint PRIMARY KEY, v bigint, n int NOT NULL DEFAULT 0)`);
  await db.query(`INSERT INTO accounts (id) SELECT g FROM generate_series(1, $1::int) g`, [ROWS]);
  await db.query('ANALYZE accounts');
}

async function updatedRows(): Promise<number> {
  const { rows } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM accounts WHERE v IS NOT NULL`);
  return rows[0].n;
}

/**
 * Every row's (id, v, n), hashed in key order: equals the expected value only if no row was skipped
 * (v NULL) and none was rewritten twice (n = 2; `where v IS NULL` makes a repeated batch a no-op).
 */
async function checksums(): Promise<{ actual: string; expected: string }> {
  const { rows } = await db.query<{ actual: string; expected: string }>(`
    SELECT md5(string_agg(id || ':' || coalesce(v::text, '-') || ':' || n, ',' ORDER BY id)) AS actual,
           (SELECT md5(string_agg(g || ':' || g || ':1', ',' ORDER BY g)) FROM generate_series(1, ${ROWS}) g) AS expected
    FROM accounts`);
  return rows[0];
}

const spec: BackfillSpec = { table: 'accounts', set: { v: 'slow(id)', n: 'n + 1' }, where: 'v IS NULL', batchSize: 200, targetBatchMs: 0 };

test('SIGKILL mid-batch three times, restart: the backfill completes and the checksum matches', async () => {
  await accountsTable();
  const taskQueue = uniqueId('backfill-crash');
  const config = { temporal: { address: env.address, taskQueue }, databases: { app: { url: db.url } } };
  let worker: WorkerProcess = spawnWorkerProcess(config);
  const outputs: string[] = [];
  try {
    const handle = await env.client.workflow.start(backfill, {
      workflowId: uniqueId('backfill-app'),
      taskQueue,
      args: [{ database: 'app', revision: 'crash01', spec, sliceCallMs: 5_000 }],
    });
    for (let kill = 1; kill <= 3; kill++) {
      const before = await updatedRows();
      await eventually(`progress before kill ${kill}`, async () => (await updatedRows()) >= before + 1000, 90_000);
      await eventually('a batch statement in flight', async () => {
        const { rows } = await db.query(
          `SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'phasegate backfill' AND state = 'active'`,
        );
        return rows.length > 0;
      }, 10_000);
      await worker.kill('SIGKILL');
      outputs.push(worker.output());
      expect(await updatedRows()).toBeLessThan(ROWS);
      worker = spawnWorkerProcess(config);
    }
    const result = await handle.result();
    expect(result).toMatchObject({ rowsDone: ROWS, rowsUpdated: ROWS, slices: 1 });
    const { actual, expected } = await checksums();
    expect(actual).toBe(expected);
    const { rows } = await db.query(`SELECT count(*)::int AS left FROM phasegate_backfill_progress`);
    expect(rows[0].left).toBe(0);
  } catch (err) {
    throw new Error(`${(err as Error).message}\nworker output:\n${[...outputs, worker.output()].join('\n---\n')}`);
  } finally {
    await worker.kill('SIGTERM');
  }
}, 300_000);

test('two worker processes share the slices of a parallelism: 4 backfill', async () => {
  await accountsTable();
  const taskQueue = uniqueId('backfill-pair');
  const config = { temporal: { address: env.address, taskQueue }, databases: { app: { url: db.url } } };
  const workers = [spawnWorkerProcess(config), spawnWorkerProcess(config)];
  try {
    const handle = await env.client.workflow.start(backfill, {
      workflowId: uniqueId('backfill-app'),
      taskQueue,
      args: [{ database: 'app', revision: 'pair01', spec: { ...spec, parallelism: 4 }, sliceCallMs: 1_000 }],
    });
    const result = await handle.result();
    expect(result).toMatchObject({ rowsDone: ROWS, rowsUpdated: ROWS, slices: 4 });
    const { actual, expected } = await checksums();
    expect(actual).toBe(expected);

    // Which worker ran each slice call: the identity recorded when the activity task started.
    const history = await handle.fetchHistory();
    const scheduled = new Map<string, string>();
    const identities = new Set<string>();
    for (const event of history.events ?? []) {
      const s = event.activityTaskScheduledEventAttributes;
      if (s?.activityType?.name) scheduled.set(String(event.eventId), s.activityType.name);
      const started = event.activityTaskStartedEventAttributes;
      if (started && scheduled.get(String(started.scheduledEventId)) === 'backfillSlice' && started.identity) identities.add(started.identity);
    }
    expect(identities.size).toBe(2);
  } catch (err) {
    throw new Error(`${(err as Error).message}\nworker output:\n${workers.map((w) => w.output()).join('\n---\n')}`);
  } finally {
    await Promise.all(workers.map((w) => w.kill('SIGTERM')));
  }
}, 300_000);
