/**
 * phasegate's configuration: one typed object, validated with zod. `temporal.config.ts` at the
 * project root (or the file given with --config) supplies the raw input; `loadConfig` validates it
 * against the environment and reports every problem at once. Database URLs live only here (worker
 * side): workflows see aliases.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { prepareToRequire } from './loader';
import { windowProblems, type WindowSpec } from './window';
import { ConfigError, DatabaseUrlMissingError, databaseUrlVariable, UnknownDatabaseError } from './errors';

/**
 * The config files looked for, in order, when none is named (`--config`, PHASEGATE_CONFIG).
 * `phasegate init` writes the first: in an app repository that uses Temporal itself, a file named
 * after phasegate cannot be mistaken for (or collide with) the app's own Temporal settings.
 * `temporal.config.ts` is still found: this repository's demo (whose layout the product fixes)
 * and projects set up before 0.2.0 use it.
 */
export const CONFIG_FILES = ['phasegate.config.ts', 'phasegate.config.js', 'temporal.config.ts'] as const;
/** The file `init` writes, and the name messages use for a config built in code. */
export const DEFAULT_CONFIG_FILE: string = CONFIG_FILES[0];

/** The config file of the project in `cwd`: the first of CONFIG_FILES that exists, else undefined. */
export function findConfigFile(cwd: string): string | undefined {
  return CONFIG_FILES.map((name) => path.join(cwd, name)).find((file) => existsSync(file));
}

const durationMs = z.number().int().nonnegative();
const identifier = z.string().regex(/^[A-Za-z_][A-Za-z0-9_$]*$/, 'must be a plain SQL identifier (letters, digits, _)');

const tlsSchema = z
  .object({
    serverNameOverride: z.string().optional(),
    serverRootCACertPath: z.string().optional(),
    clientCertPath: z.string().optional(),
    clientKeyPath: z.string().optional(),
  })
  .strict()
  // Half a pair would connect without a client certificate, silently: mTLS needs both files.
  .refine((t) => (t.clientCertPath === undefined) === (t.clientKeyPath === undefined), {
    error: 'clientCertPath and clientKeyPath go together (mTLS needs both files); give both or neither',
  });

const databaseSchema = z
  .object({
    /**
     * Optional here, required when a command connects (`databaseFor`): `url: process.env.PROD_URL`
     * with PROD_URL unset must not stop the offline verbs (heads, history, --sql, revision, lint).
     * A URL that is set but malformed is still refused at load: that is a typo, not an absence.
     */
    url: z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgres:// or postgresql:// URL').optional(),
    /** Folder of revision files for this database; defaults to `migrations.directory`. */
    migrationsDirectory: z.string().min(1).optional(),
    /** Who may approve gates on this database; anyone when absent. A gate's own list narrows it. */
    approvers: z.array(z.string().min(1)).min(1).optional(),
    /**
     * Connections the worker keeps to this database (default 10, see `poolSizeFor`). A backfill
     * slice holds one for its whole call, so parallelism must stay below it.
     */
    poolSize: z.number().int().min(2).max(500).optional(),
    /**
     * The database server (a name from `servers`, never a host) whose shared throttle budget this
     * database's backfills take part in; none = no shared budget.
     */
    server: z.string().min(1).optional(),
    /**
     * Maintenance window for this database (lib/window.ts): steps that take a lock from SHARE up
     * start only inside it, unless their revision sets its own `window` (or `window: null` to opt out).
     */
    window: z
      .custom<WindowSpec>()
      .superRefine((value, ctx) => {
        for (const problem of windowProblems(value)) ctx.addIssue({ code: 'custom', message: problem });
      })
      .optional(),
  })
  .strict();

/** One database server's throttle budget, shared by every backfill on its databases. */
const serverSchema = z
  .object({
    /** Rows per second for all backfills on the server together, divided equally among the running ones. */
    maxRowsPerSecond: z.number().positive().max(100_000_000).optional(),
    /** Backfills running on the server at once; the rest wait in FIFO order. */
    maxConcurrentBackfills: z.number().int().min(1).max(1000).optional(),
    /** How often a backfill re-joins its budget (default 60000); one silent for 3 × this is dropped. */
    leaseMs: z.number().int().min(100).max(3_600_000).optional(),
  })
  .strict();

export const configSchema = z
  .object({
    temporal: z
      .object({
        address: z.string().min(1).default('localhost:7233'),
        namespace: z.string().min(1).default('default'),
        taskQueue: z.string().min(1).default('phasegate'),
        tls: z.union([z.boolean(), tlsSchema]).optional(),
        apiKey: z.string().min(1).optional(),
      })
      .strict()
      .prefault({}),
    databases: z.record(z.string().regex(/^[a-z][a-z0-9_-]*$/, 'alias must be lowercase letters, digits, _ or -'), databaseSchema).default({}),
    /** Database servers with a shared throttle budget, by name (`databases.<alias>.server`). */
    servers: z.record(z.string().regex(/^[a-z][a-z0-9_-]*$/, 'server name must be lowercase letters, digits, _ or -'), serverSchema).default({}),
    migrations: z
      .object({
        directory: z.string().min(1).default('migrations/versions'),
        versionTableSchema: identifier.default('public'),
        versionTable: identifier.default('phasegate_version'),
      })
      .strict()
      .prefault({}),
    /** Autogenerate's desired schema (`phasegate revision --autogenerate`, `check`, `drift`). */
    schema: z
      .object({
        /** The SQL file holding the schema as it should be; relative to the project folder. */
        file: z.string().min(1).default('schema.sql'),
        /** Where PostgreSQL parses it: a scratch database on the target server, or a temporary embedded PostgreSQL. */
        shadow: z.enum(['scratch', 'embedded'], { error: 'must be "scratch" (a throwaway database on the target server) or "embedded" (a temporary local PostgreSQL)' }).default('scratch'),
      })
      .strict()
      .prefault({}),
    defaults: z
      .object({
        /** Longest wait for a lock before a DDL statement gives up (and is retried with backoff). */
        lockTimeoutMs: durationMs.default(500),
        /** Longest a single statement may run; 0 = no limit. */
        statementTimeoutMs: durationMs.default(0),
        batchSize: z.number().int().positive().max(1_000_000).default(1000),
        /** A step that hits lock_timeout is tried again after a jittered, growing pause. */
        lockRetry: z
          .object({
            maxAttempts: z.number().int().positive().default(30),
            initialDelayMs: durationMs.default(1000),
            maxDelayMs: durationMs.default(30_000),
          })
          .strict()
          .prefault({}),
      })
      .strict()
      .prefault({}),
  })
  .strict()
  .superRefine((config, ctx) => {
    const known = Object.keys(config.servers);
    for (const [alias, db] of Object.entries(config.databases)) {
      if (db.server !== undefined && !known.includes(db.server)) {
        ctx.addIssue({
          code: 'custom',
          path: ['databases', alias, 'server'],
          message: `unknown server "${db.server}"; ${known.length ? `known servers: ${known.join(', ')}` : 'no servers are configured (add it under servers)'}`,
        });
      }
    }
  });

export type PhasegateConfigInput = z.input<typeof configSchema>;
export type PhasegateConfig = z.output<typeof configSchema> & {
  /**
   * The file this config was loaded from, as messages name it (`other.ts` with --config other.ts);
   * absent for a config built in code, whose messages name the default file.
   */
  configFile?: string;
};
export type DatabaseConfig = z.output<typeof databaseSchema>;
/** A database entry whose URL is set: what a command that connects gets from `databaseFor`. */
export type ConnectableDatabase = DatabaseConfig & { url: string };

/** The config file that messages name: the one loaded, else the default name. */
export function configFileName(config: Pick<PhasegateConfig, 'configFile'>): string {
  return config.configFile ?? DEFAULT_CONFIG_FILE;
}

/** Typed identity for the config file, so editors check the shape as it is written. */
export function defineConfig(config: PhasegateConfigInput): PhasegateConfigInput {
  return config;
}

const ENV_DATABASE_PREFIX = 'PHASEGATE_DATABASE_URL_';

/**
 * Databases named by the environment: `PHASEGATE_DATABASE_URL_<ALIAS>=postgres://…` adds alias
 * `<alias>` (lowercased); `DATABASE_URL` stands for `default`. Entries in the config file win.
 */
function databasesFromEnv(env: NodeJS.ProcessEnv): Record<string, { url: string }> {
  const found: Record<string, { url: string }> = {};
  if (env.DATABASE_URL) found.default = { url: env.DATABASE_URL };
  for (const [key, value] of Object.entries(env)) {
    if (key.startsWith(ENV_DATABASE_PREFIX) && value) {
      found[key.slice(ENV_DATABASE_PREFIX.length).toLowerCase()] = { url: value };
    }
  }
  return found;
}

/**
 * Validates raw config plus environment; throws one ConfigError listing every problem.
 * `configFile` is the file the raw config came from; messages then name it.
 */
export function loadConfig(raw: unknown, env: NodeJS.ProcessEnv = process.env, configFile?: string): PhasegateConfig {
  const input = (raw ?? {}) as Record<string, unknown>;
  const withEnv =
    typeof input === 'object' && !Array.isArray(input)
      ? { ...input, databases: mergeDatabases(databasesFromEnv(env), input.databases) }
      : input;
  const result = configSchema.safeParse(withEnv);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => {
      const where = issue.path.length ? issue.path.join('.') : '(root)';
      return `${where}: ${issue.message}`;
    });
    throw new ConfigError(`invalid phasegate configuration (${configFile ?? DEFAULT_CONFIG_FILE}):\n  - ${problems.join('\n  - ')}`, problems);
  }
  return configFile === undefined ? result.data : { ...result.data, configFile };
}

function mergeDatabases(fromEnv: Record<string, { url: string }>, fromFile: unknown): unknown {
  if (fromFile === undefined) return fromEnv;
  if (typeof fromFile !== 'object' || fromFile === null || Array.isArray(fromFile)) return fromFile;
  const merged: Record<string, unknown> = { ...fromEnv };
  for (const [alias, entry] of Object.entries(fromFile)) {
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
      merged[alias] = entry;
      continue;
    }
    // `url: process.env.X` with X set to '' is unset too (a shell's `X=` or an empty CI secret):
    // left in, it would fail the URL check at load and stop the offline verbs as well.
    const { url, ...rest } = entry as { url?: unknown };
    const fileUrl = url === '' ? undefined : url;
    // A file entry whose url is unset falls back to the environment's URL for the same alias.
    const envUrl = fromEnv[alias]?.url;
    merged[alias] = fileUrl !== undefined ? { ...rest, url: fileUrl } : envUrl ? { ...rest, url: envUrl } : rest;
  }
  return merged;
}

/** The configured entry behind an alias, URL or not (offline uses); unknown aliases are an error. */
export function databaseEntryFor(config: PhasegateConfig, alias: string): DatabaseConfig {
  const db = config.databases[alias];
  if (!db) throw new UnknownDatabaseError(alias, Object.keys(config.databases), configFileName(config));
  return db;
}

/**
 * The database behind an alias, for a command (or activity) that connects to it: an unknown alias
 * names the known ones, an alias whose URL is unset names the key and variable that set it.
 */
export function databaseFor(config: PhasegateConfig, alias: string): ConnectableDatabase {
  const db = databaseEntryFor(config, alias);
  if (db.url === undefined) throw new DatabaseUrlMissingError(alias, configFileName(config));
  return db as ConnectableDatabase;
}

/** Fails on the first alias without a URL: a worker connects to every configured database. */
export function requireDatabaseUrls(config: PhasegateConfig): void {
  for (const alias of Object.keys(config.databases)) databaseFor(config, alias);
}

/** Where the URL of `alias` is set, in words, for messages about a connection that failed. */
export function databaseUrlSource(config: PhasegateConfig, alias: string): string {
  const variable = databaseUrlVariable(alias);
  const key = `databases.${alias}.url in ${configFileName(config)}`;
  return variable ? `${key}, or ${variable}` : key;
}

export function migrationsDirectoryFor(config: PhasegateConfig, alias: string): string {
  // Reading revision files needs no URL: only the alias's own folder setting.
  return databaseEntryFor(config, alias).migrationsDirectory ?? config.migrations.directory;
}

/**
 * Reads and validates the project's config file. `name` is how messages name it (default: `file`
 * as given); a caller that resolved the path passes the name the user typed.
 */
export function loadConfigFile(file = DEFAULT_CONFIG_FILE, env: NodeJS.ProcessEnv = process.env, name = file): PhasegateConfig {
  const absolute = path.resolve(file);
  let raw: unknown;
  try {
    prepareToRequire(absolute);
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const mod = require(absolute) as { default?: unknown };
    raw = mod.default ?? mod;
  } catch (err) {
    throw new ConfigError(`cannot load ${absolute}: ${(err as Error).message.split('\n')[0]}`, [(err as Error).message]);
  }
  return loadConfig(raw, env, name);
}
