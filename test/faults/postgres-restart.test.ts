/**
 * @pg-matrix: its SQL, catalog or server behaviour can differ by PostgreSQL major; `npm run test:pg15` runs it again on 15.
 * PostgreSQL really goes away under a running migration (its own restartable server, stopped with
 * `pg_ctl stop -m fast` and started again on the same port), with a real worker on the shared
 * Temporal dev server. Fault 10 of the fault matrix: a transient outage never fails a migration;
 * status says "waiting for database: …" meanwhile; once the server is back every row, DDL step,
 * version row and audit row is there exactly once. Fault 11 (here since it shares the server): a
 * terminated migration leaves the version table honest, while a new migration resumes its backfill
 * from the committed checkpoint.
 */
import { defaultPayloadConverter } from '@temporalio/common';
import type { BackfillSliceResult } from '../../activities/backfill';
import { approveSignal, backfillStatusQuery, backfillWorkflowId, statusQuery, type BackfillProgress, type MigrateStatus } from '../../workflows/messages';
import { startRestartablePostgres, type RestartablePostgres } from '../support/restartable-postgres';
import {
  accountsTable,
  checkpoints,
  eventually,
  labDatabase,
  sleep,
  uniqueId,
  untilState,
  useFaultLab,
  versionRows,
  withWorker,
  writeMigrations,
  type LabDatabase,
} from './harness';

const lab = useFaultLab();
let pgServer: RestartablePostgres;

beforeAll(async () => {
  pgServer = await startRestartablePostgres();
}, 120_000);
afterAll(async () => {
  await pgServer?.destroy();
});

// ── helpers ──────────────────────────────────────────────────────────────────────────────────

/** A new database on the restartable server. */
async function createDatabase(prefix: string): Promise<LabDatabase> {
  const name = uniqueId(prefix).replace(/-/g, '_');
  await labDatabase('postgres', pgServer.url('postgres')).sql(`CREATE DATABASE ${name}`);
  return labDatabase(name, pgServer.url(name));
}

/** Rows with org_id filled; 0 while the column does not exist yet. */
async function filled(db: LabDatabase): Promise<number> {
  try {
    return (await db.sql<{ n: number }>('SELECT count(org_id)::int AS n FROM accounts'))[0].n;
  } catch {
    return 0;
  }
}

/** org_id of every row against `1 + id % 50` computed independently of the table. */
async function orgIdChecksum(db: LabDatabase, total: number): Promise<{ n: number; nulls: number; sum: string; expected: string; wrong: number }> {
  const [row] = await db.sql<{ n: number; nulls: number; sum: string; expected: string; wrong: number }>(
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

// ── tests ────────────────────────────────────────────────────────────────────────────────────

test('fault 10: PostgreSQL stopped mid-backfill for 15 s: the migration waits visibly ("waiting for database") and finishes with an exact checksum', async () => {
  const N = 200_000;
  const rev = 'a1b2c3d4e5f6';
  const db = await createDatabase('outage_backfill');
  await accountsTable(db, N);
  const dir = writeMigrations({
    [`${rev}_org_id.js`]: orgIdRevision(rev, `{ table: 'accounts', set: { org_id: '1 + id % 50' }, where: 'org_id IS NULL', batchSize: 2000, maxRowsPerSecond: 20000 }`),
  });

  await withWorker(lab, db, dir, async (w) => {
    const handle = await w.start();
    const childId = await eventually('the backfill child', async () => (await handle.query(statusQuery)).backfillWorkflowId, 30_000);
    expect(childId).toBe(backfillWorkflowId(handle.workflowId, rev));
    const child = lab.env.client.workflow.getHandle(childId);
    const before = await eventually('some rows filled', async () => {
      const n = await filled(db);
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

  const sums = await orgIdChecksum(db, N);
  expect(sums).toEqual({ n: N, nulls: 0, sum: sums.expected, expected: sums.expected, wrong: 0 });
  expect(await versionRows(db)).toEqual({ version: [rev], pending: [] });
  expect((await checkpoints(db, rev)).rows).toBe(0);
}, 150_000);

test('fault 10: PostgreSQL stopped during a DDL step: the step waits and then applies exactly once', async () => {
  const rev = 'b2c3d4e5f6a1';
  const db = await createDatabase('outage_ddl');
  await accountsTable(db, 100);
  // Every time the step's transaction runs, it logs itself there; only a committed run stays.
  await db.sql('CREATE TABLE apply_log (n serial PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())');
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

  await withWorker(lab, db, dir, async (w) => {
    const handle = await w.start();
    // The step's transaction is open and sleeping inside PostgreSQL: the server goes away right now.
    await eventually('the DDL step running in PostgreSQL', async () => {
      const rows = await db.sql(`SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' AND query = 'SELECT pg_sleep(3)'`);
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
  expect(await db.sql('SELECT count(*)::int AS n FROM apply_log')).toEqual([{ n: 1 }]);
  expect(
    await db.sql(`SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'accounts' ORDER BY ordinal_position`),
  ).toEqual([
    { column_name: 'id', data_type: 'bigint' },
    { column_name: 'email', data_type: 'text' },
    { column_name: 'tier', data_type: 'text' },
  ]);
  expect(await versionRows(db)).toEqual({ version: [rev], pending: [] });
}, 120_000);

test('fault 10: an approve sent while PostgreSQL is down is accepted; its audit row is written once the database is back', async () => {
  const rev = 'c3d4e5f6a1b2';
  const db = await createDatabase('outage_gate');
  await accountsTable(db, 100);
  const dir = writeMigrations({
    [`${rev}_plan.js`]: `module.exports = {
      id: '${rev}', parent: null, message: 'add accounts.plan',
      gate: { name: 'deploy', prompt: 'deploy the app' },
      upgrade(op) { op.addColumn('accounts', 'plan', 'text'); },
      downgrade(op) { op.dropColumn('accounts', 'plan'); },
    };`,
  });

  await withWorker(lab, db, dir, async (w) => {
    const handle = await w.start();
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
    await db.sql('SELECT decision, decided_by, gate, revision, accepted, ignored_reason FROM phasegate_approval ORDER BY id'),
  ).toEqual([{ decision: 'approve', decided_by: 'alice', gate: 'deploy', revision: rev, accepted: true, ignored_reason: null }]);
  expect(await db.sql(`SELECT count(*)::int AS n FROM information_schema.columns WHERE table_name = 'accounts' AND column_name = 'plan'`)).toEqual([{ n: 1 }]);
  expect(await versionRows(db)).toEqual({ version: [rev], pending: [] });
}, 120_000);

test('fault 11: a terminated migration mid-backfill leaves the version table without the revision, and a new migration resumes the backfill from its checkpoint', async () => {
  const N = 20_000;
  const rev = 'd4e5f6a1b2c3';
  const db = await createDatabase('outage_terminate');
  await accountsTable(db, N);
  const dir = writeMigrations({
    [`${rev}_org_id.js`]: orgIdRevision(
      rev,
      `{ table: 'accounts', set: { org_id: '1 + id % 50' }, where: 'org_id IS NULL', batchSize: 200, maxRowsPerSecond: 2000, targetBatchMs: 0, sliceCallMs: 1000 }`,
    ),
  });

  await withWorker(lab, db, dir, async (w) => {
    const first = await w.start();
    const firstChildId = await eventually('the first backfill child', async () => (await first.query(statusQuery)).backfillWorkflowId, 30_000);
    const firstChild = lab.env.client.workflow.getHandle(firstChildId);
    await eventually('some rows filled', async () => (await filled(db)) >= 4_000, 60_000);
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
    expect(await versionRows(db)).toEqual({ version: [], pending: [rev] });
    const checkpoint = await checkpoints(db, rev);
    const filledBefore = await filled(db);
    expect(checkpoint.rows).toBe(1);
    expect(checkpoint.rowsDone).toBeGreaterThan(0);
    expect(checkpoint.rowsDone).toBeLessThan(N);
    // The checkpoint is exact: it moved in each batch's own transaction.
    expect(checkpoint.rowsUpdated).toBe(filledBefore);
    expect(checkpoint.rowsDone).toBe(filledBefore);

    // A new migration under another id: takes over the lease of the terminated one and resumes.
    const second = await w.start({}, uniqueId('migrate-app-again'));
    const result = await second.result();
    expect(result).toMatchObject({ outcome: 'done', applied: [rev], headsAfter: [rev] });
    const status = await second.query(statusQuery);
    expect(status.steps).toEqual([expect.objectContaining({ revision: rev, state: 'applied' })]);
    expect(status.check).toMatchObject({ passed: true, failingCount: 0 });

    const secondChild = lab.env.client.workflow.getHandle(backfillWorkflowId(second.workflowId, rev));
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

  const sums = await orgIdChecksum(db, N);
  expect(sums).toEqual({ n: N, nulls: 0, sum: sums.expected, expected: sums.expected, wrong: 0 });
  expect(await versionRows(db)).toEqual({ version: [rev], pending: [] });
  expect((await checkpoints(db, rev)).rows).toBe(0);
  expect(await db.sql('SELECT count(*)::int AS n FROM phasegate_lease')).toEqual([{ n: 0 }]);
}, 120_000);
