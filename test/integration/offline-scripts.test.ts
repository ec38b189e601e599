/**
 * @pg-matrix: its SQL, catalog or server behaviour can differ by PostgreSQL major; `npm run test:pg15` runs it again on 15.
 * `upgrade/downgrade --sql` scripts run with psql, in order, against a real database, the way a
 * DBA deploys them: each script moves only the version rows of the steps it runs (rows of other
 * lines stay), checks that the table holds its starting point before it changes anything, refuses
 * to run while another migration holds the migration lock, and changes nothing when run a second time.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { downgrade, upgrade } from '../../lib/commands';
import { loadConfig } from '../../lib/config';
import { createTestDatabase, type TestDatabase } from '../helpers';
import { psqlBinary } from '../support/postgres-binaries';

/** Two labelled roots: x (c1x001 → c2x002 → c3x003) and y (c1y001 → c2y002); every revision creates a table. */
const graph: Array<{ id: string; parent: string | null; label?: string }> = [
  { id: 'c1x001', parent: null, label: 'xl' },
  { id: 'c2x002', parent: 'c1x001' },
  { id: 'c3x003', parent: 'c2x002' },
  { id: 'c1y001', parent: null, label: 'yl' },
  { id: 'c2y002', parent: 'c1y001' },
];

const cwd = mkdtempSync(path.join(os.tmpdir(), 'phasegate-offline-'));
const dir = path.join(cwd, 'migrations', 'versions');
mkdirSync(dir, { recursive: true });
for (const r of graph) {
  writeFileSync(
    path.join(dir, `${r.id}_t.js`),
    `module.exports = { id: '${r.id}', parent: ${JSON.stringify(r.parent)}, message: 'table t_${r.id}', ${r.label ? `branchLabels: ['${r.label}'],` : ''}
      upgrade(op) { op.sql('CREATE TABLE t_${r.id} (id int)'); },
      downgrade(op) { op.sql('DROP TABLE t_${r.id}'); } };`,
  );
}
const project = { cwd, config: loadConfig({ migrations: { directory: 'migrations/versions' } }, {}) };

let db: TestDatabase;
let psql: string;

beforeAll(async () => {
  psql = psqlBinary();
  db = await createTestDatabase();
});
afterAll(() => db.drop());

/** Renders the script and runs it with psql -v ON_ERROR_STOP=1, as its header says. */
async function run(direction: 'upgrade' | 'downgrade', range: string): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const command = direction === 'upgrade' ? upgrade : downgrade;
  const { script } = await command({ ...project, sql: true, target: range });
  const file = path.join(cwd, `${direction}-${range.replace(/[^\w]+/g, '_')}.sql`);
  writeFileSync(file, script);
  const result = spawnSync(psql, ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', db.url, '-f', file], { encoding: 'utf8' });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

async function rows(): Promise<string[]> {
  return (await db.query<{ version_num: string }>('SELECT version_num FROM phasegate_version ORDER BY 1')).rows.map((r) => r.version_num);
}

async function tables(): Promise<string[]> {
  const { rows: found } = await db.query<{ t: string }>(`SELECT tablename AS t FROM pg_tables WHERE tablename LIKE 't\\_%' ORDER BY 1`);
  return found.map((r) => r.t.slice(2));
}

test('scripts run in order move only their own lines: the y line keeps its row (Alembic ends with {c2y002, c3x003})', async () => {
  expect(await run('upgrade', 'c2x002')).toMatchObject({ status: 0 });
  expect(await rows()).toEqual(['c2x002']);
  expect(await run('upgrade', 'c2x002:c2y002')).toMatchObject({ status: 0 });
  expect(await rows()).toEqual(['c2x002', 'c2y002']);
  expect(await run('upgrade', 'c2x002:xl@head')).toMatchObject({ status: 0 });
  expect(await rows()).toEqual(['c2y002', 'c3x003']);
  expect(await tables()).toEqual(['c1x001', 'c1y001', 'c2x002', 'c2y002', 'c3x003']);
});

test('a downgrade script on one line leaves the other line row and tables alone', async () => {
  expect(await run('downgrade', 'c3x003:c1x001')).toMatchObject({ status: 0 });
  expect(await rows()).toEqual(['c1x001', 'c2y002']);
  expect(await tables()).toEqual(['c1x001', 'c1y001', 'c2y002']);
});

test('a script whose starting point the table does not hold stops before its first statement', async () => {
  const before = await tables();
  const result = await run('upgrade', 'c2x002:xl@head');
  expect(result.status).toBe(3);
  expect(result.stderr).toContain('the version table holds {}, neither the starting point of revision c3x003 (c2x002) nor a later point of this script');
  expect(await tables()).toEqual(before);
  expect(await rows()).toEqual(['c1x001', 'c2y002']);
});

test('a script run a second time skips every step it ran and changes nothing: no version row moves twice', async () => {
  expect(await run('upgrade', 'c1x001:c2x002')).toMatchObject({ status: 0 });
  const tablesAfter = await tables();
  const again = await run('upgrade', 'c1x001:c2x002');
  expect(again.status).toBe(0);
  expect(again.stdout).toContain('phasegate: step 1 of 1, upgrade c2x002: already applied; skipped');
  expect(await rows()).toEqual(['c2x002', 'c2y002']);
  expect(await tables()).toEqual(tablesAfter);
});

test('`from` may name several heads; the script takes the migration lock and refuses while another session holds it', async () => {
  const holder = new pg.Client({ connectionString: db.url });
  await holder.connect();
  try {
    await holder.query('SELECT pg_advisory_lock(1885888883)');
    const blocked = await run('upgrade', 'c2x002,c2y002:heads');
    expect(blocked.status).toBe(3);
    expect(blocked.stderr).toContain('another migration of this database holds the migration lock');
    expect(await rows()).toEqual(['c2x002', 'c2y002']);
  } finally {
    await holder.end();
  }
  expect(await run('upgrade', 'c2x002,c2y002:heads')).toMatchObject({ status: 0 });
  expect(await rows()).toEqual(['c2y002', 'c3x003']);
  // Nothing is left holding the lock once psql is done.
  expect((await db.query<{ n: string }>(`SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory'`)).rows[0].n).toBe('0');
});
