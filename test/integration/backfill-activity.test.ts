/**
 * @pg-matrix: its SQL, catalog or server behaviour can differ by PostgreSQL major; `npm run test:pg15` runs it again on 15.
 * The backfill activities against a real PostgreSQL, in MockActivityEnvironment: resume from a
 * heartbeat and from the checkpoint row, cancellation mid-batch, a killed connection mid-batch,
 * uuid / text / composite keys with parallel slices, and a table that has no usable key.
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import pg from 'pg';
import { createActivities } from '../../activities';
import type { BackfillPlan, BackfillSliceInput, BackfillSliceResult, SliceHeartbeat } from '../../activities/backfill';
import { resolveBackfillKey } from '../../activities/backfill';
import { DatabasePools } from '../../activities/db';
import type { BackfillSpec } from '../../lib/revision';
import { createTestDatabase, eventually, runActivity, silentLog, testConfig, uniqueId, type TestDatabase } from '../helpers';

let db: TestDatabase;
let pools: DatabasePools;
let activities: ReturnType<typeof createActivities>;

beforeAll(async () => {
  db = await createTestDatabase();
  const config = testConfig({ databases: { app: { url: db.url } } });
  pools = new DatabasePools(config);
  activities = createActivities({ config, pools, log: silentLog });
  // Slow rows make "mid-batch" a window a test can hit: about 2 ms per row.
  await db.query(`CREATE FUNCTION slow(x bigint) RETURNS bigint LANGUAGE sql AS $$ SELECT x FROM (SELECT pg_sleep(0.002)) s $$`);
});
afterAll(async () => {
  await pools?.close();
  await db?.drop();
});

const newEnv = (heartbeatDetails?: SliceHeartbeat) =>
  new MockActivityEnvironment(heartbeatDetails ? { heartbeatDetails } : {}, { logger: new DefaultLogger('ERROR') });

async function intTable(name: string, rows: number): Promise<void> {
  await db.query(`CREATE TABLE ${name} (id bigint PRIMARY KEY, v bigint, n int NOT NULL DEFAULT 0)`);
  await db.query(`INSERT INTO ${name} (id) SELECT g FROM generate_series(1, $1::int) g`, [rows]);
}

function sliceInput(plan: BackfillPlan, backfillId: string, spec: BackfillSpec, slice: number, extra: Partial<BackfillSliceInput> = {}): BackfillSliceInput {
  return {
    database: 'app',
    backfillId,
    spec,
    key: plan.key,
    slice,
    range: plan.slices[slice],
    lastKey: null,
    rowsDone: 0,
    rowsUpdated: 0,
    pacing: plan.pacing,
    epoch: 0,
    maxCallMs: 10_000,
    ...extra,
  };
}

/** Calls a slice until it reports done, the way the workflow does. */
async function runToEnd(input: BackfillSliceInput): Promise<BackfillSliceResult> {
  for (let calls = 0; calls < 1000; calls++) {
    const result = await runActivity(activities.backfillSlice, input);
    if (result.done) return result;
    input = { ...input, lastKey: result.lastKey, rowsDone: result.rowsDone, rowsUpdated: result.rowsUpdated, pacing: { ...input.pacing, batchSize: result.batchSize } };
  }
  throw new Error('slice never finished');
}

async function checkpoint(backfillId: string, slice = 0) {
  const { rows } = await db.query(`SELECT last_key, rows_done::int, rows_updated::int, done, stop_epoch FROM phasegate_backfill_progress WHERE backfill_id = $1 AND slice = $2`, [backfillId, slice]);
  return rows[0];
}

/** Sessions of the backfill still inside a statement or a transaction. */
async function busyBackfillSessions(): Promise<string[]> {
  const { rows } = await db.query<{ state: string }>(
    `SELECT state FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
       AND application_name LIKE 'phasegate%' AND state IN ('active', 'idle in transaction', 'idle in transaction (aborted)')
       AND query NOT LIKE '%pg_stat_activity%'`,
  );
  return rows.map((r) => r.state);
}

test('prepare then slices walk the whole table in batches; the checkpoint ends at the last key', async () => {
  await intTable('walk', 2500);
  const spec: BackfillSpec = { table: 'walk', set: { v: 'id * 2', n: 'n + 1' }, where: 'v IS NULL', batchSize: 300 };
  const backfillId = uniqueId('walk');
  const plan = await runActivity(activities.prepareBackfill, { database: 'app', backfillId, spec });
  expect(plan).toMatchObject({ table: 'walk', key: { columns: ['id'], kinds: ['integer'], source: 'primary key walk_pkey (id)' }, slices: [{ from: null, to: null }], warnings: [] });
  expect(plan.estimatedTotal).toBe(2500);

  const result = await runToEnd(sliceInput(plan, backfillId, spec, 0));
  expect(result).toMatchObject({ done: true, lastKey: ['2500'], rowsDone: 2500, rowsUpdated: 2500 });
  const { rows } = await db.query(`SELECT count(*)::int AS wrong FROM walk WHERE v IS DISTINCT FROM id * 2 OR n <> 1`);
  expect(rows[0].wrong).toBe(0);
  expect(await checkpoint(backfillId)).toMatchObject({ last_key: ['2500'], rows_done: 2500, done: true });

  await runActivity(activities.finishBackfill, { database: 'app', backfillId });
  expect(await checkpoint(backfillId)).toBeUndefined();
});

test('a retried activity resumes from heartbeatDetails when no checkpoint row exists', async () => {
  await intTable('hb', 1000);
  const spec: BackfillSpec = { table: 'hb', set: { v: 'id' }, where: 'v IS NULL', batchSize: 200 };
  const backfillId = uniqueId('hb');
  const plan = await runActivity(activities.prepareBackfill, { database: 'app', backfillId, spec });
  await db.query('DELETE FROM phasegate_backfill_progress WHERE backfill_id = $1', [backfillId]);

  // As if a first attempt committed up to id 600 and heartbeated that before its worker died.
  const env = newEnv({ lastKey: ['600'], rowsDone: 600, rowsUpdated: 600, batchSize: 200 });
  const result = (await env.run(activities.backfillSlice, sliceInput(plan, backfillId, spec, 0))) as BackfillSliceResult;
  expect(result).toMatchObject({ resumedFrom: 'heartbeat', done: true, rowsDone: 1000, lastKey: ['1000'] });
  const { rows } = await db.query(`SELECT count(*) FILTER (WHERE v IS NULL)::int AS untouched, min(id) FILTER (WHERE v IS NOT NULL)::int AS first FROM hb`);
  // Rows up to the heartbeat's key were not visited again: the walk started after it.
  expect(rows[0]).toEqual({ untouched: 600, first: 601 });
});

test('the checkpoint row wins over a stale heartbeat (a heartbeat lost with the worker)', async () => {
  await intTable('stale', 1000);
  const spec: BackfillSpec = { table: 'stale', set: { n: 'n + 1' }, where: 'n = 0', batchSize: 100 };
  const backfillId = uniqueId('stale');
  const plan = await runActivity(activities.prepareBackfill, { database: 'app', backfillId, spec });
  // One committed batch (a call always commits at least one), then a second attempt whose
  // heartbeat details predate that batch.
  const first = await runActivity(activities.backfillSlice, sliceInput(plan, backfillId, spec, 0, { maxCallMs: 0 }));
  expect(first).toMatchObject({ done: false, batches: 1, rowsDone: 100, lastKey: ['100'] });
  expect(await checkpoint(backfillId)).toMatchObject({ rows_done: 100, last_key: ['100'] });
  const env = newEnv({ lastKey: null, rowsDone: 0, rowsUpdated: 0, batchSize: 100 });
  const result = (await env.run(activities.backfillSlice, sliceInput(plan, backfillId, spec, 0))) as BackfillSliceResult;
  expect(result).toMatchObject({ resumedFrom: 'checkpoint', done: true, rowsDone: 1000, rowsUpdated: 1000 });
  const { rows } = await db.query(`SELECT min(n)::int AS min, max(n)::int AS max FROM stale`);
  expect(rows[0]).toEqual({ min: 1, max: 1 });
});

test('cancellation mid-batch: the batch finishes or rolls back, no transaction stays open, the checkpoint matches the table', async () => {
  await intTable('cancel', 3000);
  const spec: BackfillSpec = { table: 'cancel', set: { v: 'slow(id)' }, where: 'v IS NULL', batchSize: 50, targetBatchMs: 0 };
  const backfillId = uniqueId('cancel');
  const plan = await runActivity(activities.prepareBackfill, { database: 'app', backfillId, spec });
  const env = newEnv();
  const beats: SliceHeartbeat[] = [];
  env.on('heartbeat', (d: SliceHeartbeat) => beats.push(d));
  const running = env.run(activities.backfillSlice, sliceInput(plan, backfillId, spec, 0, { maxCallMs: 60_000 }));
  await eventually('two committed batches', async () => beats.filter((b) => b.rowsDone > 0).length >= 2, 30_000);
  // Now inside a batch statement (each takes ~100 ms of pg_sleep).
  await eventually('a batch in flight', async () => (await busyBackfillSessions()).includes('active'), 10_000);
  env.cancel();
  await expect(running).rejects.toMatchObject({ name: 'CancelledFailure' });

  expect(await busyBackfillSessions()).toEqual([]);
  const saved = await checkpoint(backfillId);
  const lastKey = Number(saved.last_key[0]);
  const { rows } = await db.query(
    `SELECT count(*) FILTER (WHERE id <= $1 AND v IS NULL)::int AS skipped, count(*) FILTER (WHERE id > $1 AND v IS NOT NULL)::int AS beyond FROM cancel`,
    [lastKey],
  );
  expect(rows[0]).toEqual({ skipped: 0, beyond: 0 });
  expect(saved.rows_done).toBe(lastKey);
  expect(lastKey).toBeLessThan(3000);
});

test('pg_terminate_backend mid-batch: the attempt fails retryably, the retry loses and repeats nothing', async () => {
  await intTable('killed', 1500);
  const spec: BackfillSpec = { table: 'killed', set: { v: 'slow(id)', n: 'n + 1' }, where: 'v IS NULL', batchSize: 50, targetBatchMs: 0 };
  const backfillId = uniqueId('killed');
  const plan = await runActivity(activities.prepareBackfill, { database: 'app', backfillId, spec });
  const env = newEnv();
  let lastBeat: SliceHeartbeat | undefined;
  env.on('heartbeat', (d: SliceHeartbeat) => (lastBeat = d));
  const running = env.run(activities.backfillSlice, sliceInput(plan, backfillId, spec, 0, { maxCallMs: 60_000 }));
  running.catch(() => undefined);
  await eventually('a committed batch', async () => (lastBeat?.rowsDone ?? 0) > 0, 30_000);
  const victim = await eventually('the backfill session inside a batch', async () => {
    const { rows } = await db.query<{ pid: number }>(
      `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'phasegate backfill' AND state = 'active'`,
    );
    return rows[0]?.pid;
  }, 10_000);
  await db.query('SELECT pg_terminate_backend($1)', [victim]);
  await expect(running).rejects.toMatchObject({ type: 'TransientDatabaseError', nonRetryable: false });

  // Temporal's retry: a new attempt with the last heartbeat the server received.
  const retry = (await newEnv(lastBeat).run(activities.backfillSlice, sliceInput(plan, backfillId, spec, 0, { maxCallMs: 60_000 }))) as BackfillSliceResult;
  expect(retry).toMatchObject({ done: true, rowsDone: 1500, rowsUpdated: 1500, resumedFrom: 'checkpoint' });
  const { rows } = await db.query(`SELECT count(*) FILTER (WHERE v IS DISTINCT FROM id)::int AS wrong, max(n)::int AS most, min(n)::int AS least FROM killed`);
  expect(rows[0]).toEqual({ wrong: 0, most: 1, least: 1 });
});

describe.each([
  ['uuid', `CREATE TABLE k_uuid (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), v int)`, `INSERT INTO k_uuid (v) SELECT NULL FROM generate_series(1, 3000)`, 'k_uuid', undefined],
  ['text', `CREATE TABLE k_text (code text NOT NULL UNIQUE, v int)`, `INSERT INTO k_text (code) SELECT md5(g::text) FROM generate_series(1, 3000) g`, 'k_text', undefined],
  [
    'composite',
    `CREATE TABLE k_comp (tenant int NOT NULL, name varchar(40) NOT NULL, v int, PRIMARY KEY (tenant, name))`,
    `INSERT INTO k_comp (tenant, name) SELECT g % 7, 'n' || g FROM generate_series(1, 3000) g`,
    'k_comp',
    ['tenant', 'name'],
  ],
])('%s key', (kind, create, insert, table, key) => {
  test(`three parallel slices cover every row exactly once (${kind})`, async () => {
    await db.query(create);
    await db.query(insert);
    await db.query(`ANALYZE ${table}`);
    const spec: BackfillSpec = { table, ...(key ? { key } : {}), set: { v: '1' }, where: 'v IS NULL', batchSize: 200, parallelism: 3 };
    const backfillId = uniqueId(table);
    const plan = await runActivity(activities.prepareBackfill, { database: 'app', backfillId, spec });
    expect(plan.slices.length).toBe(3);
    expect(plan.slices[0].from).toBeNull();
    expect(plan.slices[2].to).toBeNull();
    const results = await Promise.all(plan.slices.map((_, i) => runToEnd(sliceInput(plan, backfillId, spec, i))));
    expect(results.reduce((n, r) => n + r.rowsDone, 0)).toBe(3000);
    expect(results.reduce((n, r) => n + r.rowsUpdated, 0)).toBe(3000);
    expect(results.every((r) => r.rowsDone > 0)).toBe(true);
    const { rows } = await db.query(`SELECT count(*) FILTER (WHERE v IS NULL)::int AS missed FROM ${table}`);
    expect(rows[0].missed).toBe(0);
  });
});

test('a table without a primary key or unique NOT NULL column: a clear error before anything runs', async () => {
  await db.query('CREATE TABLE nokey (id bigint, email text UNIQUE, v int)');
  const spec: BackfillSpec = { table: 'nokey', set: { v: '1' }, where: 'v IS NULL' };
  await expect(runActivity(activities.prepareBackfill, { database: 'app', backfillId: uniqueId('nokey'), spec })).rejects.toMatchObject({
    type: 'BackfillKeyMissing',
    nonRetryable: true,
    message: expect.stringMatching(/nokey: the table has no primary key and no unique index on NOT NULL columns.*Add a primary key/),
  });
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  try {
    await expect(resolveBackfillKey(client, { ...spec, table: 'no_such_table' })).rejects.toMatchObject({ type: 'BackfillTableMissing' });
    await expect(resolveBackfillKey(client, { ...spec, key: 'email' })).rejects.toThrow(/allows NULLs/);
  } finally {
    await client.end();
  }
});

test('set/where that do not compile fail at prepare with the expression named', async () => {
  await intTable('typo', 10);
  await expect(
    runActivity(activities.prepareBackfill, { database: 'app', backfillId: uniqueId('typo'), spec: { table: 'typo', set: { v: 'idd * 2' }, where: 'v IS NULL' } }),
  ).rejects.toMatchObject({ type: 'InvalidBackfillSpec', nonRetryable: true, message: expect.stringMatching(/column "idd" does not exist.*idd \* 2/) });
});

test('a stop request reaches a running slice within one batch', async () => {
  await intTable('stop', 3000);
  const spec: BackfillSpec = { table: 'stop', set: { v: 'slow(id)' }, where: 'v IS NULL', batchSize: 50, targetBatchMs: 0 };
  const backfillId = uniqueId('stop');
  const plan = await runActivity(activities.prepareBackfill, { database: 'app', backfillId, spec });
  const env = newEnv();
  const beats: SliceHeartbeat[] = [];
  env.on('heartbeat', (d: SliceHeartbeat) => beats.push(d));
  const running = env.run(activities.backfillSlice, sliceInput(plan, backfillId, spec, 0, { maxCallMs: 60_000 })) as Promise<BackfillSliceResult>;
  await eventually('a committed batch', async () => beats.some((b) => b.rowsDone > 0), 30_000);
  const before = beats[beats.length - 1].rowsDone;
  await runActivity(activities.stopBackfillSlices, { database: 'app', backfillId, epoch: 1 });
  const result = await running;
  expect(result).toMatchObject({ stopped: true, done: false });
  // At most the batch in flight when the stop landed, plus the one that read it.
  expect(result.rowsDone - before).toBeLessThanOrEqual(2 * 50);
  expect(await busyBackfillSessions()).toEqual([]);
});

test('sessions waiting on the backfill’s row locks make it back off: smaller batches, and status says why', async () => {
  await intTable('contended', 4000);
  const spec: BackfillSpec = { table: 'contended', set: { v: 'slow(id)' }, where: 'v IS NULL', batchSize: 200, targetBatchMs: 0 };
  const backfillId = uniqueId('contended');
  const plan = await runActivity(activities.prepareBackfill, { database: 'app', backfillId, spec });
  const env = newEnv();
  let lastKey = 0;
  const beats: SliceHeartbeat[] = [];
  env.on('heartbeat', (d: SliceHeartbeat) => {
    lastKey = Number(d.lastKey?.[0] ?? 0);
    beats.push(d);
  });
  const running = env.run(activities.backfillSlice, sliceInput(plan, backfillId, spec, 0, { maxCallMs: 4_000 })) as Promise<BackfillSliceResult>;
  // An application session that keeps touching a row early in the batch in flight: it waits on
  // the backfill's row lock for most of the batch (~300 of its ~400 ms), where the watcher, which
  // samples every 200 ms, sees it.
  const app = new pg.Client({ connectionString: db.url });
  await app.connect();
  let waits = 0;
  const contend = (async () => {
    const deadline = Date.now() + 3_000;
    while (Date.now() < deadline) {
      const t0 = Date.now();
      await app.query('UPDATE contended SET n = n WHERE id = $1', [lastKey + 50]);
      if (Date.now() - t0 > 100) waits++;
    }
  })();
  const [result] = await Promise.all([running, contend]);
  await app.end();
  expect(waits).toBeGreaterThan(0);
  expect(result.rowsDone).toBeGreaterThan(0);
  expect(Math.min(...beats.map((b) => b.batchSize))).toBeLessThan(200);
  expect(beats.some((b) => /session\(s\) waited for locks held by the backfill; smaller batches/.test(b.slowedBy ?? ''))).toBe(true);
});

test('a call that ends at its time limit still pays the rate limit for its last batch, so back-to-back calls keep the rate', async () => {
  await intTable('paced', 600);
  // 100 rows per batch at 200 rows/s: each batch is owed 500 ms; maxCallMs 0 ends every call after one batch.
  const spec: BackfillSpec = { table: 'paced', set: { n: 'n + 1' }, where: 'n = 0', batchSize: 100, targetBatchMs: 0, maxRowsPerSecond: 200 };
  const backfillId = uniqueId('paced');
  const plan = await runActivity(activities.prepareBackfill, { database: 'app', backfillId, spec });
  let input = sliceInput(plan, backfillId, spec, 0, { maxCallMs: 0 });
  const started = Date.now();
  for (let call = 0; call < 4; call++) {
    const result = await runActivity(activities.backfillSlice, input);
    expect(result).toMatchObject({ done: false, batches: 1, rowsThisCall: 100 });
    input = { ...input, lastKey: result.lastKey, rowsDone: result.rowsDone, rowsUpdated: result.rowsUpdated };
  }
  // 400 rows at 200 rows/s take at least 2 s; without the owed pause each call returned right after its batch.
  const elapsed = Date.now() - started;
  expect(elapsed).toBeGreaterThanOrEqual(2_000 - 50);
  expect(await checkpoint(backfillId)).toMatchObject({ rows_done: 400 });
});
