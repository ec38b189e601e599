/**
 * The `--sql` script as text: transactions, timeouts before any DDL, parameters inlined, version
 * rows, non-transactional revisions outside a transaction. No database.
 */
import { loadConfig, type PhasegateConfigInput } from '../../lib/config';
import { renderOfflineScript, renderStatement } from '../../lib/offline-sql';
import { buildPlan, type Direction } from '../../lib/plan';
import type { RevisionModule } from '../../lib/revision';
import type { LoadedRevision } from '../../lib/revision-files';

function loaded(module: RevisionModule): LoadedRevision {
  const parents = module.parents ?? (module.parent ? [module.parent] : []);
  return {
    module,
    file: `/project/migrations/versions/${module.id}_x.ts`,
    hash: `hash-${module.id}`,
    node: { id: module.id, parents, dependsOn: [], branchLabels: [], message: module.message },
  };
}

const addPlan: RevisionModule = {
  id: 'aaa111',
  parent: null,
  message: 'add accounts.plan',
  phase: 'expand',
  upgrade(op) {
    op.addColumn('accounts', 'plan', 'text');
  },
  downgrade(op) {
    op.dropColumn('accounts', 'plan');
  },
};

const setPlans: RevisionModule = {
  id: 'bbb222',
  parent: 'aaa111',
  message: 'set plans',
  upgrade(op) {
    op.sql('UPDATE accounts SET plan = $1 WHERE id = $2 AND note = $3', ["it's free", 5, null]);
  },
  downgrade(op) {
    op.sql('UPDATE accounts SET plan = NULL');
  },
};

const indexPlan: RevisionModule = {
  id: 'ccc333',
  parent: 'bbb222',
  message: 'index accounts.plan',
  transactional: false,
  upgrade(op) {
    op.createIndex('accounts_plan_idx', 'accounts', ['plan'], { concurrently: true });
  },
  downgrade(op) {
    op.dropIndex('accounts_plan_idx', { concurrently: true });
  },
};

const revisions = [addPlan, setPlans, indexPlan].map(loaded);

async function script(
  direction: Direction,
  currentHeads: string[],
  target: string,
  configInput: PhasegateConfigInput = {},
  revs: LoadedRevision[] = revisions,
): Promise<string> {
  const plan = await buildPlan({ database: 'app', revisions: revs, currentHeads, target, direction });
  return renderOfflineScript(plan, loadConfig(configInput, {}), { range: `${currentHeads.join(',') || 'base'}:${target}` });
}

/** What squawk's require-lock-timeout checks: no DDL runs before lock_timeout is set for it. */
function ddlWithoutLockTimeout(sql: string): string[] {
  let local = false;
  let session = false;
  const offenders: string[] = [];
  for (const line of sql.split('\n')) {
    if (/^SET LOCAL lock_timeout/.test(line)) local = true;
    else if (/^SET lock_timeout/.test(line)) session = true;
    else if (/^RESET lock_timeout/.test(line)) session = false;
    else if (/^(COMMIT|ROLLBACK);/.test(line)) local = false;
    else if (/^(ALTER|CREATE|DROP|DO)\b/i.test(line) && !local && !session) offenders.push(line);
  }
  return offenders;
}

test('a transactional revision renders as one transaction: timeouts first, its statements, the version rows, COMMIT', async () => {
  const sql = await script('upgrade', [], 'aaa111');
  expect(sql).toBe(
    [
      '-- phasegate upgrade base:aaa111 for database "app" (offline script; nothing was run)',
      '-- from base; 1 revision(s); lock_timeout 500ms on every statement',
      '-- Run it with: psql -v ON_ERROR_STOP=1 -f <this file>',
      '',
      '-- the migration lock (the one every phasegate writer takes), held until the end of this session',
      "SET lock_timeout = '500ms';",
      'SET statement_timeout = 0;  -- no limit',
      'DO $phasegate$',
      'BEGIN',
      '  IF NOT pg_try_advisory_lock(1885888883) THEN',
      "    RAISE EXCEPTION 'phasegate: another migration of this database holds the migration lock (advisory lock 1885888883)'",
      "      USING HINT = 'wait for it to finish (phasegate status), then run this script again';",
      '  END IF;',
      'END',
      '$phasegate$;',
      'CREATE TABLE IF NOT EXISTS "public"."phasegate_version" (version_num text PRIMARY KEY);',
      'RESET lock_timeout;',
      'RESET statement_timeout;',
      '',
      '-- Running upgrade aaa111: add accounts.plan [phase expand] (aaa111_x.ts; version rows <base> -> aaa111)',
      '-- operations: add column accounts.plan',
      'BEGIN;',
      "SET LOCAL lock_timeout = '500ms';",
      'SET LOCAL statement_timeout = 0;  -- no limit',
      'ALTER TABLE "accounts" ADD COLUMN IF NOT EXISTS "plan" text;',
      'DO $phasegate$',
      'DECLARE moved integer;',
      'BEGIN',
      `  INSERT INTO "public"."phasegate_version" (version_num) SELECT unnest(ARRAY['aaa111']::text[]) ON CONFLICT DO NOTHING;`,
      '  GET DIAGNOSTICS moved = ROW_COUNT;',
      '  IF moved <> 1 THEN',
      "    RAISE EXCEPTION 'phasegate: the version table already holds one of %; this part of the script already ran', 'aaa111'",
      "      USING HINT = 'run phasegate current, then generate the script from what it shows';",
      '  END IF;',
      'END',
      '$phasegate$;',
      'COMMIT;',
      '',
      'SELECT pg_advisory_unlock(1885888883);',
      '',
    ].join('\n'),
  );
});

test('parameters are inlined as literals: quotes doubled, numbers bare, null as NULL', async () => {
  const sql = await script('upgrade', ['aaa111'], 'bbb222');
  expect(sql).toContain(`UPDATE accounts SET plan = 'it''s free' WHERE id = 5 AND note = NULL;`);
  expect(sql).not.toContain('$1');
});

test('a non-transactional revision runs outside BEGIN under session timeouts, then stamps in its own transaction', async () => {
  const sql = await script('upgrade', ['bbb222'], 'ccc333');
  const section = sql.slice(sql.indexOf('-- Running upgrade ccc333'));
  const lines = section.split('\n');
  expect(lines[2]).toMatch(/^-- non-transactional: runs statement by statement/);
  const setLock = lines.indexOf("SET lock_timeout = '500ms';");
  const create = lines.findIndex((l) => l.includes('CREATE INDEX CONCURRENTLY IF NOT EXISTS "accounts_plan_idx"'));
  const begin = lines.indexOf('BEGIN;');
  expect(setLock).toBeGreaterThan(0);
  expect(create).toBeGreaterThan(setLock);
  expect(begin).toBeGreaterThan(create);
  const commit = lines.indexOf('COMMIT;');
  expect(lines[begin + 1]).toBe('DO $phasegate$');
  expect(lines.slice(begin, commit).join('\n')).toContain(`DELETE FROM "public"."phasegate_version" WHERE version_num = ANY (ARRAY['bbb222']::text[]);`);
  expect(lines.slice(begin, commit).join('\n')).toContain(`SELECT unnest(ARRAY['ccc333']::text[])`);
  expect(lines.slice(commit, commit + 4)).toEqual(['COMMIT;', 'RESET lock_timeout;', 'RESET statement_timeout;', '']);
  expect(section).not.toMatch(/SET LOCAL/);
});

test('no DDL statement in a full upgrade or downgrade script runs before lock_timeout is set', async () => {
  const up = await script('upgrade', [], 'head');
  const down = await script('downgrade', ['ccc333'], 'base');
  expect(up.match(/^-- Running upgrade/gm)).toHaveLength(3);
  expect(down.match(/^-- Running downgrade/gm)).toHaveLength(3);
  expect(ddlWithoutLockTimeout(up)).toEqual([]);
  expect(ddlWithoutLockTimeout(down)).toEqual([]);
  // The checker itself notices a missing setting.
  expect(ddlWithoutLockTimeout(up.replace(/^SET LOCAL lock_timeout.*$/m, ''))).toEqual([
    'ALTER TABLE "accounts" ADD COLUMN IF NOT EXISTS "plan" text;',
    'DO $phasegate$',
  ]);
});

test('a downgrade walks down in reverse and ends with an empty version table', async () => {
  const sql = await script('downgrade', ['bbb222'], 'base');
  const order = [...sql.matchAll(/^-- Running downgrade (\w+)/gm)].map((m) => m[1]);
  expect(order).toEqual(['bbb222', 'aaa111']);
  expect(sql).toContain('ALTER TABLE "accounts" DROP COLUMN IF EXISTS "plan";');
  expect(sql).toContain(`DELETE FROM "public"."phasegate_version" WHERE version_num = ANY (ARRAY['aaa111']::text[]);`);
  expect(sql.slice(sql.indexOf('-- Running downgrade aaa111'))).not.toContain('INSERT INTO "public"."phasegate_version"');
  expect(sql).toContain('version rows aaa111 -> <base>');
});

test('timeouts and the version table follow the config', async () => {
  const sql = await script('upgrade', [], 'aaa111', {
    defaults: { lockTimeoutMs: 2000, statementTimeoutMs: 30000 },
    migrations: { versionTableSchema: 'ops', versionTable: 'schema_version' },
  });
  expect(sql).toContain("SET LOCAL lock_timeout = '2000ms';\nSET LOCAL statement_timeout = '30000ms';\n");
  expect(sql).toContain('CREATE TABLE IF NOT EXISTS "ops"."schema_version"');
  expect(sql).not.toContain('phasegate_version');
});

test('a merge step collapses two rows into one; nothing to do renders only the header', async () => {
  const side = loaded({ id: 'ddd444', parent: null, message: 'side', upgrade() {}, downgrade() {} });
  const join = loaded({ id: 'eee555', parents: ['aaa111', 'ddd444'], message: 'merge', upgrade() {}, downgrade() {} });
  const sql = await script('upgrade', ['aaa111', 'ddd444'], 'eee555', {}, [revisions[0], side, join]);
  expect(sql).toContain('version rows aaa111, ddd444 -> eee555');
  expect(sql).toContain(`WHERE version_num = ANY (ARRAY['aaa111', 'ddd444']::text[]);`);
  expect(sql).toContain(`SELECT unnest(ARRAY['eee555']::text[])`);

  const empty = await script('upgrade', ['eee555'], 'heads', {}, [revisions[0], side, join]);
  expect(empty).toContain('-- nothing to do');
  expect(empty).not.toContain('BEGIN');
});

test('renderStatement writes array parameters as PostgreSQL array literals and terminates once', () => {
  expect(renderStatement({ sql: 'SELECT $1::text[], $2', params: [['a"b', 'c\\d', null], 'x'] })).toBe(
    `SELECT '{"a\\"b","c\\\\d",NULL}'::text[], 'x';`,
  );
  expect(renderStatement({ sql: 'SELECT 1;  ' })).toBe('SELECT 1;');
});

test('a guarded statement (onlyIf) is written commented out with its guard, never run unconditionally', async () => {
  const sql = await script('upgrade', ['bbb222'], 'ccc333');
  const lines = sql.split('\n');
  const drop = lines.findIndex((l) => l.includes('DROP INDEX CONCURRENTLY IF EXISTS "accounts_plan_idx"'));
  expect(lines[drop]).toBe('--   DROP INDEX CONCURRENTLY IF EXISTS "accounts_plan_idx";');
  expect(lines[drop - 1]).toBe(`--   SELECT 1 FROM pg_index WHERE indexrelid = to_regclass('"accounts_plan_idx"') AND NOT indisvalid;`);
  expect(lines[drop - 2]).toMatch(/^-- guarded: /);
  expect(lines.filter((l) => /^DROP INDEX/.test(l))).toEqual([]);
});
