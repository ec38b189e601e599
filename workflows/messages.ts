/**
 * The `migrate` workflow's contract: input, status and message definitions, shared by the
 * workflow, the CLI and the tests. Every payload is plain JSON.
 */
import { defineQuery } from '@temporalio/workflow';
import type { Direction, PlanStep } from '../lib/plan';

export interface MigrateInput {
  /** Alias of a database configured on the workers; never a URL. */
  database: string;
  /** Revision id, `head`, `heads`, `base`, `+N`, `-N`, `<label>@head`, … Defaults to `head`. */
  target?: string;
  direction?: Direction;
}

export type MigrateState =
  | 'planning'
  | 'applying'
  | 'backfilling'
  | 'paused'
  | 'awaiting-approval'
  | 'checking'
  | 'rolling-back'
  | 'done'
  | 'failed';

export interface StepStatus {
  revision: string;
  message: string;
  phase?: string;
  state: 'pending' | 'applying' | 'waiting-for-lock' | 'applied' | 'already-applied' | 'failed';
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
  error: string | null;
}

export interface MigrateResult {
  database: string;
  direction: Direction;
  applied: string[];
  headsAfter: string[];
}

export const statusQuery = defineQuery<MigrateStatus>('status');

export function stepStatus(step: PlanStep): StepStatus {
  return { revision: step.revision, message: step.message, ...(step.phase ? { phase: step.phase } : {}), state: 'pending' };
}
