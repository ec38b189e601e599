/**
 * What a revision file declares. A revision file in `migrations/versions/` default-exports (or
 * exports as `revision`) an object of this shape.
 */
import type { Op } from './ops';
import type { WindowSpec } from './window';

export interface RevisionModule {
  /** Unique id (Alembic-style: 12 hex characters by default). */
  id: string;
  /** The revision this one follows; `null`/absent for a base. Use `parents` for a merge. */
  parent?: string | null;
  parents?: string[];
  message: string;
  /** Names that `<label>@head` resolves through; only on the revision that starts a branch. */
  branchLabels?: string[];
  /** Revisions that must be applied before this one, without being its parent. */
  dependsOn?: string[];
  /** `false` for revisions whose statements cannot run inside a transaction (CONCURRENTLY). */
  transactional?: boolean;
  /** Free-form label of the phase this revision belongs to, shown in status and the UI. */
  phase?: string;
  /** Stop before applying this revision until a person approves (upgrade only). */
  gate?: GateSpec;
  /** Rows to rewrite in batches after this revision is applied (upgrade only). */
  backfill?: BackfillSpec;
  /** Verification after this revision (and its backfill); must pass before the next gate opens. */
  check?: CheckSpec;
  /**
   * Let the change soak (upgrade only): once this revision is applied (its backfill and check
   * finished too), the migration holds the next step, and its gate, closed this long (a durable
   * timer). An approver may end it early with `skip-soak`, recorded in the audit table.
   */
  soak?: DurationSpec;
  /**
   * Maintenance window (lib/window.ts): the steps of this revision that take a lock from SHARE up
   * (ACCESS EXCLUSIVE, EXCLUSIVE, SHARE ROW EXCLUSIVE, SHARE) start only while a window is open.
   * Overrides `databases.<alias>.window` in the config; `null` or `false` opts this revision out
   * of the config's window (it runs whenever the migration reaches it).
   */
  window?: WindowSpec | null | false;
  upgrade(op: Op): void | Promise<void>;
  downgrade(op: Op): void | Promise<void>;
}

/** A duration as Temporal understands it: milliseconds, or a string like '30 minutes', '2h'. */
export type DurationSpec = number | string;

export interface GateSpec {
  /** Stable name that approvals may address (`approve {gate}`); defaults to the revision id. */
  name?: string;
  /** What the approver should verify or do first ("deploy the app that writes org_id"). */
  prompt: string;
  /** What a rejection does: run the applied revisions' downgrades in reverse, or stop and wait. */
  onReject?: 'rollback' | 'hold';
  /** Who may approve; anyone when absent. Also configurable per database. */
  approvers?: string[];
  /** Log and show a reminder after this long without a decision. */
  remindAfter?: DurationSpec;
  /** Treat as rejected after this long without a decision. */
  expireAfter?: DurationSpec;
}

/**
 * A declarative, resumable data rewrite: `UPDATE table SET … WHERE (where)` in keyset batches.
 * `where` must make a re-run a no-op (e.g. `org_id IS NULL`), so a batch retried after a crash
 * changes nothing twice.
 */
export interface BackfillSpec {
  table: string;
  /** Key column(s) to walk in order; defaults to the primary key (or a unique NOT NULL column). */
  key?: string | string[];
  /** Column → SQL expression (may refer to the row's other columns). */
  set: Record<string, string>;
  where?: string;
  batchSize?: number;
  /** Pause between batches. */
  delayMs?: number;
  maxRowsPerSecond?: number;
  /** Adaptive batch sizing aims at this duration per batch. */
  targetBatchMs?: number;
  /** Key-range slices processed concurrently (by one or several workers). */
  parallelism?: number;
  /**
   * How long one slice activity call runs batches before it returns to the workflow (default
   * 10 s). Shorter calls mean finer progress in history; history grows with calls, never with rows.
   */
  sliceCallMs?: number;
  /**
   * Pacing by maintenance window (the revision's `window`, else the database's config window; one
   * must apply). A backfill takes only row locks, so by default it runs whenever it is reached.
   * `maxRowsPerSecond` is its rate while a window is open (null: no limit), the spec's own
   * `maxRowsPerSecond` the rate outside; `outside: 'wait'` runs it only inside windows (it stops
   * after its batch when a window closes and goes on from its checkpoint at the next opening).
   */
  window?: BackfillWindowSpec;
}

export interface BackfillWindowSpec {
  /** Rows per second while a window is open; null lifts the limit inside windows. */
  maxRowsPerSecond?: number | null;
  /** Outside windows: `run` (default) at the spec's pace, or `wait` for the next opening. */
  outside?: 'run' | 'wait';
}

/**
 * A verification query: `failingRows` selects the rows that violate the expectation (their key
 * columns, for a sample); the check passes when it returns none.
 */
export interface CheckSpec {
  /** Shown in status: "no NULLs left in accounts.org_id". */
  name: string;
  failingRows: string;
  /** The check's own statement timeout (default 10 minutes); a timed-out scan is cancelled in PostgreSQL. */
  timeoutMs?: number;
}

/** A failing check reports this many of its rows as a sample… */
export const CHECK_SAMPLE_SIZE = 10;
/** …and counts failing rows up to this many ("more than 1000"), so the scan can stop early. */
export const CHECK_COUNT_CAP = 1000;
/** Used when a check sets no `timeoutMs`. */
export const DEFAULT_CHECK_TIMEOUT_MS = 10 * 60_000;

/** The graph-relevant part of a revision: what the revision graph works on (no code, no DB). */
export interface RevisionNode {
  id: string;
  parents: string[];
  dependsOn: string[];
  branchLabels: string[];
  message: string;
}
