/**
 * Steering a running migration: `status`, `approve`, `reject`, `retry`, `pause`, `resume`,
 * `throttle`. Each sends the same plain-JSON signal the Temporal UI or `temporal workflow signal`
 * would send to workflow `migrate-<database>`, so all three ways behave alike.
 */
import type { Client } from '@temporalio/client';
import type { ApproveInput, MigrateStatus, RejectInput, ThrottleInput } from '../../workflows/messages';
import { PhasegateError } from '../errors';
import { connectClient } from './migrate';
import { loadProject, type ProjectOptions } from './project';
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

async function withHandle<T>(options: ControlOptions, fn: (handle: ReturnType<Client['workflow']['getHandle']>, workflowId: string) => Promise<T>): Promise<T> {
  const workflowId = options.workflowId ?? `migrate-${options.database ?? DEFAULT_DATABASE}`;
  const { client, close } = options.client ? { client: options.client, close: async () => undefined } : await connectClient(loadProject(options));
  try {
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
    const current = await handle.query<MigrateStatus>('status');
    return { workflowId, execution: description.status.name, status: current };
  });
}

export interface SignalResult {
  workflowId: string;
  signal: string;
  sent: unknown;
}

async function send(options: ControlOptions, signal: string, input: unknown): Promise<SignalResult> {
  return withHandle(options, async (handle, workflowId) => {
    await handle.signal(signal, input);
    return { workflowId, signal, sent: input };
  });
}

/**
 * Signals are recorded in history and judged by the workflow: one that does not fit (wrong gate,
 * not an approver) is ignored there with a reason that `status` shows.
 */
export async function approve(options: ControlOptions & ApproveInput): Promise<SignalResult> {
  const { by, gate, comment } = options;
  return send(options, 'approve', { by, ...(gate ? { gate } : {}), ...(comment ? { comment } : {}) });
}

export async function reject(options: ControlOptions & RejectInput): Promise<SignalResult> {
  const { by, gate, reason } = options;
  return send(options, 'reject', { by, ...(gate ? { gate } : {}), ...(reason ? { reason } : {}) });
}

export const retry = (options: ControlOptions = {}) => send(options, 'retry', {});
export const pause = (options: ControlOptions = {}) => send(options, 'pause', {});
export const resume = (options: ControlOptions = {}) => send(options, 'resume', {});

export async function throttle(options: ControlOptions & ThrottleInput): Promise<SignalResult> {
  const input: ThrottleInput = {};
  for (const key of ['batchSize', 'delayMs', 'maxRowsPerSecond'] as const) {
    const value = options[key];
    if (value === undefined) continue;
    if (!Number.isFinite(value) || value < 0 || (key !== 'delayMs' && value === 0)) {
      throw new PhasegateError('InvalidThrottle', `throttle ${key} must be a positive number (delayMs may be 0); got ${value}`);
    }
    input[key] = value;
  }
  if (Object.keys(input).length === 0) {
    throw new PhasegateError('InvalidThrottle', 'throttle needs at least one of --batch-size, --delay-ms, --max-rows-per-second');
  }
  return send(options, 'throttle', input);
}
