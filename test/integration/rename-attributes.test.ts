/**
 * What a column carries besides its data, through rename-column and change-column-type against a
 * real PostgreSQL: collation, type modifiers, comment, statistics target, storage and compression
 * arrive on the new column, and come back on the old one after the downgrade; identity and generated
 * columns are refused at the expand step, changing nothing.
 *
 * A chain is applied as test/integration/patterns.test.ts applies it (the real `planMigration` and
 * `applyRevision` activities, each backfill as one plain UPDATE, each check must return no rows),
 * without the concurrent writer: these cases are about the catalog, not about writes in flight.
 */
import { createActivities } from '../../activities';
import { DatabasePools } from '../../activities/db';
import { newPattern } from '../../lib/commands';
import type { PhasegateConfig } from '../../lib/config';
import type { Direction } from '../../lib/plan';
import { qualified, quoteIdent } from '../../lib/sql';
import { createTestDatabase, runActivity, silentLog, testConfig, writeMigrations, type TestDatabase } from '../helpers';

interface Harness {
  db: TestDatabase;
  config: PhasegateConfig;
  activities: ReturnType<typeof createActivities>;
  /** Plans `direction` and applies every step: its backfill as one UPDATE, its check must find no rows. */
  migrate(direction: Direction): Promise<void>;
  close(): Promise<void>;
}

async function harness(setup: string[]): Promise<Harness> {
  const db = await createTestDatabase();
  const config: PhasegateConfig = testConfig({ databases: { app: { url: db.url, migrationsDirectory: writeMigrations({}) } }, defaults: { lockTimeoutMs: 2_000 } });
  const pools = new DatabasePools(config);
  const activities = createActivities({ config, pools, log: silentLog });
  for (const sql of setup) await db.query(sql);
  return {
    db,
    config,
    activities,
    async migrate(direction) {
      const plan = await runActivity(activities.planMigration, { database: 'app', target: direction === 'upgrade' ? 'head' : 'base', direction });
      for (const step of plan.steps) {
        expect((await runActivity(activities.applyRevision, { database: 'app', step })).outcome).toBe('applied');
        if (step.backfill) {
          const set = Object.entries(step.backfill.set).map(([column, expression]) => `${quoteIdent(column)} = ${expression}`);
          await db.query(`UPDATE ${qualified(step.backfill.table)} SET ${set.join(', ')}${step.backfill.where ? ` WHERE ${step.backfill.where}` : ''}`);
        }
        if (step.check) expect({ check: step.check.name, failingRows: (await db.query(step.check.failingRows)).rows }).toEqual({ check: step.check.name, failingRows: [] });
      }
    },
    async close() {
      await pools.close();
      await db.drop();
    },
  };
}

interface Attributes {
  column: string;
  type: string;
  collation: string | null;
  statistics: number;
  storage: string;
  compression: string;
  comment: string | null;
  not_null: boolean;
  default_expr: string | null;
}

/** Every column of `table` in table order, with what it carries (-1: the default statistics target, on PG 15 and 17 alike). */
async function attributes(db: TestDatabase, table: string): Promise<Attributes[]> {
  const { rows } = await db.query<Attributes>(
    `SELECT a.attname AS column, format_type(a.atttypid, a.atttypmod) AS type, CASE WHEN a.attcollation <> 0 THEN a.attcollation::regcollation::text END AS collation,
            COALESCE(a.attstattarget, -1)::int AS statistics, a.attstorage::text AS storage, a.attcompression::text AS compression,
            col_description(a.attrelid, a.attnum) AS comment, a.attnotnull AS not_null, pg_get_expr(d.adbin, d.adrelid) AS default_expr
       FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
      WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
    [qualified(table)],
  );
  return rows;
}

async function triggers(db: TestDatabase): Promise<string[]> {
  const { rows } = await db.query<{ name: string }>(
    `SELECT 'trigger ' || tgname AS name FROM pg_trigger WHERE NOT tgisinternal
     UNION ALL SELECT 'function ' || proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace ORDER BY 1`,
  );
  return rows.map((r) => r.name);
}

/**
 * A collation whose ORDER BY differs from the database default's: the test databases are created
 * with `--locale=C`, so an ICU collation when the server has ICU; otherwise "C" itself, which still
 * shows whether the collation is copied (as "C", not "default") but not a different order.
 */
async function otherCollation(db: TestDatabase): Promise<{ name: string; ordersDifferently: boolean }> {
  const { rows } = await db.query<{ collname: string }>("SELECT collname FROM pg_collation WHERE collname IN ('en-x-icu', 'und-x-icu') ORDER BY collname LIMIT 1");
  return { name: quoteIdent(rows[0]?.collname ?? 'C'), ordersDifferently: rows.length > 0 };
}

const NAMES = ['b', 'B', 'a', 'A', 'ä', 'c'];

test('rename-column: the renamed column keeps type modifiers, collation (ORDER BY), comment, statistics target, storage, compression, DEFAULT and NOT NULL; the downgrade brings them back', async () => {
  const h = await harness([]);
  const collation = await otherCollation(h.db);
  const setup = [
    `CREATE TABLE people (id bigserial PRIMARY KEY, name varchar(40) COLLATE ${collation.name} NOT NULL DEFAULT 'nobody', n integer)`,
    "COMMENT ON COLUMN people.name IS 'the person''s name, as they write it'",
    'ALTER TABLE people ALTER COLUMN name SET STATISTICS 500, ALTER COLUMN name SET STORAGE EXTERNAL, ALTER COLUMN name SET COMPRESSION pglz',
    `INSERT INTO people (name, n) SELECT name, ord FROM unnest(ARRAY[${NAMES.map((n) => `'${n}'`).join(', ')}]) WITH ORDINALITY AS u(name, ord)`,
  ];
  const ordered = async (column: string, collate = '') =>
    (await h.db.query<{ v: string }>(`SELECT ${quoteIdent(column)} AS v FROM people ORDER BY ${quoteIdent(column)}${collate}, id`)).rows.map((r) => r.v);
  try {
    for (const sql of setup) await h.db.query(sql);
    const before = await ordered('name');
    if (collation.ordersDifferently) expect(before).not.toEqual(await ordered('name', ' COLLATE "default"'));
    const carried = {
      type: 'character varying(40)',
      collation: collation.name,
      statistics: 500,
      storage: 'e',
      compression: 'p',
      comment: "the person's name, as they write it",
      not_null: true,
      default_expr: "'nobody'::character varying",
    };
    const plain = { collation: null, statistics: -1, storage: 'p', compression: '', comment: null };

    await newPattern({ config: h.config, database: 'app', pattern: 'rename-column', args: ['people', 'name', 'full_name'] });
    await h.migrate('upgrade');
    // The renamed column is the last one now (PostgreSQL adds columns only at the end).
    expect(await attributes(h.db, 'people')).toEqual([
      { column: 'id', type: 'bigint', ...plain, not_null: true, default_expr: "nextval('people_id_seq'::regclass)" },
      { column: 'n', type: 'integer', ...plain, not_null: false, default_expr: null },
      { column: 'full_name', ...carried },
    ]);
    expect(await ordered('full_name')).toEqual(before);
    expect(await triggers(h.db)).toEqual([]);

    await h.migrate('downgrade');
    expect(await attributes(h.db, 'people')).toEqual([
      { column: 'id', type: 'bigint', ...plain, not_null: true, default_expr: "nextval('people_id_seq'::regclass)" },
      { column: 'n', type: 'integer', ...plain, not_null: false, default_expr: null },
      { column: 'name', ...carried },
    ]);
    expect(await ordered('name')).toEqual(before);
    expect(await triggers(h.db)).toEqual([]);
  } finally {
    await h.close();
  }
});

test('rename-column under a nondeterministic (case-insensitive) collation: an update that only changes case still reaches the other name', async () => {
  const h = await harness([]);
  try {
    const { rows } = await h.db.query("SELECT 1 FROM pg_collation WHERE collprovider = 'i' LIMIT 1");
    if (rows.length === 0) return; // no ICU: no nondeterministic collation to test with
    for (const sql of [
      "CREATE COLLATION case_insensitive (provider = icu, locale = 'und-u-ks-level2', deterministic = false)",
      'CREATE TABLE people (id bigint PRIMARY KEY, name text COLLATE case_insensitive)',
      "INSERT INTO people VALUES (1, 'Foo'), (2, 'Bar')",
    ])
      await h.db.query(sql);
    await newPattern({ config: h.config, database: 'app', pattern: 'rename-column', args: ['people', 'name', 'full_name'] });
    const plan = await runActivity(h.activities.planMigration, { database: 'app', target: 'head', direction: 'upgrade' });
    expect((await runActivity(h.activities.applyRevision, { database: 'app', step: plan.steps[0] })).outcome).toBe('applied');
    await h.db.query('UPDATE people SET full_name = name');
    expect((await attributes(h.db, 'people')).map((a) => [a.column, a.collation])).toEqual([
      ['id', null],
      ['name', 'case_insensitive'],
      ['full_name', 'case_insensitive'],
    ]);
    // 'foo' = 'Foo' under this collation: the trigger must still see that the app changed full_name.
    await h.db.query("UPDATE people SET full_name = 'foo' WHERE id = 1");
    await h.db.query("UPDATE people SET name = 'bar' WHERE id = 2");
    expect((await h.db.query('SELECT id, name, full_name FROM people ORDER BY id')).rows).toEqual([
      { id: '1', name: 'foo', full_name: 'foo' },
      { id: '2', name: 'bar', full_name: 'bar' },
    ]);
  } finally {
    await h.close();
  }
});

test('change-column-type varchar(40) → text: collation, comment, statistics target, storage carried; the downgrade brings varchar(40) back with them', async () => {
  const h = await harness([]);
  const collation = await otherCollation(h.db);
  const setup = [
    `CREATE TABLE items (id bigint PRIMARY KEY, code varchar(40) COLLATE ${collation.name}, qty integer NOT NULL DEFAULT 0)`,
    "COMMENT ON COLUMN items.code IS 'shelf code'",
    "COMMENT ON COLUMN items.qty IS 'on hand'",
    'ALTER TABLE items ALTER COLUMN code SET STATISTICS 500, ALTER COLUMN code SET STORAGE EXTERNAL, ALTER COLUMN qty SET STATISTICS 0',
    "INSERT INTO items VALUES (1, 'b', 1), (2, 'B', 2), (3, 'a', 3)",
  ];
  try {
    for (const sql of setup) await h.db.query(sql);
    const code = { collation: collation.name, statistics: 500, storage: 'e', compression: '', comment: 'shelf code', not_null: false, default_expr: null };
    const qty = { column: 'qty', type: 'integer', collation: null, statistics: 0, storage: 'p', compression: '', comment: 'on hand', not_null: true, default_expr: '0' };
    await newPattern({ config: h.config, database: 'app', pattern: 'change-column-type', args: ['items', 'code', 'text'], options: { fromType: 'varchar(40)' } });
    await newPattern({ config: h.config, database: 'app', pattern: 'change-column-type', args: ['items', 'qty', 'bigint'], options: { fromType: 'integer' } });
    await h.migrate('upgrade');
    // Both swapped columns are at the end now, in the order of the swaps.
    expect((await attributes(h.db, 'items')).slice(1)).toEqual([
      { column: 'code', type: 'text', ...code },
      { ...qty, type: 'bigint' },
    ]);
    expect(await triggers(h.db)).toEqual([]);

    await h.migrate('downgrade');
    // Each downgraded swap re-adds its column at the end again: code (downgraded last) is last.
    expect((await attributes(h.db, 'items')).slice(1)).toEqual([qty, { column: 'code', type: 'character varying(40)', ...code }]);
    expect(await triggers(h.db)).toEqual([]);
  } finally {
    await h.close();
  }
});

describe('identity and generated columns: refused at the expand step with the reason, nothing changed', () => {
  const setup = [
    'CREATE TABLE orders (id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY, price integer NOT NULL, total integer GENERATED ALWAYS AS (price * 2) STORED)',
    'INSERT INTO orders (price) VALUES (1), (2)',
  ];
  test.each([
    {
      pattern: 'rename-column',
      args: ['orders', 'id', 'order_id'],
      options: {},
      reason: 'orders.id is an identity column (GENERATED ALWAYS AS IDENTITY): a trigger cannot keep another column in step with it',
      hint: 'hint: rename it with ALTER TABLE … RENAME COLUMN in a revision of its own',
    },
    {
      pattern: 'rename-column',
      args: ['orders', 'total', 'amount'],
      options: {},
      reason: 'orders.total is a generated column (GENERATED ALWAYS AS ((price * 2)) STORED): a trigger cannot keep another column in step with it',
      hint: 'hint: rename it with ALTER TABLE … RENAME COLUMN in a revision of its own',
    },
    {
      pattern: 'change-column-type',
      args: ['orders', 'id', 'bigint'],
      options: { fromType: 'integer' },
      reason: 'orders.id is an identity column (GENERATED ALWAYS AS IDENTITY)',
      hint: 'hint: change its type with ALTER TABLE … ALTER COLUMN … TYPE in a revision of its own',
    },
    {
      pattern: 'change-column-type',
      args: ['orders', 'total', 'bigint'],
      options: { fromType: 'integer' },
      reason: 'orders.total is a generated column (GENERATED ALWAYS AS ((price * 2)) STORED)',
      hint: 'hint: change its type with ALTER TABLE … ALTER COLUMN … TYPE in a revision of its own',
    },
  ])('$pattern $args', async ({ pattern, args, options, reason, hint }) => {
    const h = await harness(setup);
    try {
      const before = await attributes(h.db, 'orders');
      await newPattern({ config: h.config, database: 'app', pattern, args, options });
      const plan = await runActivity(h.activities.planMigration, { database: 'app', target: 'head', direction: 'upgrade' });
      const refused = runActivity(h.activities.applyRevision, { database: 'app', step: plan.steps[0] });
      await expect(refused).rejects.toMatchObject({ message: expect.stringContaining(reason) });
      await expect(refused).rejects.toMatchObject({ message: expect.stringContaining(hint) });
      expect(await attributes(h.db, 'orders')).toEqual(before);
      expect(await triggers(h.db)).toEqual([]);
      // The refused step rolled back whole, the version table's creation with it (or it stays empty).
      const { rows } = await h.db.query<{ t: string | null }>("SELECT to_regclass('phasegate_version')::text AS t");
      if (rows[0].t !== null) expect((await h.db.query('SELECT version_num FROM phasegate_version')).rows).toEqual([]);
    } finally {
      await h.close();
    }
  });
});
