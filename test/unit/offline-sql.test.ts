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

/**
 * What squawk's require-lock-timeout checks: no DDL runs before lock_timeout is set for it. The
 * session setting lasts until RESET; a LOCAL one until its transaction ends.
 */
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

/** The lines of one revision's section, from its "-- Running" line to the next section. */
function section(sql: string, revision: string): string[] {
  const from = sql.indexOf(`-- Running `, sql.indexOf(`-- Running upgrade ${revision}`) >= 0 ? sql.indexOf(`-- Running upgrade ${revision}`) : sql.indexOf(`-- Running downgrade ${revision}`));
  const next = sql.indexOf('\n\n', from);
  return sql.slice(from, next).split('\n');
}

test('a transactional revision renders as one guarded transaction: timeouts first, its statements, the version rows, COMMIT', async () => {
  const sql = await script('upgrade', [], 'aaa111');
  expect(sql.split('\n').slice(0, 4)).toEqual([
    '-- phasegate upgrade base:aaa111 for database "app" (offline script; nothing was run)',
    '-- from base; 1 revision(s); lock_timeout 500ms on every statement',
    '-- Run it with: psql -v ON_ERROR_STOP=1 -f <this file>   (not with -1/--single-transaction: backfills commit per batch)',
    '-- Safe to run again: steps that ran are skipped, a backfill resumes at its last committed batch, a failed check runs again.',
  ]);
  // psql stops at the first error even when the caller forgot -v ON_ERROR_STOP=1.
  expect(sql).toContain('\n\\set ON_ERROR_STOP on\n');
  const lines = section(sql, 'aaa111');
  expect(lines[0]).toBe('-- Running upgrade aaa111: add accounts.plan [phase expand] (aaa111_x.ts; version rows <base> -> aaa111)');
  // Where the version table stands decides what runs; an unknown state raises before anything changes.
  const gset = lines.indexOf('\\gset');
  expect(lines.slice(2, gset).join('\n')).toContain(`heads IN ('{}'::text[], ARRAY['aaa111']::text[]) AS phasegate_known`);
  expect(lines.slice(gset + 1, gset + 3)).toEqual(['\\if :phasegate_known', '\\else']);
  expect(lines[gset + 5]).toMatch(/RAISE EXCEPTION 'phasegate: the version table holds %, neither the starting point of revision %/);
  const todo = lines.indexOf('\\if :phasegate_todo');
  expect(todo).toBeGreaterThan(gset);
  expect(lines.slice(todo + 1, todo + 5)).toEqual([
    'BEGIN;',
    "SET LOCAL lock_timeout = '500ms';",
    'SET LOCAL statement_timeout = 0;  -- no limit',
    'ALTER TABLE "accounts" ADD COLUMN IF NOT EXISTS "plan" text;',
  ]);
  const commit = lines.indexOf('COMMIT;');
  expect(lines.slice(todo, commit).join('\n')).toContain(`INSERT INTO "public"."phasegate_version" (version_num) SELECT unnest(ARRAY['aaa111']::text[])`);
  expect(lines.slice(commit)).toEqual(['COMMIT;', '\\else', "\\echo 'phasegate: step 1 of 1, upgrade aaa111: already applied; skipped'", '\\endif']);
});

test('a non-transactional revision runs outside BEGIN, its CONCURRENTLY build without lock_timeout, then stamps in its own transaction', async () => {
  const sql = await script('upgrade', ['bbb222'], 'ccc333');
  const lines = section(sql, 'ccc333');
  expect(lines.find((l) => l.startsWith('-- non-transactional'))).toBeDefined();
  const create = lines.findIndex((l) => l.includes('CREATE INDEX CONCURRENTLY IF NOT EXISTS "accounts_plan_idx"'));
  const begin = lines.indexOf('BEGIN;');
  // As the runtime runs it: a concurrent build's wait for older transactions blocks nobody.
  expect(lines.slice(create - 1, create + 2)).toEqual(['SET lock_timeout = 0;', lines[create], "SET lock_timeout = '500ms';"]);
  expect(begin).toBeGreaterThan(create);
  const commit = lines.indexOf('COMMIT;');
  expect(lines.slice(begin, commit).join('\n')).toContain(`DELETE FROM "public"."phasegate_version" WHERE version_num = ANY (ARRAY['bbb222']::text[]);`);
  expect(lines.slice(begin, commit).join('\n')).toContain(`SELECT unnest(ARRAY['ccc333']::text[])`);
  expect(lines.slice(0, begin).join('\n')).not.toMatch(/SET LOCAL/);
});

test('no DDL statement in a full upgrade or downgrade script runs before lock_timeout is set', async () => {
  const up = await script('upgrade', [], 'head');
  const down = await script('downgrade', ['ccc333'], 'base');
  expect(up.match(/^-- Running upgrade/gm)).toHaveLength(3);
  expect(down.match(/^-- Running downgrade/gm)).toHaveLength(3);
  expect(ddlWithoutLockTimeout(up)).toEqual([]);
  expect(ddlWithoutLockTimeout(down)).toEqual([]);
  // The checker itself notices a missing setting.
  expect(ddlWithoutLockTimeout(up.replace(/^SET lock_timeout = '500ms';$/m, '')).slice(0, 2)).toEqual(['DO $phasegate$', 'CREATE TABLE IF NOT EXISTS "public"."phasegate_version" (version_num text PRIMARY KEY);']);
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

test('a guarded statement (onlyIf) runs only when its guard returns a row, as the runtime runs it', async () => {
  const sql = await script('upgrade', ['bbb222'], 'ccc333');
  const lines = sql.split('\n');
  const drop = lines.findIndex((l) => l.includes('DROP INDEX CONCURRENTLY IF EXISTS "accounts_plan_idx"'));
  expect(lines.slice(drop - 4, drop + 3)).toEqual([
    `SELECT EXISTS (SELECT 1 FROM pg_index WHERE indexrelid = to_regclass('"accounts_plan_idx"') AND NOT indisvalid) AS phasegate_guard`,
    '\\gset',
    '\\if :phasegate_guard',
    'SET lock_timeout = 0;',
    'DROP INDEX CONCURRENTLY IF EXISTS "accounts_plan_idx";',
    "SET lock_timeout = '500ms';",
    '\\endif',
  ]);
});

const withBackfill: RevisionModule = {
  id: 'fff666',
  parent: 'aaa111',
  message: 'fill accounts.plan',
  gate: { name: 'deploy:plan', prompt: "Deploy the app that writes plan.\nThen approve, it's safe." },
  backfill: { table: 'accounts', set: { plan: "'free'" }, where: 'plan IS NULL', batchSize: 500, delayMs: 20, maxRowsPerSecond: 5000 },
  check: { name: 'no NULL plan', failingRows: "SELECT id FROM accounts WHERE plan IS NULL AND note <> 'x'", timeoutMs: 60_000 },
  upgrade(op) {
    op.sql('SELECT 1');
  },
  downgrade(op) {
    op.sql('SELECT 2');
  },
};

test('a step with a backfill and a check: statements and a pending row, then batches, the check, and only then the version row', async () => {
  const sql = await script('upgrade', ['aaa111'], 'fff666', {}, [revisions[0], loaded(withBackfill)]);
  const lines = section(sql, 'fff666');
  const todo = lines.lastIndexOf('\\if :phasegate_todo');
  const elif = lines.indexOf('\\elif :phasegate_before');
  expect(lines.slice(todo, elif).join('\n')).toContain(`INSERT INTO "public"."phasegate_version_pending" (version_num, workflow_id) VALUES ('fff666', 'psql script')`);
  expect(lines.slice(todo, elif).join('\n')).not.toContain('"public"."phasegate_version" (version_num)');
  const post = lines.lastIndexOf('\\if :phasegate_before');
  const body = lines.slice(post).join('\n');
  // The walk: the spec's table, assignments, where and pacing; the checkpoint is the offline one.
  expect(body).toContain("SET lock_timeout = '2000ms';\nSET statement_timeout = 0;\nDO $phasegate_backfill$");
  expect(body).toContain(`v_table regclass := to_regclass('"accounts"');`);
  expect(body).toContain(`'"plan" = (''free'')'`);
  expect(body).toContain(`' AND (plan IS NULL)'`);
  expect(body).toContain(', 499, v_key_text');
  expect(body).toContain('PERFORM pg_sleep(0.02);');
  expect(body).toContain('v_ahead := v_run_rows / 5000::float8');
  expect(body).toContain("WHERE backfill_id = 'offline:fff666' AND slice = 0");
  // The check: read-only, its own timeout, raises with the count and a sample.
  const check = body.indexOf('BEGIN READ ONLY;');
  expect(check).toBeGreaterThan(body.indexOf('$phasegate_backfill$;'));
  expect(body.slice(check)).toContain("SET LOCAL statement_timeout = '60000ms';");
  expect(body.slice(check)).toContain(`'SELECT id FROM accounts WHERE plan IS NULL AND note <> ''x'''`);
  expect(body.slice(check)).toContain(`RAISE EXCEPTION 'phasegate: check "%" failed: % row(s), e.g. %', 'no NULL plan'`);
  // Then the version row, the pending row and the checkpoint go, in one transaction.
  const stamp = body.slice(body.indexOf('$phasegate_check$;'));
  expect(stamp).toContain(`SELECT unnest(ARRAY['fff666']::text[])`);
  expect(stamp).toContain(`DELETE FROM "public"."phasegate_version_pending" WHERE version_num = 'fff666';`);
  expect(stamp).toContain(`DELETE FROM "public"."phasegate_backfill_progress" WHERE backfill_id = 'offline:fff666';`);
});

test('a gate stops the script before its step with the prompt and the approving command; -v approve records the approval', async () => {
  const sql = await script('upgrade', ['aaa111'], 'fff666', {}, [revisions[0], loaded(withBackfill)]);
  expect(sql).toContain("--   part 2: gate deploy:plan before fff666; continue with psql -v ON_ERROR_STOP=1 -v approve='deploy:plan' -f <this file>");
  // Without -v approve the variable is empty, so no gate is approved.
  expect(sql).toContain("\\if :{?approve}\n\\else\n\\set approve ''\n\\endif");
  const lines = section(sql, 'fff666');
  expect(lines.join('\n')).toContain(`'deploy:plan' = ANY (string_to_array(:'approve', ',')) AS phasegate_approved`);
  const gate = lines.findIndex((l) => l.startsWith('-- Gate deploy:plan'));
  const firstTodo = lines.indexOf('\\if :phasegate_todo');
  expect(gate).toBeLessThan(firstTodo);
  expect(lines[firstTodo + 1]).toBe('\\if :phasegate_approved');
  const gateBlock = lines.slice(firstTodo, lines.indexOf('\\quit') + 3);
  expect(gateBlock.join('\n')).toContain(`INSERT INTO "public"."phasegate_approval"`);
  expect(gateBlock).toContain("\\echo '  Then approve, it''s safe.'");
  expect(gateBlock).toContain("\\echo '  psql -v ON_ERROR_STOP=1 -v approve=''deploy:plan'' -f <this file>'");
  expect(gateBlock.slice(-3)).toEqual(['\\quit', '\\endif', '\\endif']);
  // The step's statements come after the gate.
  expect(lines.indexOf('SELECT 1;')).toBeGreaterThan(lines.indexOf('\\quit'));
});

test("a downgrade drops the checkpoints of the revision it undoes (the workflow's and the offline one)", async () => {
  const sql = await script('downgrade', ['fff666'], 'aaa111', {}, [revisions[0], loaded(withBackfill)]);
  expect(sql).toContain(`DELETE FROM "public"."phasegate_backfill_progress" WHERE backfill_id = ANY (ARRAY['revision:fff666', 'offline:fff666']::text[]);`);
  expect(sql).not.toContain('-- Gate');
});
