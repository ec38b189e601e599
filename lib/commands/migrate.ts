/**
 * `phasegate upgrade` and `phasegate downgrade`.
 *
 * Online (default): everything that can be checked locally is checked first — the alias, the
 * revision files, the graph, the target, the whole plan — so bad input fails before anything
 * changes; then the `migrate` workflow is started (one per database: id `migrate-<alias>`) and
 * followed through its `status` query until it ends.
 *
 * Offline (`sql: true`, Alembic's `--sql`): the plan for a `from:to` range is rendered as a SQL
 * script; the database is never contacted.
 */
import { Client, Connection } from '@temporalio/client';
import { setTimeout as sleep } from 'node:timers/promises';
import type { migrate as migrateWorkflow } from '../../workflows';
import type { MigrateInput, MigrateResult, MigrateState, MigrateStatus, PendingGate, StepStatus } from '../../workflows/messages';
import { configFileName, databaseFor } from '../config';
import { PhasegateError } from '../errors';
import { renderOfflineScript } from '../offline-sql';
import { buildPlan, type Direction, type Plan } from '../plan';
import { temporalConnectionOptions } from '../temporal-connection';
import { readCurrentHeads } from './database';
import { loadProject, loadRevisions, migrationsDirectory, type Project, type ProjectOptions } from './project';
import { DEFAULT_DATABASE } from './version';
import { sameHeads } from '../version-table';

export interface MigrateCommandOptions extends ProjectOptions {
  /** Alias of a configured database. Default `default`. */
  database?: string;
  /**
   * Online: a revision id, `head`, `heads`, `base`, `+N`, `-N`, `<label>@head`, … (upgrade defaults
   * to `head`; downgrade needs one). Offline: `from:to` as well — for upgrade `to` alone starts
   * at base; downgrade needs both ends.
   */
  target?: string;
  /** Render the SQL script instead of running anything (Alembic's offline mode). */
  sql?: boolean;
  /** Follow the workflow until it ends (default); `false` returns once it has started. */
  wait?: boolean;
  /**
   * How far to follow: `done` (default) until the workflow ends, through every gate; `gate` also
   * returns when it stops at a gate for a person (outcome `awaiting-approval`, with the gate), so a
   * deploy pipeline can ship the app, approve, and follow again (`follow`).
   */
  until?: 'done' | 'gate';
  /** A connected Temporal client to use (otherwise one is connected from the config and closed after). */
  client?: Client;
  /** Task queue of the workers; default `temporal.taskQueue` from the config. */
  taskQueue?: string;
  /** How often the status query is polled while following. Default 1000 ms. */
  pollIntervalMs?: number;
  /** Progress while following: the workflow started, a step finished, the state changed, a warning. */
  onEvent?: (event: MigrateEvent) => void;
}

export type MigrateEvent =
  | { type: 'started'; workflowId: string; runId: string; steps: PlannedStep[] }
  /** `direction` words the step for the text output: a downgrade step is undone, not applied. */
  | { type: 'step'; step: StepStatus; direction?: Direction }
  | { type: 'state'; state: MigrateState; revision: string | null; waiting: string | null }
  | { type: 'warning'; message: string };

export interface PlannedStep {
  revision: string;
  message: string;
  transactional: boolean;
  phase?: string;
  operations: string[];
}

export interface OfflineMigrateResult {
  mode: 'sql';
  database: string;
  direction: Direction;
  /** The range as given, e.g. `base:head`. */
  range: string;
  /** The version-table rows the script starts from ([] = base). */
  from: string[];
  steps: PlannedStep[];
  script: string;
}

export interface OnlineMigrateResult {
  mode: 'workflow';
  database: string;
  direction: Direction;
  target: string;
  /**
   * `done` after following it to the end; `rolled-back` when a gate was rejected (or expired) and
   * the applied revisions were undone; `started` with wait: false; `nothing-to-do` when no
   * workflow was needed.
   */
  outcome: 'done' | 'rolled-back' | 'abandoned' | 'started' | 'nothing-to-do' | 'awaiting-approval';
  workflowId: string | null;
  runId: string | null;
  headsBefore: string[];
  planned: PlannedStep[];
  /** Revisions the workflow ran (or found already run), in order; empty unless followed. */
  applied: string[];
  /** Revisions undone by a rollback, in the order they were undone. */
  rolledBack: string[];
  /** The version table's rows at the end; the planned end state when not followed or stopped at a gate. */
  headsAfter: string[];
  /** With `until: 'gate'`, the gate the workflow waits at (outcome `awaiting-approval`). */
  gate?: PendingGate;
}

export type MigrateCommandResult = OfflineMigrateResult | OnlineMigrateResult;

const plannedSteps = (plan: Plan): PlannedStep[] =>
  plan.steps.map((s) => ({
    revision: s.revision,
    message: s.message,
    transactional: s.transactional,
    ...(s.phase ? { phase: s.phase } : {}),
    operations: s.operations,
  }));

/** The one-line summary a starter puts on the workflow (the UI's list and page show it). */
export function staticSummary(input: { database: string; target?: string; direction?: string }): string {
  return `${input.direction ?? 'upgrade'} ${input.database} to ${input.target ?? 'head'}`;
}

/** The plan as Markdown, for the workflow's static details in the UI. */
export function plannedDetails(planned: PlannedStep[]): string {
  return ['Planned steps:', '', ...planned.map((p, i) => `${i + 1}. \`${p.revision}\` ${p.message}${p.phase ? ` [${p.phase}]` : ''}`)].join('\n');
}

export function workflowIdFor(database: string): string {
  return `migrate-${database}`;
}

export function upgrade(options: MigrateCommandOptions & { sql: true }): Promise<OfflineMigrateResult>;
export function upgrade(options?: MigrateCommandOptions & { sql?: false }): Promise<OnlineMigrateResult>;
export function upgrade(options?: MigrateCommandOptions): Promise<MigrateCommandResult>;
export function upgrade(options: MigrateCommandOptions = {}): Promise<MigrateCommandResult> {
  return runMigrateCommand('upgrade', options);
}

export function downgrade(options: MigrateCommandOptions & { sql: true }): Promise<OfflineMigrateResult>;
export function downgrade(options: MigrateCommandOptions & { sql?: false }): Promise<OnlineMigrateResult>;
export function downgrade(options: MigrateCommandOptions): Promise<MigrateCommandResult>;
export function downgrade(options: MigrateCommandOptions): Promise<MigrateCommandResult> {
  return runMigrateCommand('downgrade', options);
}

async function runMigrateCommand(direction: Direction, options: MigrateCommandOptions): Promise<MigrateCommandResult> {
  const project = loadProject(options);
  const database = options.database ?? DEFAULT_DATABASE;
  const target = options.target ?? (direction === 'upgrade' ? 'head' : undefined);
  if (target === undefined || target.trim() === '') {
    throw new PhasegateError(
      'MissingTarget',
      'downgrade needs a target: a revision id, -1 (one step down) or base (everything); `phasegate history` lists the revisions',
    );
  }
  // The workflow refuses a longer one too; saying so here keeps a pasted blob out of every message.
  if (target.length > 500) {
    throw new PhasegateError(
      'InvalidTarget',
      `the target is ${target.length} characters long; give a revision id, head, heads, base, +N, -N or <label>@head (at most 500 characters)`,
    );
  }
  return options.sql
    ? renderScript(project, database, direction, target)
    : runOnline(project, database, direction, target, options);
}

// ── offline ──────────────────────────────────────────────────────────────────────────────────────

/**
 * Parses `from:to`; `to` alone means from base for an upgrade and is refused for a downgrade.
 * `from` may name several heads, comma-separated (`a,b:head`), when the database has several lines.
 */
export function parseOfflineRange(direction: Direction, range: string): { from: string; to: string } {
  const parts = range.split(':').map((p) => p.trim());
  if (parts.length === 1 && direction === 'upgrade') return { from: 'base', to: parts[0] };
  if (parts.length === 2 && parts[0] !== '' && parts[1] !== '') return { from: parts[0], to: parts[1] };
  throw new PhasegateError(
    'InvalidRange',
    direction === 'downgrade'
      ? `downgrade --sql needs a starting point, since it never reads the database: write <from>:<to>, e.g. "head:-1" or "head:base" (got "${range}")`
      : `upgrade --sql takes <to> (from base) or <from>:<to>, e.g. "head" or "ae10:head" (got "${range}")`,
    { details: { range } },
  );
}

async function renderScript(project: Project, database: string, direction: Direction, range: string): Promise<OfflineMigrateResult> {
  const { from, to } = parseOfflineRange(direction, range);
  // Offline mode needs no URL (a configured alias may have none): an alias that is not configured
  // here reads the default folder.
  const loaded = loadRevisions(migrationsDirectory(project, project.config.databases[database] ? database : undefined));
  // `a,b:target`: a starting point of several heads (one line each).
  const start = loaded.graph.versionHeads(from.split(',').flatMap((head) => loaded.graph.resolve(head.trim(), [])));
  const plan = await buildPlan({ database, revisions: loaded.revisions, currentHeads: start, target: to, direction });
  if (direction === 'downgrade' && plan.steps.length === 0 && !sameHeads(loaded.graph.versionHeads(loaded.graph.resolve(to, start)), start)) {
    // Why refuse (as Alembic does): an empty script for `X:Y` with Y beside or above X reads as
    // "nothing to un-apply" when the range itself is wrong.
    throw new PhasegateError(
      'WrongDirection',
      `downgrade ${from}:${to} un-applies nothing: "${to}" is not below "${from}" (${start.join(', ') || 'base'}). ` +
        `Name a lower revision (e.g. "${from}:-1" or "${from}:base"), or use \`upgrade ${from}:${to} --sql\` to go up`,
      { details: { from, to } },
    );
  }
  return {
    mode: 'sql',
    database,
    direction,
    range,
    from: start,
    steps: plannedSteps(plan),
    script: renderOfflineScript(plan, project.config, { range: `${from}:${to}` }),
  };
}

// ── online ───────────────────────────────────────────────────────────────────────────────────────

export async function connectClient(project: Project): Promise<{ client: Client; close: () => Promise<void> }> {
  const options = temporalConnectionOptions(project.config);
  let connection: Connection;
  try {
    connection = await Connection.connect(options);
  } catch (err) {
    throw new PhasegateError(
      'TemporalUnreachable',
      `cannot reach Temporal at ${options.address}: ${(err as Error).message}. Start it (\`npm start\`, or ` +
        '`temporal server start-dev`), or point phasegate at yours: --address host:port (or TEMPORAL_ADDRESS, ' +
        `--profile <name> of your temporal CLI config, temporal.address in ${configFileName(project.config)})`,
      { retryable: true, details: { address: options.address } },
    );
  }
  return { client: new Client({ connection, namespace: project.config.temporal.namespace }), close: () => connection.close() };
}

/** The innermost failure of a chain (workflow → activity → application failure): the one that says what went wrong. */
function rootCause(err: unknown): { message: string; type: string | null } {
  let current = err as { message?: string; cause?: unknown; type?: string } | undefined;
  while (current?.cause) current = current.cause as typeof current;
  return { message: current?.message ?? String(err), type: current?.type ?? null };
}

async function runOnline(
  project: Project,
  database: string,
  direction: Direction,
  target: string,
  options: MigrateCommandOptions,
): Promise<OnlineMigrateResult> {
  // Unknown alias or unset URL: refused here, before the revision files or anything else is read.
  databaseFor(project.config, database);
  const loaded = loadRevisions(migrationsDirectory(project, database));
  const headsBefore = await readCurrentHeads(project.config, database);
  // The same plan the workflow's first activity will build; here it only proves the input is good.
  const plan = await buildPlan({ database, revisions: loaded.revisions, currentHeads: headsBefore, target, direction });
  const planned = plannedSteps(plan);
  const base = { mode: 'workflow' as const, database, direction, target, headsBefore, planned };
  if (plan.steps.length === 0) {
    return { ...base, outcome: 'nothing-to-do', workflowId: null, runId: null, applied: [], rolledBack: [], headsAfter: headsBefore };
  }

  const { client, close } = options.client ? { client: options.client, close: async () => undefined } : await connectClient(project);
  try {
    const taskQueue = options.taskQueue ?? project.config.temporal.taskQueue;
    const workflowId = workflowIdFor(database);
    await warnWithoutWorkers(client, project.config.temporal.namespace, taskQueue, options.onEvent);
    const input: MigrateInput = { database, target, direction };
    let handle;
    try {
      handle = await client.workflow.start<typeof migrateWorkflow>('migrate', {
        workflowId,
        taskQueue,
        args: [input],
        // Shown on the workflow's page in the Temporal UI; the workflow keeps "Current Details" up to date.
        staticSummary: staticSummary(input),
        staticDetails: plannedDetails(planned),
      });
    } catch (err) {
      if ((err as Error).name === 'WorkflowExecutionAlreadyStartedError') {
        throw new PhasegateError(
          'MigrationAlreadyRunning',
          `a migration of database "${database}" is already running (workflow ${workflowId}); follow it with phasegate status, or cancel it in the UI`,
          { details: { database, workflowId } },
        );
      }
      throw err;
    }
    const runId = handle.firstExecutionRunId;
    options.onEvent?.({ type: 'started', workflowId, runId, steps: planned });
    const plannedHeadsAfter = plan.steps[plan.steps.length - 1].headsAfter;
    if (options.wait === false) {
      return { ...base, outcome: 'started', workflowId, runId, applied: [], rolledBack: [], headsAfter: plannedHeadsAfter };
    }
    const result = await followStoppable(client, handle, options, { database, direction, workflowId, planned });
    if ('gate' in result) return { ...base, outcome: 'awaiting-approval', workflowId, runId, applied: result.applied, rolledBack: [], headsAfter: plannedHeadsAfter, gate: result.gate };
    return { ...base, outcome: result.outcome, workflowId, runId, applied: result.applied, rolledBack: result.rolledBack, headsAfter: result.headsAfter };
  } finally {
    await close();
  }
}

/**
 * The exit code a pipeline step should end with: 0 when the migration reached its target (or had
 * nothing to do, or was started with wait: false), 2 when it waits at a gate for a person, 3 when
 * it ended rolled back or abandoned (the database is not at the target). Failures throw instead
 * (the CLI exits 1).
 */
export function exitCodeFor(result: Pick<OnlineMigrateResult, 'outcome'>): 0 | 2 | 3 {
  if (result.outcome === 'awaiting-approval') return 2;
  if (result.outcome === 'rolled-back' || result.outcome === 'abandoned') return 3;
  return 0;
}

export interface FollowOptions extends ProjectOptions {
  /** Database alias; its running (else newest) `migrate` workflow is followed. Default `default`. */
  database?: string;
  /** Follow this workflow instead of the one the alias names. */
  workflowId?: string;
  until?: 'done' | 'gate';
  client?: Client;
  pollIntervalMs?: number;
  onEvent?: (event: MigrateEvent) => void;
}

export type FollowResult = Pick<OnlineMigrateResult, 'database' | 'outcome' | 'workflowId' | 'applied' | 'rolledBack' | 'gate'> & {
  direction: Direction;
  /** The version table's rows at the end (the workflow's result); null while it waits at a gate. */
  headsAfter: string[] | null;
};

/**
 * Follows a migration that is already running (the second half of a deploy pipeline: after the
 * approval, until the end or the next gate). Same semantics as `upgrade`'s following: a failure
 * throws MigrationFailed/MigrationBlocked; a gate returns `awaiting-approval` with `until: 'gate'`.
 */
export async function follow(options: FollowOptions = {}): Promise<FollowResult> {
  const project = loadProject(options);
  const database = options.database ?? DEFAULT_DATABASE;
  const { client, close } = options.client ? { client: options.client, close: async () => undefined } : await connectClient(project);
  try {
    const { migrationWorkflowId } = await import('./control');
    const workflowId = options.workflowId ?? (await migrationWorkflowId(client, database));
    const handle = client.workflow.getHandle<typeof migrateWorkflow>(workflowId);
    let status: MigrateStatus;
    try {
      status = await handle.query<MigrateStatus>('status');
    } catch (err) {
      if ((err as Error).name === 'WorkflowNotFoundError') {
        throw new PhasegateError('MigrationNotFound', `no migration workflow ${workflowId}; start one with phasegate upgrade, or name it with --workflow-id`, { details: { workflowId } });
      }
      throw err;
    }
    const planned = status.steps.map((st) => ({ revision: st.revision, message: st.message, transactional: true, operations: [] as string[], ...(st.phase ? { phase: st.phase } : {}) }));
    const result = await followStoppable(client, handle, options, { database, direction: status.direction, workflowId, planned });
    if ('gate' in result) return { database, direction: status.direction, outcome: 'awaiting-approval', workflowId, applied: result.applied, rolledBack: [], headsAfter: null, gate: result.gate };
    return { database, direction: status.direction, outcome: result.outcome, workflowId, applied: result.applied, rolledBack: result.rolledBack, headsAfter: result.headsAfter };
  } finally {
    await close();
  }
}

/** A workflow whose task queue nobody polls waits silently; say so instead of hanging unexplained. */
async function warnWithoutWorkers(client: Client, namespace: string, taskQueue: string, onEvent: MigrateCommandOptions['onEvent']) {
  if (!onEvent) return;
  try {
    const response = await client.workflowService.describeTaskQueue({ namespace, taskQueue: { name: taskQueue } });
    if ((response.pollers ?? []).length === 0) {
      onEvent({
        type: 'warning',
        message: `no worker polls task queue "${taskQueue}" right now; the migration starts when one does (run \`phasegate worker\`)`,
      });
    }
  } catch {
    // Only a hint: without it the migration still starts.
  }
}

/** `until: 'gate'`: the workflow waits at this gate; `applied` is what it applied before it. */
interface StoppedAtGate {
  gate: PendingGate;
  applied: string[];
}

/**
 * Follows with the result's long poll cancellable: when following stops before the workflow ends
 * (at a gate, or on a failure that waits for a person), the poll is aborted, so the command
 * returns and its process exits at once instead of holding the connection until the server ends
 * the poll (about 20 s).
 */
async function followStoppable(
  client: Client,
  handle: FollowedHandle,
  options: Pick<MigrateCommandOptions, 'pollIntervalMs' | 'onEvent' | 'until'>,
  context: { database: string; direction: Direction; workflowId: string; planned: PlannedStep[] },
): Promise<MigrateResult | StoppedAtGate> {
  const controller = new AbortController();
  const cancellable: FollowedHandle = {
    result: () => client.connection.withAbortSignal(controller.signal, () => handle.result()),
    query: (name) => handle.query(name),
  };
  try {
    return await followHandle(cancellable, options, context);
  } finally {
    controller.abort();
  }
}

interface FollowedHandle {
  result(): Promise<MigrateResult>;
  query<R>(name: string): Promise<R>;
}

async function followHandle(
  handle: FollowedHandle,
  options: MigrateCommandOptions,
  { database, direction, workflowId, planned }: { database: string; direction: Direction; workflowId: string; planned: PlannedStep[] },
): Promise<MigrateResult | StoppedAtGate> {
  const interval = options.pollIntervalMs ?? 1000;
  /** The last state reported per revision: a step is reported again when it is rolled back. */
  const reported = new Map<string, string>();
  let lastState: string | null = null;
  let settled: { ok: true; value: MigrateResult } | { ok: false; error: unknown } | undefined;
  const result = handle.result().then(
    (value) => (settled = { ok: true, value }),
    (error: unknown) => (settled = { ok: false, error }),
  );
  const report = (status: MigrateStatus) => {
    for (const step of status.steps) {
      if (['applied', 'undone', 'already-applied', 'failed', 'rolled-back'].includes(step.state) && reported.get(step.revision) !== step.state) {
        reported.set(step.revision, step.state);
        options.onEvent?.({ type: 'step', step, direction });
      }
    }
    const state = `${status.state}|${status.revision}|${status.waiting ?? ''}`;
    if (state !== lastState) {
      lastState = state;
      options.onEvent?.({ type: 'state', state: status.state, revision: status.revision, waiting: status.waiting ?? null });
    }
  };

  while (!settled) {
    await Promise.race([sleep(interval), result]);
    if (settled) break;
    let current: MigrateStatus | null = null;
    try {
      current = await handle.query<MigrateStatus>('status');
      report(current);
      if (options.until === 'gate' && current.state === 'awaiting-approval' && current.gate) {
        const applied = current.steps.filter((st) => st.state === 'applied' || st.state === 'already-applied').map((st) => st.revision);
        return { gate: current.gate, applied };
      }
    } catch {
      // A query can fail while a worker restarts; the next poll tries again, and the result decides.
    }
    if (current && (current.state === 'failed' || current.state === 'blocked') && current.failure) {
      // The workflow keeps waiting for a person; the command says so and ends, it does not hang.
      const f = current.failure;
      const step = current.steps.find((s) => s.revision === f.revision);
      throw new PhasegateError(
        current.state === 'blocked' ? 'MigrationBlocked' : 'MigrationFailed',
        `the migration of database "${database}" stopped at revision ${f.revision}${step ? ` (${step.message})` : ''} and waits in state ${current.state} ` +
          `(workflow ${workflowId}): ${f.message}. ` +
          `Nothing was rolled back. It waits for a person: ${f.options.map((o) => `phasegate ${o} --workflow-id ${workflowId} --by <you>`).join(' | ')}`,
        { details: { database, workflowId, revision: f.revision, causeType: f.type, state: current.state } },
      );
    }
  }
  const outcome = settled as NonNullable<typeof settled>;
  if (!outcome.ok) {
    const cause = rootCause(outcome.error);
    // One last look at the status names the step that failed; bounded, since it needs a live worker.
    const final = await Promise.race([handle.query<MigrateStatus>('status').catch(() => null), sleep(3000).then(() => null)]);
    if (final) report(final);
    const failed = final?.steps.find((s) => s.state === 'failed');
    const at = failed ? ` at revision ${failed.revision} (${failed.message})` : '';
    const undone = final?.steps.filter((s) => s.state === 'rolled-back').map((s) => s.revision) ?? [];
    const after = undone.length
      ? `The revisions this run applied were rolled back (${undone.reverse().join(', ')}), so the database is where it started`
      : 'Nothing after the failed revision ran';
    throw new PhasegateError(
      'MigrationFailed',
      `the migration of database "${database}" failed${at} (workflow ${workflowId}): ${cause.message}. ` +
        `${after}; see the workflow in the Temporal UI, fix the cause, and run the command again`,
      { details: { database, workflowId, revision: failed?.revision ?? null, causeType: cause.type } },
    );
  }
  // Steps that finished after the last poll: reported from the result.
  for (const revision of outcome.value.applied) {
    if (reported.has(revision)) continue;
    const step = planned.find((p) => p.revision === revision);
    options.onEvent?.({
      type: 'step',
      step: { revision, message: step?.message ?? '', ...(step?.phase ? { phase: step.phase } : {}), state: direction === 'downgrade' ? 'undone' : 'applied' },
      direction,
    });
  }
  return outcome.value;
}
