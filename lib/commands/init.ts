/**
 * `phasegate init`: a config file and an empty migrations folder with a short guide. Never
 * overwrites: an existing config is kept, a folder that already holds files is refused.
 */
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { PhasegateError } from '../errors';
import { typesImportFor } from '../revision-template';
import { DEFAULT_CONFIG_FILE, findConfigFile } from '../config';
import { loadProject } from './project';

export interface InitOptions {
  /** Project folder. Default: the current directory. */
  cwd?: string;
  /** Config file to create, relative to `cwd`. Default: the project's existing one, else `phasegate.config.ts`. */
  configFile?: string;
  /** Migrations folder, relative to `cwd`. Default: the existing config's, else `migrations/versions`. */
  directory?: string;
  env?: NodeJS.ProcessEnv;
}

export interface InitResult {
  configFile: string;
  /** `created`, or `kept` when the file already existed (it is never overwritten). */
  config: 'created' | 'kept';
  directory: string;
  /** Files written, absolute paths. */
  created: string[];
}

const DEFAULT_DIRECTORY = 'migrations/versions';

export function renderConfigFile(typesModule: string, directory: string): string {
  return `/**
 * phasegate configuration. Database URLs come from the environment, never from workflow input:
 * \`DATABASE_URL\` is the \`default\` database, and \`PHASEGATE_DATABASE_URL_<ALIAS>\` adds \`<alias>\`.
 */
import type { PhasegateConfigInput } from '${typesModule}';

const config: PhasegateConfigInput = {
  temporal: {
    address: process.env.TEMPORAL_ADDRESS ?? 'localhost:7233',
    namespace: process.env.TEMPORAL_NAMESPACE ?? 'default',
    taskQueue: process.env.PHASEGATE_TASK_QUEUE ?? 'phasegate',
    ...(process.env.TEMPORAL_API_KEY ? { apiKey: process.env.TEMPORAL_API_KEY, tls: true } : {}),
  },
  migrations: {
    directory: '${directory}',
    versionTable: 'phasegate_version',
  },
  defaults: {
    // Longest any DDL statement waits for its lock; a step that times out is retried later.
    lockTimeoutMs: 500,
    // 0 = no limit; long VALIDATE or CONCURRENTLY builds run outside a short request budget.
    statementTimeoutMs: 0,
    batchSize: 1000,
  },
};

export default config;
`;
}

export const MIGRATIONS_README = `# Revisions

Each file here is one revision: \`id\`, \`parent\` (or \`parents\` for a merge), \`message\`,
\`upgrade(op)\` and \`downgrade(op)\`. Create one with \`phasegate revision -m "add accounts.plan"\`;
it becomes the child of the current head.

- Say in a comment which lock each statement takes and for how long.
- Statements that cannot run in a transaction (\`CREATE INDEX CONCURRENTLY\`) need \`transactional: false\`.
- Review what will run with \`phasegate upgrade --sql\`; apply with \`phasegate upgrade\` (a worker must run:
  \`phasegate worker\`).
- Files starting with \`_\` and files that are not \`.ts\`/\`.js\` (like this one) are not revisions.
`;

export async function init(options: InitOptions = {}): Promise<InitResult> {
  const cwd = path.resolve(options.cwd ?? process.cwd());
  const configFile = options.configFile !== undefined ? path.resolve(cwd, options.configFile) : (findConfigFile(cwd) ?? path.join(cwd, DEFAULT_CONFIG_FILE));
  const configExists = existsSync(configFile);
  const relativeDirectory =
    options.directory ??
    (configExists ? loadProject({ cwd, configFile, env: options.env }).config.migrations.directory : DEFAULT_DIRECTORY);
  const directory = path.resolve(cwd, relativeDirectory);

  if (existsSync(directory) && readdirSync(directory).length > 0) {
    throw new PhasegateError(
      'AlreadyInitialized',
      `${directory} already exists and is not empty; phasegate init never overwrites. ` +
        (configExists ? 'This project is set up already: run `phasegate heads` to see its revisions' : 'Pass --directory <folder> to use another folder'),
      { details: { directory } },
    );
  }

  const created: string[] = [];
  mkdirSync(directory, { recursive: true });
  const readme = path.join(directory, 'README.md');
  writeFileSync(readme, MIGRATIONS_README, { flag: 'wx' });
  created.push(readme);
  if (!configExists) {
    mkdirSync(path.dirname(configFile), { recursive: true });
    const directoryInConfig = path.isAbsolute(relativeDirectory) ? relativeDirectory : relativeDirectory.split(path.sep).join('/');
    writeFileSync(configFile, renderConfigFile(typesImportFor(path.dirname(configFile), 'config'), directoryInConfig.replace(/'/g, "\\'")), {
      flag: 'wx',
    });
    created.push(configFile);
  }
  return { configFile, config: configExists ? 'kept' : 'created', directory, created };
}
