/**
 * `phasegate fleet …`: start a `migrateFleet` (one change across many databases), show its status,
 * and steer it (pause, resume, approve-wave, abort, retry) with Updates, so a refusal comes back at
 * once with the workflow's reason. The workflow is `fleet-<name>`: one fleet of a name at a time.
 */
import type { Client } from '@temporalio/client';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { PhasegateError } from '../errors';
import { selectFleetDatabases } from '../fleet';
import { fleetInputProblems, planWaves } from '../../workflows/fleet-input';
import type { FleetAnswer, FleetInput, FleetResult, FleetRollout, FleetStatus, FleetVerb } from '../../workflows/fleet-messages';
import { clientFor, executeOrRefuse } from './control';
import { loadProject, type Project, type ProjectOptions } from './project';

export interface FleetOptions extends ProjectOptions {
  /** The fleet's name: its workflow is `fleet-<name>` (default `default`). */
  name?: string;
  client?: Client;
}

export interface FleetStartOptions extends FleetOptions {
  databases?: string[];
  select?: string;
  target?: string;
  direction?: 'upgrade' | 'downgrade';
  rollout?: FleetRollout;
  continueAsNewAfterEvents?: number;
  /** The task queue of the workers (default: the config's). */
  taskQueue?: string;
}

export interface FleetStartResult {
  workflowId: string;
  runId: string;
  /** The waves as this machine's config resolves them (the worker resolves them again from its own). */
  waves: string[][];
}

export interface FleetStatusResult {
  workflowId: string;
  execution: string;
  status: FleetStatus;
}

export interface FleetControlResult {
  workflowId: string;
  verb: FleetVerb;
  answer: FleetAnswer;
}

export function fleetIdFor(name = 'default'): string {
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,100}$/.test(name)) {
    throw new PhasegateError('InvalidInput', `fleet name ${JSON.stringify(name)} must be letters, digits, _ . - (it names the workflow fleet-<name>)`);
  }
  return `fleet-${name}`;
}

async function withClient<T>(options: FleetOptions, fn: (client: Client, workflowId: string) => Promise<T>, project?: Project): Promise<T> {
  const workflowId = fleetIdFor(options.name);
  const { client, close } = await clientFor(options, project);
  try {
    return await fn(client, workflowId);
  } catch (err) {
    if ((err as Error).name === 'WorkflowNotFoundError') {
      throw new PhasegateError('FleetNotFound', `no fleet workflow ${workflowId}; start one with phasegate fleet upgrade --name ${options.name ?? 'default'}`, { details: { workflowId } });
    }
    throw err;
  } finally {
    await close();
  }
}

/**
 * Starts the fleet. Everything checkable here is checked before anything starts: the input (the
 * workflow's own schema), and the databases against this machine's configured aliases.
 */
export async function fleetStart(options: FleetStartOptions): Promise<FleetStartResult> {
  const input: FleetInput = {
    ...(options.databases ? { databases: options.databases } : {}),
    ...(options.select !== undefined ? { select: options.select } : {}),
    target: options.target ?? 'head',
    direction: options.direction ?? 'upgrade',
    ...(options.rollout ? { rollout: options.rollout } : {}),
    ...(options.continueAsNewAfterEvents !== undefined ? { continueAsNewAfterEvents: options.continueAsNewAfterEvents } : {}),
  };
  const { problems } = fleetInputProblems(input);
  if (problems.length > 0) throw new PhasegateError('InvalidInput', `the fleet was not started: ${problems.join('; ')}`, { details: { problems } });
  const project = loadProject(options);
  const databases = selectFleetDatabases(Object.keys(project.config.databases), input);
  const waves = planWaves(databases, { canary: options.rollout?.canary ?? 0, waveSize: options.rollout?.waveSize, wavePercent: options.rollout?.wavePercent });
  return withClient(options, async (client, workflowId) => {
    try {
      const handle = await client.workflow.start('migrateFleet', {
        workflowId,
        taskQueue: options.taskQueue ?? project.config.temporal.taskQueue,
        args: [input],
      });
      return { workflowId, runId: handle.firstExecutionRunId, waves };
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError || (err as Error).name === 'WorkflowExecutionAlreadyStartedError') {
        throw new PhasegateError('FleetAlreadyRunning', `fleet ${workflowId} is already running: see phasegate fleet status --name ${options.name ?? 'default'}, or give another --name`, {
          details: { workflowId },
        });
      }
      throw err;
    }
  }, project);
}

export async function fleetStatus(options: FleetOptions = {}): Promise<FleetStatusResult> {
  return withClient(options, async (client, workflowId) => {
    const handle = client.workflow.getHandle(workflowId);
    const description = await handle.describe();
    const query = () => handle.query<FleetStatus>('fleetStatus');
    const status = await (description.status.name === 'RUNNING' ? query() : client.connection.withDeadline(Date.now() + 5000, query)).catch((err: unknown) => {
      throw new PhasegateError('StatusUnavailable', `${workflowId} is ${description.status.name.toLowerCase()}; its status needs a running worker: ${(err as Error).message}`, {
        details: { workflowId, execution: description.status.name },
      });
    });
    return { workflowId, execution: description.status.name, status };
  });
}

/** Waits for the fleet to end and returns its result. */
export async function fleetResult(options: FleetOptions = {}): Promise<FleetResult> {
  return withClient(options, (client, workflowId) => client.workflow.getHandle(workflowId).result() as Promise<FleetResult>);
}

async function control(verb: FleetVerb, options: FleetOptions, input: Record<string, unknown>): Promise<FleetControlResult> {
  return withClient(options, async (client, workflowId) => {
    const handle = client.workflow.getHandle(workflowId);
    const description = await handle.describe();
    if (description.status.name !== 'RUNNING') {
      throw new PhasegateError('FleetFinished', `${workflowId} is ${description.status.name.toLowerCase()}; there is nothing to ${verb}`, { details: { workflowId } });
    }
    const answer = await executeOrRefuse<FleetAnswer>(handle, verb, input, (reason) => new PhasegateError('ControlRefused', `${workflowId} refused ${verb}: ${reason}`, { details: { workflowId, verb, reason } }));
    return { workflowId, verb, answer };
  });
}

const withoutUndefined = (o: Record<string, unknown>) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));

export const fleetPause = (o: FleetOptions & { by: string; comment?: string }) => control('pause', o, withoutUndefined({ by: o.by, comment: o.comment }));
export const fleetResume = (o: FleetOptions & { by: string; comment?: string }) => control('resume', o, withoutUndefined({ by: o.by, comment: o.comment }));
export const fleetAbort = (o: FleetOptions & { by: string; comment?: string }) => control('abort', o, withoutUndefined({ by: o.by, comment: o.comment }));
export const fleetApproveWave = (o: FleetOptions & { by: string; comment?: string; gate?: string }) =>
  control('approveWave', o, withoutUndefined({ by: o.by, comment: o.comment, gate: o.gate }));
export const fleetRetry = (o: FleetOptions & { by: string; comment?: string; databases?: string[] }) =>
  control('retry', o, withoutUndefined({ by: o.by, comment: o.comment, databases: o.databases }));

/** The status as a few lines for a terminal. */
export function formatFleetStatus(result: FleetStatusResult): string {
  const s = result.status;
  const counts = Object.entries(s.counts)
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${k} ${n}`)
    .join(' · ');
  const lines = [
    `${result.workflowId} (${result.execution.toLowerCase()}): ${s.state} — wave ${s.wave} (waves 0–${Math.max(0, s.waves.length - 1)}${s.rollout.canary > 0 ? ', 0 is the canary' : ''}), ${s.direction} to ${s.target}`,
    `  ${counts || 'no databases yet'}`,
  ];
  if (s.waiting) lines.push(`  ${s.waiting}`);
  if (s.eta) lines.push(`  eta ${s.eta}`);
  for (const f of s.failures) lines.push(`  ✗ ${f.database} (${f.state}): ${f.error ?? 'no error text'}`);
  return lines.join('\n');
}
