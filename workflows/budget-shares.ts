/**
 * The arithmetic of a server's throttle budget, pure and deterministic (used by the
 * `throttleBudget` workflow, unit-tested on its own): who runs, who waits, and each runner's share.
 *
 * Rules: members are kept in join order; the first `maxConcurrentBackfills` of them run, the rest
 * wait in that (FIFO) order. `maxRowsPerSecond` is divided equally among the running ones, rounded
 * down to whole rows/s, so the shares never add up to more than the budget. No budget value means
 * no limit of that kind.
 */

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

/**
 * Why a setBudget payload is refused, or null. (Workflow code may not import zod, so the checks are
 * written out; the CLI validates the same rules before it sends.) null in a field lifts that limit.
 */
export function setBudgetProblem(input: unknown): string | null {
  if (!input || typeof input !== 'object' || Array.isArray(input)) return 'expected {maxRowsPerSecond?, maxConcurrentBackfills?, by}';
  const change = input as Record<string, unknown>;
  const known = ['maxRowsPerSecond', 'maxConcurrentBackfills', 'by'];
  const unknown = Object.keys(change).filter((k) => !known.includes(k));
  if (unknown.length) return `unknown field(s) ${unknown.join(', ')}; expected maxRowsPerSecond, maxConcurrentBackfills, by`;
  if (typeof change.by !== 'string' || change.by.trim() === '') return 'by must name who changes the budget';
  const rate = change.maxRowsPerSecond;
  if (rate !== undefined && rate !== null && !(typeof rate === 'number' && Number.isFinite(rate) && rate >= 1 && rate <= 100_000_000)) {
    return 'maxRowsPerSecond must be a number from 1 to 100000000 (null lifts the limit)';
  }
  const slots = change.maxConcurrentBackfills;
  if (slots !== undefined && slots !== null && !(Number.isInteger(slots) && (slots as number) >= 1 && (slots as number) <= 1000)) {
    return 'maxConcurrentBackfills must be a whole number from 1 to 1000 (null lifts the limit)';
  }
  if (rate === undefined && slots === undefined) return 'nothing to change: give maxRowsPerSecond and/or maxConcurrentBackfills';
  return null;
}

/** The budget workflow of a server: one per server name, whatever migration started it. */
export function budgetWorkflowId(server: string): string {
  return `phasegate-budget-${server}`;
}
