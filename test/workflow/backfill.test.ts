/**
 * The `backfill` workflow on the Temporal dev server with real activities and PostgreSQL: pause,
 * resume and throttle through signals; continue-as-new that keeps its state and still honours
 * pause; progress signalled to a parent; a failing batch failing the workflow visibly.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import type { BackfillSpec } from '../../lib/revision';
import { backfill } from '../../workflows';
import {
  backfillStatusQuery,
  backfillWorkflowId,
  pauseSignal,
  resumeSignal,
  throttleSignal,
  type BackfillInput,
  type BackfillProgress,
} from '../../workflows/messages';
import { PhasegateState } from '../../workflows/search-attributes';
import { createPhasegateWorker } from '../../workers/worker';
import { bundleWorkflows, connectTestTemporal, createTestDatabase, eventually, silentLog, testConfig, uniqueId, type TestDatabase } from '../helpers';

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
  // About 1 ms per row, so a few thousand rows give a backfill that runs long enough to steer.
  await db.query(`CREATE FUNCTION slow(x bigint) RETURNS bigint LANGUAGE sql AS $$ SELECT x FROM (SELECT pg_sleep(0.001)) s $$`);
  // Every row the backfill writes, with the transaction that wrote it: batch sizes, in order.
  await db.query(`CREATE TABLE batch_log (xid xid8 NOT NULL, id bigint NOT NULL)`);
  await db.query(`CREATE FUNCTION log_row() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN INSERT INTO batch_log VALUES (pg_current_xact_id(), NEW.id); RETURN NEW; END $$`);
});
afterEach(() => db.drop());

async function itemsTable(rows: number): Promise<void> {
  await db.query(`CREATE TABLE items (id bigint PRIMARY KEY, v bigint, n int NOT NULL DEFAULT 0)`);
  await db.query(`INSERT INTO items (id) SELECT g FROM generate_series(1, $1::int) g`, [rows]);
  await db.query(`CREATE TRIGGER items_log AFTER UPDATE ON items FOR EACH ROW EXECUTE FUNCTION log_row()`);
}

/** Batches in commit order: [first id, rows]. */
async function batches(): Promise<Array<[number, number]>> {
  const { rows } = await db.query<{ first: string; rows: number }>(`SELECT min(id) AS first, count(*)::int AS rows FROM batch_log GROUP BY xid ORDER BY xid`);
  return rows.map((r) => [Number(r.first), r.rows]);
}

async function updatedRows(): Promise<number> {
  const { rows } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM items WHERE v IS NOT NULL`);
  return rows[0].n;
}

async function busyBackfillSessions(): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'phasegate backfill'
       AND state IN ('active', 'idle in transaction', 'idle in transaction (aborted)')`,
  );
  return rows[0].n;
}

async function withWorker<T>(fn: (taskQueue: string) => Promise<T>): Promise<T> {
  const taskQueue = uniqueId('backfill');
  const { worker } = await createPhasegateWorker({
    config: testConfig({ databases: { app: { url: db.url } } }),
    log: silentLog,
    workflowBundle: bundle,
    taskQueue,
    connection: env.nativeConnection,
  });
  return worker.runUntil(() => fn(taskQueue));
}

const slowSpec: BackfillSpec = { table: 'items', set: { v: 'slow(id)', n: 'n + 1' }, where: 'v IS NULL', batchSize: 40, targetBatchMs: 0 };

test('pause stops within a batch with no transaction open; throttle applies from the next batch; resume finishes the rest', async () => {
  await itemsTable(4000);
  await withWorker(async (taskQueue) => {
    const input: BackfillInput = { database: 'app', revision: 'aaa111', spec: slowSpec };
    const handle = await env.client.workflow.start(backfill, { workflowId: uniqueId('backfill-app'), taskQueue, args: [input] });
    const status = () => handle.query(backfillStatusQuery);
    // Status moves when a slice call returns (every ~10 s); the table shows each batch at once.
    await eventually('some rows backfilled', async () => (await updatedRows()) >= 200, 60_000);

    // Throttle while running: the running slice call stops after its batch and restarts smaller.
    const atThrottle = await updatedRows();
    await handle.signal(throttleSignal, { batchSize: 20 });
    await eventually('the throttle to show in status', async () => (await status()).lastSignal?.startsWith('throttle applied'));
    await eventually('batches after the throttle', async () => (await updatedRows()) >= atThrottle + 200, 60_000);

    await handle.signal(pauseSignal, {});
    const paused = await eventually('paused', async () => {
      const s = await status();
      return s.state === 'paused' ? s : undefined;
    }, 30_000);
    expect(paused.slices.map((s) => s.state)).toEqual(['paused']);
    expect(await busyBackfillSessions()).toBe(0);
    const stoppedAt = await updatedRows();
    // Status counts what the checkpoint committed: exactly the rows in the table.
    expect(paused.rowsDone).toBe(stoppedAt);
    expect(paused.lastSignal).toBe('paused');
    expect((await handle.describe()).typedSearchAttributes.get(PhasegateState)).toBe('paused');
    await new Promise((r) => setTimeout(r, 1500));
    expect(await updatedRows()).toBe(stoppedAt);

    // Signals that do not fit are recorded and ignored, never crash the workflow.
    await handle.signal(throttleSignal, { batchSize: 0 });
    await eventually('the bad throttle to be ignored', async () => (await status()).lastSignal?.startsWith('throttle ignored: batchSize must be'));
    await handle.signal(pauseSignal, {});
    await eventually('the second pause to be ignored', async () => (await status()).lastSignal === 'pause ignored: already paused');

    await handle.signal(throttleSignal, { delayMs: 5 });
    await handle.signal(resumeSignal, {});
    const result = await handle.result();
    expect(result).toMatchObject({ revision: 'aaa111', table: 'items', rowsDone: 4000, rowsUpdated: 4000, slices: 1 });
    const final = await status();
    expect(final).toMatchObject({ state: 'done', rowsDone: 4000, batchSize: 20, delayMs: 5, key: ['id'] });
    expect((await handle.describe()).typedSearchAttributes.get(PhasegateState)).toBe('done');

    const { rows } = await db.query(`SELECT count(*) FILTER (WHERE v IS DISTINCT FROM id OR n <> 1)::int AS wrong FROM items`);
    expect(rows[0].wrong).toBe(0);
    const log = await batches();
    // 40-row batches until the throttle reached the running slice (after the batch in flight),
    // then never more than 20: the new size applies from the next batch on.
    const firstSmall = log.findIndex(([, n]) => n < 40);
    expect(log[firstSmall][0]).toBeGreaterThan(atThrottle - 40);
    expect(log.slice(0, firstSmall).every(([, n]) => n === 40)).toBe(true);
    expect(log.slice(firstSmall).every(([, n]) => n <= 20)).toBe(true);
    // No batch straddles the pause: the resumed walk starts right after the last committed key.
    expect(log.some(([first]) => first === stoppedAt + 1)).toBe(true);
  });
});

test('continue-as-new keeps the state and still honours pause', async () => {
  await itemsTable(2000);
  await withWorker(async (taskQueue) => {
    const input: BackfillInput = { database: 'app', revision: 'bbb222', spec: { ...slowSpec, batchSize: 25 }, sliceCallMs: 200, maxSliceCallsBeforeContinueAsNew: 2 };
    const workflowId = uniqueId('backfill-app');
    const handle = await env.client.workflow.start(backfill, { workflowId, taskQueue, args: [input] });
    const firstRunId = handle.firstExecutionRunId;
    const status = () => env.client.workflow.getHandle(workflowId).query(backfillStatusQuery);
    const continued = await eventually('a second run', async () => {
      const s = await status();
      return (s.runs ?? 0) >= 2 && s.rowsDone > 0 ? s : undefined;
    }, 60_000);
    expect((await env.client.workflow.getHandle(workflowId, firstRunId).describe()).status.name).toBe('CONTINUED_AS_NEW');
    expect(continued.rowsDone).toBeGreaterThan(0);

    await env.client.workflow.getHandle(workflowId).signal(pauseSignal, {});
    const paused = await eventually('paused in a later run', async () => {
      const s = await status();
      return s.state === 'paused' ? s : undefined;
    }, 30_000);
    expect(await busyBackfillSessions()).toBe(0);
    const stoppedAt = await updatedRows();
    expect(paused.rowsDone).toBe(stoppedAt);
    await new Promise((r) => setTimeout(r, 1000));
    expect(await updatedRows()).toBe(stoppedAt);
    expect((await status()).state).toBe('paused');

    await env.client.workflow.getHandle(workflowId).signal(resumeSignal, {});
    const result = await env.client.workflow.getHandle<typeof backfill>(workflowId).result();
    expect(result.rowsDone).toBe(2000);
    expect(result.rowsUpdated).toBe(2000);
    expect(result.runs).toBeGreaterThanOrEqual(3);
    const { rows } = await db.query(`SELECT min(n)::int AS least, max(n)::int AS most FROM items`);
    expect(rows[0]).toEqual({ least: 1, most: 1 });
  });
});

test('progress reaches the parent at a bounded rate, ending with done', async () => {
  await itemsTable(2500);
  await withWorker(async (taskQueue) => {
    // A stand-in parent: a backfill paused from its first moment stays open and just buffers signals.
    const parentId = uniqueId('parent');
    await db.query(`CREATE TABLE parent_items (id bigint PRIMARY KEY, v int)`);
    const parent = await env.client.workflow.signalWithStart(backfill, {
      workflowId: parentId,
      taskQueue,
      args: [{ database: 'app', revision: 'parent', spec: { table: 'parent_items', set: { v: '1' }, where: 'v IS NULL' } }],
      signal: pauseSignal,
      signalArgs: [{}],
    });
    try {
      const input: BackfillInput = { database: 'app', revision: 'ccc333', spec: { ...slowSpec, batchSize: 25 }, sliceCallMs: 300, parentWorkflowId: parentId, progressIntervalMs: 1000 };
      const started = Date.now();
      const child = await env.client.workflow.start(backfill, { workflowId: backfillWorkflowId(parentId, 'ccc333'), taskQueue, args: [input] });
      await child.result();
      const seconds = (Date.now() - started) / 1000;

      const sent: BackfillProgress[] = [];
      const history = await parent.fetchHistory();
      for (const event of history.events ?? []) {
        const signaled = event.workflowExecutionSignaledEventAttributes;
        if (signaled?.signalName !== 'backfillProgress') continue;
        const payload = signaled.input?.payloads?.[0];
        sent.push(JSON.parse(Buffer.from(payload!.data!).toString()) as BackfillProgress);
      }
      expect(sent.length).toBeGreaterThanOrEqual(2);
      // One at the start, at most one per interval while running, one at the end.
      expect(sent.length).toBeLessThanOrEqual(Math.ceil(seconds / 1) + 3);
      expect(sent[sent.length - 1]).toMatchObject({ revision: 'ccc333', table: 'items', state: 'done', rowsDone: 2500, estimatedTotal: 2500 });
      expect(sent.every((p, i) => i === 0 || p.rowsDone >= sent[i - 1].rowsDone)).toBe(true);
    } finally {
      await parent.terminate('test over');
    }
  });
});

test('a batch that fails with an SQL error fails the backfill visibly, without retrying it', async () => {
  await itemsTable(1000);
  await withWorker(async (taskQueue) => {
    const spec: BackfillSpec = { table: 'items', set: { v: '1 / (id - 600)' }, where: 'v IS NULL', batchSize: 100, targetBatchMs: 0 };
    const handle = await env.client.workflow.start(backfill, { workflowId: uniqueId('backfill-app'), taskQueue, args: [{ database: 'app', revision: 'ddd444', spec }] });
    await expect(handle.result()).rejects.toMatchObject({ cause: { cause: { type: 'SqlError', message: expect.stringMatching(/division by zero/) } } });
    const status = await handle.query(backfillStatusQuery);
    expect(status.state).toBe('failed');
    expect(status.error).toMatch(/division by zero/);
    // Batches before the failing one stay committed; the checkpoint says where to pick up.
    expect(await updatedRows()).toBe(500);
    expect(status.rowsDone).toBe(500);
  });
});

test('cancelling the backfill stops its slices promptly and leaves no transaction open', async () => {
  await itemsTable(3000);
  await withWorker(async (taskQueue) => {
    const handle = await env.client.workflow.start(backfill, {
      workflowId: uniqueId('backfill-app'),
      taskQueue,
      args: [{ database: 'app', revision: 'eee555', spec: { ...slowSpec, parallelism: 2 } }],
    });
    await eventually('some rows backfilled', async () => (await updatedRows()) >= 200, 60_000);
    await handle.cancel();
    await expect(handle.result()).rejects.toMatchObject({ cause: { name: 'CancelledFailure' } });
    expect(await busyBackfillSessions()).toBe(0);
    const status = await handle.query(backfillStatusQuery);
    expect(status).toMatchObject({ state: 'failed', error: 'cancelled' });
    // Status catches up with what the checkpoints committed.
    expect(status.rowsDone).toBe(await updatedRows());
    const stopped = await updatedRows();
    await new Promise((r) => setTimeout(r, 1000));
    expect(await updatedRows()).toBe(stopped);
    expect(stopped).toBeLessThan(3000);
  });
});
