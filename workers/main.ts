/**
 * The worker process: `npm run worker` / `phasegate worker`. The SDK's Runtime shuts the worker
 * down gracefully on SIGINT/SIGTERM (in-flight activities finish or are handed back).
 */
import { loadConfigFile } from '../lib/config';
import { createLogger } from '../lib/log';
import { createPhasegateWorker } from './worker';

async function main(): Promise<void> {
  const log = createLogger('worker');
  const config = loadConfigFile(process.env.PHASEGATE_CONFIG ?? 'temporal.config.ts');
  const { worker, run } = await createPhasegateWorker({ config, log });
  log.info(
    { taskQueue: config.temporal.taskQueue, address: config.temporal.address, databases: Object.keys(config.databases) },
    'phasegate worker started',
  );
  await run();
  log.info({ state: worker.getState() }, 'phasegate worker stopped');
}

main().catch((err) => {
  process.stderr.write(`phasegate worker: ${(err as Error).message}\n`);
  process.exitCode = 1;
});
