/**
 * `migrate`: plans a migration once (the plan is recorded in history), then applies it one
 * revision at a time through activities.
 */
import { ApplicationFailure, proxyActivities, setHandler, upsertSearchAttributes } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { type MigrateInput, type MigrateResult, type MigrateStatus, statusQuery, stepStatus } from './messages';
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
      const result = await applyRevision({ database: status.database, step });
      status.steps[index].state = result.outcome;
      status.steps[index].durationMs = result.durationMs;
      applied.push(step.revision);
    }
    status.state = 'done';
    publish();
    const last = plan.steps[plan.steps.length - 1];
    return { database: status.database, direction: status.direction, applied, headsAfter: last ? last.headsAfter : plan.currentHeads };
  } catch (err) {
    status.state = 'failed';
    status.error = (err as Error).message;
    const current = status.steps.find((s) => s.state === 'applying');
    if (current) current.state = 'failed';
    publish();
    throw err;
  }
}
