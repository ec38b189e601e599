/**
 * `op`: what a revision's upgrade/downgrade calls. Each call records an operation as data — a
 * description and the statements it renders to — without touching a database. The runtime then
 * executes the statements (activities), or prints them (`--sql`). Every statement is written to be
 * idempotent (IF [NOT] EXISTS), so a retried activity is safe.
 */
import knexFactory from 'knex';
import { qualified, quoteIdent, type Statement } from './sql';

export interface RecordedOp {
  kind: string;
  description: string;
  statements: Statement[];
  /** True when the statements cannot run inside a transaction (CONCURRENTLY). */
  nonTransactional?: boolean;
}

/** knex used only as a SQL renderer for table definitions; it never opens a connection. */
const renderer = knexFactory({ client: 'pg' });

type TableBuilder = Parameters<ReturnType<typeof renderer.schema.createTable>['createTable']>[1];

export interface AddColumnOptions {
  nullable?: boolean;
  /** A SQL expression used as DEFAULT; constant defaults are metadata-only on PG11+. */
  default?: string;
}

export class Op {
  readonly recorded: RecordedOp[] = [];

  private record(kind: string, description: string, statements: Statement[]): void {
    this.recorded.push({ kind, description, statements });
  }

  /** Raw SQL with `$n` parameters. The author owns its idempotency. */
  sql(sql: string, params: unknown[] = []): void {
    this.record('sql', 'custom SQL', [{ sql, params }]);
  }

  /** Creates a table from knex's schema builder; takes no lock on existing tables. */
  createTable(name: string, define: TableBuilder): void {
    const rendered = renderer.schema.createTable(name, define).toSQL();
    const statements = rendered.map((s) => ({
      sql: s.sql
        .replace(/^create table /i, 'create table if not exists ')
        .replace(/^create (unique )?index /i, (_m, unique: string | undefined) => `create ${unique ?? ''}index if not exists `),
      params: s.bindings as unknown[],
    }));
    this.record('createTable', `create table ${name}`, statements);
  }

  /** ACCESS EXCLUSIVE on the table for the duration of the drop. */
  dropTable(name: string): void {
    this.record('dropTable', `drop table ${name}`, [{ sql: `DROP TABLE IF EXISTS ${qualified(name)}` }]);
  }

  /**
   * ACCESS EXCLUSIVE, but brief: adding a nullable column, or one with a constant default, changes
   * only the catalog (PG11+). A volatile default would rewrite the table — use a backfill instead.
   */
  addColumn(table: string, column: string, type: string, options: AddColumnOptions = {}): void {
    const parts = [`ALTER TABLE ${qualified(table)} ADD COLUMN IF NOT EXISTS ${quoteIdent(column)} ${type}`];
    if (options.default !== undefined) parts.push(`DEFAULT ${options.default}`);
    if (options.nullable === false) parts.push('NOT NULL');
    this.record('addColumn', `add column ${table}.${column}`, [{ sql: parts.join(' ') }]);
  }

  /** ACCESS EXCLUSIVE, brief: a catalog change; the data is reclaimed later by VACUUM/rewrite. */
  dropColumn(table: string, column: string): void {
    this.record('dropColumn', `drop column ${table}.${column}`, [
      { sql: `ALTER TABLE ${qualified(table)} DROP COLUMN IF EXISTS ${quoteIdent(column)}` },
    ]);
  }
}

/** Runs a revision function against a fresh Op and returns what it recorded. */
export async function recordOps(fn: (op: Op) => void | Promise<void>): Promise<RecordedOp[]> {
  const op = new Op();
  await fn(op);
  return op.recorded;
}
