/**
 * PostgreSQL really goes away under a running migration (its own restartable server, stopped with
 * `pg_ctl stop -m fast` and started again on the same port), with a real worker on the shared
 * Temporal dev server. What a DBA relies on: a transient outage never fails a migration; status
 * says "waiting for database: …" meanwhile; once the server is back every row, DDL step, version
 * row and audit row is there exactly once. And a terminated migration leaves the version table
 * honest, while a new migration resumes its backfill from the committed checkpoint.
 */
import type { WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import pg from 'pg';
import type { BackfillSliceResult } from '../../activities/backfill';
import { migrate } from '../../workflows';
import { approveSignal, backfillStatusQuery, backfillWorkflowId, statusQuery, type BackfillProgress, type MigrateStatus } from '../../workflows/messages';
import { createPhasegateWorker } from '../../workers/worker';
import { bundleWorkflows, connectTestTemporal, eventually, silentLog, testConfig, uniqueId, writeMigrations } from '../helpers';
import { startRestartablePostgres, type RestartablePostgres } from '../support/restartable-postgres';

let env: TestWorkflowEnvironment;
let bundle: WorkflowBundleWithSourceMap;
let pgServer: RestartablePostgres;

beforeAll(async () => {
  [env, bundle, pgServer] = await Promise.all([connectTestTemporal(), bundleWorkflows(), startRestartablePostgres()]);
}, 120_000);
afterAll(async () => {
  await pgServer?.destroy();
  await env?.teardown();
});

// ── helpers ──────────────────────────────────────────────────────────────────────────────────

/** One statement on a short-lived connection to `database` on the restartable server. */
async function sql<R extends pg.QueryResultRow = pg.QueryResultRow>(database: string, text: string, params: unknown[] = []): Promise<R[]> {
  const client = new pg.Client({ connectionString: pgServer.url(database) });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return (await client.query<R>(text, params)).rows;
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function createDatabase(prefix: string): Promise<string> {
  const name = uniqueId(prefix).replace(/-/g, '_');
  await sql('postgres', `CREATE DATABASE ${name}`);
  return name;
}

type Start = (workflowId?: string) => Promise<WorkflowHandle<typeof migrate>>;

/** A real worker for `database` (alias `app`) while `body` runs; never left running afterwards. */
async function withWorker<T>(database: string, migrationsDirectory: string, body: (start: Start) => Promise<T>): Promise<T> {
  const config = testConfig({ databases: { app: { url: pgServer.url(database), migrationsDirectory } } });
  const taskQueue = uniqueId('outage');
  const { worker } = await createPhasegateWorker({ config, log: silentLog, workflowBundle: bundle, taskQueue, connection: env.nativeConnection });
  return worker.runUntil(() =>
    body((workflowId = uniqueId('migrate-app')) =>
      env.client.workflow.start(migrate, { workflowId, taskQueue, args: [{ database: 'app', target: 'head', direction: 'upgrade' }] }),
    ),
  );
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function untilState(handle: WorkflowHandle<typeof migrate>, state: MigrateStatus['state'], timeoutMs = 60_000): Promise<MigrateStatus> {
  return eventually(
    `state ${state}`,
    async () => {
      const s = await handle.query(statusQuery);
      return s.state === state ? s : undefined;
    },
    timeoutMs,
  );
}

/** Rows with org_id filled; 0 while the column does not exist yet. */
async function filled(database: string): Promise<number> {
  try {
    return (await sql<{ n: number }>(database, 'SELECT count(org_id)::int AS n FROM accounts'))[0].n;
  } catch {
    return 0;
  }
}

/** What the version table and its pending table say (either may not exist). */
async function versionRows(database: string): Promise<{ version: string[]; pending: string[] }> {
  const [t] = await sql<{ v: string | null; p: string | null }>(
    database,
    `SELECT to_regclass('public.phasegate_version')::text AS v, to_regclass('public.phasegate_version_pending')::text AS p`,
  );
  const version = t.v ? (await sql<{ r: string }>(database, 'SELECT version_num AS r FROM phasegate_version ORDER BY 1')).map((r) => r.r) : [];
  const pending = t.p ? (await sql<{ r: string }>(database, 'SELECT version_num AS r FROM phasegate_version_pending ORDER BY 1')).map((r) => r.r) : [];
  return { version, pending };
}

/** Checkpoint rows of a revision's backfill (migrate names them `revision:<id>`). */
async function checkpoints(database: string, revision: string): Promise<{ rows: number; rowsDone: number; rowsUpdated: number }> {
  const [t] = await sql<{ t: string | null }>(database, `SELECT to_regclass('public.phasegate_backfill_progress')::text AS t`);
  if (!t.t) return { rows: 0, rowsDone: 0, rowsUpdated: 0 };
  const [row] = await sql<{ rows: number; rows_done: number; rows_updated: number }>(
    database,
    `SELECT count(*)::int AS rows, coalesce(sum(rows_done), 0)::int AS rows_done, coalesce(sum(rows_updated), 0)::int AS rows_updated
     FROM phasegate_backfill_progress WHERE backfill_id = $1`,
    [`revision:${revision}`],
  );
  return { rows: row.rows, rowsDone: row.rows_done, rowsUpdated: row.rows_updated };
}

/** org_id of every row against `1 + id % 50` computed independently of the table. */
async function orgIdChecksum(database: string, total: number): Promise<{ n: number; nulls: number; sum: string; expected: string; wrong: number }> {
  const [row] = await sql<{ n: number; nulls: number; sum: string; expected: string; wrong: number }>(
    database,
    `SELECT count(*)::int AS n, count(*) FILTER (WHERE org_id IS NULL)::int AS nulls, sum(org_id)::text AS sum,
            (SELECT sum(1 + g % 50)::text FROM generate_series(1, $1::int) g) AS expected,
            count(*) FILTER (WHERE org_id IS DISTINCT FROM 1 + id % 50)::int AS wrong
     FROM accounts`,
    [total],
  );
  return row;
}

const orgIdRevision = (id: string, backfill: string) => `module.exports = {
  id: '${id}', parent: null, message: 'add and fill accounts.org_id',
  upgrade(op) { op.addColumn('accounts', 'org_id', 'bigint'); },
  downgrade(op) { op.dropColumn('accounts', 'org_id'); },
  backfill: ${backfill},
  check: { name: 'no NULLs left in accounts.org_id', failingRows: 'SELECT id FROM accounts WHERE org_id IS NULL' },
};`;

async function accountsTable(database: string, rows: number): Promise<void> {
  await sql(database, 'CREATE TABLE accounts (id bigint PRIMARY KEY, email text)');
  await sql(database, `INSERT INTO accounts SELECT g, 'u' || g || '@example.com' FROM generate_series(1, $1::int) g`, [rows]);
  await sql(database, 'ANALYZE accounts');
}

// ── tests ────────────────────────────────────────────────────────────────────────────────────

test('PostgreSQL stopped mid-backfill for 15 s: the migration waits visibly ("waiting for database") and finishes with an exact checksum', async () => {
  const N = 200_000;
  const rev = 'a1b2c3d4e5f6';
  const database = await createDatabase('outage_backfill');
  await accountsTable(database, N);
  const dir = writeMigrations({
    [`${rev}_org_id.js`]: orgIdRevision(rev, `{ table: 'accounts', set: { org_id: '1 + id % 50' }, where: 'org_id IS NULL', batchSize: 2000, maxRowsPerSecond: 20000 }`),
  });

  await withWorker(database, dir, async (start) => {
    const handle = await start();
    const childId = await eventually('the backfill child', async () => (await handle.query(statusQuery)).backfillWorkflowId, 30_000);
    expect(childId).toBe(backfillWorkflowId(handle.workflowId, rev));
    const child = env.client.workflow.getHandle(childId);
    const before = await eventually('some rows filled', async () => {
      const n = await filled(database);
      return n >= 20_000 ? n : undefined;
    }, 60_000);
    expect(before).toBeLessThan(N);

    await pgServer.stop('fast');
    const downAt = Date.now();
    const waitingTexts: string[] = [];
    let lastChild: BackfillProgress | undefined;
    let lastParent: MigrateStatus | undefined;
    try {
      while (Date.now() - downAt < 15_000) {
        const [parentStatus, childStatus, parentRun, childRun] = await Promise.all([
          handle.query(statusQuery),
          child.query(backfillStatusQuery),
          handle.describe(),
          child.describe(),
        ]);
        lastParent = parentStatus;
        lastChild = childStatus;
        // Nothing fails or stops for a person while the database is merely away.
        expect(parentRun.status.name).toBe('RUNNING');
        expect(childRun.status.name).toBe('RUNNING');
        expect(['backfilling', 'paused']).toContain(parentStatus.state);
        expect(parentStatus.failure).toBeNull();
        expect(childStatus.state).toBe('running');
        expect(childStatus.error ?? null).toBeNull();
        for (const text of [childStatus.waiting, parentStatus.backfill?.waiting, parentStatus.waiting]) if (text) waitingTexts.push(text);
        await sleep(500);
      }
    } finally {
      await pgServer.start();
    }
    // The wait is visible, in the words the runbook uses, on the child and (signalled) on the parent.
    expect(waitingTexts.length).toBeGreaterThan(0);
    for (const text of waitingTexts) expect(text).toMatch(/^waiting for database: /);
    expect(lastChild?.waiting).toMatch(/^waiting for database: .*\(attempt \d+, since /);
    expect(lastParent?.backfill?.waiting).toMatch(/^waiting for database: /);
    expect(lastChild?.rowsDone).toBeLessThan(N);

    const result = await handle.result();
    expect(result).toMatchObject({ outcome: 'done', applied: [rev], headsAfter: [rev] });
    const status = await handle.query(statusQuery);
    expect(status).toMatchObject({ state: 'done', waiting: null, failure: null });
    expect(status.backfill).toMatchObject({ state: 'done', rowsDone: N, rowsUpdated: N, waiting: null });
    expect(status.check).toMatchObject({ passed: true, failingCount: 0 });
    expect(await child.result()).toMatchObject({ rowsDone: N, rowsUpdated: N });
  });

  const sums = await orgIdChecksum(database, N);
  expect(sums).toEqual({ n: N, nulls: 0, sum: sums.expected, expected: sums.expected, wrong: 0 });
  expect(await versionRows(database)).toEqual({ version: [rev], pending: [] });
  expect((await checkpoints(database, rev)).rows).toBe(0);
}, 150_000);

test('PostgreSQL stopped during a DDL step: the step waits and then applies exactly once', async () => {
  const rev = 'b2c3d4e5f6a1';
  const database = await createDatabase('outage_ddl');
  await accountsTable(database, 100);
  // Every time the step's transaction runs, it logs itself there; only a committed run stays.
  await sql(database, 'CREATE TABLE apply_log (n serial PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())');
  const dir = writeMigrations({
    [`${rev}_tier.js`]: `module.exports = {
      id: '${rev}', parent: null, message: 'add accounts.tier',
      upgrade(op) {
        op.sql('INSERT INTO apply_log DEFAULT VALUES');
        op.sql('SELECT pg_sleep(3)');
        op.addColumn('accounts', 'tier', 'text');
      },
      downgrade(op) { op.dropColumn('accounts', 'tier'); },
    };`,
  });

  await withWorker(database, dir, async (start) => {
    const handle = await start();
    // The step's transaction is open and sleeping inside PostgreSQL: the server goes away right now.
    await eventually('the DDL step running in PostgreSQL', async () => {
      const rows = await sql(database, `SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' AND query = 'SELECT pg_sleep(3)'`);
      return rows.length > 0;
    }, 30_000);
    expect((await handle.query(statusQuery)).state).toBe('applying');
    await pgServer.stop('fast');
    const downAt = Date.now();
    let waiting: string | null = null;
    try {
      while (Date.now() - downAt < 10_000) {
        const [status, run] = await Promise.all([handle.query(statusQuery), handle.describe()]);
        expect(run.status.name).toBe('RUNNING');
        expect(status.state).toBe('applying');
        expect(status.failure).toBeNull();
        waiting = status.waiting ?? waiting;
        await sleep(500);
      }
    } finally {
      await pgServer.start();
    }
    expect(waiting).toMatch(/^waiting for database: .*\(attempt \d+, since /);

    const result = await handle.result();
    expect(result).toMatchObject({ outcome: 'done', applied: [rev], headsAfter: [rev] });
    const status = await handle.query(statusQuery);
    expect(status).toMatchObject({ state: 'done', waiting: null, failure: null });
    expect(status.steps).toEqual([expect.objectContaining({ revision: rev, state: 'applied' })]);
  });

  // The interrupted transaction left nothing; the retried one committed once.
  expect(await sql(database, 'SELECT count(*)::int AS n FROM apply_log')).toEqual([{ n: 1 }]);
  expect(
    await sql(database, `SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'accounts' ORDER BY ordinal_position`),
  ).toEqual([
    { column_name: 'id', data_type: 'bigint' },
    { column_name: 'email', data_type: 'text' },
    { column_name: 'tier', data_type: 'text' },
  ]);
  expect(await versionRows(database)).toEqual({ version: [rev], pending: [] });
}, 120_000);

test('an approve sent while PostgreSQL is down is accepted; its audit row is written once the database is back', async () => {
  const rev = 'c3d4e5f6a1b2';
  const database = await createDatabase('outage_gate');
  await accountsTable(database, 100);
  const dir = writeMigrations({
    [`${rev}_plan.js`]: `module.exports = {
      id: '${rev}', parent: null, message: 'add accounts.plan',
      gate: { name: 'deploy', prompt: 'deploy the app' },
      upgrade(op) { op.addColumn('accounts', 'plan', 'text'); },
      downgrade(op) { op.dropColumn('accounts', 'plan'); },
    };`,
  });

  await withWorker(database, dir, async (start) => {
    const handle = await start();
    const atGate = await untilState(handle, 'awaiting-approval', 30_000);
    expect(atGate.gate).toMatchObject({ name: 'deploy', prompt: 'deploy the app', revision: rev });

    await pgServer.stop('fast');
    const downAt = Date.now();
    let waiting: string | null = null;
    try {
      await handle.signal(approveSignal, { by: 'alice' });
      while (Date.now() - downAt < 10_000) {
        const [status, run] = await Promise.all([handle.query(statusQuery), handle.describe()]);
        expect(run.status.name).toBe('RUNNING');
        expect(['awaiting-approval', 'applying']).toContain(status.state);
        expect(status.failure).toBeNull();
        waiting = status.waiting ?? waiting;
        await sleep(500);
      }
      // Accepted at once, although nothing could be written yet.
      const status = await handle.query(statusQuery);
      expect(status.approvals).toEqual([expect.objectContaining({ decision: 'approve', by: 'alice', gate: 'deploy', accepted: true, ignoredReason: null })]);
      expect(status.gate).toBeNull();
      expect(status.state).toBe('applying');
    } finally {
      await pgServer.start();
    }
    expect(waiting).toMatch(/^waiting for database: /);

    const result = await handle.result();
    expect(result).toMatchObject({ outcome: 'done', applied: [rev], headsAfter: [rev] });
    const status = await handle.query(statusQuery);
    expect(status.auditErrors).toEqual([]);
  });

  expect(
    await sql(database, 'SELECT decision, decided_by, gate, revision, accepted, ignored_reason FROM phasegate_approval ORDER BY id'),
  ).toEqual([{ decision: 'approve', decided_by: 'alice', gate: 'deploy', revision: rev, accepted: true, ignored_reason: null }]);
  expect(await sql(database, `SELECT count(*)::int AS n FROM information_schema.columns WHERE table_name = 'accounts' AND column_name = 'plan'`)).toEqual([{ n: 1 }]);
  expect(await versionRows(database)).toEqual({ version: [rev], pending: [] });
}, 120_000);

test('a terminated migration mid-backfill leaves the version table without the revision, and a new migration resumes the backfill from its checkpoint', async () => {
  const N = 20_000;
  const rev = 'd4e5f6a1b2c3';
  const database = await createDatabase('outage_terminate');
  await accountsTable(database, N);
  const dir = writeMigrations({
    [`${rev}_org_id.js`]: orgIdRevision(
      rev,
      `{ table: 'accounts', set: { org_id: '1 + id % 50' }, where: 'org_id IS NULL', batchSize: 200, maxRowsPerSecond: 2000, targetBatchMs: 0, sliceCallMs: 1000 }`,
    ),
  });

  await withWorker(database, dir, async (start) => {
    const first = await start();
    const firstChildId = await eventually('the first backfill child', async () => (await first.query(statusQuery)).backfillWorkflowId, 30_000);
    const firstChild = env.client.workflow.getHandle(firstChildId);
    await eventually('some rows filled', async () => (await filled(database)) >= 4_000, 60_000);
    await first.terminate('outage test: terminated mid-backfill');

    // REQUEST_CANCEL: the orphaned backfill is asked to stop after its batch, not killed mid-batch.
    const closed = await eventually(
      'the first backfill to stop',
      async () => {
        const d = await firstChild.describe();
        return d.status.name !== 'RUNNING' ? d.status.name : undefined;
      },
      30_000,
    ).catch(async (err: unknown) => {
      await firstChild.terminate('outage test: still running after its parent was terminated').catch(() => undefined);
      throw err;
    });
    expect(closed).toBe('CANCELLED');

    // Only complete revisions are in the version table; the applied-but-unfilled one is pending.
    expect(await versionRows(database)).toEqual({ version: [], pending: [rev] });
    const checkpoint = await checkpoints(database, rev);
    const filledBefore = await filled(database);
    expect(checkpoint.rows).toBe(1);
    expect(checkpoint.rowsDone).toBeGreaterThan(0);
    expect(checkpoint.rowsDone).toBeLessThan(N);
    // The checkpoint is exact: it moved in each batch's own transaction.
    expect(checkpoint.rowsUpdated).toBe(filledBefore);
    expect(checkpoint.rowsDone).toBe(filledBefore);

    // A new migration under another id: takes over the lease of the terminated one and resumes.
    const second = await start(uniqueId('migrate-app-again'));
    const result = await second.result();
    expect(result).toMatchObject({ outcome: 'done', applied: [rev], headsAfter: [rev] });
    const status = await second.query(statusQuery);
    expect(status.steps).toEqual([expect.objectContaining({ revision: rev, state: 'applied' })]);
    expect(status.check).toMatchObject({ passed: true, failingCount: 0 });

    const secondChild = env.client.workflow.getHandle(backfillWorkflowId(second.workflowId, rev));
    // Totals come from the checkpoint row: every row counted exactly once across both backfills.
    expect(await secondChild.result()).toMatchObject({ rowsDone: N, rowsUpdated: N });

    // The second backfill's first slice call started exactly where the first one's last batch committed.
    const history = await secondChild.fetchHistory();
    const scheduled = new Map<string, string>();
    const sliceResults: BackfillSliceResult[] = [];
    for (const event of history.events ?? []) {
      const s = event.activityTaskScheduledEventAttributes;
      if (s?.activityType?.name) scheduled.set(String(event.eventId), s.activityType.name);
      const done = event.activityTaskCompletedEventAttributes;
      if (done && scheduled.get(String(done.scheduledEventId)) === 'backfillSlice' && done.result?.payloads?.[0]) {
        sliceResults.push(defaultPayloadConverter.fromPayload<BackfillSliceResult>(done.result.payloads[0]));
      }
    }
    expect(sliceResults.length).toBeGreaterThan(0);
    const firstCall = sliceResults[0];
    expect(firstCall.resumedFrom).toBe('checkpoint');
    expect(firstCall.rowsDone - firstCall.rowsThisCall).toBe(checkpoint.rowsDone);
    expect(sliceResults.reduce((n, r) => n + r.rowsThisCall, 0)).toBe(N - checkpoint.rowsDone);
  });

  const sums = await orgIdChecksum(database, N);
  expect(sums).toEqual({ n: N, nulls: 0, sum: sums.expected, expected: sums.expected, wrong: 0 });
  expect(await versionRows(database)).toEqual({ version: [rev], pending: [] });
  expect((await checkpoints(database, rev)).rows).toBe(0);
  expect(await sql(database, 'SELECT count(*)::int AS n FROM phasegate_lease')).toEqual([{ n: 0 }]);
}, 120_000);
