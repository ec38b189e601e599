/** Column ops: add, drop, rename, alter (type, default, nullability). */
import { quoteIdent, quoteLiteral } from '../sql';
import { columnExists, doIf, requireExpression, requireName, requireSqlFragment, tableRef } from './render';
import { InvalidOpError, type RecordedOp } from './types';

export interface AddColumnOptions {
  nullable?: boolean;
  /** A SQL expression used as DEFAULT; constant defaults are metadata-only on PG11+. */
  default?: string;
}

export interface AlterColumnOptions {
  /** New data type (`bigint`, `numeric(12,2)`, `text[]`). */
  type?: string;
  /** USING expression converting the old values; only with `type`. */
  using?: string;
  /** New DEFAULT expression; `null` drops the default. */
  default?: string | null;
  /** `false` sets NOT NULL, `true` drops it. */
  nullable?: boolean;
}

export function addColumn(table: string, column: string, type: string, options: AddColumnOptions = {}): RecordedOp {
  const t = tableRef('addColumn', 'table', table);
  const name = requireName('addColumn', 'column', column);
  const parts = [`ALTER TABLE ${t.sql} ADD COLUMN IF NOT EXISTS ${quoteIdent(name)} ${requireSqlFragment('addColumn', 'type', type)}`];
  if (options.default !== undefined) parts.push(`DEFAULT ${requireExpression('addColumn', 'default', options.default)}`);
  if (options.nullable === false) parts.push('NOT NULL');
  return { kind: 'addColumn', description: `add column ${t.text}.${name}`, statements: [{ sql: parts.join(' ') }] };
}

export function dropColumn(table: string, column: string): RecordedOp {
  const t = tableRef('dropColumn', 'table', table);
  const name = requireName('dropColumn', 'column', column);
  return {
    kind: 'dropColumn',
    description: `drop column ${t.text}.${name}`,
    statements: [{ sql: `ALTER TABLE ${t.sql} DROP COLUMN IF EXISTS ${quoteIdent(name)}` }],
  };
}

export function renameColumn(table: string, from: string, to: string): RecordedOp {
  const t = tableRef('renameColumn', 'table', table);
  const oldName = requireName('renameColumn', 'column', from);
  const newName = requireName('renameColumn', 'new column name', to);
  // Skipped only when the rename already happened (old name gone, new name there); any other state
  // (neither, or both) reaches ALTER TABLE, which reports it.
  const sql = doIf(
    `${columnExists(t, oldName)}\n     OR NOT ${columnExists(t, newName)}`,
    `ALTER TABLE ${t.sql} RENAME COLUMN ${quoteIdent(oldName)} TO ${quoteIdent(newName)}`,
  );
  return { kind: 'renameColumn', description: `rename column ${t.text}.${oldName} to ${newName}`, statements: [{ sql }] };
}

/**
 * All requested changes go into one ALTER TABLE: one lock, one pass over the table, atomic even
 * outside a transaction. Which of them rewrite the table:
 * - SET DATA TYPE rewrites the table and rebuilds its indexes, unless the old type is binary-coercible
 *   to the new one (varchar(n) → varchar(m ≥ n) or text, numeric(p,s) → numeric(q ≥ p,s)).
 * - SET NOT NULL rewrites nothing but scans the whole table, unless a valid CHECK (col IS NOT NULL) proves it.
 * - SET/DROP DEFAULT and DROP NOT NULL change only the catalog.
 */
export function alterColumn(table: string, column: string, options: AlterColumnOptions, kind = 'alterColumn'): RecordedOp {
  const t = tableRef(kind, 'table', table);
  const name = requireName(kind, 'column', column);
  const col = `ALTER COLUMN ${quoteIdent(name)}`;
  if (options === null || typeof options !== 'object') throw new InvalidOpError(kind, 'options must be an object { type?, using?, default?, nullable? }');
  const { type, using, nullable } = options;
  if (type === undefined && options.default === undefined && nullable === undefined) {
    throw new InvalidOpError(kind, 'nothing to change: give at least one of type, default, nullable');
  }
  if (using !== undefined && type === undefined) throw new InvalidOpError(kind, '`using` needs `type`');
  if (nullable !== undefined && typeof nullable !== 'boolean') throw new InvalidOpError(kind, '`nullable` must be true or false');

  const actions: string[] = [];
  const changes: string[] = [];
  const newType = type === undefined ? undefined : requireSqlFragment(kind, 'type', type);
  if (newType !== undefined) {
    // The old default would otherwise have to cast to the new type; a new one is set just below.
    if (options.default !== undefined) actions.push(`${col} DROP DEFAULT`);
    actions.push(`${col} SET DATA TYPE ${newType}${using === undefined ? '' : ` USING (${requireExpression(kind, 'using', using)})`}`);
    changes.push(`type ${newType}`);
  }
  if (options.default === null) {
    if (newType === undefined) actions.push(`${col} DROP DEFAULT`);
    changes.push('drop default');
  } else if (options.default !== undefined) {
    actions.push(`${col} SET DEFAULT ${requireExpression(kind, 'default', options.default)}`);
    changes.push(`default ${options.default}`);
  }
  if (nullable !== undefined) {
    actions.push(`${col} ${nullable ? 'DROP' : 'SET'} NOT NULL`);
    changes.push(nullable ? 'nullable' : 'not null');
  }
  const ddl = `ALTER TABLE ${t.sql} ${actions.join(', ')}`;
  // Without USING, re-running is a no-op (a column cast to its own type is left alone). A USING
  // expression need not be idempotent (amount * 100), so then the change runs only while the
  // column's base type still differs from the target: once done, never again.
  const sql =
    using === undefined
      ? ddl
      : doIf(
          `(SELECT atttypid FROM pg_attribute WHERE attrelid = ${t.literal}::regclass AND attname = ${quoteLiteral(name)} AND NOT attisdropped)\n     IS DISTINCT FROM ${quoteLiteral(newType)}::regtype`,
          ddl,
        );
  return { kind, description: `alter column ${t.text}.${name}: ${changes.join(', ')}`, statements: [{ sql }] };
}

export function setNotNull(table: string, column: string): RecordedOp {
  return alterColumn(table, column, { nullable: false }, 'setNotNull');
}

export function dropNotNull(table: string, column: string): RecordedOp {
  return alterColumn(table, column, { nullable: true }, 'dropNotNull');
}
