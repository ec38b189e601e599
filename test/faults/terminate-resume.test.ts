/**
 * Fault matrix case 11: `terminate` (not cancel) mid-phase, then a new `migrate` under another
 * workflow id. Terminate runs no workflow code: nothing is cancelled in PostgreSQL on the
 * workflow's behalf, the lease stays with the dead workflow, and a running activity keeps running
 * until its heartbeat hears its workflow is gone. The new run must find the leftovers and finish
 * from them, never doubling them:
 * - a CONCURRENTLY build still running (or cancelled half-way, an INVALID index);
 * - a rename-column expand step, transactional: either nothing of it (terminated while it waited for
 *   its lock) or all of its DDL, sync trigger included, with its backfill half done (terminated
 *   during the backfill).
 * A terminated migration mid-backfill resuming from its checkpoint is the last test of
 * test/integration/outage.test.ts; not repeated here.
 */
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { newPattern } from '../../lib/commands';
import { MIGRATION_LOCK_KEY } from '../../lib/version-table';
import { statusQuery, throttleSignal } from '../../workflows/messages';
import { testConfig, uniqueId } from '../helpers';
import { accountsTable, checkpoints, eventually, sleep, untilState, untilStatus, useFaultLab, versionRows, withWorker, workerProcesses, writeMigrations, type LabDatabase } from './harness';

const lab = useFaultLab();

/** Advisory lock key the slow index function waits on per row: the test holds it to hold the build. */
const GATE_KEY = 4242;

async function slowIndex(db: LabDatabase): Promise<{ oid: number; valid: boolean }[]> {
  return db.sql<{ oid: number; valid: boolean }>(
    `SELECT i.indexrelid::int AS oid, i.indisvalid AS valid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
      WHERE i.indrelid = 'accounts'::regclass AND NOT i.indisprimary`,
  );
}

async function buildsRunning(db: LabDatabase): Promise<number[]> {
  const rows = await db.sql<{ pid: number }>(
    `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' AND query ILIKE 'CREATE INDEX CONCURRENTLY%' AND pid <> pg_backend_pid()`,
  );
  return rows.map((r) => r.pid);
}

/**
 * The gated slow index: each row of `accounts` waits for GATE_KEY (shared) and sleeps a little, so
 * the build stalls while the test holds the key. `gate` holds it; `builds()` samples how many
 * builds run at once until `stop()`.
 */
async function gatedIndexLab(db: LabDatabase) {
  await accountsTable(db, 40);
  await db.sql(
    `CREATE FUNCTION slow_key(k bigint) RETURNS bigint IMMUTABLE LANGUAGE plpgsql AS $$
     BEGIN PERFORM pg_advisory_lock_shared(${GATE_KEY}); PERFORM pg_advisory_unlock_shared(${GATE_KEY}); PERFORM pg_sleep(0.01); RETURN k; END $$`,
  );
  const dir = writeMigrations({
    's001.js': `module.exports = { id: 's001', parent: null, message: 'slow index', transactional: false,
      upgrade(op) { op.createIndex('accounts_slow_idx', 'accounts', { expression: 'slow_key(id)' }, { concurrently: true }); },
      downgrade(op) { op.dropIndex('accounts_slow_idx', { concurrently: true }); } };`,
  });
  const gate = await db.session();
  await gate.query('SELECT pg_advisory_lock($1)', [GATE_KEY]);
  let maxBuilds = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      maxBuilds = Math.max(maxBuilds, (await buildsRunning(db)).length);
      await sleep(50);
    }
  })();
  return {
    dir,
    openGate: () => gate.query('SELECT pg_advisory_unlock($1)', [GATE_KEY]),
    /** The first build: running, its INVALID index row committed. */
    untilBuilding: (timeoutMs = 60_000) =>
      eventually(
        'the first build to be running',
        async () => {
          const [pid] = await buildsRunning(db);
          const rows = await slowIndex(db);
          return pid !== undefined && rows.length === 1 ? { pid, leftover: rows[0] } : undefined;
        },
        timeoutMs,
      ),
    /** A new build of a new index (the leftover dropped), on another backend; it holds the migration lock. */
    async untilRebuilding(oldPid: number, leftover: { oid: number }): Promise<number> {
      const pid = await eventually(
        'the new run to drop the leftover and build anew',
        async () => {
          const [p] = await buildsRunning(db);
          const rows = await slowIndex(db);
          return p !== undefined && p !== oldPid && rows.length === 1 && rows[0].oid !== leftover.oid ? p : undefined;
        },
        60_000,
      );
      const [held] = await db.sql<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND classid = 0 AND objid = $1 AND granted AND pid = $2`,
        [MIGRATION_LOCK_KEY, pid],
      );
      expect(held.n).toBe(1);
      return pid;
    },
    /** Stops sampling; the most builds seen running at once. */
    async stop(): Promise<number> {
      sampling = false;
      await sampler;
      await gate.end().catch(() => undefined);
      return maxBuilds;
    },
  };
}

async function expectOneValidIndex(db: LabDatabase, leftover: { oid: number }): Promise<void> {
  const after = await slowIndex(db);
  expect(after).toHaveLength(1);
  expect(after[0].valid).toBe(true);
  expect(after[0].oid).not.toBe(leftover.oid);
  expect(await versionRows(db)).toEqual({ version: ['s001'], pending: [] });
}

test('fault 11: terminate during a CONCURRENTLY build: the orphaned activity cancels the build, the new run waits for it, drops the INVALID index and builds one valid index', async () => {
  const db = await lab.database();
  const gated = await gatedIndexLab(db);
  let leftover = { oid: 0, valid: true };
  try {
    await withWorker(lab, db, gated.dir, async (w) => {
      const first = await w.start();
      const building = await gated.untilBuilding();
      leftover = building.leftover;
      expect(leftover.valid).toBe(false);
      await first.terminate('fault 11: terminated mid-build');
      expect((await first.describe()).status.name).toBe('TERMINATED');

      // Terminate cancels nothing in PostgreSQL itself. The new run's lease and its step both take the
      // migration lock, which the old build's session holds for as long as its statement runs: it
      // cannot start a second build next to the first one.
      const second = await w.start({}, uniqueId('migrate-app-again'));
      // The orphaned activity hears at a heartbeat that its workflow is gone and cancels its
      // statement (the build cannot finish meanwhile: the test holds the key every row waits for).
      await eventually('the old build to be cancelled by its orphaned activity', async () => !(await buildsRunning(db)).includes(building.pid), 40_000);
      // Then the new run takes the lock, drops the INVALID leftover and starts one build of its own.
      await gated.untilRebuilding(building.pid, leftover);
      await gated.openGate();
      expect(await second.result()).toMatchObject({ outcome: 'done', applied: ['s001'] });
    });
  } finally {
    // Never two builds at once.
    expect(await gated.stop()).toBe(1);
  }
  await expectOneValidIndex(db, leftover);
});

test('fault 11: terminate after the worker died mid-build: PostgreSQL ends the orphaned build, the new run drops the INVALID index and builds one valid index', async () => {
  const db = await lab.database();
  const [{ v }] = await db.sql<{ v: number }>(`SELECT current_setting('server_version_num')::int AS v`);
  // client_connection_check_interval (PG14+) is what ends a statement whose client is gone.
  expect(v).toBeGreaterThanOrEqual(140000);
  const gated = await gatedIndexLab(db);
  // Two task queues, so the new run's worker can start up (slowly: a process of its own) alongside
  // the first one without taking the first run's work.
  const procs = workerProcesses(lab, db, gated.dir);
  const next = workerProcesses(lab, db, gated.dir);
  let leftover = { oid: 0, valid: true };
  try {
    const worker = procs.spawn();
    next.spawn();
    const first = await procs.start();
    // A worker process starts in seconds, or in a minute and more on a machine busy with other tests.
    const building = await gated.untilBuilding(120_000);
    leftover = building.leftover;
    // Nobody is left to cancel the statement: the worker is gone, then its workflow.
    await worker.kill('SIGKILL');
    await first.terminate('fault 11: worker died, workflow terminated');
    await eventually('PostgreSQL to end the build of a closed connection', async () => !(await buildsRunning(db)).includes(building.pid), 30_000);
    expect(await slowIndex(db)).toEqual([leftover]);

    const second = await next.start({}, uniqueId('migrate-app-again'));
    await gated.untilRebuilding(building.pid, leftover);
    await gated.openGate();
    expect(await second.result()).toMatchObject({ outcome: 'done', applied: ['s001'] });
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${procs.output().slice(-3000)}\n${next.output().slice(-3000)}`);
  } finally {
    await Promise.all([procs.stopAll(), next.stopAll()]);
    expect(await gated.stop()).toBe(1);
  }
  await expectOneValidIndex(db, leftover);
}, 240_000);

/** The rename-column chain for accounts.email → contact, as `phasegate new` writes it. */
async function renameChain(db: LabDatabase) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'phasegate-terminate-'));
  const generated = await newPattern({
    config: testConfig({ databases: { app: { url: db.url, migrationsDirectory: dir } } }),
    database: 'app',
    pattern: 'rename-column',
    args: ['accounts', 'email', 'contact'],
  });
  return { dir, expand: generated.files[0].id };
}

/** What of the expand step is in the database: the new column, the sync function, its trigger(s). */
async function expandLeftovers(db: LabDatabase) {
  const [row] = await db.sql<{ columns: number; functions: number; triggers: number }>(
    `SELECT (SELECT count(*)::int FROM pg_attribute WHERE attrelid = 'accounts'::regclass AND attname = 'contact' AND NOT attisdropped) AS columns,
            (SELECT count(*)::int FROM pg_proc WHERE proname = 'accounts_email_to_contact_sync') AS functions,
            (SELECT count(*)::int FROM pg_trigger WHERE tgrelid = 'accounts'::regclass AND NOT tgisinternal) AS triggers`,
  );
  return row;
}

/** Catalog identities of what the expand step installed: a re-run that re-created them would change them. */
async function objectIds(db: LabDatabase) {
  return db.sql(
    `SELECT (SELECT oid::int FROM pg_trigger WHERE tgrelid = 'accounts'::regclass AND NOT tgisinternal) AS trigger,
            (SELECT oid::int FROM pg_proc WHERE proname = 'accounts_email_to_contact_sync') AS function,
            (SELECT attnum::int FROM pg_attribute WHERE attrelid = 'accounts'::regclass AND attname = 'contact') AS column`,
  );
}

test('fault 11: terminate while the rename-column expand step waits for its lock: nothing of it is left (one transaction); a new run installs it once', async () => {
  const db = await lab.database();
  await accountsTable(db, 50);
  const { dir, expand } = await renameChain(db);
  const blocker = await db.session();
  await blocker.query('BEGIN');
  await blocker.query('LOCK TABLE accounts IN ACCESS SHARE MODE');
  try {
    await withWorker(lab, db, dir, async (w) => {
      const first = await w.start({ target: expand });
      await untilStatus(first, 'the expand step to wait for its lock', (s) => s.steps.some((st) => st.revision === expand && (st.attempts ?? 0) >= 2), 30_000);
      await first.terminate('fault 11: terminated while waiting for a lock');
      // Give an attempt in flight its lock_timeout to end; it commits nothing either way.
      await sleep(1_500);
      expect(await expandLeftovers(db)).toEqual({ columns: 0, functions: 0, triggers: 0 });
      expect(await versionRows(db)).toEqual({ version: [], pending: [] });

      await blocker.query('COMMIT');
      const second = await w.start({ target: expand }, uniqueId('migrate-app-again'));
      expect(await second.result()).toMatchObject({ outcome: 'done', applied: [expand] });
    });
  } finally {
    await blocker.end().catch(() => undefined);
  }
  expect(await expandLeftovers(db)).toEqual({ columns: 1, functions: 1, triggers: 1 });
  expect(await versionRows(db)).toEqual({ version: [expand], pending: [] });
  expect(await db.sql(`SELECT count(*)::int AS n FROM accounts WHERE contact IS DISTINCT FROM email`)).toEqual([{ n: 0 }]);
});

test('fault 11: terminate during the rename-column expand backfill: trigger installed, step pending; writes stay in sync; a new run resumes, installs nothing twice, stamps once', async () => {
  const N = 600;
  const db = await lab.database();
  await accountsTable(db, N);
  const { dir, expand } = await renameChain(db);

  await withWorker(lab, db, dir, async (w) => {
    const first = await w.start({ target: expand });
    // Slow enough to terminate half-way: the throttle is handed to the backfill when it starts.
    await first.signal(throttleSignal, { batchSize: 20, maxRowsPerSecond: 100 });
    await untilState(first, 'backfilling', 30_000);
    await eventually('some rows copied', async () => (await db.sql<{ n: number }>('SELECT count(contact)::int AS n FROM accounts'))[0].n >= 60, 30_000);
    await first.terminate('fault 11: terminated mid-expand');
    const childId = (await first.query(statusQuery)).backfillWorkflowId!;
    await eventually(
      'the orphaned backfill to stop',
      async () => (await lab.env.client.workflow.getHandle(childId).describe()).status.name !== 'RUNNING',
      30_000,
    );

    // The expand's DDL committed whole with its pending row; the version table does not have it yet.
    expect(await expandLeftovers(db)).toEqual({ columns: 1, functions: 1, triggers: 1 });
    expect(await versionRows(db)).toEqual({ version: [], pending: [expand] });
    const copied = (await db.sql<{ n: number }>('SELECT count(contact)::int AS n FROM accounts'))[0].n;
    expect(copied).toBeLessThan(N);
    expect((await checkpoints(db, expand)).rowsDone).toBe(copied);
    // No migration runs, yet the installed trigger keeps both names in step for the app's writes.
    await db.sql(`UPDATE accounts SET email = 'moved-' || id || '@example.com' WHERE id IN (1, ${N})`);
    await db.sql(`INSERT INTO accounts (id, contact) VALUES (${N + 1}, 'new@example.com')`);
    expect(await db.sql(`SELECT id::int, email, contact FROM accounts WHERE id IN (1, ${N}, ${N + 1}) ORDER BY id`)).toEqual([
      { id: 1, email: 'moved-1@example.com', contact: 'moved-1@example.com' },
      { id: N, email: `moved-${N}@example.com`, contact: `moved-${N}@example.com` },
      { id: N + 1, email: 'new@example.com', contact: 'new@example.com' },
    ]);

    const installed = await objectIds(db);
    const second = await w.start({ target: expand }, uniqueId('migrate-app-again'));
    expect(await second.result()).toMatchObject({ outcome: 'done', applied: [expand] });
    const status = await second.query(statusQuery);
    expect(status.check).toMatchObject({ passed: true, failingCount: 0 });
    // The pending row told the new run the statements are done: the same trigger, function and
    // column, not dropped and made again.
    expect(await objectIds(db)).toEqual(installed);
  });
  expect(await expandLeftovers(db)).toEqual({ columns: 1, functions: 1, triggers: 1 });
  expect(await versionRows(db)).toEqual({ version: [expand], pending: [] });
  expect(await db.sql(`SELECT count(*)::int AS n FROM accounts WHERE contact IS DISTINCT FROM email`)).toEqual([{ n: 0 }]);
});
