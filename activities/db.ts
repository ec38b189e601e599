/**
 * Connection handling for activities: one pg.Pool per database alias, and helpers that always
 * release what they take in `finally`.
 */
import { Context } from '@temporalio/activity';
import pg from 'pg';
import { databaseFor, type PhasegateConfig } from '../lib/config';
import { classifyDatabaseError } from './failures';

/** Connections per database when its config entry sets no `poolSize`. */
export const DEFAULT_POOL_SIZE = 10;

/**
 * How many connections the worker opens to a database. A backfill slice holds one for its whole
 * call and the lock watcher and checks need their own, so parallelism must stay below this.
 */
export function poolSizeFor(config: PhasegateConfig, alias: string): number {
  return databaseFor(config, alias).poolSize ?? DEFAULT_POOL_SIZE;
}

export class DatabasePools {
  private readonly pools = new Map<string, pg.Pool>();

  constructor(private readonly config: PhasegateConfig) {}

  pool(alias: string): pg.Pool {
    let pool = this.pools.get(alias);
    if (!pool) {
      const { url } = databaseFor(this.config, alias);
      pool = new pg.Pool({ connectionString: url, max: poolSizeFor(this.config, alias), application_name: 'phasegate' });
      // An idle client that loses its connection emits 'error' on the pool; without a listener
      // that would crash the worker. The next checkout simply gets a fresh connection.
      pool.on('error', () => undefined);
      this.pools.set(alias, pool);
    }
    return pool;
  }

  async close(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map((p) => p.end()));
  }
}

/** The running activity's context, or undefined outside an activity (a CLI command, a test). */
function currentActivity(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}

/**
 * `pool.connect()`, but inside an activity the wait for a free connection heartbeats and ends when
 * the activity is cancelled. With more slices than connections, a queued slice would otherwise send
 * no heartbeat and time out although its worker is alive.
 */
function checkOut(pool: pg.Pool): Promise<pg.PoolClient> {
  const activity = currentActivity();
  if (!activity) return pool.connect();
  const signal = activity.cancellationSignal;
  if (signal.aborted) return Promise.reject(signal.reason);
  const connecting = pool.connect();
  return new Promise((resolve, reject) => {
    let abandoned = false;
    // Re-sends the details the previous attempt left (a backfill cursor), not `undefined`: a
    // heartbeat replaces the stored details, and the next attempt resumes from them. A slice checks
    // out its connection before its own first heartbeat of this attempt.
    const beat = setInterval(() => activity.heartbeat(activity.info.heartbeatDetails), 2_000);
    const settle = () => {
      clearInterval(beat);
      signal.removeEventListener('abort', onAbort);
    };
    const onAbort = () => {
      abandoned = true;
      settle();
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    connecting.then(
      (client) => {
        // pg-pool cannot withdraw a queued request: a connection that arrives after the cancel is
        // fresh and clean, so it goes straight back to the pool.
        if (abandoned) return client.release();
        settle();
        resolve(client);
      },
      (err: unknown) => {
        if (abandoned) return;
        settle();
        reject(err);
      },
    );
  });
}

export async function withClient<T>(pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await checkOut(pool);
  let broken: Error | undefined;
  // A checked-out client whose connection dies (pg_terminate_backend, a restart) emits 'error';
  // unheard, that would crash the worker. The failing query rejects as well, and that is handled.
  const onError = (err: Error) => (broken = err);
  client.on('error', onError);
  try {
    return await fn(client);
  } catch (err) {
    // A client whose session state is unknown (mid-transaction, session locks) is destroyed, not reused.
    broken = err as Error;
    throw err;
  } finally {
    client.off('error', onError);
    client.release(broken);
  }
}

export async function withTransaction<T>(client: pg.ClientBase, fn: () => Promise<T>): Promise<T> {
  await client.query('BEGIN');
  try {
    const result = await fn();
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/**
 * Whether retrying could succeed: lost connections, a restarting or overloaded server, lock
 * timeouts, deadlocks, serialization failures. The list itself is `classifyDatabaseError`'s.
 */
export function isTransientPgError(err: unknown): boolean {
  return classifyDatabaseError(err).transient;
}
