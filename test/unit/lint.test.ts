/**
 * `phasegate lint`: squawk and phasegate's own rules over the rendered upgrade and downgrade
 * scripts, findings tied to their script and revision. No database.
 */
import path from 'node:path';
import { lint, upgrade } from '../../lib/commands';
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
  expect(result.findings).toEqual([expect.objectContaining({ rule: 'adding-required-field', level: 'error', source: 'squawk', script: 'upgrade', revision: 'l2' })]);
  // The line is the statement's own, counted from 1 as in the script (squawk counts from 0).
  const script = (await upgrade({ config: configFor(dir), sql: true, target: 'base:heads' })).script.split('\n');
  expect(script[result.findings[0].line - 1]).toContain('ADD COLUMN score bigint NOT NULL');
  // lock_timeout is set before every statement, so squawk's require-lock-timeout never fires.
  expect(result.findings.map((f) => f.rule)).not.toContain('require-lock-timeout');

  const excluded = await lint({ config: configFor(dir), exclude: ['adding-required-field'] });
  expect(excluded.findings).toEqual([]);
});

test('the downgrade script is linted too: a full-table UPDATE there is a warning with its measured cost; errors and warnings are counted', async () => {
  const dir = writeMigrations({
    'd1_add.js': `module.exports = { id: 'd1', parent: null, message: 'add mail',
      upgrade(op) { op.addColumn('accounts', 'mail', 'text'); },
      downgrade(op) { op.sql('UPDATE accounts SET email = mail'); op.dropColumn('accounts', 'mail'); } };`,
  });
  const result = await lint({ config: configFor(dir) });
  expect(result.downgradeRange).toBe('heads:base');
  expect(result.findings).toEqual([
    expect.objectContaining({ rule: 'full-table-write', level: 'warning', source: 'phasegate', script: 'downgrade', revision: 'd1' }),
  ]);
  expect(result.findings[0].message).toMatch(/≈ \d+ s per million rows measured on .+; writes to the table wait for all of it/);
  expect({ errors: result.errors, warnings: result.warnings }).toEqual({ errors: 0, warnings: 1 });
  // The downgrade's own drop is what a downgrade is for: counted, not failed.
  expect(result.undoing).toEqual([expect.objectContaining({ rule: 'ban-drop-column', script: 'downgrade', revision: 'd1' })]);
});

test('phasegate rules through lint: a drop without a gate and a backfill whose where cannot become false are errors; --exclude leaves a rule out', async () => {
  const dir = writeMigrations({
    'p1_add.js': `module.exports = { id: 'p1', parent: null, message: 'add org_id',
      upgrade(op) { op.addColumn('accounts', 'org_id', 'bigint'); }, downgrade(op) { op.dropColumn('accounts', 'org_id'); },
      backfill: { table: 'accounts', set: { org_id: 'legacy_org' }, where: 'legacy_org IS NOT NULL' } };`,
    'p2_drop.js': `module.exports = { id: 'p2', parent: 'p1', message: 'drop the fk',
      upgrade(op) { op.dropConstraint('accounts', 'accounts_legacy_fkey'); }, downgrade(op) { op.sql('SELECT 1'); } };`,
  });
  const result = await lint({ config: configFor(dir) });
  expect(result.findings.map((f) => [f.rule, f.level, f.script, f.revision])).toEqual([
    ['backfill-where', 'error', 'upgrade', 'p1'],
    ['destructive-without-gate', 'error', 'upgrade', 'p2'],
  ]);
  expect(result.errors).toBe(2);
  const excluded = await lint({ config: configFor(dir), exclude: ['backfill-where'] });
  expect(excluded.findings.map((f) => f.rule)).toEqual(['destructive-without-gate']);
});
