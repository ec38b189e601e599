/**
 * `phasegate new <pattern>`: every pattern generates into a temporary migrations folder; the files
 * are loaded back as revision files, planned from base (and back down), and the chain is asserted —
 * parents, phases, gates, backfills, checks, transactional flags — together with the SQL each step
 * renders. The generated files type-check under the project's strictness, and squawk finds nothing
 * in their `upgrade base:head --sql` script beyond the exclusions listed below. No database.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import ts from 'typescript';
import { newPattern, runSquawk, upgrade, type NewPatternResult } from '../../lib/commands';
import { sqlForSquawk } from '../../lib/commands/lint';
import { formatNewPattern } from '../../lib/commands/new';
import { loadConfig, type PhasegateConfig } from '../../lib/config';
import type { PhasegateError } from '../../lib/errors';
import { patterns } from '../../lib/patterns';
import { buildPlan, type Plan, type PlanStep } from '../../lib/plan';
import { loadRevisionDirectory } from '../../lib/revision-files';

const root = path.resolve(__dirname, '../..');
const NOW = new Date('2025-01-02T03:04:05.000Z');

interface Project {
  cwd: string;
  dir: string;
  config: PhasegateConfig;
}

function project(files: Record<string, string> = {}): Project {
  const cwd = mkdtempSync(path.join(os.tmpdir(), 'phasegate-patterns-'));
  const dir = path.join(cwd, 'migrations', 'versions');
  mkdirSync(dir, { recursive: true });
  for (const [name, content] of Object.entries(files)) writeFileSync(path.join(dir, name), content);
  return { cwd, dir, config: loadConfig({ migrations: { directory: 'migrations/versions' } }, {}) };
}

async function failure(promise: Promise<unknown>): Promise<PhasegateError> {
  try {
    await promise;
  } catch (err) {
    return err as PhasegateError;
  }
  throw new Error('expected the command to fail');
}

/**
 * What a step runs, as text: a plain statement as it is; for a DO block (the ops' idempotency guards
 * and the patterns' catalog-driven steps) the statements it runs, one per line, so a case reads as
 * the DDL it performs.
 */
function sqlOf(step: PlanStep): string[] {
  return step.statements.flatMap((s) => {
    if (!s.sql.startsWith('DO ')) return [s.sql];
    return s.sql
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => /^(ALTER|CREATE|DROP|UPDATE|EXECUTE|RAISE)\b/.test(l))
      .map((l) => `[DO] ${l}`);
  });
}

interface Generated {
  p: Project;
  result: NewPatternResult;
  up: Plan;
  down: Plan;
}

async function generate(pattern: string, args: string[], options: Record<string, unknown> = {}, p: Project = project()): Promise<Generated> {
  const result = await newPattern({ cwd: p.cwd, config: p.config, pattern, args, options, now: NOW });
  const revisions = loadRevisionDirectory(p.dir);
  const up = await buildPlan({ database: 'default', revisions, currentHeads: [], target: 'head', direction: 'upgrade' });
  const head = result.files[result.files.length - 1].id;
  const down = await buildPlan({ database: 'default', revisions, currentHeads: [head], target: 'base', direction: 'downgrade' });
  return { p, result, up, down };
}

/** The chain as the plan sees it: one line per step. */
function chain(plan: Plan) {
  return plan.steps.map((s) => ({
    phase: s.phase,
    transactional: s.transactional,
    gate: s.gate?.name ?? null,
    backfill: s.backfill ?? null,
    check: s.check ?? null,
  }));
}

function expectLinearChain(g: Generated): void {
  const ids = g.result.files.map((f) => f.id);
  expect(g.up.steps.map((s) => s.revision)).toEqual(ids);
  expect(g.up.steps.map((s) => s.headsBefore)).toEqual([[], ...ids.slice(0, -1).map((id) => [id])]);
  expect(g.result.files.map((f) => f.parent)).toEqual([null, ...ids.slice(0, -1)]);
  expect(g.down.steps.map((s) => s.revision)).toEqual([...ids].reverse());
  for (const f of g.result.files) expect(path.basename(f.file)).toMatch(new RegExp(`^${f.id}_[a-z0-9_]+\\.ts$`));
}

const step = (g: Generated, i: number) => sqlOf(g.up.steps[i]);

/**
 * rename-column and change-column-type: a new column takes over its source's attributes (each only
 * when the source has one other than the default), after refusing an identity or generated source.
 */
const unsyncable = (table: string, source: string, hint: string) =>
  `[DO] RAISE EXCEPTION USING MESSAGE = '${table}.${source} is ' || src.unsyncable || ': a trigger cannot keep another column in step with it', HINT = '${hint}';`;
const carried = (table: string, column: string) => [
  `[DO] EXECUTE 'ALTER TABLE "${table}" ALTER COLUMN "${column}" SET STATISTICS ' || src.statistics;`,
  `[DO] EXECUTE 'ALTER TABLE "${table}" ALTER COLUMN "${column}" SET STORAGE ' || src.storage;`,
  `[DO] EXECUTE 'ALTER TABLE "${table}" ALTER COLUMN "${column}" SET COMPRESSION ' || src.compression;`,
  `[DO] EXECUTE 'COMMENT ON COLUMN "${table}"."${column}" IS ' || quote_literal(src.comment);`,
];
const RENAME_HINT = 'rename it with ALTER TABLE … RENAME COLUMN in a revision of its own (catalog only, but statements that use the old name fail from its commit on), or make it a plain column first (ALTER COLUMN … DROP IDENTITY or DROP EXPRESSION)';
const TYPE_HINT = 'change its type with ALTER TABLE … ALTER COLUMN … TYPE in a revision of its own (it rewrites the table under ACCESS EXCLUSIVE), or make it a plain column first (ALTER COLUMN … DROP IDENTITY or DROP EXPRESSION)';
const stepDown = (g: Generated, i: number) => sqlOf(g.down.steps[g.down.steps.length - 1 - i]);

describe('add-not-null-column', () => {
  test('a constant default: the column arrives with it (no rewrite), backfill + check, gate, CHECK NOT VALID, VALIDATE, SET NOT NULL', async () => {
    const g = await generate('add-not-null-column', ['accounts', 'org_id', 'bigint'], { default: '0' });
    expectLinearChain(g);
    const check = 'accounts_org_id_not_null_check';
    expect(chain(g.up)).toEqual([
      {
        phase: 'expand',
        transactional: true,
        gate: null,
        backfill: { table: 'accounts', set: { org_id: '0' }, where: '"org_id" IS NULL' },
        check: { name: 'no NULLs left in accounts.org_id', failingRows: 'SELECT * FROM "accounts" WHERE "org_id" IS NULL' },
      },
      { phase: 'enforce', transactional: true, gate: 'enforce:accounts.org_id', backfill: null, check: null },
      { phase: 'validate', transactional: true, gate: null, backfill: null, check: null },
      { phase: 'contract', transactional: true, gate: null, backfill: null, check: null },
    ]);
    expect(g.up.steps[1].gate?.prompt).toContain('reject writes that leave accounts.org_id NULL');
    expect(step(g, 0)).toEqual(['ALTER TABLE "accounts" ADD COLUMN IF NOT EXISTS "org_id" bigint DEFAULT 0']);
    expect(step(g, 1)).toEqual([`[DO] ALTER TABLE "accounts" ADD CONSTRAINT "${check}" CHECK ("org_id" IS NOT NULL) NOT VALID;`]);
    expect(step(g, 2)).toEqual([`ALTER TABLE "accounts" VALIDATE CONSTRAINT "${check}"`]);
    expect(step(g, 3)).toEqual([
      `[DO] EXECUTE 'ALTER TABLE "accounts" VALIDATE CONSTRAINT "${check}"';`,
      'ALTER TABLE "accounts" ALTER COLUMN "org_id" SET NOT NULL',
      `ALTER TABLE "accounts" DROP CONSTRAINT IF EXISTS "${check}"`,
    ]);
    // Each downgrade returns to the state the revision before left.
    expect(stepDown(g, 3)).toEqual([
      `[DO] ALTER TABLE "accounts" ADD CONSTRAINT "${check}" CHECK ("org_id" IS NOT NULL) NOT VALID;`,
      'ALTER TABLE "accounts" ALTER COLUMN "org_id" DROP NOT NULL',
    ]);
    expect(stepDown(g, 2)).toEqual([]);
    expect(stepDown(g, 1)).toEqual([`ALTER TABLE "accounts" DROP CONSTRAINT IF EXISTS "${check}"`]);
    expect(stepDown(g, 0)).toEqual(['ALTER TABLE "accounts" DROP COLUMN IF EXISTS "org_id"']);
  });

  test('a volatile default is set apart from ADD COLUMN (never a rewrite) and becomes the backfill', async () => {
    const g = await generate('add-not-null-column', ['app.events', 'token', 'uuid'], { default: 'gen_random_uuid()' });
    expect(step(g, 0)).toEqual([
      'ALTER TABLE "app"."events" ADD COLUMN IF NOT EXISTS "token" uuid',
      'ALTER TABLE "app"."events" ALTER COLUMN "token" SET DEFAULT gen_random_uuid()',
    ]);
    expect(g.up.steps[0].backfill).toEqual({ table: 'app.events', set: { token: 'gen_random_uuid()' }, where: '"token" IS NULL' });
    expect(readFileSync(g.result.files[0].file, 'utf8')).toContain('given to ADD COLUMN it would rewrite the whole table');
  });

  test('a constant default with --backfill: existing rows must stay NULL for the backfill, so the default is set apart', async () => {
    const g = await generate('add-not-null-column', ['accounts', 'org_id', 'bigint'], { default: '0', backfill: 'id % 7' });
    expect(step(g, 0)).toEqual([
      'ALTER TABLE "accounts" ADD COLUMN IF NOT EXISTS "org_id" bigint',
      'ALTER TABLE "accounts" ALTER COLUMN "org_id" SET DEFAULT 0',
    ]);
    expect(g.up.steps[0].backfill?.set).toEqual({ org_id: 'id % 7' });
  });

  test('--backfill alone: the backfill waits behind a deploy gate, because the running app inserts NULLs until then', async () => {
    const g = await generate('add-not-null-column', ['accounts', 'plan', 'text'], { backfill: "CASE WHEN paid THEN 'pro' ELSE 'free' END" });
    expectLinearChain(g);
    expect(chain(g.up)).toEqual([
      { phase: 'expand', transactional: true, gate: null, backfill: null, check: null },
      {
        phase: 'backfill',
        transactional: true,
        gate: 'deploy:accounts.plan',
        backfill: { table: 'accounts', set: { plan: "CASE WHEN paid THEN 'pro' ELSE 'free' END" }, where: '"plan" IS NULL' },
        check: { name: 'no NULLs left in accounts.plan', failingRows: 'SELECT * FROM "accounts" WHERE "plan" IS NULL' },
      },
      { phase: 'enforce', transactional: true, gate: null, backfill: null, check: null },
      { phase: 'validate', transactional: true, gate: null, backfill: null, check: null },
      { phase: 'contract', transactional: true, gate: null, backfill: null, check: null },
    ]);
    expect(g.up.steps[1].gate?.prompt).toMatch(/^Deploy the app version that writes accounts\.plan on every INSERT/);
    expect(step(g, 0)).toEqual(['ALTER TABLE "accounts" ADD COLUMN IF NOT EXISTS "plan" text']);
    expect(step(g, 1)).toEqual([]);
    expect(readFileSync(g.result.files[1].file, 'utf8')).toContain('  upgrade() {\n    // Nothing to change in the schema');
  });
});

describe('rename-column', () => {
  test('expand (new column of the old type, two-way trigger, backfill, check) → deploy gate → contract gate', async () => {
    const g = await generate('rename-column', ['accounts', 'name', 'full_name']);
    expectLinearChain(g);
    expect(chain(g.up)).toEqual([
      {
        phase: 'expand',
        transactional: true,
        gate: null,
        backfill: { table: 'accounts', set: { full_name: '"name"' }, where: '"full_name" IS NULL AND "name" IS NOT NULL' },
        check: {
          name: 'accounts.full_name equals accounts.name in every row',
          failingRows: 'SELECT * FROM "accounts" WHERE ("full_name")::text COLLATE "C" IS DISTINCT FROM ("name")::text COLLATE "C"',
        },
      },
      { phase: 'deploy', transactional: true, gate: 'deploy:accounts.full_name', backfill: null, check: null },
      { phase: 'contract', transactional: true, gate: 'contract:accounts.name', backfill: null, check: null },
    ]);
    expect(g.up.steps[1].gate?.prompt).toContain('reads and writes full_name instead of name');
    const sync = 'accounts_name_to_full_name_sync';
    const check = 'accounts_full_name_not_null_check';
    expect(step(g, 0)).toEqual([
      `[DO] RAISE EXCEPTION USING MESSAGE = 'column name of accounts does not exist';`,
      unsyncable('accounts', 'name', RENAME_HINT),
      `[DO] EXECUTE 'ALTER TABLE "accounts" ADD COLUMN IF NOT EXISTS "full_name" ' || src.type || coalesce(' COLLATE ' || src.collation, '');`,
      ...carried('accounts', 'full_name'),
      `[DO] EXECUTE 'ALTER TABLE "accounts" ADD CONSTRAINT "${check}" CHECK ("full_name" IS NOT NULL) NOT VALID';`,
      [
        `CREATE OR REPLACE FUNCTION "${sync}"() RETURNS trigger LANGUAGE "plpgsql" AS $phasegate$`,
        'BEGIN',
        "  IF TG_OP = 'INSERT' THEN",
        '    IF NEW."full_name" IS NULL THEN',
        '      NEW."full_name" := NEW."name";',
        '    ELSE',
        '      NEW."name" := NEW."full_name";',
        '    END IF;',
        '  ELSIF (NEW."full_name")::text COLLATE "C" IS DISTINCT FROM (OLD."full_name")::text COLLATE "C" THEN',
        '    NEW."name" := NEW."full_name";',
        '  ELSE',
        '    NEW."full_name" := NEW."name";',
        '  END IF;',
        '  RETURN NEW;',
        'END',
        '$phasegate$',
      ].join('\n'),
      `CREATE OR REPLACE TRIGGER "${sync}" BEFORE INSERT OR UPDATE ON "accounts" FOR EACH ROW EXECUTE FUNCTION "${sync}"()`,
    ]);
    expect(step(g, 1)).toEqual([`[DO] EXECUTE 'ALTER TABLE "accounts" VALIDATE CONSTRAINT "${check}"';`]);
    expect(step(g, 2)).toEqual([
      `[DO] RAISE EXCEPTION USING MESSAGE = 'accounts.name is still used by ' || dependents, HINT = 'create their equivalents on full_name and drop these in a revision before this one; dropping the column would drop them silently';`,
      `DROP TRIGGER IF EXISTS "${sync}" ON "accounts"`,
      `DROP FUNCTION IF EXISTS "${sync}"()`,
      `[DO] EXECUTE 'ALTER TABLE "accounts" ALTER COLUMN "full_name" SET DEFAULT ' || default_expr;`,
      `[DO] EXECUTE 'ALTER TABLE "accounts" ALTER COLUMN "name" DROP DEFAULT';`,
      `[DO] EXECUTE 'ALTER TABLE "accounts" ALTER COLUMN "full_name" SET NOT NULL';`,
      `[DO] EXECUTE 'ALTER TABLE "accounts" DROP CONSTRAINT "${check}"';`,
      'ALTER TABLE "accounts" DROP COLUMN IF EXISTS "name"',
    ]);
    expect(stepDown(g, 2).slice(0, 12)).toEqual([
      `[DO] RAISE EXCEPTION USING MESSAGE = 'column full_name of accounts does not exist';`,
      unsyncable('accounts', 'full_name', RENAME_HINT),
      `[DO] EXECUTE 'ALTER TABLE "accounts" ADD COLUMN IF NOT EXISTS "name" ' || src.type || coalesce(' COLLATE ' || src.collation, '');`,
      ...carried('accounts', 'name'),
      'UPDATE "accounts" SET "name" = "full_name"',
      `[DO] EXECUTE 'ALTER TABLE "accounts" ALTER COLUMN "name" SET DEFAULT ' || default_expr;`,
      `[DO] EXECUTE 'ALTER TABLE "accounts" ALTER COLUMN "full_name" DROP DEFAULT';`,
      `[DO] EXECUTE 'ALTER TABLE "accounts" ALTER COLUMN "name" SET NOT NULL';`,
      `[DO] EXECUTE 'ALTER TABLE "accounts" ALTER COLUMN "full_name" DROP NOT NULL';`,
    ]);
    expect(stepDown(g, 0)).toEqual([`DROP TRIGGER IF EXISTS "${sync}" ON "accounts"`, `DROP FUNCTION IF EXISTS "${sync}"()`, 'ALTER TABLE "accounts" DROP COLUMN IF EXISTS "full_name"']);
  });
});

describe('add-index', () => {
  test('one non-transactional revision: guarded DROP of an INVALID leftover, CREATE INDEX CONCURRENTLY IF NOT EXISTS, a validity check', async () => {
    const g = await generate('add-index', ['app.accounts', 'org_id', 'created_at'], { where: 'deleted_at IS NULL' });
    expectLinearChain(g);
    const index = 'accounts_org_id_created_at_idx';
    expect(chain(g.up)).toEqual([
      {
        phase: 'build',
        transactional: false,
        gate: null,
        backfill: null,
        check: {
          name: `index app.${index} is valid`,
          failingRows: `SELECT 'app.${index}' AS missing_index WHERE NOT EXISTS (SELECT 1 FROM pg_index WHERE indexrelid = to_regclass('"app"."${index}"') AND indisvalid)`,
        },
      },
    ]);
    expect(g.up.steps[0].statements).toEqual([
      {
        sql: `DROP INDEX CONCURRENTLY IF EXISTS "app"."${index}"`,
        onlyIf: { sql: 'SELECT 1 FROM pg_index WHERE indexrelid = to_regclass($1) AND NOT indisvalid', params: [`"app"."${index}"`] },
        // The op's own flag travels with each statement: the runtime never guesses it from the SQL text.
        concurrently: true,
      },
      {
        sql: `CREATE INDEX CONCURRENTLY IF NOT EXISTS "${index}" ON "app"."accounts" ("org_id", "created_at") WHERE (deleted_at IS NULL)`,
        concurrently: true,
      },
    ]);
    expect(stepDown(g, 0)).toEqual([`DROP INDEX CONCURRENTLY IF EXISTS "app"."${index}"`]);
  });

  test('--unique --name, and the whole --sql script for review', async () => {
    const g = await generate('add-index', ['accounts', 'email'], { unique: true, name: 'accounts_email_uq' });
    const id = g.result.files[0].id;
    const offline = await upgrade({ cwd: g.p.cwd, config: g.p.config, sql: true, target: 'base:head' });
    const section = offline.script.slice(offline.script.indexOf('-- Running upgrade'));
    const body = section.slice(section.indexOf('\\if :phasegate_todo'), section.indexOf('BEGIN;'));
    expect(section.split('\n').slice(0, 2)).toEqual([
      `-- Running upgrade ${id}: unique index accounts_email_uq on accounts (email) [phase build] (${path.basename(g.result.files[0].file)}; version rows <base> -> ${id})`,
      '-- operations: create index accounts_email_uq on accounts (unique, concurrently)',
    ]);
    expect(body).toBe(
      [
        '\\if :phasegate_todo',
        '-- non-transactional: runs statement by statement (CONCURRENTLY cannot run inside a transaction) under the',
        "-- session's timeouts; every statement is idempotent, so if one fails, fix the cause and run the script again",
        // The op's guard: an INVALID index a failed build left is dropped first, exactly when the runtime would.
        `SELECT EXISTS (SELECT 1 FROM pg_index WHERE indexrelid = to_regclass('"accounts_email_uq"') AND NOT indisvalid) AS phasegate_guard`,
        '\\gset',
        '\\if :phasegate_guard',
        'SET lock_timeout = 0;',
        'DROP INDEX CONCURRENTLY IF EXISTS "accounts_email_uq";',
        "SET lock_timeout = '500ms';",
        '\\endif',
        'SET lock_timeout = 0;',
        'CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS "accounts_email_uq" ON "accounts" ("email");',
        "SET lock_timeout = '500ms';",
        '',
      ].join('\n'),
    );
    // Then its version row, in a transaction of its own.
    expect(section).toContain(`SELECT unnest(ARRAY['${id}']::text[]) ON CONFLICT DO NOTHING;`);
  });
});

describe('add-foreign-key', () => {
  test('NOT VALID → VALIDATE; --gate stops before VALIDATE with the orphan query in its prompt', async () => {
    const g = await generate('add-foreign-key', ['orders', 'user_id', 'users'], { gate: true, onDelete: 'cascade' });
    expectLinearChain(g);
    expect(chain(g.up)).toEqual([
      { phase: 'expand', transactional: true, gate: null, backfill: null, check: null },
      { phase: 'validate', transactional: true, gate: 'validate:orders.orders_user_id_fkey', backfill: null, check: null },
    ]);
    expect(g.up.steps[1].gate?.prompt).toContain(
      'SELECT * FROM "orders" AS child WHERE child."user_id" IS NOT NULL AND NOT EXISTS (SELECT 1 FROM "users" AS parent WHERE parent."id" = child."user_id")',
    );
    expect(step(g, 0)).toEqual([
      '[DO] ALTER TABLE "orders" ADD CONSTRAINT "orders_user_id_fkey" FOREIGN KEY ("user_id") REFERENCES "users" ("id") ON DELETE CASCADE NOT VALID;',
    ]);
    expect(step(g, 1)).toEqual(['ALTER TABLE "orders" VALIDATE CONSTRAINT "orders_user_id_fkey"']);
    expect(stepDown(g, 0)).toEqual(['ALTER TABLE "orders" DROP CONSTRAINT IF EXISTS "orders_user_id_fkey"']);
  });

  test('without --gate, with a referenced column and a name', async () => {
    const g = await generate('add-foreign-key', ['orders', 'account_code', 'billing.accounts', 'code'], { name: 'orders_account_fk' });
    expect(chain(g.up).map((s) => s.gate)).toEqual([null, null]);
    expect(step(g, 0)).toEqual([
      '[DO] ALTER TABLE "orders" ADD CONSTRAINT "orders_account_fk" FOREIGN KEY ("account_code") REFERENCES "billing"."accounts" ("code") NOT VALID;',
    ]);
  });
});

describe('change-column-type', () => {
  test('expand (checked source type, derived column, trigger, backfill, check) → validate → swap gate (drop old, rename new)', async () => {
    const g = await generate('change-column-type', ['items', 'code', 'integer'], { fromType: 'text', using: "nullif(code, '')::integer", down: 'code::text' });
    expectLinearChain(g);
    const convert = `CAST((nullif(code, '')::integer) AS integer)`;
    expect(chain(g.up)).toEqual([
      {
        phase: 'expand',
        transactional: true,
        gate: null,
        backfill: { table: 'items', set: { _phasegate_new_code: convert }, where: '"_phasegate_new_code" IS NULL AND "code" IS NOT NULL' },
        check: {
          name: `items._phasegate_new_code equals ${convert} in every row`,
          failingRows: `SELECT * FROM "items" WHERE "_phasegate_new_code" IS DISTINCT FROM ${convert}`,
        },
      },
      { phase: 'validate', transactional: true, gate: null, backfill: null, check: null },
      { phase: 'contract', transactional: true, gate: 'swap:items.code', backfill: null, check: null },
    ]);
    const sync = 'items_code_to_integer_sync';
    const check = 'items__phasegate_new_code_not_null_check';
    expect(step(g, 0)).toEqual([
      `[DO] RAISE EXCEPTION USING MESSAGE = 'column code of items does not exist';`,
      unsyncable('items', 'code', TYPE_HINT),
      `[DO] RAISE EXCEPTION USING MESSAGE = 'items.code is ' || src.type_oid::text || ', not text', HINT = 'generate the chain again with --from-type set to the column''s current type';`,
      `[DO] EXECUTE 'ALTER TABLE "items" ADD COLUMN IF NOT EXISTS "_phasegate_new_code" integer' || coalesce(' COLLATE ' || src.collation, '');`,
      ...carried('items', '_phasegate_new_code'),
      `[DO] EXECUTE 'ALTER TABLE "items" ADD CONSTRAINT "${check}" CHECK ("_phasegate_new_code" IS NOT NULL) NOT VALID';`,
      [
        `CREATE OR REPLACE FUNCTION "${sync}"() RETURNS trigger LANGUAGE "plpgsql" AS $phasegate$`,
        'BEGIN',
        `  NEW."_phasegate_new_code" := (SELECT ${convert} FROM (SELECT NEW.*) AS new_row);`,
        '  RETURN NEW;',
        'END',
        '$phasegate$',
      ].join('\n'),
      `CREATE OR REPLACE TRIGGER "${sync}" BEFORE INSERT OR UPDATE ON "items" FOR EACH ROW EXECUTE FUNCTION "${sync}"()`,
    ]);
    expect(step(g, 2)).toEqual([
      `[DO] RAISE EXCEPTION USING MESSAGE = 'items.code is still used by ' || dependents, HINT = 'create their equivalents on _phasegate_new_code and drop these in a revision before this one; dropping the column would drop them silently';`,
      `DROP TRIGGER IF EXISTS "${sync}" ON "items"`,
      `DROP FUNCTION IF EXISTS "${sync}"()`,
      `[DO] EXECUTE 'ALTER TABLE "items" ALTER COLUMN "_phasegate_new_code" SET DEFAULT ' || default_expr;`,
      `[DO] EXECUTE 'ALTER TABLE "items" ALTER COLUMN "_phasegate_new_code" SET DEFAULT CAST((' || default_expr || ') AS integer)';`,
      `[DO] EXECUTE 'ALTER TABLE "items" ALTER COLUMN "code" DROP DEFAULT';`,
      `[DO] EXECUTE 'ALTER TABLE "items" ALTER COLUMN "_phasegate_new_code" SET NOT NULL';`,
      `[DO] EXECUTE 'ALTER TABLE "items" DROP CONSTRAINT "${check}"';`,
      '[DO] ALTER TABLE "items" DROP COLUMN IF EXISTS "code";',
      '[DO] ALTER TABLE "items" RENAME COLUMN "_phasegate_new_code" TO "code";',
    ]);
    expect(stepDown(g, 2).slice(0, 10)).toEqual([
      `[DO] RAISE EXCEPTION USING MESSAGE = 'column code of items does not exist';`,
      unsyncable('items', 'code', TYPE_HINT),
      `[DO] EXECUTE 'ALTER TABLE "items" ADD COLUMN IF NOT EXISTS "_phasegate_old_code" text' || coalesce(' COLLATE ' || src.collation, '');`,
      ...carried('items', '_phasegate_old_code'),
      `[DO] EXECUTE 'UPDATE "items" SET "_phasegate_old_code" = CAST((code::text) AS text)';`,
      '[DO] ALTER TABLE "items" RENAME COLUMN "code" TO "_phasegate_new_code";',
      '[DO] ALTER TABLE "items" RENAME COLUMN "_phasegate_old_code" TO "code";',
    ]);
  });

  test('without --using/--down the conversion is a cast; --from-type is required', async () => {
    const g = await generate('change-column-type', ['orders', 'total', 'bigint'], { fromType: 'integer' });
    expect(g.up.steps[0].backfill?.set).toEqual({ _phasegate_new_total: 'CAST(("total") AS bigint)' });
    expect(stepDown(g, 2)[7]).toBe(`[DO] EXECUTE 'UPDATE "orders" SET "_phasegate_old_total" = CAST(("total") AS integer)';`);

    const p = project();
    const missing = await failure(newPattern({ cwd: p.cwd, config: p.config, pattern: 'change-column-type', args: ['orders', 'total', 'bigint'] }));
    expect(missing.type).toBe('InvalidPatternArguments');
    expect(missing.message).toContain('--from-type');
    expect(readdirSync(p.dir)).toEqual([]);
  });
});

describe('add-unique', () => {
  test('unique index CONCURRENTLY → ADD CONSTRAINT … UNIQUE USING INDEX; the downgrade keeps uniqueness enforced throughout', async () => {
    const g = await generate('add-unique', ['users', 'tenant_id', 'email']);
    expectLinearChain(g);
    const name = 'users_tenant_id_email_key';
    expect(chain(g.up)).toEqual([
      {
        phase: 'build',
        transactional: false,
        gate: null,
        backfill: null,
        check: {
          name: `unique index ${name} is valid`,
          failingRows: `SELECT '${name}' AS missing_index WHERE NOT EXISTS (SELECT 1 FROM pg_index WHERE indexrelid = to_regclass('"${name}"') AND indisvalid AND indisunique)`,
        },
      },
      { phase: 'attach', transactional: false, gate: null, backfill: null, check: null },
    ]);
    expect(g.up.steps[0].statements[1].sql).toBe(`CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS "${name}" ON "users" ("tenant_id", "email")`);
    expect(step(g, 1)).toEqual([`[DO] ALTER TABLE "users" ADD CONSTRAINT "${name}" UNIQUE USING INDEX "${name}";`]);
    expect(stepDown(g, 1)).toEqual([
      `DROP INDEX CONCURRENTLY IF EXISTS "${name}_rebuilt"`,
      `CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS "${name}_rebuilt" ON "users" ("tenant_id", "email")`,
      `ALTER TABLE "users" DROP CONSTRAINT IF EXISTS "${name}"`,
      `[DO] ALTER INDEX "${name}_rebuilt" RENAME TO "${name}";`,
      `DROP INDEX CONCURRENTLY IF EXISTS "${name}_rebuilt"`,
    ]);
    // A re-run after the constraint's drop builds no copy again: the build is guarded by the constraint.
    const constraintGuard = `SELECT 1 FROM pg_constraint WHERE conrelid = to_regclass('"users"') AND conname = '${name}'`;
    const attachDown = g.down.steps[0].statements;
    expect(attachDown[1].onlyIf).toEqual({ sql: constraintGuard });
    expect(attachDown[0].onlyIf?.sql).toContain(`AND NOT indisvalid AND EXISTS (${constraintGuard})`);
    expect(stepDown(g, 0)).toEqual([`DROP INDEX CONCURRENTLY IF EXISTS "${name}"`]);
  });
});

describe('chains, names and validation', () => {
  test('a chain starts on the current head; --head base starts a new line; several heads need --head', async () => {
    const existing = `module.exports = { id: 'a1', parent: null, message: 'first', upgrade() {}, downgrade() {} };`;
    const p = project({ 'a1_first.js': existing });
    const onHead = await newPattern({ cwd: p.cwd, config: p.config, pattern: 'add-index', args: ['accounts', 'email'] });
    expect(onHead.files[0].parent).toBe('a1');

    const newLine = await newPattern({ cwd: p.cwd, config: p.config, pattern: 'add-foreign-key', args: ['orders', 'user_id', 'users'], head: 'base' });
    expect(newLine.files.map((f) => f.parent)).toEqual([null, newLine.files[0].id]);

    const before = readdirSync(p.dir).sort();
    const several = await failure(newPattern({ cwd: p.cwd, config: p.config, pattern: 'add-index', args: ['accounts', 'name'] }));
    expect(several.type).toBe('MultipleHeads');
    expect(several.message).toContain('--head');
    const notHead = await failure(newPattern({ cwd: p.cwd, config: p.config, pattern: 'add-index', args: ['accounts', 'name'], head: 'a1' }));
    expect(notHead.type).toBe('NotAHead');
    expect(readdirSync(p.dir).sort()).toEqual(before);
  });

  test('bad arguments fail with the usage before anything is written', async () => {
    const p = project();
    const run = (pattern: string, args: string[], options: Record<string, unknown> = {}) => failure(newPattern({ cwd: p.cwd, config: p.config, pattern, args, options }));

    const unknown = await run('add-column', []);
    expect(unknown.type).toBe('UnknownPattern');
    expect(unknown.message).toContain(patterns.map((x) => x.name).join(', '));

    const missing = await run('rename-column', ['accounts', 'name']);
    expect(missing.type).toBe('InvalidPatternArguments');
    expect(missing.message).toBe('rename-column: missing <to>. Usage: phasegate new rename-column <table> <from> <to>');

    expect((await run('add-index', ['accounts'])).message).toContain('missing <columns...>');
    expect((await run('add-foreign-key', ['a', 'b', 'c', 'd', 'e'])).message).toContain('too many arguments (e)');
    expect((await run('add-index', ['accounts', 'email'], { concurrently: true })).message).toContain('unknown option(s) concurrently');
    expect((await run('add-not-null-column', ['accounts', 'org_id', 'bigint'])).message).toContain('--backfill: existing rows need a value');
    expect((await run('add-not-null-column', ['accounts', 'org_id', 'bigint; DROP TABLE x'], { default: '0' })).message).toContain('<type>: must be a single type');
    expect((await run('add-index', ['a.b.c', 'email'])).message).toContain('<table>: has more than one dot');
    expect((await run('add-index', ['accounts', 'x'.repeat(64)])).message).toContain('<columns>[0]: must be at most 63 bytes');
    expect((await run('add-foreign-key', ['orders', 'user_id', 'users'], { onDelete: 'explode' })).message).toContain('--on-delete: must be one of');
    expect((await run('rename-column', ['accounts', 'name', 'name'])).message).toContain('<to>: the new name is the current one');
    expect(readdirSync(p.dir)).toEqual([]);
  });

  test('generated names stay within 63 bytes (shortened with a hash), and ON DELETE spellings are normalised', async () => {
    const long = 'a_rather_long_column_name_for_testing';
    const g = await generate('add-unique', ['customer_subscriptions', long, 'another_long_column']);
    const name = g.up.steps[1].statements[0].sql.match(/ADD CONSTRAINT "([^"]+)"/)![1];
    expect(name).toMatch(/^customer_subscriptions_a_rather_long_column_name_for_t_[0-9a-f]{8}$/);
    expect(Buffer.byteLength(name)).toBe(63);

    const fk = await generate('add-foreign-key', ['orders', 'user_id', 'users'], { onDelete: 'set_null' });
    expect(step(fk, 0)[0]).toContain('ON DELETE SET NULL NOT VALID');
  });

  test('the text output lists each file with its phase, gate, backfill and check', async () => {
    const g = await generate('add-not-null-column', ['accounts', 'org_id', 'bigint'], { default: '0' });
    const text = formatNewPattern(g.result).split('\n');
    expect(text[0]).toBe(`add-not-null-column: 4 revision(s) in ${g.p.dir}`);
    expect(text[1]).toBe(
      `created ${g.result.files[0].id} (on <base>) [expand] add accounts.org_id bigint, nullable with default 0 — backfill org_id; check "no NULLs left in accounts.org_id"`,
    );
    expect(text[3]).toContain('gate "enforce:accounts.org_id"');
  });
});

/** Every pattern once, with the options that exercise most of it. */
const everyPattern: Array<{ pattern: string; args: string[]; options?: Record<string, unknown> }> = [
  { pattern: 'add-not-null-column', args: ['accounts', 'org_id', 'bigint'], options: { default: '0' } },
  { pattern: 'add-not-null-column', args: ['accounts', 'plan', 'text'], options: { backfill: "'free'" } },
  { pattern: 'rename-column', args: ['accounts', 'name', 'full_name'] },
  { pattern: 'add-index', args: ['accounts', 'email'], options: { unique: true } },
  { pattern: 'add-foreign-key', args: ['orders', 'user_id', 'users'], options: { gate: true } },
  { pattern: 'change-column-type', args: ['items', 'code', 'integer'], options: { fromType: 'text', using: 'code::integer' } },
  { pattern: 'add-unique', args: ['users', 'email'] },
];

test('every registered pattern is covered here', () => {
  expect([...new Set(everyPattern.map((c) => c.pattern))].sort()).toEqual(patterns.map((p) => p.name).sort());
});

test('the generated files type-check as RevisionModules under the project compiler options', async () => {
  const files: string[] = [];
  for (const c of everyPattern) files.push(...(await generate(c.pattern, c.args, c.options)).result.files.map((f) => f.file));
  const parsed = ts.getParsedCommandLineOfConfigFile(path.join(root, 'tsconfig.json'), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => undefined });
  const program = ts.createProgram(files, { ...parsed!.options, noEmit: true });
  const problems = ts.getPreEmitDiagnostics(program).map((d) => `${d.file?.fileName ?? ''}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`);
  expect(problems).toEqual([]);
});

// ── squawk ──────────────────────────────────────────────────────────────────────────────────────

/**
 * Rules squawk reports that the patterns satisfy another way, each with the reason. Anything else
 * squawk says about a pattern's upgrade script fails the test.
 */
const squawkExclusions: Record<string, Record<string, string>> = {
  'rename-column': {
    'ban-drop-column': 'the contract step drops the old column on purpose, behind a gate, after the app moved to the new one; a DO block refuses first while anything depends on it',
  },
  // change-column-type's swap drops the old column inside a DO block (it runs only while the converted
  // column is there, so a re-run cannot drop the new one): squawk does not look into it; the swap's gate
  // and phasegate's own destructive-step rule cover it.
};

const squawk = (sql: string) => runSquawk(sql, { pgVersion: '17' });

describe('squawk on each pattern\'s upgrade base:head --sql script', () => {
  test('squawk itself reports what it should (the checker is live)', () => {
    expect(squawk('ALTER TABLE accounts ADD COLUMN org_id bigint NOT NULL;').map((f) => f.rule_name)).toEqual(
      expect.arrayContaining(['require-lock-timeout', 'adding-required-field']),
    );
  });

  test.each(everyPattern)('$pattern $args', async ({ pattern, args, options }) => {
    const g = await generate(pattern, args, options);
    const offline = await upgrade({ cwd: g.p.cwd, config: g.p.config, sql: true, target: 'base:head' });
    // The script's psql lines (\if, \gset, \echo) become comments, as `phasegate lint` does.
    const findings = squawk(sqlForSquawk(offline.script));
    const excluded = squawkExclusions[pattern] ?? {};
    const lines = offline.script.split('\n');
    expect(findings.filter((f) => !(f.rule_name in excluded)).map((f) => `${f.rule_name}: ${f.message} (${lines[f.line]?.trim()})`)).toEqual([]);
    // Each exclusion is needed: the rule does fire on this pattern.
    expect([...new Set(findings.map((f) => f.rule_name))].sort()).toEqual(Object.keys(excluded).sort());
  });
});
