/**
 * `migrate`: plans a migration once (the plan is recorded in history, so replays never read files),
 * then walks its steps: wait at a step's gate, apply the revision, run its backfill, verify its
 * check. A rejection, a failure or a cancellation rolls back what this run applied, in reverse.
 */
import {
  ApplicationFailure,
  CancellationScope,
  condition,
  isCancellation,
  log,
  proxyActivities,
  setHandler,
  sleep,
  upsertMemo,
  upsertSearchAttributes,
  allHandlersFinished,
  startChild,
  workflowInfo,
  type ChildWorkflowHandle,
} from '@temporalio/workflow';
import type { Activities, ApplyRevisionResult, GateDecision } from '../activities';
import type { LockRetrySettings, Plan, PlanStep } from '../lib/plan';
import { backfill } from './backfill';
import { effectiveApprovers, ignoredReason, logEntry, type GateSignal } from './gates';
import {
  approveSignal,
  backfillProgressSignal,
  backfillWorkflowId,
  pauseSignal,
  rejectSignal,
  resumeSignal,
  retrySignal,
  statusQuery,
  stepStatus,
  throttleSignal,
  type MigrateInput,
  type MigrateResult,
  type MigrateState,
  type MigrateStatus,
  type PendingGate,
  type StepStatus,
} from './messages';
import { PhasegateDatabase, PhasegatePhase, PhasegateState } from './search-attributes';

const { planMigration, recordDecision, runCheck } = proxyActivities<Activities>({
  startToCloseTimeout: '2 minutes',
  retry: { initialInterval: '1s', maximumInterval: '30s', maximumAttempts: 10 },
});

/**
 * Applying one revision may run a long VALIDATE or CONCURRENTLY build, so the activity heartbeats
 * and the start-to-close timeout is generous; lock timeouts come back as results and are retried
 * here with backoff, other transient errors by the retry policy.
 */
const { applyRevision } = proxyActivities<Activities>({
  startToCloseTimeout: '12 hours',
  // A worker that dies mid-step is noticed within this long; the step then resumes elsewhere.
  heartbeatTimeout: '20 seconds',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 20 },
});

const MAX_IGNORED_SIGNALS = 50;

/** Thrown inside the step loop when a rejection (or an expiry) asks for a rollback. */
class RollbackRequested extends Error {}

export async function migrate(input: MigrateInput): Promise<MigrateResult> {
  const status: MigrateStatus = {
    database: input.database,
    target: input.target ?? 'head',
    direction: input.direction ?? 'upgrade',
    state: 'planning',
    revision: null,
    phase: null,
    steps: [],
    waiting: null,
    gate: null,
    approvals: [],
    ignoredSignals: [],
    check: null,
    backfill: null,
    error: null,
  };
  const now = () => new Date().toISOString();
  let gateDecision: { decision: 'approve' | 'reject' | 'expire'; by: string; reason: string | null } | null = null;
  let retryRequested = false;
  let abandonRequested: { by: string; reason: string | null } | null = null;

  const ignore = (signal: string, reason: string) => {
    status.ignoredSignals.push({ at: now(), signal, reason });
    if (status.ignoredSignals.length > MAX_IGNORED_SIGNALS) status.ignoredSignals.shift();
  };

  const audit = (entry: Omit<GateDecision, 'workflowId' | 'runId' | 'database'>) =>
    recordDecision({ ...entry, workflowId: workflowInfo().workflowId, runId: workflowInfo().runId, database: status.database });

  // Handlers are set before the first await, so no early signal or query is lost.
  setHandler(statusQuery, () => status);
  const onGateSignal = async (signal: GateSignal) => {
    const reason = ignoredReason(signal, status.gate);
    // A reject while a check has failed abandons the change: roll back what this run applied.
    if (reason !== null && signal.decision === 'reject' && status.state === 'failed-check' && signal.by) {
      abandonRequested = { by: signal.by, reason: signal.reason ?? null };
    }
    const entry = logEntry(signal, status.gate, now(), reason);
    status.approvals.push(entry);
    if (reason === null) {
      gateDecision = { decision: signal.decision, by: signal.by, reason: entry.comment };
    }
    await audit({ ...entry, decision: entry.decision });
  };
  setHandler(approveSignal, (args) => onGateSignal({ decision: 'approve', ...(args ?? { by: '' }) }));
  setHandler(rejectSignal, (args) => onGateSignal({ decision: 'reject', ...(args ?? { by: '' }) }));
  setHandler(retrySignal, () => {
    if (status.state !== 'failed-check') ignore('retry', `retry re-runs a failed check; the workflow is ${status.state}`);
    else retryRequested = true;
  });
  // Backfill control goes to the running backfill child; with none running it is ignored, visibly.
  let backfillChild: ChildWorkflowHandle<typeof backfill> | null = null;
  setHandler(pauseSignal, async () => {
    if (!backfillChild) ignore('pause', `no backfill is running (state ${status.state}); pause applies to a running backfill`);
    else await backfillChild.signal(pauseSignal, {});
  });
  setHandler(resumeSignal, async () => {
    if (!backfillChild) ignore('resume', `no backfill is running (state ${status.state}); resume applies to a running backfill`);
    else await backfillChild.signal(resumeSignal, {});
  });
  setHandler(throttleSignal, async (throttle) => {
    if (!backfillChild) ignore('throttle', `no backfill is running (state ${status.state})`);
    else await backfillChild.signal(throttleSignal, throttle ?? {});
  });
  setHandler(backfillProgressSignal, (progress) => {
    status.backfill = progress;
    if (status.state === 'backfilling' && progress.state === 'paused') setState('paused');
    else if (status.state === 'paused' && progress.state === 'running') setState('backfilling');
  });

  const setState = (state: MigrateState) => {
    status.state = state;
    upsertSearchAttributes([
      { key: PhasegateDatabase, value: status.database },
      { key: PhasegateState, value: state },
      ...(status.phase ? [{ key: PhasegatePhase, value: status.phase }] : []),
    ]);
  };
  setState('planning');

  if (typeof input.database !== 'string' || input.database.length === 0) {
    status.error = 'input.database is required: the alias of a database configured on the workers';
    setState('failed');
    throw ApplicationFailure.nonRetryable(status.error, 'InvalidInput');
  }

  /**
   * A step that could not get its lock within lock_timeout committed nothing; it is tried again
   * after a jittered, exponentially growing pause (a durable timer), so it never queues long enough
   * to stall the application's queries behind it. Status says what it waits for, and who holds it.
   */
  async function applyWithLockRetry(step: PlanStep, retry: LockRetrySettings, stepState: StepStatus): Promise<ApplyRevisionResult> {
    for (let attempt = 1; ; attempt++) {
      stepState.attempts = attempt;
      const result = await applyRevision({ database: status.database, step });
      if (result.outcome !== 'lock-timeout') {
        status.waiting = null;
        return result;
      }
      if (attempt >= retry.maxAttempts) {
        throw ApplicationFailure.nonRetryable(
          `revision ${step.revision}: gave up after ${attempt} attempts, each ${result.waiting ?? 'waiting for a lock'}. ` +
            'End the blocking session or retry at a quieter time (start the migration again)',
          'LockTimeout',
          result.lockWait ?? null,
        );
      }
      const backoff = Math.min(retry.maxDelayMs, retry.initialDelayMs * 2 ** (attempt - 1));
      const delayMs = Math.round(backoff / 2 + Math.random() * (backoff / 2));
      stepState.state = 'waiting-for-lock';
      status.waiting = `${result.waiting ?? 'waiting for a lock'}; attempt ${attempt} of ${retry.maxAttempts} timed out, next in ${(delayMs / 1000).toFixed(1)} s`;
      await sleep(delayMs);
      stepState.state = 'applying';
    }
  }

  /** Waits at a step's gate until an accepted approval; a rejection rolls back or holds. */
  async function passGate(plan: Plan, step: PlanStep): Promise<void> {
    const gate = step.gate!;
    const since = Date.now();
    const pending: PendingGate = {
      name: gate.name,
      revision: step.revision,
      prompt: gate.prompt,
      onReject: gate.onReject ?? 'rollback',
      approvers: effectiveApprovers(step, plan.approvers),
      since: new Date(since).toISOString(),
      remindAt: gate.remindAfterMs ? new Date(since + gate.remindAfterMs).toISOString() : null,
      expiresAt: gate.expireAfterMs ? new Date(since + gate.expireAfterMs).toISOString() : null,
      reminded: false,
      heldBy: null,
    };
    gateDecision = null;
    status.gate = pending;
    setState('awaiting-approval');
    if (input.autoApprove) {
      const entry = logEntry({ decision: 'approve', by: 'autoApprove', comment: 'autoApprove input' }, pending, now(), null);
      status.approvals.push(entry);
      await audit(entry);
      status.gate = null;
      return;
    }
    for (;;) {
      const deadlines = [
        pending.reminded ? undefined : gate.remindAfterMs && since + gate.remindAfterMs,
        gate.expireAfterMs && since + gate.expireAfterMs,
      ].filter((d): d is number => typeof d === 'number');
      const next = deadlines.length ? Math.min(...deadlines) : undefined;
      const decided = next === undefined ? (await condition(() => gateDecision !== null), true) : await condition(() => gateDecision !== null, Math.max(1, next - Date.now()));
      if (!decided) {
        if (gate.expireAfterMs && Date.now() >= since + gate.expireAfterMs) {
          const entry = logEntry({ decision: 'reject', by: 'phasegate', reason: `gate expired after ${gate.expireAfterMs / 1000} s without a decision` }, pending, now(), null);
          entry.decision = 'expire';
          status.approvals.push(entry);
          await audit(entry);
          gateDecision = { decision: 'expire', by: 'phasegate', reason: entry.comment };
        } else {
          pending.reminded = true;
          log.warn(`gate "${gate.name}" before ${step.revision} still waits for a decision (since ${pending.since}): ${gate.prompt}`, {
            workflowId: workflowInfo().workflowId,
          });
          continue;
        }
      }
      const decision = gateDecision!;
      gateDecision = null;
      if (decision.decision === 'approve') {
        status.gate = null;
        return;
      }
      if (pending.onReject === 'hold') {
        pending.heldBy = { by: decision.by, reason: decision.reason, at: now() };
        continue;
      }
      status.gate = null;
      throw new RollbackRequested(`gate "${gate.name}" ${decision.decision === 'expire' ? 'expired' : `rejected by ${decision.by}`}${decision.reason ? `: ${decision.reason}` : ''}`);
    }
  }

  /**
   * Runs a step's backfill as a child workflow (id derived from ours, so a replayed or retried
   * parent finds the same child); pause/resume/throttle are forwarded to it while it runs.
   */
  async function runBackfill(step: PlanStep): Promise<void> {
    setState('backfilling');
    const parentWorkflowId = workflowInfo().workflowId;
    const child = await startChild(backfill, {
      workflowId: backfillWorkflowId(parentWorkflowId, step.revision),
      args: [{ database: status.database, revision: step.revision, spec: step.backfill!, parentWorkflowId }],
      // If the parent ends abruptly (terminated), the backfill is asked to stop cleanly, not killed.
      parentClosePolicy: 'REQUEST_CANCEL',
    });
    backfillChild = child;
    try {
      const result = await child.result();
      if (status.backfill) {
        status.backfill = { ...status.backfill, state: 'done', rowsDone: result.rowsDone, rowsUpdated: result.rowsUpdated, etaSeconds: 0 };
      }
    } finally {
      backfillChild = null;
    }
  }

  /** Runs a step's check until it passes; a failure waits for `retry` (or a reject to abandon). */
  async function verify(step: PlanStep): Promise<void> {
    const check = step.check!;
    for (let attempts = 1; ; attempts++) {
      setState('checking');
      const result = await runCheck({ database: status.database, revision: step.revision, check });
      status.check = { revision: step.revision, ...result, attempts };
      if (result.passed) return;
      retryRequested = false;
      setState('failed-check');
      await condition(() => retryRequested || abandonRequested !== null);
      if (abandonRequested) {
        const { by, reason } = abandonRequested;
        throw new RollbackRequested(`check "${check.name}" failed and ${by} rejected the change${reason ? `: ${reason}` : ''}`);
      }
    }
  }

  /** Undoes the applied steps, newest first; runs to the end even if the workflow is cancelled. */
  async function rollback(plan: Plan, applied: PlanStep[], why: string): Promise<string[]> {
    status.error = why;
    setState('rolling-back');
    const undone: string[] = [];
    await CancellationScope.nonCancellable(async () => {
      for (const step of [...applied].reverse()) {
        const index = plan.steps.indexOf(step);
        if (!step.rollback) {
          throw ApplicationFailure.nonRetryable(
            `cannot roll back ${step.revision}: ${step.rollbackError ?? 'no downgrade'}; the database stays at ${step.headsAfter.join(', ')}`,
            'RollbackImpossible',
          );
        }
        status.revision = step.revision;
        await applyWithLockRetry(step.rollback, plan.lockRetry, status.steps[index]);
        status.steps[index].state = 'rolled-back';
        undone.push(step.revision);
      }
    });
    return undone;
  }

  const applied: PlanStep[] = [];
  let plan: Plan | undefined;
  try {
    plan = await planMigration({ database: status.database, target: status.target, direction: status.direction });
    status.steps = plan.steps.map(stepStatus);
    upsertMemo({
      plan: {
        direction: plan.direction,
        target: plan.target,
        from: plan.currentHeads,
        steps: plan.steps.map((s) => `${s.revision}${s.gate ? ' [gate]' : ''}${s.backfill ? ' [backfill]' : ''}${s.check ? ' [check]' : ''}: ${s.message}`),
      },
    });
    for (const [index, step] of plan.steps.entries()) {
      status.revision = step.revision;
      status.phase = step.phase ?? null;
      if (step.gate) await passGate(plan, step);
      setState('applying');
      status.steps[index].state = 'applying';
      const result = await applyWithLockRetry(step, plan.lockRetry, status.steps[index]);
      status.steps[index].state = result.outcome === 'already-applied' ? 'already-applied' : 'applied';
      status.steps[index].durationMs = result.durationMs;
      applied.push(step);
      if (step.backfill) await runBackfill(step);
      if (step.check) await verify(step);
    }
    setState('done');
    await condition(allHandlersFinished);
    const last = plan.steps[plan.steps.length - 1];
    return {
      database: status.database,
      direction: status.direction,
      outcome: 'done',
      applied: applied.map((s) => s.revision),
      rolledBack: [],
      headsAfter: last ? last.headsAfter : plan.currentHeads,
    };
  } catch (err) {
    status.waiting = null;
    status.gate = null;
    const current = status.steps.find((s) => s.state === 'applying' || s.state === 'waiting-for-lock');
    if (current) current.state = 'failed';
    if (err instanceof RollbackRequested && plan) {
      const rolledBack = await rollback(plan, applied, err.message);
      setState('rolled-back');
      await condition(allHandlersFinished);
      return {
        database: status.database,
        direction: status.direction,
        outcome: 'rolled-back',
        applied: applied.map((s) => s.revision),
        rolledBack,
        headsAfter: applied[0]?.headsBefore ?? plan.currentHeads,
      };
    }
    const message = isCancellation(err) ? 'cancelled' : innermostMessage(err);
    if (plan && applied.length > 0) {
      // A cancelled or failed migration leaves the database where it started, not half-way.
      await rollback(plan, applied, `${message}; rolling back the ${applied.length} step(s) this run applied`);
    }
    status.error = applied.length > 0 ? `${message} (rolled back: ${applied.map((s) => s.revision).reverse().join(', ')})` : message;
    setState('failed');
    throw err;
  }
}

/** The innermost cause of a failure chain (workflow → activity → application failure): the one that says what went wrong. */
function innermostMessage(err: unknown): string {
  let current = err as { message?: string; cause?: unknown } | undefined;
  while (current?.cause) current = current.cause as typeof current;
  return current?.message ?? String(err);
}
