/**
 * @pg-matrix: its SQL, catalog or server behaviour can differ by PostgreSQL major; `npm run test:pg15` runs it again on 15.
 * Every pattern through its whole lifecycle against a real PostgreSQL, through one table-driven
 * harness, while an app keeps writing.
 *
 * A case generates its chain with `newPattern` into a fresh migrations folder, then the harness
 * plans and applies it the way a worker does (the real `planMigration` and `applyRevision`
 * activities, a lock timeout retried like the workflow retries it). A step's gate is where the app
 * may be deployed (the writer switches to its next version); a step's backfill runs as one plain
 * `UPDATE … SET … WHERE …` (batching is the backfill engine's business, not the pattern's); a step's
 * check must return no rows. Meanwhile a writer on its own connection inserts and updates rows
 * without pause: not one of its writes may fail. For renames and type changes every row a write
 * returns must have its old and new columns equal, and a sampler checks the whole table between
 * the backfill and the contract step. After the chain: the final schema and every row's value; then
 * the downgrade to base and the original schema (and data) again. Tables are small (thousands of
 * rows): the point is correctness under concurrent writes, not speed.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { createActivities } from '../../activities';
import { DatabasePools } from '../../activities/db';
import { newPattern } from '../../lib/commands';
import type { PhasegateConfig } from '../../lib/config';
import type { Direction, PlanStep } from '../../lib/plan';
import { qualified, quoteIdent } from '../../lib/sql';
import { createTestDatabase, runActivity, silentLog, testConfig, writeMigrations, type TestDatabase } from '../helpers';

const ROWS = 3000;

// ── the app: a writer with versions, deployed at gates ───────────────────────────────────────────

interface Write {
  sql: string;
  params: unknown[];
}

/** One version of the app: the next write (alternating inserts and updates of random rows). */
type AppVersion = (n: number, randomId: () => number) => Write;

interface WrittenRow {
  row: Record<string, unknown>;
  version: number;
  kind: 'insert' | 'update';
}

class Writer {
  writes = 0;
  readonly failures: string[] = [];
  private version = 0;
  private running = false;
  private loop?: Promise<void>;
  private maxId = ROWS;
  /** Write counter, kept across restarts so every write stays distinct. */
  private n = 0;
  private completedAt = new Map<number, number>();

  constructor(
    private readonly url: string,
    private readonly versions: AppVersion[],
    private readonly onRow: (written: WrittenRow) => void,
  ) {}

  async start(): Promise<void> {
    const client = new pg.Client({ connectionString: this.url, application_name: 'app-writer' });
    await client.connect();
    this.running = true;
    this.loop = (async () => {
      try {
        for (; this.running; this.n++) {
          const n = this.n;
          const version = this.version;
          const write = this.versions[version](n, () => 1 + Math.floor(Math.random() * this.maxId));
          try {
            const result = await client.query(write.sql, write.params);
            this.writes++;
            for (const row of result.rows) {
              if (typeof row.id === 'number' || typeof row.id === 'string') this.maxId = Math.max(this.maxId, Number(row.id));
              this.onRow({ row, version, kind: /^\s*INSERT/i.test(write.sql) ? 'insert' : 'update' });
            }
          } catch (err) {
            this.failures.push(`v${version} ${write.sql} ${JSON.stringify(write.params)}: ${(err as Error).message}`);
          }
          this.completedAt.set(version, (this.completedAt.get(version) ?? 0) + 1);
          // A short breath so the migration's sessions get the CPU on a small machine.
          await sleep(2);
        }
      } finally {
        await client.end();
      }
    })();
  }

  /** Switches to app version `version` and returns once a write of that version has completed. */
  async deploy(version: number): Promise<void> {
    this.version = version;
    const done = this.completedAt.get(version) ?? 0;
    while ((this.completedAt.get(version) ?? 0) <= done) await sleep(5);
  }

  /** Returns once one more write (of any version) has completed: the app saw the schema as it is now. */
  async wrote(): Promise<void> {
    const total = () => [...this.completedAt.values()].reduce((a, b) => a + b, 0);
    const done = total();
    while (this.running && total() <= done) await sleep(5);
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }
}

// ── cases ───────────────────────────────────────────────────────────────────────────────────────

interface Ctx {
  db: TestDatabase;
  one<R extends pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<R>;
  all<R extends pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<R[]>;
}

interface PatternCase {
  setup: string[];
  pattern: string;
  args: string[];
  options?: Record<string, unknown>;
  /** App versions; version i + 1 is deployed at the gate named `deployAt[i]`. */
  app: AppVersion[];
  deployAt?: string[];
  /** Each row a write returns; throw (expect) when it is wrong. */
  onRow?: (written: WrittenRow) => void;
  /** Counts rows whose old and new columns differ; sampled between the expand backfill and the contract. */
  outOfSync?: string;
  /** Whether the app (its only version) writes during the downgrade as well. */
  writesDuringDowngrade: boolean;
  afterUpgrade(ctx: Ctx): Promise<void>;
  afterDowngrade(ctx: Ctx): Promise<void>;
}

interface ColumnInfo {
  column: string;
  type: string;
  not_null: boolean;
  default_expr: string | null;
}

async function columns(ctx: Ctx, table: string): Promise<ColumnInfo[]> {
  return ctx.all<ColumnInfo>(
    `SELECT a.attname AS column, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS not_null, pg_get_expr(d.adbin, d.adrelid) AS default_expr
       FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
      WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
    [qualified(table)],
  );
}

async function constraints(ctx: Ctx, table: string): Promise<string[]> {
  const rows = await ctx.all<{ c: string }>(
    `SELECT conname || ' ' || contype::text || CASE WHEN convalidated THEN '' ELSE ' not valid' END AS c FROM pg_constraint WHERE conrelid = to_regclass($1) ORDER BY conname`,
    [qualified(table)],
  );
  return rows.map((r) => r.c);
}

async function indexes(ctx: Ctx, table: string): Promise<string[]> {
  const rows = await ctx.all<{ d: string }>(
    `SELECT pg_get_indexdef(indexrelid) || CASE WHEN indisvalid THEN '' ELSE ' INVALID' END AS d FROM pg_index WHERE indrelid = to_regclass($1) ORDER BY 1`,
    [qualified(table)],
  );
  return rows.map((r) => r.d);
}

async function triggersAndFunctions(ctx: Ctx): Promise<string[]> {
  const rows = await ctx.all<{ name: string }>(
    `SELECT 'trigger ' || tgname AS name FROM pg_trigger WHERE NOT tgisinternal
     UNION ALL SELECT 'function ' || proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace ORDER BY 1`,
  );
  return rows.map((r) => r.name);
}

/** Rows whose value in `column` differs from `expected` (by id): [] when all match. */
async function mismatches(ctx: Ctx, table: string, column: string, expected: Map<number, string>): Promise<string[]> {
  const rows = await ctx.all<{ id: string; value: string | null }>(`SELECT id::text AS id, ${quoteIdent(column)}::text AS value FROM ${qualified(table)} ORDER BY id`);
  const problems: string[] = [];
  if (rows.length !== expected.size) problems.push(`${rows.length} rows, expected ${expected.size}`);
  for (const r of rows) {
    const want = expected.get(Number(r.id));
    if (r.value !== want) problems.push(`id ${r.id}: ${r.value} (expected ${want})`);
  }
  return problems.slice(0, 10);
}

const seedAccounts = [
  'CREATE TABLE accounts (id bigserial PRIMARY KEY, email text NOT NULL, n integer NOT NULL DEFAULT 0)',
  `INSERT INTO accounts (email, n) SELECT 'user' || i || '@example.com', i FROM generate_series(1, ${ROWS}) AS i`,
];

/** The app before any pattern: inserts accounts, updates emails and counters. */
const accountsApp: AppVersion = (n, randomId) =>
  n % 2 === 0
    ? { sql: 'INSERT INTO accounts (email, n) VALUES ($1, $2) RETURNING *', params: [`w${n}@example.com`, n] }
    : { sql: 'UPDATE accounts SET n = n + 1, email = $2 WHERE id = $1 RETURNING *', params: [randomId(), `u${n}@example.com`] };

const cases: Array<{ name: string; build: () => PatternCase }> = [
  {
    name: 'add-not-null-column with a constant default and a backfill expression: old rows get the expression, the app never notices',
    build: () => {
      const expected = new Map<number, string>(Array.from({ length: ROWS }, (_, i) => [i + 1, String((i + 1) % 7)]));
      return {
        setup: seedAccounts,
        pattern: 'add-not-null-column',
        args: ['accounts', 'org_id', 'bigint'],
        options: { default: '0', backfill: 'id % 7' },
        app: [accountsApp],
        // Rows the app inserts after the column exists get the default; rows it inserted before get the backfill.
        onRow: ({ row, kind }) => {
          if (kind === 'insert') expected.set(Number(row.id), 'org_id' in row ? String(row.org_id) : String(Number(row.id) % 7));
        },
        writesDuringDowngrade: true,
        async afterUpgrade(ctx) {
          expect(await columns(ctx, 'accounts')).toContainEqual({ column: 'org_id', type: 'bigint', not_null: true, default_expr: '0' });
          expect(await constraints(ctx, 'accounts')).toEqual(['accounts_pkey p']);
          expect(await mismatches(ctx, 'accounts', 'org_id', expected)).toEqual([]);
        },
        async afterDowngrade(ctx) {
          expect((await columns(ctx, 'accounts')).map((c) => c.column)).toEqual(['id', 'email', 'n']);
          expect(await constraints(ctx, 'accounts')).toEqual(['accounts_pkey p']);
        },
      };
    },
  },
  {
    name: 'add-not-null-column with a volatile default: no table rewrite, every row gets its own value',
    build: () => ({
      setup: seedAccounts,
      pattern: 'add-not-null-column',
      args: ['accounts', 'token', 'uuid'],
      options: { default: 'gen_random_uuid()' },
      app: [accountsApp],
      writesDuringDowngrade: true,
      async afterUpgrade(ctx) {
        expect(await columns(ctx, 'accounts')).toContainEqual({ column: 'token', type: 'uuid', not_null: true, default_expr: 'gen_random_uuid()' });
        const { rows, distinct } = await ctx.one<{ rows: number; distinct: number }>('SELECT count(*)::int AS rows, count(DISTINCT token)::int AS distinct FROM accounts');
        expect(distinct).toBe(rows);
        expect(await constraints(ctx, 'accounts')).toEqual(['accounts_pkey p']);
      },
      async afterDowngrade(ctx) {
        expect((await columns(ctx, 'accounts')).map((c) => c.column)).toEqual(['id', 'email', 'n']);
      },
    }),
  },
  {
    name: 'add-not-null-column with --backfill only: the app deploy comes before the backfill, then NOT NULL',
    build: () => {
      const plan = (id: number) => (id % 2 === 0 ? 'pro' : 'free');
      const expected = new Map<number, string>(Array.from({ length: ROWS }, (_, i) => [i + 1, plan(i + 1)]));
      return {
        setup: seedAccounts,
        pattern: 'add-not-null-column',
        args: ['accounts', 'plan', 'text'],
        options: { backfill: "CASE WHEN id % 2 = 0 THEN 'pro' ELSE 'free' END" },
        app: [
          accountsApp,
          // The new app writes plan on every insert.
          (n, randomId) =>
            n % 2 === 0
              ? { sql: "INSERT INTO accounts (email, n, plan) VALUES ($1, $2, 'team') RETURNING *", params: [`w${n}@example.com`, n] }
              : { sql: 'UPDATE accounts SET n = n + 1 WHERE id = $1 RETURNING *', params: [randomId()] },
        ],
        deployAt: ['deploy:accounts.plan'],
        onRow: ({ row, kind, version }) => {
          if (kind === 'insert') expected.set(Number(row.id), version === 1 ? 'team' : plan(Number(row.id)));
        },
        writesDuringDowngrade: false,
        async afterUpgrade(ctx) {
          expect(await columns(ctx, 'accounts')).toContainEqual({ column: 'plan', type: 'text', not_null: true, default_expr: null });
          expect(await constraints(ctx, 'accounts')).toEqual(['accounts_pkey p']);
          expect(await mismatches(ctx, 'accounts', 'plan', expected)).toEqual([]);
        },
        async afterDowngrade(ctx) {
          expect((await columns(ctx, 'accounts')).map((c) => c.column)).toEqual(['id', 'email', 'n']);
        },
      };
    },
  },
  {
    name: 'rename-column: old and new app versions write side by side, both names stay equal, NOT NULL and DEFAULT move over',
    build: () => {
      const expected = new Map<number, string>(Array.from({ length: ROWS }, (_, i) => [i + 1, `name ${i + 1}`]));
      return {
        setup: [
          "CREATE TABLE accounts (id bigserial PRIMARY KEY, name text NOT NULL DEFAULT 'anonymous', n integer NOT NULL DEFAULT 0)",
          `INSERT INTO accounts (name, n) SELECT 'name ' || i, i FROM generate_series(1, ${ROWS}) AS i`,
        ],
        pattern: 'rename-column',
        args: ['accounts', 'name', 'full_name'],
        app: [
          (n, randomId) =>
            n % 3 === 0
              ? { sql: 'INSERT INTO accounts (n) VALUES ($1) RETURNING *', params: [n] }
              : n % 3 === 1
                ? { sql: 'INSERT INTO accounts (name, n) VALUES ($1, $2) RETURNING *', params: [`old ${n}`, n] }
                : { sql: 'UPDATE accounts SET name = $2 WHERE id = $1 RETURNING *', params: [randomId(), `old upd ${n}`] },
          (n, randomId) =>
            n % 3 === 0
              ? { sql: 'INSERT INTO accounts (full_name, n) VALUES ($1, $2) RETURNING *', params: [`new ${n}`, n] }
              : n % 3 === 1
                ? { sql: 'UPDATE accounts SET full_name = $2 WHERE id = $1 RETURNING *', params: [randomId(), `new upd ${n}`] }
                : { sql: 'UPDATE accounts SET n = n + 1 WHERE id = $1 RETURNING *', params: [randomId()] },
        ],
        deployAt: ['deploy:accounts.full_name'],
        onRow: ({ row }) => {
          if ('name' in row && 'full_name' in row) expect({ id: row.id, full_name: row.full_name }).toEqual({ id: row.id, full_name: row.name });
          expected.set(Number(row.id), String(row.full_name ?? row.name));
        },
        outOfSync: 'SELECT count(*)::int AS n FROM accounts WHERE full_name IS DISTINCT FROM name',
        writesDuringDowngrade: false,
        async afterUpgrade(ctx) {
          expect(await columns(ctx, 'accounts')).toEqual([
            { column: 'id', type: 'bigint', not_null: true, default_expr: "nextval('accounts_id_seq'::regclass)" },
            { column: 'n', type: 'integer', not_null: true, default_expr: '0' },
            { column: 'full_name', type: 'text', not_null: true, default_expr: "'anonymous'::text" },
          ]);
          expect(await constraints(ctx, 'accounts')).toEqual(['accounts_pkey p']);
          expect(await triggersAndFunctions(ctx)).toEqual([]);
          expect(await mismatches(ctx, 'accounts', 'full_name', expected)).toEqual([]);
        },
        async afterDowngrade(ctx) {
          expect(await columns(ctx, 'accounts')).toEqual([
            { column: 'id', type: 'bigint', not_null: true, default_expr: "nextval('accounts_id_seq'::regclass)" },
            { column: 'n', type: 'integer', not_null: true, default_expr: '0' },
            { column: 'name', type: 'text', not_null: true, default_expr: "'anonymous'::text" },
          ]);
          expect(await constraints(ctx, 'accounts')).toEqual(['accounts_pkey p']);
          expect(await triggersAndFunctions(ctx)).toEqual([]);
          expect(await mismatches(ctx, 'accounts', 'name', expected)).toEqual([]);
        },
      };
    },
  },
  {
    name: 'add-index --unique: built concurrently while the app writes, valid, enforced',
    build: () => ({
      setup: seedAccounts,
      pattern: 'add-index',
      args: ['accounts', 'email'],
      options: { unique: true },
      app: [accountsApp],
      writesDuringDowngrade: true,
      async afterUpgrade(ctx) {
        expect(await indexes(ctx, 'accounts')).toEqual([
          'CREATE UNIQUE INDEX accounts_email_idx ON public.accounts USING btree (email)',
          'CREATE UNIQUE INDEX accounts_pkey ON public.accounts USING btree (id)',
        ]);
        // The app rewrites random rows' emails, so duplicate one that exists now (not a seeded value).
        await expect(ctx.db.query('INSERT INTO accounts (email) SELECT email FROM accounts ORDER BY id LIMIT 1')).rejects.toMatchObject({ code: '23505' });
      },
      async afterDowngrade(ctx) {
        expect(await indexes(ctx, 'accounts')).toEqual(['CREATE UNIQUE INDEX accounts_pkey ON public.accounts USING btree (id)']);
      },
    }),
  },
  {
    name: 'add-foreign-key --gate: NOT VALID while orders keep coming, then validated',
    build: () => ({
      setup: [
        'CREATE TABLE users (id bigint PRIMARY KEY)',
        'INSERT INTO users SELECT i FROM generate_series(1, 500) AS i',
        'CREATE TABLE orders (id bigserial PRIMARY KEY, user_id bigint, total integer NOT NULL DEFAULT 0)',
        `INSERT INTO orders (user_id, total) SELECT 1 + i % 500, i FROM generate_series(1, ${ROWS}) AS i`,
      ],
      pattern: 'add-foreign-key',
      args: ['orders', 'user_id', 'users'],
      options: { gate: true },
      app: [
        (n, randomId) =>
          n % 2 === 0
            ? { sql: 'INSERT INTO orders (user_id, total) VALUES ($1, $2) RETURNING *', params: [1 + (n % 500), n] }
            : { sql: 'UPDATE orders SET user_id = $2, total = total + 1 WHERE id = $1 RETURNING *', params: [randomId(), 1 + ((n * 7) % 500)] },
      ],
      writesDuringDowngrade: true,
      async afterUpgrade(ctx) {
        expect(await constraints(ctx, 'orders')).toEqual(['orders_pkey p', 'orders_user_id_fkey f']);
        await expect(ctx.db.query('INSERT INTO orders (user_id) VALUES (9999)')).rejects.toMatchObject({ code: '23503' });
      },
      async afterDowngrade(ctx) {
        expect(await constraints(ctx, 'orders')).toEqual(['orders_pkey p']);
      },
    }),
  },
  {
    name: 'change-column-type text → integer: the app writes through the swap, the converted column equals the old one throughout',
    build: () => {
      const expected = new Map<number, string>(Array.from({ length: ROWS }, (_, i) => [i + 1, String((i + 1) * 3)]));
      return {
        setup: [
          "CREATE TABLE items (id bigserial PRIMARY KEY, code text NOT NULL DEFAULT '0', n integer NOT NULL DEFAULT 0)",
          `INSERT INTO items (code, n) SELECT (i * 3)::text, i FROM generate_series(1, ${ROWS}) AS i`,
        ],
        pattern: 'change-column-type',
        args: ['items', 'code', 'integer'],
        options: { fromType: 'text', using: 'code::integer', down: 'code::text' },
        // The app is written for both types: it sends codes as text parameters, which PostgreSQL
        // reads as whatever type the column has.
        app: [
          (n, randomId) =>
            n % 3 === 0
              ? { sql: 'INSERT INTO items (n) VALUES ($1) RETURNING *', params: [n] }
              : n % 3 === 1
                ? { sql: 'INSERT INTO items (code, n) VALUES ($1, $2) RETURNING *', params: [String(n * 11), n] }
                : { sql: 'UPDATE items SET code = $2 WHERE id = $1 RETURNING *', params: [randomId(), String(n * 13)] },
        ],
        onRow: ({ row }) => {
          if ('_phasegate_new_code' in row) expect({ id: row.id, converted: row._phasegate_new_code }).toEqual({ id: row.id, converted: Number(row.code) });
          expected.set(Number(row.id), String(row.code));
        },
        outOfSync: 'SELECT count(*)::int AS n FROM items WHERE _phasegate_new_code IS DISTINCT FROM code::integer',
        writesDuringDowngrade: true,
        async afterUpgrade(ctx) {
          expect(await columns(ctx, 'items')).toEqual([
            { column: 'id', type: 'bigint', not_null: true, default_expr: "nextval('items_id_seq'::regclass)" },
            { column: 'n', type: 'integer', not_null: true, default_expr: '0' },
            { column: 'code', type: 'integer', not_null: true, default_expr: "('0'::text)::integer" },
          ]);
          expect(await constraints(ctx, 'items')).toEqual(['items_pkey p']);
          expect(await triggersAndFunctions(ctx)).toEqual([]);
          expect(await mismatches(ctx, 'items', 'code', expected)).toEqual([]);
        },
        async afterDowngrade(ctx) {
          const cols = await columns(ctx, 'items');
          expect(cols.map(({ column, type, not_null }) => ({ column, type, not_null }))).toEqual([
            { column: 'id', type: 'bigint', not_null: true },
            { column: 'n', type: 'integer', not_null: true },
            { column: 'code', type: 'text', not_null: true },
          ]);
          // The default comes back as an equivalent expression (moved through the integer column).
          expect(await ctx.one('WITH d AS (INSERT INTO items (n) VALUES (-1) RETURNING code) SELECT code FROM d')).toEqual({ code: '0' });
          await ctx.db.query('DELETE FROM items WHERE n = -1');
          expect(await constraints(ctx, 'items')).toEqual(['items_pkey p']);
          expect(await triggersAndFunctions(ctx)).toEqual([]);
          expect(await mismatches(ctx, 'items', 'code', expected)).toEqual([]);
        },
      };
    },
  },
  {
    name: 'add-unique: concurrent unique index, then the constraint on it; the downgrade rebuilds the plain index',
    build: () => ({
      setup: seedAccounts,
      pattern: 'add-unique',
      args: ['accounts', 'email'],
      app: [accountsApp],
      writesDuringDowngrade: true,
      async afterUpgrade(ctx) {
        expect(await constraints(ctx, 'accounts')).toEqual(['accounts_email_key u', 'accounts_pkey p']);
        expect(await indexes(ctx, 'accounts')).toEqual([
          'CREATE UNIQUE INDEX accounts_email_key ON public.accounts USING btree (email)',
          'CREATE UNIQUE INDEX accounts_pkey ON public.accounts USING btree (id)',
        ]);
        // The app rewrites random rows' emails, so duplicate one that exists now (not a seeded value).
        await expect(ctx.db.query('INSERT INTO accounts (email) SELECT email FROM accounts ORDER BY id LIMIT 1')).rejects.toMatchObject({ code: '23505' });
      },
      async afterDowngrade(ctx) {
        expect(await constraints(ctx, 'accounts')).toEqual(['accounts_pkey p']);
        expect(await indexes(ctx, 'accounts')).toEqual(['CREATE UNIQUE INDEX accounts_pkey ON public.accounts USING btree (id)']);
      },
    }),
  },
];

// ── the harness ─────────────────────────────────────────────────────────────────────────────────

const MAX_LOCK_ATTEMPTS = 20;

describe('patterns against PostgreSQL, with the app writing throughout: upgrade → checks → downgrade', () => {
  test.each(cases)('$name', async ({ build }) => {
    const c = build();
    const db = await createTestDatabase();
    const dir = writeMigrations({});
    const config: PhasegateConfig = testConfig({ databases: { app: { url: db.url, migrationsDirectory: dir } }, defaults: { lockTimeoutMs: 2_000 } });
    const pools = new DatabasePools(config);
    const activities = createActivities({ config, pools, log: silentLog });
    const ctx: Ctx = {
      db,
      one: async <R extends pg.QueryResultRow>(sql: string, params: unknown[] = []) => (await db.query<R>(sql, params)).rows[0],
      all: async <R extends pg.QueryResultRow>(sql: string, params: unknown[] = []) => (await db.query<R>(sql, params)).rows,
    };
    const writer = new Writer(db.url, c.app, (w) => c.onRow?.(w));
    const samplerFailures: string[] = [];
    let sampling = false;
    let samples = 0;
    let stopSampler = false;
    async function sample(): Promise<void> {
      if (!c.outOfSync) return;
      try {
        const { n } = await ctx.one<{ n: number }>(c.outOfSync);
        if (n !== 0) samplerFailures.push(`${n} row(s) out of sync`);
      } catch (err) {
        samplerFailures.push(`sampling failed: ${(err as Error).message}`);
      }
      samples++;
    }
    // In the background while steps run, and once after each step (below).
    let inFlight: Promise<void> = Promise.resolve();
    const sampler = (async () => {
      while (!stopSampler) {
        if (sampling) {
          inFlight = sample();
          await inFlight;
        }
        await sleep(50);
      }
    })();
    /** Before the columns the sampler compares go away: no sample may still be running. */
    async function stopSampling(): Promise<void> {
      sampling = false;
      await inFlight;
    }

    async function applyStep(step: PlanStep): Promise<void> {
      for (let attempt = 1; ; attempt++) {
        const result = await runActivity(activities.applyRevision, { database: 'app', step });
        if (result.outcome !== 'lock-timeout') {
          expect(result.outcome).toBe('applied');
          return;
        }
        if (attempt >= MAX_LOCK_ATTEMPTS) throw new Error(`${step.revision}: still waiting for a lock after ${attempt} attempts: ${result.waiting}`);
        await sleep(100 * attempt);
      }
    }

    async function migrate(direction: Direction): Promise<PlanStep[]> {
      const plan = await runActivity(activities.planMigration, { database: 'app', target: direction === 'upgrade' ? 'head' : 'base', direction });
      for (const step of plan.steps) {
        // A gate is where the app may be deployed.
        const deploy = step.gate ? (c.deployAt ?? []).indexOf(step.gate.name) : -1;
        if (deploy >= 0) await writer.deploy(deploy + 1);
        // The contract step drops what the sampler compares.
        if (step.phase === 'contract') await stopSampling();
        await applyStep(step);
        if (step.backfill) {
          const set = Object.entries(step.backfill.set).map(([column, expression]) => `${quoteIdent(column)} = ${expression}`);
          await db.query(`UPDATE ${qualified(step.backfill.table)} SET ${set.join(', ')}${step.backfill.where ? ` WHERE ${step.backfill.where}` : ''}`);
        }
        if (step.check) {
          const failing = await db.query(step.check.failingRows);
          expect({ check: step.check.name, failingRows: failing.rows.slice(0, 5) }).toEqual({ check: step.check.name, failingRows: [] });
        }
        if (direction === 'upgrade' && step.phase === 'expand' && c.outOfSync) sampling = true;
        if (sampling) await sample();
        // Every state between two steps sees the app write.
        await writer.wrote();
      }
      return plan.steps;
    }

    try {
      for (const sql of c.setup) await db.query(sql);
      const generated = await newPattern({ config, database: 'app', pattern: c.pattern, args: c.args, options: c.options });
      const filenode = async () => (await ctx.one<{ f: string }>('SELECT pg_relation_filenode($1) AS f', [qualified(c.args[0])])).f;
      const before = await filenode();

      await writer.start();
      const steps = await migrate('upgrade');
      expect(steps.map((s) => s.revision)).toEqual(generated.files.map((f) => f.id));
      await stopSampling();
      // The app pauses while the result is inspected, so the data compared is not moving.
      await writer.stop();
      const writesDuringUpgrade = writer.writes;

      expect(writer.failures).toEqual([]);
      expect(samplerFailures).toEqual([]);
      // The app really was writing throughout: at least once after each step.
      expect(writesDuringUpgrade).toBeGreaterThanOrEqual(steps.length);
      if (c.outOfSync) expect(samples).toBeGreaterThan(0);
      // No step rewrote the table (a rewrite gives it a new relfilenode).
      expect(await filenode()).toBe(before);
      await c.afterUpgrade(ctx);

      if (c.writesDuringDowngrade) await writer.start();
      await migrate('downgrade');
      await writer.stop();
      expect(writer.failures).toEqual([]);
      expect(await ctx.all('SELECT * FROM phasegate_version')).toEqual([]);
      await c.afterDowngrade(ctx);
    } finally {
      stopSampler = true;
      await writer.stop();
      await sampler;
      await pools.close();
      await db.drop();
    }
  });
});

test('the contract step of rename-column refuses, changing nothing, while an index still uses the old column', async () => {
  const db = await createTestDatabase();
  const dir = writeMigrations({});
  const config: PhasegateConfig = testConfig({ databases: { app: { url: db.url, migrationsDirectory: dir } }, defaults: { lockTimeoutMs: 2_000 } });
  const pools = new DatabasePools(config);
  const activities = createActivities({ config, pools, log: silentLog });
  try {
    await db.query('CREATE TABLE accounts (id bigserial PRIMARY KEY, name text)');
    await db.query('CREATE INDEX accounts_name_idx ON accounts (name)');
    await newPattern({ config, database: 'app', pattern: 'rename-column', args: ['accounts', 'name', 'full_name'] });
    const plan = await runActivity(activities.planMigration, { database: 'app', target: 'head', direction: 'upgrade' });
    for (const step of plan.steps.slice(0, 2)) expect((await runActivity(activities.applyRevision, { database: 'app', step })).outcome).toBe('applied');
    await expect(runActivity(activities.applyRevision, { database: 'app', step: plan.steps[2] })).rejects.toMatchObject({
      message: expect.stringContaining('accounts.name is still used by index accounts_name_idx'),
    });
    const { rows } = await db.query<{ name: string }>(
      "SELECT attname AS name FROM pg_attribute WHERE attrelid = 'accounts'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
    );
    expect(rows.map((r) => r.name)).toEqual(['id', 'name', 'full_name']);
    expect((await db.query('SELECT version_num FROM phasegate_version')).rows).toEqual([{ version_num: plan.steps[1].revision }]);
  } finally {
    await pools.close();
    await db.drop();
  }
});
