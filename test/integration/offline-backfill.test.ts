/**
 * @pg-matrix: its SQL, catalog or server behaviour can differ by PostgreSQL major; `npm run test:pg15` runs it again on 15.
 * The `--sql` script's unhappy paths, run with psql against a real database: a backfill stopped in
 * the middle (a cancelled statement, as Ctrl-C or a failover ends it) resumes after its last
 * committed batch and rewrites no row twice; a failing check stops the script with the count and a
 * sample, writes no version row, and a re-run after the rows are fixed goes on from the check; a
 * batch that meets an application's row lock waits, rolls back and is retried.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { upgrade } from '../../lib/commands';
import { loadConfig } from '../../lib/config';
import { createTestDatabase, eventually, type TestDatabase } from '../helpers';
import { psqlBinary } from '../support/postgres-binaries';

const ROWS = 20_000;

/** A project with one revision: add `accounts.plan`, backfill it paced, check it. */
function project(options: { maxRowsPerSecond?: number; check?: string } = {}) {
  const cwd = mkdtempSync(path.join(os.tmpdir(), 'phasegate-offline-backfill-'));
  const dir = path.join(cwd, 'migrations', 'versions');
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    path.join(dir, 'aaa111_plan.js'),
    `module.exports = { id: 'aaa111', parent: null, message: 'accounts.plan',
      backfill: { table: 'accounts', set: { plan: "CASE WHEN id % 2 = 0 THEN 'pro' ELSE 'free' END" }, where: 'plan IS NULL', batchSize: 500${
        options.maxRowsPerSecond ? `, maxRowsPerSecond: ${options.maxRowsPerSecond}` : ''
      } },
      check: { name: 'every account has a plan', failingRows: ${JSON.stringify(options.check ?? 'SELECT id FROM accounts WHERE plan IS NULL')} },
      upgrade(op) { op.addColumn('accounts', 'plan', 'text'); },
      downgrade(op) { op.dropColumn('accounts', 'plan'); } };`,
  );
  return { cwd, config: loadConfig({ migrations: { directory: 'migrations/versions' } }, {}) };
}

async function scriptFile(p: ReturnType<typeof project>): Promise<string> {
  const result = await upgrade({ ...p, sql: true, target: 'head' });
  const file = path.join(p.cwd, 'up.sql');
  writeFileSync(file, result.script);
  return file;
}

function psql(db: TestDatabase, file: string): { done: Promise<{ status: number | null; stdout: string; stderr: string }> } {
  const child = spawn(psqlBinary(), ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', db.url, '-f', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return { done: new Promise((resolve, reject) => (child.on('error', reject), child.on('close', (status) => resolve({ status, stdout, stderr })))) };
}

async function seeded(): Promise<TestDatabase> {
  const db = await createTestDatabase();
  await db.query('CREATE TABLE accounts (id bigint PRIMARY KEY, email text)');
  await db.query(`INSERT INTO accounts SELECT i, 'u' || i FROM generate_series(1, ${ROWS}) AS i`);
  return db;
}

const checkpoint = async (db: TestDatabase) =>
  (await db.query<{ last_key: string[] | null; rows_done: string; rows_updated: string }>("SELECT last_key, rows_done, rows_updated FROM phasegate_backfill_progress WHERE backfill_id = 'offline:aaa111'")).rows[0];

test('a backfill cancelled mid-walk resumes after its last committed batch; no row is rewritten, the version row comes after the check', async () => {
  const db = await seeded();
  try {
    const file = await scriptFile(project({ maxRowsPerSecond: 10_000 }));
    const first = psql(db, file);
    // Stop it the way Ctrl-C does (a cancel of the running statement) once a few batches committed.
    await eventually('2,000 rows walked', async () => Number((await checkpoint(db).catch(() => undefined))?.rows_done ?? 0) >= 2_000, 20_000);
    await db.query("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE 'DO $phasegate_backfill$%' AND pid <> pg_backend_pid()");
    const stopped = await first.done;
    expect(stopped.status).toBe(3);
    expect(stopped.stderr).toContain('canceling statement due to user request');
    const at = await checkpoint(db);
    expect(Number(at.rows_done)).toBeLessThan(ROWS);
    // The statements ran and are pending; the version table does not name the revision yet.
    expect((await db.query('SELECT version_num FROM phasegate_version')).rows).toEqual([]);
    expect((await db.query('SELECT version_num, workflow_id FROM phasegate_version_pending')).rows).toEqual([{ version_num: 'aaa111', workflow_id: 'psql script' }]);
    const filled = Number((await db.query<{ n: string }>('SELECT count(*) AS n FROM accounts WHERE plan IS NOT NULL')).rows[0].n);
    expect(filled).toBe(Number(at.rows_updated));

    const second = await psql(db, file).done;
    expect(second.status).toBe(0);
    expect(second.stdout).toContain('upgrade aaa111: its statements ran before; its backfill and check go on');
    expect(second.stderr).toContain(`resuming after key {${at.last_key![0]}} (${at.rows_done} rows walked before)`);
    // The second run changed only the rows the first did not: together exactly every row once.
    const finished = /backfill of accounts finished: (\d+) rows walked, (\d+) changed/.exec(second.stderr);
    expect(finished?.slice(1).map(Number)).toEqual([ROWS, ROWS]);
    expect((await db.query('SELECT count(*)::int AS n FROM accounts WHERE plan IS DISTINCT FROM (CASE WHEN id % 2 = 0 THEN \'pro\' ELSE \'free\' END)')).rows).toEqual([{ n: 0 }]);
    expect((await db.query('SELECT version_num FROM phasegate_version')).rows).toEqual([{ version_num: 'aaa111' }]);
    expect((await db.query('SELECT * FROM phasegate_version_pending')).rows).toEqual([]);
    expect(await checkpoint(db)).toBeUndefined();
  } finally {
    await db.drop();
  }
}, 60_000);

test('a failing check stops the script with the count and a sample and writes no version row; fixed rows let a re-run finish', async () => {
  const db = await seeded();
  try {
    // The check wants every account to have an email; three do not.
    await db.query('UPDATE accounts SET email = NULL WHERE id IN (17, 42, 99)');
    const file = await scriptFile(project({ check: 'SELECT id FROM accounts WHERE email IS NULL ORDER BY id' }));
    const failed = await psql(db, file).done;
    expect(failed.status).toBe(3);
    expect(failed.stderr).toContain('phasegate: check "every account has a plan" failed: 3 row(s), e.g. (17), (42), (99)');
    expect(failed.stderr).toContain('it resumes at this check');
    expect((await db.query('SELECT version_num FROM phasegate_version')).rows).toEqual([]);

    await db.query("UPDATE accounts SET email = 'fixed' WHERE email IS NULL");
    const again = await psql(db, file).done;
    expect(again.status).toBe(0);
    expect(again.stderr).toContain('backfill of accounts finished before');
    expect(again.stderr).toContain('check "every account has a plan" passed');
    expect((await db.query('SELECT version_num FROM phasegate_version')).rows).toEqual([{ version_num: 'aaa111' }]);
  } finally {
    await db.drop();
  }
}, 60_000);

test('a batch that meets an application row lock waits at most 2 s, rolls back, and is retried until the lock goes', async () => {
  const db = await seeded();
  const app = new pg.Client({ connectionString: db.url });
  await app.connect();
  try {
    const file = await scriptFile(project({ maxRowsPerSecond: 5_000 }));
    const run = psql(db, file);
    // Once the column is there (the statements committed), the app holds row 15000 in an open transaction…
    await eventually('the statements committed', async () => (await db.query("SELECT 1 FROM phasegate_version_pending WHERE version_num = 'aaa111'").catch(() => ({ rows: [] }))).rows.length > 0, 20_000);
    await app.query('BEGIN');
    await app.query('UPDATE accounts SET email = email WHERE id = 15000');
    // …until the batch that holds it has waited longer than the batches' lock_timeout.
    await eventually('the batch before row 15000 committed', async () => Number((await checkpoint(db))?.last_key?.[0] ?? 0) >= 14_500, 20_000);
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    await app.query('COMMIT');
    const result = await run.done;
    expect(result.status).toBe(0);
    expect(result.stderr).toMatch(/a batch waited over 2000 ms for row locks; rolled back, retrying \(1 of 30\)/);
    expect((await db.query('SELECT count(*)::int AS n FROM accounts WHERE plan IS NULL')).rows).toEqual([{ n: 0 }]);
    expect((await db.query('SELECT version_num FROM phasegate_version')).rows).toEqual([{ version_num: 'aaa111' }]);
  } finally {
    await app.end();
    await db.drop();
  }
}, 60_000);
