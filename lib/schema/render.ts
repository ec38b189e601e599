/**
 * Autogenerate's renderer: the `SchemaChange`s a diff found, as a revision chain that takes the
 * database there through the same safe multi-phase steps `phasegate new` writes. Where a pattern
 * fits (add-not-null-column, rename-column, add-index, add-foreign-key, change-column-type,
 * add-unique) its own `build()` writes the steps, so both commands produce the same chains; what
 * no pattern covers (new tables, enums, defaults, identity, drops) gets one revision per safe step
 * here, with the lock it takes in its notes. Every drop is a contract step behind a gate.
 *
 * Pure: changes (and, optionally, the two models, for what a drop's downgrade must recreate) in;
 * drafts, the changes it cannot write, and what a person must review before applying, out.
 */
import { PhasegateError } from '../errors';
import { dollarQuote } from '../ops/render';
import { findPattern, type RevisionDraft } from '../patterns';
import { CONSTANT } from '../patterns/add-not-null-column';
import { call, commented, type OpCall } from '../patterns/types';
import { quoteIdent, quoteLiteral } from '../sql';
import type { ColumnModel, ConstraintModel, EnumModel, IndexModel, QualifiedName, SchemaChange, SchemaModel, TableModel } from './model';

export interface RenderOptions {
  /**
   * The database as it is. Only drops use it: their downgrade recreates the dropped table, column or
   * enum from it. Without it, a drop's downgrade says the structure is unknown.
   */
  from?: SchemaModel;
}

/** A change the renderer cannot write safely: shown to the user, written nowhere. */
export interface UnsupportedChange {
  object: string;
  reason: string;
}

export interface RenderedChanges {
  /** The chain, first revision first; empty when there is nothing to write. */
  drafts: RevisionDraft[];
  /** Changes left out (the diff's own `notSupported` ones, and those no safe step exists for). */
  notSupported: UnsupportedChange[];
  /** Written, but a person must look before applying: a guessed backfill value, a lost collation. */
  review: string[];
}

// ── names ────────────────────────────────────────────────────────────────────────────────────────

/** A table as ops and patterns take it: bare in `public` (as people write it), `schema.name` elsewhere. */
export function tableText(table: QualifiedName): string {
  if (table.schema.includes('.') || table.name.includes('.')) {
    // Why refuse: ops split table names on the dot, so `a.b` in one identifier would name another table.
    throw new PhasegateError('UnsupportedName', `${table.schema}.${table.name}: a name containing "." cannot be written with phasegate's ops; rename it or write this revision by hand`);
  }
  return table.schema === 'public' ? table.name : `${table.schema}.${table.name}`;
}

const qualifiedSql = (q: QualifiedName): string => `${quoteIdent(q.schema)}.${quoteIdent(q.name)}`;
const objectText = (q: QualifiedName, ...rest: string[]): string => [q.schema, q.name, ...rest].join('.');

const doBlock = (body: string[]): string => `DO ${dollarQuote(['', 'BEGIN', ...body.map((l) => `  ${l}`), 'END', ''].join('\n'))}`;

/** `CHECK (…) NOT VALID` → without the NOT VALID: the definition as the constraint should end up. */
const validDefinition = (constraint: ConstraintModel): string => constraint.definition.replace(/\s+NOT VALID$/, '');

/** ADD CONSTRAINT with PostgreSQL's own definition text (every clause kept), skipped when it exists. */
function addConstraintSql(table: QualifiedName, constraint: ConstraintModel, notValid: boolean): string {
  const regclass = quoteLiteral(qualifiedSql(table));
  return doBlock([
    `IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = ${regclass}::regclass AND conname = ${quoteLiteral(constraint.name)}) THEN`,
    `  ALTER TABLE ${qualifiedSql(table)} ADD CONSTRAINT ${quoteIdent(constraint.name)} ${validDefinition(constraint)}${notValid ? ' NOT VALID' : ''};`,
    'END IF;',
  ]);
}

// ── columns and tables as DDL ────────────────────────────────────────────────────────────────────

const collationSql = (collation: string): string => (collation.includes('"') ? collation : quoteIdent(collation));

/** `nextval('accounts_id_seq'::regclass)`: the sequence a serial column's default draws from. */
const SERIAL_DEFAULT = /^nextval\('((?:[^']|'')+)'::regclass\)$/;

/** A column definition for CREATE TABLE / ADD COLUMN, from the model (PostgreSQL's own texts). */
function columnSql(column: ColumnModel): string {
  const parts = [quoteIdent(column.name), column.type];
  if (column.collation) parts.push(`COLLATE ${collationSql(column.collation)}`);
  if (column.generated !== null) parts.push(`GENERATED ALWAYS AS (${column.generated}) STORED`);
  if (column.identity) parts.push(`GENERATED ${column.identity.toUpperCase()} AS IDENTITY`);
  if (column.default !== null) parts.push(`DEFAULT ${column.default}`);
  if (!column.nullable) parts.push('NOT NULL');
  return parts.join(' ');
}

/** Serial columns' sequences: created before the table, owned by their column after it. */
function sequencesOf(table: TableModel): Array<{ sequence: string; column: ColumnModel }> {
  return table.columns.flatMap((column) => {
    const match = column.default === null ? null : SERIAL_DEFAULT.exec(column.default);
    return match ? [{ sequence: match[1].replace(/''/g, "'"), column }] : [];
  });
}

/**
 * The statements that create `table` empty: its sequences, columns, primary key, unique and check
 * constraints and its own indexes. Foreign keys are left to the caller (the referenced table may
 * come later in the chain).
 */
function createTableSql(table: TableModel): string[] {
  const target = qualifiedSql(table);
  const sequences = sequencesOf(table);
  // Why a schema-qualified sequence name: nextval's text resolves against search_path, so the
  // sequence is created exactly where the default will look for it.
  const sequenceName = (text: string) => (text.includes('.') ? text : `${quoteIdent(table.schema)}.${text}`);
  const inline = table.constraints.filter((c) => c.kind !== 'foreign key').map((c) => `CONSTRAINT ${quoteIdent(c.name)} ${validDefinition(c)}`);
  const body = [...table.columns.map(columnSql), ...inline].map((l) => `  ${l}`).join(',\n');
  return [
    ...sequences.map((s) => `CREATE SEQUENCE IF NOT EXISTS ${sequenceName(s.sequence)} AS ${s.column.type === 'bigint' || s.column.type === 'smallint' ? s.column.type : 'integer'}`),
    `CREATE TABLE IF NOT EXISTS ${target} (\n${body}\n)`,
    ...sequences.map((s) => `ALTER SEQUENCE ${sequenceName(s.sequence)} OWNED BY ${target}.${quoteIdent(s.column.name)}`),
    ...table.indexes.filter((i) => i.constraint === null).map((i) => i.definition.replace(/^CREATE (UNIQUE )?INDEX /, 'CREATE $1INDEX IF NOT EXISTS ')),
  ];
}

function createEnumSql(enumModel: EnumModel): string {
  return doBlock([
    `IF to_regtype(${quoteLiteral(qualifiedSql(enumModel))}) IS NULL THEN`,
    `  CREATE TYPE ${qualifiedSql(enumModel)} AS ENUM (${enumModel.labels.map(quoteLiteral).join(', ')});`,
    'END IF;',
  ]);
}

// ── indexes ──────────────────────────────────────────────────────────────────────────────────────

/** The end of the parenthesised group opening at `open`, skipping quoted strings and identifiers. */
function closingParen(text: string, open: number): number {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    const c = text[i];
    if (c === "'" || c === '"') {
      const end = text.indexOf(c, i + 1);
      if (end < 0) return -1;
      i = end;
    } else if (c === '(') depth++;
    else if (c === ')' && --depth === 0) return i;
  }
  return -1;
}

interface IndexParts {
  unique: boolean;
  method: string;
  /** The text between `USING method (` and its `)`: columns, expressions, opclasses. */
  keys: string;
  where?: string;
  /** INCLUDE, WITH (…), TABLESPACE, NULLS NOT DISTINCT: nothing `op.createIndex` takes. */
  rest: string;
}

/** Splits `pg_get_indexdef` text into what `op.createIndex` takes; null when its shape is unexpected. */
function indexParts(definition: string): IndexParts | null {
  const head = /^CREATE (UNIQUE )?INDEX .+? ON (?:ONLY )?.+? USING (\w+) \(/.exec(definition);
  if (!head) return null;
  const open = head[0].length - 1;
  const close = closingParen(definition, open);
  if (close < 0) return null;
  const after = definition.slice(close + 1);
  const where = /^ WHERE \((.*)\)$/s.exec(after);
  return { unique: head[1] !== undefined, method: head[2], keys: definition.slice(open + 1, close), ...(where ? { where: where[1] } : {}), rest: where ? '' : after };
}

const PLAIN_COLUMN = /^[a-z_][a-z0-9_$]*$/;

/** The index built CONCURRENTLY: the op (which heals an INVALID leftover) when it can say it, else the definition. */
function buildIndexCall(table: string, index: IndexModel): OpCall {
  const parts = indexParts(index.definition);
  const comment = 'SHARE UPDATE EXCLUSIVE for the build: reads and writes go on.';
  if (parts && parts.rest.trim() === '') {
    return commented(
      comment,
      call('createIndex', index.name, table, { expression: parts.keys }, {
        concurrently: true,
        ...(parts.unique ? { unique: true } : {}),
        ...(parts.method === 'btree' ? {} : { using: parts.method }),
        ...(parts.where === undefined ? {} : { where: parts.where }),
      }),
    );
  }
  return commented(
    [comment, 'Its exact definition (options op.createIndex has no word for); an INVALID leftover of a failed build must be dropped by hand.'],
    call('sql', index.definition.replace(/^CREATE (UNIQUE )?INDEX /, 'CREATE $1INDEX CONCURRENTLY IF NOT EXISTS ')),
  );
}

function createIndexDrafts(table: QualifiedName, index: IndexModel): RevisionDraft[] {
  const text = tableText(table);
  const parts = indexParts(index.definition);
  const columns = parts?.keys.split(', ') ?? [];
  if (parts && parts.method === 'btree' && parts.rest === '' && columns.every((c) => PLAIN_COLUMN.test(c))) {
    // A plain column list: exactly what `phasegate new add-index` writes.
    return findPattern('add-index').build([text, ...columns], { name: index.name, ...(parts.unique ? { unique: true } : {}), ...(parts.where === undefined ? {} : { where: parts.where }) });
  }
  const qualifiedIndex = table.schema === 'public' ? index.name : `${table.schema}.${index.name}`;
  return [
    {
      message: `${index.unique ? 'unique ' : ''}index ${index.name} on ${text} (${parts?.keys ?? index.method})`,
      phase: 'build',
      transactional: false,
      notes: [
        `CREATE INDEX CONCURRENTLY takes SHARE UPDATE EXCLUSIVE on ${text} for the whole build: reads and writes go on; other DDL and VACUUM wait.`,
        'It waits for transactions already running on the table to finish, so a long transaction delays it (it does not block others meanwhile).',
        'The downgrade drops it CONCURRENTLY: SHARE UPDATE EXCLUSIVE, waits for queries using the index.',
      ],
      check: {
        name: `index ${qualifiedIndex} is valid`,
        failingRows: `SELECT ${quoteLiteral(qualifiedIndex)} AS missing_index WHERE NOT EXISTS (SELECT 1 FROM pg_index WHERE indexrelid = to_regclass(${quoteLiteral(`${quoteIdent(table.schema)}.${quoteIdent(index.name)}`)}) AND indisvalid)`,
      },
      upgrade: [buildIndexCall(text, index)],
      downgrade: [commented('SHARE UPDATE EXCLUSIVE: waits for queries using the index, blocks no reads or writes.', call('dropIndex', qualifiedIndex, { concurrently: true }))],
    },
  ];
}

// ── constraints ──────────────────────────────────────────────────────────────────────────────────

/** NOT VALID, then VALIDATE in a revision of its own: the add-foreign-key shape, for checks and composite keys. */
function notValidThenValidate(table: QualifiedName, constraint: ConstraintModel): RevisionDraft[] {
  const text = tableText(table);
  const what = constraint.kind === 'check' ? 'check' : 'foreign key';
  const locks = constraint.kind === 'check' ? `ACCESS EXCLUSIVE on ${text}` : `SHARE ROW EXCLUSIVE on ${text} and ${constraint.references ? tableText(constraint.references) : 'the referenced table'}`;
  return [
    {
      message: `${what} ${constraint.name} on ${text} (NOT VALID)`,
      phase: 'expand',
      notes: [
        `ADD CONSTRAINT … NOT VALID takes ${locks} for a catalog change only: existing rows are not checked; inserts and updates are from commit on.`,
        'Its own revision: VALIDATE in the same transaction would scan while that lock is held.',
      ],
      upgrade: [commented(`${locks.split(' on ')[0]}, catalog only (NOT VALID: no scan).`, call('sql', addConstraintSql(table, constraint, true)))],
      downgrade: [commented('ACCESS EXCLUSIVE, brief.', call('dropConstraint', text, constraint.name))],
    },
    {
      message: `validate ${what} ${constraint.name}`,
      phase: 'validate',
      notes: [
        `VALIDATE CONSTRAINT scans ${text} under SHARE UPDATE EXCLUSIVE: reads and writes go on.`,
        'It fails, changing nothing, while an existing row violates it: fix those rows and run the migration again.',
      ],
      upgrade: [commented('SHARE UPDATE EXCLUSIVE for the scan: reads and writes go on.', call('validateConstraint', text, constraint.name))],
      downgrade: [],
      emptyDowngrade: 'Nothing to undo: the constraint stays validated until the previous revision drops it.',
    },
  ];
}

function addConstraintDrafts(table: QualifiedName, constraint: ConstraintModel, unsupported: (reason: string) => never): RevisionDraft[] {
  const text = tableText(table);
  switch (constraint.kind) {
    case 'foreign key': {
      const ref = constraint.references;
      if (ref && constraint.columns.length === 1 && ref.columns.length === 1) {
        // The add-foreign-key chain; its first op is swapped for the constraint's exact definition, so
        // ON UPDATE, MATCH and DEFERRABLE (which the pattern has no option for) are kept too.
        const [add, validate] = findPattern('add-foreign-key').build([text, constraint.columns[0], tableText(ref), ref.columns[0]], { name: constraint.name });
        const upgrade = add.upgrade.map((c) => (c.method === 'addForeignKey' ? { ...c, method: 'sql' as const, args: [addConstraintSql(table, constraint, true)] } : c));
        return [{ ...add, upgrade }, validate];
      }
      return notValidThenValidate(table, constraint);
    }
    case 'check':
      return notValidThenValidate(table, constraint);
    case 'unique':
      // `UNIQUE (a, b)` only: NULLS NOT DISTINCT, INCLUDE or DEFERRABLE would be lost on the way through the index.
      if (!/^UNIQUE \([^()]*\)$/.test(constraint.definition)) unsupported(`${constraint.definition} has clauses the add-unique chain cannot carry; add it by hand (CREATE UNIQUE INDEX CONCURRENTLY …, then ADD CONSTRAINT … UNIQUE USING INDEX)`);
      return findPattern('add-unique').build([text, ...constraint.columns], { name: constraint.name });
    case 'primary key':
      return unsupported(
        'adding a primary key to an existing table is not generated: build a unique index CONCURRENTLY, make its columns NOT NULL (CHECK NOT VALID → VALIDATE → SET NOT NULL), then ADD CONSTRAINT … PRIMARY KEY USING INDEX, by hand',
      );
  }
}

// ── drops ────────────────────────────────────────────────────────────────────────────────────────

/** A contract step: a gate first, because nothing may use the object any more, and the hazard in the notes. */
function contractDraft(what: string, gateName: string, prompt: string, draft: Omit<RevisionDraft, 'phase' | 'gate' | 'message'>): RevisionDraft {
  return { message: `contract: drop ${what}`, phase: 'contract', gate: { name: gateName, prompt }, ...draft };
}

const DATA_NOT_RESTORED = 'The downgrade recreates the structure only: the data it held is not restored.';

function findTable(model: SchemaModel | undefined, q: QualifiedName): TableModel | undefined {
  return model?.tables.find((t) => t.schema === q.schema && t.name === q.name);
}

// ── the renderer ─────────────────────────────────────────────────────────────────────────────────

/** A column type with its collation, as ADD COLUMN takes it. */
const typeWithCollation = (column: ColumnModel): string => (column.collation ? `${column.type} COLLATE ${collationSql(column.collation)}` : column.type);

/**
 * An obvious "empty" value for existing rows of a new NOT NULL column without a default: a guess
 * the user is told to review; null when the type has none (the chain's check then fails visibly).
 */
function placeholderValue(type: string): string | null {
  if (/^(smallint|integer|bigint|numeric|real|double precision|money)\b/.test(type)) return '0';
  if (/^(text|character varying|character)\b/.test(type)) return "''";
  if (type === 'boolean') return 'false';
  if (type === 'jsonb' || type === 'json') return `'{}'::${type}`;
  if (type.endsWith('[]')) return "'{}'";
  if (/^timestamp/.test(type)) return 'now()';
  return null;
}

/** varchar(n) → text / varchar / varchar(m ≥ n): binary-coercible, so ALTER TYPE changes only the catalog. */
function binaryCoercible(from: string, to: string): boolean {
  const varchar = /^character varying\((\d+)\)$/.exec(from);
  if (!varchar) return false;
  if (to === 'text' || to === 'character varying') return true;
  const wider = /^character varying\((\d+)\)$/.exec(to);
  return wider !== null && Number(wider[1]) >= Number(varchar[1]);
}

class UnsupportedChangeError extends Error {}

/** Indexes and constraints of `table` that use `column` (by key, expression or predicate). */
function dependentsOf(table: TableModel | undefined, column: string): string[] {
  if (!table) return [];
  const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  // The name bare or double-quoted, not inside a longer identifier.
  const mentions = new RegExp(`(^|[^A-Za-z0-9_$"])(${escape(column)}|${escape(`"${column.replace(/"/g, '""')}"`)})($|[^A-Za-z0-9_$"])`);
  const constraints = table.constraints.filter((c) => c.columns.includes(column) || mentions.test(c.definition)).map((c) => `${c.kind} ${c.name}`);
  const indexes = table.indexes.filter((i) => i.constraint === null && mentions.test(i.definition.replace(/^.*? USING \w+ /, ''))).map((i) => `index ${i.name}`);
  return [...constraints, ...indexes];
}

/**
 * Foreign keys a created table's model carries: added in its own revision when the referenced table
 * exists by then, else held back until the revision that creates the referenced table. Keys the diff
 * also lists as `addConstraint` are left to that change.
 */
interface CarriedForeignKey {
  table: QualifiedName;
  name: string;
  sql: string;
}

class ForeignKeysOfNewTables {
  private readonly separate: Set<string>;
  private readonly created = new Set<string>();
  private readonly toCreate: Set<string>;
  private readonly waiting = new Map<string, CarriedForeignKey[]>();

  constructor(changes: readonly SchemaChange[]) {
    this.separate = new Set(changes.flatMap((c) => (c.kind === 'addConstraint' ? [objectText(c.table, c.constraint.name)] : [])));
    this.toCreate = new Set(changes.flatMap((c) => (c.kind === 'createTable' ? [objectText(c.table)] : [])));
  }

  /** The ADD CONSTRAINT statements the revision creating `table` runs after its CREATE TABLE. */
  foreignKeysOf(table: TableModel): CarriedForeignKey[] {
    const key = objectText(table);
    this.created.add(key);
    const now = [...(this.waiting.get(key) ?? [])];
    for (const fk of table.constraints.filter((c) => c.kind === 'foreign key' && !this.separate.has(objectText(table, c.name)))) {
      const ref = fk.references ? objectText(fk.references) : key;
      const statement = { table, name: fk.name, sql: addConstraintSql(table, fk, false) };
      if (this.toCreate.has(ref) && !this.created.has(ref)) this.waiting.set(ref, [...(this.waiting.get(ref) ?? []), statement]);
      else now.push(statement);
    }
    return now;
  }
}

function renderOne(change: SchemaChange, options: RenderOptions, review: string[], createdTables: Set<string>, chain: ForeignKeysOfNewTables): RevisionDraft[] {
  const unsupported = (reason: string): never => {
    throw new UnsupportedChangeError(reason);
  };
  switch (change.kind) {
    case 'notSupported':
      return unsupported(change.reason);

    case 'createSchema':
      return [
        {
          message: `create schema ${change.schema}`,
          phase: 'expand',
          notes: ['CREATE SCHEMA locks nothing that exists.', 'The downgrade drops it only when empty (RESTRICT): the revisions after this one take their objects out first.'],
          upgrade: [commented('No lock on existing objects.', call('sql', `CREATE SCHEMA IF NOT EXISTS ${quoteIdent(change.schema)}`))],
          downgrade: [commented('Fails while the schema still holds objects.', call('sql', `DROP SCHEMA IF EXISTS ${quoteIdent(change.schema)}`))],
        },
      ];

    case 'createEnum':
      return [
        {
          message: `create enum ${objectText(change.enum)}`,
          phase: 'expand',
          notes: ['CREATE TYPE locks nothing that exists (skipped when the type is there already).'],
          upgrade: [commented('No lock on existing objects.', call('sql', createEnumSql(change.enum)))],
          downgrade: [commented('Fails while a column still uses it (those are dropped by the downgrades after this one).', call('sql', `DROP TYPE IF EXISTS ${qualifiedSql(change.enum)}`))],
        },
      ];

    case 'addEnumLabels': {
      const type = qualifiedSql(change.enum);
      const statements = change.labels.map(({ label, after }) =>
        after === null
          ? // Before the current first label, found at apply time (the change names only what it goes after).
            doBlock([
              `EXECUTE format('ALTER TYPE ${type.replace(/'/g, "''")} ADD VALUE IF NOT EXISTS %L BEFORE %L', ${quoteLiteral(label)},`,
              `  (SELECT enumlabel FROM pg_enum WHERE enumtypid = ${quoteLiteral(type)}::regtype ORDER BY enumsortorder LIMIT 1));`,
            ])
          : `ALTER TYPE ${type} ADD VALUE IF NOT EXISTS ${quoteLiteral(label)} AFTER ${quoteLiteral(after)}`,
      );
      return [
        {
          message: `add ${change.labels.map((l) => l.label).join(', ')} to enum ${objectText(change.enum)}`,
          phase: 'expand',
          notes: [
            'ALTER TYPE … ADD VALUE takes an exclusive lock on the type only, briefly: no table is rewritten or scanned.',
            'A new label cannot be used in the transaction that adds it: revisions that use it come after this one (PG12+ allows the ADD itself in a transaction).',
          ],
          upgrade: statements.map((sql, i) => (i === 0 ? commented('Catalog only.', call('sql', sql)) : call('sql', sql))),
          downgrade: [],
          emptyDowngrade: 'PostgreSQL cannot remove an enum label: the new labels stay (unused) after a downgrade.',
        },
      ];
    }

    case 'createTable': {
      const text = tableText(change.table);
      createdTables.add(objectText(change.table));
      const foreignKeys = chain.foreignKeysOf(change.table);
      return [
        {
          message: `create table ${text}`,
          phase: 'expand',
          notes: [
            `A new, empty table needs no online recipe: nothing reads or writes ${text} yet, so the locks its CREATE TABLE, constraints and indexes take are waited on by no one, and there are no rows to scan or backfill.`,
            'Its foreign keys are added right after it, or after the table they reference when this chain creates that one later (SHARE ROW EXCLUSIVE on the referenced table, brief: the new table has no rows to check).',
            `The downgrade drops the table: rows written into it meanwhile are lost.`,
          ],
          upgrade: [...createTableSql(change.table), ...foreignKeys.map((fk) => fk.sql)].map((sql, i) => (i === 0 ? commented('Creates new objects only.', call('sql', sql)) : call('sql', sql))),
          downgrade: [
            // Keys of tables created earlier in the chain that reference this one: DROP TABLE would refuse while they exist.
            ...foreignKeys.filter((fk) => objectText(fk.table) !== objectText(change.table)).map((fk) => call('dropConstraint', tableText(fk.table), fk.name)),
            commented('ACCESS EXCLUSIVE on the new table only.', call('dropTable', tableText(change.table))),
          ],
        },
      ];
    }

    case 'addColumn': {
      const text = tableText(change.table);
      const column = change.column;
      if (column.generated !== null) {
        return unsupported('adding a stored generated column rewrites the whole table under ACCESS EXCLUSIVE; add a plain column, backfill it and keep it in step with a trigger, or add it by hand in a maintenance window');
      }
      if (column.identity !== null) {
        return unsupported('adding an identity column fills every existing row under ACCESS EXCLUSIVE (a rewrite); add a nullable column with a sequence default, backfill it, then ADD GENERATED … AS IDENTITY, by hand');
      }
      const type = typeWithCollation(column);
      if (!column.nullable) {
        let backfill: string | undefined;
        if (column.default === null) {
          backfill = placeholderValue(column.type) ?? 'NULL';
          review.push(
            `${objectText(change.table, column.name)} is NOT NULL without a default: existing rows are backfilled with ${backfill}, a placeholder — edit the backfill's value in the generated "backfill ${text}.${column.name}" revision before applying` +
              (backfill === 'NULL' ? ' (as written, its check fails and the migration stops there)' : ''),
          );
        }
        return findPattern('add-not-null-column').build([text, column.name, type], { ...(column.default === null ? {} : { default: column.default }), ...(backfill === undefined ? {} : { backfill }) });
      }
      const constant = column.default === null || CONSTANT.test(column.default);
      return [
        {
          message: `add ${text}.${column.name} ${column.type}, nullable${column.default === null ? '' : ` with default ${column.default}`}`,
          phase: 'expand',
          notes: [
            `ADD COLUMN takes ACCESS EXCLUSIVE on ${text} for a catalog change only (milliseconds, under lock_timeout): the column is nullable` +
              (column.default === null ? '.' : constant ? ' and its default is a constant, which PG11+ stores without rewriting the table.' : '; its default may be volatile, so it is set separately (given to ADD COLUMN it would rewrite the table). Existing rows stay NULL.'),
          ],
          upgrade: constant
            ? [commented('ACCESS EXCLUSIVE, catalog only.', call('addColumn', text, column.name, type, column.default === null ? {} : { default: column.default }))]
            : [
                commented('ACCESS EXCLUSIVE, catalog only: added without the default, which could be volatile (a rewrite).', call('addColumn', text, column.name, type)),
                commented('ACCESS EXCLUSIVE, catalog only: the default applies to rows inserted from now on.', call('alterColumn', text, column.name, { default: column.default! })),
              ],
          downgrade: [commented('ACCESS EXCLUSIVE, catalog only.', call('dropColumn', text, column.name))],
        },
      ];
    }

    case 'renameColumn':
      return findPattern('rename-column').build([tableText(change.table), change.from, change.to], {});

    case 'alterColumnType': {
      const text = tableText(change.table);
      if (change.collation !== null) review.push(`${objectText(change.table, change.column)}: the new column gets the type's default collation, not ${change.collation}; add COLLATE to the expand step by hand`);
      if (binaryCoercible(change.from, change.to)) {
        return [
          {
            message: `${text}.${change.column} becomes ${change.to}`,
            phase: 'expand',
            notes: [
              `${change.from} → ${change.to} is binary-coercible: ALTER COLUMN … TYPE takes ACCESS EXCLUSIVE on ${text} for a catalog change only (no rewrite, no index rebuild).`,
              `The downgrade narrows it back, which scans every row under that lock (and fails if a value is too long).`,
            ],
            upgrade: [
              commented(
                'ACCESS EXCLUSIVE, catalog only. squawk cannot tell a binary-coercible change from a rewrite, so its rule is silenced for this one statement.',
                call('sql', `-- squawk-ignore changing-column-type\nALTER TABLE ${qualifiedSql(change.table)} ALTER COLUMN ${quoteIdent(change.column)} TYPE ${change.to}`),
              ),
            ],
            downgrade: [commented('ACCESS EXCLUSIVE for a scan of every row.', call('alterColumn', text, change.column, { type: change.from }))],
          },
        ];
      }
      // The chain's contract step refuses to drop the old column while an index or constraint uses
      // it (DROP COLUMN would take them along silently); say so now instead of at that step.
      const dependents = dependentsOf(findTable(options.from, change.table), change.column);
      if (dependents.length > 0) {
        return unsupported(
          `${dependents.join(', ')} use${dependents.length === 1 ? 's' : ''} the column, and the change-column-type chain cannot carry ${dependents.length === 1 ? 'it' : 'them'} to the new column: ` +
            `write the chain with \`phasegate new change-column-type ${text} ${change.column} ${change.to}\` and add their equivalents on the new column (CREATE INDEX CONCURRENTLY, NOT VALID + VALIDATE) in revisions before its contract step`,
        );
      }
      return findPattern('change-column-type').build([text, change.column, change.to], { fromType: change.from });
    }

    case 'setDefault': {
      const text = tableText(change.table);
      const describe = (d: string | null) => (d === null ? 'no default' : `default ${d}`);
      return [
        {
          message: `${text}.${change.column}: ${describe(change.to)}`,
          phase: 'expand',
          notes: [`SET/DROP DEFAULT takes ACCESS EXCLUSIVE on ${text} for a catalog change only: existing rows keep their values; it applies to rows inserted from now on.`],
          upgrade: [commented('ACCESS EXCLUSIVE, catalog only.', call('alterColumn', text, change.column, { default: change.to }))],
          downgrade: [commented('ACCESS EXCLUSIVE, catalog only.', call('alterColumn', text, change.column, { default: change.from }))],
        },
      ];
    }

    case 'dropNotNull': {
      const text = tableText(change.table);
      return [
        {
          message: `${text}.${change.column} becomes nullable`,
          phase: 'expand',
          // Why a gate: from commit on, NULLs may be written, and code that reads the column may not expect one.
          gate: {
            name: `nullable:${text}.${change.column}`,
            prompt: `Every app version that reads ${text}.${change.column} must handle NULL before it may hold one. Approve to drop its NOT NULL.`,
          },
          notes: [
            `DROP NOT NULL takes ACCESS EXCLUSIVE on ${text} for a catalog change only.`,
            'The downgrade sets NOT NULL again, which scans the whole table under that lock (and fails while a NULL exists).',
          ],
          upgrade: [commented('ACCESS EXCLUSIVE, catalog only.', call('dropNotNull', text, change.column))],
          downgrade: [commented('ACCESS EXCLUSIVE for a scan of every row.', call('setNotNull', text, change.column))],
        },
      ];
    }

    case 'setNotNull': {
      const text = tableText(change.table);
      const columnText = `${text}.${change.column}`;
      // The enforce → validate → SET NOT NULL steps of add-not-null-column (its first two steps add
      // and backfill the column, which exists here already).
      const steps = findPattern('add-not-null-column').build([text, change.column, 'unused'], { backfill: 'unused' }).slice(2);
      const [enforce, ...rest] = steps;
      return [
        {
          ...enforce,
          gate: {
            name: `enforce:${columnText}`,
            prompt: `Deploy the app version that never writes NULL into ${columnText}, and fix the rows that hold NULL now (SELECT * FROM ${qualifiedSql(change.table)} WHERE ${quoteIdent(change.column)} IS NULL): the validate step fails while one is left. Then approve.`,
          },
        },
        ...rest,
      ];
    }

    case 'setIdentity': {
      const text = tableText(change.table);
      const target = `ALTER TABLE ${qualifiedSql(change.table)} ALTER COLUMN ${quoteIdent(change.column)}`;
      const identityAttr = `(SELECT attidentity FROM pg_attribute WHERE attrelid = ${quoteLiteral(qualifiedSql(change.table))}::regclass AND attname = ${quoteLiteral(change.column)} AND NOT attisdropped)`;
      const to = (identity: ColumnModel['identity']): string => {
        if (identity === null) return `${target} DROP IDENTITY IF EXISTS`;
        const generated = identity.toUpperCase();
        return doBlock([
          `IF ${identityAttr} = '' THEN`,
          `  ${target} ADD GENERATED ${generated} AS IDENTITY;`,
          // Why: a new identity's sequence starts at 1, below the values the rows hold already.
          `  PERFORM setval(pg_get_serial_sequence(${quoteLiteral(qualifiedSql(change.table))}, ${quoteLiteral(change.column)}), COALESCE((SELECT max(${quoteIdent(change.column)}) FROM ${qualifiedSql(change.table)}), 0) + 1, false);`,
          'ELSE',
          `  ${target} SET GENERATED ${generated};`,
          'END IF;',
        ]);
      };
      return [
        {
          message: `${text}.${change.column}: ${change.to === null ? 'no identity' : `GENERATED ${change.to.toUpperCase()} AS IDENTITY`}`,
          phase: 'expand',
          notes: [
            `ALTER COLUMN … ADD/SET/DROP IDENTITY takes ACCESS EXCLUSIVE on ${text} for a catalog change only (the column must be NOT NULL already).`,
            'A new identity sequence is moved past the largest value in the column (max() reads the column, fast with an index on it), so inserts do not collide with existing rows.',
          ],
          upgrade: [commented('ACCESS EXCLUSIVE, catalog only.', call('sql', to(change.to)))],
          downgrade: [commented('ACCESS EXCLUSIVE, catalog only.', call('sql', to(change.from)))],
        },
      ];
    }

    case 'addConstraint': {
      if (createdTables.has(objectText(change.table))) {
        // On a table this chain created, nobody waits on its locks and it holds (almost) no rows.
        const text = tableText(change.table);
        return [
          {
            message: `${change.constraint.kind} ${change.constraint.name} on new table ${text}`,
            phase: 'expand',
            notes: [`${text} was created earlier in this chain and is not in use yet: the constraint is added and checked at once (SHARE ROW EXCLUSIVE on a referenced table, brief).`],
            upgrade: [commented('Catalog change on a new table.', call('sql', addConstraintSql(change.table, change.constraint, false)))],
            downgrade: [commented('ACCESS EXCLUSIVE, brief.', call('dropConstraint', text, change.constraint.name))],
          },
        ];
      }
      return addConstraintDrafts(change.table, change.constraint, unsupported);
    }

    case 'createIndex':
      return createIndexDrafts(change.table, change.index);

    case 'dropIndex': {
      const text = tableText(change.table);
      const qualifiedIndex = change.table.schema === 'public' ? change.index.name : `${change.table.schema}.${change.index.name}`;
      return [
        contractDraft(`index ${qualifiedIndex}`, `contract:index ${qualifiedIndex}`, `No query should depend on index ${qualifiedIndex} any more (check pg_stat_user_indexes.idx_scan). Approve to drop it; the downgrade rebuilds it CONCURRENTLY.`, {
          transactional: false,
          notes: [
            `DROP INDEX CONCURRENTLY takes SHARE UPDATE EXCLUSIVE on ${text}: reads and writes go on; it waits for queries using the index to finish.`,
            'Hazard: queries the index served get slower at once (possibly a sequential scan per query).',
            'The downgrade builds it again CONCURRENTLY (SHARE UPDATE EXCLUSIVE for the build).',
          ],
          upgrade: [commented('SHARE UPDATE EXCLUSIVE: blocks no reads or writes.', call('dropIndex', qualifiedIndex, { concurrently: true }))],
          downgrade: [buildIndexCall(text, change.index)],
        }),
      ];
    }

    case 'dropConstraint': {
      const text = tableText(change.table);
      const c = change.constraint;
      const restore: OpCall =
        c.kind === 'check' || c.kind === 'foreign key'
          ? commented('Catalog only (NOT VALID: no scan). Run VALIDATE CONSTRAINT afterwards to check the existing rows again.', call('sql', addConstraintSql(change.table, c, true)))
          : commented('ACCESS EXCLUSIVE while its index is built: writes and reads wait (plan a window for a big table).', call('sql', addConstraintSql(change.table, c, false)));
      return [
        contractDraft(`constraint ${c.name} on ${text}`, `contract:${text}.${c.name}`, `Dropping ${c.kind} ${c.name} (${c.definition}) stops PostgreSQL enforcing it: make sure the app no longer relies on it, then approve.`, {
          notes: [
            `DROP CONSTRAINT takes ACCESS EXCLUSIVE on ${text}${c.kind === 'foreign key' ? ' and the referenced table' : ''}, brief (catalog only).`,
            `Hazard: from commit on, rows that break ${c.definition} are accepted.`,
            c.kind === 'check' || c.kind === 'foreign key'
              ? 'The downgrade adds it back NOT VALID (new rows are checked; old rows are not until someone validates it).'
              : 'The downgrade adds it back, building its index under ACCESS EXCLUSIVE.',
          ],
          upgrade: [commented('ACCESS EXCLUSIVE, brief.', call('dropConstraint', text, c.name))],
          downgrade: [restore],
        }),
      ];
    }

    case 'dropColumn': {
      const text = tableText(change.table);
      const column = findTable(options.from, change.table)?.columns.find((col) => col.name === change.column);
      return [
        contractDraft(`${text}.${change.column}`, `contract:${text}.${change.column}`, `No running app version may read or write ${text}.${change.column} any more (deploy that version first). Approve to drop it: its data is lost.`, {
          notes: [
            `DROP COLUMN takes ACCESS EXCLUSIVE on ${text}, brief (catalog only; the space comes back with later rewrites).`,
            'Hazard: data loss. Queries naming the column fail from commit on; indexes and constraints on it go with it.',
            column ? `${DATA_NOT_RESTORED} The column comes back nullable${column.nullable ? '' : ' (its NOT NULL cannot hold for rows that lost their values)'}.` : 'The downgrade cannot recreate the column: its definition was not known when this file was generated.',
          ],
          upgrade: [commented('ACCESS EXCLUSIVE, catalog only.', call('dropColumn', text, change.column))],
          downgrade: column
            ? [commented('ACCESS EXCLUSIVE, catalog only (a constant default is kept in the catalog).', call('addColumn', text, column.name, typeWithCollation(column), column.default === null || !CONSTANT.test(column.default) ? {} : { default: column.default }))]
            : [],
          ...(column ? {} : { emptyDowngrade: 'The dropped column is not recreated (its definition is unknown); restore it by hand.' }),
        }),
      ];
    }

    case 'dropTable': {
      const text = tableText(change.table);
      const table = findTable(options.from, change.table);
      return [
        contractDraft(`table ${text}`, `contract:table ${text}`, `No running app version may use ${text} any more. Approve to drop it: every row in it is lost.`, {
          notes: [
            `DROP TABLE takes ACCESS EXCLUSIVE on ${text} (and on tables its foreign keys reference), brief.`,
            'Hazard: data loss — every row of the table. Foreign keys from other tables to it must be gone first (they are dropped earlier in this chain).',
            table ? `${DATA_NOT_RESTORED} Its foreign keys are not recreated.` : 'The downgrade cannot recreate the table: its definition was not known when this file was generated.',
          ],
          upgrade: [commented('ACCESS EXCLUSIVE, brief.', call('dropTable', tableText(change.table)))],
          downgrade: table ? createTableSql(table).map((sql) => call('sql', sql)) : [],
          ...(table ? {} : { emptyDowngrade: 'The dropped table is not recreated (its definition is unknown); restore it by hand.' }),
        }),
      ];
    }

    case 'dropEnum': {
      const enumModel = options.from?.enums.find((e) => e.schema === change.enum.schema && e.name === change.enum.name);
      const text = objectText(change.enum);
      return [
        contractDraft(`enum ${text}`, `contract:enum ${text}`, `Nothing may use the type ${text} any more (no column, function or cast). Approve to drop it.`, {
          notes: ['DROP TYPE locks the type only; it fails while a column still uses it.', 'Hazard: code that casts to the type fails from commit on.'],
          upgrade: [commented('Fails while anything depends on the type.', call('sql', `DROP TYPE IF EXISTS ${qualifiedSql(change.enum)}`))],
          downgrade: enumModel ? [call('sql', createEnumSql(enumModel))] : [],
          ...(enumModel ? {} : { emptyDowngrade: 'The dropped type is not recreated (its labels are unknown); restore it by hand.' }),
        }),
      ];
    }

    case 'dropSchema':
      return [
        contractDraft(`schema ${change.schema}`, `contract:schema ${change.schema}`, `Nothing may use schema ${change.schema} any more. Approve to drop it (only when empty).`, {
          notes: ['DROP SCHEMA (RESTRICT) fails while the schema still holds objects: it never drops what is in it.', 'The downgrade creates it again, empty.'],
          upgrade: [commented('Fails while the schema still holds objects.', call('sql', `DROP SCHEMA IF EXISTS ${quoteIdent(change.schema)}`))],
          downgrade: [call('sql', `CREATE SCHEMA IF NOT EXISTS ${quoteIdent(change.schema)}`)],
        }),
      ];
  }
}

/** The object a change is about, for the not-supported list. */
function objectOf(change: SchemaChange): string {
  switch (change.kind) {
    case 'notSupported':
      return change.object;
    case 'createSchema':
    case 'dropSchema':
      return change.schema;
    case 'createEnum':
    case 'addEnumLabels':
    case 'dropEnum':
      return objectText(change.enum);
    case 'createTable':
    case 'dropTable':
      return objectText(change.table);
    case 'addColumn':
      return objectText(change.table, change.column.name);
    case 'addConstraint':
    case 'dropConstraint':
      return objectText(change.table, change.constraint.name);
    case 'createIndex':
    case 'dropIndex':
      return objectText(change.table, change.index.name);
    case 'renameColumn':
      return objectText(change.table, change.from);
    default:
      return objectText(change.table, change.column);
  }
}

/**
 * The chain for `changes`, in their order (the diff orders them so each step can follow the last).
 * A change no safe step exists for, or whose names a pattern refuses, goes to `notSupported` with
 * the reason; the others are still written.
 */
export function renderChanges(changes: readonly SchemaChange[], options: RenderOptions = {}): RenderedChanges {
  const drafts: RevisionDraft[] = [];
  const notSupported: UnsupportedChange[] = [];
  const review: string[] = [];
  const createdTables = new Set<string>();
  const foreignKeys = new ForeignKeysOfNewTables(changes);
  for (const change of changes) {
    try {
      drafts.push(...renderOne(change, options, review, createdTables, foreignKeys));
    } catch (err) {
      const type = (err as PhasegateError).type;
      if (!(err instanceof UnsupportedChangeError) && type !== 'InvalidPatternArguments' && type !== 'UnsupportedName') throw err;
      notSupported.push({ object: objectOf(change), reason: (err as Error).message });
    }
  }
  return { drafts, notSupported, review };
}
