/**
 * Builds a phasegate worker: one connection, the bundled workflows and the activities.
 */
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { createActivities } from '../activities';
import { DatabasePools } from '../activities/db';
import { requireDatabaseUrls, type PhasegateConfig } from '../lib/config';
import { temporalConnectionOptions } from '../lib/temporal-connection';

export interface PhasegateWorker {
  worker: Worker;
  /** Runs until shutdown, then closes the connection and the database pools. */
  run(): Promise<void>;
}

/**
 * The installed package ships its workflow bundle prebuilt (`dist/workflow-bundle.js`, written by
 * `npm run build` from the same sources): the worker then starts without webpack. From the sources
 * (this repository, tsx) the workflows are bundled at start, as before.
 */
export const PREBUILT_BUNDLE = path.resolve(__dirname, '..', 'workflow-bundle.js');

function workflowCode(given: WorkerOptions['workflowBundle']): Pick<WorkerOptions, 'workflowBundle' | 'workflowsPath'> {
  if (given) return { workflowBundle: given };
  if (existsSync(PREBUILT_BUNDLE)) return { workflowBundle: { codePath: PREBUILT_BUNDLE } };
  return { workflowsPath: require.resolve('../workflows') };
}

export async function createPhasegateWorker(opts: {
  config: PhasegateConfig;
  log: Logger;
  /** Pre-bundled workflow code (tests bundle once per file); otherwise bundled from workflows/. */
  workflowBundle?: WorkerOptions['workflowBundle'];
  taskQueue?: string;
  connection?: NativeConnection;
}): Promise<PhasegateWorker> {
  // A worker serves every configured database: one whose URL is unset fails here, at start, naming
  // the alias, rather than in the first activity that connects to it.
  requireDatabaseUrls(opts.config);
  const connection = opts.connection ?? (await NativeConnection.connect(temporalConnectionOptions(opts.config)));
  const pools = new DatabasePools(opts.config);
  const worker = await Worker.create({
    connection,
    namespace: opts.config.temporal.namespace,
    taskQueue: opts.taskQueue ?? opts.config.temporal.taskQueue,
    ...workflowCode(opts.workflowBundle),
    activities: createActivities({ config: opts.config, pools, log: opts.log }),
    // A deploy's SIGTERM lets running steps finish (or be cancelled cleanly) for this long before
    // they are handed back; a step cut off anyway is retried on another worker and is idempotent.
    shutdownGraceTime: '30 seconds',
  });
  return {
    worker,
    async run() {
      try {
        await worker.run();
      } finally {
        await pools.close();
        if (!opts.connection) await connection.close();
      }
    },
  };
}
