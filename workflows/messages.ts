/**
 * The `migrate` workflow's contract: input, status and message definitions, shared by the
 * workflow, the CLI and the tests. Every payload is plain JSON.
 */
import { defineQuery, defineSignal } from '@temporalio/workflow';
import type { Direction, PlanStep } from '../lib/plan';
import type { BackfillSpec } from '../lib/revision';
import type { BackfillState } from './backfill';

export interface MigrateInput {
  /** Alias of a database configured on the workers; never a URL. */
  database: string;
  /** Revision id, `head`, `heads`, `base`, `+N`, `-N`, `<label>@head`, … Defaults to `head`. */
  target?: string;
  direction?: Direction;
  /** Approve every gate automatically (recorded as approved by `autoApprove`): non-production only. */
  autoApprove?: boolean;
}

export type MigrateState =
  | 'planning'
  | 'applying'
  | 'backfilling'
  | 'paused'
  | 'awaiting-approval'
  | 'checking'
  | 'failed-check'
  | 'rolling-back'
  | 'rolled-back'
  | 'done'
  | 'failed';

export interface StepStatus {
  revision: string;
  message: string;
  phase?: string;
  state: 'pending' | 'applying' | 'waiting-for-lock' | 'applied' | 'already-applied' | 'failed' | 'rolled-back';
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
  /** Set while a step waits to retry after lock_timeout: what it waits for, and who holds it. */
  waiting: string | null;
  /** The gate the workflow waits at, with its prompt. */
  gate: PendingGate | null;
  /** Every decision sent to a gate, accepted or ignored (with the reason). */
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

export interface ApprovalLogEntry {
  at: string;
  decision: 'approve' | 'reject' | 'expire';
  by: string;
  gate: string | null;
  revision: string | null;
  comment: string | null;
  accepted: boolean;
  ignoredReason: string | null;
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

export const approveSignal = defineSignal<[ApproveInput]>('approve');
export const rejectSignal = defineSignal<[RejectInput]>('reject');
/** Re-run a failed check (after the data was fixed). */
export const retrySignal = defineSignal<[Record<string, never>?]>('retry');

export interface MigrateResult {
  database: string;
  direction: Direction;
  outcome: 'done' | 'rolled-back';
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
  /** Why the backfill failed (state `failed`), or that it was cancelled. */
  error?: string | null;
  /** Runs of the `backfill` workflow so far (continue-as-new starts a new run). */
  runs?: number;
}

/** Child → parent: the backfill's latest progress, sent at a bounded rate. */
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
  /** Least time between two progress signals to the parent, state changes aside (default 5 s). */
  progressIntervalMs?: number;
  /** Batches wait while a replica replays further behind than this (default 10 s). */
  maxReplicationLagMs?: number;
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

export function stepStatus(step: PlanStep): StepStatus {
  return { revision: step.revision, message: step.message, ...(step.phase ? { phase: step.phase } : {}), state: 'pending' };
}
