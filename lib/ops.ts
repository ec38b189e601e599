/**
 * `op`: what a revision's upgrade/downgrade calls. Each call records an operation as data — a
 * description and the statements it renders to — without touching a database. The runtime then
 * executes the statements (activities), or prints them (`--sql`).
 *
 * Every op is idempotent (IF [NOT] EXISTS, a DO block with a catalog check, or a guard query), so a
 * retried activity, or a non-transactional revision run again after a crash, is safe.
 *
 * Each op lives in one place: its builder in `lib/ops/<area>.ts` renders the SQL, and its method
 * here, documented with the lock it takes, records it. Adding an op is one builder and one method;
 * the runtime and `--sql` need no change. docs/ops.md has the whole table.
 */
import * as columns from './ops/columns';
import * as constraints from './ops/constraints';
import * as customSql from './ops/custom-sql';
import * as indexes from './ops/indexes';
import * as routines from './ops/routines';
import * as tables from './ops/tables';
import { isLockLevel, LOCK_LEVELS, statementLocks, strongestLock, type LockLevel } from './ops/locks';
import { InvalidOpError, type RecordedOp } from './ops/types';

export type { OpStatement, RecordedOp } from './ops/types';
export { InvalidOpError } from './ops/types';
export type { LockLevel } from './ops/locks';
export type { AddColumnOptions, AlterColumnOptions } from './ops/columns';
export type { AddCheckOptions, AddForeignKeyOptions, AddUniqueOptions, ReferentialAction } from './ops/constraints';
export type { CreateIndexOptions, DropIndexOptions, IndexKeys } from './ops/indexes';
export type { CreateFunctionOptions, CreateTriggerOptions, TriggerEvent } from './ops/routines';
export type { TableBuilder } from './ops/tables';

export class Op {
  readonly recorded: RecordedOp[] = [];

  /** Records an op with the strongest lock its statements take (maintenance windows decide by it). */
  private record(op: RecordedOp, declaredLock?: LockLevel): void {
    this.recorded.push({ ...op, lock: strongestLock(statementLocks(op, declaredLock)) });
  }

  /**
   * Raw SQL with `$n` parameters. Takes whatever its statement takes; the author owns its
   * idempotency. phasegate counts it as ACCESS EXCLUSIVE (so it waits for a maintenance window
   * when one is set) unless `options.lock` declares a weaker mode, e.g.
   * `op.sql('CREATE INDEX CONCURRENTLY …', [], { lock: 'SHARE UPDATE EXCLUSIVE' })`.
   */
  sql(sql: string, params: unknown[] = [], options: { lock?: LockLevel } = {}): void {
    if (options?.lock !== undefined && !isLockLevel(options.lock)) {
      throw new InvalidOpError('sql', `lock ${JSON.stringify(options.lock)} is not a table lock mode; write one of ${LOCK_LEVELS.map((l) => `'${l}'`).join(', ')}`);
    }
    this.record(customSql.sql(sql, params), options?.lock);
  }

  // ── tables ─────────────────────────────────────────────────────────────────────────────────────

  /**
   * Creates a table (IF NOT EXISTS) from knex's schema builder; `name` may be `schema.table`. Locks
   * nothing that exists, except SHARE ROW EXCLUSIVE on tables its foreign keys reference (brief: an
   * empty table has nothing to check).
   */
  createTable(name: string, define: tables.TableBuilder): void {
    this.record(tables.createTable(name, define));
  }

  /** DROP TABLE IF EXISTS: ACCESS EXCLUSIVE, brief (the files are unlinked at commit). */
  dropTable(name: string): void {
    this.record(tables.dropTable(name));
  }

  /**
   * ALTER TABLE … RENAME TO, skipped when already renamed: ACCESS EXCLUSIVE, brief (catalog only).
   * Queries using the old name fail from the commit on: put a view or a pattern's expand/contract in between.
   */
  renameTable(from: string, to: string): void {
    this.record(tables.renameTable(from, to));
  }

  // ── columns ────────────────────────────────────────────────────────────────────────────────────

  /**
   * ADD COLUMN IF NOT EXISTS: ACCESS EXCLUSIVE, but brief: a nullable column, or one with a constant
   * default, changes only the catalog (PG11+). A volatile default (`now()`, `gen_random_uuid()`)
   * rewrites the table under that lock — add it nullable and backfill instead.
   */
  addColumn(table: string, column: string, type: string, options: columns.AddColumnOptions = {}): void {
    this.record(columns.addColumn(table, column, type, options));
  }

  /** DROP COLUMN IF EXISTS: ACCESS EXCLUSIVE, brief (catalog only; space comes back with later rewrites/VACUUM). */
  dropColumn(table: string, column: string): void {
    this.record(columns.dropColumn(table, column));
  }

  /**
   * RENAME COLUMN, skipped when already renamed: ACCESS EXCLUSIVE, brief (catalog only). Running
   * code that uses the old name breaks at commit; use the rename-column pattern (new column + sync
   * trigger) for a zero-downtime rename.
   */
  renameColumn(table: string, from: string, to: string): void {
    this.record(columns.renameColumn(table, from, to));
  }

  /**
   * One ALTER TABLE changing a column's type (`using` converts the values), default (`null` drops it)
   * and/or nullability. ACCESS EXCLUSIVE for the whole statement, so what it costs matters:
   * - `type` rewrites the table and its indexes under that lock (reads and writes wait), unless the
   *   change is binary-coercible (varchar(n) → varchar(m ≥ n)/text). For big tables use the
   *   change-column-type pattern (new column, trigger, backfill, swap).
   * - `nullable: false` scans the table under that lock unless a validated CHECK (col IS NOT NULL)
   *   exists (PG12+): see setNotNull.
   * - `default` and `nullable: true` change only the catalog: brief.
   * With `using`, the statement runs only while the column's base type differs from `type`, so a
   * retry never applies the conversion twice; a change of type modifier alone (varchar(10) →
   * varchar(5)) with `using` is therefore skipped — write that one with op.sql.
   */
  alterColumn(table: string, column: string, options: columns.AlterColumnOptions): void {
    this.record(columns.alterColumn(table, column, options));
  }

  /**
   * SET NOT NULL: ACCESS EXCLUSIVE. Brief only when a validated CHECK (col IS NOT NULL) already
   * proves it (PG12+ then skips the scan): addCheck(notValid) → backfill → validateConstraint →
   * setNotNull → dropConstraint, each in its own revision. Otherwise the whole table is scanned
   * while reads and writes wait. Re-running on a NOT NULL column does nothing.
   */
  setNotNull(table: string, column: string): void {
    this.record(columns.setNotNull(table, column));
  }

  /** DROP NOT NULL: ACCESS EXCLUSIVE, brief (catalog only). */
  dropNotNull(table: string, column: string): void {
    this.record(columns.dropNotNull(table, column));
  }

  // ── indexes ────────────────────────────────────────────────────────────────────────────────────

  /**
   * CREATE [UNIQUE] INDEX [CONCURRENTLY] IF NOT EXISTS; `keys` are column names or `{ expression }`.
   * - concurrently: SHARE UPDATE EXCLUSIVE for the whole build — reads and writes go on; other DDL
   *   and VACUUM on the table wait. It waits for transactions older than the build, cannot run in a
   *   transaction (the revision needs `transactional: false`), and self-heals: an INVALID index of
   *   this name left by a failed build is dropped (CONCURRENTLY) before rebuilding.
   * - otherwise: SHARE for the whole build — reads go on, writes wait until it ends. Only for small
   *   or new tables.
   */
  createIndex(name: string, table: string, keys: indexes.IndexKeys, options: indexes.CreateIndexOptions = {}): void {
    this.record(indexes.createIndex(name, table, keys, options));
  }

  /**
   * DROP INDEX [CONCURRENTLY] IF EXISTS; `name` may be `schema.index`. Plain: ACCESS EXCLUSIVE on the
   * table, brief, but it queues behind every running query on it. CONCURRENTLY: SHARE UPDATE
   * EXCLUSIVE, waits for transactions using the index, needs `transactional: false`, and cannot drop
   * an index that backs a constraint (drop the constraint).
   */
  dropIndex(name: string, options: indexes.DropIndexOptions = {}): void {
    this.record(indexes.dropIndex(name, options));
  }

  // ── constraints ────────────────────────────────────────────────────────────────────────────────

  /**
   * ADD CONSTRAINT … CHECK, skipped when the table has a constraint of that name. ACCESS EXCLUSIVE:
   * with `notValid` brief (no scan; new and updated rows are checked from then on), without it held
   * for a scan of the whole table. Follow a NOT VALID check with validateConstraint in a later revision.
   */
  addCheck(table: string, name: string, expression: string, options: constraints.AddCheckOptions = {}): void {
    this.record(constraints.addCheck(table, name, expression, options));
  }

  /**
   * ADD CONSTRAINT … UNIQUE, skipped when the table has a constraint of that name. With `usingIndex`
   * (a valid unique index built CONCURRENTLY in an earlier revision): ACCESS EXCLUSIVE, brief — the
   * index becomes the constraint's and takes its name. Without: ACCESS EXCLUSIVE while the index is
   * built — only for small tables.
   */
  addUnique(table: string, name: string, columns: string[], options: constraints.AddUniqueOptions = {}): void {
    this.record(constraints.addUnique(table, name, columns, options));
  }

  /**
   * ADD CONSTRAINT … FOREIGN KEY, skipped when the table has a constraint of that name. SHARE ROW
   * EXCLUSIVE on both tables (writes wait, reads go on): with `notValid` brief, without it held while
   * every row is checked. Follow a NOT VALID key with validateConstraint in a later revision.
   */
  addForeignKey(
    table: string,
    name: string,
    columns: string[],
    refTable: string,
    refColumns: string[],
    options: constraints.AddForeignKeyOptions = {},
  ): void {
    this.record(constraints.addForeignKey(table, name, columns, refTable, refColumns, options));
  }

  /**
   * VALIDATE CONSTRAINT: SHARE UPDATE EXCLUSIVE for the scan — reads and writes go on (a foreign key
   * also takes ROW SHARE on the referenced table). Keep it in a revision of its own: locks taken
   * earlier in the same transaction would be held through the scan. A no-op once valid.
   */
  validateConstraint(table: string, name: string): void {
    this.record(constraints.validateConstraint(table, name));
  }

  /** DROP CONSTRAINT IF EXISTS: ACCESS EXCLUSIVE, brief (a foreign key locks the referenced table too). */
  dropConstraint(table: string, name: string): void {
    this.record(constraints.dropConstraint(table, name));
  }

  // ── functions and triggers ─────────────────────────────────────────────────────────────────────

  /**
   * CREATE OR REPLACE FUNCTION: no table lock. Calls already running finish with the old body; new
   * calls (triggers included) use the new one from commit. Changing the return type needs
   * dropFunction first.
   */
  createFunction(name: string, options: routines.CreateFunctionOptions): void {
    this.record(routines.createFunction(name, options));
  }

  /** DROP FUNCTION IF EXISTS name(argTypes): no table lock; fails while a trigger still uses it (drop the trigger first). */
  dropFunction(name: string, argTypes: string[]): void {
    this.record(routines.dropFunction(name, argTypes));
  }

  /**
   * CREATE OR REPLACE TRIGGER (PG14+): SHARE ROW EXCLUSIVE on the table, brief — writes wait for
   * the catalog change, reads go on. Create the function first.
   */
  createTrigger(name: string, table: string, options: routines.CreateTriggerOptions): void {
    this.record(routines.createTrigger(name, table, options));
  }

  /** DROP TRIGGER IF EXISTS: ACCESS EXCLUSIVE on the table, brief (catalog only). */
  dropTrigger(name: string, table: string): void {
    this.record(routines.dropTrigger(name, table));
  }
}

/** Runs a revision function against a fresh Op and returns what it recorded. */
export async function recordOps(fn: (op: Op) => void | Promise<void>): Promise<RecordedOp[]> {
  const op = new Op();
  await fn(op);
  return op.recorded;
}
