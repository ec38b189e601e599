/**
 * One migration's run: its state (plain JSON, carried across continueAsNew), the step loop, the
 * failure stop, the rollback, the audit writer and the backfill control forwarder. Deterministic
 * workflow code: every I/O is an activity. The rules are in ./migrate-states.ts.
 */
import {
  ActivityCancellationType,
  ApplicationFailure,
  allHandlersFinished,
  CancellationScope,
  condition,
  ContinueAsNew,
  continueAsNew,
  getExternalWorkflowHandle,
  isCancellation,
  log,
  proxyActivities,
  setCurrentDetails,
  sleep,
  startChild,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
  type ChildWorkflowHandle,
} from '@temporalio/workflow';
import type { Activities, ApplyRevisionResult } from '../activities';
import type { Plan, PlanStep } from '../lib/plan';
import { backfill } from './backfill';
import type { migrate } from './migrate';
import { currentDetails } from './details';
import { failureMessage, failureType, isTransientFailure, QUICK_RETRY, retryTransient } from './database-retry';
import { effectiveApprovers, gateMismatch, ignoredReason, logEntry } from './gates';
import { payloadProblem } from './input';
import { whileAtGate } from './metrics';
import {
  backfillWorkflowId,
  initialStatus,
  pauseSignal,
  resumeSignal,
  stepStatus,
  throttleSignal,
  type AbandonInput,
  type AppliedStep,
  type ApproveInput,
  type AuditDecision,
  type AuditEntry,
  type BackfillProgress,
  type ControlAnswer,
  type ControlVerb,
  type FailureStatus,
  type MigrateCarry,
  type MigrateInput,
  type MigrateResult,
  type MigrateState,
  type MigrateStatus,
  type PendingGate,
  type RejectInput,
  type RollbackInput,
  type SkipSoakInput,
  type StepStatus,
  type ThrottleInput,
} from './messages';
import { noopReason, stateProblem, TERMINAL_STATES } from './migrate-states';
import { PhasegateDatabase, PhasegateFleet, PhasegatePhase, PhasegateState } from './search-attributes';
import { windowAt, windowWaiting } from './window';
import { FLEET_MEMBER_SIGNAL, fleetReportKey, type FleetMemberReport } from './fleet-messages';

const { planMigration, recordDecision, acquireMigrationLease, releaseMigrationLease, stampRevision } = proxyActivities<Activities>({
  startToCloseTimeout: '2 minutes',
  retry: QUICK_RETRY,
});

/**
 * Applying a revision may run a long VALIDATE or CONCURRENTLY build. The activity heartbeats every
 * few seconds: a dead worker is noticed within the heartbeat timeout, and a cancel reaches it at
 * the next heartbeat, cancels the statement in PostgreSQL, and the workflow waits for that.
 */
const { applyRevision } = proxyActivities<Activities>({
  startToCloseTimeout: '12 hours',
  heartbeatTimeout: '10 seconds',
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  retry: QUICK_RETRY,
});

/** A check has its own statement timeout (default 10 minutes); it heartbeats while it scans. */
const { runCheck } = proxyActivities<Activities>({
  startToCloseTimeout: '1 day',
  heartbeatTimeout: '20 seconds',
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  retry: QUICK_RETRY,
});

const MAX_APPROVAL_LOG = 100;
const MAX_IGNORED_SIGNALS = 50;
const MAX_AUDIT_ERRORS = 20;

/** A person's answer to a stopped migration (failed or blocked). */
type OperatorDecision =
  | { verb: 'retry'; by: string }
  | { verb: 'rollback'; by: string; pastGates: boolean; reason: string | null }
  | { verb: 'abandon'; by: string; reason: string | null };

/** Thrown out of a phase when a person chose to roll back or abandon instead of retrying. */
class Stop extends Error {
  constructor(readonly decision: Exclude<OperatorDecision, { verb: 'retry' }> & { why: string }) {
    super(decision.why);
  }
}

/** A failure carried into this run by continue-as-new while it waited for a person: wait again, do not re-run. */
class CarriedFailure extends Error {}

/** A permanent failure the workflow itself detects (a failed check, exhausted lock retries). */
class StepFailure extends Error {
  constructor(
    readonly kind: FailureStatus['kind'],
    message: string,
    readonly type: string,
  ) {
    super(message);
  }
}

export class Migration {
  readonly status: MigrateStatus;
  private plan: Plan | null;
  private cursor: MigrateCarry['cursor'];
  private applied: AppliedStep[];
  private auditQueue: AuditEntry[];
  private gateDecision: { decision: 'approve' | 'reject' | 'expire'; by: string; reason: string | null } | null = null;
  private operatorDecision: OperatorDecision | null = null;
  /** A skipSoak accepted while soaking: the soak wait ends at the next activation. */
  private soakSkipped = false;
  private backfillChild: ChildWorkflowHandle<typeof backfill> | null = null;
  private forwardedControl = 0;
  private leaseHeld: boolean;
  /** The gate a person approved most recently in this migration: the line a rollback stops at. */
  private approvedGate: AppliedStep['behindGate'];

  constructor(
    private readonly input: MigrateInput,
    carried: MigrateCarry | undefined,
  ) {
    this.plan = carried?.plan ?? null;
    this.cursor = carried?.cursor ?? { step: 0, phase: 'gate' };
    this.applied = carried?.applied ?? [];
    this.auditQueue = carried?.auditQueue ?? [];
    this.approvedGate = carried?.approvedGate ?? null;
    this.leaseHeld = carried !== undefined;
    this.status = carried?.status ?? initialStatus(input);
    this.status.runs++;
  }

  // ── messages ───────────────────────────────────────────────────────────────────────────────

  /** Why a well-formed control message does not fit now, or null. */
  problem(verb: ControlVerb, payload: unknown): string | null {
    const backfillAhead = this.backfillChild !== null || this.plan === null || this.plan.steps.slice(this.cursor.step).some((s) => s.backfill);
    const inState = stateProblem(verb, { status: this.status, backfillAhead, appliedCount: this.applied.length });
    if (inState) return inState;
    if (verb === 'approve' || verb === 'reject') {
      const reason = ignoredReason({ decision: verb, ...(payload as ApproveInput & RejectInput) }, this.status.gate, this.gateNames());
      // A second decision that arrives before the loop acted on the first (same activation) changes nothing.
      if (reason === null && this.gateDecision) {
        return `gate "${this.status.gate!.name}" already has a decision (${this.gateDecision.decision} by ${this.gateDecision.by}) that the workflow is acting on; this ${verb} changes nothing`;
      }
      // While soaking, the next gate is not open yet: say when it opens rather than only "no gate".
      if (reason !== null && this.status.state === 'soaking' && this.status.soak) {
        const soak = this.status.soak;
        return `the migration soaks after ${soak.revision} until ${soak.until}; ${soak.nextGate ? `gate "${soak.nextGate}" opens` : `${soak.next} starts`} then (an approver may end the soak early with skipSoak)`;
      }
      return reason;
    }
    if (verb === 'skipSoak') {
      const approvers = this.soakApprovers();
      const by = (payload as SkipSoakInput).by;
      if (approvers && !approvers.includes(by)) return `"${by}" may not end this soak (approvers: ${approvers.join(', ')})`;
    }
    return null;
  }

  /** Who may end the soak: the approvers of the gate it holds closed, else the database's (anyone when neither is set). */
  private soakApprovers(): string[] | null {
    const plan = this.plan;
    const next = plan?.steps.find((s) => s.revision === this.status.soak?.next);
    if (!plan || !next) return null;
    return effectiveApprovers(next, plan.approvers);
  }

  /**
   * A well-formed approve/reject at the waiting gate from someone not on its approver list: its
   * Update passes the validator so that it enters history and is audited, and the handler refuses it.
   */
  auditsRefusal(verb: ControlVerb, payload: unknown): boolean {
    const gate = this.status.gate;
    if ((verb !== 'approve' && verb !== 'reject') || !gate?.approvers || payloadProblem(verb, payload) !== null) return false;
    const p = payload as ApproveInput;
    return gateMismatch(p.gate, gate, this.gateNames(), verb) === null && !gate.approvers.includes(p.by) && this.problem(verb, payload) !== null;
  }

  /** Every gate of the plan, by name (a decision may name the waiting one by an unambiguous prefix). */
  private gateNames(): string[] {
    return (this.plan?.steps ?? []).flatMap((s) => (s.gate ? [s.gate.name] : []));
  }

  /** Handles a control signal or Update. Never throws for a signal: what does not fit is recorded. */
  receive(verb: ControlVerb, payload: unknown, via: 'signal' | 'update'): ControlAnswer {
    const problem = payloadProblem(verb, payload) ?? this.problem(verb, payload);
    if (verb === 'approve' || verb === 'reject') {
      const decision = { decision: verb, ...((payload && typeof payload === 'object' ? payload : {}) as ApproveInput & RejectInput) };
      const entry = logEntry(decision, this.status.gate, this.now(), problem);
      this.logDecision(entry);
      if (!problem) this.gateDecision = { decision: verb, by: decision.by, reason: entry.comment };
    } else if (problem) {
      this.ignoreSignal(verb, problem);
    } else {
      const noop = noopReason(verb, this.status);
      if (noop) {
        if (via === 'signal') this.ignoreSignal(verb, noop);
        return { accepted: true, verb, state: this.status.state, message: noop };
      }
      this.accept(verb, payload as Record<string, unknown> | undefined);
    }
    if (problem) {
      // Validators already refused a bad Update (except a non-approver's decision, recorded above and
      // refused here, so it is audited); this is a signal, and it stays ignored.
      if (via === 'update') throw ApplicationFailure.create({ type: 'ControlRefused', message: problem, nonRetryable: true });
      return { accepted: true, verb, state: this.status.state, message: `ignored: ${problem}` };
    }
    return { accepted: true, verb, state: this.status.state, message: `${verb} accepted in state ${this.status.state}` };
  }

  private ignoreSignal(signal: string, reason: string): void {
    this.status.ignoredSignals.push({ at: this.now(), signal, reason });
    if (this.status.ignoredSignals.length > MAX_IGNORED_SIGNALS) this.status.ignoredSignals.shift();
  }

  /** A signal no handler has (a typo in the UI or the CLI): recorded with the names that exist. */
  onUnknownSignal(name: string, known: readonly string[]): void {
    this.ignoreSignal(name, `"${name}" is not a signal of migrate; send one of ${known.join(', ')}`);
  }

  private accept(verb: Exclude<ControlVerb, 'approve' | 'reject'>, payload: Record<string, unknown> | undefined): void {
    const control = this.status.control;
    switch (verb) {
      case 'retry':
      case 'rollback':
      case 'abandon': {
        const p = payload as unknown as RollbackInput & AbandonInput;
        this.operatorDecision =
          verb === 'retry'
            ? { verb, by: p.by }
            : verb === 'rollback'
              ? { verb, by: p.by, pastGates: p.pastGates === true, reason: p.reason ?? null }
              : { verb, by: p.by, reason: p.reason ?? null };
        const comment = verb === 'rollback' && p.pastGates ? `pastGates${p.reason ? `: ${p.reason}` : ''}` : ((p.reason ?? (payload?.comment as string | undefined)) ?? null);
        this.logDecision({
          at: this.now(),
          decision: verb,
          by: p.by,
          gate: this.status.gate?.name ?? null,
          revision: this.status.revision,
          comment,
          accepted: true,
          ignoredReason: null,
        });
        return;
      }
      case 'skipSoak': {
        const p = payload as unknown as SkipSoakInput;
        this.soakSkipped = true;
        this.logDecision({
          at: this.now(),
          decision: 'skipSoak',
          by: p.by,
          gate: this.status.soak?.nextGate ?? null,
          revision: this.status.soak?.revision ?? null,
          comment: p.comment ?? (this.status.soak ? `soak until ${this.status.soak.until} ended early` : null),
          accepted: true,
          ignoredReason: null,
        });
        return;
      }
      case 'pause':
        control.paused = true;
        break;
      case 'resume':
        control.paused = false;
        break;
      case 'throttle': {
        const t = payload as ThrottleInput;
        control.throttle = {
          ...control.throttle,
          ...(t.batchSize !== undefined ? { batchSize: t.batchSize } : {}),
          ...(t.delayMs !== undefined ? { delayMs: t.delayMs } : {}),
          ...(t.maxRowsPerSecond !== undefined ? { maxRowsPerSecond: t.maxRowsPerSecond } : {}),
        };
        break;
      }
    }
    control.version++;
  }

  onBackfillProgress(progress: BackfillProgress): void {
    this.status.backfill = progress;
    if (this.status.state === 'backfilling' && progress.state === 'paused') this.setState('paused');
    else if (this.status.state === 'paused' && progress.state === 'running') this.setState('backfilling');
    else this.showDetails();
  }

  private logDecision(logged: AuditEntry): void {
    // PostgreSQL text cannot hold NUL: an ignored decision that carried one is still stored, visibly altered.
    const clean = (v: string | null) => (v === null ? null : v.split('\u0000').join('\uFFFD'));
    const entry = { ...logged, by: clean(logged.by) ?? '', comment: clean(logged.comment), seq: ++this.status.decisions };
    this.status.approvals.push(entry);
    if (this.status.approvals.length > MAX_APPROVAL_LOG) this.status.approvals.shift();
    // The main loop's audit writer stores it; a handler never waits on the database.
    this.auditQueue.push(entry);
  }

  // ── run ────────────────────────────────────────────────────────────────────────────────────

  async run(): Promise<MigrateResult> {
    this.setState(this.status.state);
    void CancellationScope.nonCancellable(() => this.writeAudit()).catch(() => undefined);
    void this.forwardControl().catch(() => undefined);
    try {
      if (!this.leaseHeld) {
        await this.database(() => acquireMigrationLease({ database: this.status.database, workflowId: workflowInfo().workflowId }));
        this.leaseHeld = true;
      }
      if (!this.plan) await this.makePlan();
      const result = await this.steps();
      await this.finish();
      return result;
    } catch (err) {
      // Continue-as-new is not a failure: the lease, the state and the audit go on in the next run.
      if (err instanceof ContinueAsNew) throw err;
      this.status.waiting = null;
      if (isCancellation(err)) {
        // Stop safely: the statement was cancelled, the backfill stopped after its batch; keep the rest.
        this.status.gate = null;
        this.status.error = 'cancelled: nothing was rolled back; a later upgrade continues from the version table and the backfill checkpoints';
        this.setState('cancelled');
        await CancellationScope.nonCancellable(() => this.finish());
      } else {
        // Only failures before any step ran get here (bad target, lease held elsewhere): nothing changed.
        this.status.error = failureMessage(err);
        this.setState('failed');
        await this.finish().catch(() => undefined);
      }
      throw err;
    }
  }

  private async makePlan(): Promise<void> {
    const plan = await this.database(() =>
      planMigration({ database: this.status.database, target: this.status.target, direction: this.status.direction }),
    );
    this.plan = plan;
    this.status.steps = plan.steps.map(stepStatus);
    upsertMemo({
      plan: {
        direction: plan.direction,
        target: plan.target,
        from: plan.currentHeads,
        steps: plan.steps.map((s) => `${s.revision}${s.gate ? ' [gate]' : ''}${s.backfill ? ' [backfill]' : ''}${s.check ? ' [check]' : ''}: ${s.message}`),
      },
    });
  }

  private async steps(): Promise<MigrateResult> {
    const plan = this.plan!;
    while (this.cursor.step < plan.steps.length) {
      const index = this.cursor.step;
      const step = plan.steps[index];
      const stepState = this.status.steps[index];
      this.status.revision = step.revision;
      // At a step's gate the migration is still in the phase it finished: the next phase has not begun.
      const atGate = this.cursor.phase === 'gate' && step.gate !== undefined;
      this.status.phase = (atGate ? plan.steps[index - 1]?.phase : step.phase) ?? null;
      try {
        switch (this.cursor.phase) {
          case 'gate':
            if (this.status.soak) await this.soak();
            if (step.gate) await whileAtGate(this.status.database, () => this.passGate(step));
            this.cursor.phase = 'apply';
            break;
          case 'apply':
            // Outside stopOnFailure: the wait may continue as new (the cursor stays at `apply`).
            if (step.window) await this.waitForWindow(step, stepState, true);
            await this.applyStep(step, stepState);
            this.cursor.phase = 'backfill';
            break;
          case 'backfill':
            if (step.backfill) await this.stopOnFailure('backfill', step, stepState, () => this.runBackfill(step, stepState));
            this.cursor.phase = 'check';
            break;
          case 'check':
            if (step.check) await this.stopOnFailure('check', step, stepState, () => this.verify(step, stepState));
            this.cursor.phase = 'stamp';
            break;
          case 'stamp':
            if (this.defersStamp(step)) {
              await this.stopOnFailure('stamp', step, stepState, () =>
                this.database(() => stampRevision({ database: this.status.database, step, owner: workflowInfo().workflowId })),
              );
              const entry = this.applied.find((a) => a.index === index);
              if (entry) entry.stamped = true;
              stepState.state = 'applied';
            }
            this.startSoak(index);
            this.cursor = { step: index + 1, phase: 'gate' };
            await this.continueAsNewIfSuggested();
            break;
        }
      } catch (err) {
        if (err instanceof Stop) return this.stopped(err);
        throw err;
      }
    }
    this.setState('done');
    const last = plan.steps[plan.steps.length - 1];
    return this.result('done', [], last ? last.headsAfter : plan.currentHeads);
  }

  /**
   * A revision with `soak` that this run applied holds the next step closed from now on (the soak
   * travels in status through continue-as-new). Nothing to hold after the plan's last step.
   */
  private startSoak(index: number): void {
    const plan = this.plan!;
    const step = plan.steps[index];
    const next = plan.steps[index + 1];
    if (!step.soakMs || !next || !this.applied.some((a) => a.index === index)) return;
    const since = Date.now();
    this.status.soak = {
      revision: step.revision,
      since: new Date(since).toISOString(),
      until: new Date(since + step.soakMs).toISOString(),
      next: next.revision,
      nextGate: next.gate?.name ?? null,
    };
  }

  /** Waits out the soak (a durable timer), unless an approver ends it early or the migration is abandoned. */
  private async soak(): Promise<void> {
    const soak = this.status.soak!;
    this.setState('soaking');
    for (;;) {
      const remaining = Date.parse(soak.until) - Date.now();
      if (this.soakSkipped || remaining <= 0) break;
      const woken = () => this.soakSkipped || this.operatorDecision !== null || this.continueAsNewDue();
      const decided = await condition(woken, remaining);
      if (this.operatorDecision?.verb === 'abandon') {
        const { by, reason } = this.operatorDecision;
        this.operatorDecision = null;
        throw new Stop({ verb: 'abandon', by, reason, why: `${by} abandoned the migration while ${soak.revision} soaked` });
      }
      // Woken for continue-as-new: the soak (with its `until`) travels in status.
      if (decided && !this.soakSkipped) await this.continueAsNewIfSuggested();
    }
    this.soakSkipped = false;
    this.status.soak = null;
  }

  /**
   * A step whose lock needs a maintenance window starts only while one is open: outside, the
   * migration waits (a durable timer until the next opening) in `waiting-for-window`. Abandon ends
   * the wait and leaves the database as it is; pause/throttle are recorded for the backfill as usual.
   */
  private async waitForWindow(step: PlanStep, stepState: StepStatus, mayContinueAsNew: boolean): Promise<void> {
    const window = step.window!;
    let waited = false;
    for (;;) {
      const now = Date.now();
      const at = windowAt(window, now);
      if (!at) {
        // The check inside the step (under stopOnFailure) stops the migration in `failed`.
        if (mayContinueAsNew) return;
        throw new StepFailure('revision', `revision ${step.revision}: maintenance window ${window.cron} (${window.timezone}) never opens again; fix the window and send retry`, 'WindowNeverOpens');
      }
      if (at.open) break;
      waited = true;
      this.status.window = {
        cron: window.cron,
        timezone: window.timezone,
        duration: window.duration,
        opensAt: new Date(at.opensAt).toISOString(),
        closesAt: new Date(at.closesAt).toISOString(),
        revision: step.revision,
      };
      this.status.waiting = windowWaiting(window, at.opensAt, now);
      stepState.state = 'waiting-for-window';
      this.setState('waiting-for-window');
      const woken = () => this.operatorDecision !== null || (mayContinueAsNew && this.continueAsNewDue());
      const decided = await condition(woken, Math.max(1, at.opensAt - now));
      const decision = this.operatorDecision;
      if (decision?.verb === 'abandon') {
        this.operatorDecision = null;
        this.status.window = null;
        throw new Stop({ verb: 'abandon', by: decision.by, reason: decision.reason, why: `${decision.by} abandoned the migration while ${step.revision} waited for its window` });
      }
      this.operatorDecision = null;
      // Woken for continue-as-new: the cursor (at `apply`) travels; the next run computes the window again.
      if (decided && mayContinueAsNew) await this.continueAsNewIfSuggested();
    }
    if (waited || this.status.window) {
      this.status.window = null;
      this.status.waiting = null;
      stepState.state = 'applying';
      this.setState('applying');
    }
  }

  /** A person chose rollback or abandon at a stop (or rejected a gate). */
  private async stopped(stop: Stop): Promise<MigrateResult> {
    const plan = this.plan!;
    const { decision } = stop;
    if (decision.verb === 'abandon') {
      this.status.error = `abandoned by ${decision.by}${decision.reason ? `: ${decision.reason}` : ''}; the database stays as it is`;
      this.status.gate = null;
      this.setState('abandoned');
      return this.result('abandoned', [], null);
    }
    const undone = await this.rollback(stop.message, decision.by, decision.pastGates);
    if (undone === null) {
      this.setState('abandoned');
      return this.result('abandoned', this.status.rollback?.undone ?? [], null);
    }
    this.setState('rolled-back');
    const first = this.applied[0];
    return this.result('rolled-back', undone, first ? plan.steps[first.index].headsBefore : plan.currentHeads);
  }

  private result(outcome: MigrateResult['outcome'], rolledBack: string[], headsAfter: string[] | null): MigrateResult {
    const plan = this.plan!;
    const undone = new Set(rolledBack);
    const applied = this.applied.map((a) => plan.steps[a.index].revision);
    const stillApplied = this.applied.filter((a) => !undone.has(plan.steps[a.index].revision));
    const lastStamped = [...stillApplied].reverse().find((a) => a.stamped);
    return {
      database: this.status.database,
      direction: this.status.direction,
      outcome,
      applied,
      rolledBack,
      headsAfter: headsAfter ?? (lastStamped ? plan.steps[lastStamped.index].headsAfter : plan.currentHeads),
    };
  }

  /** Every audit row written, every handler done, the lease given back: the run may end. */
  private async finish(): Promise<void> {
    await condition(() => this.auditQueue.length === 0);
    await condition(allHandlersFinished);
    if (this.leaseHeld) {
      await this.database(() => releaseMigrationLease({ database: this.status.database, workflowId: workflowInfo().workflowId })).catch((err) => {
        log.warn(`could not release the migration lease: ${failureMessage(err)}; the next migration takes it over once this workflow is closed`);
      });
      this.leaseHeld = false;
    }
  }

  /** Temporal suggests it, or this run's history reached the input's `continueAsNewAfterEvents`. */
  private continueAsNewDue(): boolean {
    const info = workflowInfo();
    const after = this.input.continueAsNewAfterEvents;
    return info.continueAsNewSuggested || (after !== undefined && info.historyLength >= after);
  }

  /** Called at safe points only (between steps, at a gate, waiting in failed/blocked): nothing is in flight. */
  private async continueAsNewIfSuggested(): Promise<void> {
    if (!this.continueAsNewDue()) return;
    await condition(() => this.auditQueue.length === 0);
    await condition(allHandlersFinished);
    const carried: MigrateCarry = {
      status: this.status,
      plan: this.plan!,
      cursor: this.cursor,
      applied: this.applied,
      auditQueue: this.auditQueue,
      approvedGate: this.approvedGate,
    };
    await continueAsNew<typeof migrate>({ ...this.input, carried });
  }

  // ── phases ─────────────────────────────────────────────────────────────────────────────────

  /** A step whose backfill or check must finish first is stamped in the version table after them. */
  private defersStamp(step: PlanStep): boolean {
    return step.direction === 'upgrade' && (step.backfill !== undefined || step.check !== undefined);
  }

  private async applyStep(step: PlanStep, stepState: StepStatus): Promise<void> {
    const defer = this.defersStamp(step);
    this.setState('applying');
    stepState.state = 'applying';
    const result = await this.stopOnFailure('revision', step, stepState, () =>
      this.applyWithLockRetry(step, stepState, defer ? 'defer' : 'now'),
    );
    stepState.state = result.outcome === 'already-applied' ? 'already-applied' : step.direction === 'downgrade' ? 'undone' : 'applied';
    stepState.durationMs = result.durationMs;
    if (!this.applied.some((a) => a.index === this.cursor.step)) {
      this.applied.push({ index: this.cursor.step, stamped: !defer, behindGate: this.approvedGate });
    }
  }

  /**
   * A step that could not get its lock within lock_timeout committed nothing; it is tried again
   * after a jittered, growing pause (a durable timer), so it never queues long enough to stall the
   * application. After the last attempt it waits in `blocked` for a person — it never fails.
   */
  private async applyWithLockRetry(step: PlanStep, stepState: StepStatus, stamp: 'now' | 'defer' | 'undo-pending'): Promise<ApplyRevisionResult> {
    const retry = this.plan!.lockRetry;
    for (let attempt = 1; ; attempt++) {
      // Never start an attempt (the first, a lock retry, or a person's retry) after the window closed.
      if (step.window) await this.waitForWindow(step, stepState, false);
      stepState.attempts = attempt;
      const result = await this.database(() =>
        applyRevision({ database: this.status.database, step, stamp, owner: workflowInfo().workflowId }),
      );
      if (result.outcome !== 'lock-timeout') {
        this.status.waiting = null;
        return result;
      }
      if (attempt >= retry.maxAttempts) {
        throw new StepFailure(
          'lock',
          `revision ${step.revision}: gave up after ${attempt} attempts, each ${result.waiting ?? 'waiting for a lock'}. ` +
            'End the blocking session (or wait for a quieter time), then send retry',
          'LockTimeout',
        );
      }
      const backoff = Math.min(retry.maxDelayMs, retry.initialDelayMs * 2 ** (attempt - 1));
      const delayMs = Math.round(backoff / 2 + Math.random() * (backoff / 2));
      stepState.state = 'waiting-for-lock';
      this.status.waiting = `${result.waiting ?? 'waiting for a lock'}; attempt ${attempt} of ${retry.maxAttempts} timed out, next in ${(delayMs / 1000).toFixed(1)} s`;
      this.showDetails();
      await sleep(delayMs);
      stepState.state = 'applying';
    }
  }

  /**
   * Runs a phase; a permanent failure stops the migration in `failed` (or `blocked`) until a person
   * sends retry (run the phase again), rollback or abandon (thrown as Stop).
   */
  private async stopOnFailure<T>(kind: FailureStatus['kind'], step: PlanStep, stepState: StepStatus, fn: () => Promise<T>): Promise<T> {
    for (;;) {
      const resumeState = this.status.state;
      try {
        // A failure is cleared once a person decides, so one found here came with continue-as-new.
        if (this.status.failure?.revision === step.revision && kind !== 'rollback') throw new CarriedFailure();
        return await fn();
      } catch (err) {
        if (isCancellation(err) || err instanceof Stop) throw err;
        const carried = err instanceof CarriedFailure ? this.status.failure : null;
        const own = err instanceof StepFailure ? err : null;
        const failureKind = carried?.kind ?? own?.kind ?? kind;
        const blocked = failureKind === 'lock';
        stepState.state = 'failed';
        this.status.waiting = null;
        this.status.failure = carried ?? {
          kind: failureKind,
          revision: step.revision,
          message: own?.message ?? failureMessage(err),
          type: own?.type ?? failureType(err),
          at: this.now(),
          options: failureKind === 'rollback' ? ['retry', 'abandon'] : this.status.direction === 'upgrade' ? ['retry', 'rollback', 'abandon'] : ['retry', 'abandon'],
        };
        this.status.error = this.status.failure.message;
        this.setState(blocked ? 'blocked' : 'failed');
        if (!carried) log.warn(`migration ${blocked ? 'blocked' : 'failed'} at ${step.revision}: ${this.status.failure.message}`);
        // A rollback's progress lives in this run's stack: never continue as new in the middle of one.
        const decision = await this.awaitOperator(kind !== 'rollback');
        this.status.failure = null;
        this.status.error = null;
        if (decision.verb === 'retry') {
          this.setState(resumeState === 'failed' || resumeState === 'blocked' ? 'applying' : resumeState);
          continue;
        }
        const why =
          decision.verb === 'rollback'
            ? `${decision.by} asked for a rollback after ${step.revision} ${blocked ? 'was blocked' : 'failed'}${decision.reason ? `: ${decision.reason}` : ''}`
            : `${decision.by} abandoned the migration`;
        throw new Stop({ ...decision, why });
      }
    }
  }

  private async awaitOperator(mayContinueAsNew: boolean): Promise<OperatorDecision> {
    this.operatorDecision = null;
    for (;;) {
      await condition(() => this.operatorDecision !== null || (mayContinueAsNew && this.continueAsNewDue()));
      if (this.operatorDecision !== null) break;
      // The failure (with its step, kind and options) travels in status; the next run waits again.
      await this.continueAsNewIfSuggested();
    }
    const decision = this.operatorDecision!;
    this.operatorDecision = null;
    return decision;
  }

  /** Waits at a step's gate until an accepted approval; a rejection rolls back or holds. */
  private async passGate(step: PlanStep): Promise<void> {
    const gate = step.gate!;
    const plan = this.plan!;
    let pending = this.status.gate;
    if (!pending || pending.revision !== step.revision) {
      const since = Date.now();
      pending = {
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
      } satisfies PendingGate;
      this.status.gate = pending;
      this.gateDecision = null;
    }
    this.setState('awaiting-approval');
    if (this.input.autoApprove) {
      this.logDecision(logEntry({ decision: 'approve', by: 'autoApprove', comment: 'autoApprove input' }, pending, this.now(), null));
      this.status.gate = null;
      return;
    }
    const since = Date.parse(pending.since);
    for (;;) {
      // A held gate (rejected with onReject "hold", or expired into hold) waits for an approval only: it expires once.
      const expires = gate.expireAfterMs && !pending.heldBy ? since + gate.expireAfterMs : undefined;
      const deadlines = [pending.reminded ? undefined : gate.remindAfterMs && since + gate.remindAfterMs, expires].filter(
        (d): d is number => typeof d === 'number',
      );
      const next = deadlines.length ? Math.min(...deadlines) : undefined;
      const woken = () => this.gateDecision !== null || this.operatorDecision !== null || this.continueAsNewDue();
      const decided = next === undefined ? (await condition(woken), true) : await condition(woken, Math.max(1, next - Date.now()));
      if (this.operatorDecision?.verb === 'abandon') {
        const { by, reason } = this.operatorDecision;
        this.operatorDecision = null;
        throw new Stop({ verb: 'abandon', by, reason, why: `${by} abandoned the migration at gate "${gate.name}"` });
      }
      if (decided && this.gateDecision === null) {
        // Woken for continue-as-new: the gate (with its `since`) travels in status.
        await this.continueAsNewIfSuggested();
        continue;
      }
      if (!decided) {
        if (expires !== undefined && Date.now() >= expires) {
          const entry = logEntry({ decision: 'reject', by: 'phasegate', reason: `gate expired after ${gate.expireAfterMs! / 1000} s without a decision` }, pending, this.now(), null);
          entry.decision = 'expire';
          this.logDecision(entry);
          this.gateDecision = { decision: 'expire', by: 'phasegate', reason: entry.comment };
        } else {
          pending.reminded = true;
          log.warn(`gate "${gate.name}" before ${step.revision} still waits for a decision (since ${pending.since}): ${gate.prompt}`, {
            workflowId: workflowInfo().workflowId,
          });
          continue;
        }
      }
      const decision = this.gateDecision!;
      this.gateDecision = null;
      if (decision.decision === 'approve') {
        this.status.gate = null;
        this.approvedGate = { name: gate.name, by: decision.by };
        return;
      }
      if (pending.onReject === 'hold') {
        pending.heldBy = { by: decision.by, reason: decision.reason, at: this.now() };
        continue;
      }
      this.status.gate = null;
      throw new Stop({
        verb: 'rollback',
        by: decision.by,
        pastGates: false,
        reason: decision.reason,
        why: `gate "${gate.name}" ${decision.decision === 'expire' ? 'expired' : `rejected by ${decision.by}`}${decision.reason ? `: ${decision.reason}` : ''}`,
      });
    }
  }

  /**
   * Runs a step's backfill as a child workflow (id derived from ours, checkpoints named by the
   * revision, so a retried phase or a new migration resumes where the last one stopped). The
   * latest pause/throttle goes with it at start and is forwarded while it runs.
   */
  private async runBackfill(step: PlanStep, stepState: StepStatus): Promise<void> {
    this.setState(this.status.control.paused ? 'paused' : 'backfilling');
    stepState.state = 'backfilling';
    const parentWorkflowId = workflowInfo().workflowId;
    const workflowId = backfillWorkflowId(parentWorkflowId, step.revision);
    this.status.backfillWorkflowId = workflowId;
    const control = this.status.control;
    const child = await startChild(backfill, {
      workflowId,
      args: [
        {
          database: this.status.database,
          revision: step.revision,
          spec: step.backfill!,
          ...(step.backfillWindow ? { window: step.backfillWindow } : {}),
          parentWorkflowId,
          backfillId: backfillIdFor(step.revision),
          ...(step.backfill!.sliceCallMs !== undefined ? { sliceCallMs: step.backfill!.sliceCallMs } : {}),
          ...(this.input.backfillContinueAsNewAfterCalls !== undefined ? { maxSliceCallsBeforeContinueAsNew: this.input.backfillContinueAsNewAfterCalls } : {}),
          initialControl: { paused: control.paused, throttle: control.throttle },
        },
      ],
      // If the parent ends abruptly (terminated), the backfill is asked to stop cleanly, not killed.
      parentClosePolicy: 'REQUEST_CANCEL',
    });
    this.forwardedControl = control.version;
    this.sentControl = { paused: control.paused, throttle: JSON.stringify(control.throttle) };
    this.backfillChild = child;
    try {
      const result = await child.result();
      if (this.status.backfill) {
        this.status.backfill = {
          ...this.status.backfill,
          state: 'done',
          rowsDone: result.rowsDone,
          rowsUpdated: result.rowsUpdated,
          etaSeconds: 0,
          waiting: null,
          rowsPerSecond: null,
          paused: false,
          ...(result.activeMs !== undefined ? { elapsedSeconds: Math.round(result.activeMs / 1000), averageRowsPerSecond: result.averageRowsPerSecond ?? null } : {}),
        };
      }
    } finally {
      this.backfillChild = null;
    }
  }

  /** Forwards pause/resume/throttle changes to the running backfill; never from inside a handler. */
  private async forwardControl(): Promise<void> {
    for (;;) {
      await condition(() => this.backfillChild !== null && this.status.control.version > this.forwardedControl);
      const child = this.backfillChild!;
      // A snapshot: signals may change the control while the sends below are awaited.
      const { paused, version } = this.status.control;
      const throttleInput = { ...this.status.control.throttle };
      const throttle = JSON.stringify(throttleInput);
      try {
        if (paused !== this.sentControl.paused) {
          await child.signal(paused ? pauseSignal : resumeSignal, {});
          this.sentControl = { ...this.sentControl, paused };
        }
        if (throttle !== this.sentControl.throttle) {
          await child.signal(throttleSignal, throttleInput);
          this.sentControl = { ...this.sentControl, throttle };
        }
      } catch (err) {
        if (isCancellation(err)) throw err;
        // The child just ended; the next one starts with the latest control anyway.
      }
      this.forwardedControl = version;
    }
  }
  /** What the running child was last told (at its start, or by the forwarder). */
  private sentControl = { paused: false, throttle: '{}' };

  /** Runs a step's check; rows that fail it (or a timeout) stop the migration in `failed`. */
  private async verify(step: PlanStep, stepState: StepStatus): Promise<void> {
    const check = step.check!;
    this.setState('checking');
    stepState.state = 'checking';
    const attempts = (this.status.check?.revision === step.revision ? this.status.check.attempts : 0) + 1;
    const result = await this.database(() => runCheck({ database: this.status.database, revision: step.revision, check }));
    this.status.check = { revision: step.revision, ...result, attempts };
    if (result.passed) return;
    const count = result.failingCountCapped ? `more than ${result.failingCount}` : String(result.failingCount);
    throw new StepFailure(
      'check',
      `check "${check.name}" after ${step.revision} found ${count} failing row(s), e.g. ${JSON.stringify(result.sample.slice(0, 3))}. ` +
        'Fix the data, then send retry (or rollback / abandon)',
      'CheckFailed',
    );
  }

  /**
   * Undoes this run's steps, newest first — but never one behind a gate a person approved in this
   * run, unless `pastGates`. Returns what it undid, or null when a person abandoned a rollback
   * that could not finish (status says what was and was not undone).
   */
  private async rollback(reason: string, by: string | null, pastGates: boolean): Promise<string[] | null> {
    const plan = this.plan!;
    this.status.gate = null;
    this.setState('rolling-back');
    const rollback = { reason, by, undone: [] as string[], kept: [] as Array<{ revision: string; reason: string }> };
    this.status.rollback = rollback;
    const newestGate = this.approvedGate;
    const pending = [...this.applied].reverse();
    for (const [n, entry] of pending.entries()) {
      const step = plan.steps[entry.index];
      const stepState = this.status.steps[entry.index];
      if (!pastGates && newestGate && sameGate(entry.behindGate, newestGate) === false) {
        const gateReason = `applied before gate "${newestGate.name}", which ${newestGate.by} approved; send rollback {"pastGates":true} (or run a downgrade) to undo it too`;
        for (const kept of pending.slice(n)) rollback.kept.push({ revision: plan.steps[kept.index].revision, reason: gateReason });
        break;
      }
      this.status.revision = step.revision;
      for (;;) {
        try {
          await this.stopOnFailure('rollback', step, stepState, async () => {
            if (!step.rollback) {
              throw new StepFailure('rollback', `cannot roll back ${step.revision}: ${step.rollbackError ?? 'it has no downgrade'}`, 'RollbackImpossible');
            }
            this.setState('rolling-back');
            return this.applyWithLockRetry(step.rollback, stepState, entry.stamped ? 'now' : 'undo-pending');
          });
          break;
        } catch (err) {
          if (!(err instanceof Stop)) throw err;
          // rollback again, in a failed rollback, means: try this rollback step again.
          if (err.decision.verb === 'rollback') continue;
          // A rollback that could not finish and was abandoned: say exactly what stays applied.
          for (const kept of pending.slice(n)) rollback.kept.push({ revision: plan.steps[kept.index].revision, reason: 'rollback abandoned' });
          this.status.error = `rollback abandoned by ${err.decision.by}: undone ${rollback.undone.join(', ') || 'nothing'}; still applied ${rollback.kept.map((k) => k.revision).join(', ')}`;
          return null;
        }
      }
      stepState.state = 'rolled-back';
      rollback.undone.push(step.revision);
    }
    this.status.error = `${reason}; rolled back ${rollback.undone.join(', ') || 'nothing'}${rollback.kept.length ? `; kept ${rollback.kept.map((k) => k.revision).join(', ')}` : ''}`;
    return rollback.undone;
  }

  // ── plumbing ───────────────────────────────────────────────────────────────────────────────

  /** Runs an activity until it succeeds or fails permanently; transient faults show in `waiting`. */
  private database<T>(fn: () => Promise<T>): Promise<T> {
    return retryTransient(fn, (waiting) => {
      this.status.waiting = waiting;
      this.showDetails();
    });
  }

  /** The audit writer: stores queued decisions in order; a value the table refuses is reported, not retried. */
  private async writeAudit(): Promise<void> {
    for (;;) {
      await condition(() => this.auditQueue.length > 0);
      const entry = this.auditQueue[0];
      try {
        await retryTransient(
          () =>
            recordDecision({ ...entry, seq: entry.seq ?? 0, workflowId: workflowInfo().workflowId, runId: workflowInfo().runId, database: this.status.database }),
          () => undefined,
        );
      } catch (err) {
        this.status.auditErrors.push(`${entry.decision} by ${entry.by} at ${entry.at} was not stored: ${failureMessage(err)}`);
        if (this.status.auditErrors.length > MAX_AUDIT_ERRORS) this.status.auditErrors.shift();
        if (!isTransientFailure(err)) log.warn(`audit row not stored: ${failureMessage(err)}`);
      }
      this.auditQueue.shift();
    }
  }

  private setState(state: MigrateState): void {
    this.status.state = state;
    const fleet = this.input.fleet;
    upsertSearchAttributes([
      { key: PhasegateDatabase, value: this.status.database },
      { key: PhasegateState, value: state },
      ...(this.status.phase ? [{ key: PhasegatePhase, value: this.status.phase }] : []),
      ...(fleet ? [{ key: PhasegateFleet, value: fleet }] : []),
    ]);
    if (TERMINAL_STATES.includes(state)) this.status.waiting = null;
    this.showDetails();
    if (fleet) this.reportToFleet(fleet);
  }

  private fleetReports = 0;
  private lastFleetReport: string | null = null;

  /**
   * A migration started by `migrateFleet` tells the fleet when it starts or stops waiting for a
   * person (fleetReportKey), by workflow id, so the fleet's current run gets it after either side
   * continued as new. A fleet that has ended cannot be told: the migration goes on regardless.
   */
  private reportToFleet(fleet: string): void {
    const key = fleetReportKey(this.status.state, this.status.gate?.name ?? null);
    if (key === null || key === this.lastFleetReport) return;
    this.lastFleetReport = key;
    const report: FleetMemberReport = {
      database: this.status.database,
      state: this.status.state,
      revision: this.status.revision,
      gate: this.status.gate?.name ?? null,
      error: this.status.failure?.message ?? (this.status.state === 'failed' || this.status.state === 'cancelled' ? this.status.error : null),
      seq: this.status.runs * 1_000_000 + ++this.fleetReports,
    };
    void getExternalWorkflowHandle(fleet)
      .signal(FLEET_MEMBER_SIGNAL, report)
      .catch((err) => log.info(`fleet ${fleet} was not told of state ${report.state}: ${failureMessage(err)}`));
  }

  /** The UI's "Current Details": what the workflow waits for and how to move it on (no command, no history). */
  private showDetails(): void {
    const { workflowId, namespace } = workflowInfo();
    setCurrentDetails(currentDetails(this.status, { workflowId, namespace }));
  }

  private now(): string {
    return new Date().toISOString();
  }
}

/** Checkpoint rows of a migration's backfill are named by the revision: one migration per database holds them. */
export function backfillIdFor(revision: string): string {
  return `revision:${revision}`;
}

function sameGate(a: AppliedStep['behindGate'], b: AppliedStep['behindGate']): boolean {
  return (a?.name ?? null) === (b?.name ?? null) && (a?.by ?? null) === (b?.by ?? null);
}

export type { AuditDecision };
