/**
 * `npm start`: the whole local stack on embedded defaults — Temporal dev server (Web UI),
 * PostgreSQL, a worker, a demo table and a demo `migrate` workflow. Ctrl-C stops everything;
 * state persists in .data/ and is reused by the next start.
 */
import { Client, Connection } from '@temporalio/client';
import { Command, InvalidArgumentError } from 'commander';
import { mkdirSync, rmSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { loadConfigFile } from '../lib/config';
import { metricsEndpoint } from '../lib/metrics';
import type { Child } from '../lib/local/processes';
import { startChild } from '../lib/local/processes';
import { ensureDemoTable } from './lib/demo';
import { ensureDatabase } from '../lib/local/postgres';
import { startLocalStack, type LocalStack } from '../lib/local/stack';
import { migrate } from '../workflows';
import { staticSummary } from '../lib/commands/migrate';

const root = path.resolve(__dirname, '..');

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('must be a positive whole number');
  return n;
}

const program = new Command('npm start')
  .description('start Temporal, PostgreSQL, a worker and the demo migration')
  .option('--rows <n>', 'rows in the demo accounts table (first start only)', positiveInt, Number(process.env.PHASEGATE_DEMO_ROWS ?? 200_000))
  .option('--pg-port <port>', 'embedded PostgreSQL port', positiveInt, Number(process.env.PHASEGATE_PG_PORT ?? 54329))
  .option('--temporal-port <port>', 'Temporal frontend port', positiveInt, Number(process.env.PHASEGATE_TEMPORAL_PORT ?? 7233))
  .option('--ui-port <port>', 'Temporal Web UI port', positiveInt, Number(process.env.PHASEGATE_TEMPORAL_UI_PORT ?? 8233))
  .option('--data-dir <folder>', 'where Temporal, PostgreSQL and the logs keep their state', process.env.PHASEGATE_DATA_DIR ?? path.join(root, '.data'))
  .parse();
const opts = program.opts<{ rows: number; pgPort: number; temporalPort: number; uiPort: number; dataDir: string }>();
const dataDir = path.resolve(opts.dataDir);

const say = (line: string) => console.log(`[phasegate] ${line}`);
const children: Child[] = [];
let stack: LocalStack | undefined;
let stopping: Promise<void> | undefined;

/**
 * Stops children in reverse start order, then PostgreSQL. A terminal's Ctrl-C reaches us more than
 * once (npm, tsx and node each see it), so repeated signals join the stop already under way.
 */
function stopAll(code: number): Promise<void> {
  stopping ??= (async () => {
    say('stopping…');
    for (const child of [...children].reverse()) {
      await child.stop('SIGINT').catch(() => undefined);
      say(`${child.name} stopped`);
    }
    if (stack) await stack.stop();
    process.exit(code);
  })();
  return stopping;
}

async function main(): Promise<void> {
  process.on('SIGINT', () => void stopAll(0));
  process.on('SIGTERM', () => void stopAll(0));

  // The same stack `phasegate dev` starts for a user's project (lib/local/stack.ts).
  stack = await startLocalStack({
    root,
    dataDir,
    pgPort: opts.pgPort,
    temporalPort: opts.temporalPort,
    uiPort: opts.uiPort,
    database: 'phasegate_demo',
    externalUrl: process.env.DATABASE_URL || undefined,
    say,
  });
  const { cli, temporalAddress } = stack;
  const demoUrl = await ensureDatabase(stack.postgres, 'phasegate_demo');
  const demo = await ensureDemoTable(demoUrl, opts.rows);
  say(demo.created ? `created demo table accounts with ${demo.rows} rows` : `demo table accounts exists (${demo.rows} rows)`);

  const env = { ...process.env, TEMPORAL_ADDRESS: temporalAddress, PHASEGATE_DATABASE_URL_DEMO: demoUrl };
  const config = loadConfigFile(path.join(root, 'temporal.config.ts'), env);
  const worker = startChild('worker', process.execPath, ['--import', 'tsx', path.join(root, 'workers', 'main.ts')], {
    cwd: root,
    env,
    logFile: path.join(dataDir, 'worker.log'),
  });
  children.push(worker);
  void worker.exited.then((code) => {
    if (!stopping) {
      say(`the worker exited (code ${code}); see ${dataDir}/worker.log`);
      void stopAll(1);
    }
  });
  say(`worker started (log in ${dataDir}/worker.log)`);

  const connection = await Connection.connect({ address: temporalAddress });
  const client = new Client({ connection, namespace: config.temporal.namespace });
  const workflowId = 'migrate-demo';
  const demoInput = { database: 'demo', target: 'head', direction: 'upgrade' as const };
  const handle = await client.workflow.start(migrate, {
    workflowId,
    taskQueue: config.temporal.taskQueue,
    args: [demoInput],
    staticSummary: staticSummary(demoInput),
    staticDetails: 'The demo of `npm start`: makes accounts.org_id NOT NULL in five steps, with a gate before the backfill.',
    // A second `npm start` while the demo migration still runs attaches to it instead of failing.
    workflowIdConflictPolicy: 'USE_EXISTING',
  });
  await connection.close();

  const ui = `http://localhost:${opts.uiPort}`;
  const namespace = config.temporal.namespace;
  // Every command below must work as printed: the address when it is not the CLI's default, and a
  // folder on PATH holding the CLI under the name `temporal`.
  const address = opts.temporalPort === 7233 ? '' : ` --address ${temporalAddress}`;
  const nsFlag = namespace === 'default' ? '' : ` --namespace ${namespace}`;
  const tflags = `${address}${nsFlag}`;
  const cliDir = temporalOnPath(cli.path);
  const phasegate = `npm run phasegate --${tflags}`;
  console.log(`
phasegate is up (ready ${process.uptime().toFixed(1)} s after start)

  Temporal Web UI   ${ui}/namespaces/${namespace}/workflows
  demo workflow     ${workflowId} (run ${handle.firstExecutionRunId})
                    ${ui}/namespaces/${namespace}/workflows/${workflowId}
  demo database     ${demoUrl}
  worker metrics    ${metricsUrl(env)}

The demo migration makes accounts.org_id NOT NULL in phases (add → backfill → CHECK NOT VALID →
VALIDATE → SET NOT NULL) and waits at its first gate, "deploy:accounts.org_id", for your approval.
Its backfill is paced at 2,000 rows/s (about ${Math.max(1, Math.round(demo.rows / 2000))} s for ${demo.rows} rows) so you can pause and resume it;
lift the limit with: ${phasegate} throttle --database demo --max-rows-per-second 0

Next, in another terminal (in this folder):
  export PATH="${cliDir}:$PATH"
  ${phasegate} status --database demo --watch
  ${phasegate} approve --database demo --by you
  ${phasegate} pause --database demo        (during the backfill; then: resume)
or with the temporal CLI:
  temporal workflow query${tflags} --workflow-id ${workflowId} --name status
  temporal workflow signal${tflags} --workflow-id ${workflowId} --name approve --input '{"by":"you"}'
  temporal workflow signal${tflags} --workflow-id ${workflowId} --name pause --input '{}'
  temporal workflow signal${tflags} --workflow-id ${workflowId} --name resume --input '{}'
or in the Web UI: open ${workflowId}, "Send a Signal", name approve, input {"by":"you"}.
  psql ${demoUrl} -c '\\d accounts'
  npm test

Ctrl-C stops Temporal, PostgreSQL and the worker; state is kept in ${shortPath(dataDir)}/ for the next start.
`);
}

/** Where the worker serves Prometheus metrics (lib/metrics.ts reads the same variables). */
function metricsUrl(env: NodeJS.ProcessEnv): string {
  const endpoint = metricsEndpoint(env);
  return endpoint ? `${endpoint.url} (PHASEGATE_METRICS_PORT)` : 'off (PHASEGATE_METRICS_PORT)';
}

/** A folder inside the current one as a relative path (.data), anything else absolute. */
function shortPath(folder: string): string {
  const relative = path.relative(process.cwd(), folder);
  return relative && !relative.startsWith('..') && !path.isAbsolute(relative) ? relative : folder;
}

/**
 * A folder to put on PATH in which the CLI is called `temporal` (a $TEMPORAL_CLI binary may have
 * another name): its own folder when it is, else a link in <data-dir>/bin.
 */
function temporalOnPath(cliPath: string): string {
  if (path.basename(cliPath) === 'temporal') return path.dirname(cliPath);
  const dir = path.join(dataDir, 'bin');
  const link = path.join(dir, 'temporal');
  mkdirSync(dir, { recursive: true });
  rmSync(link, { force: true });
  symlinkSync(path.resolve(cliPath), link);
  return dir;
}

main().catch(async (err) => {
  console.error(`[phasegate] ${(err as Error).message}`);
  await stopAll(1);
});
