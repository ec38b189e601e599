/**
 * `backfill`: rewrites a table's rows in keyset batches, as a child of `migrate` (or on its own).
 *
 * prepare (key, slices, estimate) ─► per slice, repeated time-bounded `backfillSlice` calls, N
 * slices at once ─► finish. Each call runs ~10 s of batches and returns its progress, so history
 * grows with slices × time, never with rows; the workflow continues as new when Temporal suggests
 * it (or after `maxSliceCallsBeforeContinueAsNew` calls), carrying its state as plain JSON.
 *
 * Control: `pause`, `resume`, `throttle` signals. Pause and throttle bump a stop epoch and write it
 * to the slices' checkpoint rows (`stopBackfillSlices`); a running slice reads it back with every
 * batch and returns after that batch's commit — within one batch, with no transaction open.
 * (Activity cancellation alone reaches a slice only at a heartbeat that the SDK actually sends,
 * throttled to 0.8 × heartbeatTimeout, i.e. up to 8 s later; it remains the fallback when the stop
 * cannot be written, and the path for cancelling the whole backfill.) Throttled slices restart
 * at once with the new pacing; paused ones wait for `resume`.
 */
import {
  ActivityCancellationType,
  ApplicationFailure,
  CancellationScope,
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  isCancellation,
  patched,
  sleep,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { BackfillPlan, BackfillSliceInput, BackfillSliceResult } from '../activities/backfill';
import type { BackfillPacing } from '../lib/backfill';
import { budgetShareSignal } from './budget-messages';
import { effectiveRate, waitingForSlot, type BudgetNotice } from './budget-shares';
import { failureMessage, QUICK_RETRY, retryTransient } from './database-retry';
import {
  backfillProgressSignal,
  backfillStatusQuery,
  pauseSignal,
  resumeSignal,
  throttleSignal,
  type BackfillInput,
  type BackfillProgress,
  type BackfillResult,
  type SliceProgress,
  type BackfillWindowStatus,
  type ThrottleInput,
} from './messages';
import { PhasegateDatabase, PhasegateState } from './search-attributes';
import { windowAt, windowWaiting, type WindowOpening } from './window';

const { prepareBackfill, finishBackfill } = proxyActivities<Activities>({
  startToCloseTimeout: '5 minutes',
  retry: QUICK_RETRY,
});

/**
 * One slice call runs `sliceCallMs` of batches, then returns. The short heartbeat timeout is how
 * fast a dead worker is noticed (the slice then resumes elsewhere from its checkpoint); the
 * activity heartbeats every batch and every 2 s during a long statement or pause.
 */
const { backfillSlice } = proxyActivities<Activities>({
  startToCloseTimeout: '15 minutes',
  heartbeatTimeout: '10 seconds',
  // Pause/cancel wait until the activity has really stopped: then no batch transaction is open.
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  retry: QUICK_RETRY,
});

const { stopBackfillSlices, readBackfillProgress } = proxyActivities<Activities>({
  startToCloseTimeout: '20 seconds',
  retry: { initialInterval: '500ms', maximumInterval: '2s', maximumAttempts: 3 },
});

const { joinThrottleBudget, leaveThrottleBudget } = proxyActivities<Activities>({
  startToCloseTimeout: '20 seconds',
  retry: { initialInterval: '500ms', maximumInterval: '10s' },
});

const DEFAULT_SLICE_CALL_MS = 10_000;
const DEFAULT_MAX_CALLS_PER_RUN = 1_000;
/** Progress to the parent between state changes: rare, so the parent's history stays bounded. */
const DEFAULT_PROGRESS_INTERVAL_MS = 60_000;
const RATE_WINDOW_MS = 60_000;

interface SliceState extends SliceProgress {
  from: string[] | null;
  to: string[] | null;
  lastKey: string[] | null;
  rowsUpdated: number;
  /** Tuned batch size the next call starts from. */
  batchSize: number;
  slowedBy: string | null;
  /** The slice's rowsDone before this backfill's first call (rows an earlier migration already did). */
  rowsBefore?: number;
}

/** Everything a run hands to the next one through continueAsNew: plain JSON only. */
export interface BackfillState {
  /** Names the checkpoint rows in the target database: workflow id + first run id. */
  backfillId: string;
  startedAtMs: number;
  runs: number;
  plan: BackfillPlan | null;
  slices: SliceState[];
  paused: boolean;
  /** Accumulated throttle overrides (applied on top of the plan's pacing). */
  throttle: ThrottleInput;
  /** Stop generation: bumped by pause/throttle; slices started with a lower epoch stop. */
  epoch: number;
  /**
   * [workflow time ms, rows done by this backfill] samples for rows/s over the last minute. The
   * window restarts at resume: rows/s is what the backfill does now, not an average over a pause.
   */
  rateSamples: Array<[number, number]>;
  /** Time spent not paused, up to `activeSinceMs` (absent in state from older runs). */
  activeMs?: number;
  /** Since when the backfill has been running (not paused); null while paused. */
  activeSinceMs?: number | null;
  lastReportMs: number;
  lastSignal: string | null;
  /**
   * The server's shared throttle budget (absent in state from older runs / histories without the
   * `throttle-budget` patch): server null = the database has none.
   */
  budget?: { server: string | null; leaseMs: number; notice: BudgetNotice | null };
}

export async function backfill(input: BackfillInput): Promise<BackfillResult> {
  const info = workflowInfo();
  const state: BackfillState = input.state ?? {
    backfillId: input.backfillId ?? `${info.workflowId}#${info.firstExecutionRunId}`,
    startedAtMs: Date.now(),
    runs: 0,
    plan: null,
    slices: [],
    paused: input.initialControl?.paused ?? false,
    throttle: input.initialControl?.throttle ?? {},
    epoch: 0,
    rateSamples: [],
    lastReportMs: 0,
    lastSignal: null,
  };
  // State carried over from a run of an older phasegate has no active-time bookkeeping yet.
  if (state.activeMs === undefined) {
    state.activeMs = 0;
    state.activeSinceMs = state.paused ? null : state.startedAtMs;
  }
  state.runs++;
  // Histories recorded before the shared budget existed replay without its commands.
  const useBudget = patched('throttle-budget');
  const sliceCallMs = input.sliceCallMs ?? DEFAULT_SLICE_CALL_MS;
  const maxCallsPerRun = Math.max(1, input.maxSliceCallsBeforeContinueAsNew ?? DEFAULT_MAX_CALLS_PER_RUN);
  const progressIntervalMs = input.progressIntervalMs ?? DEFAULT_PROGRESS_INTERVAL_MS;
  let outcome: 'done' | 'failed' | null = null;
  let error: string | null = null;
  /** "waiting for database: …" while a transient fault is waited out (a state change for the parent). */
  let waiting: string | null = null;
  const setWaiting = (text: string | null) => {
    const changed = (waiting === null) !== (text === null);
    waiting = text;
    if (changed) reportInBackground(true);
  };
  let callsThisRun = 0;
  /** Slice calls in flight, by slice: the fallback path cancels their scopes. */
  const running = new Map<number, CancellationScope>();

  // ── progress ────────────────────────────────────────────────────────────────────────────────
  const totals = () => ({
    rowsDone: state.slices.reduce((n, s) => n + s.rowsDone, 0),
    rowsUpdated: state.slices.reduce((n, s) => n + s.rowsUpdated, 0),
  });
  /** Rows this backfill walked itself (checkpoints of an earlier migration's run excluded). */
  const rowsThisBackfill = () => state.slices.reduce((n, s) => n + s.rowsDone - (s.rowsBefore ?? 0), 0);
  /** Time not paused, up to `now` (workflow time). */
  const activeMs = (now: number) => (state.activeMs ?? 0) + (state.activeSinceMs != null ? Math.max(0, now - state.activeSinceMs) : 0);
  /** Pause, failure or done: the active time so far is banked and the clock stops. */
  const stopActiveClock = () => {
    state.activeMs = activeMs(Date.now());
    state.activeSinceMs = null;
  };
  /** Rows this backfill walked per second of `elapsedMs` active time. */
  const averageRate = (elapsedMs: number) => (elapsedMs > 0 ? Math.round((rowsThisBackfill() * 1000) / elapsedMs) : null);

  function pacing(): BackfillPacing {
    const base = state.plan?.pacing ?? { batchSize: 1000, maxBatchSize: 100_000, delayMs: 0, maxRowsPerSecond: null, targetBatchMs: 100 };
    const t = state.throttle;
    return {
      batchSize: t.batchSize ?? base.batchSize,
      maxBatchSize: t.batchSize ?? base.maxBatchSize,
      delayMs: t.delayMs ?? base.delayMs,
      // The lower of the backfill's own limit (a person's throttle, else the window's pace while a
      // window is open, else the spec's) and its share of the server's budget.
      maxRowsPerSecond: effectiveRate(t.maxRowsPerSecond === undefined ? windowPace(base.maxRowsPerSecond) : t.maxRowsPerSecond || null, state.budget?.notice?.maxRowsPerSecond ?? null),
      targetBatchMs: base.targetBatchMs,
    };
  }

  function rowsPerSecond(): number | null {
    const samples = state.rateSamples;
    if (samples.length < 2) return null;
    const [t0, r0] = samples[0];
    const [t1, r1] = samples[samples.length - 1];
    return t1 > t0 ? Math.round(((r1 - r0) * 1000) / (t1 - t0)) : null;
  }

  function progress(): BackfillProgress {
    const { rowsDone, rowsUpdated } = totals();
    const p = pacing();
    const estimate = state.plan?.estimatedTotal ?? null;
    const estimatedTotal = estimate === null ? null : Math.max(estimate, rowsDone);
    // Paused: nothing moves, so 0 rows/s and no ETA (not the rate from before the pause).
    const rate = outcome ? null : state.paused || !windowAllows() ? 0 : rowsPerSecond();
    const elapsedMs = activeMs(Date.now());
    const lastSample = state.rateSamples[state.rateSamples.length - 1];
    const slowedBy = state.paused ? null : (state.slices.find((s) => s.state === 'running' && s.slowedBy)?.slowedBy ?? null);
    return {
      revision: input.revision,
      table: input.spec?.table ?? '',
      state: outcome ?? (state.paused && running.size === 0 ? 'paused' : 'running'),
      rowsDone,
      rowsUpdated,
      estimatedTotal,
      rowsPerSecond: rate,
      etaSeconds: rate && estimatedTotal !== null ? Math.max(0, Math.round((estimatedTotal - rowsDone) / rate)) : null,
      paused: state.paused && !outcome,
      // When rowsDone and the rate were last measured (workflow time): a reader with a real clock
      // counts the ETA down from here between measurements.
      asOfMs: lastSample ? lastSample[0] : null,
      elapsedSeconds: Math.round(elapsedMs / 1000),
      averageRowsPerSecond: averageRate(elapsedMs),
      slowedBy,
      // The largest tuned size among the slices (they tune independently).
      batchSize: Math.min(p.maxBatchSize, state.slices.length ? Math.max(...state.slices.map((s) => s.batchSize)) : p.batchSize),
      delayMs: p.delayMs,
      maxRowsPerSecond: p.maxRowsPerSecond,
      slices: state.slices.map((s) => ({ ...s })),
      key: state.plan?.key.columns,
      keySource: state.plan?.key.source,
      warnings: state.plan?.warnings ?? [],
      lastSignal: state.lastSignal,
      waiting: waiting ?? slotWaiting() ?? windowWaitingText(),
      error,
      runs: state.runs,
      budget: state.budget?.notice ?? null,
      window: windowStatus(),
    };
  }

  function sample(): void {
    const now = Date.now();
    state.rateSamples.push([now, rowsThisBackfill()]);
    // Keep the window, plus the newest sample before it as its left edge.
    while (state.rateSamples.length > 2 && state.rateSamples[1][0] <= now - RATE_WINDOW_MS) state.rateSamples.shift();
  }

  function publishState(): void {
    const value = outcome ?? (state.paused ? 'paused' : 'backfilling');
    upsertSearchAttributes([
      { key: PhasegateDatabase, value: input.database },
      { key: PhasegateState, value },
    ]);
  }

  /** Progress to the parent: at most every progressIntervalMs, and always on state changes. */
  async function report(force: boolean): Promise<void> {
    if (!input.parentWorkflowId) return;
    const now = Date.now();
    if (!force && now - state.lastReportMs < progressIntervalMs) return;
    state.lastReportMs = now;
    // A parent that already closed cannot be told; the backfill itself carries on.
    await getExternalWorkflowHandle(input.parentWorkflowId)
      .signal(backfillProgressSignal, progress())
      .catch(() => undefined);
  }
  const reportInBackground = (force: boolean) => void report(force).catch(() => undefined);

  // ── server budget ──
  /** May run: no budget, or the budget gave this backfill a slot. */
  const admitted = () => !state.budget?.server || state.budget.notice?.admitted === true;
  function slotWaiting(): string | null {
    const b = state.budget;
    if (outcome || !b?.server || admitted()) return null;
    return waitingForSlot(b.notice ?? { server: b.server, running: 0, ahead: 0 });
  }
  setHandler(budgetShareSignal, (notice: BudgetNotice) => {
    if (outcome || !useBudget || !notice || typeof notice !== 'object') return;
    // The budget may answer before the join activity has returned.
    if (!state.budget) state.budget = { server: notice.server, leaseMs: 60_000, notice: null };
    const before = state.budget.notice;
    state.budget.notice = notice;
    // A new share or a lost slot: running slices stop after their batch and restart with it.
    if (before && (before.maxRowsPerSecond !== notice.maxRowsPerSecond || (before.admitted && !notice.admitted))) interrupt();
    if ((before?.admitted ?? false) !== notice.admitted) reportInBackground(true);
  });
  async function joinBudget(): Promise<void> {
    const joined = await joinThrottleBudget({ database: input.database, workflowId: info.workflowId, holding: state.budget?.notice?.admitted === true });
    state.budget = { notice: state.budget?.notice ?? null, server: joined?.server ?? null, leaseMs: joined?.leaseMs ?? 60_000 };
  }
  /** Re-joins every lease so the budget knows this backfill lives (and finds it again after a restart). */
  async function keepLease(): Promise<void> {
    while (!outcome && state.budget?.server) {
      await sleep(state.budget.leaseMs);
      if (outcome) return;
      await joinBudget().catch(() => undefined);
    }
  }
  async function leaveBudget(): Promise<void> {
    if (!useBudget || !state.budget?.server) return;
    await CancellationScope.nonCancellable(() => leaveThrottleBudget({ server: state.budget!.server!, workflowId: info.workflowId })).catch(() => undefined);
  }

  // ── maintenance window (spec.window) ──
  // The window is input (the plan's), the opening is computed from workflow time: deterministic.
  const windowRule = input.spec?.window && input.window ? { ...input.spec.window, window: input.window } : null;
  let opening: WindowOpening | null = windowRule ? windowAt(windowRule.window, Date.now()) : null;
  const inWindow = () => opening?.open === true;
  /** Slices may run: no window rule, allowed outside windows, or a window is open. */
  const windowAllows = () => !windowRule || (windowRule.outside ?? 'run') === 'run' || inWindow();
  /** Inside an open window the rule's pace replaces the spec's (null: no limit). */
  const windowPace = (spec: number | null) => (windowRule && inWindow() && windowRule.maxRowsPerSecond !== undefined ? windowRule.maxRowsPerSecond : spec);
  function windowStatus(): BackfillWindowStatus | null {
    if (!windowRule) return null;
    const { cron, timezone, duration } = windowRule.window;
    return {
      cron,
      timezone,
      duration,
      open: inWindow(),
      opensAt: opening?.opensAt ?? null,
      closesAt: opening?.closesAt ?? null,
      ...(windowRule.maxRowsPerSecond !== undefined ? { insideMaxRowsPerSecond: windowRule.maxRowsPerSecond } : {}),
      outside: windowRule.outside ?? 'run',
    };
  }
  function windowWaitingText(): string | null {
    if (outcome || windowAllows() || !windowRule) return null;
    if (!opening) return `maintenance window ${windowRule.window.cron} (${windowRule.window.timezone}) never opens again`;
    return windowWaiting(windowRule.window, opening.opensAt, Date.now());
  }
  /**
   * A durable timer to each opening and closing: running slices stop after their batch and
   * restart with the new pace, or (outside: 'wait') stay stopped until the next opening.
   */
  async function windowClock(): Promise<void> {
    while (!outcome && windowRule && opening) {
      const wasOpen = opening.open;
      await sleep(Math.max(1, (wasOpen ? opening.closesAt : opening.opensAt) - Date.now()));
      if (outcome) return;
      opening = windowAt(windowRule.window, Date.now());
      if (inWindow() !== wasOpen) {
        interrupt();
        reportInBackground(true);
      }
    }
  }

  // ── control ────────────────────────────────────────────────────────────────────────────────
  let stopWritten = state.epoch;
  /** Asks running slices to stop after their current batch. */
  const interrupt = () => {
    state.epoch++;
  };

  setHandler(backfillStatusQuery, progress);
  setHandler(pauseSignal, () => {
    if (outcome) return void (state.lastSignal = `pause ignored: the backfill is ${outcome}`);
    if (state.paused) return void (state.lastSignal = 'pause ignored: already paused');
    state.paused = true;
    state.lastSignal = 'paused';
    stopActiveClock();
    interrupt();
    publishState();
    reportInBackground(true);
  });
  setHandler(resumeSignal, () => {
    if (outcome) return void (state.lastSignal = `resume ignored: the backfill is ${outcome}`);
    if (!state.paused) return void (state.lastSignal = 'resume ignored: not paused');
    state.paused = false;
    state.lastSignal = 'resumed';
    const now = Date.now();
    state.activeSinceMs = now;
    // The rate window restarts here, from the exact position the stopped slices committed. (A
    // resume before the pause took effect left the slices running: their samples stay valid.)
    if (running.size === 0) state.rateSamples = [[now, rowsThisBackfill()]];
    publishState();
    reportInBackground(true);
  });
  setHandler(throttleSignal, (change: ThrottleInput) => {
    if (outcome) return void (state.lastSignal = `throttle ignored: the backfill is ${outcome}`);
    const problem = throttleProblem(change);
    if (problem) return void (state.lastSignal = `throttle ignored: ${problem}`);
    state.throttle = { ...state.throttle, ...definedFields(change) };
    // A throttled batch size is where each slice restarts, and the most adaptive sizing may reach.
    if (change.batchSize !== undefined) for (const s of state.slices) s.batchSize = change.batchSize;
    state.lastSignal = `throttle applied: ${JSON.stringify(definedFields(change))}`;
    interrupt();
    reportInBackground(true);
  });

  /**
   * Writes each new stop epoch to the checkpoint rows. If that fails (database unreachable), the
   * running calls are cancelled instead; they stop at their next heartbeat.
   */
  async function stopController(): Promise<void> {
    for (;;) {
      await condition(() => state.epoch > stopWritten && state.plan !== null);
      const epoch = state.epoch;
      try {
        await stopBackfillSlices({ database: input.database, backfillId: state.backfillId, epoch });
      } catch (err) {
        if (isCancellation(err)) throw err;
        for (const scope of running.values()) scope.cancel();
      }
      stopWritten = epoch;
    }
  }

  // Cancelling the backfill (e.g. its migration was cancelled) stops the slices within a batch too.
  CancellationScope.current().cancelRequested.catch(() => {
    if (!state.plan) return;
    state.epoch++;
    void CancellationScope.nonCancellable(() =>
      stopBackfillSlices({ database: input.database, backfillId: state.backfillId, epoch: state.epoch }),
    ).catch(() => undefined);
  });

  // ── slices ─────────────────────────────────────────────────────────────────────────────────
  const continueAsNewDue = () => callsThisRun >= maxCallsPerRun || workflowInfo().continueAsNewSuggested;
  let failure: unknown = null;

  function sliceInput(s: SliceState): BackfillSliceInput {
    const p = pacing();
    const active = Math.max(1, state.slices.filter((x) => x.state !== 'done').length);
    return {
      database: input.database,
      backfillId: state.backfillId,
      spec: input.spec,
      key: state.plan!.key,
      slice: s.slice,
      range: { from: s.from, to: s.to },
      lastKey: s.lastKey,
      rowsDone: s.rowsDone,
      rowsUpdated: s.rowsUpdated,
      // The rate limit is the whole backfill's: each running slice gets its share.
      // Adaptive slices start where their last call left off; fixed-size ones at the set size.
      pacing: {
        ...p,
        batchSize: p.targetBatchMs > 0 ? Math.min(s.batchSize, p.maxBatchSize) : p.batchSize,
        maxRowsPerSecond: p.maxRowsPerSecond ? p.maxRowsPerSecond / active : null,
      },
      epoch: state.epoch,
      maxCallMs: sliceCallMs,
      ...(input.maxReplicationLagMs !== undefined ? { maxReplicationLagMs: input.maxReplicationLagMs } : {}),
    };
  }

  function apply(s: SliceState, result: BackfillSliceResult): void {
    // The first call of a slice that resumes an earlier migration's checkpoint: those rows are not ours.
    // (A slice this workflow already counted rows for, in state from an older run, keeps them all.)
    if (s.rowsBefore === undefined) s.rowsBefore = s.rowsDone > 0 ? 0 : Math.max(0, result.rowsDone - result.rowsThisCall);
    s.lastKey = result.lastKey;
    s.rowsDone = result.rowsDone;
    s.rowsUpdated = result.rowsUpdated;
    s.batchSize = result.batchSize;
    s.slowedBy = result.slowedBy;
    if (result.done) s.state = 'done';
  }

  /** After calls that ended without a result, status catches up from the checkpoint rows. */
  async function refreshFromCheckpoints(): Promise<void> {
    const rows = await readBackfillProgress({ database: input.database, backfillId: state.backfillId });
    for (const row of rows) {
      const s = state.slices[row.slice];
      if (!s) continue;
      s.lastKey = row.lastKey;
      s.rowsDone = row.rowsDone;
      s.rowsUpdated = row.rowsUpdated;
      if (row.done) s.state = 'done';
    }
  }
  let stale = false;

  async function runSlice(s: SliceState): Promise<void> {
    while (s.state !== 'done' && !state.paused && admitted() && windowAllows() && failure === null && !continueAsNewDue()) {
      s.state = 'running';
      const scope = new CancellationScope();
      running.set(s.slice, scope);
      try {
        const result = await retryTransient(() => scope.run(() => backfillSlice(sliceInput(s))), setWaiting);
        callsThisRun++;
        apply(s, result);
        sample();
        reportInBackground(result.done);
      } catch (err) {
        // Our own fallback cancel (pause/throttle while the stop could not be written): the loop
        // decides what next. Anything else fails the backfill once the other slices have stopped.
        if (isCancellation(err) && !CancellationScope.current().consideredCancelled) {
          stale = true;
          continue;
        }
        if (CancellationScope.current().consideredCancelled) throw err;
        failure = err;
        interrupt();
      } finally {
        running.delete(s.slice);
        if (s.state === 'running') s.state = state.paused ? 'paused' : 'pending';
      }
    }
    if (s.state === 'running') s.state = state.paused ? 'paused' : 'pending';
  }

  /** Runs every unfinished slice; returns when all are done, paused, failed, or due to continue as new. */
  async function runSlices(): Promise<void> {
    const settled = await Promise.allSettled(state.slices.filter((s) => s.state !== 'done').map(runSlice));
    // allSettled, not all: every activity has stopped before the workflow moves on or fails.
    const rejected = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (rejected) throw rejected.reason;
    if (failure !== null) throw failure;
  }

  // ── main ───────────────────────────────────────────────────────────────────────────────────
  if (typeof input.database !== 'string' || input.database === '' || !input.spec || typeof input.spec !== 'object') {
    throw ApplicationFailure.nonRetryable('backfill input needs { database, revision, spec }', 'InvalidInput');
  }
  if (input.spec.window && !input.window) {
    throw ApplicationFailure.nonRetryable(
      'backfill.window paces the backfill by a maintenance window, but the input has no window; pass window { cron, timezone, duration, durationMs } (migrate passes its plan\'s) or remove spec.window',
      'InvalidInput',
    );
  }
  publishState();
  let next: 'finish' | 'continue-as-new';
  try {
    if (!state.plan) {
      state.plan = await retryTransient(() => prepareBackfill({ database: input.database, backfillId: state.backfillId, spec: input.spec }), setWaiting);
      state.slices = state.plan.slices.map((range, slice) => ({
        slice,
        from: range.from,
        to: range.to,
        lastKey: null,
        rowsDone: 0,
        rowsUpdated: 0,
        state: 'pending',
        // A throttle sent before the backfill started sets where every slice begins.
        batchSize: state.throttle.batchSize ?? state.plan!.pacing.batchSize,
        slowedBy: null,
      }));
      sample();
    }
    void stopController().catch(() => undefined);
    // A database without a server (known from the first run's join, carried in state) has no
    // budget to re-join: later runs skip the activity. With one, each run re-joins at once.
    if (useBudget && state.budget?.server !== null) {
      await joinBudget();
      void keepLease().catch(() => undefined);
    }
    if (windowRule) void windowClock().catch(() => undefined);
    await report(true);

    for (;;) {
      if (stale) {
        stale = false;
        await refreshFromCheckpoints().catch(() => undefined);
      }
      if (state.slices.every((s) => s.state === 'done')) {
        next = 'finish';
        break;
      }
      if (continueAsNewDue()) {
        // Every slice call has returned (runSlices settled): nothing in flight crosses the boundary.
        next = 'continue-as-new';
        break;
      }
      if (state.paused) {
        for (const s of state.slices) if (s.state !== 'done') s.state = 'paused';
        sample();
        await report(true);
        await condition(() => !state.paused || continueAsNewDue());
        continue;
      }
      if (!admitted()) {
        // Waiting for a slot on the server (or for the budget's first answer): visible in status.
        for (const s of state.slices) if (s.state !== 'done') s.state = 'pending';
        await report(true);
        await condition(() => admitted() || state.paused || continueAsNewDue());
        await report(true);
        continue;
      }
      if (!windowAllows()) {
        // outside: 'wait' and no window open: visible in status ("waiting for window …, opens in …").
        if (windowRule && !opening) {
          throw ApplicationFailure.nonRetryable(`maintenance window ${windowRule.window.cron} (${windowRule.window.timezone}) never opens again; fix the window and retry`, 'WindowNeverOpens');
        }
        for (const s of state.slices) if (s.state !== 'done') s.state = 'pending';
        // Waiting is not active time, and the rate window restarts at the opening.
        stopActiveClock();
        await report(true);
        await condition(() => windowAllows() || state.paused || continueAsNewDue());
        if (windowAllows() && !state.paused) {
          state.activeSinceMs = Date.now();
          state.rateSamples = [[Date.now(), rowsThisBackfill()]];
        }
        await report(true);
        continue;
      }
      await runSlices();
    }
    if (next === 'finish') await retryTransient(() => finishBackfill({ database: input.database, backfillId: state.backfillId }), setWaiting);
  } catch (err) {
    outcome = 'failed';
    error = isCancellation(err) ? 'cancelled' : failureMessage(err);
    stopActiveClock();
    await CancellationScope.nonCancellable(async () => {
      publishState();
      if (state.plan) await refreshFromCheckpoints().catch(() => undefined);
      await report(true);
      await leaveBudget();
    });
    throw err;
  }

  if (next === 'continue-as-new') return continueAsNew<typeof backfill>({ ...input, state });
  outcome = 'done';
  stopActiveClock();
  publishState();
  await leaveBudget();
  await report(true);
  const { rowsDone, rowsUpdated } = totals();
  return {
    revision: input.revision,
    table: state.plan.table,
    rowsDone,
    rowsUpdated,
    slices: state.slices.length,
    durationMs: Date.now() - state.startedAtMs,
    activeMs: state.activeMs,
    averageRowsPerSecond: averageRate(state.activeMs!),
    runs: state.runs,
    warnings: state.plan.warnings,
  };
}

function definedFields(change: ThrottleInput): ThrottleInput {
  const out: ThrottleInput = {};
  if (change.batchSize !== undefined) out.batchSize = change.batchSize;
  if (change.delayMs !== undefined) out.delayMs = change.delayMs;
  if (change.maxRowsPerSecond !== undefined) out.maxRowsPerSecond = change.maxRowsPerSecond;
  return out;
}

/** A throttle signal cannot be refused before it enters history; a bad one is recorded and ignored. */
function throttleProblem(change: ThrottleInput): string | null {
  if (!change || typeof change !== 'object') return 'expected {batchSize?, delayMs?, maxRowsPerSecond?}';
  const known = ['batchSize', 'delayMs', 'maxRowsPerSecond'];
  const unknown = Object.keys(change).filter((k) => !known.includes(k));
  if (unknown.length) return `unknown field(s) ${unknown.join(', ')}; expected batchSize, delayMs, maxRowsPerSecond`;
  if (change.batchSize !== undefined && !(Number.isInteger(change.batchSize) && change.batchSize >= 10 && change.batchSize <= 1_000_000)) {
    return 'batchSize must be a whole number from 10 to 1000000';
  }
  if (change.delayMs !== undefined && !(Number.isInteger(change.delayMs) && change.delayMs >= 0 && change.delayMs <= 600_000)) {
    return 'delayMs must be a whole number of milliseconds from 0 to 600000';
  }
  if (change.maxRowsPerSecond !== undefined && !(typeof change.maxRowsPerSecond === 'number' && change.maxRowsPerSecond >= 0)) {
    return 'maxRowsPerSecond must be a number ≥ 0 (0 lifts the limit)';
  }
  if (Object.keys(change).length === 0) return 'nothing to change';
  return null;
}

