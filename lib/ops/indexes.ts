/** Index ops: create (optionally CONCURRENTLY, self-healing over an invalid leftover) and drop. */
import { quoteIdent } from '../sql';
import { inSchemaOf, requireExpression, requireName, requireNames, tableRef } from './render';
import { InvalidOpError, type OpStatement, type RecordedOp } from './types';

export interface CreateIndexOptions {
  unique?: boolean;
  /** Build without blocking writes; the revision must declare `transactional: false`. */
  concurrently?: boolean;
  /** Predicate of a partial index, e.g. `deleted_at IS NULL`. */
  where?: string;
  /** Index method: `btree` (default), `hash`, `gin`, `gist`, `brin`, `spgist`. */
  using?: string;
  /**
   * A catalog query (literals inlined, no `$n` parameters): the op does nothing unless it returns a
   * row. For a build that a later statement of the same non-transactional revision makes pointless,
   * so a re-run after that statement does not build again (add-unique's downgrade: the copy of the
   * constraint's index is built only while the constraint exists).
   */
  onlyIf?: string;
}

/** Index keys: column names (quoted), or `{ expression }`, the text between `ON table (` and `)`, verbatim. */
export type IndexKeys = string[] | { expression: string };

export interface DropIndexOptions {
  concurrently?: boolean;
}

function renderKeys(keys: IndexKeys): string {
  if (Array.isArray(keys)) return requireNames('createIndex', 'columns', keys).map(quoteIdent).join(', ');
  if (keys && typeof keys === 'object' && 'expression' in keys) return requireExpression('createIndex', 'expression', keys.expression);
  throw new InvalidOpError('createIndex', 'columns must be an array of column names or { expression: "lower(email)" }');
}

/** createIndex's `onlyIf`: without `$n` parameters, because it is nested into the invalid-index guard, which has its own. */
function requireGuard(value: unknown): string {
  const query = requireExpression('createIndex', 'onlyIf', value).replace(/;\s*$/, '');
  if (/\$\d/.test(query)) throw new InvalidOpError('createIndex', 'onlyIf must not use $n parameters: inline its values as literals');
  return query;
}

export function createIndex(name: string, table: string, keys: IndexKeys, options: CreateIndexOptions = {}): RecordedOp {
  const index = requireName('createIndex', 'index name', name, { unqualified: true });
  const t = tableRef('createIndex', 'table', table);
  const { unique = false, concurrently = false } = options;
  const method = options.using === undefined ? '' : ` USING ${quoteIdent(requireName('createIndex', 'using', options.using))}`;
  const where = options.where === undefined ? '' : ` WHERE (${requireExpression('createIndex', 'where', options.where)})`;
  const guard = options.onlyIf === undefined ? undefined : requireGuard(options.onlyIf);
  const indexSql = inSchemaOf(t, index);
  const keyword = concurrently ? ' CONCURRENTLY' : '';
  const statements: OpStatement[] = [
    // A failed or cancelled concurrent build leaves an INVALID index of this name, which IF NOT EXISTS
    // would then accept as done. Drop it first, but only when invalid: a valid index stays untouched.
    // A guard rather than a DO block, because DROP INDEX CONCURRENTLY cannot run inside a function.
    {
      sql: `DROP INDEX${keyword} IF EXISTS ${indexSql}`,
      onlyIf: {
        sql: `SELECT 1 FROM pg_index WHERE indexrelid = to_regclass($1) AND NOT indisvalid${guard === undefined ? '' : ` AND EXISTS (${guard})`}`,
        params: [indexSql],
      },
    },
    {
      sql: `CREATE ${unique ? 'UNIQUE ' : ''}INDEX${keyword} IF NOT EXISTS ${quoteIdent(index)} ON ${t.sql}${method} (${renderKeys(keys)})${where}`,
      ...(guard === undefined ? {} : { onlyIf: { sql: guard } }),
    },
  ];
  const flags = [unique && 'unique', concurrently && 'concurrently', guard !== undefined && 'guarded'].filter(Boolean).join(', ');
  return {
    kind: 'createIndex',
    description: `create index ${index} on ${t.text}${flags ? ` (${flags})` : ''}`,
    statements,
    ...(concurrently ? { nonTransactional: true } : {}),
  };
}

export function dropIndex(name: string, options: DropIndexOptions = {}): RecordedOp {
  const index = tableRef('dropIndex', 'index name', name);
  const concurrently = options.concurrently === true;
  return {
    kind: 'dropIndex',
    description: `drop index ${index.text}${concurrently ? ' (concurrently)' : ''}`,
    statements: [{ sql: `DROP INDEX${concurrently ? ' CONCURRENTLY' : ''} IF EXISTS ${index.sql}` }],
    ...(concurrently ? { nonTransactional: true } : {}),
  };
}
