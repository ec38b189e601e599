/**
 * One throttle budget per database server, on the dev server with real PostgreSQL: backfills on
 * databases of the same server share its rows/s (re-divided as one joins and one ends), a slot
 * limit makes the next one wait visibly, setBudget changes the shares live, a bad one is refused,
 * and a terminated member's share is given back (lease expiry).
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import type { BackfillSpec } from '../../lib/revision';
import { backfill } from '../../workflows';
import { budgetStatusQuery, setBudgetUpdate } from '../../workflows/budget-messages';
import { budgetWorkflowId } from '../../workflows/budget-shares';
import { backfillStatusQuery, type BackfillInput } from '../../workflows/messages';
import { createPhasegateWorker } from '../../workers/worker';
import { bundleWorkflows, connectTestTemporal, createTestDatabase, eventually, silentLog, testConfig, uniqueId, type TestDatabase } from '../helpers';

let env: TestWorkflowEnvironment;
let bundle: WorkflowBundleWithSourceMap;
const dbs: TestDatabase[] = [];

beforeAll(async () => {
  env = await connectTestTemporal();
  bundle = await bundleWorkflows();
  for (let i = 0; i < 3; i++) {
    const db = await createTestDatabase();
    await db.query(`CREATE TABLE items (id bigint PRIMARY KEY, v bigint)`);
    await db.query(`INSERT INTO items (id) SELECT g FROM generate_series(1, 100000) g`);
    dbs.push(db);
  }
});
afterAll(async () => {
  for (const db of dbs) await db.drop();
  await env?.teardown();
});

const spec: BackfillSpec = { table: 'items', set: { v: 'id' }, where: 'v IS NULL', batchSize: 50, targetBatchMs: 0, sliceCallMs: 1000 };

async function withWorker<T>(server: string, budget: { maxRowsPerSecond?: number; maxConcurrentBackfills?: number }, fn: (taskQueue: string) => Promise<T>): Promise<T> {
  const taskQueue = uniqueId('budget');
  const { worker } = await createPhasegateWorker({
    config: testConfig({
      servers: { [server]: { ...budget, leaseMs: 500 } },
      databases: { a: { url: dbs[0].url, server }, b: { url: dbs[1].url, server }, c: { url: dbs[2].url, server } },
    }),
    log: silentLog,
    workflowBundle: bundle,
    taskQueue,
    connection: env.nativeConnection,
  });
  return worker.runUntil(() => fn(taskQueue));
}

test('shares are re-divided as backfills join and end; setBudget changes them live; a bad one is refused; a terminated member gives its share back', async () => {
  const server = uniqueId('srv').toLowerCase();
  await withWorker(server, { maxRowsPerSecond: 600 }, async (taskQueue) => {
    const start = (database: string) =>
      env.client.workflow.start(backfill, { workflowId: uniqueId(`bf-${database}`), taskQueue, args: [{ database, revision: 'r1', spec } satisfies BackfillInput] });
    const budget = env.client.workflow.getHandle(budgetWorkflowId(server));
    const a = await start('a');
    await eventually('a alone holds the whole budget', async () => (await a.query(backfillStatusQuery)).maxRowsPerSecond === 600);
    const b = await start('b');
    await eventually('a and b share it', async () => {
      const s = await budget.query(budgetStatusQuery);
      return s.running.length === 2 && s.running.every((m) => m.maxRowsPerSecond === 300);
    });
    await eventually('a paces to its half', async () => (await a.query(backfillStatusQuery)).maxRowsPerSecond === 300);
    expect((await b.query(backfillStatusQuery)).budget).toMatchObject({ server, admitted: true, maxRowsPerSecond: 300 });

    // Live change: re-divided at once.
    await budget.executeUpdate(setBudgetUpdate, { args: [{ maxRowsPerSecond: 1000, by: 'ops' }] });
    await eventually('b paces to the new half', async () => (await b.query(backfillStatusQuery)).maxRowsPerSecond === 500);
    // A bad payload is refused with a reason; nothing changes.
    await expect(budget.executeUpdate(setBudgetUpdate, { args: [{ maxRowsPerSecond: -5, by: 'ops' }] })).rejects.toMatchObject({
      cause: { message: expect.stringMatching(/^setBudget refused: maxRowsPerSecond must be/) },
    });
    expect((await budget.query(budgetStatusQuery)).budget.maxRowsPerSecond).toBe(1000);

    // A member that ends (here: cancelled) leaves; one terminated is dropped when its lease runs out.
    await a.cancel();
    await eventually('b gets the whole budget back', async () => (await b.query(backfillStatusQuery)).maxRowsPerSecond === 1000);
    await b.terminate('test');
    await eventually('the terminated member is dropped', async () => (await budget.query(budgetStatusQuery)).running.length === 0, 15_000);
    await budget.terminate('test done');
  });
}, 60_000);

test('maxConcurrentBackfills 1: the second backfill waits visibly and starts when the first ends', async () => {
  const server = uniqueId('srv').toLowerCase();
  await withWorker(server, { maxConcurrentBackfills: 1 }, async (taskQueue) => {
    const small: BackfillSpec = { ...spec, batchSize: 2000 };
    const first = await env.client.workflow.start(backfill, { workflowId: uniqueId('bf-a'), taskQueue, args: [{ database: 'a', revision: 'r2', spec: { ...small, maxRowsPerSecond: 20000 } }] });
    await eventually('the first runs', async () => (await first.query(backfillStatusQuery)).budget?.admitted === true);
    const second = await env.client.workflow.start(backfill, { workflowId: uniqueId('bf-b'), taskQueue, args: [{ database: 'b', revision: 'r2', spec: small }] });
    const waiting = await eventually('the second waits visibly', async () => {
      const s = await second.query(backfillStatusQuery);
      return s.waiting === `waiting for a backfill slot on server ${server} (1 running, 0 ahead)` ? s : undefined;
    });
    expect(waiting.waiting).toBe(`waiting for a backfill slot on server ${server} (1 running, 0 ahead)`);
    expect(waiting.rowsDone).toBe(0);
    await first.result();
    const done = await second.result();
    expect(done.rowsDone).toBe(100000);
    await env.client.workflow.getHandle(budgetWorkflowId(server)).terminate('test done');
  });
}, 60_000);
