/**
 * The worker process: `npm run worker` / `phasegate worker`. The SDK's Runtime shuts the worker
 * down gracefully on SIGINT/SIGTERM (in-flight activities finish or are handed back).
 *
 * PHASEGATE_WORKFLOW_BUNDLE names a prebuilt workflow bundle (the `code` of `bundleWorkflowCode`
 * for this very checkout, written to a file): the worker starts without bundling, which takes
 * seconds of CPU otherwise. A deploy builds it once per release; the fault tests once per file.
 *
 * Logs: JSON lines on stderr (pretty on a terminal), the SDK's own lines included; metrics: a
 * Prometheus endpoint, 127.0.0.1:9464 by default (lib/metrics.ts, docs/ops.md "Logs and metrics").
 * The Runtime that carries both is installed here, before the first connection; workers/worker.ts
 * does not, because tests run it in-process next to the SDK's default Runtime.
 */
import { DEFAULT_CONFIG_FILE, findConfigFile, loadConfigFile } from '../lib/config';
import { createLogger } from '../lib/log';
import { installWorkerRuntime } from '../lib/metrics';
import { createPhasegateWorker } from './worker';

async function main(): Promise<void> {
  const log = createLogger('worker');
  const { metrics } = installWorkerRuntime(log);
  const config = loadConfigFile(process.env.PHASEGATE_CONFIG ?? findConfigFile(process.cwd()) ?? DEFAULT_CONFIG_FILE);
  const bundle = process.env.PHASEGATE_WORKFLOW_BUNDLE;
  const { worker, run } = await createPhasegateWorker({ config, log, ...(bundle ? { workflowBundle: { codePath: bundle } } : {}) });
  log.info(
    { taskQueue: config.temporal.taskQueue, address: config.temporal.address, databases: Object.keys(config.databases), metrics: metrics?.url ?? 'off' },
    'phasegate worker started',
  );
  await run();
  log.info({ state: worker.getState() }, 'phasegate worker stopped');
}

main().catch((err) => {
  process.stderr.write(`phasegate worker: ${(err as Error).message}\n`);
  process.exitCode = 1;
});
