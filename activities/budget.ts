/**
 * Activities that connect a backfill to its server's `throttleBudget` workflow: join (starting the
 * budget workflow on demand, with the config's budget as its default) and leave. They use the
 * Temporal client the worker hands to every activity (built from the worker's own connection).
 * Workflow inputs name the server, never a host: the server name comes from this worker's config.
 */
import { Context } from '@temporalio/activity';
import { WorkflowNotFoundError } from '@temporalio/client';
import type { PhasegateConfig } from '../lib/config';
import type { BudgetJoinInput } from '../workflows/budget-messages';
import type { ThrottleBudgetInput } from '../workflows/throttle-budget';

/** The budget workflow's id; the same rule as workflows/budget-shares.ts (activities import no workflow code; a unit test keeps them equal). */
export function budgetWorkflowId(server: string): string {
  return `phasegate-budget-${server}`;
}

export interface JoinThrottleBudgetInput extends BudgetJoinInput {
  database: string;
}

/** null: the database has no server in the config, so no shared budget applies. */
export interface JoinThrottleBudgetResult {
  server: string;
  /** How often the backfill re-joins; the budget drops a member silent for 3 × this. */
  leaseMs: number;
}

export function createBudgetActivities({ config }: { config: PhasegateConfig }) {
  async function joinThrottleBudget(input: JoinThrottleBudgetInput): Promise<JoinThrottleBudgetResult | null> {
    const server = config.databases[input.database]?.server;
    if (!server) return null;
    const budget = config.servers[server] ?? {};
    const leaseMs = budget.leaseMs ?? 60_000;
    const args: ThrottleBudgetInput = {
      server,
      maxRowsPerSecond: budget.maxRowsPerSecond ?? null,
      maxConcurrentBackfills: budget.maxConcurrentBackfills ?? null,
      leaseMs,
    };
    const join: BudgetJoinInput = { workflowId: input.workflowId, database: input.database, ...(input.holding ? { holding: true } : {}) };
    // Starts the budget workflow if none runs; a running one just gets the signal (its live budget wins).
    await Context.current().client.workflow.signalWithStart('throttleBudget', {
      workflowId: budgetWorkflowId(server),
      taskQueue: Context.current().info.taskQueue,
      args: [args],
      signal: 'budgetJoin',
      signalArgs: [join],
    });
    return { server, leaseMs };
  }

  async function leaveThrottleBudget(input: { server: string; workflowId: string }): Promise<void> {
    try {
      await Context.current().client.workflow.getHandle(budgetWorkflowId(input.server)).signal('budgetLeave', { workflowId: input.workflowId });
    } catch (err) {
      // No budget workflow (terminated): nothing holds the share.
      if (!(err instanceof WorkflowNotFoundError)) throw err;
    }
  }

  return { joinThrottleBudget, leaveThrottleBudget };
}
