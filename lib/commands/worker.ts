/**
 * `phasegate worker`: what `npm run worker` runs — one worker on the configured task queue, until
 * SIGINT/SIGTERM (the SDK's Runtime then drains it: in-flight activities finish or are handed back).
 */
import path from 'node:path';
import { createPhasegateWorker } from '../../workers/worker';
import type { PhasegateConfig } from '../config';
import { createLogger } from '../log';
import { installWorkerRuntime } from '../metrics';
import { loadProject, type ProjectOptions } from './project';

export interface WorkerOptions extends ProjectOptions {
  /** Overrides `temporal.taskQueue`. */
  taskQueue?: string;
}

export interface WorkerResult {
  taskQueue: string;
  /** The worker's state once it stopped. */
  state: string;
}

/**
 * Activities resolve migrations folders against the process's directory; anchoring them to the
 * project folder here keeps `--config other/temporal.config.ts` meaning the same folders.
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

export async function worker(options: WorkerOptions = {}): Promise<WorkerResult> {
  const project = loadProject(options);
  const config = anchorDirectories(project.config, project.cwd);
  const taskQueue = options.taskQueue ?? config.temporal.taskQueue;
  const log = createLogger('worker');
  // As workers/main.ts: the SDK's logs through pino, and the Prometheus endpoint, before any connection.
  const { metrics } = installWorkerRuntime(log);
  const { worker: running, run } = await createPhasegateWorker({ config, log, taskQueue });
  log.info({ taskQueue, address: config.temporal.address, databases: Object.keys(config.databases), metrics: metrics?.url ?? null }, 'phasegate worker started');
  await run();
  log.info({ state: running.getState() }, 'phasegate worker stopped');
  return { taskQueue, state: running.getState() };
}
