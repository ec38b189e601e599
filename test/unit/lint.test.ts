/**
 * `phasegate lint`: squawk over the rendered script, findings tied to their revision. No database.
 */
import path from 'node:path';
import { lint } from '../../lib/commands';
import { loadConfig } from '../../lib/config';
import { writeMigrations } from '../helpers';

const configFor = (directory: string) => loadConfig({ migrations: { directory } }, {});

test('the demo migrations lint clean', async () => {
  const result = await lint({ config: configFor(path.resolve(__dirname, '../../migrations/versions')) });
  expect(result.findings).toEqual([]);
});

test('an unsafe statement is reported with the revision it is in; an excluded rule is not', async () => {
  const dir = writeMigrations({
    'l1_safe.js': `module.exports = { id: 'l1', parent: null, message: 'safe',
      upgrade(op) { op.addColumn('accounts', 'note', 'text'); }, downgrade(op) { op.dropColumn('accounts', 'note'); } };`,
    'l2_unsafe.js': `module.exports = { id: 'l2', parent: 'l1', message: 'unsafe',
      upgrade(op) { op.sql('ALTER TABLE accounts ADD COLUMN score bigint NOT NULL'); }, downgrade(op) { op.dropColumn('accounts', 'score'); } };`,
  });
  const result = await lint({ config: configFor(dir) });
  expect(result.findings).toEqual([expect.objectContaining({ rule: 'adding-required-field', revision: 'l2' })]);
  // lock_timeout is set before every statement, so squawk's require-lock-timeout never fires.
  expect(result.findings.map((f) => f.rule)).not.toContain('require-lock-timeout');

  const excluded = await lint({ config: configFor(dir), exclude: ['adding-required-field'] });
  expect(excluded.findings).toEqual([]);
});
