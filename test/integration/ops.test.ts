/**
 * @pg-matrix: its SQL, catalog or server behaviour can differ by PostgreSQL major; `npm run test:pg15` runs it again on 15.
 * Every op against a real PostgreSQL, through one table-driven harness (pgroll's habit). A case is
 * a revision: its upgrade and downgrade plus what must hold after each. The harness applies them
 * with the real runtime (the `applyRevision` activity: one transaction with SET LOCAL lock_timeout,
 * or statement by statement when an op cannot run in a transaction), in the order
 *
 *   upgrade ×2 → check → downgrade ×2 → check → upgrade ×2 → check
 *
 * Each direction runs twice, as a retry after a crash would: the second run must succeed and leave
 * the catalog exactly as the first left it (same objects, same relfilenodes — nothing rebuilt or
 * rewritten, no constraint added twice).
 */
import path from 'node:path';
import pg from 'pg';
import { createActivities } from '../../activities';
import { DatabasePools } from '../../activities/db';
import type { PhasegateConfig } from '../../lib/config';
import { recordOps, type Op } from '../../lib/ops';
import type { Direction, PlanStep } from '../../lib/plan';
import { hashFile } from '../../lib/revision-files';
import { qualified } from '../../lib/sql';
import { createTestDatabase, runActivity, silentLog, testConfig, writeMigrations, type TestDatabase } from '../helpers';

// ── checks: each returns a function of the database, named so a case reads as a sentence ──────────

type Check = (db: TestDatabase) => Promise<void>;

const CHECK_VIOLATION = '23514';
const NOT_NULL_VIOLATION = '23502';
const FOREIGN_KEY_VIOLATION = '23503';
const UNIQUE_VIOLATION = '23505';

async function one<R extends pg.QueryResultRow>(db: TestDatabase, sql: string, params: unknown[] = []): Promise<R | undefined> {
  return (await db.query<R>(sql, params)).rows[0];
}

interface ColumnInfo {
  type: string;
  not_null: boolean;
  default_expr: string | null;
}

const columnInfo = (db: TestDatabase, table: string, column: string) =>
  one<ColumnInfo>(
    db,
    `SELECT format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS not_null, pg_get_expr(d.adbin, d.adrelid) AS default_expr
       FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
      WHERE a.attrelid = to_regclass($1) AND a.attname = $2 AND NOT a.attisdropped`,
    [qualified(table), column],
  );

const tableMustExist = (table: string): Check => async (db) => {
  const row = await one<{ found: boolean }>(db, 'SELECT to_regclass($1) IS NOT NULL AS found', [qualified(table)]);
  expect({ table, exists: row?.found }).toEqual({ table, exists: true });
};
const tableMustNotExist = (table: string): Check => async (db) => {
  const row = await one<{ found: boolean }>(db, 'SELECT to_regclass($1) IS NOT NULL AS found', [qualified(table)]);
  expect({ table, exists: row?.found }).toEqual({ table, exists: false });
};
const columnMustExist = (table: string, column: string): Check => async (db) => {
  expect({ table, column, exists: (await columnInfo(db, table, column)) !== undefined }).toEqual({ table, column, exists: true });
};
const columnMustNotExist = (table: string, column: string): Check => async (db) => {
  expect({ table, column, exists: (await columnInfo(db, table, column)) !== undefined }).toEqual({ table, column, exists: false });
};
const columnMustHaveType = (table: string, column: string, type: string): Check => async (db) => {
  expect({ table, column, type: (await columnInfo(db, table, column))?.type }).toEqual({ table, column, type });
};
const columnMustHaveDefault = (table: string, column: string, expression: string | null): Check => async (db) => {
  expect({ table, column, default: (await columnInfo(db, table, column))?.default_expr }).toEqual({ table, column, default: expression });
};
const columnMustBeNotNull = (table: string, column: string): Check => async (db) => {
  expect({ table, column, notNull: (await columnInfo(db, table, column))?.not_null }).toEqual({ table, column, notNull: true });
};
const columnMustBeNullable = (table: string, column: string): Check => async (db) => {
  expect({ table, column, notNull: (await columnInfo(db, table, column))?.not_null }).toEqual({ table, column, notNull: false });
};

const indexState = (db: TestDatabase, index: string) =>
  one<{ valid: boolean; definition: string }>(
    db,
    'SELECT indisvalid AS valid, pg_get_indexdef(indexrelid) AS definition FROM pg_index WHERE indexrelid = to_regclass($1)',
    [qualified(index)],
  );
const indexMustBeValid = (index: string): Check => async (db) => {
  expect({ index, valid: (await indexState(db, index))?.valid }).toEqual({ index, valid: true });
};
const indexMustBeInvalid = (index: string): Check => async (db) => {
  expect({ index, valid: (await indexState(db, index))?.valid }).toEqual({ index, valid: false });
};
const indexMustNotExist = (index: string): Check => async (db) => {
  expect({ index, exists: (await indexState(db, index)) !== undefined }).toEqual({ index, exists: false });
};
const indexMustBeDefinedAs = (index: string, definition: string): Check => async (db) => {
  expect({ index, definition: (await indexState(db, index))?.definition }).toEqual({ index, definition });
};

const constraintState = (db: TestDatabase, table: string, name: string) =>
  one<{ validated: boolean }>(db, 'SELECT convalidated AS validated FROM pg_constraint WHERE conrelid = to_regclass($1) AND conname = $2', [
    qualified(table),
    name,
  ]);
const constraintMustBeValidated = (table: string, name: string): Check => async (db) => {
  expect({ constraint: name, validated: (await constraintState(db, table, name))?.validated }).toEqual({ constraint: name, validated: true });
};
const constraintMustNotBeValidated = (table: string, name: string): Check => async (db) => {
  expect({ constraint: name, validated: (await constraintState(db, table, name))?.validated }).toEqual({ constraint: name, validated: false });
};
const constraintMustNotExist = (table: string, name: string): Check => async (db) => {
  expect({ constraint: name, exists: (await constraintState(db, table, name)) !== undefined }).toEqual({ constraint: name, exists: false });
};

const triggerExists = async (db: TestDatabase, table: string, name: string) =>
  (await one(db, 'SELECT 1 FROM pg_trigger WHERE tgrelid = to_regclass($1) AND tgname = $2', [qualified(table), name])) !== undefined;
const triggerMustExist = (table: string, name: string): Check => async (db) => {
  expect({ trigger: name, exists: await triggerExists(db, table, name) }).toEqual({ trigger: name, exists: true });
};
const triggerMustNotExist = (table: string, name: string): Check => async (db) => {
  expect({ trigger: name, exists: await triggerExists(db, table, name) }).toEqual({ trigger: name, exists: false });
};
const functionExists = async (db: TestDatabase, signature: string) =>
  (await one<{ found: boolean }>(db, 'SELECT to_regprocedure($1) IS NOT NULL AS found', [signature]))?.found;
const functionMustExist = (signature: string): Check => async (db) => {
  expect({ function: signature, exists: await functionExists(db, signature) }).toEqual({ function: signature, exists: true });
};
const functionMustNotExist = (signature: string): Check => async (db) => {
  expect({ function: signature, exists: await functionExists(db, signature) }).toEqual({ function: signature, exists: false });
};

/** Runs `sql` in a transaction that is always rolled back: the data stays as the case left it. */
async function inRolledBackTransaction<T>(db: TestDatabase, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  try {
    await client.query('BEGIN');
    return await fn(client);
  } finally {
    await client.query('ROLLBACK').catch(() => undefined);
    await client.end();
  }
}
const mustInsert = (sql: string): Check => async (db) => {
  await inRolledBackTransaction(db, (client) => client.query(sql));
};
const mustNotInsert = (sql: string, sqlstate: string): Check => async (db) => {
  await expect(inRolledBackTransaction(db, (client) => client.query(sql))).rejects.toMatchObject({ code: sqlstate });
};
/** `sql` (a query, or a write with RETURNING, rolled back) returns exactly `rows`. */
const mustReturn = (sql: string, rows: Record<string, unknown>[]): Check => async (db) => {
  const result = await inRolledBackTransaction(db, (client) => client.query(sql));
  expect({ sql, rows: result.rows }).toEqual({ sql, rows });
};

/** What a re-run must not change: user objects, their storage (a rewrite changes relfilenode), validity. */
async function catalogFingerprint(db: TestDatabase): Promise<unknown> {
  const row = await one<{ fingerprint: unknown }>(
    db,
    `WITH user_rel AS (
       SELECT c.oid, n.nspname, c.relname, c.relfilenode, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%')
     SELECT jsonb_build_object(
       'relations', (SELECT jsonb_agg(jsonb_build_array(nspname, relname, oid, relfilenode, relkind) ORDER BY nspname, relname) FROM user_rel),
       'indexes', (SELECT jsonb_agg(jsonb_build_array(i.indexrelid, i.indisvalid, i.indisready) ORDER BY i.indexrelid) FROM pg_index i JOIN user_rel r ON r.oid = i.indrelid),
       'columns', (SELECT jsonb_agg(jsonb_build_array(a.attrelid, a.attname, a.atttypid, a.atttypmod, a.attnotnull, pg_get_expr(d.adbin, d.adrelid)) ORDER BY a.attrelid, a.attnum)
                     FROM pg_attribute a JOIN user_rel r ON r.oid = a.attrelid AND r.relkind IN ('r', 'p')
                     LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                    WHERE a.attnum > 0 AND NOT a.attisdropped),
       'constraints', (SELECT jsonb_agg(jsonb_build_array(c.oid, c.conname, c.convalidated) ORDER BY c.oid) FROM pg_constraint c JOIN user_rel r ON r.oid = c.conrelid),
       'triggers', (SELECT jsonb_agg(jsonb_build_array(t.oid, t.tgname, t.tgfoid) ORDER BY t.oid) FROM pg_trigger t JOIN user_rel r ON r.oid = t.tgrelid WHERE NOT t.tgisinternal),
       'functions', (SELECT jsonb_agg(jsonb_build_array(p.oid, p.proname, p.prosrc) ORDER BY p.oid) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                      WHERE n.nspname NOT IN ('pg_catalog', 'information_schema'))
     ) AS fingerprint`,
  );
  return row?.fingerprint;
}

// ── the harness ─────────────────────────────────────────────────────────────────────────────────

interface Harness {
  db: TestDatabase;
  /** Applies one direction once through the runtime. */
  apply(direction: Direction): Promise<void>;
}

interface OpCase {
  name: string;
  /** SQL run before anything else, on a fresh database. */
  setup: string[];
  /** Further preparation through the harness, e.g. a failed first attempt. */
  arrange?: (h: Harness) => Promise<void>;
  /**
   * A statement another session runs, in a transaction left open while the first upgrade runs: the
   * upgrade must not need a lock that conflicts with it (it would fail on lock_timeout).
   */
  whileAnotherSessionRuns?: string;
  upgrade(op: Op): void;
  downgrade(op: Op): void;
  afterUpgrade: Check[];
  afterDowngrade: Check[];
}

const cases: OpCase[] = [
  {
    name: 'addColumn adds a nullable column to a schema-qualified mixed-case table; dropColumn removes it',
    setup: ['CREATE SCHEMA app', 'CREATE TABLE app."Accounts" (id bigint PRIMARY KEY)', 'INSERT INTO app."Accounts" VALUES (1)'],
    upgrade: (op) => op.addColumn('app.Accounts', 'Org Id', 'bigint'),
    downgrade: (op) => op.dropColumn('app.Accounts', 'Org Id'),
    afterUpgrade: [columnMustExist('app.Accounts', 'Org Id'), columnMustBeNullable('app.Accounts', 'Org Id')],
    afterDowngrade: [columnMustNotExist('app.Accounts', 'Org Id')],
  },
  {
    name: 'renameColumn renames a column of a table named we"ird, and a re-run after the rename is a no-op',
    setup: ['CREATE SCHEMA app', 'CREATE TABLE app."we""ird" (id int, name text)'],
    upgrade: (op) => op.renameColumn('app.we"ird', 'name', 'Full Name'),
    downgrade: (op) => op.renameColumn('app.we"ird', 'Full Name', 'name'),
    afterUpgrade: [columnMustExist('app.we"ird', 'Full Name'), columnMustNotExist('app.we"ird', 'name')],
    afterDowngrade: [columnMustExist('app.we"ird', 'name'), columnMustNotExist('app.we"ird', 'Full Name')],
  },
  {
    name: 'renameTable renames within the schema, once',
    setup: ['CREATE SCHEMA app', 'CREATE TABLE app.users (id int)'],
    upgrade: (op) => op.renameTable('app.users', 'Members'),
    downgrade: (op) => op.renameTable('app.Members', 'users'),
    afterUpgrade: [tableMustExist('app.Members'), tableMustNotExist('app.users')],
    afterDowngrade: [tableMustExist('app.users'), tableMustNotExist('app.Members')],
  },
  {
    name: 'createTable builds a table from knex, its unique and foreign-key constraints added once; dropTable drops it',
    setup: ['CREATE SCHEMA app', 'CREATE TABLE app.orgs (id bigint PRIMARY KEY)'],
    upgrade: (op) =>
      op.createTable('app.accounts', (t) => {
        t.bigIncrements('id');
        t.string('email').notNullable().unique();
        t.bigInteger('org_id').references('id').inTable('app.orgs');
      }),
    downgrade: (op) => op.dropTable('app.accounts'),
    afterUpgrade: [
      tableMustExist('app.accounts'),
      constraintMustBeValidated('app.accounts', 'accounts_email_unique'),
      constraintMustBeValidated('app.accounts', 'accounts_org_id_foreign'),
      mustNotInsert(`INSERT INTO app.accounts (email, org_id) VALUES ('a@x', 42)`, FOREIGN_KEY_VIOLATION),
    ],
    afterDowngrade: [tableMustNotExist('app.accounts')],
  },
  {
    name: 'alterColumn turns dollars into cents (type + USING, default, NOT NULL) exactly once, and back',
    setup: ['CREATE TABLE orders (id int PRIMARY KEY, amount numeric(10,2) DEFAULT 0.00)', 'INSERT INTO orders VALUES (1, 12.50)'],
    upgrade: (op) => op.alterColumn('orders', 'amount', { type: 'bigint', using: '(amount * 100)::bigint', default: '0', nullable: false }),
    downgrade: (op) => op.alterColumn('orders', 'amount', { type: 'numeric(10,2)', using: 'amount / 100.0', default: null, nullable: true }),
    afterUpgrade: [
      columnMustHaveType('orders', 'amount', 'bigint'),
      columnMustHaveDefault('orders', 'amount', '0'),
      columnMustBeNotNull('orders', 'amount'),
      mustReturn('SELECT amount FROM orders', [{ amount: '1250' }]),
    ],
    afterDowngrade: [
      columnMustHaveType('orders', 'amount', 'numeric(10,2)'),
      columnMustHaveDefault('orders', 'amount', null),
      columnMustBeNullable('orders', 'amount'),
      mustReturn('SELECT amount FROM orders', [{ amount: '12.50' }]),
    ],
  },
  {
    name: 'alterColumn widens a varchar and drops NOT NULL (no USING: a plain, re-runnable statement)',
    setup: ['CREATE TABLE codes (code varchar(32) NOT NULL)'],
    upgrade: (op) => op.alterColumn('codes', 'code', { type: 'varchar(64)', nullable: true }),
    downgrade: (op) => op.alterColumn('codes', 'code', { type: 'varchar(32)', nullable: false }),
    afterUpgrade: [columnMustHaveType('codes', 'code', 'character varying(64)'), columnMustBeNullable('codes', 'code')],
    afterDowngrade: [columnMustHaveType('codes', 'code', 'character varying(32)'), columnMustBeNotNull('codes', 'code')],
  },
  {
    name: 'a NOT VALID check is enforced on new rows at once, while old rows are left for validation',
    setup: ['CREATE TABLE users (id int PRIMARY KEY, email text)', 'INSERT INTO users VALUES (1, NULL)'],
    upgrade: (op) => op.addCheck('users', 'users_email_not_null', 'email IS NOT NULL', { notValid: true }),
    downgrade: (op) => op.dropConstraint('users', 'users_email_not_null'),
    afterUpgrade: [
      constraintMustNotBeValidated('users', 'users_email_not_null'),
      mustNotInsert('INSERT INTO users VALUES (2, NULL)', CHECK_VIOLATION),
      mustInsert(`INSERT INTO users VALUES (2, 'b@x')`),
    ],
    afterDowngrade: [constraintMustNotExist('users', 'users_email_not_null'), mustInsert('INSERT INTO users VALUES (2, NULL)')],
  },
  {
    name: 'validateConstraint validates the check after the backfill, while another session keeps writing',
    setup: [
      'CREATE TABLE users (id int PRIMARY KEY, email text)',
      `INSERT INTO users VALUES (1, 'a@x')`,
      'ALTER TABLE users ADD CONSTRAINT users_email_not_null CHECK (email IS NOT NULL) NOT VALID',
    ],
    whileAnotherSessionRuns: `INSERT INTO users VALUES (100, 'writer@x')`,
    upgrade: (op) => op.validateConstraint('users', 'users_email_not_null'),
    // A validated constraint has nothing to undo; the downgrade of this phase is empty.
    downgrade: () => undefined,
    afterUpgrade: [constraintMustBeValidated('users', 'users_email_not_null')],
    afterDowngrade: [constraintMustBeValidated('users', 'users_email_not_null')],
  },
  {
    name: 'setNotNull on a column a validated CHECK proves non-null, then the check is dropped',
    setup: [
      'CREATE TABLE users (id int PRIMARY KEY, email text)',
      `INSERT INTO users VALUES (1, 'a@x')`,
      'ALTER TABLE users ADD CONSTRAINT users_email_not_null CHECK (email IS NOT NULL)',
    ],
    upgrade: (op) => {
      op.setNotNull('users', 'email');
      op.dropConstraint('users', 'users_email_not_null');
    },
    downgrade: (op) => {
      op.addCheck('users', 'users_email_not_null', 'email IS NOT NULL');
      op.dropNotNull('users', 'email');
    },
    afterUpgrade: [
      columnMustBeNotNull('users', 'email'),
      constraintMustNotExist('users', 'users_email_not_null'),
      mustNotInsert('INSERT INTO users VALUES (2, NULL)', NOT_NULL_VIOLATION),
    ],
    afterDowngrade: [
      columnMustBeNullable('users', 'email'),
      constraintMustBeValidated('users', 'users_email_not_null'),
      mustNotInsert('INSERT INTO users VALUES (2, NULL)', CHECK_VIOLATION),
    ],
  },
  {
    name: 'a NOT VALID foreign key is enforced on new rows while an old orphan stays',
    setup: [
      'CREATE TABLE users (id int PRIMARY KEY)',
      'CREATE TABLE orders (id int PRIMARY KEY, user_id int)',
      'INSERT INTO users VALUES (1)',
      'INSERT INTO orders VALUES (1, 1), (2, 99)',
    ],
    upgrade: (op) => op.addForeignKey('orders', 'orders_user_id_fkey', ['user_id'], 'users', ['id'], { notValid: true, onDelete: 'CASCADE' }),
    downgrade: (op) => op.dropConstraint('orders', 'orders_user_id_fkey'),
    afterUpgrade: [
      constraintMustNotBeValidated('orders', 'orders_user_id_fkey'),
      mustNotInsert('INSERT INTO orders VALUES (3, 42)', FOREIGN_KEY_VIOLATION),
      mustReturn('WITH gone AS (DELETE FROM users WHERE id = 1) SELECT count(*)::int AS n FROM orders', [{ n: 2 }]),
    ],
    afterDowngrade: [constraintMustNotExist('orders', 'orders_user_id_fkey'), mustInsert('INSERT INTO orders VALUES (3, 42)')],
  },
  {
    name: 'validateConstraint validates the foreign key once orphans are gone, while another session keeps writing',
    setup: [
      'CREATE TABLE users (id int PRIMARY KEY)',
      'CREATE TABLE orders (id int PRIMARY KEY, user_id int)',
      'INSERT INTO users VALUES (1)',
      'INSERT INTO orders VALUES (1, 1)',
      'ALTER TABLE orders ADD CONSTRAINT orders_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID',
    ],
    whileAnotherSessionRuns: 'INSERT INTO orders VALUES (100, 1)',
    upgrade: (op) => op.validateConstraint('orders', 'orders_user_id_fkey'),
    downgrade: () => undefined,
    afterUpgrade: [constraintMustBeValidated('orders', 'orders_user_id_fkey')],
    afterDowngrade: [constraintMustBeValidated('orders', 'orders_user_id_fkey')],
  },
  {
    name: 'addUnique USING INDEX turns a prebuilt unique index into the constraint; the downgrade rebuilds the index concurrently',
    setup: ['CREATE TABLE users (id int PRIMARY KEY, email text)', `INSERT INTO users VALUES (1, 'a@x')`, 'CREATE UNIQUE INDEX users_email_idx ON users (email)'],
    upgrade: (op) => op.addUnique('users', 'users_email_key', ['email'], { usingIndex: 'users_email_idx' }),
    downgrade: (op) => {
      op.dropConstraint('users', 'users_email_key');
      op.createIndex('users_email_idx', 'users', ['email'], { unique: true, concurrently: true });
    },
    afterUpgrade: [
      constraintMustBeValidated('users', 'users_email_key'),
      indexMustBeValid('users_email_key'),
      indexMustNotExist('users_email_idx'),
      mustNotInsert(`INSERT INTO users VALUES (2, 'a@x')`, UNIQUE_VIOLATION),
    ],
    afterDowngrade: [constraintMustNotExist('users', 'users_email_key'), indexMustBeValid('users_email_idx')],
  },
  {
    name: 'addUnique on columns builds its own index; dropConstraint removes both',
    setup: ['CREATE TABLE codes (id int PRIMARY KEY, "Code" text)'],
    upgrade: (op) => op.addUnique('codes', 'codes_code_key', ['Code']),
    downgrade: (op) => op.dropConstraint('codes', 'codes_code_key'),
    afterUpgrade: [constraintMustBeValidated('codes', 'codes_code_key'), indexMustBeValid('codes_code_key')],
    afterDowngrade: [constraintMustNotExist('codes', 'codes_code_key'), indexMustNotExist('codes_code_key')],
  },
  {
    name: 'a concurrent unique index build replaces the INVALID index a failed first attempt left behind',
    setup: [
      'CREATE SCHEMA app',
      'CREATE TABLE app."Users" (id int PRIMARY KEY, email text)',
      `INSERT INTO app."Users" VALUES (1, 'a@x'), (2, 'a@x'), (3, 'c@x')`,
    ],
    arrange: async ({ db, apply }) => {
      await expect(apply('upgrade')).rejects.toMatchObject({ type: 'SqlError', message: expect.stringContaining(UNIQUE_VIOLATION) });
      await indexMustBeInvalid('app.users_email_key')(db);
      await db.query(`UPDATE app."Users" SET email = 'b@x' WHERE id = 2`);
    },
    upgrade: (op) => op.createIndex('users_email_key', 'app.Users', ['email'], { unique: true, concurrently: true }),
    downgrade: (op) => op.dropIndex('app.users_email_key', { concurrently: true }),
    afterUpgrade: [indexMustBeValid('app.users_email_key'), mustNotInsert(`INSERT INTO app."Users" VALUES (4, 'c@x')`, UNIQUE_VIOLATION)],
    afterDowngrade: [indexMustNotExist('app.users_email_key'), mustInsert(`INSERT INTO app."Users" VALUES (4, 'c@x')`)],
  },
  {
    name: 'a partial expression index is built inside the revision transaction',
    setup: ['CREATE TABLE users (id int PRIMARY KEY, email text, deleted_at timestamptz)'],
    upgrade: (op) => op.createIndex('users_lower_email', 'users', { expression: 'lower(email)' }, { where: 'deleted_at IS NULL' }),
    downgrade: (op) => op.dropIndex('users_lower_email'),
    afterUpgrade: [
      indexMustBeValid('users_lower_email'),
      indexMustBeDefinedAs('users_lower_email', 'CREATE INDEX users_lower_email ON public.users USING btree (lower(email)) WHERE (deleted_at IS NULL)'),
    ],
    afterDowngrade: [indexMustNotExist('users_lower_email')],
  },
  {
    name: 'a sync trigger function keeps a new column in step with the old one; the downgrade removes both',
    setup: ['CREATE SCHEMA app', 'CREATE TABLE app.users (id int PRIMARY KEY, full_name text, "Display Name" text)'],
    upgrade: (op) => {
      op.createFunction('app.sync_Display_Name', {
        returns: 'trigger',
        language: 'plpgsql',
        body: `
BEGIN
  NEW."Display Name" := NEW.full_name;
  RETURN NEW;
END`,
      });
      op.createTrigger('users sync "display"', 'app.users', {
        timing: 'BEFORE',
        events: ['INSERT', 'UPDATE OF full_name'],
        forEach: 'ROW',
        function: 'app.sync_Display_Name',
      });
    },
    downgrade: (op) => {
      op.dropTrigger('users sync "display"', 'app.users');
      op.dropFunction('app.sync_Display_Name', []);
    },
    afterUpgrade: [
      functionMustExist('app."sync_Display_Name"()'),
      triggerMustExist('app.users', 'users sync "display"'),
      mustReturn(`INSERT INTO app.users (id, full_name) VALUES (1, 'Ada') RETURNING "Display Name"`, [{ 'Display Name': 'Ada' }]),
    ],
    afterDowngrade: [
      triggerMustNotExist('app.users', 'users sync "display"'),
      functionMustNotExist('app."sync_Display_Name"()'),
      mustReturn(`INSERT INTO app.users (id, full_name) VALUES (1, 'Ada') RETURNING "Display Name"`, [{ 'Display Name': null }]),
    ],
  },
  {
    name: 'op.sql runs its statement with $n parameters',
    setup: ['CREATE TABLE settings (key text PRIMARY KEY, value text)'],
    upgrade: (op) => op.sql('INSERT INTO settings VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value', ['mode', "it's on"]),
    downgrade: (op) => op.sql('DELETE FROM settings WHERE key = $1', ['mode']),
    afterUpgrade: [mustReturn('SELECT key, value FROM settings', [{ key: 'mode', value: "it's on" }])],
    afterDowngrade: [mustReturn('SELECT key, value FROM settings', [])],
  },
];

async function runChecks(db: TestDatabase, checks: Check[]): Promise<void> {
  for (const check of checks) await check(db);
}

describe('ops against PostgreSQL: upgrade ×2 → check → downgrade ×2 → check → upgrade ×2 → check', () => {
  test.each(cases)('$name', async (c) => {
    const db = await createTestDatabase();
    const dir = writeMigrations({ 'ops_case.js': '// statements come from the plan step built by the harness\n' });
    const config: PhasegateConfig = testConfig({ databases: { app: { url: db.url, migrationsDirectory: dir } }, defaults: { lockTimeoutMs: 2_000 } });
    const pools = new DatabasePools(config);
    const activities = createActivities({ config, pools, log: silentLog });
    const hash = hashFile(path.join(dir, 'ops_case.js'));
    let heads: string[] = [];
    let runs = 0;

    /** One plan step made of the case's ops, applied the way a worker applies it. */
    async function apply(direction: Direction): Promise<void> {
      const ops = await recordOps(direction === 'upgrade' ? c.upgrade : c.downgrade);
      const revision = `r${++runs}`;
      const step: PlanStep = {
        revision,
        message: `${direction} of: ${c.name}`,
        file: 'ops_case.js',
        hash,
        direction,
        // What a revision author declares: `transactional: false` exactly when an op needs it.
        transactional: !ops.some((o) => o.nonTransactional),
        operations: ops.map((o) => o.description),
        statements: ops.flatMap((o) => o.statements),
        headsBefore: heads,
        headsAfter: [revision],
      };
      const result = await runActivity(activities.applyRevision, { database: 'app', step });
      expect(result.outcome).toBe('applied');
      heads = step.headsAfter;
    }

    /** Runs a direction, then again as a retry would: the retry must succeed and change nothing. */
    async function applyTwice(direction: Direction): Promise<void> {
      await apply(direction);
      const afterFirst = await catalogFingerprint(db);
      await apply(direction);
      expect({ direction, catalog: await catalogFingerprint(db) }).toEqual({ direction, catalog: afterFirst });
    }

    try {
      for (const sql of c.setup) await db.query(sql);
      await c.arrange?.({ db, apply });

      const concurrent = c.whileAnotherSessionRuns;
      const other = concurrent === undefined ? undefined : new pg.Client({ connectionString: db.url });
      if (other && concurrent !== undefined) {
        await other.connect();
        await other.query('BEGIN');
        await other.query(concurrent);
      }
      try {
        await applyTwice('upgrade');
      } finally {
        await other?.query('ROLLBACK');
        await other?.end();
      }
      await runChecks(db, c.afterUpgrade);

      await applyTwice('downgrade');
      await runChecks(db, c.afterDowngrade);

      await applyTwice('upgrade');
      await runChecks(db, c.afterUpgrade);
    } finally {
      await pools.close();
      await db.drop();
    }
  });
});
