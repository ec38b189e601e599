/**
 * The `migrateFleet` workflow's contract: input, status and message definitions, shared by the
 * workflow, the CLI and the tests. Every payload is plain JSON, so the Temporal UI's "Send a
 * Signal" / "Send an Update" and `temporal workflow signal|update` work as they do for `migrate`.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { Direction } from '../lib/plan';
import type { MigrateState } from './messages';

export interface FleetRollout {
  /** The first N databases run alone as wave 0; the fleet then waits for `approveWave`. 0: no canary. */
  canary?: number;
  /** Databases per wave after the canary (default: all the rest in one wave). */
  waveSize?: number;
  /** Or: each wave is this percentage of the databases (rounded up); give waveSize or wavePercent. */
  wavePercent?: number;
  /** Migrations running at once within a wave (default 5). */
  maxConcurrent?: number;
  /** Stop starting databases once this many are failing (default 1). Running ones finish safely. */
  failureThreshold?: number;
  /**
   * `wave` (default): one `approveWave` opens a gate for every database of the current wave,
   * including those that reach it later. `database`: the fleet forwards no approval; each database's
   * gates are approved on its own migration (`phasegate approve --database <alias>`).
   */
  approval?: 'wave' | 'database';
  /** Also wait for `approveWave` before every wave after the first, not only after the canary. */
  gateEveryWave?: boolean;
}

export interface FleetInput {
  /** Database aliases configured on the workers, in rollout order. Give this or `select`. */
  databases?: string[];
  /** Or a glob over the workers' configured aliases (`tenant_*`, `eu-?`); matched aliases in name order. */
  select?: string;
  /** As for `migrate` (default `head`). */
  target?: string;
  direction?: Direction;
  rollout?: FleetRollout;
  /** Continue as new (between waves only) once a run's history holds this many events; default when Temporal suggests it. */
  continueAsNewAfterEvents?: number;
  /** Set by the workflow itself when it continues as new. */
  carried?: FleetCarry;
}

/** What each database of the fleet is doing, as its migration last reported it. */
export type MemberState =
  | 'pending'
  | 'starting'
  /** The migration runs (any of its non-stopped states: planning, applying, backfilling, checking, soaking, …). */
  | 'running'
  | 'awaiting-approval'
  | 'paused'
  /** Its migration is failed or blocked and waits for a person (it keeps running). */
  | 'failed'
  | 'blocked'
  | 'done'
  | 'rolled-back'
  | 'abandoned'
  /** Its migration ended without reaching the target (cancelled, terminated, failed to start): `retry` starts it again. */
  | 'ended';

export interface FleetMember {
  database: string;
  wave: number;
  state: MemberState;
  /** The migration's own state, as it last reported it. */
  migrateState: MigrateState | null;
  workflowId: string;
  revision: string | null;
  /** The gate it waits at. */
  gate: string | null;
  error: string | null;
  startedAt: string | null;
  endedAt: string | null;
  /** Report sequence of the last state report taken (older reports are dropped). */
  seq: number;
  /** Gates the fleet already opened for it (policy `wave`), so each is sent once. */
  approvalsSent: string[];
}

export interface WaveApproval {
  gate: string;
  by: string;
  comment: string | null;
}

export type FleetState =
  | 'resolving'
  | 'running'
  /** Waiting for `approveWave` before the next wave. */
  | 'awaiting-approval'
  | 'paused'
  /** `failureThreshold` databases are failing: no new starts until `resume`. */
  | 'halted'
  | 'done'
  | 'aborted'
  | 'cancelled';

export interface FleetDecision {
  at: string;
  /** A fleet verb, or the name of a signal the fleet does not take (recorded, ignored). */
  verb: FleetVerb | string;
  by: string;
  comment: string | null;
  accepted: boolean;
  ignoredReason: string | null;
}

export interface FleetStatus {
  fleet: string;
  target: string;
  direction: Direction;
  state: FleetState;
  rollout: Required<Omit<FleetRollout, 'waveSize' | 'wavePercent'>> & { waves: number };
  /** The wave being run (0 is the canary when there is one). */
  wave: number;
  /** Per wave, its databases in start order. */
  waves: string[][];
  counts: Record<MemberState, number>;
  /** The databases that are failing now, with their errors. */
  failures: Array<{ database: string; state: MemberState; error: string | null; workflowId: string }>;
  members: Record<string, FleetMember>;
  /** What the fleet waits for, in words. */
  waiting: string | null;
  /** Gates approved for a whole wave (approval policy `wave`): wave → gate names. */
  approvedGates: Record<string, WaveApproval[]>;
  /** Waves a person opened with approveWave (after the canary, or each with gateEveryWave). */
  openedWaves: number[];
  paused: boolean;
  /** failureThreshold was reached: no database starts until a person resumes (fixed failures do not lift it). */
  halted: boolean;
  /** Databases that were failing when a person last resumed: the threshold counts only new ones. */
  acknowledged: string[];
  /** Estimated end, from the mean duration of the finished databases; null until one finished. */
  eta: string | null;
  decisions: FleetDecision[];
  runs: number;
  error: string | null;
}

export interface FleetCarry {
  status: FleetStatus;
}

export interface FleetResult {
  fleet: string;
  outcome: 'done' | 'aborted';
  counts: Record<MemberState, number>;
  /** Databases whose migration did not reach the target, with why. */
  notAtTarget: Array<{ database: string; state: MemberState; error: string | null }>;
}

export type FleetVerb = 'pause' | 'resume' | 'approveWave' | 'abort' | 'retry';

export interface FleetControlInput {
  by: string;
  comment?: string;
}

export interface FleetApproveWaveInput extends FleetControlInput {
  /** The gate meant when databases of the wave wait at more than one. */
  gate?: string;
}

export interface FleetRetryInput extends FleetControlInput {
  /** Only these databases (default: every failing one). */
  databases?: string[];
}

export interface FleetAnswer {
  accepted: boolean;
  /** What the fleet did (forwarded to N databases, …) or why it changed nothing. */
  message: string;
  state: FleetState;
}

/** What a migration started by a fleet reports on each state change. */
export interface FleetMemberReport {
  database: string;
  state: MigrateState;
  revision: string | null;
  gate: string | null;
  error: string | null;
  /** Increases with every report of one migration, across its runs. */
  seq: number;
}

export const fleetStatusQuery = defineQuery<FleetStatus>('fleetStatus');

export const fleetPauseSignal = defineSignal<[FleetControlInput]>('pause');
export const fleetResumeSignal = defineSignal<[FleetControlInput]>('resume');
export const fleetApproveWaveSignal = defineSignal<[FleetApproveWaveInput]>('approveWave');
export const fleetAbortSignal = defineSignal<[FleetControlInput]>('abort');
export const fleetRetrySignal = defineSignal<[FleetRetryInput]>('retry');

export const fleetPauseUpdate = defineUpdate<FleetAnswer, [FleetControlInput]>('pause');
export const fleetResumeUpdate = defineUpdate<FleetAnswer, [FleetControlInput]>('resume');
export const fleetApproveWaveUpdate = defineUpdate<FleetAnswer, [FleetApproveWaveInput]>('approveWave');
export const fleetAbortUpdate = defineUpdate<FleetAnswer, [FleetControlInput]>('abort');
export const fleetRetryUpdate = defineUpdate<FleetAnswer, [FleetRetryInput]>('retry');

/** Sent by a member migration to its fleet; arrives on the default handler so the UI does not offer it. */
export const FLEET_MEMBER_SIGNAL = 'phasegate.fleetMember';

/**
 * What a fleet needs to know of a migration's state: whether it waits for a person (and at which
 * gate), or runs. A migration reports only when this changes, so a fleet's history grows by a few
 * events per database, not by one per step. Its end comes from the child's result, not a report.
 */
export function fleetReportKey(state: MigrateState, gate: string | null): string | null {
  switch (state) {
    case 'awaiting-approval':
      return `${state}:${gate ?? ''}`;
    case 'paused':
    case 'failed':
    case 'blocked':
      return state;
    case 'done':
    case 'rolled-back':
    case 'abandoned':
    case 'cancelled':
      return null;
    default:
      return 'running';
  }
}

/** The workflow id of a fleet: `fleet-<name>`. */
export function fleetWorkflowId(name: string): string {
  return `fleet-${name}`;
}

/** The workflow id of a database's migration, as every start path names it. */
export function migrateWorkflowId(database: string): string {
  return `migrate-${database}`;
}
