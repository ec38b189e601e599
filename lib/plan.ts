/**
 * The plan: every step a `migrate` workflow will take, computed once by an activity and recorded in
 * workflow history, so a replay never reads revision files again. Pure: revision files already
 * loaded, the applied heads already read.
 */
import path from 'node:path';
import { PhasegateError } from './errors';
import { recordOps, type OpStatement } from './ops';
import type { Duration } from '@temporalio/common';
import { msToNumber } from '@temporalio/common/lib/time';
import type { BackfillSpec, CheckSpec, DurationSpec, GateSpec } from './revision';
import type { LoadedRevision } from './revision-files';
import { RevisionGraph } from './revision-graph';

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
}

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
  let heads = [...input.currentHeads];
  for (const id of ids) {
    const revision = byId.get(id)!;
    const headsAfter = graph.headsAfter(heads, id, input.direction);
    const step = await renderStep(revision, input.direction, heads, headsAfter);
    if (input.direction === 'upgrade') {
      Object.assign(step, phaseHooks(revision));
      // The way back, rendered now so a rollback after a rejection never reads files again.
      try {
        step.rollback = await renderStep(revision, 'downgrade', headsAfter, heads);
      } catch (err) {
        if ((err as PhasegateError).type === 'ConcurrentlyInTransaction') throw err;
        step.rollbackError = `downgrade of ${id} cannot be rendered: ${(err as Error).message}`;
      }
    }
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

async function renderStep(revision: LoadedRevision, direction: Direction, headsBefore: string[], headsAfter: string[]): Promise<PlanStep> {
  const id = revision.node.id;
  const fn = direction === 'upgrade' ? revision.module.upgrade : revision.module.downgrade;
  const ops = await recordOps(fn.bind(revision.module));
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
    statements: ops.flatMap((o) => (o.nonTransactional ? o.statements.map((s) => ({ ...s, concurrently: true })) : o.statements)),
    headsBefore,
    headsAfter,
  };
}

/** A revision's gate, backfill and check as plain JSON for the plan (they apply to upgrades). */
function phaseHooks(revision: LoadedRevision): Pick<PlanStep, 'gate' | 'backfill' | 'check'> {
  const { gate, backfill, check } = revision.module;
  let planned: PlannedGate | undefined;
  if (gate) {
    const { remindAfter, expireAfter, ...rest } = gate;
    planned = { ...rest, name: gate.name ?? revision.node.id };
    if (remindAfter !== undefined) planned.remindAfterMs = durationMs(revision, 'gate.remindAfter', remindAfter);
    if (expireAfter !== undefined) planned.expireAfterMs = durationMs(revision, 'gate.expireAfter', expireAfter);
  }
  return {
    ...(planned ? { gate: planned } : {}),
    ...(backfill ? { backfill } : {}),
    ...(check ? { check } : {}),
  };
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
