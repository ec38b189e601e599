/**
 * Connection handling for activities: one pg.Pool per database alias, and helpers that always
 * release what they take in `finally`.
 */
import pg from 'pg';
import { databaseFor, type PhasegateConfig } from '../lib/config';

export class DatabasePools {
  private readonly pools = new Map<string, pg.Pool>();

  constructor(private readonly config: PhasegateConfig) {}

  pool(alias: string): pg.Pool {
    let pool = this.pools.get(alias);
    if (!pool) {
      const { url } = databaseFor(this.config, alias);
      pool = new pg.Pool({ connectionString: url, max: 8, application_name: 'phasegate' });
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

export async function withClient<T>(pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
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
 * SQLSTATE classes worth retrying: lock timeouts, deadlocks, serialization, lost connections. A
 * statement_timeout (57014) is not: the same statement would run just as long again.
 */
export function isTransientPgError(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code;
  if (typeof code !== 'string') {
    const message = (err as Error)?.message ?? '';
    return /Connection terminated|ECONNREFUSED|ECONNRESET|connection.*closed/i.test(message);
  }
  return (
    code === '55P03' || // lock_not_available (lock_timeout)
    code === '40P01' || // deadlock_detected
    code === '40001' || // serialization_failure
    code.startsWith('08') || // connection exceptions
    code === '57P01' || // admin_shutdown (pg_terminate_backend)
    code === '57P02' ||
    code === '57P03'
  );
}
