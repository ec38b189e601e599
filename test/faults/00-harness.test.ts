/**
 * The fault harness itself: a migration through `withWorker` lands and the probes read it back; and
 * the server under test is the PostgreSQL major the run asked for (embedded, or PHASEGATE_TEST_POSTGRES).
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { embeddedBinDir, testBinDir } from '../support/postgres-binaries';
import { accountsTable, untilState, useFaultLab, versionRows, withWorker, writeMigrations } from './harness';

const lab = useFaultLab();

test('harness: a one-revision migration lands and versionRows reads it', async () => {
  const db = await lab.database();
  await accountsTable(db, 10);
  const dir = writeMigrations({
    'h001.js': `module.exports = { id: 'h001', parent: null, message: 'x',
      upgrade(op) { op.addColumn('accounts', 'note', 'text'); }, downgrade(op) { op.dropColumn('accounts', 'note'); } };`,
  });
  await withWorker(lab, db, dir, async (w) => {
    const handle = await w.start();
    await handle.result();
    expect((await untilState(handle, 'done')).state).toBe('done');
  });
  expect(await versionRows(db)).toEqual({ version: ['h001'], pending: [] });
});

test('harness: the server is the PostgreSQL version this run targets (the matrix is real)', async () => {
  if (process.env.DATABASE_URL) return; // an external server: its version is whatever it is
  const db = await lab.database();
  const [{ v }] = await db.sql<{ v: string }>("SELECT current_setting('server_version_num') AS v");
  const binaryVersion = execFileSync(path.join(testBinDir(), 'postgres'), ['--version'], { encoding: 'utf8' });
  const binaryMajor = /\(PostgreSQL\) (\d+)/.exec(binaryVersion)?.[1];
  expect(Math.floor(Number(v) / 10000)).toBe(Number(binaryMajor));
  if (process.env.PHASEGATE_TEST_POSTGRES) expect(binaryMajor).toBe(process.env.PHASEGATE_TEST_POSTGRES);
  else expect(testBinDir()).toBe(embeddedBinDir());
});
