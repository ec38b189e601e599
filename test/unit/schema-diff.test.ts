/**
 * The autogenerate comparison on hand-built models: no changes for equal models, renames only when
 * asked for (and checked), column, constraint, index, enum and schema changes as the right kinds,
 * what cannot be done safely returned as notSupported, and the apply order (notSupported, schemas
 * and types, tables, columns, uniques, checks, foreign keys, indexes, then every drop, schemas last).
 */
import { PhasegateError } from '../../lib/errors';
import type { ColumnModel, ConstraintModel, EnumModel, IndexModel, SchemaChange, SchemaModel, TableModel } from '../../lib/schema/model';
import { describeChange, diffSchemas, parseRename } from '../../lib/schema/diff';

const column = (name: string, over: Partial<ColumnModel> = {}): ColumnModel => ({ name, type: 'integer', nullable: true, default: null, identity: null, generated: null, collation: null, ...over });
const table = (name: string, over: Partial<TableModel> = {}): TableModel => ({ schema: 'public', name, columns: [column('id', { nullable: false })], constraints: [], indexes: [], ...over });
const model = (over: Partial<SchemaModel> = {}): SchemaModel => ({ schemas: ['public'], tables: [], enums: [], notCompared: [], ...over });
const check = (name: string, definition: string, over: Partial<ConstraintModel> = {}): ConstraintModel => ({ name, kind: 'check', definition, columns: [], validated: true, ...over });
const index = (name: string, shape: string, over: Partial<IndexModel> = {}): IndexModel => ({
  name,
  unique: false,
  method: 'btree',
  shape,
  definition: shape.replace('<name>', name).replace('<table>', 'public.accounts'),
  constraint: null,
  valid: true,
  ...over,
});
const mood = (labels: string[]): EnumModel => ({ schema: 'public', name: 'mood', labels });

const accounts = (over: Partial<TableModel> = {}) => table('accounts', over);
const kinds = (changes: SchemaChange[]) => changes.map((c) => c.kind);
const diff = (from: Partial<SchemaModel>, to: Partial<SchemaModel>, renames?: Array<ReturnType<typeof parseRename>>) => diffSchemas(model(from), model(to), renames ? { renames } : {});

/** The PhasegateError `fn` throws (matched on `type`, as callers do). */
const thrown = (fn: () => unknown): PhasegateError => {
  try {
    fn();
  } catch (err) {
    return err as PhasegateError;
  }
  throw new Error('expected an error');
};

const email = column('email', { type: 'text' });
const mail = column('mail', { type: 'text' });
const unique = (name: string): ConstraintModel => ({ name, kind: 'unique', definition: 'UNIQUE (email)', columns: ['email'], validated: true });
const foreignKey = (name: string): ConstraintModel => ({
  name,
  kind: 'foreign key',
  definition: 'FOREIGN KEY (org_id) REFERENCES orgs(id)',
  columns: ['org_id'],
  validated: true,
  references: { schema: 'public', name: 'orgs', columns: ['id'] },
});

describe('diffSchemas: columns and renames', () => {
  it('finds nothing to change between equal models', () => {
    const t = () => accounts({ columns: [column('id', { nullable: false }), email], constraints: [check('c', 'CHECK ((id > 0))')], indexes: [index('i', 'CREATE INDEX <name> ON <table> USING btree (email)')] });
    expect(diff({ tables: [t()], enums: [mood(['a', 'b'])] }, { tables: [t()], enums: [mood(['a', 'b'])] })).toEqual([]);
  });

  it('adds a new column before dropping a gone one, and puts the drop last', () => {
    const changes = diff({ tables: [accounts({ columns: [column('id'), column('old')] })] }, { tables: [accounts({ columns: [column('id'), column('score')] }), table('extra')] });
    expect(kinds(changes)).toEqual(['createTable', 'addColumn', 'dropColumn']);
    expect(changes[1]).toMatchObject({ kind: 'addColumn', table: { schema: 'public', name: 'accounts' }, column: { name: 'score' } });
    expect(changes[2]).toEqual({ kind: 'dropColumn', table: { schema: 'public', name: 'accounts' }, column: 'old' });
  });

  it('never guesses a rename: a gone column and a new one are a drop and an add', () => {
    const changes = diff({ tables: [accounts({ columns: [column('id'), email] })] }, { tables: [accounts({ columns: [column('id'), mail] })] });
    expect(kinds(changes)).toEqual(['addColumn', 'dropColumn']);
    expect(kinds(changes)).not.toContain('renameColumn');
  });

  it('renames a column when asked to, with no add or drop', () => {
    const changes = diff({ tables: [accounts({ columns: [column('id'), email] })] }, { tables: [accounts({ columns: [column('id'), mail] })] }, [parseRename('accounts.email=accounts.mail')]);
    expect(changes).toEqual([{ kind: 'renameColumn', table: { schema: 'public', name: 'accounts' }, from: 'email', to: 'mail' }]);
  });

  it('compares a renamed column with its old self', () => {
    const changes = diff({ tables: [accounts({ columns: [column('id'), email] })] }, { tables: [accounts({ columns: [column('id'), { ...mail, nullable: false }] })] }, [parseRename('accounts.email=accounts.mail')]);
    expect(kinds(changes)).toEqual(['renameColumn', 'setNotNull']);
    expect(changes[1]).toMatchObject({ column: 'mail' });
  });

  it('refuses a rename naming a column that does not exist', () => {
    const from = { tables: [accounts({ columns: [column('id'), email] })] };
    const to = { tables: [accounts({ columns: [column('id'), mail] })] };
    expect(thrown(() => diff(from, to, [parseRename('accounts.nope=accounts.mail')])).type).toBe('InvalidRename');
    expect(thrown(() => diff(from, to, [parseRename('accounts.email=accounts.nope')])).type).toBe('InvalidRename');
    expect(thrown(() => diff(from, to, [parseRename('users.email=users.mail')])).type).toBe('InvalidRename');
  });

  it('turns a type change into alterColumnType with both types', () => {
    const changes = diff({ tables: [accounts({ columns: [column('n', { type: 'integer' })] })] }, { tables: [accounts({ columns: [column('n', { type: 'bigint' })] })] });
    expect(changes).toEqual([{ kind: 'alterColumnType', table: { schema: 'public', name: 'accounts' }, column: 'n', from: 'integer', to: 'bigint', collation: null }]);
  });

  it('changes nullability both ways', () => {
    const from = { tables: [accounts({ columns: [column('a', { nullable: true }), column('b', { nullable: false })] })] };
    const to = { tables: [accounts({ columns: [column('a', { nullable: false }), column('b', { nullable: true })] })] };
    expect(diff(from, to)).toEqual([
      { kind: 'setNotNull', table: { schema: 'public', name: 'accounts' }, column: 'a' },
      { kind: 'dropNotNull', table: { schema: 'public', name: 'accounts' }, column: 'b' },
    ]);
  });

  it('turns a default change into setDefault with both defaults', () => {
    const changes = diff({ tables: [accounts({ columns: [column('n', { default: '0' })] })] }, { tables: [accounts({ columns: [column('n', { default: '1' })] })] });
    expect(changes).toEqual([{ kind: 'setDefault', table: { schema: 'public', name: 'accounts' }, column: 'n', from: '0', to: '1' }]);
  });

  it('turns an identity change into setIdentity, clearing a default the identity replaces first', () => {
    const changes = diff({ tables: [accounts({ columns: [column('n', { nullable: false, default: '0' })] })] }, { tables: [accounts({ columns: [column('n', { nullable: false, identity: 'always' })] })] });
    expect(changes).toEqual([
      { kind: 'setDefault', table: { schema: 'public', name: 'accounts' }, column: 'n', from: '0', to: null },
      { kind: 'setIdentity', table: { schema: 'public', name: 'accounts' }, column: 'n', from: null, to: 'always' },
    ]);
    const back = diff({ tables: [accounts({ columns: [column('n', { identity: 'always' })] })] }, { tables: [accounts({ columns: [column('n', { identity: 'by default' })] })] });
    expect(back).toEqual([{ kind: 'setIdentity', table: { schema: 'public', name: 'accounts' }, column: 'n', from: 'always', to: 'by default' }]);
  });
});

describe('parseRename', () => {
  it('parses a public and a schema-qualified rename', () => {
    expect(parseRename('accounts.email=accounts.mail')).toEqual({ table: { schema: 'public', name: 'accounts' }, from: 'email', to: 'mail' });
    expect(parseRename('app.accounts.a=app.accounts.b')).toEqual({ table: { schema: 'app', name: 'accounts' }, from: 'a', to: 'b' });
  });

  it('refuses two renames of one column, or two renames onto one name', () => {
    const from = { tables: [accounts({ columns: [column('id'), column('a'), column('b')] })] };
    const to = { tables: [accounts({ columns: [column('id'), column('c'), column('d')] })] };
    expect(thrown(() => diff(from, to, [parseRename('accounts.a=accounts.c'), parseRename('accounts.a=accounts.d')]))).toMatchObject({ type: 'InvalidRename', message: expect.stringContaining('a is renamed twice') });
    expect(thrown(() => diff(from, to, [parseRename('accounts.a=accounts.c'), parseRename('accounts.b=accounts.c')]))).toMatchObject({ type: 'InvalidRename', message: expect.stringContaining('two columns are renamed to c') });
  });

  it('refuses a rename without exactly one "=", across tables, or of the wrong shape', () => {
    for (const text of ['accounts.email', 'a.b=a.c=a.d', 'accounts.email=users.email', 'app.accounts.a=other.accounts.b', 'email=mail', 'accounts.=accounts.mail', 'a.b.c.d=a.b.c.e']) {
      const err = thrown(() => parseRename(text));
      expect(err.type).toBe('InvalidRename');
      expect(err.details).toEqual({ rename: text });
    }
    expect(thrown(() => parseRename('accounts.email')).message).toContain('exactly one "="');
    expect(thrown(() => parseRename('accounts.email=users.email')).message).toContain('one table');
  });
});

describe('diffSchemas: constraints and indexes', () => {
  it('adds a new unique before a new foreign key', () => {
    const changes = diff({ tables: [accounts()] }, { tables: [accounts({ constraints: [foreignKey('a_fk'), unique('b_unique')] })] });
    expect(changes.map((c) => (c.kind === 'addConstraint' ? c.constraint.name : c.kind))).toEqual(['b_unique', 'a_fk']);
  });

  it('drops and adds a check whose definition changed under the same name', () => {
    const changes = diff({ tables: [accounts({ constraints: [check('qty_positive', 'CHECK ((qty > 0))')] })] }, { tables: [accounts({ constraints: [check('qty_positive', 'CHECK ((qty >= 0))')] })] });
    // The old one first: ADD CONSTRAINT under a name still in use fails.
    expect(changes).toEqual([
      { kind: 'dropConstraint', table: { schema: 'public', name: 'accounts' }, constraint: check('qty_positive', 'CHECK ((qty > 0))') },
      { kind: 'addConstraint', table: { schema: 'public', name: 'accounts' }, constraint: check('qty_positive', 'CHECK ((qty >= 0))') },
    ]);
  });

  it('reports a constraint that is only NOT VALID in the database as VALIDATE CONSTRAINT to run, not a drop and add', () => {
    const changes = diff(
      { tables: [accounts({ constraints: [check('qty_positive', 'CHECK ((qty > 0)) NOT VALID', { validated: false })] })] },
      { tables: [accounts({ constraints: [check('qty_positive', 'CHECK ((qty > 0))')] })] },
    );
    expect(kinds(changes)).toEqual(['notSupported']);
    expect(changes[0]).toMatchObject({ object: 'public.accounts.qty_positive' });
    expect(changes[0].kind === 'notSupported' && changes[0].reason).toContain('VALIDATE CONSTRAINT');
  });

  it('drops foreign keys before the other drops', () => {
    const idx = index('accounts_email_idx', 'CREATE INDEX <name> ON <table> USING btree (email)');
    const changes = diff({ tables: [accounts({ constraints: [check('a_check', 'CHECK ((id > 0))'), foreignKey('z_fk')], indexes: [idx] })] }, { tables: [accounts()] });
    expect(kinds(changes)).toEqual(['dropConstraint', 'dropConstraint', 'dropIndex']);
    expect(changes.map((c) => (c.kind === 'dropConstraint' ? c.constraint.name : c.kind))).toEqual(['z_fk', 'a_check', 'dropIndex']);
  });

  it('compares a constraint index through its constraint only', () => {
    const ownIndex = (shape: string) => index('accounts_email_key', shape, { unique: true, constraint: 'accounts_email_key' });
    const changes = diff(
      { tables: [accounts({ constraints: [unique('accounts_email_key')], indexes: [ownIndex('CREATE UNIQUE INDEX <name> ON <table> USING btree (email)')] })] },
      { tables: [accounts({ constraints: [unique('accounts_email_key')], indexes: [ownIndex('CREATE UNIQUE INDEX <name> ON <table> USING btree (email) WHERE x')] })] },
    );
    expect(changes).toEqual([]);
    const added = diff({ tables: [accounts()] }, { tables: [accounts({ constraints: [unique('accounts_email_key')], indexes: [ownIndex('CREATE UNIQUE INDEX <name> ON <table> USING btree (email)')] })] });
    expect(kinds(added)).toEqual(['addConstraint']);
    expect(added[0]).toMatchObject({ index: { name: 'accounts_email_key' } });
  });

  it('creates a new index', () => {
    const idx = index('accounts_email_idx', 'CREATE INDEX <name> ON <table> USING btree (email)');
    expect(diff({ tables: [accounts()] }, { tables: [accounts({ indexes: [idx] })] })).toEqual([{ kind: 'createIndex', table: { schema: 'public', name: 'accounts' }, index: idx }]);
  });

  it('drops and creates an index whose shape changed', () => {
    const was = index('accounts_email_idx', 'CREATE INDEX <name> ON <table> USING btree (email)');
    const now = index('accounts_email_idx', 'CREATE INDEX <name> ON <table> USING btree (lower(email))');
    const changes = diff({ tables: [accounts({ indexes: [was] })] }, { tables: [accounts({ indexes: [now] })] });
    // The old one first: CREATE INDEX … IF NOT EXISTS would keep it, and the later drop would leave no index at all.
    expect(changes).toEqual([
      { kind: 'dropIndex', table: { schema: 'public', name: 'accounts' }, index: was },
      { kind: 'createIndex', table: { schema: 'public', name: 'accounts' }, index: now },
    ]);
  });

  it('builds an INVALID index of the same shape again', () => {
    const now = index('accounts_email_idx', 'CREATE INDEX <name> ON <table> USING btree (email)');
    const changes = diff({ tables: [accounts({ indexes: [{ ...now, valid: false }] })] }, { tables: [accounts({ indexes: [now] })] });
    expect(changes).toEqual([{ kind: 'createIndex', table: { schema: 'public', name: 'accounts' }, index: now }]);
  });
});

describe('diffSchemas: enums and schemas', () => {
  it('adds new labels, each after the label before it (null when first)', () => {
    const changes = diff({ enums: [mood(['b', 'd'])] }, { enums: [mood(['a', 'b', 'c', 'd', 'e'])] });
    expect(changes).toEqual([
      {
        kind: 'addEnumLabels',
        enum: { schema: 'public', name: 'mood' },
        labels: [
          { label: 'a', after: null },
          { label: 'c', after: 'b' },
          { label: 'e', after: 'd' },
        ],
      },
    ]);
  });

  it('does not support removing or reordering labels', () => {
    for (const labels of [['a'], ['b', 'a'], ['b', 'a', 'c']]) {
      const changes = diff({ enums: [mood(['a', 'b'])] }, { enums: [mood(labels)] });
      expect(kinds(changes)).toEqual(['notSupported']);
      expect(changes[0]).toMatchObject({ object: 'public.mood' });
    }
  });

  it('creates a new enum before a new table and drops a gone one', () => {
    const created = diff({}, { tables: [table('people')], enums: [mood(['a'])] });
    expect(kinds(created)).toEqual(['createEnum', 'createTable']);
    expect(created[0]).toEqual({ kind: 'createEnum', enum: mood(['a']) });
    expect(diff({ enums: [mood(['a'])] }, {})).toEqual([{ kind: 'dropEnum', enum: { schema: 'public', name: 'mood' } }]);
  });

  it('creates a new schema first and drops a gone one, never public', () => {
    const created = diff({}, { schemas: ['public', 'app'], enums: [{ schema: 'app', name: 'mood', labels: ['a'] }] });
    expect(kinds(created)).toEqual(['createSchema', 'createEnum']);
    expect(created[0]).toEqual({ kind: 'createSchema', schema: 'app' });
    expect(diff({ schemas: ['public', 'app'] }, { schemas: [] })).toEqual([{ kind: 'dropSchema', schema: 'app' }]);
  });
});

describe('diffSchemas: order', () => {
  it('orders every kind so each step can follow the last', () => {
    const oldIdx = index('accounts_old_idx', 'CREATE INDEX <name> ON <table> USING btree (old)');
    const newIdx = index('accounts_email_idx', 'CREATE INDEX <name> ON <table> USING btree (email)');
    const from = model({
      schemas: ['public', 'legacy'],
      tables: [
        accounts({ columns: [column('id'), column('old'), column('n', { collation: '"C"' })], constraints: [check('old_check', 'CHECK ((id > 0))'), foreignKey('old_fk')], indexes: [oldIdx] }),
        table('gone'),
      ],
      enums: [mood(['a']), { schema: 'public', name: 'gone_enum', labels: ['x'] }],
    });
    const to = model({
      schemas: ['public', 'app'],
      tables: [
        accounts({
          columns: [column('id', { nullable: false }), column('n'), email],
          constraints: [check('new_check', 'CHECK ((id > 1))'), foreignKey('new_fk'), unique('new_unique')],
          indexes: [newIdx],
        }),
        table('people'),
      ],
      enums: [mood(['a', 'b']), { schema: 'app', name: 'status', labels: ['on'] }],
    });
    const changes = diffSchemas(from, to);
    expect(changes.map((c) => `${c.kind}${c.kind === 'addConstraint' || c.kind === 'dropConstraint' ? ` ${c.constraint.name}` : ''}`)).toEqual([
      'notSupported',
      'createSchema',
      'addEnumLabels',
      'createEnum',
      'createTable',
      'setNotNull',
      'addColumn',
      'addConstraint new_unique',
      'addConstraint new_check',
      'addConstraint new_fk',
      'createIndex',
      'dropConstraint old_fk',
      'dropConstraint old_check',
      'dropIndex',
      'dropColumn',
      'dropTable',
      'dropEnum',
      'dropSchema',
    ]);
  });
});

describe('describeChange', () => {
  const t = { schema: 'public', name: 'accounts' };

  it('gives one line per change, marked + - ~ or !', () => {
    const cases: Array<[SchemaChange, string]> = [
      [{ kind: 'addColumn', table: t, column: column('score', { nullable: false, default: '0' }) }, '+ column public.accounts.score integer NOT NULL DEFAULT 0'],
      [{ kind: 'dropColumn', table: t, column: 'old' }, '- column public.accounts.old'],
      [{ kind: 'renameColumn', table: t, from: 'email', to: 'mail' }, '~ column public.accounts.email renamed to mail'],
      [{ kind: 'setDefault', table: t, column: 'n', from: null, to: '1' }, '~ column public.accounts.n: default none → 1'],
      [{ kind: 'addConstraint', table: t, constraint: check('c', 'CHECK ((id > 0)) NOT VALID', { validated: false }) }, '+ check public.accounts.c: CHECK ((id > 0))'],
      [{ kind: 'createEnum', enum: mood(['a', 'b']) }, '+ enum public.mood (a, b)'],
      [{ kind: 'dropSchema', schema: 'app' }, '- schema app'],
      [{ kind: 'notSupported', object: 'public.mood', reason: 'labels reorder' }, '! public.mood: labels reorder'],
    ];
    for (const [change, line] of cases) {
      const text = describeChange(change);
      expect(text).toBe(line);
      expect(text).not.toContain('\n');
      expect(text).toMatch(/^[+\-~!] /);
    }
  });
});
