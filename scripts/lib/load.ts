/**
 * A fixed-rate application load for the benchmark: point reads and point updates by primary key,
 * on connections of its own. Open loop: operation i is due at start + i / rate whether or not
 * earlier ones finished, and its latency is measured from when it was due, so a stall shows up in
 * full instead of silently lowering the rate (no coordinated omission).
 */
import pg from 'pg';
import { qualified, quoteIdent } from '../../lib/sql';

export interface LoadOptions {
  url: string;
  table: string;
  keyColumn: string;
  /** Keys are drawn uniformly from 1..maxKey. */
  maxKey: number;
  /** An integer column the updates increment (not the one being backfilled). */
  counterColumn: string;
  ratePerSecond: number;
  /** Share of operations that are updates (the rest are reads). */
  updateShare: number;
  connections: number;
  /** Per-statement limit, so a stuck operation ends as an error instead of hanging the run. */
  statementTimeoutMs?: number;
}

export interface LoadStats {
  operations: number;
  errors: number;
  seconds: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** The same, split by kind: lock waits show in updates, CPU contention in both. */
  readP99Ms: number;
  updateP99Ms: number;
}

export interface RunningLoad {
  /** Stops issuing operations, waits for those in flight, returns latency over the whole run. */
  stop(): Promise<LoadStats>;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index];
}

export async function startLoad(opts: LoadOptions): Promise<RunningLoad> {
  const pool = new pg.Pool({ connectionString: opts.url, max: opts.connections, application_name: 'bench load' });
  pool.on('error', () => undefined);
  // Open every connection before the clock starts: connection setup is not what we measure.
  const warm = await Promise.all(Array.from({ length: opts.connections }, () => pool.connect()));
  for (const client of warm) {
    if (opts.statementTimeoutMs) await client.query(`SET statement_timeout = ${Number(opts.statementTimeoutMs)}`);
    client.release();
  }
  const table = qualified(opts.table);
  const key = quoteIdent(opts.keyColumn);
  const counter = quoteIdent(opts.counterColumn);
  const read = `SELECT * FROM ${table} WHERE ${key} = $1`;
  const update = `UPDATE ${table} SET ${counter} = ${counter} + 1 WHERE ${key} = $1`;

  const latencies: number[] = [];
  const byKind: Record<'read' | 'update', number[]> = { read: [], update: [] };
  let errors = 0;
  const inFlight = new Set<Promise<void>>();
  const started = performance.now();
  const interval = 1000 / opts.ratePerSecond;
  let issued = 0;
  let running = true;

  const runOne = (due: number) => {
    const kind = Math.random() < opts.updateShare ? 'update' : 'read';
    const id = 1 + Math.floor(Math.random() * opts.maxKey);
    const op = pool
      .query(kind === 'update' ? update : read, [id])
      .then(
        () => {
          const ms = performance.now() - due;
          latencies.push(ms);
          byKind[kind].push(ms);
        },
        () => void errors++,
      )
      .finally(() => inFlight.delete(op));
    inFlight.add(op);
  };

  const tick = () => {
    if (!running) return;
    const now = performance.now();
    while (started + issued * interval <= now) {
      runOne(started + issued * interval);
      issued++;
    }
    setTimeout(tick, Math.max(1, Math.min(5, started + issued * interval - performance.now())));
  };
  tick();

  return {
    async stop() {
      running = false;
      const seconds = (performance.now() - started) / 1000;
      await Promise.all([...inFlight]);
      await pool.end();
      const sorted = [...latencies].sort((a, b) => a - b);
      return {
        operations: latencies.length + errors,
        errors,
        seconds,
        p50Ms: percentile(sorted, 50),
        p99Ms: percentile(sorted, 99),
        maxMs: sorted.length ? sorted[sorted.length - 1] : 0,
        readP99Ms: percentile([...byKind.read].sort((a, b) => a - b), 99),
        updateP99Ms: percentile([...byKind.update].sort((a, b) => a - b), 99),
      };
    },
  };
}
