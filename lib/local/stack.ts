/**
 * The local stack that `npm start` (this repository's demo) and `phasegate dev` (a user's project)
 * both run: the Temporal dev server with phasegate's search attributes, and PostgreSQL (the server
 * of DATABASE_URL when set, else an embedded one whose data persists in the data folder).
 * Stopping it stops what it started, in reverse order; a server it did not start is left alone.
 */
import path from 'node:path';
import { ensureDatabase, externalPostgres, startEmbeddedPostgres, type RunningPostgres } from './postgres';
import type { Child } from './processes';
import { ensureTemporalCli, type FoundCli } from './temporal-cli';
import { startTemporalDevServer } from './temporal-server';

export interface LocalStackOptions {
  /** Folder whose `.tools/bin` holds (or receives) the temporal CLI, and the servers' working folder. */
  root: string;
  /** Where Temporal's SQLite file, PostgreSQL's data and the logs live. */
  dataDir: string;
  pgPort: number;
  temporalPort: number;
  uiPort: number;
  /** Database to create (if missing) on the server; its URL is `databaseUrl`. */
  database: string;
  /** DATABASE_URL, when the server is not embedded. */
  externalUrl?: string;
  say: (line: string) => void;
}

export interface LocalStack {
  cli: FoundCli;
  temporalAddress: string;
  uiUrl: string;
  databaseUrl: string;
  postgres: RunningPostgres;
  embeddedPostgres: boolean;
  /** Stops what this stack started: Temporal, then the embedded PostgreSQL. */
  stop(): Promise<void>;
}

export async function startLocalStack(opts: LocalStackOptions): Promise<LocalStack> {
  const cli = ensureTemporalCli(opts.root, opts.say);
  const temporalAddress = `127.0.0.1:${opts.temporalPort}`;
  const temporal: Child = await startTemporalDevServer({
    cli: cli.path,
    cwd: opts.root,
    port: opts.temporalPort,
    uiPort: opts.uiPort,
    dbFile: path.join(opts.dataDir, 'temporal.db'),
    logFile: path.join(opts.dataDir, 'temporal.log'),
  });
  opts.say(`temporal dev server on ${temporalAddress} (state in ${opts.dataDir}/temporal.db, log in ${opts.dataDir}/temporal.log)`);
  let postgres: RunningPostgres;
  try {
    if (opts.externalUrl) {
      postgres = externalPostgres(opts.externalUrl);
      opts.say('postgres: using DATABASE_URL');
    } else {
      postgres = await startEmbeddedPostgres({ dataDir: path.join(opts.dataDir, 'pg'), port: opts.pgPort });
      opts.say(`postgres (embedded) on 127.0.0.1:${opts.pgPort}, data in ${opts.dataDir}/pg`);
    }
  } catch (err) {
    await temporal.stop('SIGINT').catch(() => undefined);
    throw err;
  }
  let databaseUrl: string;
  try {
    databaseUrl = await ensureDatabase(postgres, opts.database);
  } catch (err) {
    await postgres.stop().catch(() => undefined);
    await temporal.stop('SIGINT').catch(() => undefined);
    throw err;
  }
  let stopping: Promise<void> | undefined;
  return {
    cli,
    temporalAddress,
    uiUrl: `http://localhost:${opts.uiPort}`,
    databaseUrl,
    postgres,
    embeddedPostgres: !opts.externalUrl,
    stop() {
      stopping ??= (async () => {
        await temporal.stop('SIGINT').catch(() => undefined);
        opts.say('temporal stopped');
        await postgres.stop().catch(() => undefined);
        if (!opts.externalUrl) opts.say('postgres stopped');
      })();
      return stopping;
    },
  };
}
