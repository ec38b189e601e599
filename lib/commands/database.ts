/**
 * Short-lived database connections for the commands that read or write the version table directly
 * (`current`, `check`, `stamp`, and the checks before `upgrade`/`downgrade` start a workflow).
 */
import pg from 'pg';
import { readHeads } from '../version-table';
import { databaseFor, databaseUrlSource, type PhasegateConfig } from '../config';
import { PhasegateError } from '../errors';

/** Connects to the database behind `alias`, runs `fn`, and always closes the connection. */
export async function withDatabase<T>(config: PhasegateConfig, alias: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const { url } = databaseFor(config, alias);
  const client = new pg.Client({ connectionString: url, application_name: 'phasegate-cli' });
  // A connection dropped while idle emits 'error' on the client; the pending query reports it instead.
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (err) {
    throw new PhasegateError(
      'DatabaseUnreachable',
      `cannot connect to database "${alias}": ${(err as Error).message}. Check its URL ` +
        `(${databaseUrlSource(config, alias)}) and that the server is up`,
      { retryable: true, details: { alias } },
    );
  }
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** The version table's rows for `alias`; [] when nothing was ever applied. */
export function readCurrentHeads(config: PhasegateConfig, alias: string): Promise<string[]> {
  return withDatabase(config, alias, (client) => readHeads(client, config));
}
