/**
 * The plan: every step a `migrate` workflow will take, computed once by an activity and recorded in
 * workflow history, so a replay never reads revision files again. Pure: revision files already
 * loaded, the applied heads already read.
 */
import path from 'node:path';
import { PhasegateError } from './errors';
import { recordOps, type Op, type OpStatement } from './ops';
import { qualified, quoteIdent } from './sql';
import type { Duration } from '@temporalio/common';
import { msToNumber } from '@temporalio/common/lib/time';
import type { BackfillSpec, CheckSpec, DurationSpec, GateSpec } from './revision';
import type { LoadedRevision } from './revision-files';
import { RevisionGraph } from './revision-graph';
import { needsWindow, strongestLock, type LockLevel } from './ops/locks';
import { planWindow, type PlannedWindow, type WindowSpec } from './window';

export type Direction = 'upgrade' | 'downgrade';

export interface PlanStep {
  revision: string;
  message: string;
  /** File name inside the database's migrations folder (workers may live in different paths). */
  file: string;
  /** sha256 of the file when planned; applying a changed file fails. */
  hash: string;
  direction: Direction;
  transactional: boolean;
  phase?: string;
  /** What each op will do, in order, for status and review. */
  operations: string[];
  statements: OpStatement[];
  /** The version table's heads before and after this step: how a retry knows it already ran. */
  headsBefore: string[];
  headsAfter: string[];
  /** Upgrade steps only: stop before, rewrite rows after, verify after (see lib/revision.ts). */
  gate?: PlannedGate;
  backfill?: BackfillSpec;
  check?: CheckSpec;
  /** Upgrade steps only: how long the next step stays closed once this one is applied (revision `soak`). */
  soakMs?: number;
  /** The strongest table lock of the step's statements (lib/ops/locks.ts); absent in plans recorded before lock levels. */
  lock?: LockLevel;
  /**
   * Set when the step must start inside a maintenance window: its lock is SHARE or stronger and a
   * window applies (the revision's `window`, else the database's config default). Never on a
   * rollback step: undoing after a rejection or a person's rollback does not wait.
   */
  window?: PlannedWindow;
  /**
   * Upgrade steps with `backfill.window` only: the window the backfill is paced by (or waits for).
   * Unlike `window` it does not hold the step's DDL.
   */
  backfillWindow?: PlannedWindow;
  /** Upgrade steps only: the downgrade that undoes this step, for rollback after a rejection. */
  rollback?: PlanStep;
  rollbackError?: string;
}

/** A gate as planned: named, with its durations in milliseconds (validated at plan time). */
export interface PlannedGate extends Omit<GateSpec, 'remindAfter' | 'expireAfter'> {
  name: string;
  remindAfterMs?: number;
  expireAfterMs?: number;
}

/** How the workflow retries a step that could not get its lock within lock_timeout. */
export interface LockRetrySettings {
  maxAttempts: number;
  initialDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_LOCK_RETRY: LockRetrySettings = { maxAttempts: 30, initialDelayMs: 1000, maxDelayMs: 30_000 };

export interface Plan {
  database: string;
  direction: Direction;
  target: string;
  currentHeads: string[];
  steps: PlanStep[];
  lockRetry: LockRetrySettings;
  /** Who may approve gates on this database (from the worker's config); anyone when absent. */
  approvers?: string[];
}

export interface BuildPlanInput {
  database: string;
  revisions: LoadedRevision[];
  currentHeads: string[];
  target: string;
  direction: Direction;
  lockRetry?: LockRetrySettings;
  /**
   * The target database's catalog (the plan activity passes its connection): every table and
   * column an op or a backfill names must exist there or be created by an earlier op of the plan,
   * and a backfill's expressions must compile, so a typo is refused before anything is applied.
   * Offline (`--sql`) plans have none.
   */
  catalog?: CatalogQuery;
  /** `databases.<alias>.window` from the config: the window of every revision that sets none. */
  defaultWindow?: WindowSpec;
}

/** One read-only statement on the target database, rows only. */
export type CatalogQuery = (sql: string, params?: unknown[]) => Promise<Array<Record<string, unknown>>>;

export async function buildPlan(input: BuildPlanInput): Promise<Plan> {
  const graph = RevisionGraph.build(input.revisions.map((r) => r.node));
  for (const head of input.currentHeads) {
    if (!graph.has(head)) {
      throw new PhasegateError(
        'UnknownAppliedRevision',
        `database "${input.database}" has revision ${head} applied, but no revision file declares it; ` +
          'restore the missing file, or run `phasegate stamp` to record where the database really is',
        { details: { revision: head } },
      );
    }
  }
  const ids =
    input.direction === 'upgrade'
      ? graph.upgradePath(input.currentHeads, input.target)
      : graph.downgradePath(input.currentHeads, input.target);
  const byId = new Map(input.revisions.map((r) => [r.node.id, r]));
  const steps: PlanStep[] = [];
  const catalog = input.catalog ? new CatalogCheck(input.catalog, input.database) : null;
  let heads = [...input.currentHeads];
  for (const id of ids) {
    const revision = byId.get(id)!;
    const headsAfter = graph.headsAfter(heads, id, input.direction);
    const calls: OpCall[] = [];
    const step = await renderStep(revision, input.direction, heads, headsAfter, calls);
    const window = stepWindow(revision, step, input.defaultWindow);
    if (window) step.window = window;
    if (input.direction === 'upgrade') {
      Object.assign(step, phaseHooks(revision));
      const paced = backfillWindow(revision, input.defaultWindow);
      if (paced) step.backfillWindow = paced;
      // The way back, rendered now so a rollback after a rejection never reads files again.
      try {
        step.rollback = await renderStep(revision, 'downgrade', headsAfter, heads);
      } catch (err) {
        if ((err as PhasegateError).type === 'ConcurrentlyInTransaction') throw err;
        step.rollbackError = `downgrade of ${id} cannot be rendered: ${(err as Error).message}`;
      }
    }
    await catalog?.step(revision, calls, step.backfill);
    steps.push(step);
    heads = headsAfter;
  }
  return {
    database: input.database,
    direction: input.direction,
    target: input.target,
    currentHeads: input.currentHeads,
    steps,
    lockRetry: input.lockRetry ?? DEFAULT_LOCK_RETRY,
  };
}

async function renderStep(revision: LoadedRevision, direction: Direction, headsBefore: string[], headsAfter: string[], calls?: OpCall[]): Promise<PlanStep> {
  const id = revision.node.id;
  const fn = direction === 'upgrade' ? revision.module.upgrade : revision.module.downgrade;
  const ops = await recordOps((op) => fn.call(revision.module, calls ? spyOn(op, calls) : op));
  const transactional = revision.module.transactional !== false;
  const outside = ops.filter((o) => o.nonTransactional);
  if (transactional && outside.length > 0) {
    throw new PhasegateError(
      'ConcurrentlyInTransaction',
      `${revision.file}: ${outside.map((o) => o.description).join(', ')} cannot run inside a transaction, ` +
        `but revision ${id} is transactional. Add \`transactional: false\` to the revision (and keep it to ` +
        'statements that are safe to re-run), or drop the concurrently option',
      { details: { revision: id, file: revision.file } },
    );
  }
  return {
    revision: id,
    message: revision.node.message,
    file: path.basename(revision.file),
    hash: revision.hash,
    direction,
    transactional,
    ...(revision.module.phase ? { phase: revision.module.phase } : {}),
    operations: ops.map((o) => o.description),
    lock: strongestLock(ops.map((o) => o.lock)),
    statements: ops.flatMap((o) => (o.nonTransactional ? o.statements.map((s) => ({ ...s, concurrently: true })) : o.statements)),
    headsBefore,
    headsAfter,
  };
}

/** A revision's gate, backfill and check as plain JSON for the plan (they apply to upgrades). */
function phaseHooks(revision: LoadedRevision): Pick<PlanStep, 'gate' | 'backfill' | 'check' | 'soakMs'> {
  const { gate, backfill, check, soak } = revision.module;
  let planned: PlannedGate | undefined;
  if (gate) {
    const { remindAfter, expireAfter, ...rest } = gate;
    planned = { ...rest, name: gate.name ?? revision.node.id };
    if (remindAfter !== undefined) planned.remindAfterMs = durationMs(revision, 'gate.remindAfter', remindAfter);
    if (expireAfter !== undefined) planned.expireAfterMs = durationMs(revision, 'gate.expireAfter', expireAfter);
  }
  if (backfill) {
    // PostgreSQL would silently truncate a longer name and then walk or set another column.
    const names = [['backfill.table', backfill.table], ...[backfill.key ?? []].flat().map((k) => ['backfill.key', k]), ...Object.keys(backfill.set ?? {}).map((c) => ['backfill.set', c])];
    for (const [field, name] of names) {
      const parts = typeof name === 'string' ? (field === 'backfill.table' ? name.split('.') : [name]) : [];
      const long = parts.find((part) => utf8.encode(part).length > MAX_IDENTIFIER_BYTES);
      if (long !== undefined) {
        throw new PhasegateError(
          'InvalidRevision',
          `${path.basename(revision.file)}: ${field} name "${long}" is longer than ${MAX_IDENTIFIER_BYTES} bytes; PostgreSQL would truncate it, so use the real (shorter) name`,
          { details: { revision: revision.node.id, field } },
        );
      }
    }
  }
  return {
    ...(planned ? { gate: planned } : {}),
    ...(backfill ? { backfill } : {}),
    ...(check ? { check } : {}),
    ...(soak !== undefined ? { soakMs: durationMs(revision, 'soak', soak) } : {}),
  };
}

/**
 * The window a step must start in: only when its lock is SHARE or stronger, and a window applies
 * (the revision's own wins; `window: null`/`false` opts the revision out of the config default).
 */
function stepWindow(revision: LoadedRevision, step: PlanStep, defaultWindow: WindowSpec | undefined): PlannedWindow | undefined {
  if (!needsWindow(step.lock ?? 'ACCESS EXCLUSIVE')) return undefined;
  return revisionWindow(revision, defaultWindow);
}

/**
 * The window a backfill with `backfill.window` is paced by: the same one its revision's DDL would
 * wait for, whatever the lock. Without one the pacing rule means nothing, so the plan is refused.
 */
function backfillWindow(revision: LoadedRevision, defaultWindow: WindowSpec | undefined): PlannedWindow | undefined {
  if (!revision.module.backfill?.window) return undefined;
  const window = revisionWindow(revision, defaultWindow);
  if (window) return window;
  throw new PhasegateError(
    'InvalidRevision',
    `${revision.file}: backfill.window paces the backfill by maintenance window, but no window applies to revision ${revision.node.id}` +
      (revision.module.window === undefined ? '' : ' (its `window` opts out of the config\'s)') +
      `; give the revision a window { cron, duration, timezone }, set databases.<alias>.window in the config, or remove backfill.window`,
    { details: { revision: revision.node.id, field: 'backfill.window' } },
  );
}

/** The revision's own window, else the config default; `window: null`/`false` opts out of the default. */
function revisionWindow(revision: LoadedRevision, defaultWindow: WindowSpec | undefined): PlannedWindow | undefined {
  const own = revision.module.window;
  const spec = own === undefined ? defaultWindow : own || undefined;
  if (!spec) return undefined;
  const source = own === undefined ? 'config' : 'revision';
  try {
    return planWindow(spec, source);
  } catch (err) {
    throw new PhasegateError(
      'InvalidRevision',
      `${revision.file}: ${source === 'revision' ? 'window' : 'the database\'s config window'}: ${(err as Error).message}`,
      { details: { revision: revision.node.id, field: 'window' } },
    );
  }
}

function durationMs(revision: LoadedRevision, field: string, value: DurationSpec): number {
  let ms: number | undefined;
  try {
    ms = msToNumber(value as Duration);
  } catch {
    ms = undefined;
  }
  if (ms === undefined || !Number.isFinite(ms) || ms <= 0) {
    throw new PhasegateError(
      'InvalidRevision',
      `${revision.file}: ${field} ${JSON.stringify(value)} is not a duration; use milliseconds or a string like '30 minutes' or '2h'`,
      { details: { revision: revision.node.id, field } },
    );
  }
  return ms;
}

const MAX_IDENTIFIER_BYTES = 63;
const utf8 = new TextEncoder();

/** One call a revision made on `op`, with its arguments as given. */
interface OpCall {
  method: string;
  args: unknown[];
}

/** `op` as the revision sees it, noting every method call (the op itself still records and validates it). */
function spyOn(op: Op, calls: OpCall[]): Op {
  return new Proxy(op, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      if (typeof prop !== 'string' || typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        calls.push({ method: prop, args });
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}

/** SQLSTATEs that say the database is busy or going away, not that the expression is wrong. */
const NOT_THE_EXPRESSION = /^(08|53|57|40|55P03)/;

/**
 * The plan against the live catalog, step by step: each table and column an op or backfill names
 * exists, or an earlier op of the plan creates it. Conservative: after an `op.sql` (which may
 * create anything) the rest of the plan is not checked, and a column of a table the plan creates is
 * never questioned.
 */
class CatalogCheck {
  /** The revision whose raw SQL makes the rest of the plan unknowable. */
  private opaque = false;
  /** Tables (as `qualified()` renders them) that the plan creates or renames to. */
  private readonly created = new Set<string>();
  /** Columns the plan adds (or renames to), per table. */
  private readonly added = new Map<string, Set<string>>();
  private readonly tables = new Map<string, boolean>();

  constructor(
    private readonly query: CatalogQuery,
    private readonly database: string,
  ) {}

  async step(revision: LoadedRevision, calls: OpCall[], backfill: BackfillSpec | undefined): Promise<void> {
    const where = `${path.basename(revision.file)} (revision ${revision.node.id})`;
    const str = (v: unknown): v is string => typeof v === 'string' && v !== '';
    for (const { method, args } of calls) {
      if (this.opaque) return;
      const [a, b, c, d, e] = args;
      const op = `op.${method}`;
      switch (method) {
        case 'sql':
          this.opaque = true;
          break;
        case 'createTable':
          if (str(a)) this.created.add(qualified(a));
          break;
        case 'renameTable':
          if (str(a) && str(b)) {
            const to = b.includes('.') || !a.includes('.') ? b : `${a.split('.')[0]}.${b}`;
            // A retry after the rename committed finds only the new name.
            if (!(await this.hasTable(to))) await this.needTable(where, op, a);
            this.created.add(qualified(to));
          }
          break;
        case 'addColumn':
          await this.needTable(where, op, a);
          if (str(a) && str(b)) this.addColumn(a, b);
          break;
        case 'dropColumn':
        case 'addCheck':
        case 'validateConstraint':
        case 'dropConstraint':
          await this.needTable(where, op, a);
          break;
        case 'createTrigger':
          await this.needTable(where, op, b);
          break;
        case 'renameColumn':
          await this.needTable(where, op, a);
          if (str(a) && str(b) && str(c)) {
            if (!(await this.hasColumn(a, c))) await this.needColumn(where, op, a, b);
            this.addColumn(a, c);
          }
          break;
        case 'alterColumn':
        case 'setNotNull':
        case 'dropNotNull':
          await this.needTable(where, op, a);
          await this.needColumn(where, op, a, b);
          break;
        case 'createIndex':
          await this.needTable(where, op, b);
          if (Array.isArray(c)) for (const column of c) await this.needColumn(where, op, b, column);
          break;
        case 'addUnique':
          await this.needTable(where, op, a);
          if (Array.isArray(c)) for (const column of c) await this.needColumn(where, op, a, column);
          break;
        case 'addForeignKey':
          await this.needTable(where, op, a);
          if (Array.isArray(c)) for (const column of c) await this.needColumn(where, op, a, column);
          await this.needTable(where, op, d);
          if (Array.isArray(e)) for (const column of e) await this.needColumn(where, op, d, column);
          break;
      }
    }
    if (backfill && !this.opaque) await this.checkBackfill(where, backfill);
  }

  private addColumn(table: string, column: string): void {
    const key = qualified(table);
    if (!this.added.has(key)) this.added.set(key, new Set());
    this.added.get(key)!.add(column);
  }

  private async hasTable(table: string): Promise<boolean> {
    const key = qualified(table);
    if (this.created.has(key)) return true;
    if (!this.tables.has(key)) {
      const rows = await this.query('SELECT to_regclass($1) IS NOT NULL AS found', [key]);
      this.tables.set(key, rows[0]?.found === true);
    }
    return this.tables.get(key)!;
  }

  private async hasColumn(table: string, column: string): Promise<boolean> {
    const key = qualified(table);
    if (this.created.has(key) || this.added.get(key)?.has(column)) return true;
    if (!(await this.hasTable(table))) return false;
    const rows = await this.query(
      'SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = $2 AND attnum > 0 AND NOT attisdropped) AS found',
      [key, column],
    );
    return rows[0]?.found === true;
  }

  private async needTable(where: string, op: string, table: unknown): Promise<void> {
    if (typeof table !== 'string' || table === '' || (await this.hasTable(table))) return;
    throw new PhasegateError(
      'UnknownTable',
      `${where}: ${op} names table ${JSON.stringify(table)}, which does not exist in database "${this.database}" and which no earlier step of this ` +
        'migration creates. Fix the name in the revision file (schema-qualify it if it is not on the search_path) and start the migration again; nothing was changed',
      { details: { table } },
    );
  }

  private async needColumn(where: string, op: string, table: unknown, column: unknown): Promise<void> {
    if (typeof table !== 'string' || typeof column !== 'string' || column === '' || (await this.hasColumn(table, column))) return;
    throw new PhasegateError(
      'UnknownColumn',
      `${where}: ${op} names column ${JSON.stringify(column)} of table ${JSON.stringify(table)}, which does not exist in database "${this.database}" and ` +
        'which no earlier step of this migration adds. Fix the name in the revision file and start the migration again; nothing was changed',
      { details: { table, column } },
    );
  }

  /** The backfill's table and columns exist (or come earlier in the plan), and its UPDATE compiles. */
  private async checkBackfill(where: string, spec: BackfillSpec): Promise<void> {
    if (typeof spec.table !== 'string' || !spec.set || typeof spec.set !== 'object') return;
    await this.needTable(where, 'backfill', spec.table);
    const columns = Object.keys(spec.set);
    for (const column of columns) await this.needColumn(where, 'backfill.set', spec.table, column);
    const key = qualified(spec.table);
    // With a table or column the plan itself adds, only a syntax error is certain now.
    const planMade = this.created.has(key) || columns.some((c) => this.added.get(key)?.has(c));
    const assignments = Object.entries(spec.set).map(([column, expression]) => `${quoteIdent(column)} = (${String(expression)})`);
    const update = `UPDATE ${key} SET ${assignments.join(', ')}${spec.where ? ` WHERE (${spec.where})` : ''}`;
    let failure: { code?: string; message?: string } | null = null;
    await this.query('BEGIN');
    try {
      await this.query("SET LOCAL lock_timeout = '2s'");
      await this.query("SET LOCAL statement_timeout = '10s'");
      await this.query(`EXPLAIN ${update}`);
    } catch (err) {
      failure = err as { code?: string; message?: string };
    } finally {
      await this.query('ROLLBACK');
    }
    if (!failure) return;
    if (typeof failure.code !== 'string' || NOT_THE_EXPRESSION.test(failure.code)) return;
    if (planMade && failure.code !== '42601') return;
    throw new PhasegateError(
      'InvalidBackfillSpec',
      `${where}: its backfill of ${spec.table} does not compile: ${failure.message} (SQLSTATE ${failure.code}). Fix the revision's backfill ` +
        `(set: ${JSON.stringify(spec.set)}${spec.where ? `, where: ${JSON.stringify(spec.where)}` : ''}) and start the migration again; nothing was changed`,
      { details: { table: spec.table, sqlstate: failure.code } },
    );
  }
}
