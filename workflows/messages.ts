/**
 * The `migrate` workflow's contract: input, status and message definitions, shared by the
 * workflow, the CLI and the tests. Every payload is plain JSON.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { Direction, PlanStep } from '../lib/plan';
import type { BackfillSpec } from '../lib/revision';
import type { PlannedWindow } from '../lib/window';
import type { BackfillState } from './backfill';

export interface MigrateInput {
  /** Alias of a database configured on the workers; never a URL. */
  database: string;
  /** Revision id, `head`, `heads`, `base`, `+N`, `-N`, `<label>@head`, … Defaults to `head`. */
  target?: string;
  direction?: Direction;
  /** Approve every gate automatically (recorded as approved by `autoApprove`): non-production only. */
  autoApprove?: boolean;
  /**
   * Continue as new once a run's history holds this many events (20–50000), besides whenever
   * Temporal suggests it: at the next safe point — between steps, while waiting at a gate, or while
   * `failed`/`blocked` waits for a person (never during a backfill or a rollback). Every approval,
   * pause, throttle, progress and failure travels to the new run. Kept across runs. Default: only
   * when Temporal suggests it (very long migrations; small values are for tests).
   */
  continueAsNewAfterEvents?: number;
  /** The backfill children continue as new after this many slice calls per run (1–100000; default 1000). Kept across runs. */
  backfillContinueAsNewAfterCalls?: number;
  /**
   * Set by `migrateFleet` on the migrations it starts: the fleet's workflow id. The migration then
   * reports each state change to the fleet (a signal) and carries the fleet's name in the
   * `PhasegateFleet` search attribute. Kept across runs.
   */
  fleet?: string;
  /** Set by the workflow itself when it continues as new; leave it out when starting one. */
  carried?: MigrateCarry;
}

/**
 * Everything one run of `migrate` hands to the next through continueAsNew: plain JSON only. The plan
 * travels with it, so the new run never plans again.
 */
export interface MigrateCarry {
  status: MigrateStatus;
  plan: import('../lib/plan').Plan;
  cursor: MigrateCursor;
  /** Indexes of the plan's steps this migration applied (in order), with the last approved gate before each. */
  applied: AppliedStep[];
  auditQueue: AuditEntry[];
  /** The gate a person approved most recently (status.control and status.runs travel in status). */
  approvedGate: AppliedStep['behindGate'];
}

/** Where the step loop stands: the step, and the phase of it that comes next. */
export interface MigrateCursor {
  step: number;
  phase: 'gate' | 'apply' | 'backfill' | 'check' | 'stamp';
}

export interface AppliedStep {
  index: number;
  /** The version row is written (false while its backfill or check is still to finish). */
  stamped: boolean;
  /** The gate a person approved most recently before this step was applied (null: none in this run). */
  behindGate: { name: string; by: string } | null;
}

/** The latest pause/throttle asked for; handed to a backfill when it starts and forwarded while it runs. */
export interface BackfillControl {
  paused: boolean;
  throttle: ThrottleInput;
  /** Bumped on every change, so the forwarder knows what the child has not seen yet. */
  version: number;
}

/** A decision on its way to the audit table (written by the main loop, never by a handler). */
export type AuditEntry = ApprovalLogEntry;

export type AuditDecision = 'approve' | 'reject' | 'expire' | 'retry' | 'rollback' | 'abandon' | 'skipSoak';

export type MigrateState =
  | 'planning'
  | 'applying'
  | 'backfilling'
  | 'paused'
  | 'awaiting-approval'
  | 'checking'
  | 'soaking'
  | 'waiting-for-window'
  | 'blocked'
  | 'failed'
  | 'rolling-back'
  | 'rolled-back'
  | 'done'
  | 'abandoned'
  | 'cancelled';

export interface StepStatus {
  revision: string;
  message: string;
  phase?: string;
  state:
    | 'pending'
    | 'applying'
    | 'waiting-for-lock'
    /** A step whose lock needs a maintenance window waits for the next one to open. */
    | 'waiting-for-window'
    | 'applied'
    /** A downgrade step that ran: its revision is no longer applied. */
    | 'undone'
    | 'already-applied'
    | 'backfilling'
    | 'checking'
    | 'failed'
    | 'rolled-back';
  durationMs?: number;
  /** Attempts made so far (more than 1 after lock timeouts). */
  attempts?: number;
}

export interface MigrateStatus {
  database: string;
  target: string;
  direction: Direction;
  state: MigrateState;
  /** Revision being worked on (or last one worked on). */
  revision: string | null;
  phase: string | null;
  steps: StepStatus[];
  /**
   * What the workflow waits for right now, in words: a lock ("waiting for lock on accounts …,
   * blocked by pid 42"), the database ("waiting for database: connect ECONNREFUSED … (attempt 3,
   * since …)"), a person (at a gate, or in `failed`/`blocked`).
   */
  waiting: string | null;
  /** Set in states `failed` and `blocked`: what failed, and what a person can do about it. */
  failure: FailureStatus | null;
  /** Set once a rollback ran: what it undid, and what it left applied and why. */
  rollback: RollbackStatus | null;
  /** The `backfill` child this migration runs (query it with `backfillStatus` for live progress). */
  backfillWorkflowId: string | null;
  /** The latest pause/throttle asked for (kept for a backfill that has not started yet). */
  control: BackfillControl;
  /** Decisions that could not be written to the audit table, with the reason (the last 20). */
  auditErrors: string[];
  /** Runs of this migration so far (continue-as-new starts a new run with the same id). */
  runs: number;
  /** Decisions received so far (accepted or not); numbers the audit rows. */
  decisions: number;
  /** The gate the workflow waits at, with its prompt. */
  gate: PendingGate | null;
  /**
   * Set while an applied revision's `soak` holds the next step closed (state `soaking`); absent in
   * statuses carried from runs that predate soak periods.
   */
  soak?: SoakStatus | null;
  /**
   * Set while a step waits for its maintenance window (state `waiting-for-window`); absent in
   * statuses carried from runs that predate windows.
   */
  window?: WindowStatus | null;
  /** The last 100 decisions sent to this migration, accepted or ignored (the audit table keeps all). */
  approvals: ApprovalLogEntry[];
  /** Signals that did not fit the state they arrived in, with the reason (the last 50). */
  ignoredSignals: IgnoredSignal[];
  /** The last check run, and its numbers when it failed. */
  check: CheckStatus | null;
  /** The running (or last) backfill's progress, as its child workflow last reported it. */
  backfill: BackfillProgress | null;
  error: string | null;
}

export interface PendingGate {
  name: string;
  revision: string;
  prompt: string;
  onReject: 'rollback' | 'hold';
  approvers: string[] | null;
  since: string;
  remindAt: string | null;
  expiresAt: string | null;
  reminded: boolean;
  /** Set when a rejection put a gate with `onReject: 'hold'` on hold; an approval still opens it. */
  heldBy: { by: string; reason: string | null; at: string } | null;
}

export interface FailureStatus {
  /** What stopped: a revision's statements, a backfill, a check, a rollback step, or a lock (blocked). */
  kind: 'revision' | 'backfill' | 'check' | 'rollback' | 'lock' | 'stamp';
  revision: string;
  message: string;
  /** Error type from the activity (`SqlError`, `CheckTimedOut`, `LockTimeout`, …). */
  type: string | null;
  at: string;
  /** What a person can send now, each as a signal or an Update of the same name. */
  options: Array<'retry' | 'rollback' | 'abandon'>;
}

export interface RollbackStatus {
  reason: string;
  by: string | null;
  undone: string[];
  /** Applied steps the rollback left alone, each with why (behind an approved gate, no downgrade, …). */
  kept: Array<{ revision: string; reason: string }>;
}

export interface SoakStatus {
  /** The revision that soaks, applied at `since`. */
  revision: string;
  since: string;
  /** When the next step may start (its gate opens). */
  until: string;
  /** The revision held back, and its gate when it has one. */
  next: string;
  nextGate: string | null;
}

export interface WindowStatus {
  cron: string;
  timezone: string;
  /** As written in the revision or config ('2h'). */
  duration: string;
  /** The next window: the step starts when it opens. */
  opensAt: string;
  closesAt: string;
  /** The revision that waits. */
  revision: string;
}

export interface ApprovalLogEntry {
  at: string;
  decision: AuditDecision;
  by: string;
  gate: string | null;
  revision: string | null;
  comment: string | null;
  accepted: boolean;
  ignoredReason: string | null;
  /** Numbers the decisions of one migration, across its runs (the audit row's key). */
  seq?: number;
}

export interface IgnoredSignal {
  at: string;
  signal: string;
  reason: string;
}

export interface CheckStatus {
  revision: string;
  name: string;
  passed: boolean;
  failingCount: number;
  sample: Record<string, unknown>[];
  attempts: number;
}

export interface ApproveInput {
  by: string;
  /** The gate meant; when given it must be the gate the workflow waits at. */
  gate?: string;
  comment?: string;
}

export interface RejectInput {
  by: string;
  gate?: string;
  reason?: string;
}

export interface RetryInput {
  by: string;
  comment?: string;
}

export interface RollbackInput {
  by: string;
  /** Also undo steps behind a gate a person approved in this run (they are kept otherwise). */
  pastGates?: boolean;
  reason?: string;
}

export interface SkipSoakInput {
  by: string;
  comment?: string;
}

export interface AbandonInput {
  by: string;
  reason?: string;
}

export const approveSignal = defineSignal<[ApproveInput]>('approve');
export const rejectSignal = defineSignal<[RejectInput]>('reject');
/** In `failed` or `blocked`: run the failed step again (after fixing its cause). */
export const retrySignal = defineSignal<[RetryInput]>('retry');
/** In `failed` or `blocked`: undo this run's steps, newest first (not past an approved gate unless asked). */
export const rollbackSignal = defineSignal<[RollbackInput]>('rollback');
/** In `failed`, `blocked` or at a gate: end the migration and leave the database as it is. */
export const abandonSignal = defineSignal<[AbandonInput]>('abandon');
/** In `soaking`: end the soak now (an approver of the next gate, or of the database; audited). */
export const skipSoakSignal = defineSignal<[SkipSoakInput]>('skipSoak');

/** What an Update of a control verb answers at once: accepted, and the state it found. */
export interface ControlAnswer {
  accepted: true;
  verb: ControlVerb;
  state: MigrateState;
  message: string;
}

export type ControlVerb = 'approve' | 'reject' | 'retry' | 'rollback' | 'abandon' | 'pause' | 'resume' | 'throttle' | 'skipSoak';

/** The same verbs as Updates: their validators refuse what does not fit before it enters history. */
export const approveUpdate = defineUpdate<ControlAnswer, [ApproveInput]>('approve');
export const rejectUpdate = defineUpdate<ControlAnswer, [RejectInput]>('reject');
export const retryUpdate = defineUpdate<ControlAnswer, [RetryInput]>('retry');
export const rollbackUpdate = defineUpdate<ControlAnswer, [RollbackInput]>('rollback');
export const abandonUpdate = defineUpdate<ControlAnswer, [AbandonInput]>('abandon');
export const skipSoakUpdate = defineUpdate<ControlAnswer, [SkipSoakInput]>('skipSoak');
export const pauseUpdate = defineUpdate<ControlAnswer, [Record<string, never>?]>('pause');
export const resumeUpdate = defineUpdate<ControlAnswer, [Record<string, never>?]>('resume');
export const throttleUpdate = defineUpdate<ControlAnswer, [ThrottleInput]>('throttle');

export interface MigrateResult {
  database: string;
  direction: Direction;
  outcome: 'done' | 'rolled-back' | 'abandoned';
  applied: string[];
  /** Revisions whose downgrade ran during a rollback, in the order they ran. */
  rolledBack: string[];
  headsAfter: string[];
}

export const statusQuery = defineQuery<MigrateStatus>('status');

/** Pacing changes for a running backfill; each field applies from the next batch. */
export interface ThrottleInput {
  batchSize?: number;
  delayMs?: number;
  maxRowsPerSecond?: number;
}

/**
 * Backfill control, accepted by both `migrate` (forwarded to its running backfill) and `backfill`.
 * Plain JSON, so the Temporal UI's "Send a Signal" and `temporal workflow signal` work.
 */
export const pauseSignal = defineSignal<[Record<string, never>?]>('pause');
export const resumeSignal = defineSignal<[Record<string, never>?]>('resume');
export const throttleSignal = defineSignal<[ThrottleInput]>('throttle');

export interface SliceProgress {
  slice: number;
  /** Key range [from, to) as JSON values; null = open end. */
  from: unknown[] | null;
  to: unknown[] | null;
  lastKey: unknown[] | null;
  rowsDone: number;
  state: 'pending' | 'running' | 'paused' | 'done';
}

/** Progress of one backfill, as the `backfill` workflow reports it (and `migrate` shows it). */
export interface BackfillProgress {
  revision: string;
  table: string;
  state: 'running' | 'paused' | 'done' | 'failed';
  /** Rows visited by the keyset walk (scanned), and rows the UPDATE changed. */
  rowsDone: number;
  rowsUpdated: number;
  estimatedTotal: number | null;
  rowsPerSecond: number | null;
  etaSeconds: number | null;
  /** Why the backfill is going slower than it could: lock waiters, replication lag, a throttle. */
  slowedBy: string | null;
  batchSize: number;
  delayMs: number;
  maxRowsPerSecond: number | null;
  slices: SliceProgress[];
  /** Key columns walked, and where they came from ("primary key accounts_pkey"). */
  key?: string[];
  keySource?: string;
  /** Spec warnings found when the backfill was prepared (e.g. no `where`). */
  warnings?: string[];
  /** The last control signal and what became of it ("throttle ignored: batchSize must be …"). */
  lastSignal?: string | null;
  /** Set while a slice waits for the database to come back: "waiting for database: … (attempt N, since T)". */
  waiting?: string | null;
  /** Why the backfill failed (state `failed`), or that it was cancelled. */
  error?: string | null;
  /** Runs of the `backfill` workflow so far (continue-as-new starts a new run). */
  runs?: number;
  /**
   * A pause is in effect (rowsPerSecond 0, etaSeconds null); `state` turns `paused` once the
   * running batches have committed.
   */
  paused?: boolean;
  /** When rowsDone, rowsPerSecond and etaSeconds were measured (epoch ms): readers count the ETA down from here. */
  asOfMs?: number | null;
  /** Time spent not paused so far (the whole active time once done). */
  elapsedSeconds?: number;
  /** Rows this backfill walked / elapsedSeconds: the rate a finished backfill shows. */
  averageRowsPerSecond?: number | null;
  /** Its slot and share of the database server's throttle budget; null/absent = no shared budget. */
  budget?: import('./budget-shares').BudgetNotice | null;
  /** Set when the spec has `backfill.window`: the window it is paced by, open now or when it opens next. */
  window?: BackfillWindowStatus | null;
}

/** A window-paced backfill's window as status shows it (times in epoch ms, workflow time). */
export interface BackfillWindowStatus {
  cron: string;
  timezone: string;
  duration: string;
  open: boolean;
  /** The open window's start, or the next one's (null: the cron never fires again). */
  opensAt: number | null;
  closesAt: number | null;
  /** Rows/s while open (null: no limit; absent: the spec's own). */
  insideMaxRowsPerSecond?: number | null;
  outside: 'run' | 'wait';
}

/**
 * Child → parent: the backfill's progress, sent when its state changes (started, paused, resumed,
 * waiting for the database, done, failed) and at most once a minute otherwise, so the parent's
 * history stays bounded however long the backfill runs. Live progress: query the child.
 */
export const backfillProgressSignal = defineSignal<[BackfillProgress]>('backfillProgress');

/**
 * Input of the `backfill` child workflow (workflows/backfill.ts). Plain JSON, so it can also be
 * started from the Temporal UI or `temporal workflow start --type backfill`.
 */
export interface BackfillInput {
  /** Database alias configured on the workers. */
  database: string;
  /** The revision whose backfill this is (for status and ids). */
  revision: string;
  spec: BackfillSpec;
  /** When set, progress is signalled to this workflow (`backfillProgress`) at a bounded rate. */
  parentWorkflowId?: string;
  /** Each slice activity call returns after about this long of batches (default 10 s). */
  sliceCallMs?: number;
  /** Continue-as-new after this many slice calls in one run (default 1000), or earlier when Temporal suggests it. */
  maxSliceCallsBeforeContinueAsNew?: number;
  /** Least time between two progress signals to the parent, state changes aside (default 60 s). */
  progressIntervalMs?: number;
  /** Batches wait while a replica replays further behind than this (default 10 s). */
  maxReplicationLagMs?: number;
  /**
   * Names the checkpoint rows. `migrate` passes `revision:<id>`, stable across its runs, so a new
   * migration (after a terminate or a cancel) resumes the backfill exactly where it stopped.
   * Default: this workflow's id and first run id.
   */
  backfillId?: string;
  /**
   * The maintenance window a spec with `backfill.window` is paced by (`migrate` passes the plan's
   * `backfillWindow`). Required with `spec.window`.
   */
  window?: PlannedWindow;
  /** Pause/throttle asked for before the backfill started (the parent keeps the latest). */
  initialControl?: { paused: boolean; throttle: ThrottleInput };
  /** Set by the workflow itself when it continues as new; leave it out when starting one. */
  state?: BackfillState;
}

export interface BackfillResult {
  revision: string;
  table: string;
  rowsDone: number;
  rowsUpdated: number;
  slices: number;
  durationMs: number;
  /** durationMs without the time spent paused. */
  activeMs?: number;
  /** Rows this backfill walked per second of activeMs. */
  averageRowsPerSecond?: number | null;
  runs: number;
  warnings: string[];
}

/** The `backfill` workflow's progress (the same object it signals to its parent). */
export const backfillStatusQuery = defineQuery<BackfillProgress>('backfillStatus');

/**
 * The id of a revision's backfill child, derived from its parent's id (`migrate-app/backfill-3f1c2a9b7d10`),
 * so a retried or replayed parent finds the same child, and signals can address it by name.
 */
export function backfillWorkflowId(parentWorkflowId: string, revision: string): string {
  return `${parentWorkflowId}/backfill-${revision}`;
}

/** A new migration's status, before planning (also the base of test fixtures). */
export function initialStatus(input: Pick<MigrateInput, 'database' | 'target' | 'direction'>): MigrateStatus {
  return {
    database: input.database,
    target: input.target ?? 'head',
    direction: input.direction ?? 'upgrade',
    state: 'planning',
    revision: null,
    phase: null,
    steps: [],
    waiting: null,
    failure: null,
    rollback: null,
    gate: null,
    soak: null,
    approvals: [],
    ignoredSignals: [],
    check: null,
    backfill: null,
    backfillWorkflowId: null,
    control: { paused: false, throttle: {}, version: 0 },
    auditErrors: [],
    error: null,
    runs: 0,
    decisions: 0,
  };
}

export function stepStatus(step: PlanStep): StepStatus {
  return { revision: step.revision, message: step.message, ...(step.phase ? { phase: step.phase } : {}), state: 'pending' };
}
