/**
 * `npm run bench -- --rows N [--json]`: phasegate's backfill against one plain UPDATE of the same
 * change, on a fresh copy of the same table each time, while a fixed-rate application load (point
 * reads and updates by key) measures what each does to the application's latency.
 *
 * Everything runs locally and durably: PostgreSQL with fsync and synchronous_commit on (DATABASE_URL,
 * or an embedded server in a temporary folder), a Temporal dev server on free ports with a
 * temporary state file, and a real phasegate worker in this process.
 */
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { Command, InvalidArgumentError } from 'commander';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import pino from 'pino';
import { loadConfig } from '../lib/config';
import type { BackfillSpec } from '../lib/revision';
import { backfill } from '../workflows';
import { backfillStatusQuery } from '../workflows/messages';
import { createPhasegateWorker } from '../workers/worker';
import { startLoad, type LoadStats } from './lib/load';
import { runBudgetBench } from './bench-budget';
import { ensureDatabase, externalPostgres, startEmbeddedPostgres, type RunningPostgres } from '../lib/local/postgres';
import { freePort } from '../lib/local/ports';
import { startChild, type Child } from '../lib/local/processes';
import { ensureTemporalCli } from '../lib/local/temporal-cli';
import { startTemporalDevServer } from '../lib/local/temporal-server';

const root = path.resolve(__dirname, '..');

function positiveInt(value: string): number {
  const n = Number(value.replace(/_/g, ''));
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('must be a positive whole number');
  return n;
}
function share(value: string): number {
  const n = Number(value);
  if (!(n >= 0 && n <= 1)) throw new InvalidArgumentError('must be a number from 0 to 1');
  return n;
}

const program = new Command('npm run bench --')
  .description("phasegate's backfill against a single UPDATE: rows/s, and the application's latency during each")
  .option('--rows <n>', 'rows in the benchmark table', positiveInt, 1_000_000)
  .option('--json', 'print one JSON object (progress goes to stderr)', false)
  .option('--rate <ops>', 'application operations per second', positiveInt, 200)
  .option('--update-share <0..1>', 'share of application operations that are updates', share, 0.2)
  .option('--idle-seconds <s>', 'how long to measure the idle latency', positiveInt, 10)
  .option('--batch-size <n>', "backfill's starting batch size (spec batchSize; default: the config default)", positiveInt)
  .option('--target-batch-ms <ms>', "backfill's target batch duration (spec targetBatchMs; default 200)", positiveInt)
  .option('--parallelism <n>', "backfill's slices (spec parallelism; default 1)", positiveInt)
  .option('--budget <rows/s>', 'instead: three concurrent backfills on three databases of one server under this shared rows/s budget', positiveInt)
  .option('--in-process-worker', 'run the phasegate worker inside the benchmark process (default: its own process, like production)', false)
  .parse();
const opts = program.opts<{
  rows: number;
  json: boolean;
  rate: number;
  updateShare: number;
  idleSeconds: number;
  batchSize?: number;
  targetBatchMs?: number;
  parallelism?: number;
  inProcessWorker: boolean;
  budget?: number;
}>();

const say = (line: string) => process.stderr.write(`[bench] ${line}\n`);
const TABLE = 'accounts';
const SET_EXPRESSION = '(id % 1000) + 1';
const WHERE = 'org_id IS NULL';

/** A fresh table for each run: same rows, same physical layout, no dead tuples, stats current. */
async function buildTable(url: string, rows: number): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`DROP TABLE IF EXISTS ${TABLE}`);
    await client.query(`
      CREATE TABLE ${TABLE} (
        id     bigint PRIMARY KEY,
        email  text NOT NULL,
        plan   text NOT NULL,
        hits   integer NOT NULL DEFAULT 0,
        org_id bigint
      )`);
    await client.query(
      `INSERT INTO ${TABLE} (id, email, plan)
       SELECT g, 'user' || g || '@example.com', (ARRAY['free','team','enterprise'])[1 + g % 3]
       FROM generate_series(1, $1::bigint) AS g`,
      [rows],
    );
    await client.query(`VACUUM (ANALYZE) ${TABLE}`);
    // Both runs start right after a checkpoint, so each pays the same full-page writes.
    await client.query('CHECKPOINT');
  } finally {
    await client.end();
  }
}

async function scalar<T>(url: string, sql: string): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query(sql);
    return Object.values(rows[0])[0] as T;
  } finally {
    await client.end();
  }
}

async function main(): Promise<void> {
  Runtime.install({ logger: new DefaultLogger('WARN') });
  if (opts.budget) return runBudgetBench(opts.budget, say);
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'phasegate-bench-'));
  let postgres: RunningPostgres | undefined;
  let temporal: Child | undefined;
  let stopWorker: (() => Promise<void>) | undefined;
  try {
    // ── services ──
    if (process.env.DATABASE_URL) {
      postgres = externalPostgres(process.env.DATABASE_URL);
      say('postgres: DATABASE_URL');
    } else {
      // Durable on purpose (fsync, synchronous_commit on): per-batch commits must pay their real cost.
      postgres = await startEmbeddedPostgres({ dataDir: path.join(tmp, 'pg'), port: await freePort() });
      say(`postgres: embedded, data in ${path.join(tmp, 'pg')}`);
    }
    const url = await ensureDatabase(postgres, 'phasegate_bench');
    const settings = await scalar<string>(
      url,
      `SELECT string_agg(name || '=' || setting || coalesce(unit, ''), ' ' ORDER BY name) FROM pg_settings
       WHERE name IN ('fsync', 'synchronous_commit', 'shared_buffers', 'max_wal_size', 'full_page_writes', 'server_version')`,
    );
    say(`postgres settings: ${settings}`);

    const cli = ensureTemporalCli(root, say);
    const temporalPort = await freePort();
    temporal = await startTemporalDevServer({
      cli: cli.path,
      cwd: root,
      port: temporalPort,
      uiPort: await freePort(),
      dbFile: path.join(tmp, 'temporal.db'),
      logFile: path.join(tmp, 'temporal.log'),
    });
    const address = `127.0.0.1:${temporalPort}`;
    const taskQueue = 'phasegate-bench';
    const config = loadConfig({ temporal: { address, taskQueue }, databases: { bench: { url } } }, {});
    say('starting a worker (bundles the workflow code)…');
    if (opts.inProcessWorker) {
      const phasegateWorker = await createPhasegateWorker({ config, log: pino({ level: 'warn' }, pino.destination(2)), taskQueue });
      const running = phasegateWorker.run();
      stopWorker = async () => {
        phasegateWorker.worker.shutdown();
        await running;
      };
    } else {
      // Its own process, as in production: the load generator's event loop and the worker's never
      // share a thread, so latency measures the database, not this process.
      const configFile = path.join(tmp, 'phasegate.config.js');
      writeFileSync(configFile, `module.exports = ${JSON.stringify({ temporal: { address, taskQueue }, databases: { bench: { url } } })};\n`);
      const logFile = path.join(tmp, 'worker.log');
      const child = startChild('worker', process.execPath, ['--import', 'tsx', path.join(root, 'workers', 'main.ts')], {
        cwd: root,
        env: { ...process.env, PHASEGATE_CONFIG: configFile, PHASEGATE_LOG_LEVEL: 'info' },
        logFile,
      });
      stopWorker = () => child.stop('SIGINT');
      const deadline = Date.now() + 120_000;
      while (!(existsSync(logFile) && readFileSync(logFile, 'utf8').includes('phasegate worker started'))) {
        if (child.process.exitCode !== null) throw new Error(`the worker exited; see ${logFile}:\n${readFileSync(logFile, 'utf8')}`);
        if (Date.now() > deadline) throw new Error(`the worker did not start within 120 s; see ${logFile}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    const connection = await Connection.connect({ address });
    const client = new Client({ connection });

    const load = () =>
      startLoad({
        url,
        table: TABLE,
        keyColumn: 'id',
        maxKey: opts.rows,
        counterColumn: 'hits',
        ratePerSecond: opts.rate,
        updateShare: opts.updateShare,
        connections: 4,
      });

    // A long-lived worker has run workflows before: warm this one up (workflow sandbox loaded,
    // pool connected) on a tiny table, so its first-run costs do not land in a measurement.
    say('warming up the worker…');
    await (async () => {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try {
        await c.query('DROP TABLE IF EXISTS bench_warmup');
        await c.query('CREATE TABLE bench_warmup (id bigint PRIMARY KEY, v bigint)');
        await c.query('INSERT INTO bench_warmup (id) SELECT g FROM generate_series(1, 1000) g');
        await client.workflow.execute(backfill, {
          workflowId: `bench-warmup-${Date.now()}`,
          taskQueue,
          args: [{ database: 'bench', revision: 'warmup', spec: { table: 'bench_warmup', set: { v: 'id' }, where: 'v IS NULL' } }],
        });
        await c.query('DROP TABLE bench_warmup');
      } finally {
        await c.end();
      }
    })();

    // ── idle ──
    say(`building ${opts.rows.toLocaleString('en')} rows…`);
    await buildTable(url, opts.rows);
    say(`idle latency for ${opts.idleSeconds} s (${opts.rate} ops/s, ${Math.round(opts.updateShare * 100)}% updates)…`);
    const idleLoad = await load();
    await new Promise((r) => setTimeout(r, opts.idleSeconds * 1000));
    const idle = await idleLoad.stop();

    // ── single UPDATE ──
    say('single UPDATE…');
    const single = await (async () => {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try {
        const running = await load();
        const t0 = performance.now();
        const { rowCount } = await c.query(`UPDATE ${TABLE} SET org_id = ${SET_EXPRESSION} WHERE ${WHERE}`);
        const seconds = (performance.now() - t0) / 1000;
        const latency = await running.stop();
        return { seconds, rows: rowCount ?? 0, latency };
      } finally {
        await c.end();
      }
    })();

    // ── phasegate backfill ──
    say('rebuilding the table for the backfill…');
    await buildTable(url, opts.rows);
    say('phasegate backfill (default settings)…');
    const spec: BackfillSpec = {
      table: TABLE,
      set: { org_id: SET_EXPRESSION },
      where: WHERE,
      ...(opts.batchSize ? { batchSize: opts.batchSize } : {}),
      ...(opts.targetBatchMs ? { targetBatchMs: opts.targetBatchMs } : {}),
      ...(opts.parallelism ? { parallelism: opts.parallelism } : {}),
    };
    const bf = await (async () => {
      const running = await load();
      const t0 = performance.now();
      const handle = await client.workflow.start(backfill, {
        workflowId: `bench-backfill-${Date.now()}`,
        taskQueue,
        args: [{ database: 'bench', revision: 'bench', spec }],
      });
      const result = await handle.result();
      const seconds = (performance.now() - t0) / 1000;
      const latency = await running.stop();
      const status = await handle.query(backfillStatusQuery);
      const history = await handle.fetchHistory();
      const events = history.events ?? [];
      const sliceCalls = events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'backfillSlice').length;
      return { seconds, result, latency, status, historyEvents: events.length, sliceCalls };
    })();
    // Dead tuples appear batch by batch, so autovacuum may work on the table during a backfill
    // (never during the single UPDATE, whose dead tuples appear at its commit): worth knowing.
    const autovacuums = Number(
      await scalar<string>(
        url,
        `SELECT (SELECT autovacuum_count FROM pg_stat_user_tables WHERE relname = '${TABLE}')
              + (SELECT count(*) FROM pg_stat_progress_vacuum WHERE relid = '${TABLE}'::regclass)`,
      ),
    );
    const left = Number(await scalar<string>(url, `SELECT count(*) FROM ${TABLE} WHERE ${WHERE}`));
    if (left !== 0) throw new Error(`the backfill left ${left} rows unwritten`);
    await connection.close();

    const singleRate = single.rows / single.seconds;
    const backfillRate = bf.result.rowsUpdated / bf.seconds;
    const report = {
      rows: opts.rows,
      singleUpdateSeconds: round(single.seconds, 2),
      singleUpdateRowsPerSec: Math.round(singleRate),
      backfillSeconds: round(bf.seconds, 2),
      backfillRowsPerSec: Math.round(backfillRate),
      ratio: round(backfillRate / singleRate, 2),
      idleP50Ms: round(idle.p50Ms, 2),
      idleP99Ms: round(idle.p99Ms, 2),
      idleMaxMs: round(idle.maxMs, 2),
      singleUpdateP50Ms: round(single.latency.p50Ms, 2),
      singleUpdateP99Ms: round(single.latency.p99Ms, 2),
      singleUpdateMaxMs: round(single.latency.maxMs, 2),
      backfillP50Ms: round(bf.latency.p50Ms, 2),
      backfillP99Ms: round(bf.latency.p99Ms, 2),
      backfillMaxMs: round(bf.latency.maxMs, 2),
      p99ByKindMs: {
        idle: { read: round(idle.readP99Ms, 2), update: round(idle.updateP99Ms, 2) },
        singleUpdate: { read: round(single.latency.readP99Ms, 2), update: round(single.latency.updateP99Ms, 2) },
        backfill: { read: round(bf.latency.readP99Ms, 2), update: round(bf.latency.updateP99Ms, 2) },
      },
      latencySamples: { idle: idle.operations, singleUpdate: single.latency.operations, backfill: bf.latency.operations },
      loadErrors: idle.errors + single.latency.errors + bf.latency.errors,
      historyEvents: bf.historyEvents,
      runs: bf.result.runs,
      sliceCalls: bf.sliceCalls,
      finalBatchSize: bf.status.batchSize,
      autovacuumsDuringBackfill: autovacuums,
      load: { ratePerSecond: opts.rate, updateShare: opts.updateShare, connections: 4 },
      spec,
      postgres: settings,
      worker: opts.inProcessWorker ? 'in-process' : 'own process',
    };
    if (opts.json) {
      process.stdout.write(`${JSON.stringify(report)}\n`);
    } else {
      printTable(report, { idle, single: single.latency, backfill: bf.latency });
    }
  } finally {
    await stopWorker?.().catch(() => undefined);
    await temporal?.stop('SIGINT').catch(() => undefined);
    await postgres?.stop().catch(() => undefined);
    rmSync(tmp, { recursive: true, force: true });
  }
}

function round(n: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

function printTable(
  r: {
    rows: number;
    singleUpdateSeconds: number;
    singleUpdateRowsPerSec: number;
    backfillSeconds: number;
    backfillRowsPerSec: number;
    ratio: number;
    historyEvents: number;
    runs: number;
    sliceCalls: number;
    finalBatchSize: number;
    autovacuumsDuringBackfill: number;
    postgres: string;
  },
  latency: { idle: LoadStats; single: LoadStats; backfill: LoadStats },
): void {
  const n = (v: number) => v.toLocaleString('en');
  const ms = (s: LoadStats) =>
    `${s.p50Ms.toFixed(1).padStart(8)} ${s.p99Ms.toFixed(1).padStart(9)} ${s.maxMs.toFixed(1).padStart(9)}   ` +
    `(${s.operations} ops${s.errors ? `, ${s.errors} errors` : ''}; p99 reads ${s.readP99Ms.toFixed(1)}, updates ${s.updateP99Ms.toFixed(1)})`;
  console.log(`
rows                       ${n(r.rows)}
                           seconds     rows/s
single UPDATE             ${r.singleUpdateSeconds.toFixed(2).padStart(8)} ${n(r.singleUpdateRowsPerSec).padStart(10)}
phasegate backfill        ${r.backfillSeconds.toFixed(2).padStart(8)} ${n(r.backfillRowsPerSec).padStart(10)}   ratio ${r.ratio.toFixed(2)}×

app latency (ms)             p50       p99       max   ${opts.rate} ops/s, ${Math.round(opts.updateShare * 100)}% updates
  idle                    ${ms(latency.idle)}
  during single UPDATE    ${ms(latency.single)}
  during backfill         ${ms(latency.backfill)}

backfill history          ${r.historyEvents} events, ${r.runs} run(s), ${r.sliceCalls} slice call(s), final batch size ${n(r.finalBatchSize)}
autovacuum on the table   ${r.autovacuumsDuringBackfill} run(s) during the backfill
postgres                  ${r.postgres}
`);
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(`[bench] ${(err as Error).stack ?? err}`);
    process.exit(1);
  },
);
