/**
 * `migrate`: plans a migration once (the plan is recorded in history), then applies it one
 * revision at a time through activities.
 */
import { ApplicationFailure, proxyActivities, setHandler, sleep, upsertSearchAttributes } from '@temporalio/workflow';
import type { Activities, ApplyRevisionResult } from '../activities';
import type { LockRetrySettings, PlanStep } from '../lib/plan';
import { type MigrateInput, type MigrateResult, type MigrateStatus, type StepStatus, statusQuery, stepStatus } from './messages';
import { PhasegateDatabase, PhasegatePhase, PhasegateState } from './search-attributes';

const { planMigration } = proxyActivities<Activities>({
  startToCloseTimeout: '2 minutes',
  retry: { initialInterval: '1s', maximumInterval: '30s', maximumAttempts: 10 },
});

/**
 * Applying one revision may run a long VALIDATE or CONCURRENTLY build, so the activity heartbeats
 * and the start-to-close timeout is generous; lock timeouts are retried with backoff.
 */
const { applyRevision } = proxyActivities<Activities>({
  startToCloseTimeout: '12 hours',
  heartbeatTimeout: '1 minute',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 20 },
});

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
    error: null,
  };
  setHandler(statusQuery, () => status);

  const publish = () =>
    upsertSearchAttributes([
      { key: PhasegateDatabase, value: status.database },
      { key: PhasegateState, value: status.state },
      ...(status.phase ? [{ key: PhasegatePhase, value: status.phase }] : []),
    ]);
  publish();

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

  try {
    if (typeof input.database !== 'string' || input.database.length === 0) {
      throw ApplicationFailure.nonRetryable('input.database is required: the alias of a configured database', 'InvalidInput');
    }
    const plan = await planMigration({ database: status.database, target: status.target, direction: status.direction });
    status.steps = plan.steps.map(stepStatus);
    const applied: string[] = [];
    for (const [index, step] of plan.steps.entries()) {
      status.state = 'applying';
      status.revision = step.revision;
      status.phase = step.phase ?? null;
      status.steps[index].state = 'applying';
      publish();
      const result = await applyWithLockRetry(step, plan.lockRetry, status.steps[index]);
      status.steps[index].state = result.outcome === 'already-applied' ? 'already-applied' : 'applied';
      status.steps[index].durationMs = result.durationMs;
      applied.push(step.revision);
    }
    status.state = 'done';
    publish();
    const last = plan.steps[plan.steps.length - 1];
    return { database: status.database, direction: status.direction, applied, headsAfter: last ? last.headsAfter : plan.currentHeads };
  } catch (err) {
    status.state = 'failed';
    status.waiting = null;
    status.error = (err as Error).message;
    const current = status.steps.find((s) => s.state === 'applying');
    if (current) current.state = 'failed';
    publish();
    throw err;
  }
}
