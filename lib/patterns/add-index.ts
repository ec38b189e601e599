/**
 * add-index: one non-transactional revision building the index CONCURRENTLY, so writes go on while
 * it builds; `op.createIndex` drops an INVALID leftover of a failed build before building again.
 */
import { z } from 'zod';
import { identifier, inSchemaOf, inSchemaOfSql, literal, localName, objectName, sqlExpression, tableName, tableOf } from './fields';
import { call, commented, definePattern } from './types';

export default definePattern({
  name: 'add-index',
  summary: 'CREATE [UNIQUE] INDEX CONCURRENTLY IF NOT EXISTS in a non-transactional revision',
  arguments: [
    { name: 'table', description: 'table, optionally schema-qualified' },
    { name: 'columns', description: 'indexed columns, in order', variadic: true },
  ],
  options: [
    { flags: '--unique', key: 'unique', description: 'a unique index (the build fails on duplicates; fix them and run again)' },
    { flags: '--name <index>', key: 'name', description: 'index name (default <table>_<columns>_idx)' },
    { flags: '--where <predicate>', key: 'where', description: 'partial index predicate' },
  ],
  input: z
    .object({
      table: tableName,
      columns: z.array(identifier).min(1, 'name at least one column'),
      unique: z.boolean().optional(),
      name: localName.optional(),
      where: sqlExpression.optional(),
    })
    .strict(),
  plan({ table: tableText, columns, unique = false, name, where }) {
    const table = tableOf(tableText);
    const index = name ?? objectName(table.name, ...columns, 'idx');
    const qualifiedIndex = inSchemaOf(table, index);
    return [
      {
        message: `${unique ? 'unique ' : ''}index ${index} on ${table.text} (${columns.join(', ')})`,
        phase: 'build',
        transactional: false,
        notes: [
          `CREATE INDEX CONCURRENTLY takes SHARE UPDATE EXCLUSIVE on ${table.text} for the whole build: reads and writes go on; other DDL and VACUUM wait.`,
          'It waits for transactions already running on the table to finish, so a long transaction delays it (it does not block others meanwhile).',
          'A failed or cancelled build leaves an INVALID index: running the migration again drops it (CONCURRENTLY) and builds anew; a valid index is left alone.',
          'The downgrade drops it CONCURRENTLY: SHARE UPDATE EXCLUSIVE, waits for queries using the index.',
        ],
        check: {
          name: `index ${qualifiedIndex} is valid`,
          failingRows: `SELECT ${literal(qualifiedIndex)} AS missing_index WHERE NOT EXISTS (SELECT 1 FROM pg_index WHERE indexrelid = to_regclass(${literal(inSchemaOfSql(table, index))}) AND indisvalid)`,
        },
        upgrade: [
          commented(
            'SHARE UPDATE EXCLUSIVE for the build: reads and writes go on.',
            call('createIndex', index, table.text, columns, { ...(unique ? { unique } : {}), concurrently: true, ...(where === undefined ? {} : { where }) }),
          ),
        ],
        downgrade: [commented('SHARE UPDATE EXCLUSIVE: waits for queries using the index, blocks no reads or writes.', call('dropIndex', qualifiedIndex, { concurrently: true }))],
      },
    ];
  },
});
