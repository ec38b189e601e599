/**
 * `migrateFleet`: one change across many databases. It resolves the databases (an activity reads the
 * workers' configured aliases), cuts them into waves (canary first), and runs each database as a
 * child `migrate` with the usual id `migrate-<alias>`, so one migration per database still holds and
 * every single-database control still works. Within a wave at most `maxConcurrent` run at once.
 *
 * | fleet state       | entered when                                           | leaves on                              |
 * | ----------------- | ------------------------------------------------------ | -------------------------------------- |
 * | resolving         | start                                                  | the databases are known                |
 * | running           | a wave runs                                            | wave settled → next wave / done        |
 * | awaiting-approval | the canary wave settled (or every wave with gateEveryWave) | approveWave → the next wave runs    |
 * | paused            | pause: no new starts; pause forwarded to the running migrations | resume                        |
 * | halted            | failureThreshold databases fail (a new failure among them) | resume (takes the failing ones as known) |
 * | done / aborted / cancelled | the last wave settled / abort / a cancel request | —                                   |
 *
 * A wave is settled when each of its databases' migrations ended done, rolled back or abandoned. A
 * failing database (its migration `failed` or `blocked`, or ended without reaching the target) keeps
 * its wave open until a person retries or abandons it. Nothing the fleet does is destructive: abort
 * and cancel only stop new starts; the running migrations go on under their own ids (parent close
 * policy ABANDON, started outside the fleet's cancellation scope). Between waves, when no child runs,
 * the fleet continues as new, so a 1,000-database fleet keeps a short history per run.
 */
import {
  ApplicationFailure,
  CancellationScope,
  ParentClosePolicy,
  allHandlersFinished,
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  isCancellation,
  proxyActivities,
  setCurrentDetails,
  setDefaultSignalHandler,
  setHandler,
  startChild,
  upsertSearchAttributes,
  workflowInfo,
  WorkflowIdReusePolicy,
} from '@temporalio/workflow';
import type { SignalDefinition, UpdateDefinition } from '@temporalio/common';
import type { Activities } from '../activities';
import { failureMessage, retryTransient } from './database-retry';
import { fleetInputProblems, fleetPayloadProblem, planWaves } from './fleet-input';
import {
  FLEET_MEMBER_SIGNAL,
  fleetAbortSignal,
  fleetAbortUpdate,
  fleetApproveWaveSignal,
  fleetApproveWaveUpdate,
  fleetPauseSignal,
  fleetPauseUpdate,
  fleetResumeSignal,
  fleetResumeUpdate,
  fleetRetrySignal,
  fleetRetryUpdate,
  fleetStatusQuery,
  migrateWorkflowId,
  type FleetAnswer,
  type FleetApproveWaveInput,
  type FleetControlInput,
  type FleetInput,
  type FleetMember,
  type FleetMemberReport,
  type FleetResult,
  type FleetRetryInput,
  type FleetState,
  type FleetStatus,
  type FleetVerb,
  type MemberState,
  type WaveApproval,
} from './fleet-messages';
import { approveSignal, pauseSignal, resumeSignal, retrySignal, type MigrateResult } from './messages';
import { migrate } from './migrate';
import { PhasegateDatabase, PhasegateFleet, PhasegateState } from './search-attributes';

const { resolveFleet } = proxyActivities<Activities>({ startToCloseTimeout: '1 minute', retry: { maximumInterval: '30 seconds' } });

const MEMBER_STATES: readonly MemberState[] = ['pending', 'starting', 'running', 'awaiting-approval', 'paused', 'failed', 'blocked', 'done', 'rolled-back', 'abandoned', 'ended'];
/** A database whose migration ended where a person wanted it: the wave can move on. */
const SETTLED: readonly MemberState[] = ['done', 'rolled-back', 'abandoned'];
/** A database that needs a person: it counts against failureThreshold and keeps its wave open. */
const FAILING: readonly MemberState[] = ['failed', 'blocked', 'ended'];
/** A database whose migration was started and has not ended: it takes one of maxConcurrent. */
const ACTIVE: readonly MemberState[] = ['starting', 'running', 'awaiting-approval', 'paused', 'failed', 'blocked'];
const MAX_DECISIONS = 100;

export async function migrateFleet(rawInput: FleetInput): Promise<FleetResult> {
  const { input, problems } = fleetInputProblems(rawInput);
  if (!input) {
    throw ApplicationFailure.create({
      type: 'InvalidInput',
      nonRetryable: true,
      message: `invalid migrateFleet input: ${problems.join('; ')}. Expected e.g. {"select":"tenant_*","target":"head","rollout":{"canary":1,"waveSize":10,"maxConcurrent":5}}`,
      details: [{ problems }],
    });
  }
  const fleet = new Fleet(input);
  setHandler(fleetStatusQuery, () => fleet.status, { description: 'Where the fleet stands: wave, counts per state, failing databases, ETA' });
  const register = <A extends object>(verb: FleetVerb, signal: SignalDefinition<[A]>, update: UpdateDefinition<FleetAnswer, [A]>, description: string) => {
    setHandler(signal, (arg: A) => void fleet.receive(verb, arg, 'signal'), { description });
    setHandler(update, (arg: A) => fleet.receive(verb, arg, 'update'), {
      description,
      validator: (arg: A) => {
        const problem = fleetPayloadProblem(verb, arg) ?? fleet.problem(verb, arg);
        if (problem) throw ApplicationFailure.create({ type: 'ControlRefused', message: problem, nonRetryable: true });
      },
    });
  };
  register('pause', fleetPauseSignal, fleetPauseUpdate, 'Start no more databases and pause the running backfills: {"by":"alice"}');
  register('resume', fleetResumeSignal, fleetResumeUpdate, 'After pause or a failure halt: start databases again (failing ones are taken as known): {"by":"alice"}');
  register('approveWave', fleetApproveWaveSignal, fleetApproveWaveUpdate, 'Start the next wave, or open the gate the current wave waits at for all its databases: {"by":"alice","gate"?:"…"}');
  register('abort', fleetAbortSignal, fleetAbortUpdate, 'End the fleet: no more databases start; running migrations go on on their own: {"by":"alice"}');
  register('retry', fleetRetrySignal, fleetRetryUpdate, 'Retry the failing databases (or those listed): {"by":"alice","databases"?:["…"]}');
  // Member reports arrive on the default handler, so the UI's "Send a Signal" does not offer them.
  setDefaultSignalHandler((name, ...args) => {
    if (name === FLEET_MEMBER_SIGNAL) fleet.onReport(args[0] as FleetMemberReport);
    else fleet.ignored(name, `no such signal; a fleet takes ${['pause', 'resume', 'approveWave', 'abort', 'retry'].join(', ')}`);
  });
  return fleet.run();
}

class Fleet {
  readonly status: FleetStatus;
  /** Bumped on every change the main loop may act on. */
  private changes = 0;
  private aborted = false;
  /** Start generation per database: a result from an earlier start of a restarted database is stale. */
  private readonly generation = new Map<string, number>();

  constructor(private readonly input: FleetInput) {
    const rollout = input.rollout ?? {};
    this.status = (input.carried?.status as FleetStatus | undefined) ?? {
      fleet: workflowInfo().workflowId,
      target: input.target ?? 'head',
      direction: input.direction ?? 'upgrade',
      state: 'resolving',
      rollout: {
        canary: rollout.canary ?? 0,
        maxConcurrent: rollout.maxConcurrent ?? 5,
        failureThreshold: rollout.failureThreshold ?? 1,
        approval: rollout.approval ?? 'wave',
        gateEveryWave: rollout.gateEveryWave ?? false,
        waves: 0,
      },
      wave: 0,
      waves: [],
      counts: emptyCounts(),
      failures: [],
      members: {},
      waiting: null,
      approvedGates: {},
      openedWaves: [],
      paused: false,
      halted: false,
      acknowledged: [],
      eta: null,
      decisions: [],
      runs: 1,
      error: null,
    };
  }

  // ── run ──────────────────────────────────────────────────────────────────────────────────

  async run(): Promise<FleetResult> {
    this.setState(this.status.state);
    try {
      if (this.status.state === 'resolving') {
        const databases = await retryTransient(
          () => resolveFleet({ databases: this.input.databases, select: this.input.select }),
          (waiting) => {
            this.status.waiting = waiting;
          },
        );
        const rollout = this.input.rollout ?? {};
        this.status.waves = planWaves(databases, { canary: this.status.rollout.canary, waveSize: rollout.waveSize, wavePercent: rollout.wavePercent });
        this.status.rollout.waves = this.status.waves.length;
        this.status.waves.forEach((wave, index) => {
          for (const database of wave) this.status.members[database] = newMember(database, index);
        });
        this.setState('running');
      }
      for (let wave = this.status.wave; wave < this.status.waves.length && !this.aborted; wave++) {
        this.status.wave = wave;
        if (this.needsApproval(wave) && !this.status.openedWaves.includes(wave)) {
          this.setState('awaiting-approval');
          await condition(() => this.status.openedWaves.includes(wave) || this.aborted);
          if (this.aborted) break;
        }
        await this.runWave(wave);
        if (!this.aborted && wave + 1 < this.status.waves.length && this.shouldContinueAsNew()) {
          this.status.wave = wave + 1;
          this.status.runs++;
          await condition(allHandlersFinished);
          await continueAsNew<typeof migrateFleet>({ ...this.input, carried: { status: this.status } });
        }
      }
    } catch (err) {
      if (isCancellation(err)) {
        this.status.error = 'cancelled: no more databases start; the running migrations go on (cancel them one by one, or by PhasegateFleet)';
        this.setState('cancelled');
      } else {
        this.status.error = failureMessage(err);
      }
      throw err;
    }
    this.setState(this.aborted ? 'aborted' : 'done');
    await condition(allHandlersFinished);
    const notAtTarget = Object.values(this.status.members)
      .filter((m) => m.state !== 'done')
      .map((m) => ({ database: m.database, state: m.state, error: m.error }));
    return { fleet: this.status.fleet, outcome: this.aborted ? 'aborted' : 'done', counts: this.status.counts, notAtTarget };
  }

  private async runWave(wave: number): Promise<void> {
    const members = this.status.waves[wave].map((database) => this.status.members[database]);
    for (;;) {
      if (this.aborted) return;
      if (members.every((m) => SETTLED.includes(m.state))) return;
      this.setState(this.currentState());
      if (this.status.state === 'running') {
        const next = members.find((m) => m.state === 'pending');
        if (next && this.activeCount() < this.status.rollout.maxConcurrent) {
          await this.start(next);
          continue;
        }
      }
      const seen = this.changes;
      await condition(() => this.changes !== seen);
    }
  }

  private async start(member: FleetMember): Promise<void> {
    const generation = (this.generation.get(member.database) ?? 0) + 1;
    this.generation.set(member.database, generation);
    Object.assign(member, { state: 'starting', migrateState: null, gate: null, error: null, startedAt: now(), endedAt: null, approvalsSent: [] });
    this.changed();
    try {
      // Outside the fleet's cancellation scope: cancelling the fleet must not cancel a migration.
      const handle = await CancellationScope.nonCancellable(() =>
        startChild(migrate, {
          workflowId: member.workflowId,
          args: [{ database: member.database, target: this.status.target, direction: this.status.direction, fleet: this.status.fleet }],
          parentClosePolicy: ParentClosePolicy.ABANDON,
          workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE,
          typedSearchAttributes: [
            { key: PhasegateDatabase, value: member.database },
            { key: PhasegateFleet, value: this.status.fleet },
          ],
        }),
      );
      if (member.state === 'starting') member.state = 'running';
      this.changed();
      handle.result().then(
        (result) => this.onEnded(member.database, generation, result, null),
        (err) => this.onEnded(member.database, generation, null, err),
      );
    } catch (err) {
      const running = /already (started|running)/i.test(failureMessage(err)) || (err as { name?: string }).name === 'WorkflowExecutionAlreadyStartedError';
      this.end(
        member,
        'ended',
        running
          ? `${member.workflowId} is already running (a migration started outside this fleet): let it finish or end it, then retry this database`
          : `could not start ${member.workflowId}: ${failureMessage(err)}`,
      );
    }
  }

  private onEnded(database: string, generation: number, result: MigrateResult | null, err: unknown): void {
    const member = this.status.members[database];
    if (!member || this.generation.get(database) !== generation) return;
    if (result) this.end(member, result.outcome, null);
    else this.end(member, 'ended', `${member.workflowId} ended without reaching the target: ${failureMessage(err)}`);
  }

  private end(member: FleetMember, state: MemberState, error: string | null): void {
    member.state = state;
    member.error = error;
    member.gate = null;
    member.endedAt = now();
    this.changed();
  }

  // ── reports from the member migrations ───────────────────────────────────────────────────

  onReport(report: FleetMemberReport): void {
    const member = report && typeof report === 'object' ? this.status.members[report.database] : undefined;
    if (!member || typeof report.seq !== 'number' || report.seq <= member.seq) return;
    member.seq = report.seq;
    member.migrateState = report.state;
    member.revision = report.revision;
    // The migration's own end is taken from its result (its final state report comes before the run ends).
    if (!ACTIVE.includes(member.state)) return this.changed();
    member.gate = report.state === 'awaiting-approval' ? report.gate : null;
    member.error = report.state === 'failed' || report.state === 'blocked' ? report.error : null;
    switch (report.state) {
      case 'awaiting-approval':
      case 'paused':
      case 'failed':
      case 'blocked':
        member.state = report.state;
        break;
      case 'done':
      case 'rolled-back':
      case 'abandoned':
      case 'cancelled':
        break;
      default:
        member.state = 'running';
    }
    if (member.state === 'awaiting-approval' && member.gate) this.forwardApproval(member, member.gate);
    this.changed();
  }

  /** Policy `wave`: a gate approved for the wave opens for each of its databases once. */
  private forwardApproval(member: FleetMember, gate: string): void {
    const approval = this.waveApprovals(member.wave).find((a) => a.gate === gate);
    if (!approval || member.approvalsSent.includes(gate)) return;
    member.approvalsSent.push(gate);
    const comment = `fleet ${this.status.fleet}, wave ${member.wave}${approval.comment ? `: ${approval.comment}` : ''}`;
    void getExternalWorkflowHandle(member.workflowId)
      .signal(approveSignal, { by: approval.by, gate, comment })
      .catch(() => undefined);
  }

  private waveApprovals(wave: number): WaveApproval[] {
    return this.status.approvedGates[String(wave)] ?? [];
  }

  // ── controls ─────────────────────────────────────────────────────────────────────────────

  /** Why `verb` does not fit now, or null. The same rule answers a signal (ignored) and an Update (refused). */
  problem(verb: FleetVerb, input: object): string | null {
    const state = this.status.state;
    if (state === 'done' || state === 'aborted' || state === 'cancelled') return `the fleet is ${state}; nothing is left to ${verb}`;
    switch (verb) {
      case 'pause':
        return this.status.paused ? 'already paused; send resume to go on' : null;
      case 'resume':
        return this.status.paused || this.status.halted ? null : `the fleet is ${state}, not paused or halted: nothing to resume`;
      case 'abort':
        return null;
      case 'retry':
        return this.failing((input as FleetRetryInput).databases).length > 0
          ? null
          : (input as FleetRetryInput).databases
            ? `none of ${(input as FleetRetryInput).databases!.join(', ')} is failing`
            : 'no database is failing: nothing to retry';
      case 'approveWave':
        return this.approvalTarget(input as FleetApproveWaveInput).problem;
    }
  }

  receive(verb: FleetVerb, input: object, via: 'signal' | 'update'): FleetAnswer {
    const problem = fleetPayloadProblem(verb, input) ?? this.problem(verb, input);
    const by = typeof (input as FleetControlInput)?.by === 'string' ? (input as FleetControlInput).by : '';
    const comment = typeof (input as FleetControlInput)?.comment === 'string' ? (input as FleetControlInput).comment! : null;
    if (problem) {
      this.decide(verb, by, comment, problem);
      if (via === 'update') throw ApplicationFailure.create({ type: 'ControlRefused', message: problem, nonRetryable: true });
      return { accepted: false, message: problem, state: this.status.state };
    }
    const message = this.apply(verb, input, by, comment);
    this.decide(verb, by, comment, null);
    this.changed();
    this.setState(this.currentState());
    return { accepted: true, message, state: this.status.state };
  }

  private apply(verb: FleetVerb, input: object, by: string, comment: string | null): string {
    const active = () => Object.values(this.status.members).filter((m) => ACTIVE.includes(m.state) && m.state !== 'starting');
    switch (verb) {
      case 'pause': {
        this.status.paused = true;
        const running = active();
        for (const m of running) void getExternalWorkflowHandle(m.workflowId).signal(pauseSignal, {}).catch(() => undefined);
        return `paused: no database starts; pause sent to ${running.length} running migration(s)`;
      }
      case 'resume': {
        const wasPaused = this.status.paused;
        this.status.paused = false;
        this.status.halted = false;
        this.status.acknowledged = this.failing().map((m) => m.database);
        const running = wasPaused ? active() : [];
        for (const m of running) void getExternalWorkflowHandle(m.workflowId).signal(resumeSignal, {}).catch(() => undefined);
        const known = this.status.acknowledged.length;
        return `resumed${wasPaused ? `: resume sent to ${running.length} migration(s)` : ''}${known ? `; ${known} failing database(s) taken as known: the threshold counts new failures` : ''}`;
      }
      case 'abort':
        this.aborted = true;
        return `aborted: no more databases start; ${active().length} migration(s) go on under their own ids`;
      case 'retry': {
        const failing = this.failing((input as FleetRetryInput).databases);
        for (const m of failing) {
          if (m.state === 'ended') {
            m.state = 'pending';
            m.error = null;
          } else void getExternalWorkflowHandle(m.workflowId).signal(retrySignal, { by, ...(comment ? { comment } : {}) }).catch(() => undefined);
        }
        return `retry: ${failing.map((m) => m.database).join(', ')}`;
      }
      case 'approveWave': {
        const target = this.approvalTarget(input as FleetApproveWaveInput);
        if (target.kind === 'wave') {
          this.status.openedWaves.push(this.status.wave);
          return `wave ${this.status.wave} opened (${this.status.waves[this.status.wave].length} databases)`;
        }
        const key = String(this.status.wave);
        this.status.approvedGates[key] = [...this.waveApprovals(this.status.wave), { gate: target.gate!, by, comment }];
        const waiting = this.status.waves[this.status.wave].map((d) => this.status.members[d]).filter((m) => m.state === 'awaiting-approval' && m.gate === target.gate);
        for (const m of waiting) this.forwardApproval(m, target.gate!);
        return `gate ${target.gate} approved for wave ${this.status.wave}: sent to ${waiting.length} database(s) waiting at it; the others get it when they reach it`;
      }
    }
  }

  /** What approveWave would open now: the next wave, or a gate of the current wave's databases. */
  private approvalTarget(input: FleetApproveWaveInput): { kind?: 'wave' | 'gate'; gate?: string; problem: string | null } {
    if (this.status.state === 'awaiting-approval') return { kind: 'wave', problem: null };
    if (this.status.rollout.approval === 'database') {
      return { problem: 'this fleet\'s approval policy is "database": approve each database on its own (phasegate approve --database <alias>)' };
    }
    const wave = this.status.waves[this.status.wave] ?? [];
    const approved = this.waveApprovals(this.status.wave).map((a) => a.gate);
    const pending = [...new Set(wave.map((d) => this.status.members[d]).filter((m) => m.state === 'awaiting-approval' && m.gate).map((m) => m.gate!))].filter((g) => !approved.includes(g));
    if (input.gate !== undefined) {
      return approved.includes(input.gate) ? { problem: `gate ${input.gate} is already approved for wave ${this.status.wave}` } : { kind: 'gate', gate: input.gate, problem: null };
    }
    if (pending.length === 1) return { kind: 'gate', gate: pending[0], problem: null };
    if (pending.length > 1) return { problem: `databases of wave ${this.status.wave} wait at ${pending.length} gates (${pending.join(', ')}): say which with "gate"` };
    return { problem: `nothing waits for approval: wave ${this.status.wave} is ${this.status.state} and none of its databases is at a gate` };
  }

  ignored(signal: string, reason: string): void {
    this.decide(signal, '', null, reason);
  }

  private decide(verb: FleetVerb | string, by: string, comment: string | null, ignoredReason: string | null): void {
    this.status.decisions.push({ at: now(), verb, by, comment, accepted: ignoredReason === null, ignoredReason });
    if (this.status.decisions.length > MAX_DECISIONS) this.status.decisions.shift();
  }

  // ── state ────────────────────────────────────────────────────────────────────────────────

  private needsApproval(wave: number): boolean {
    return wave > 0 && ((wave === 1 && this.status.rollout.canary > 0) || this.status.rollout.gateEveryWave);
  }

  private failing(only?: string[]): FleetMember[] {
    return Object.values(this.status.members).filter((m) => FAILING.includes(m.state) && (!only || only.includes(m.database)));
  }

  /** failureThreshold databases fail, and a person has not resumed past all of them yet. */
  private thresholdReached(): boolean {
    const failing = this.failing();
    return failing.length >= this.status.rollout.failureThreshold && failing.some((m) => !this.status.acknowledged.includes(m.database));
  }

  private activeCount(): number {
    return Object.values(this.status.members).filter((m) => ACTIVE.includes(m.state)).length;
  }

  private currentState(): FleetState {
    if (this.status.state === 'awaiting-approval' && !this.status.openedWaves.includes(this.status.wave)) return 'awaiting-approval';
    if (this.status.paused) return 'paused';
    if (this.status.halted) return 'halted';
    return 'running';
  }

  private shouldContinueAsNew(): boolean {
    const info = workflowInfo();
    const after = this.input.continueAsNewAfterEvents;
    return info.continueAsNewSuggested || (after !== undefined && info.historyLength >= after);
  }

  private changed(): void {
    this.changes++;
    // Sticky: a halt stays until a person resumes, even when the failures are fixed meanwhile.
    if (!this.status.halted && this.thresholdReached()) {
      this.status.halted = true;
      if (this.status.state === 'running') this.setState('halted');
    }
    this.refresh();
  }

  private setState(state: FleetState): void {
    this.status.state = state;
    upsertSearchAttributes([
      { key: PhasegateFleet, value: this.status.fleet },
      { key: PhasegateState, value: state },
    ]);
    this.refresh();
  }

  /** Counts, failures, ETA and the waiting line, recomputed on every change. */
  private refresh(): void {
    const members = Object.values(this.status.members);
    const counts = emptyCounts();
    for (const m of members) counts[m.state]++;
    this.status.counts = counts;
    this.status.failures = members.filter((m) => FAILING.includes(m.state)).map((m) => ({ database: m.database, state: m.state, error: m.error, workflowId: m.workflowId }));
    const finished = members.filter((m) => m.state === 'done' && m.startedAt && m.endedAt);
    const left = members.filter((m) => !SETTLED.includes(m.state)).length;
    if (finished.length > 0 && left > 0) {
      const mean = finished.reduce((sum, m) => sum + (Date.parse(m.endedAt!) - Date.parse(m.startedAt!)), 0) / finished.length;
      this.status.eta = new Date(Date.now() + (mean * left) / Math.max(1, Math.min(this.status.rollout.maxConcurrent, left))).toISOString();
    } else this.status.eta = null;
    this.status.waiting = this.waitingLine();
    const s = this.status;
    setCurrentDetails(
      `**fleet ${s.fleet}** — ${s.state}, wave ${s.wave + 1} of ${s.waves.length || '?'}\n\n` +
        MEMBER_STATES.filter((k) => s.counts[k] > 0).map((k) => `${k}: ${s.counts[k]}`).join(' · ') +
        (s.waiting ? `\n\n${s.waiting}` : '') +
        (s.failures.length ? `\n\nfailing:\n${s.failures.map((f) => `- ${f.database}: ${f.error ?? f.state}`).join('\n')}` : ''),
    );
  }

  private waitingLine(): string | null {
    const s = this.status;
    switch (s.state) {
      case 'awaiting-approval':
        return `wave ${s.wave - 1} settled; waiting for approveWave to start wave ${s.wave} (${s.waves[s.wave]?.length ?? 0} databases): phasegate fleet approve-wave ${s.fleet.replace(/^fleet-/, '')} --by <you>`;
      case 'paused':
        return 'paused by a person: no database starts until resume';
      case 'halted':
        return `halted: ${s.failures.length} database(s) failing (threshold ${s.rollout.failureThreshold}); fix them, then retry and resume`;
      case 'running': {
        const atGate = (s.waves[s.wave] ?? []).map((d) => s.members[d]).filter((m) => m.state === 'awaiting-approval');
        if (atGate.length === 0) return null;
        const gates = [...new Set(atGate.map((m) => m.gate))].join(', ');
        return s.rollout.approval === 'wave'
          ? `${atGate.length} database(s) of wave ${s.wave} wait at gate ${gates}: approve them all with approveWave`
          : `${atGate.length} database(s) wait at gate ${gates}: approve each (policy "database")`;
      }
      default:
        return null;
    }
  }
}

function newMember(database: string, wave: number): FleetMember {
  return { database, wave, state: 'pending', migrateState: null, workflowId: migrateWorkflowId(database), revision: null, gate: null, error: null, startedAt: null, endedAt: null, seq: 0, approvalsSent: [] };
}

function emptyCounts(): Record<MemberState, number> {
  return Object.fromEntries(MEMBER_STATES.map((k) => [k, 0])) as Record<MemberState, number>;
}

function now(): string {
  return new Date().toISOString();
}
