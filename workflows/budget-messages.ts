/**
 * Messages of the `throttleBudget` workflow (one per database server) and the notice it sends to
 * each member backfill. Plain JSON, so the Temporal UI and `temporal workflow signal/update` work.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { BudgetNotice, ServerBudget, SetBudgetInput } from './budget-shares';

export interface BudgetJoinInput {
  /** The backfill's workflow id (the budget signals its current run). */
  workflowId: string;
  database: string;
  /** The backfill held a slot before (a re-join after the budget restarted): it is queued first. */
  holding?: boolean;
}

export interface BudgetLeaveInput {
  workflowId: string;
}

export interface BudgetMember {
  workflowId: string;
  database: string;
  joinedAtMs: number;
  lastSeenMs: number;
}

export interface BudgetStatus {
  server: string;
  budget: ServerBudget;
  /** Running members with their share (rows/s; null = no limit). */
  running: Array<{ workflowId: string; database: string; maxRowsPerSecond: number | null }>;
  /** Waiting members in FIFO order. */
  waiting: Array<{ workflowId: string; database: string }>;
  /** The last change and who made it, or why a member was dropped. */
  lastChange: string | null;
  /** A member that has not re-joined for this long is dropped (its share given back). */
  leaseMs: number;
  runs: number;
}

export interface SetBudgetAnswer {
  budget: ServerBudget;
  running: number;
  share: number | null;
}

export const budgetJoinSignal = defineSignal<[BudgetJoinInput]>('budgetJoin');
export const budgetLeaveSignal = defineSignal<[BudgetLeaveInput]>('budgetLeave');
export const setBudgetUpdate = defineUpdate<SetBudgetAnswer, [SetBudgetInput]>('setBudget');
export const budgetStatusQuery = defineQuery<BudgetStatus>('budgetStatus');
/** From the budget to a member backfill: its slot and share now. */
export const budgetShareSignal = defineSignal<[BudgetNotice]>('budgetShare');
