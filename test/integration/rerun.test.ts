/**
 * Every step of every pattern, upgrade and downgrade, run again after a crash at every point one
 * can leave it, against a real PostgreSQL.
 *
 * A worker can die after a step's statements committed and before its version row did: the next
 * attempt (the real `applyRevision` activity) then finds them applied and must finish the step as
 * if nothing had happened. Where a crash can land depends on the step:
 * - transactional: nothing committed, or every statement without the version row (the state a
 *   retry after a lost COMMIT acknowledgement, or the same revision run again by hand, meets);
 * - non-transactional (CONCURRENTLY): after any k of its n statements, k = 0..n, each committed.
 * For each such point the harness clones the database as it stands before the step (CREATE
 * DATABASE … TEMPLATE), runs the first k statements itself on a plain connection (with their
 * `onlyIf` guards, as the runtime would), then runs the step through `applyRevision`: it must be
 * applied and leave the same catalog (columns, constraints, indexes and their validity, triggers,
 * functions, by name and definition), the same rows and the same version table as the
 * uninterrupted run (k = 0), which then carries the chain on to the next step. A step's backfill
 * runs as one plain UPDATE and its check must pass, as in patterns.test.ts. Tables are small (a few
 * hundred rows): the point is which states a step survives, not how long it takes.
 */
import pg from 'pg';
import { createActivities } from '../../activities';
import { DatabasePools } from '../../activities/db';
import { newPattern } from '../../lib/commands';
import type { PhasegateConfig } from '../../lib/config';
import type { Direction, PlanStep } from '../../lib/plan';
import { qualified, quoteIdent } from '../../lib/sql';
import { createTestDatabase, runActivity, silentLog, testConfig, writeMigrations, type TestDatabase } from '../helpers';

const ROWS = 300;

// ── databases: one per state, cloned from the state before the step ─────────────────────────────

function adminUrl(): string {
  const url = process.env.PHASEGATE_TEST_PG_URL;
  if (!url) throw new Error('PHASEGATE_TEST_PG_URL is not set: run these tests through jest (global setup starts PostgreSQL)');
  return url;
}

async function adminQuery(sql: string): Promise<void> {
  const admin = new pg.Client({ connectionString: adminUrl() });
  await admin.connect();
  try {
    await admin.query(sql);
  } finally {
    await admin.end();
  }
}

/** A copy of `template`, which must have no open connection (its pools are closed between steps). */
async function cloneDatabase(template: TestDatabase): Promise<TestDatabase> {
  const clone = await createTestDatabase();
  // createTestDatabase made an empty one; replace it with the copy under the same name.
  await adminQuery(`DROP DATABASE ${quoteIdent(clone.name)}`);
  await adminQuery(`CREATE DATABASE ${quoteIdent(clone.name)} TEMPLATE ${quoteIdent(template.name)}`);
  return clone;
}

// ── what must come out the same ─────────────────────────────────────────────────────────────────

/**
 * The user schema by name and definition (object ids differ between clones by nature): relations,
 * columns in order, constraints with their definition and validated flag, indexes with definition
 * and validity, triggers, functions with their body.
 */
async function catalog(db: TestDatabase): Promise<Record<string, string[]>> {
  const list = async (sql: string) => (await db.query<{ x: string }>(sql)).rows.map((r) => r.x);
  const userRel = `SELECT c.oid, n.nspname, c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'`;
  return {
    relations: await list(`WITH r AS (${userRel}) SELECT nspname || '.' || relname || ' ' || relkind::text AS x FROM r ORDER BY 1`),
    columns: await list(
      `WITH r AS (${userRel})
       SELECT r.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
              || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '') AS x
         FROM pg_attribute a JOIN r ON r.oid = a.attrelid AND r.relkind IN ('r', 'p')
         LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE a.attnum > 0 AND NOT a.attisdropped ORDER BY r.nspname, r.relname, a.attnum`,
    ),
    constraints: await list(
      `WITH r AS (${userRel})
       SELECT r.relname || ' ' || c.conname || ': ' || pg_get_constraintdef(c.oid) || CASE WHEN c.convalidated THEN '' ELSE ' (not validated)' END AS x
         FROM pg_constraint c JOIN r ON r.oid = c.conrelid ORDER BY 1`,
    ),
    indexes: await list(
      `WITH r AS (${userRel})
       SELECT pg_get_indexdef(i.indexrelid) || CASE WHEN i.indisvalid THEN '' ELSE ' (INVALID)' END || CASE WHEN i.indisready THEN '' ELSE ' (not ready)' END AS x
         FROM pg_index i JOIN r ON r.oid = i.indrelid ORDER BY 1`,
    ),
    triggers: await list(`WITH r AS (${userRel}) SELECT pg_get_triggerdef(t.oid) AS x FROM pg_trigger t JOIN r ON r.oid = t.tgrelid WHERE NOT t.tgisinternal ORDER BY 1`),
    functions: await list(
      `SELECT n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ') ' || md5(p.prosrc) AS x
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1`,
    ),
  };
}

/** Catalog, rows of the case's tables (a digest each) and the version table. */
async function snapshot(db: TestDatabase, tables: string[]): Promise<Record<string, string[]>> {
  const rows: string[] = [];
  for (const table of tables) {
    const { d } = (await db.query<{ d: string }>(`SELECT count(*) || ' rows ' || md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t.id), '')) AS d FROM ${qualified(table)} t`)).rows[0];
    rows.push(`${table}: ${d}`);
  }
  const versions = (await db.query<{ v: string }>('SELECT version_num AS v FROM phasegate_version ORDER BY 1')).rows.map((r) => r.v);
  return { ...(await catalog(db)), rows, versions };
}

/** What `actual` has that `expected` lacks (+) and the reverse (-), per section: {} when equal. */
function difference(expected: Record<string, string[]>, actual: Record<string, string[]>): Record<string, string[]> {
  const diff: Record<string, string[]> = {};
  for (const key of Object.keys(expected)) {
    const [want, got] = [expected[key], actual[key] ?? []];
    if (JSON.stringify(want) === JSON.stringify(got)) continue;
    const extra = got.filter((x) => !want.includes(x)).map((x) => `+ ${x}`);
    const missing = want.filter((x) => !got.includes(x)).map((x) => `- ${x}`);
    // Same members in another order (column order matters: SELECT * sees it).
    diff[key] = extra.length || missing.length ? [...missing, ...extra] : [`order: ${got.join(', ')}`];
  }
  return diff;
}

// ── running a step ──────────────────────────────────────────────────────────────────────────────

/** The activities of a worker whose database `app` is `db`, for one call; its pool is closed after. */
async function withWorker<T>(db: TestDatabase, dir: string, fn: (activities: ReturnType<typeof createActivities>) => Promise<T>): Promise<T> {
  const config: PhasegateConfig = testConfig({ databases: { app: { url: db.url, migrationsDirectory: dir } }, defaults: { lockTimeoutMs: 2_000 } });
  const pools = new DatabasePools(config);
  try {
    return await fn(createActivities({ config, pools, log: silentLog }));
  } finally {
    await pools.close();
  }
}

/** Where a crash can leave `step`: after how many of its statements, all committed, without the version row. */
function crashPoints(step: PlanStep): number[] {
  const n = step.statements.length;
  if (step.transactional) return n === 0 ? [0] : [0, n];
  return Array.from({ length: n + 1 }, (_, k) => k);
}

/**
 * What a worker that died got done: the first `k` statements, each guarded as the runtime guards
 * it; a transactional step's in one transaction, committed (the version row never written).
 */
async function runFirstStatements(db: TestDatabase, step: PlanStep, k: number): Promise<void> {
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  try {
    if (step.transactional) await client.query('BEGIN');
    for (const statement of step.statements.slice(0, k)) {
      if (statement.onlyIf && (await client.query(statement.onlyIf.sql, statement.onlyIf.params ?? [])).rows.length === 0) continue;
      await client.query(statement.sql, statement.params ?? []);
    }
    if (step.transactional) await client.query('COMMIT');
  } finally {
    await client.end();
  }
}

async function applyStep(db: TestDatabase, dir: string, step: PlanStep): Promise<string> {
  try {
    return (await withWorker(db, dir, (a) => runActivity(a.applyRevision, { database: 'app', step }))).outcome;
  } catch (err) {
    const e = err as { message?: string; code?: string };
    return `failed: ${e.message ?? String(err)}${e.code ? ` (${e.code})` : ''}`;
  }
}

// ── cases ───────────────────────────────────────────────────────────────────────────────────────

interface RerunCase {
  name: string;
  setup: string[];
  pattern: string;
  args: string[];
  options?: Record<string, unknown>;
  /** Tables whose rows must come out the same (each has an `id`). */
  tables: string[];
  /** Run on the uninterrupted line after a step (and its backfill): what the app's team would do between two steps. */
  afterStep?: (step: PlanStep, db: TestDatabase) => Promise<void>;
}

const accounts = [
  "CREATE TABLE accounts (id bigserial PRIMARY KEY, email text NOT NULL, name text NOT NULL DEFAULT 'anonymous', n integer NOT NULL DEFAULT 0)",
  `INSERT INTO accounts (email, name, n) SELECT 'user' || i || '@example.com', 'name ' || i, i FROM generate_series(1, ${ROWS}) AS i`,
];

const cases: RerunCase[] = [
  {
    name: 'add-not-null-column --default --backfill',
    setup: accounts,
    pattern: 'add-not-null-column',
    args: ['accounts', 'org_id', 'bigint'],
    options: { default: '0', backfill: 'id % 7' },
    tables: ['accounts'],
  },
  {
    name: 'add-not-null-column --backfill (deploy gate, then the backfill)',
    setup: accounts,
    pattern: 'add-not-null-column',
    args: ['accounts', 'plan', 'text'],
    options: { backfill: "CASE WHEN id % 2 = 0 THEN 'pro' ELSE 'free' END" },
    tables: ['accounts'],
  },
  { name: 'rename-column of a NOT NULL column with a default', setup: accounts, pattern: 'rename-column', args: ['accounts', 'name', 'full_name'], tables: ['accounts'] },
  {
    name: 'change-column-type text → integer of a NOT NULL column with a default',
    setup: [
      "CREATE TABLE items (id bigserial PRIMARY KEY, code text NOT NULL DEFAULT '0', n integer NOT NULL DEFAULT 0)",
      `INSERT INTO items (code, n) SELECT (i * 3)::text, i FROM generate_series(1, ${ROWS}) AS i`,
    ],
    pattern: 'change-column-type',
    args: ['items', 'code', 'integer'],
    options: { fromType: 'text', using: 'code::integer', down: 'code::text' },
    tables: ['items'],
    // As the swap's notes ask: an index the column needs is built on the shadow column before the
    // swap, and follows the rename. A re-run of the swap then meets it on the swapped column.
    afterStep: async (step, db) => {
      if (step.direction === 'upgrade' && step.phase === 'validate') await db.query('CREATE INDEX items_code_idx ON items (_phasegate_new_code)');
    },
  },
  { name: 'add-index --unique', setup: accounts, pattern: 'add-index', args: ['accounts', 'email'], options: { unique: true }, tables: ['accounts'] },
  { name: 'add-unique', setup: accounts, pattern: 'add-unique', args: ['accounts', 'email'], tables: ['accounts'] },
  {
    name: 'add-foreign-key',
    setup: [
      'CREATE TABLE users (id bigint PRIMARY KEY)',
      'INSERT INTO users SELECT i FROM generate_series(1, 50) AS i',
      'CREATE TABLE orders (id bigserial PRIMARY KEY, user_id bigint, total integer NOT NULL DEFAULT 0)',
      `INSERT INTO orders (user_id, total) SELECT 1 + i % 50, i FROM generate_series(1, ${ROWS}) AS i`,
    ],
    pattern: 'add-foreign-key',
    args: ['orders', 'user_id', 'users'],
    tables: ['users', 'orders'],
  },
];

// ── the harness ─────────────────────────────────────────────────────────────────────────────────

describe('every pattern step, upgrade and downgrade, re-run through applyRevision after a crash at any point', () => {
  test.each(cases)('$name', async (c) => {
    const main = await createTestDatabase();
    const dir = writeMigrations({});
    const config: PhasegateConfig = testConfig({ databases: { app: { url: main.url, migrationsDirectory: dir } } });
    const problems: string[] = [];
    let reruns = 0;

    /** One step from every crash point; the uninterrupted run stays on `main` and carries the chain on. */
    async function stepFromEveryCrashPoint(step: PlanStep): Promise<void> {
      const label = `${step.direction} ${step.phase ?? ''} ${step.revision} "${step.message}"`;
      const points = crashPoints(step).filter((k) => k > 0);
      // Clones first: `main` must have no connection while it is a template.
      const clones = [];
      for (const k of points) clones.push({ k, db: await cloneDatabase(main) });
      try {
        const outcome = await applyStep(main, dir, step);
        expect({ step: label, outcome }).toEqual({ step: label, outcome: 'applied' });
        const expected = await snapshot(main, c.tables);
        // Each crash point has its own database: they run side by side.
        await Promise.all(
          clones.map(async ({ k, db }) => {
            const point = `${label}, crashed after ${k} of ${step.statements.length} statement(s)${step.transactional ? ' (committed, no version row)' : ''}`;
            try {
              await runFirstStatements(db, step, k);
            } catch (err) {
              // The uninterrupted run got past these statements, so a crashed one does too.
              problems.push(`${point}: the first statements failed: ${(err as Error).message}`);
              return;
            }
            const again = await applyStep(db, dir, step);
            reruns++;
            if (again !== 'applied') problems.push(`${point}: re-run ${again}`);
            else {
              const diff = difference(expected, await snapshot(db, c.tables));
              if (Object.keys(diff).length) problems.push(`${point}: re-run left another state ${JSON.stringify(diff, null, 2)}`);
            }
          }),
        );
      } finally {
        for (const { db } of clones) await db.drop();
      }
      if (step.backfill) {
        const set = Object.entries(step.backfill.set).map(([column, expression]) => `${quoteIdent(column)} = ${expression}`);
        await main.query(`UPDATE ${qualified(step.backfill.table)} SET ${set.join(', ')}${step.backfill.where ? ` WHERE ${step.backfill.where}` : ''}`);
      }
      if (step.check) {
        const failing = await main.query(step.check.failingRows);
        expect({ check: step.check.name, failingRows: failing.rows.slice(0, 5) }).toEqual({ check: step.check.name, failingRows: [] });
      }
      await c.afterStep?.(step, main);
    }

    async function migrate(direction: Direction): Promise<PlanStep[]> {
      const plan = await withWorker(main, dir, (a) =>
        runActivity(a.planMigration, { database: 'app', target: direction === 'upgrade' ? 'head' : 'base', direction }),
      );
      for (const step of plan.steps) await stepFromEveryCrashPoint(step);
      return plan.steps;
    }

    try {
      for (const sql of c.setup) await main.query(sql);
      const generated = await newPattern({ config, database: 'app', pattern: c.pattern, args: c.args, options: c.options });
      const up = await migrate('upgrade');
      expect(up.map((s) => s.revision)).toEqual(generated.files.map((f) => f.id));
      const down = await migrate('downgrade');
      expect(down.map((s) => s.revision)).toEqual(generated.files.map((f) => f.id).reverse());
      expect(problems.sort()).toEqual([]);
      // Every step was re-run at least once (a step without statements has no crash point).
      expect(reruns).toBeGreaterThanOrEqual([...up, ...down].filter((s) => s.statements.length > 0).length);
    } finally {
      await main.drop();
    }
  });
});

test('add-unique: the downgrade repairs what its earlier version left when run again, a second unique index next to the plain one', async () => {
  // The attach step's downgrade used to build its copy of the index again after the rename, then fail
  // renaming it onto the name just taken (42P07), on every retry: a database stuck there has both
  // the plain index and accounts_email_key_rebuilt, and no constraint. The current downgrade, run on
  // it, must finish the step and leave exactly the index the build step made.
  const db = await createTestDatabase();
  const dir = writeMigrations({});
  const config: PhasegateConfig = testConfig({ databases: { app: { url: db.url, migrationsDirectory: dir } } });
  try {
    for (const sql of accounts) await db.query(sql);
    await newPattern({ config, database: 'app', pattern: 'add-unique', args: ['accounts', 'email'] });
    const up = await withWorker(db, dir, (a) => runActivity(a.planMigration, { database: 'app', target: 'head', direction: 'upgrade' }));
    for (const step of up.steps) expect(await applyStep(db, dir, step)).toBe('applied');
    const down = await withWorker(db, dir, (a) => runActivity(a.planMigration, { database: 'app', target: up.steps[0].revision, direction: 'downgrade' }));
    expect(down.steps.map((s) => s.phase)).toEqual(['attach']);
    const [attach] = down.steps;

    await runFirstStatements(db, attach, attach.statements.length);
    await db.query('CREATE UNIQUE INDEX CONCURRENTLY accounts_email_key_rebuilt ON accounts (email)');
    expect(await applyStep(db, dir, attach)).toBe('applied');

    const indexes = (await db.query<{ d: string }>("SELECT pg_get_indexdef(indexrelid) || CASE WHEN indisvalid THEN '' ELSE ' INVALID' END AS d FROM pg_index WHERE indrelid = 'accounts'::regclass ORDER BY 1")).rows;
    expect(indexes.map((r) => r.d)).toEqual([
      'CREATE UNIQUE INDEX accounts_email_key ON public.accounts USING btree (email)',
      'CREATE UNIQUE INDEX accounts_pkey ON public.accounts USING btree (id)',
    ]);
    expect((await db.query("SELECT conname FROM pg_constraint WHERE conrelid = 'accounts'::regclass ORDER BY 1")).rows).toEqual([{ conname: 'accounts_pkey' }]);
    await expect(db.query("INSERT INTO accounts (email) VALUES ('user1@example.com')")).rejects.toMatchObject({ code: '23505' });
  } finally {
    await db.drop();
  }
});
