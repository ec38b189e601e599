/**
 * Fault matrix, issue 9 — cancel and statement_timeout (cases 2 and 3).
 *
 * 2. A cancel while a step waits for a lock, while it pauses between lock attempts, and while a long
 *    statement runs (a slow VALIDATE CONSTRAINT, a slow CREATE INDEX CONCURRENTLY): the workflow ends
 *    `cancelled` within one heartbeat, the statement is cancelled in PostgreSQL, and the version table
 *    holds exactly the revisions before the cancelled one.
 * 3. statement_timeout ends a long statement of a transactional two-statement revision: the migration
 *    stops in `failed` naming the revision, the statement and the limit, and the first statement's
 *    effect is rolled back with the rest.
 *
 * "Slow" comes from IMMUTABLE plpgsql functions that pg_sleep per row, over small tables.
 */
import type pg from 'pg';
import {
  accountsTable,
  eventually,
  untilState,
  untilStatus,
  useFaultLab,
  versionRows,
  withWorker,
  writeMigrations,
  type LabDatabase,
  type LabSettings,
  type MigrateHandle,
} from './harness';

const lab = useFaultLab();

/**
 * A cancel reaches a running activity in the response to its next heartbeat: applyRevision beats
 * every 2 s and the SDK sends at most one heartbeat per 0.8 × heartbeatTimeout (10 s, in
 * workflows/migration.ts), so within one heartbeat timeout; plus 5 s for the workflow tasks and the
 * pg_cancel_backend round trip on a loaded machine.
 */
const CANCEL_BOUND_MS = 10_000 + 5_000;
/** Rows × per-row sleep: a full scan lasts 40 s, far beyond every bound asserted here. */
const ROWS = 200;

async function slowDatabase(): Promise<LabDatabase> {
  const db = await lab.database();
  await accountsTable(db, ROWS);
  await db.sql(`CREATE FUNCTION slow_true(bigint) RETURNS boolean IMMUTABLE LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.2); RETURN true; END $$`);
  await db.sql(`CREATE FUNCTION slow_key(bigint) RETURNS bigint IMMUTABLE LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.2); RETURN $1; END $$`);
  return db;
}

const R1 = `module.exports = { id: 'r1', parent: null, message: 'ledger',
  upgrade(op) { op.sql('CREATE TABLE IF NOT EXISTS ledger (id bigint PRIMARY KEY)'); }, downgrade(op) { op.sql('DROP TABLE IF EXISTS ledger'); } };`;

function rev(id: string, parent: string, body: string, extra = ''): string {
  return `module.exports = { id: '${id}', parent: '${parent}', message: '${id}', ${extra} ${body}, downgrade(op) {} };`;
}

/** Sessions (other than the asker) running a statement like `like`, not idle. */
async function running(db: LabDatabase, like: string): Promise<Array<{ pid: number; state: string; wait_event_type: string | null; wait_event: string | null }>> {
  return db.sql(
    `SELECT pid, state, wait_event_type, wait_event FROM pg_stat_activity
     WHERE datname = current_database() AND pid <> pg_backend_pid() AND state <> 'idle' AND query ILIKE $1`,
    [like],
  );
}

async function columnsOf(db: LabDatabase): Promise<string[]> {
  const rows = await db.sql<{ c: string }>(`SELECT column_name AS c FROM information_schema.columns WHERE table_name = 'accounts' ORDER BY ordinal_position`);
  return rows.map((r) => r.c);
}

/** Cancels, waits for the workflow to end cancelled, and returns how long that took. */
async function cancelAndTime(handle: MigrateHandle): Promise<number> {
  const cancelledAt = Date.now();
  await handle.cancel();
  await expect(handle.result()).rejects.toMatchObject({ cause: { name: 'CancelledFailure' } });
  return Date.now() - cancelledAt;
}

async function withBlocker<T>(db: LabDatabase, body: (pid: number) => Promise<T>): Promise<T> {
  const blocker: pg.Client = await db.session();
  try {
    const pid = (await blocker.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid;
    await blocker.query('BEGIN');
    await blocker.query('SELECT count(*) FROM accounts');
    return await body(pid);
  } finally {
    await blocker.query('ROLLBACK').catch(() => undefined);
    await blocker.end();
  }
}

test('fault 2: cancel while an attempt waits for its lock cancels the waiting ALTER in PostgreSQL; earlier revisions stay, the cancelled one has no row', async () => {
  const db = await slowDatabase();
  const dir = writeMigrations({ 'r1.js': R1, 'r2.js': rev('r2', 'r1', `upgrade(op) { op.addColumn('accounts', 'note', 'text'); }`) });
  // A long lock_timeout: the cancel, not lock_timeout, must be what ends this wait.
  const settings: LabSettings = { defaults: { lockTimeoutMs: 40_000, lockRetry: { maxAttempts: 3, initialDelayMs: 1_000, maxDelayMs: 1_000 } } };
  await withBlocker(db, (blockerPid) =>
    withWorker(
      lab,
      db,
      dir,
      async (w) => {
        const handle = await w.start();
        const [waiter] = await eventually('the ALTER to wait for its lock', async () => {
          const rows = await running(db, 'ALTER TABLE%note%');
          return rows.length > 0 && rows[0].wait_event_type === 'Lock' ? rows : undefined;
        }, 30_000);
        expect(await db.sql(`SELECT pg_blocking_pids($1) AS b`, [waiter.pid])).toEqual([{ b: [blockerPid] }]);
        const ms = await cancelAndTime(handle);
        console.info(`fault 2 (lock wait): cancelled in ${ms} ms`);
        expect(ms).toBeLessThan(CANCEL_BOUND_MS);
        // Gone at once (the activity waited for its statement to end), while the blocker still holds its lock.
        expect(await running(db, 'ALTER TABLE%note%')).toEqual([]);
        expect((await untilState(handle, 'cancelled')).steps.map((s) => [s.revision, s.attempts ?? 0])).toEqual([
          ['r1', 1],
          ['r2', 1],
        ]);
      },
      settings,
    ),
  );
  expect(await versionRows(db)).toEqual({ version: ['r1'], pending: [] });
  expect(await columnsOf(db)).toEqual(['id', 'email']);
  expect(await db.sql('SELECT count(*)::int AS n FROM phasegate_lease')).toEqual([{ n: 0 }]);
}, 60_000);

test('fault 2: cancel during the pause between lock attempts ends the workflow at once; no further attempt starts', async () => {
  const db = await slowDatabase();
  const dir = writeMigrations({ 'r1.js': R1, 'r2.js': rev('r2', 'r1', `upgrade(op) { op.addColumn('accounts', 'note', 'text'); }`) });
  const settings: LabSettings = { defaults: { lockTimeoutMs: 300, lockRetry: { maxAttempts: 5, initialDelayMs: 40_000, maxDelayMs: 40_000 } } };
  await withBlocker(db, (blockerPid) =>
    withWorker(
      lab,
      db,
      dir,
      async (w) => {
        const handle = await w.start();
        const pausing = await untilStatus(handle, 'r2 to pause after its first lock timeout', (s) => s.steps[1]?.state === 'waiting-for-lock', 30_000);
        expect(pausing.waiting).toMatch(new RegExp(`blocked by pid ${blockerPid} .*attempt 1 of 5 timed out, next in`));
        expect(await running(db, 'ALTER TABLE%note%')).toEqual([]);
        const ms = await cancelAndTime(handle);
        console.info(`fault 2 (lock pause): cancelled in ${ms} ms`);
        // A durable timer is cancelled by the workflow itself: no heartbeat to wait for.
        expect(ms).toBeLessThan(5_000);
        const status = await untilState(handle, 'cancelled');
        expect(status.steps[1]).toMatchObject({ revision: 'r2', attempts: 1 });
        expect(status.waiting).toBeNull();
      },
      settings,
    ),
  );
  expect(await versionRows(db)).toEqual({ version: ['r1'], pending: [] });
  expect(await columnsOf(db)).toEqual(['id', 'email']);
}, 60_000);

test.each<{ what: string; files: Record<string, string>; like: string; before: string[]; leftover: (db: LabDatabase) => Promise<void> }>([
  {
    what: 'a slow VALIDATE CONSTRAINT',
    files: {
      'r2.js': rev('r2', 'r1', `upgrade(op) { op.addCheck('accounts', 'slow_chk', 'slow_true(id)', { notValid: true }); }`),
      'r3.js': rev('r3', 'r2', `upgrade(op) { op.validateConstraint('accounts', 'slow_chk'); }`),
    },
    like: 'ALTER TABLE%VALIDATE CONSTRAINT%slow_chk%',
    // The version table holds the head: r2 applied (its NOT VALID constraint is there), r3 not.
    before: ['r2'],
    leftover: async (db: LabDatabase) =>
      expect(await db.sql(`SELECT convalidated FROM pg_constraint WHERE conname = 'slow_chk'`)).toEqual([{ convalidated: false }]),
  },
  {
    what: 'a slow CREATE INDEX CONCURRENTLY',
    files: {
      'r2.js': rev('r2', 'r1', `upgrade(op) { op.createIndex('accounts_slow_idx', 'accounts', { expression: 'slow_key(id)' }, { concurrently: true }); }`, 'transactional: false,'),
    },
    like: 'CREATE INDEX CONCURRENTLY%accounts_slow_idx%',
    before: ['r1'],
    // A cancelled build leaves an INVALID index, which the next upgrade drops and rebuilds.
    leftover: async (db: LabDatabase) =>
      expect(await db.sql(`SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass('accounts_slow_idx')`)).toEqual([{ indisvalid: false }]),
  },
])('fault 2: cancel during $what stops the workflow within one heartbeat and cancels the statement in PostgreSQL', async ({ files, like, before, leftover }) => {
  const db = await slowDatabase();
  const dir = writeMigrations({ 'r1.js': R1, ...files });
  await withWorker(lab, db, dir, async (w) => {
    const handle = await w.start();
    await eventually('the slow statement to run', async () => (await running(db, like)).length > 0, 30_000);
    const ms = await cancelAndTime(handle);
    console.info(`fault 2 (${like}): cancelled in ${ms} ms`);
    expect(ms).toBeLessThan(CANCEL_BOUND_MS);
    expect(await running(db, like)).toEqual([]);
    expect((await untilState(handle, 'cancelled')).state).toBe('cancelled');
  });
  expect(await versionRows(db)).toEqual({ version: before, pending: [] });
  await leftover(db);
}, 60_000);

test('fault 3: statement_timeout ends a long statement: failed, naming the revision, the statement and the limit; the first statement is rolled back too', async () => {
  const STATEMENT_TIMEOUT_MS = 1_500;
  const db = await slowDatabase();
  const dir = writeMigrations({
    'r1.js': R1,
    'r2.js': rev(
      'r2',
      'r1',
      `upgrade(op) { op.addColumn('accounts', 'note', 'text'); op.sql('ALTER TABLE accounts ADD CONSTRAINT slow_chk CHECK (slow_true(id))'); }`,
    ),
  });
  await withWorker(
    lab,
    db,
    dir,
    async (w) => {
      const handle = await w.start();
      await eventually('the slow statement to run', async () => (await running(db, 'ALTER TABLE accounts ADD CONSTRAINT slow_chk%')).length > 0, 30_000);
      const seenAt = Date.now();
      const failed = await untilState(handle, ['failed', 'blocked', 'done'], 30_000);
      // statement_timeout (1.5 s), not the 40 s scan, ended it.
      expect(Date.now() - seenAt).toBeLessThan(15_000);
      expect(failed.state).toBe('failed');
      expect(failed.failure).toMatchObject({ kind: 'revision', revision: 'r2', type: 'StatementTimeout', options: ['retry', 'rollback', 'abandon'] });
      expect(failed.failure!.message).toContain('revision r2: statement `ALTER TABLE accounts ADD CONSTRAINT slow_chk CHECK (slow_true(id))`');
      expect(failed.failure!.message).toContain(`ran longer than statement_timeout (${STATEMENT_TIMEOUT_MS} ms)`);
      expect(failed.failure!.message).toContain('nothing of it was applied');
      expect(failed.steps.map((s) => [s.revision, s.state])).toEqual([
        ['r1', 'applied'],
        ['r2', 'failed'],
      ]);
      expect(await running(db, 'ALTER TABLE accounts ADD CONSTRAINT slow_chk%')).toEqual([]);
      // Nothing half-applied: the column added by the first statement went with the rollback.
      expect(await columnsOf(db)).toEqual(['id', 'email']);
      expect(await db.sql(`SELECT conname FROM pg_constraint WHERE conname = 'slow_chk'`)).toEqual([]);
      expect(await versionRows(db)).toEqual({ version: ['r1'], pending: [] });
      // It waits for a person; the workflow is still running.
      expect((await handle.describe()).status.name).toBe('RUNNING');
      await handle.cancel();
      await untilState(handle, 'cancelled');
    },
    { defaults: { statementTimeoutMs: STATEMENT_TIMEOUT_MS } },
  );
}, 60_000);
