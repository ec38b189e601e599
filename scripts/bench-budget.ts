/**
 * `npm run bench -- --budget N`: three backfills at once on three databases of one server, under
 * a shared budget of N rows/s. Prints each backfill's rows/s and their sum over the time all three
 * ran (counted from the tables themselves every 250 ms), and the sum's deviation from the budget.
 */
import { Client, Connection } from '@temporalio/client';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import pino from 'pino';
import { loadConfig } from '../lib/config';
import { ensureDatabase, externalPostgres, startEmbeddedPostgres, type RunningPostgres } from '../lib/local/postgres';
import { freePort } from '../lib/local/ports';
import type { Child } from '../lib/local/processes';
import { ensureTemporalCli } from '../lib/local/temporal-cli';
import { startTemporalDevServer } from '../lib/local/temporal-server';
import { backfill } from '../workflows';
import { createPhasegateWorker } from '../workers/worker';

export async function runBudgetBench(budget: number, say: (line: string) => void): Promise<void> {
  const root = path.resolve(__dirname, '..');
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'phasegate-bench-budget-'));
  let postgres: RunningPostgres | undefined;
  let temporal: Child | undefined;
  let stopWorker: (() => Promise<void>) | undefined;
  // ~25 s per backfill at its third of the budget.
  const rows = Math.max(10_000, Math.round((budget / 3) * 25));
  try {
    postgres = process.env.DATABASE_URL ? externalPostgres(process.env.DATABASE_URL) : await startEmbeddedPostgres({ dataDir: path.join(tmp, 'pg'), port: await freePort() });
    const names = ['budget_a', 'budget_b', 'budget_c'];
    const urls: string[] = [];
    for (const name of names) {
      const url = await ensureDatabase(postgres, name);
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      await c.query('DROP TABLE IF EXISTS items');
      await c.query('CREATE TABLE items (id bigint PRIMARY KEY, v bigint)');
      await c.query('INSERT INTO items (id) SELECT g FROM generate_series(1, $1::int) g', [rows]);
      await c.query('ANALYZE items');
      await c.end();
      urls.push(url);
    }
    const cli = ensureTemporalCli(root, say);
    const port = await freePort();
    temporal = await startTemporalDevServer({ cli: cli.path, cwd: root, port, uiPort: await freePort(), dbFile: path.join(tmp, 'temporal.db'), logFile: path.join(tmp, 'temporal.log') });
    const address = `127.0.0.1:${port}`;
    const taskQueue = 'phasegate-bench-budget';
    const config = loadConfig(
      {
        temporal: { address, taskQueue },
        servers: { main: { maxRowsPerSecond: budget } },
        databases: Object.fromEntries(names.map((n, i) => [n.replace('_', '-'), { url: urls[i], server: 'main' }])),
      },
      {},
    );
    say('starting a worker (bundles the workflow code)…');
    const w = await createPhasegateWorker({ config, log: pino({ level: 'warn' }, pino.destination(2)), taskQueue });
    const running = w.run();
    stopWorker = async () => {
      w.worker.shutdown();
      await running;
    };
    const client = new Client({ connection: await Connection.connect({ address }) });
    say(`three backfills of ${rows.toLocaleString('en')} rows each under a budget of ${budget.toLocaleString('en')} rows/s…`);
    const handles = await Promise.all(
      names.map((n) =>
        client.workflow.start(backfill, {
          workflowId: `bench-budget-${n}-${Date.now()}`,
          taskQueue,
          args: [{ database: n.replace('_', '-'), revision: 'bench', spec: { table: 'items', set: { v: 'id' }, where: 'v IS NULL', batchSize: 500, sliceCallMs: 2000 } }],
        }),
      ),
    );
    const samples: Array<{ t: number; done: number[] }> = [];
    const pools = urls.map((url) => new pg.Pool({ connectionString: url, max: 1 }));
    const count = async (i: number) => Number((await pools[i].query<{ n: string }>('SELECT count(*) AS n FROM items WHERE v IS NOT NULL')).rows[0].n);
    const results = Promise.all(handles.map((h) => h.result()));
    let finished = false;
    void results.finally(() => (finished = true));
    while (!finished) {
      samples.push({ t: Date.now(), done: await Promise.all([0, 1, 2].map(count)) });
      await new Promise((r) => setTimeout(r, 250));
    }
    await results;
    await Promise.all(pools.map((p) => p.end()));
    // Overlap: from the first sample where all three have moved to the last where none is finished.
    const first = samples.findIndex((s) => s.done.every((d) => d > 0));
    let last = samples.length - 1;
    while (last > first && samples[last].done.some((d) => d >= rows)) last--;
    const a = samples[first];
    const b = samples[last];
    const seconds = (b.t - a.t) / 1000;
    const rates = [0, 1, 2].map((i) => (b.done[i] - a.done[i]) / seconds);
    const sum = rates.reduce((x, y) => x + y, 0);
    const deviation = ((sum - budget) / budget) * 100;
    console.log(`
budget                     ${budget.toLocaleString('en')} rows/s on server main, 3 backfills, ${rows.toLocaleString('en')} rows each
overlap measured           ${seconds.toFixed(1)} s (all three running)
${names.map((n, i) => `  ${n.padEnd(24)} ${Math.round(rates[i]).toLocaleString('en').padStart(8)} rows/s`).join('\n')}
summed rows/s              ${Math.round(sum).toLocaleString('en')}
deviation from budget      ${deviation >= 0 ? '+' : ''}${deviation.toFixed(1)} %  (${Math.abs(deviation) <= 10 ? 'within' : 'OUTSIDE'} the 10 % target)
`);
  } finally {
    await stopWorker?.().catch(() => undefined);
    await temporal?.stop('SIGINT').catch(() => undefined);
    await postgres?.stop().catch(() => undefined);
    rmSync(tmp, { recursive: true, force: true });
  }
}
