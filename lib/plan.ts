/**
 * The plan: every step a `migrate` workflow will take, computed once by an activity and recorded in
 * workflow history, so a replay never reads revision files again. Pure: revision files already
 * loaded, the applied heads already read.
 */
import path from 'node:path';
import { PhasegateError } from './errors';
import { recordOps } from './ops';
import type { LoadedRevision } from './revision-files';
import { RevisionGraph } from './revision-graph';
import type { Statement } from './sql';

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
  statements: Statement[];
  /** The version table's heads before and after this step: how a retry knows it already ran. */
  headsBefore: string[];
  headsAfter: string[];
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
    const fn = input.direction === 'upgrade' ? revision.module.upgrade : revision.module.downgrade;
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
    const headsAfter = graph.headsAfter(heads, id, input.direction);
    steps.push({
      revision: id,
      message: revision.node.message,
      file: path.basename(revision.file),
      hash: revision.hash,
      direction: input.direction,
      transactional,
      ...(revision.module.phase ? { phase: revision.module.phase } : {}),
      operations: ops.map((o) => o.description),
      statements: ops.flatMap((o) => o.statements),
      headsBefore: heads,
      headsAfter,
    });
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
