/**
 * phasegate's own lint rules (lib/lint-rules.ts) on small scripts, and the squawk input that keeps
 * line numbers. Pure: no squawk, no database.
 */
import { columnDrops, phasegateRules, sqlForSquawk, sqlFragments, starViewFindings, tableKey, type LintFinding, type RevisionFacts, type ScriptContext } from '../../lib/lint-rules';

/** A script with one section per revision, as lib/offline-sql.ts writes them. */
function script(sections: Record<string, string[]>): string {
  return ['-- phasegate upgrade base:heads', 'SET lock_timeout = 0;', ...Object.entries(sections).flatMap(([rev, lines]) => ['', `-- Running upgrade ${rev}: test`, 'BEGIN;', ...lines, 'COMMIT;'])].join('\n');
}

function run(sql: string, revisions: Record<string, RevisionFacts>, extra: Partial<ScriptContext> = {}, squawk: LintFinding[] = []) {
  return phasegateRules({ script: 'upgrade', sql, revisions: new Map(Object.entries(revisions)), ...extra }, squawk);
}

const rules = (findings: LintFinding[]) => findings.map((f) => `${f.rule}:${f.level}:${f.revision}`);

test('sqlForSquawk: \\gset ends the query, other meta-commands become comments, psql variables literals; line numbers kept', () => {
  const input = [
    '\\set ON_ERROR_STOP on',
    "SELECT 'x' = ANY (string_to_array(:'approve', ',')) AS phasegate_todo, 1::int AS n",
    '\\gset',
    '\\if :phasegate_todo',
    '-- Running upgrade ab12: add a column',
    'ALTER TABLE t ADD COLUMN c text;',
    '\\else',
    "\\echo 'skipped'",
    '\\endif',
    '\\quit',
  ].join('\n');
  const out = sqlForSquawk(input).split('\n');
  expect(out).toHaveLength(10);
  expect(out[0]).toBe('-- \\set ON_ERROR_STOP on');
  expect(out[1]).toBe("SELECT 'x' = ANY (string_to_array('approve', ',')) AS phasegate_todo, 1::int AS n");
  expect(out[2]).toBe(';');
  expect(out[3]).toBe('-- \\if :phasegate_todo');
  expect(out[4]).toBe('-- Running upgrade ab12: add a column');
  expect(out[5]).toBe('ALTER TABLE t ADD COLUMN c text;');
  expect(out.slice(6)).toEqual(['-- \\else', "-- \\echo 'skipped'", '-- \\endif', '-- \\quit']);
});

test('fragments: DO bodies and EXECUTE strings are read, comments are not, lines are where a statement starts', () => {
  const fragments = sqlFragments(["SELECT 'a;b' AS x;", '-- DROP TABLE t;', 'DO $p$', 'BEGIN', "  EXECUTE 'ALTER TABLE t DROP COLUMN c';", 'END', '$p$;'].join('\n'));
  expect(fragments).toEqual([
    { text: "SELECT 'a;b' AS x", line: 1 },
    { text: 'DO', line: 3 },
    { text: 'BEGIN EXECUTE \'ALTER TABLE t DROP COLUMN c\'', line: 4 },
    { text: 'END', line: 6 },
  ]);
  expect(tableKey('"public"."Accounts"')).toBe('Accounts');
  expect(tableKey('Public.ACCOUNTS')).toBe('accounts');
});

describe('destructive-without-gate', () => {
  const drops = ['ALTER TABLE "accounts" DROP CONSTRAINT "accounts_org_fkey";', 'DROP INDEX CONCURRENTLY IF EXISTS "accounts_plan_idx";', 'DROP TABLE orgs;', "DO $x$ BEGIN EXECUTE 'ALTER TABLE accounts DROP COLUMN nick'; END $x$;"];

  test('a drop in a revision without a gate is an error; with a gate it is fine', () => {
    const sql = script({ r1: drops });
    expect(rules(run(sql, { r1: { gate: false } }).findings)).toEqual(Array(4).fill('destructive-without-gate:error:r1'));
    expect(run(sql, { r1: { gate: true } }).findings).toEqual([]);
  });

  test('what is not destructive: DROP NOT NULL/DEFAULT, a NOT NULL check SET NOT NULL replaced, an invalid index a guard drops, a table the chain created, a drop squawk reports', () => {
    const sql = script({
      r1: ['ALTER TABLE accounts ADD CONSTRAINT accounts_plan_check CHECK (plan IS NOT NULL) NOT VALID;', 'ALTER TABLE accounts VALIDATE CONSTRAINT accounts_plan_check;'],
      r2: [
        'ALTER TABLE accounts ALTER COLUMN plan SET NOT NULL;',
        'ALTER TABLE accounts DROP CONSTRAINT IF EXISTS accounts_plan_check;',
        'ALTER TABLE accounts ALTER COLUMN note DROP NOT NULL, ALTER COLUMN note DROP DEFAULT;',
        'CREATE TABLE scratch (id bigint);',
        'DROP TABLE scratch;',
        'ALTER TABLE accounts DROP COLUMN legacy;',
      ],
      r3: ["SELECT EXISTS (SELECT 1 FROM pg_index WHERE indexrelid = to_regclass('\"accounts_plan_idx\"') AND NOT indisvalid) AS phasegate_guard", ';', 'DROP INDEX CONCURRENTLY IF EXISTS "accounts_plan_idx";'],
    });
    const legacyLine = sql.split('\n').indexOf('ALTER TABLE accounts DROP COLUMN legacy;') + 1;
    const squawk: LintFinding[] = [{ rule: 'ban-drop-column', level: 'error', source: 'squawk', script: 'upgrade', revision: 'r2', line: legacyLine, message: '', help: null }];
    expect(run(sql, { r1: { gate: false }, r2: { gate: false }, r3: { gate: false } }, {}, squawk).findings).toEqual([]);
  });

  test('downgrades are not judged by it: gates are for upgrades', () => {
    expect(run(script({ r1: drops }), { r1: { gate: false } }, { script: 'downgrade' }).findings).toEqual([]);
  });
});

describe('backfill-where', () => {
  const sql = script({ r1: ['SELECT 1;'] });
  test('no where is an error', () => {
    const { findings } = run(sql, { r1: { gate: false, backfill: { table: 'accounts', set: { org_id: '1' } } } });
    expect(rules(findings)).toEqual(['backfill-where:error:r1']);
    expect(findings[0].help).toContain('`org_id IS NULL`');
  });
  test('a where that mentions none of the set columns is an error; one that does is fine (quoted and case-folded names too)', () => {
    const none = run(sql, { r1: { gate: false, backfill: { table: 'accounts', set: { org_id: 'legacy_org' }, where: "legacy_org IS NOT NULL AND note <> 'org_id'" } } });
    expect(rules(none.findings)).toEqual(['backfill-where:error:r1']);
    expect(none.findings[0].message).toContain('mentions none of them');
    expect(run(sql, { r1: { gate: false, backfill: { table: 'accounts', set: { org_id: 'legacy_org' }, where: 'ORG_ID IS NULL' } } }).findings).toEqual([]);
    expect(run(sql, { r1: { gate: false, backfill: { table: 'accounts', set: { OrgId: '1' }, where: '"OrgId" IS NULL' } } }).findings).toEqual([]);
    expect(rules(run(sql, { r1: { gate: false, backfill: { table: 'accounts', set: { OrgId: '1' }, where: 'orgid IS NULL' } } }).findings)).toEqual(['backfill-where:error:r1']);
  });
});

describe('not-null-without-check', () => {
  test('SET NOT NULL with no validated CHECK before it is an error; NOT VALID alone is not enough', () => {
    const bare = run(script({ r1: ['ALTER TABLE "Accounts" ALTER COLUMN "Plan" SET NOT NULL;'] }), { r1: { gate: false } });
    expect(rules(bare.findings)).toEqual(['not-null-without-check:error:r1']);
    expect(bare.findings[0].help).toContain('add-not-null-column');
    const notValidated = run(script({ r1: ['ALTER TABLE accounts ADD CONSTRAINT c1 CHECK (plan IS NOT NULL) NOT VALID;', 'ALTER TABLE accounts ALTER plan SET NOT NULL;'] }), { r1: { gate: false } });
    expect(rules(notValidated.findings)).toEqual(['not-null-without-check:error:r1']);
  });

  test('a check validated in an earlier revision or statement (inside EXECUTE too, any quoting) is the CHECK route', () => {
    const sql = script({
      r1: ["DO $p$ BEGIN EXECUTE 'ALTER TABLE \"accounts\" ADD CONSTRAINT \"c1\" CHECK (\"plan\" IS NOT NULL) NOT VALID'; END $p$;"],
      r2: ['ALTER TABLE public.accounts VALIDATE CONSTRAINT C1;'],
      r3: ["DO $p$ BEGIN EXECUTE 'ALTER TABLE \"accounts\" ALTER COLUMN \"plan\" SET NOT NULL'; END $p$;"],
    });
    expect(run(sql, { r1: { gate: false }, r2: { gate: false }, r3: { gate: false } }).findings).toEqual([]);
  });

  test("SET NOT NULL guarded by a validated constraint's existence (the patterns' contract step) is the CHECK route; an unvalidated guard is not", () => {
    // The expand step adds the check at run time (its SQL is built in the DO block), so only its VALIDATE is visible.
    const guarded = (validate: boolean) =>
      script({
        r1: ["DO $p$ BEGIN EXECUTE format('ALTER TABLE t ADD CONSTRAINT %I CHECK (b IS NOT NULL) NOT VALID', 't_b_not_null_check'); END $p$;"],
        r2: validate ? ['ALTER TABLE "t" VALIDATE CONSTRAINT "t_b_not_null_check";'] : ['SELECT 1;'],
        r3: [
          "DO $p$ BEGIN IF EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = '\"t\"'::regclass AND conname = 't_b_not_null_check') THEN EXECUTE 'ALTER TABLE \"t\" ALTER COLUMN \"b\" SET NOT NULL'; END IF; END $p$;",
        ],
      });
    const gates = { r1: { gate: false }, r2: { gate: false }, r3: { gate: true } };
    expect(run(guarded(true), gates).findings).toEqual([]);
    expect(rules(run(guarded(false), gates).findings)).toEqual(['not-null-without-check:error:r3']);
  });

  test('a dropped check no longer counts; in a downgrade it is a warning; a table the chain created is exempt', () => {
    const dropped = script({ r1: ['ALTER TABLE t ADD CONSTRAINT c CHECK (a IS NOT NULL);', 'ALTER TABLE t DROP CONSTRAINT c;'], r2: ['ALTER TABLE t ALTER COLUMN a SET NOT NULL;'] });
    expect(rules(run(dropped, { r1: { gate: true }, r2: { gate: false } }).findings)).toEqual(['not-null-without-check:error:r2']);
    expect(rules(run(script({ r1: ['ALTER TABLE t ALTER COLUMN a SET NOT NULL;'] }), {}, { script: 'downgrade' }).findings)).toEqual(['not-null-without-check:warning:r1']);
    expect(run(script({ r1: ['CREATE TABLE t (a int);'], r2: ['ALTER TABLE t ALTER COLUMN a SET NOT NULL;'] }), {}).findings).toEqual([]);
  });
});

describe('full-table-write', () => {
  test('UPDATE or DELETE without WHERE: an error in an upgrade, a warning with the measured cost in a downgrade', () => {
    const sql = script({ r1: ['UPDATE "accounts" SET "email" = "mail";', 'DELETE FROM audit;'] });
    expect(rules(run(sql, {}).findings)).toEqual(['full-table-write:error:r1', 'full-table-write:error:r1']);
    const down = run(sql, {}, { script: 'downgrade' }).findings;
    expect(rules(down)).toEqual(['full-table-write:warning:r1', 'full-table-write:warning:r1']);
    expect(down[0].message).toMatch(/≈ \d+ s per million rows measured on .+; writes to the table wait for all of it/);
  });

  test('with a row count from the database the message gives the estimate for that table', () => {
    const sizes = { bytes: new Map([['accounts', 1]]), rows: new Map([['accounts', 3_000_000]]) };
    const [f] = run(script({ r1: ['UPDATE accounts SET a = b;'] }), {}, { script: 'downgrade', sizes }).findings;
    expect(f.message).toContain('accounts has ≈ 3,000,000 rows');
  });

  test('not a full-table write: a WHERE, ON CONFLICT DO UPDATE, FOR UPDATE, a trigger event, a table the chain created', () => {
    const sql = script({
      r1: [
        'UPDATE accounts SET a = b WHERE a IS NULL;',
        'INSERT INTO v (k) VALUES (1) ON CONFLICT (k) DO UPDATE SET k = 1;',
        'SELECT 1 FROM t FOR UPDATE SKIP LOCKED;',
        'CREATE TRIGGER x BEFORE INSERT OR UPDATE ON accounts FOR EACH ROW EXECUTE FUNCTION f();',
        'CREATE TABLE fresh (a int, b int);',
        'UPDATE fresh SET a = b;',
      ],
    });
    expect(run(sql, {}).findings).toEqual([]);
  });
});

describe('index-without-concurrently', () => {
  const sql = script({ r1: ['CREATE INDEX accounts_plan_idx ON "accounts" (plan);'] });
  const line = sql.split('\n').findIndex((l) => l.startsWith('CREATE INDEX')) + 1;
  const squawk: LintFinding[] = [{ rule: 'require-concurrent-index-creation', level: 'error', source: 'squawk', script: 'upgrade', revision: 'r1', line, message: 'm', help: null }];
  const sizes = (bytes: number) => ({ bytes: new Map([['accounts', bytes]]), rows: new Map([['accounts', 0]]) });

  test('without sizes squawk\'s finding stands as it is', () => {
    const result = run(sql, {}, {}, squawk);
    expect(result.squawk).toEqual(squawk);
    expect(result.findings).toEqual([]);
  });

  test('with sizes: an error above the threshold, a warning below it', () => {
    const big = run(sql, {}, { sizes: sizes(50 * 1024 * 1024) }, squawk);
    expect(big.squawk).toEqual([]);
    expect(rules(big.findings)).toEqual(['index-without-concurrently:error:r1']);
    expect(big.findings[0].message).toContain('50 MB measured');
    expect(rules(run(sql, {}, { sizes: sizes(50 * 1024 * 1024), maxTableBytes: 100 * 1024 * 1024 }, squawk).findings)).toEqual(['index-without-concurrently:warning:r1']);
  });

  test('a table created in the same chain is exempt', () => {
    const fresh = script({ r0: ['CREATE TABLE accounts (id bigint);'], r1: ['CREATE INDEX accounts_plan_idx ON "accounts" (plan);'] });
    const freshLine = fresh.split('\n').findIndex((l) => l.startsWith('CREATE INDEX')) + 1;
    const result = run(fresh, {}, { sizes: sizes(50 * 1024 * 1024) }, [{ ...squawk[0], line: freshLine }]);
    expect(result.squawk).toEqual([]);
    expect(result.findings).toEqual([]);
  });
});

describe('select-star-view', () => {
  const sql = script({
    r1: ['ALTER TABLE accounts ADD COLUMN full_name text;'],
    r2: ["DO $p$ BEGIN EXECUTE 'ALTER TABLE \"accounts\" DROP COLUMN IF EXISTS \"name\"'; END $p$;", 'ALTER TABLE "orders" DROP CONSTRAINT c;', 'ALTER TABLE t ALTER COLUMN a DROP NOT NULL;'],
  });

  test('columnDrops finds dropped columns in statements and EXECUTE strings, not DROP CONSTRAINT or DROP NOT NULL', () => {
    expect(columnDrops(sql).map((d) => `${d.table}.${d.column}`)).toEqual(['accounts.name']);
  });

  test('a view that reads every column of a table whose column the chain drops is a warning at the dropping step; other tables are not', () => {
    const views = [
      { table: 'accounts', view: 'accounts_all', rule: '_RETURN' },
      { table: 'orders', view: 'orders_all', rule: '_RETURN' },
    ];
    const found = starViewFindings(sql, views, 'upgrade');
    expect(rules(found)).toEqual(['select-star-view:warning:r2']);
    expect(found[0].message).toContain('accounts_all (rule _RETURN) uses every column of accounts, as SELECT * does; this chain drops accounts.name');
    expect(starViewFindings(script({ r1: ['ALTER TABLE accounts ADD COLUMN x int;'] }), views, 'upgrade')).toEqual([]);
  });
});
