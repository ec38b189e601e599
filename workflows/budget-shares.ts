/**
 * The arithmetic of a server's throttle budget, pure and deterministic (used by the
 * `throttleBudget` workflow, unit-tested on its own): who runs, who waits, and each runner's share.
 *
 * Rules: members are kept in join order; the first `maxConcurrentBackfills` of them run, the rest
 * wait in that (FIFO) order. `maxRowsPerSecond` is divided equally among the running ones, rounded
 * down to whole rows/s, so the shares never add up to more than the budget. No budget value means
 * no limit of that kind.
 */
import { z } from 'zod';

export interface ServerBudget {
  /** Rows per second for all backfills on the server together; null = no limit. */
  maxRowsPerSecond: number | null;
  /** Backfills running on the server at once; null = no limit. */
  maxConcurrentBackfills: number | null;
}

/** What one backfill is told by its server's budget. */
export interface BudgetNotice {
  server: string;
  /** May run now (holds a slot); false = waits in the queue. */
  admitted: boolean;
  /** This backfill's share of the budget; null = no rate limit from the budget. */
  maxRowsPerSecond: number | null;
  /** Backfills running on the server (holding a slot). */
  running: number;
  /** Backfills queued ahead of this one (0 when admitted). */
  ahead: number;
  budget: ServerBudget;
}

export interface Division {
  running: string[];
  waiting: string[];
  /** The share each running backfill gets; null = no rate limit. */
  share: number | null;
}

/** Splits `members` (in join order) into running and waiting, and the budget into equal shares. */
export function divideBudget(budget: ServerBudget, members: readonly string[]): Division {
  const slots = budget.maxConcurrentBackfills ?? members.length;
  const running = members.slice(0, slots);
  const waiting = members.slice(slots);
  const share = budget.maxRowsPerSecond === null ? null : running.length === 0 ? budget.maxRowsPerSecond : Math.max(1, Math.floor(budget.maxRowsPerSecond / running.length));
  return { running, waiting, share };
}

/** The notice for one member of a division. */
export function noticeFor(server: string, budget: ServerBudget, division: Division, workflowId: string): BudgetNotice {
  const admitted = division.running.includes(workflowId);
  return {
    server,
    admitted,
    maxRowsPerSecond: admitted ? division.share : null,
    running: division.running.length,
    ahead: admitted ? 0 : division.waiting.indexOf(workflowId),
    budget: { ...budget },
  };
}

/** The rate a backfill paces itself to: the lower of its own limit and its budget share (null = none). */
export function effectiveRate(own: number | null, share: number | null): number | null {
  if (own === null) return share;
  if (share === null) return own;
  return Math.min(own, share);
}

/** The status line of a backfill that waits for a slot. */
export function waitingForSlot(notice: Pick<BudgetNotice, 'server' | 'running' | 'ahead'>): string {
  return `waiting for a backfill slot on server ${notice.server} (${notice.running} running, ${notice.ahead} ahead)`;
}

export interface SetBudgetInput {
  maxRowsPerSecond?: number | null;
  maxConcurrentBackfills?: number | null;
  by: string;
}

const limit = (field: string, whole: boolean, max: number) => {
  const message = `${field} must be a ${whole ? 'whole number' : 'number'} from 1 to ${max} (null lifts the limit)`;
  const number = z.number({ error: message }).min(1, { error: message }).max(max, { error: message });
  return (whole ? number.int({ error: message }) : number).nullable().optional();
};

const setBudgetSchema = z
  .strictObject(
    {
      maxRowsPerSecond: limit('maxRowsPerSecond', false, 100_000_000),
      maxConcurrentBackfills: limit('maxConcurrentBackfills', true, 1000),
      by: z.string({ error: 'by must name who changes the budget' }).refine((v) => v.trim() !== '', { error: 'by must name who changes the budget' }),
    },
    {
      error: (issue) =>
        issue.code === 'unrecognized_keys'
          ? `unknown field(s) ${issue.keys.join(', ')}; expected maxRowsPerSecond, maxConcurrentBackfills, by`
          : 'expected {maxRowsPerSecond?, maxConcurrentBackfills?, by}',
    },
  )
  .refine((c) => c.maxRowsPerSecond !== undefined || c.maxConcurrentBackfills !== undefined, {
    error: 'nothing to change: give maxRowsPerSecond and/or maxConcurrentBackfills',
  });

/**
 * Why a setBudget payload is refused (every problem, in one sentence), or null; zod, as for the
 * migrate payloads (./input.ts). null in a field lifts that limit.
 */
export function setBudgetProblem(input: unknown): string | null {
  const parsed = setBudgetSchema.safeParse(input);
  return parsed.success ? null : parsed.error.issues.map((issue) => issue.message).join('; ');
}

/** The budget workflow of a server: one per server name, whatever migration started it. */
export function budgetWorkflowId(server: string): string {
  return `phasegate-budget-${server}`;
}
