/** Table-level ops: create, drop, rename. */
import knexFactory from 'knex';
import { inlineParams, quoteIdent, quoteLiteral } from '../sql';
import { doIf, inSchemaOf, tableRef, unlessConstraintExists } from './render';
import { InvalidOpError, type OpStatement, type RecordedOp } from './types';

/** knex used only as a SQL renderer for table definitions; it never opens a connection. */
const renderer = knexFactory({ client: 'pg' });

export type TableBuilder = Parameters<ReturnType<typeof renderer.schema.createTable>['createTable']>[1];

/** `alter table "app"."t" add constraint "name" …` as knex writes it (identifiers double-quoted). */
const KNEX_ADD_CONSTRAINT = /^alter table (?:"(?:[^"]|"")*"\.)?"(?:[^"]|"")*" add constraint "((?:[^"]|"")*)" /i;

export function createTable(name: string, define: TableBuilder): RecordedOp {
  const table = tableRef('createTable', 'table name', name);
  if (typeof define !== 'function') throw new InvalidOpError('createTable', 'the second argument must be a knex table builder function (t) => { … }');
  const builder = table.schema === undefined ? renderer.schema : renderer.schema.withSchema(table.schema);
  const statements = builder
    .createTable(table.name, define)
    .toSQL()
    .map((s): OpStatement => {
      const sql = s.sql
        .replace(/^create table /i, 'create table if not exists ')
        .replace(/^create (unique )?index /i, (_m, unique: string | undefined) => `create ${unique ?? ''}index if not exists `);
      // knex adds unique and foreign-key constraints with separate ALTER TABLEs; a retry after a crash
      // between two of them must skip the ones already there.
      const constraint = KNEX_ADD_CONSTRAINT.exec(sql);
      // A DO body takes no $n parameters: knex's bindings (if any) are inlined as quoted literals.
      if (constraint) return unlessConstraintExists(table, constraint[1].replace(/""/g, '"'), inlineParams({ sql, params: s.bindings as unknown[] }));
      return { sql, params: s.bindings as unknown[] };
    });
  // knex quotes column, index and constraint names (its generated ones included) but never checks
  // their length: PostgreSQL would truncate a long one, and the retry's catalog check by name fail.
  for (const { sql } of statements) {
    for (const [, quoted] of sql.replace(/'(?:[^']|'')*'/g, "''").matchAll(/"((?:[^"]|"")*)"/g)) {
      const name = quoted.replace(/""/g, '"');
      if (utf8.encode(name).length > 63) {
        throw new InvalidOpError(
          'createTable',
          `${table.text}: name "${name}" is longer than 63 bytes; PostgreSQL would truncate it, so pick a shorter name ` +
            "(name knex's generated indexes and constraints yourself, e.g. t.unique(['col'], { indexName: 'short_key' }))",
        );
      }
    }
  }
  return { kind: 'createTable', description: `create table ${table.text}`, statements };
}

const utf8 = new TextEncoder();

export function dropTable(name: string): RecordedOp {
  const table = tableRef('dropTable', 'table name', name);
  return { kind: 'dropTable', description: `drop table ${table.text}`, statements: [{ sql: `DROP TABLE IF EXISTS ${table.sql}` }] };
}

export function renameTable(from: string, to: string): RecordedOp {
  const source = tableRef('renameTable', 'table name', from);
  const target = tableRef('renameTable', 'new table name', to);
  if (target.schema !== undefined && target.schema !== source.schema) {
    throw new InvalidOpError('renameTable', `"${to}" is in another schema than "${from}"; renaming keeps the schema (move it with op.sql('ALTER TABLE … SET SCHEMA …'))`);
  }
  // Skipped only when the rename already happened (old name gone, new name there); any other state
  // reaches ALTER TABLE, which reports it.
  const sql = doIf(
    `to_regclass(${source.literal}) IS NOT NULL OR to_regclass(${quoteLiteral(inSchemaOf(source, target.name))}) IS NULL`,
    `ALTER TABLE ${source.sql} RENAME TO ${quoteIdent(target.name)}`,
  );
  return { kind: 'renameTable', description: `rename table ${source.text} to ${target.name}`, statements: [{ sql }] };
}
