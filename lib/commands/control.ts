/**
 * Steering a running migration: `status`, `approve`, `reject`, `retry`, `pause`, `resume`,
 * `throttle`, `skipSoak`. Each sends the same plain-JSON signal the Temporal UI or `temporal workflow signal`
 * would send to workflow `migrate-<database>`, so all three ways behave alike.
 */
import type { Client, WorkflowExecutionDescription } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import type {
  AbandonInput,
  ApproveInput,
  ControlAnswer,
  ControlVerb,
  BackfillProgress,
  MigrateResult,
  MigrateStatus,
  RejectInput,
  RetryInput,
  RollbackInput,
  SkipSoakInput,
  ThrottleInput,
} from '../../workflows/messages';
import { PhasegateError } from '../errors';
import { connectClient } from './migrate';
import { loadProject, type Project, type ProjectOptions } from './project';
import { DEFAULT_DATABASE } from './version';

export interface ControlOptions extends ProjectOptions {
  /** Database alias; the workflow is `migrate-<database>` unless `workflowId` is given. */
  database?: string;
  workflowId?: string;
  client?: Client;
}

export interface StatusResult {
  workflowId: string;
  /** Temporal's view: RUNNING, COMPLETED, FAILED, CANCELLED, TERMINATED, … */
  execution: string;
  status: MigrateStatus;
}

/**
 * The migration a `--database` names: the running `migrate` workflow of that database whatever its
 * id (one started from the UI with a random id too), else its newest one, else `migrate-<alias>`.
 * A server without phasegate's search attributes registered cannot answer the lookup: the id rule.
 */
export async function migrationWorkflowId(client: Client, database: string): Promise<string> {
  const base = `WorkflowType = "migrate" AND PhasegateDatabase = "${database.replace(/["\\]/g, '')}"`;
  try {
    for (const query of [`${base} AND ExecutionStatus = "Running"`, base]) {
      for await (const execution of client.workflow.list({ query, pageSize: 1 })) return execution.workflowId;
    }
  } catch {
    // Visibility without the search attribute (or briefly unavailable): fall back to the id rule.
  }
  return `migrate-${database}`;
}

/** The caller's client, or one connected from the project's config (closed by `close`). */
export async function clientFor(options: ProjectOptions & { client?: Client }, project?: Project): Promise<{ client: Client; close: () => Promise<void> }> {
  return options.client ? { client: options.client, close: async () => undefined } : connectClient(project ?? loadProject(options));
}

/**
 * Runs a control Update; a refusal by the workflow's validator (or handler) comes back as the
 * PhasegateError `refused` builds from the workflow's reason, anything else is rethrown.
 */
export async function executeOrRefuse<R>(handle: ReturnType<Client['workflow']['getHandle']>, name: string, input: unknown, refused: (reason: string) => PhasegateError): Promise<R> {
  try {
    return await handle.executeUpdate<R, [unknown]>(name, { args: [input] });
  } catch (err) {
    if ((err as Error).name === 'WorkflowUpdateFailedError') throw refused((err as { cause?: { message?: string } }).cause?.message ?? (err as Error).message);
    throw err;
  }
}

async function withHandle<T>(options: ControlOptions, fn: (handle: ReturnType<Client['workflow']['getHandle']>, workflowId: string) => Promise<T>): Promise<T> {
  const { client, close } = await clientFor(options);
  let workflowId = options.workflowId ?? `migrate-${options.database ?? DEFAULT_DATABASE}`;
  try {
    workflowId = options.workflowId ?? (await migrationWorkflowId(client, options.database ?? DEFAULT_DATABASE));
    return await fn(client.workflow.getHandle(workflowId), workflowId);
  } catch (err) {
    if ((err as Error).name === 'WorkflowNotFoundError') {
      throw new PhasegateError('MigrationNotFound', `no migration workflow ${workflowId}; start one with phasegate upgrade, or name it with --workflow-id`, {
        details: { workflowId },
      });
    }
    throw err;
  } finally {
    await close();
  }
}

export async function status(options: ControlOptions = {}): Promise<StatusResult> {
  return withHandle(options, async (handle, workflowId) => {
    const description = await handle.describe();
    // A closed workflow's query is answered by a worker replaying it: with none, do not wait long.
    const query = () => handle.query<MigrateStatus>('status');
    const asked = description.status.name === 'RUNNING' ? query() : handle.client.connection.withDeadline(Date.now() + 5000, query);
    const current = await asked.catch(async (err: unknown) => {
      if (description.status.name === 'RUNNING') throw err;
      // A closed workflow's query waits for a worker; without one, say how it ended.
      const { how } = await howItEnded(handle, description);
      throw new PhasegateError('StatusUnavailable', `${workflowId} ${how}; its full status needs a running worker (npm start, or phasegate worker): ${(err as Error).message}`, {
        details: { workflowId, execution: description.status.name },
      });
    });
    // The parent hears from its backfill only on state changes (its history stays bounded); live
    // progress comes from the child itself.
    if ((current.state === 'backfilling' || current.state === 'paused') && current.backfillWorkflowId) {
      const live = await handle.client
        .getHandle(current.backfillWorkflowId)
        .query<BackfillProgress>('backfillStatus')
        .catch(() => null);
      if (live) current.backfill = live;
    }
    // A step that waits inside one statement (a CONCURRENTLY build waiting for an old snapshot has
    // no lock_timeout to end it) says what it waits for in its heartbeat, not in workflow state.
    if (current.state === 'applying' && !current.waiting) {
      const waiting = stepHeartbeatWaiting(description);
      if (waiting) current.waiting = waiting;
    }
    return { workflowId, execution: description.status.name, status: current };
  });
}

/** The `waiting` text of a running applyRevision's latest heartbeat (activities/migrations.ts). */
function stepHeartbeatWaiting(description: WorkflowExecutionDescription): string | undefined {
  for (const activity of description.raw.pendingActivities ?? []) {
    const payload = activity.activityType?.name === 'applyRevision' ? activity.heartbeatDetails?.payloads?.[0] : undefined;
    if (!payload) continue;
    try {
      const details = defaultPayloadConverter.fromPayload<{ waiting?: string | null }>(payload);
      if (details?.waiting) return details.waiting;
    } catch {
      // Details of another shape (an older worker): nothing to show.
    }
  }
  return undefined;
}

export interface SignalResult {
  workflowId: string;
  signal: string;
  sent: unknown;
  /** The workflow's answer (an Update): accepted, and the state it found. */
  answer: ControlAnswer;
}

/**
 * Sends a control verb as an Update: the workflow's validator refuses what does not fit its state
 * (wrong gate, nothing to retry, a malformed value) before it enters history, and the refusal comes
 * back at once as `ControlRefused` — the CLI exits non-zero with the workflow's reason. The Temporal
 * UI and `temporal workflow signal` send the same verb as a signal; the workflow judges both alike.
 */
async function send(options: ControlOptions, verb: ControlVerb, input: unknown): Promise<SignalResult> {
  return withHandle(options, async (handle, workflowId) => {
    const description = await handle.describe();
    if (description.status.name !== 'RUNNING') throw await finishedRun(handle, description, workflowId, verb);
    const answer = await executeOrRefuse<ControlAnswer>(handle, verb, input, (reason) => new PhasegateError('ControlRefused', `${workflowId} refused ${verb}: ${reason}`, { details: { workflowId, verb, reason } }));
    return { workflowId, signal: verb, sent: input, answer };
  });
}

/** A verb sent to a migration that already ended: say how it ended and what to do instead. */
async function finishedRun(
  handle: ReturnType<Client['workflow']['getHandle']>,
  description: WorkflowExecutionDescription,
  workflowId: string,
  verb: ControlVerb,
): Promise<PhasegateError> {
  const { how, heads, database } = await howItEnded(handle, description);
  return new PhasegateError(
    'MigrationFinished',
    `${workflowId} ${how}; there is nothing to ${verb}. Start a new one with phasegate upgrade${database ? ` --database ${database}` : ''}`,
    { details: { workflowId, execution: description.status.name, headsAfter: heads } },
  );
}

/**
 * "completed at 881e4506d7e1 (2026-…)" from the close event and the result, which need no worker
 * (a query of a closed workflow does: it would wait for one).
 */
async function howItEnded(handle: ReturnType<Client['workflow']['getHandle']>, description: WorkflowExecutionDescription) {
  const result = description.status.name === 'COMPLETED' ? await handle.result().catch(() => null) : null;
  const heads: string[] = (result as MigrateResult | null)?.headsAfter ?? [];
  const outcome = (result as MigrateResult | null)?.outcome;
  const when = description.closeTime ? ` (${description.closeTime.toISOString()})` : '';
  const how = `${description.status.name.toLowerCase().replace('_', ' ')}${heads.length ? ` at ${heads.join(', ')}` : ''}${when}${outcome && outcome !== 'done' ? `, ${outcome}` : ''}`;
  const database = (result as MigrateResult | null)?.database ?? (description.searchAttributes?.PhasegateDatabase as string[] | undefined)?.[0];
  return { how, heads, database };
}

export async function approve(options: ControlOptions & ApproveInput): Promise<SignalResult> {
  const { by, gate, comment } = options;
  return send(options, 'approve', { by, ...(gate ? { gate } : {}), ...(comment ? { comment } : {}) });
}

export async function reject(options: ControlOptions & RejectInput): Promise<SignalResult> {
  const { by, gate, reason } = options;
  return send(options, 'reject', { by, ...(gate ? { gate } : {}), ...(reason ? { reason } : {}) });
}

/** In failed or blocked: run the failed step again. */
export async function retry(options: ControlOptions & RetryInput): Promise<SignalResult> {
  const { by, comment } = options;
  return send(options, 'retry', { by, ...(comment ? { comment } : {}) });
}

/** In failed or blocked: undo this run's steps (not past an approved gate unless `pastGates`). */
export async function rollback(options: ControlOptions & RollbackInput): Promise<SignalResult> {
  const { by, pastGates, reason } = options;
  return send(options, 'rollback', { by, ...(pastGates ? { pastGates: true } : {}), ...(reason ? { reason } : {}) });
}

/** In failed, blocked or at a gate: end the migration, leaving the database as it is. */
export async function abandon(options: ControlOptions & AbandonInput): Promise<SignalResult> {
  const { by, reason } = options;
  return send(options, 'abandon', { by, ...(reason ? { reason } : {}) });
}

/** In soaking: end the soak now, so the next step (and its gate) opens; only an approver, and audited. */
export async function skipSoak(options: ControlOptions & SkipSoakInput): Promise<SignalResult> {
  const { by, comment } = options;
  return send(options, 'skipSoak', { by, ...(comment ? { comment } : {}) });
}

export const pause = (options: ControlOptions = {}) => send(options, 'pause', {});
export const resume = (options: ControlOptions = {}) => send(options, 'resume', {});

export async function throttle(options: ControlOptions & ThrottleInput): Promise<SignalResult> {
  const input: ThrottleInput = {};
  for (const key of ['batchSize', 'delayMs', 'maxRowsPerSecond'] as const) {
    const value = options[key];
    if (value === undefined) continue;
    // 0 means "no delay" for delayMs and "no limit" for maxRowsPerSecond; a batch needs rows.
    if (!Number.isFinite(value) || value < 0 || (key === 'batchSize' && value === 0)) {
      throw new PhasegateError('InvalidThrottle', `throttle ${key} must be a positive number (delayMs and maxRowsPerSecond may be 0); got ${value}`);
    }
    input[key] = value;
  }
  if (Object.keys(input).length === 0) {
    throw new PhasegateError('InvalidThrottle', 'throttle needs at least one of --batch-size, --delay-ms, --max-rows-per-second');
  }
  return send(options, 'throttle', input);
}
