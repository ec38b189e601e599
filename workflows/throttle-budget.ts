/**
 * `throttleBudget`: one long-running workflow per database server (id `phasegate-budget-<server>`),
 * started on demand by the first backfill that joins (signal-with-start from an activity). It keeps
 * the server's member backfills in join order, admits the first `maxConcurrentBackfills`, divides
 * `maxRowsPerSecond` equally among them (workflows/budget-shares.ts) and signals each member its
 * slot and share whenever that changes: on join, leave, a member dropped, or `setBudget`.
 *
 * Liveness: members re-join every `leaseMs`; one not seen for 3 × leaseMs (a backfill terminated,
 * or whose worker died and was never restarted) is dropped and its share given back. A member
 * that cannot be signalled (closed) is dropped at once. The config's budget is the value at start;
 * `setBudget` changes it until this workflow is restarted. Continues as new when history grows,
 * carrying its members and budget.
 */
import { allHandlersFinished, condition, continueAsNew, getExternalWorkflowHandle, setHandler, workflowInfo } from '@temporalio/workflow';
import { budgetJoinSignal, budgetLeaveSignal, budgetShareSignal, budgetStatusQuery, setBudgetUpdate, type BudgetMember, type BudgetStatus } from './budget-messages';
import { divideBudget, noticeFor, setBudgetProblem, type ServerBudget, type SetBudgetInput } from './budget-shares';

export const DEFAULT_BUDGET_LEASE_MS = 60_000;
const MAX_EVENTS_PER_RUN = 5_000;

export interface ThrottleBudgetState {
  budget: ServerBudget;
  members: BudgetMember[];
  lastChange: string | null;
  runs: number;
}

export interface ThrottleBudgetInput {
  server: string;
  maxRowsPerSecond?: number | null;
  maxConcurrentBackfills?: number | null;
  leaseMs?: number;
  state?: ThrottleBudgetState;
}

export async function throttleBudget(input: ThrottleBudgetInput): Promise<void> {
  const leaseMs = Math.max(100, input.leaseMs ?? DEFAULT_BUDGET_LEASE_MS);
  const state: ThrottleBudgetState = input.state ?? {
    budget: { maxRowsPerSecond: input.maxRowsPerSecond ?? null, maxConcurrentBackfills: input.maxConcurrentBackfills ?? null },
    members: [],
    lastChange: null,
    runs: 0,
  };
  state.runs++;
  /** The notice each member was last sent (JSON), so only changes are signalled. A new run re-sends all. */
  const sent = new Map<string, string>();
  let dirty = true;

  const division = () => divideBudget(state.budget, state.members.map((m) => m.workflowId));

  setHandler(budgetJoinSignal, (join) => {
    if (!join || typeof join.workflowId !== 'string' || join.workflowId === '') return;
    const now = Date.now();
    const known = state.members.find((m) => m.workflowId === join.workflowId);
    if (known) {
      known.lastSeenMs = now;
      return;
    }
    const member: BudgetMember = { workflowId: join.workflowId, database: String(join.database ?? ''), joinedAtMs: now, lastSeenMs: now };
    // A backfill that held a slot (the budget was restarted, or it was dropped while its worker
    // was away) goes back in front of those that never started.
    if (join.holding) state.members.splice(division().running.length, 0, member);
    else state.members.push(member);
    state.lastChange = `${join.workflowId} joined`;
    dirty = true;
  });
  setHandler(budgetLeaveSignal, (leave) => {
    if (remove(leave?.workflowId, 'left')) dirty = true;
  });
  setHandler(
    setBudgetUpdate,
    (change: SetBudgetInput) => {
      const next: ServerBudget = { ...state.budget };
      if (change.maxRowsPerSecond !== undefined) next.maxRowsPerSecond = change.maxRowsPerSecond;
      if (change.maxConcurrentBackfills !== undefined) next.maxConcurrentBackfills = change.maxConcurrentBackfills;
      state.budget = next;
      state.lastChange = `budget set by ${change.by}: ${JSON.stringify(next)}`;
      dirty = true;
      const d = division();
      return { budget: { ...next }, running: d.running.length, share: d.share };
    },
    {
      validator: (change: SetBudgetInput) => {
        const problem = setBudgetProblem(change);
        if (problem) throw new Error(`setBudget refused: ${problem}`);
      },
    },
  );
  setHandler(budgetStatusQuery, (): BudgetStatus => {
    const d = division();
    const byId = new Map(state.members.map((m) => [m.workflowId, m]));
    return {
      server: input.server,
      budget: { ...state.budget },
      running: d.running.map((id) => ({ workflowId: id, database: byId.get(id)!.database, maxRowsPerSecond: d.share })),
      waiting: d.waiting.map((id) => ({ workflowId: id, database: byId.get(id)!.database })),
      lastChange: state.lastChange,
      leaseMs,
      runs: state.runs,
    };
  });

  function remove(workflowId: string | undefined, why: string): boolean {
    const i = state.members.findIndex((m) => m.workflowId === workflowId);
    if (i < 0) return false;
    state.members.splice(i, 1);
    sent.delete(workflowId!);
    state.lastChange = `${workflowId} ${why}`;
    return true;
  }

  /** Signals every member whose notice changed; a member that cannot be reached is dropped. */
  async function push(): Promise<void> {
    dirty = false;
    const d = division();
    const notices = state.members.map((m) => ({ id: m.workflowId, notice: noticeFor(input.server, state.budget, d, m.workflowId) }));
    await Promise.all(
      notices.map(async ({ id, notice }) => {
        const text = JSON.stringify(notice);
        if (sent.get(id) === text) return;
        try {
          await getExternalWorkflowHandle(id).signal(budgetShareSignal, notice);
          sent.set(id, text);
        } catch {
          if (remove(id, 'dropped: it is no longer running')) dirty = true;
        }
      }),
    );
  }

  /** Members not seen for 3 leases are gone (terminated, or their worker never came back). */
  function expire(): void {
    const now = Date.now();
    for (const m of [...state.members]) {
      if (now - m.lastSeenMs > 3 * leaseMs && remove(m.workflowId, `dropped: no re-join for ${Math.round((now - m.lastSeenMs) / 1000)} s`)) dirty = true;
    }
  }

  const continueAsNewDue = () => workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > MAX_EVENTS_PER_RUN;
  for (;;) {
    if (dirty) await push();
    if (continueAsNewDue()) break;
    const oldest = state.members.reduce((t, m) => Math.min(t, m.lastSeenMs), Infinity);
    const wake = Number.isFinite(oldest) ? Math.max(100, oldest + 3 * leaseMs + 1 - Date.now()) : undefined;
    if (wake === undefined) await condition(() => dirty || continueAsNewDue());
    else await condition(() => dirty || continueAsNewDue(), wake);
    expire();
  }
  await condition(allHandlersFinished);
  await continueAsNew<typeof throttleBudget>({ server: input.server, leaseMs, state });
}
