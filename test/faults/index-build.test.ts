/**
 * @pg-matrix: its SQL, catalog or server behaviour can differ by PostgreSQL major; `npm run test:pg15` runs it again on 15.
 * Fault matrix case 4: CREATE INDEX CONCURRENTLY fails part-way. PostgreSQL then leaves an INVALID
 * index behind (its catalog row committed before the build started), which `IF NOT EXISTS` alone
 * would accept as done. (a) A unique build over duplicate keys: `failed` names the duplicated key,
 * the data is fixed, `retry` drops the INVALID index and builds it anew. (b) A build cancelled
 * mid-way (the workflow cancelled, or the backend cancelled by a DBA): the INVALID index is dropped
 * and rebuilt by the next run. A slow build comes from an IMMUTABLE function that sleeps, in the
 * index expression, over a small table.
 */
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { newPattern } from '../../lib/commands';
import { retrySignal, retryUpdate, statusQuery } from '../../workflows/messages';
import { testConfig, uniqueId } from '../helpers';
import { accountsTable, eventually, untilState, useFaultLab, versionRows, withWorker, writeMigrations, type LabDatabase } from './harness';

const lab = useFaultLab();

interface IndexRow {
  oid: number;
  valid: boolean;
  unique: boolean;
}

/** Every index on `table` except its primary key, by name. */
async function indexes(db: LabDatabase, table = 'accounts'): Promise<Record<string, IndexRow>> {
  const rows = await db.sql<{ name: string; oid: number; valid: boolean; unique: boolean }>(
    `SELECT c.relname AS name, c.oid::int AS oid, i.indisvalid AS valid, i.indisunique AS unique
       FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
      WHERE i.indrelid = $1::regclass AND NOT i.indisprimary`,
    [table],
  );
  return Object.fromEntries(rows.map((r) => [r.name, { oid: r.oid, valid: r.valid, unique: r.unique }]));
}

/** Backends of this database running a CREATE INDEX right now. */
async function buildsRunning(db: LabDatabase): Promise<number[]> {
  const rows = await db.sql<{ pid: number }>(
    `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' AND query ILIKE 'CREATE %INDEX CONCURRENTLY%' AND pid <> pg_backend_pid()`,
  );
  return rows.map((r) => r.pid);
}

/**
 * `accounts_slow_idx` on `slow_key(id)`: every row costs 50 ms, so a build of `rows` rows runs for
 * rows × 50 ms per table scan; a revision a user writes with `op.createIndex(…, { concurrently: true })`.
 */
async function slowIndexMigration(db: LabDatabase, rows: number): Promise<string> {
  await accountsTable(db, rows);
  await db.sql(`CREATE FUNCTION slow_key(k bigint) RETURNS bigint IMMUTABLE LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.05); RETURN k; END $$`);
  return writeMigrations({
    's001.js': `module.exports = { id: 's001', parent: null, message: 'slow index', transactional: false,
      upgrade(op) { op.createIndex('accounts_slow_idx', 'accounts', { expression: 'slow_key(id)' }, { concurrently: true }); },
      downgrade(op) { op.dropIndex('accounts_slow_idx', { concurrently: true }); } };`,
  });
}

/** Waits until the slow build is under way: its INVALID catalog row exists and a backend runs it. */
async function untilBuilding(db: LabDatabase): Promise<number> {
  return eventually(
    'the concurrent build to be running',
    async () => {
      const [pid] = await buildsRunning(db);
      return pid !== undefined && (await indexes(db)).accounts_slow_idx?.valid === false ? pid : undefined;
    },
    30_000,
  );
}

test('fault 4a: a unique CONCURRENTLY build over duplicates fails naming the key and leaves an INVALID index; data fixed + retry drops and rebuilds it valid', async () => {
  const db = await lab.database();
  await accountsTable(db, 30);
  await db.sql(`UPDATE accounts SET email = 'twice@example.com' WHERE id IN (7, 13)`);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'phasegate-index-build-'));
  const generated = await newPattern({
    config: testConfig({ databases: { app: { url: db.url, migrationsDirectory: dir } } }),
    database: 'app',
    pattern: 'add-index',
    args: ['accounts', 'email'],
    options: { unique: true },
  });
  const [rev] = generated.files.map((f) => f.id);

  await withWorker(lab, db, dir, async (w) => {
    const handle = await w.start();
    const failed = await untilState(handle, 'failed');
    expect(failed.failure).toMatchObject({ kind: 'revision', revision: rev, type: 'SqlError', options: ['retry', 'rollback', 'abandon'] });
    // PostgreSQL's DETAIL is what tells the operator which rows to fix.
    expect(failed.failure!.message).toContain('could not create unique index "accounts_email_idx"');
    expect(failed.failure!.message).toContain('Key (email)=(twice@example.com) is duplicated.');
    const leftover = (await indexes(db)).accounts_email_idx;
    expect(leftover).toMatchObject({ valid: false, unique: true });
    // Nothing recorded: no version row and no pending row for a step whose statements failed.
    expect(await versionRows(db)).toEqual({ version: [], pending: [] });

    await db.sql(`UPDATE accounts SET email = 'once@example.com' WHERE id = 13`);
    const answer = await handle.executeUpdate(retryUpdate, { args: [{ by: 'alice' }] });
    expect(answer).toMatchObject({ accepted: true, verb: 'retry' });
    expect(await handle.result()).toMatchObject({ outcome: 'done', applied: [rev] });
    const status = await handle.query(statusQuery);
    expect(status.check).toMatchObject({ passed: true });

    const after = await indexes(db);
    // Dropped and built anew (another oid), valid and unique; no second index next to it.
    expect(Object.keys(after)).toEqual(['accounts_email_idx']);
    expect(after.accounts_email_idx).toMatchObject({ valid: true, unique: true });
    expect(after.accounts_email_idx.oid).not.toBe(leftover.oid);
  });
  expect(await versionRows(db)).toEqual({ version: [rev], pending: [] });
  // The index enforces what it promises.
  await expect(db.sql(`UPDATE accounts SET email = 'twice@example.com' WHERE id = 1`)).rejects.toThrow(/duplicate key value violates unique constraint "accounts_email_idx"/);
});

test('fault 4b: a cancelled workflow cancels the slow build in PostgreSQL and leaves an INVALID index; a new migrate drops it and rebuilds it valid', async () => {
  const db = await lab.database();
  const dir = await slowIndexMigration(db, 60);

  await withWorker(lab, db, dir, async (w) => {
    const first = await w.start();
    const pid = await untilBuilding(db);
    const leftover = (await indexes(db)).accounts_slow_idx;
    await first.cancel();
    await expect(first.result()).rejects.toThrow();
    expect((await untilState(first, 'cancelled')).state).toBe('cancelled');
    // The build's statement was cancelled in PostgreSQL, not left running behind the workflow.
    await eventually('the build backend to stop building', async () => !(await buildsRunning(db)).includes(pid), 20_000);
    expect(await indexes(db)).toEqual({ accounts_slow_idx: { ...leftover, valid: false } });
    expect(await versionRows(db)).toEqual({ version: [], pending: [] });

    const second = await w.start({}, uniqueId('migrate-app-again'));
    expect(await second.result()).toMatchObject({ outcome: 'done', applied: ['s001'] });
    const after = await indexes(db);
    expect(Object.keys(after)).toEqual(['accounts_slow_idx']);
    expect(after.accounts_slow_idx.valid).toBe(true);
    expect(after.accounts_slow_idx.oid).not.toBe(leftover.oid);
  });
  expect(await versionRows(db)).toEqual({ version: ['s001'], pending: [] });
});

test('fault 4b: a build cancelled by a DBA (pg_cancel_backend) stops in failed with an INVALID index; retry drops it and rebuilds it valid', async () => {
  const db = await lab.database();
  const dir = await slowIndexMigration(db, 40);

  await withWorker(lab, db, dir, async (w) => {
    const handle = await w.start();
    const pid = await untilBuilding(db);
    await db.sql('SELECT pg_cancel_backend($1)', [pid]);
    const failed = await untilState(handle, 'failed');
    expect(failed.failure).toMatchObject({ kind: 'revision', revision: 's001', type: 'SqlError' });
    expect(failed.failure!.message).toContain('canceling statement due to user request');
    const leftover = (await indexes(db)).accounts_slow_idx;
    expect(leftover.valid).toBe(false);
    expect(await versionRows(db)).toEqual({ version: [], pending: [] });

    await handle.signal(retrySignal, { by: 'alice' });
    expect(await handle.result()).toMatchObject({ outcome: 'done', applied: ['s001'] });
    const after = await indexes(db);
    expect(Object.keys(after)).toEqual(['accounts_slow_idx']);
    expect(after.accounts_slow_idx.valid).toBe(true);
    expect(after.accounts_slow_idx.oid).not.toBe(leftover.oid);
  });
  expect(await versionRows(db)).toEqual({ version: ['s001'], pending: [] });
});
