/** The fault harness itself: a migration through `withWorker` lands and the probes read it back. */
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
