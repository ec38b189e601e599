/**
 * `npm start`: the whole local stack on embedded defaults — Temporal dev server (Web UI),
 * PostgreSQL, a worker, a demo table and a demo `migrate` workflow. Ctrl-C stops everything;
 * state persists in .data/ and is reused by the next start.
 */
import { Client, Connection } from '@temporalio/client';
import { Command, InvalidArgumentError } from 'commander';
import path from 'node:path';
import { loadConfigFile } from '../lib/config';
import type { Child } from './lib/processes';
import { startChild } from './lib/processes';
import { ensureDemoTable } from './lib/demo';
import { ensureDatabase, externalPostgres, startEmbeddedPostgres, type RunningPostgres } from './lib/postgres';
import { ensureTemporalCli } from './lib/temporal-cli';
import { startTemporalDevServer } from './lib/temporal-server';
import { migrate } from '../workflows';

const root = path.resolve(__dirname, '..');
const dataDir = path.join(root, '.data');

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
  .parse();
const opts = program.opts<{ rows: number; pgPort: number; temporalPort: number; uiPort: number }>();

const say = (line: string) => console.log(`[phasegate] ${line}`);
const children: Child[] = [];
let postgres: RunningPostgres | undefined;
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
    if (postgres) {
      await postgres.stop().catch(() => undefined);
      say('postgres stopped');
    }
    process.exit(code);
  })();
  return stopping;
}

async function main(): Promise<void> {
  process.on('SIGINT', () => void stopAll(0));
  process.on('SIGTERM', () => void stopAll(0));

  const cli = ensureTemporalCli(root, say);
  const temporalAddress = `127.0.0.1:${opts.temporalPort}`;
  const temporal = await startTemporalDevServer({
    cli: cli.path,
    cwd: root,
    port: opts.temporalPort,
    uiPort: opts.uiPort,
    dbFile: path.join(dataDir, 'temporal.db'),
    logFile: path.join(dataDir, 'temporal.log'),
  });
  children.push(temporal);
  say(`temporal dev server on ${temporalAddress} (state in .data/temporal.db, log in .data/temporal.log)`);

  if (process.env.DATABASE_URL) {
    postgres = externalPostgres(process.env.DATABASE_URL);
    say('postgres: using DATABASE_URL');
  } else {
    postgres = await startEmbeddedPostgres({ dataDir: path.join(dataDir, 'pg'), port: opts.pgPort });
    say(`postgres (embedded) on 127.0.0.1:${opts.pgPort}, data in .data/pg`);
  }
  const demoUrl = await ensureDatabase(postgres, 'phasegate_demo');
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
      say(`the worker exited (code ${code}); see .data/worker.log`);
      void stopAll(1);
    }
  });
  say('worker started (log in .data/worker.log)');

  const connection = await Connection.connect({ address: temporalAddress });
  const client = new Client({ connection, namespace: config.temporal.namespace });
  const workflowId = 'migrate-demo';
  const handle = await client.workflow.start(migrate, {
    workflowId,
    taskQueue: config.temporal.taskQueue,
    args: [{ database: 'demo', target: 'head', direction: 'upgrade' }],
    // A second `npm start` while the demo migration still runs attaches to it instead of failing.
    workflowIdConflictPolicy: 'USE_EXISTING',
  });
  await connection.close();

  const ui = `http://localhost:${opts.uiPort}`;
  console.log(`
phasegate is up (ready ${process.uptime().toFixed(1)} s after start)

  Temporal Web UI   ${ui}/namespaces/${config.temporal.namespace}/workflows
  demo workflow     ${workflowId} (run ${handle.firstExecutionRunId})
                    ${ui}/namespaces/${config.temporal.namespace}/workflows/${workflowId}
  demo database     ${demoUrl}

The demo migration makes accounts.org_id NOT NULL in phases (add → backfill → CHECK NOT VALID →
VALIDATE → SET NOT NULL) and waits at its first gate, "deploy:accounts.org_id", for your approval.

Next, in another terminal:
  export PATH="${path.dirname(cli.path)}:$PATH"
  npm run phasegate -- status --database demo --watch
  temporal workflow query --workflow-id ${workflowId} --name status
  temporal workflow signal --workflow-id ${workflowId} --name approve --input '{"by":"you"}'
      (or in the Web UI: open ${workflowId}, "Send a Signal", name approve, input {"by":"you"})
  temporal workflow signal --workflow-id ${workflowId} --name pause --input '{}'     (during the backfill)
  temporal workflow signal --workflow-id ${workflowId} --name resume --input '{}'
  psql ${demoUrl} -c '\\d accounts'
  npm test

Ctrl-C stops Temporal, PostgreSQL and the worker; state is kept in .data/ for the next start.
`);
}

main().catch(async (err) => {
  console.error(`[phasegate] ${(err as Error).message}`);
  await stopAll(1);
});
