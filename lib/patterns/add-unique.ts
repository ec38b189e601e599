/**
 * add-unique: a UNIQUE constraint without building its index under ACCESS EXCLUSIVE. The unique
 * index is built CONCURRENTLY first (writes go on), then attached as the constraint with
 * `ADD CONSTRAINT … UNIQUE USING INDEX`, a catalog change. Index and constraint share one name, so
 * nothing is renamed on the way up; the way down builds a copy of the index, drops the constraint
 * and gives the copy the name back, every statement safe to run again after any of the others.
 */
import { z } from 'zod';
import { ident, identifier, inSchemaOf, inSchemaOfSql, literal, localName, objectName, tableName, tableOf } from './fields';
import { doIf } from '../ops/render';
import { call, commented, definePattern } from './types';

export default definePattern({
  name: 'add-unique',
  summary: 'UNIQUE constraint: concurrent unique index → ADD CONSTRAINT … UNIQUE USING INDEX',
  arguments: [
    { name: 'table', description: 'table, optionally schema-qualified' },
    { name: 'columns', description: 'the columns that must be unique together', variadic: true },
  ],
  options: [{ flags: '--name <constraint>', key: 'name', description: 'constraint (and index) name (default <table>_<columns>_key)' }],
  input: z
    .object({
      table: tableName,
      columns: z.array(identifier).min(1, 'name at least one column'),
      name: localName.optional(),
    })
    .strict(),
  plan({ table: tableText, columns, name }) {
    const table = tableOf(tableText);
    const constraint = name ?? objectName(table.name, ...columns, 'key');
    const qualifiedIndex = inSchemaOf(table, constraint);
    const indexSql = inSchemaOfSql(table, constraint);
    const list = columns.join(', ');
    const rebuilt = objectName(constraint, 'rebuilt');
    const buildIndex = call('createIndex', constraint, table.text, columns, { unique: true, concurrently: true });
    const constraintExists = `SELECT 1 FROM pg_constraint WHERE conrelid = to_regclass(${table.literal}) AND conname = ${literal(constraint)}`;
    // Without IF EXISTS: when neither index is there, something else removed them, and the step says so.
    const renameUnlessTaken = doIf(
      `to_regclass(${literal(indexSql)}) IS NULL`,
      `ALTER INDEX ${inSchemaOfSql(table, rebuilt)} RENAME TO ${ident(constraint)}`,
    );
    return [
      {
        message: `unique index ${constraint} on ${table.text} (${list})`,
        phase: 'build',
        transactional: false,
        notes: [
          `CREATE UNIQUE INDEX CONCURRENTLY takes SHARE UPDATE EXCLUSIVE on ${table.text} for the build: reads and writes go on.`,
          'Duplicates make the build fail and leave an INVALID index; remove them and run the migration again (the op drops the invalid index first). Writes that would duplicate a key fail from the moment the build starts checking them.',
          'The downgrade drops it CONCURRENTLY (SHARE UPDATE EXCLUSIVE).',
        ],
        check: {
          name: `unique index ${qualifiedIndex} is valid`,
          failingRows: `SELECT ${literal(qualifiedIndex)} AS missing_index WHERE NOT EXISTS (SELECT 1 FROM pg_index WHERE indexrelid = to_regclass(${literal(indexSql)}) AND indisvalid AND indisunique)`,
        },
        upgrade: [commented('SHARE UPDATE EXCLUSIVE for the build: reads and writes go on.', buildIndex)],
        downgrade: [commented('SHARE UPDATE EXCLUSIVE: blocks no reads or writes.', call('dropIndex', qualifiedIndex, { concurrently: true }))],
      },
      {
        message: `unique constraint ${constraint} on ${table.text} (${list}) using its index`,
        phase: 'attach',
        // The downgrade rebuilds the index CONCURRENTLY (dropping the constraint drops its index), which
        // cannot run in a transaction; the upgrade is a single idempotent statement either way.
        transactional: false,
        notes: [
          `ADD CONSTRAINT … UNIQUE USING INDEX takes ACCESS EXCLUSIVE on ${table.text} for a catalog change only: the valid unique index already enforces the rule, nothing is scanned or built.`,
          `The downgrade first builds a second unique index CONCURRENTLY (${rebuilt}), then drops the constraint (ACCESS EXCLUSIVE, brief; its index goes with it) and renames ${rebuilt} to ${constraint} (SHARE UPDATE EXCLUSIVE, brief): the state the previous revision left, with uniqueness enforced at every moment.`,
          `Run again after a crash part-way, the downgrade builds only while the constraint exists, renames only while ${constraint} is free, and drops a ${rebuilt} left next to ${constraint}.`,
        ],
        upgrade: [commented('ACCESS EXCLUSIVE, catalog only: the index becomes the constraint.', call('addUnique', table.text, constraint, columns, { usingIndex: constraint }))],
        // Statement by statement, so a worker that dies can leave the step after any of them; each
        // re-run must then finish it. The build would otherwise start over once the rename has taken
        // the copy's name away (and the rename then find its target taken): it runs only while the
        // constraint exists, which the drop right after it ends.
        downgrade: [
          commented(
            'SHARE UPDATE EXCLUSIVE for the build: a copy of the constraint\'s index, so uniqueness holds throughout. Only while the constraint exists: a re-run after its drop builds nothing.',
            call('createIndex', rebuilt, table.text, columns, { unique: true, concurrently: true, onlyIf: constraintExists }),
          ),
          commented('ACCESS EXCLUSIVE, brief: drops the constraint and its index.', call('dropConstraint', table.text, constraint)),
          commented(
            `SHARE UPDATE EXCLUSIVE on the index, brief. Skipped once ${constraint} exists again: a re-run after the rename.`,
            call('sql', renameUnlessTaken),
          ),
          commented(
            `SHARE UPDATE EXCLUSIVE, blocks no reads or writes: nothing to drop after the rename, unless a copy was left next to ${constraint} (an earlier version of this downgrade, run again, built one).`,
            call('dropIndex', inSchemaOf(table, rebuilt), { concurrently: true }),
          ),
        ],
      },
    ];
  },
});
