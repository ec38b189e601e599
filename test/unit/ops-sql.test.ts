/**
 * What every op renders to, asserted as text: no database. The integration harness
 * (test/integration/ops.test.ts) runs the same SQL against PostgreSQL.
 */
import { Op, recordOps, type RecordedOp } from '../../lib/ops';

/** Records exactly one op. */
async function one(fn: (op: Op) => void): Promise<RecordedOp> {
  const ops = await recordOps(fn);
  expect(ops).toHaveLength(1);
  return ops[0];
}

/** The SQL of the op's only statement. */
async function sqlOf(fn: (op: Op) => void): Promise<string> {
  const op = await one(fn);
  expect(op.statements).toHaveLength(1);
  return op.statements[0].sql;
}

/** The text of a DO block that runs `ddl` when `condition` holds. */
const doIf = (condition: string, ddl: string) => `DO $phasegate$
BEGIN
  IF ${condition} THEN
    ${ddl};
  END IF;
END
$phasegate$`;

const noConstraint = (table: string, name: string) =>
  `NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = '${table}'::regclass AND conname = '${name}')`;

describe('op.sql', () => {
  it('passes text and $n parameters through', async () => {
    expect(await one((op) => op.sql('UPDATE t SET a = $1', [5]))).toEqual({
      kind: 'sql',
      description: 'custom SQL',
      statements: [{ sql: 'UPDATE t SET a = $1', params: [5] }],
      // Raw SQL counts as ACCESS EXCLUSIVE unless declared (maintenance windows).
      lock: 'ACCESS EXCLUSIVE',
    });
  });
});

describe('tables', () => {
  it('createTable renders knex DDL with IF NOT EXISTS and guards knex-added constraints by name', async () => {
    const op = await one((op) =>
      op.createTable('app.users', (t) => {
        t.bigIncrements('id');
        t.string('email').notNullable().unique();
        t.index(['email'], 'users_email_idx');
      }),
    );
    expect(op.kind).toBe('createTable');
    expect(op.statements.map((s) => s.sql)).toEqual([
      'create table if not exists "app"."users" ("id" bigserial primary key, "email" varchar(255) not null)',
      doIf(noConstraint('"app"."users"', 'users_email_unique'), 'alter table "app"."users" add constraint "users_email_unique" unique ("email")'),
      'create index if not exists "users_email_idx" on "app"."users" ("email")',
    ]);
  });

  it('dropTable', async () => {
    expect(await sqlOf((op) => op.dropTable('app.Users'))).toBe('DROP TABLE IF EXISTS "app"."Users"');
  });

  it('renameTable runs unless the old name is gone and the new one exists', async () => {
    expect(await sqlOf((op) => op.renameTable('app.users', 'members'))).toBe(
      doIf(`to_regclass('"app"."users"') IS NOT NULL OR to_regclass('"app"."members"') IS NULL`, 'ALTER TABLE "app"."users" RENAME TO "members"'),
    );
  });

  it('renameTable accepts the new name qualified with the same schema, and refuses another schema', async () => {
    expect(await sqlOf((op) => op.renameTable('app.users', 'app.members'))).toContain('ALTER TABLE "app"."users" RENAME TO "members"');
    await expect(recordOps((op) => op.renameTable('app.users', 'other.members'))).rejects.toMatchObject({
      type: 'InvalidOp',
      message: expect.stringContaining('op.renameTable'),
    });
  });
});

describe('columns', () => {
  it('addColumn with a default and NOT NULL', async () => {
    expect(await sqlOf((op) => op.addColumn('accounts', 'Status', 'text', { default: `'active'`, nullable: false }))).toBe(
      `ALTER TABLE "accounts" ADD COLUMN IF NOT EXISTS "Status" text DEFAULT 'active' NOT NULL`,
    );
  });

  it('dropColumn', async () => {
    expect(await sqlOf((op) => op.dropColumn('app.accounts', 'we"ird'))).toBe('ALTER TABLE "app"."accounts" DROP COLUMN IF EXISTS "we""ird"');
  });

  it('renameColumn quotes odd names in the statement and as literals in the catalog check', async () => {
    const attr = (name: string) =>
      `EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = '"app"."we""ird"'::regclass AND attname = '${name}' AND NOT attisdropped)`;
    expect(await sqlOf((op) => op.renameColumn('app.we"ird', "it's", 'Full Name'))).toBe(
      doIf(`${attr("it''s")}\n     OR NOT ${attr('Full Name')}`, 'ALTER TABLE "app"."we""ird" RENAME COLUMN "it\'s" TO "Full Name"'),
    );
  });

  it('alterColumn without USING is one plain ALTER TABLE (re-running it changes nothing)', async () => {
    expect(await sqlOf((op) => op.alterColumn('accounts', 'code', { type: 'varchar(64)', nullable: true }))).toBe(
      'ALTER TABLE "accounts" ALTER COLUMN "code" SET DATA TYPE varchar(64), ALTER COLUMN "code" DROP NOT NULL',
    );
  });

  it('alterColumn with USING runs only while the base type differs, and drops the old default before a new one', async () => {
    expect(
      await sqlOf((op) => op.alterColumn('app.orders', 'amount', { type: 'bigint', using: '(amount * 100)::bigint', default: '0', nullable: false })),
    ).toBe(
      doIf(
        `(SELECT atttypid FROM pg_attribute WHERE attrelid = '"app"."orders"'::regclass AND attname = 'amount' AND NOT attisdropped)\n     IS DISTINCT FROM 'bigint'::regtype`,
        'ALTER TABLE "app"."orders" ALTER COLUMN "amount" DROP DEFAULT, ALTER COLUMN "amount" SET DATA TYPE bigint USING ((amount * 100)::bigint), ' +
          'ALTER COLUMN "amount" SET DEFAULT 0, ALTER COLUMN "amount" SET NOT NULL',
      ),
    );
  });

  it('alterColumn default: null drops the default', async () => {
    const op = await one((op) => op.alterColumn('accounts', 'note', { default: null }));
    expect(op.statements).toEqual([{ sql: 'ALTER TABLE "accounts" ALTER COLUMN "note" DROP DEFAULT' }]);
    expect(op.description).toBe('alter column accounts.note: drop default');
  });

  it('setNotNull and dropNotNull', async () => {
    const ops = await recordOps((op) => {
      op.setNotNull('app.accounts', 'email');
      op.dropNotNull('app.accounts', 'email');
    });
    expect(ops.map((o) => [o.kind, o.statements[0].sql])).toEqual([
      ['setNotNull', 'ALTER TABLE "app"."accounts" ALTER COLUMN "email" SET NOT NULL'],
      ['dropNotNull', 'ALTER TABLE "app"."accounts" ALTER COLUMN "email" DROP NOT NULL'],
    ]);
  });
});

describe('indexes', () => {
  it('createIndex concurrently is non-transactional and first drops an INVALID index of its name (guarded)', async () => {
    const op = await one((op) =>
      op.createIndex('users_email_key', 'app.users', ['email', 'Tenant'], { unique: true, concurrently: true, where: 'deleted_at IS NULL', using: 'btree' }),
    );
    expect(op).toEqual({
      kind: 'createIndex',
      description: 'create index users_email_key on app.users (unique, concurrently)',
      nonTransactional: true,
      lock: 'SHARE UPDATE EXCLUSIVE',
      statements: [
        {
          sql: 'DROP INDEX CONCURRENTLY IF EXISTS "app"."users_email_key"',
          onlyIf: { sql: 'SELECT 1 FROM pg_index WHERE indexrelid = to_regclass($1) AND NOT indisvalid', params: ['"app"."users_email_key"'] },
        },
        {
          sql: 'CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS "users_email_key" ON "app"."users" USING "btree" ("email", "Tenant") WHERE (deleted_at IS NULL)',
        },
      ],
    });
  });

  it('createIndex without concurrently stays transactional; an expression goes in verbatim', async () => {
    const op = await one((op) => op.createIndex('Users_Lower', 'users', { expression: 'lower(email)' }));
    expect(op.nonTransactional).toBeUndefined();
    expect(op.statements).toEqual([
      {
        sql: 'DROP INDEX IF EXISTS "Users_Lower"',
        onlyIf: { sql: 'SELECT 1 FROM pg_index WHERE indexrelid = to_regclass($1) AND NOT indisvalid', params: ['"Users_Lower"'] },
      },
      { sql: 'CREATE INDEX IF NOT EXISTS "Users_Lower" ON "users" (lower(email))' },
    ]);
  });

  it('dropIndex, plain and concurrently', async () => {
    const ops = await recordOps((op) => {
      op.dropIndex('app.we"ird_idx');
      op.dropIndex('users_email_key', { concurrently: true });
    });
    expect(ops.map((o) => [o.statements[0].sql, o.nonTransactional ?? false])).toEqual([
      ['DROP INDEX IF EXISTS "app"."we""ird_idx"', false],
      ['DROP INDEX CONCURRENTLY IF EXISTS "users_email_key"', true],
    ]);
  });
});

describe('constraints', () => {
  it('addCheck NOT VALID, guarded by name', async () => {
    expect(await sqlOf((op) => op.addCheck('app.users', 'users_email_not_null', 'email IS NOT NULL', { notValid: true }))).toBe(
      doIf(
        noConstraint('"app"."users"', 'users_email_not_null'),
        'ALTER TABLE "app"."users" ADD CONSTRAINT "users_email_not_null" CHECK (email IS NOT NULL) NOT VALID',
      ),
    );
  });

  it('addUnique with columns, and USING INDEX', async () => {
    const ops = await recordOps((op) => {
      op.addUnique('users', 'users_email_key', ['email', 'Org']);
      op.addUnique('app.users', 'users_email_key', ['email'], { usingIndex: 'users_email_idx' });
    });
    expect(ops.map((o) => o.statements[0].sql)).toEqual([
      doIf(noConstraint('"users"', 'users_email_key'), 'ALTER TABLE "users" ADD CONSTRAINT "users_email_key" UNIQUE ("email", "Org")'),
      doIf(noConstraint('"app"."users"', 'users_email_key'), 'ALTER TABLE "app"."users" ADD CONSTRAINT "users_email_key" UNIQUE USING INDEX "users_email_idx"'),
    ]);
  });

  it('addForeignKey NOT VALID with referential actions', async () => {
    expect(
      await sqlOf((op) =>
        op.addForeignKey('app.orders', 'orders_user_id_fkey', ['user_id'], 'app.Users', ['id'], { notValid: true, onDelete: 'SET NULL', onUpdate: 'CASCADE' }),
      ),
    ).toBe(
      doIf(
        noConstraint('"app"."orders"', 'orders_user_id_fkey'),
        'ALTER TABLE "app"."orders" ADD CONSTRAINT "orders_user_id_fkey" FOREIGN KEY ("user_id") REFERENCES "app"."Users" ("id") ON DELETE SET NULL ON UPDATE CASCADE NOT VALID',
      ),
    );
  });

  it('validateConstraint and dropConstraint', async () => {
    const ops = await recordOps((op) => {
      op.validateConstraint('app.orders', 'orders_user_id_fkey');
      op.dropConstraint('app.orders', 'we"ird');
    });
    expect(ops.map((o) => o.statements[0].sql)).toEqual([
      'ALTER TABLE "app"."orders" VALIDATE CONSTRAINT "orders_user_id_fkey"',
      'ALTER TABLE "app"."orders" DROP CONSTRAINT IF EXISTS "we""ird"',
    ]);
  });
});

describe('functions and triggers', () => {
  it('createFunction dollar-quotes the body with a tag the body does not contain', async () => {
    expect(
      await sqlOf((op) => op.createFunction('app.sync_name', { returns: 'trigger', language: 'plpgsql', body: 'BEGIN RETURN NEW; END' })),
    ).toBe('CREATE OR REPLACE FUNCTION "app"."sync_name"() RETURNS trigger LANGUAGE "plpgsql" AS $phasegate$BEGIN RETURN NEW; END$phasegate$');
    expect(
      await sqlOf((op) => op.createFunction('add', { returns: 'integer', language: 'sql', args: ['a integer', 'b integer'], body: "SELECT a + b -- $phasegate$" })),
    ).toBe('CREATE OR REPLACE FUNCTION "add"(a integer, b integer) RETURNS integer LANGUAGE "sql" AS $phasegate1$SELECT a + b -- $phasegate$$phasegate1$');
  });

  it('dropFunction names the overload by its argument types', async () => {
    const ops = await recordOps((op) => {
      op.dropFunction('app.sync_name', []);
      op.dropFunction('add', ['integer', 'integer']);
    });
    expect(ops.map((o) => o.statements[0].sql)).toEqual(['DROP FUNCTION IF EXISTS "app"."sync_name"()', 'DROP FUNCTION IF EXISTS "add"(integer, integer)']);
  });

  it('createTrigger quotes UPDATE OF columns and the function', async () => {
    expect(
      await sqlOf((op) =>
        op.createTrigger('users_sync', 'app.users', {
          timing: 'BEFORE',
          events: ['INSERT', 'UPDATE OF full_name, Email'],
          forEach: 'ROW',
          function: 'app.sync_name',
          when: 'pg_trigger_depth() = 0',
        }),
      ),
    ).toBe(
      'CREATE OR REPLACE TRIGGER "users_sync" BEFORE INSERT OR UPDATE OF "full_name", "Email" ON "app"."users" FOR EACH ROW WHEN (pg_trigger_depth() = 0) EXECUTE FUNCTION "app"."sync_name"()',
    );
  });

  it('dropTrigger', async () => {
    expect(await sqlOf((op) => op.dropTrigger('users_sync', 'app.users'))).toBe('DROP TRIGGER IF EXISTS "users_sync" ON "app"."users"');
  });
});

describe('bad input is refused while recording, naming the op', () => {
  const cases: Array<[string, (op: Op) => void, string]> = [
    ['empty table name', (op) => op.addColumn('', 'a', 'int'), 'op.addColumn: table must be a non-empty string'],
    ['a type with ;', (op) => op.addColumn('t', 'a', 'int; DROP TABLE t'), "op.addColumn: type \"int; DROP TABLE t\" contains ';'"],
    ['a type with a comment', (op) => op.alterColumn('t', 'a', { type: 'int --' }), 'op.alterColumn: type "int --" contains'],
    ['an empty schema part', (op) => op.dropTable('app.'), 'op.dropTable: table name must be a non-empty string'],
    ['three-part names', (op) => op.dropTable('db.app.users'), 'op.dropTable: table name "db.app.users" has more than one dot'],
    ['a name PostgreSQL would truncate', (op) => op.addCheck('t', 'c'.repeat(64), 'a > 0'), 'longer than 63 bytes'],
    ['a schema-qualified index name', (op) => op.createIndex('app.idx', 'app.t', ['a']), 'op.createIndex: index name "app.idx" must not be schema-qualified'],
    ['no index keys', (op) => op.createIndex('idx', 't', []), 'op.createIndex: columns must be a non-empty array'],
    ['alterColumn with nothing to change', (op) => op.alterColumn('t', 'a', {}), 'op.alterColumn: nothing to change'],
    ['using without type', (op) => op.alterColumn('t', 'a', { using: 'a::int', nullable: false }), 'op.alterColumn: `using` needs `type`'],
    ['mismatched foreign key columns', (op) => op.addForeignKey('t', 'fk', ['a', 'b'], 'r', ['id']), 'op.addForeignKey: 2 column(s) reference 1'],
    ['an unknown referential action', (op) => op.addForeignKey('t', 'fk', ['a'], 'r', ['id'], { onDelete: 'DROP' as never }), 'op.addForeignKey: onDelete must be one of'],
    ['an unknown trigger event', (op) => op.createTrigger('tr', 't', { timing: 'BEFORE', events: ['UPSERT' as never], forEach: 'ROW', function: 'f' }), 'op.createTrigger: events[0] must be one of'],
    ['an empty UPDATE OF column', (op) => op.createTrigger('tr', 't', { timing: 'AFTER', events: ['UPDATE OF a,'], forEach: 'ROW', function: 'f' }), 'op.createTrigger: events[0] column 2'],
    ['dropFunction without argument types', (op) => op.dropFunction('f', undefined as never), 'op.dropFunction: argTypes must be an array'],
    ['an empty function body', (op) => op.createFunction('f', { returns: 'void', language: 'sql', body: ' ' }), 'op.createFunction: body must be a non-empty string'],
    ['empty custom SQL', (op) => op.sql(''), 'op.sql: the SQL text must be a non-empty string'],
  ];
  it.each(cases)('%s', async (_what, fn, message) => {
    await expect(recordOps(fn)).rejects.toMatchObject({ type: 'InvalidOp', message: expect.stringContaining(message) });
  });
});
