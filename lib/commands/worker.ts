/**
 * `phasegate worker` and `createWorker`: one worker on the configured task queue, serving the
 * project's databases with its revision files. The CLI verb runs it until SIGINT/SIGTERM (the SDK's
 * Runtime then drains it: in-flight activities finish or are handed back); an app or a test that
 * embeds a worker calls `createWorker` and decides when to run and stop it.
 */
import type { NativeConnection, Worker, WorkerOptions as SdkWorkerOptions } from '@temporalio/worker';

type WorkflowBundle = NonNullable<SdkWorkerOptions['workflowBundle']>;
import path from 'node:path';
import type { Logger } from 'pino';
import { createPhasegateWorker } from '../../workers/worker';
import type { PhasegateConfig } from '../config';
import { createLogger } from '../log';
import { installWorkerRuntime } from '../metrics';
import { loadProject, type ProjectOptions } from './project';

export interface WorkerOptions extends ProjectOptions {
  /** Overrides `temporal.taskQueue`. */
  taskQueue?: string;
}

export interface CreateWorkerOptions extends WorkerOptions {
  /** Where the worker's activities log (pino). Default: phasegate's logger (stderr, `PHASEGATE_LOG_LEVEL`). */
  log?: Logger;
  /** A Temporal connection to reuse; otherwise one is opened from the config and closed when the worker stops. */
  connection?: NativeConnection;
  /** Prebuilt workflow code (`bundleWorkflowCode`); default: the package's prebuilt bundle, or the sources bundled at start. */
  workflowBundle?: WorkflowBundle;
}

export interface PhasegateWorkerHandle {
  taskQueue: string;
  /** Database aliases this worker serves. */
  databases: string[];
  /** The SDK worker, for `getState()` and the like. */
  worker: Worker;
  /** Polls until `shutdown()` (or SIGINT/SIGTERM); then closes the database pools and the connection it opened. */
  run(): Promise<void>;
  /** Asks the worker to stop: running steps get the grace time to finish, then `run()` resolves. */
  shutdown(): void;
}

export interface WorkerResult {
  taskQueue: string;
  /** The worker's state once it stopped. */
  state: string;
}

/**
 * Activities resolve migrations folders against the process's directory; anchoring them to the
 * project folder here keeps `--config other/phasegate.config.ts` meaning the same folders.
 */
function anchorDirectories(config: PhasegateConfig, cwd: string): PhasegateConfig {
  const databases = Object.fromEntries(
    Object.entries(config.databases).map(([alias, db]) => [
      alias,
      db.migrationsDirectory ? { ...db, migrationsDirectory: path.resolve(cwd, db.migrationsDirectory) } : db,
    ]),
  );
  return { ...config, databases, migrations: { ...config.migrations, directory: path.resolve(cwd, config.migrations.directory) } };
}

/**
 * A worker for this project, created but not yet running. Fails before it polls anything when a
 * configured database has no URL (DatabaseUrlMissing) or Temporal cannot be reached.
 */
export async function createWorker(options: CreateWorkerOptions = {}): Promise<PhasegateWorkerHandle> {
  const project = loadProject(options);
  const config = anchorDirectories(project.config, project.cwd);
  const taskQueue = options.taskQueue ?? config.temporal.taskQueue;
  const log = options.log ?? createLogger('worker');
  const created = await createPhasegateWorker({
    config,
    log,
    taskQueue,
    ...(options.connection ? { connection: options.connection } : {}),
    ...(options.workflowBundle ? { workflowBundle: options.workflowBundle } : {}),
  });
  return { taskQueue, databases: Object.keys(config.databases), worker: created.worker, run: created.run, shutdown: () => created.worker.shutdown() };
}

export async function worker(options: WorkerOptions = {}): Promise<WorkerResult> {
  const log = createLogger('worker');
  // As workers/main.ts: the SDK's logs through pino, and the Prometheus endpoint, before any connection.
  const { metrics } = installWorkerRuntime(log);
  const running = await createWorker({ ...options, log });
  log.info({ taskQueue: running.taskQueue, databases: running.databases, metrics: metrics?.url ?? null }, 'phasegate worker started');
  await running.run();
  log.info({ state: running.worker.getState() }, 'phasegate worker stopped');
  return { taskQueue: running.taskQueue, state: running.worker.getState() };
}
