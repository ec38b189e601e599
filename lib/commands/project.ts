/**
 * What every command starts from: the project (its folder and validated config) and, for commands
 * that need it, the revision files and their graph. Relative paths resolve against the project
 * folder, as they do for a worker started there.
 */
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { CONFIG_FILES, configFileName, DEFAULT_CONFIG_FILE, findConfigFile, loadConfigFile, migrationsDirectoryFor, type PhasegateConfig } from '../config';
import { withTemporalOverrides, type TemporalOverrides } from '../temporal-connection';
import { PhasegateError } from '../errors';
import type { RevisionNode } from '../revision';
import { loadRevisionDirectory, type LoadedRevision } from '../revision-files';
import { RevisionGraph } from '../revision-graph';

export { DEFAULT_CONFIG_FILE };

/** Options every command accepts. */
export interface ProjectOptions {
  /** The project folder; the config file and relative folders resolve against it. Default: the current directory. */
  cwd?: string;
  /** The config file, relative to `cwd`. Default: the first of phasegate.config.ts, phasegate.config.js, temporal.config.ts there. */
  configFile?: string;
  /** An already validated config (embedding, tests); when given, no config file is read. */
  config?: PhasegateConfig;
  /** Environment that supplies database URLs. Default: process.env. */
  env?: NodeJS.ProcessEnv;
  /** Overrides of the config's Temporal connection (the CLI's --address, --namespace, --profile). */
  temporal?: TemporalOverrides;
}

/** Options of commands that read revision files but need no database. */
export interface RevisionFilesOptions extends ProjectOptions {
  /**
   * Whose migrations folder to read: `databases.<alias>.migrationsDirectory` when set there,
   * `migrations.directory` otherwise. Default: `migrations.directory`.
   */
  database?: string;
}

export interface Project {
  cwd: string;
  config: PhasegateConfig;
}

export function loadProject(options: ProjectOptions): Project {
  const cwd = path.resolve(options.cwd ?? process.cwd());
  if (options.config) return { cwd, config: withTemporalOverrides(options.config, options.temporal) };
  const file = options.configFile !== undefined ? path.resolve(cwd, options.configFile) : findConfigFile(cwd);
  if (file === undefined || !existsSync(file)) {
    const where = file ?? `${cwd} (looked for ${CONFIG_FILES.join(', ')})`;
    throw new PhasegateError(
      'ConfigNotFound',
      `no config file at ${where}; run \`phasegate init\` to create one, or pass --config <file>`,
      { details: { file: file ?? path.join(cwd, DEFAULT_CONFIG_FILE) } },
    );
  }
  // Messages name the file as the user gave it (`other.ts`), relative to the project folder.
  const relative = path.relative(cwd, file);
  const name = relative && !relative.startsWith('..') && !path.isAbsolute(relative) ? relative : file;
  return { cwd, config: withTemporalOverrides(loadConfigFile(file, options.env ?? process.env, name), options.temporal) };
}

/**
 * The absolute migrations folder for `database` (or the project default). A folder that does not
 * exist is refused here, where the config file that names it is known.
 */
export function migrationsDirectory(project: Project, database?: string): string {
  const setting = database === undefined || project.config.databases[database]?.migrationsDirectory === undefined ? 'migrations.directory' : `databases.${database}.migrationsDirectory`;
  const directory = path.resolve(project.cwd, database === undefined ? project.config.migrations.directory : migrationsDirectoryFor(project.config, database));
  if (!existsSync(directory) || !statSync(directory).isDirectory()) {
    throw new PhasegateError(
      'MigrationsFolderNotFound',
      `${directory} does not exist; run \`phasegate init\` first, or set ${setting} in ${configFileName(project.config)}`,
      { details: { directory } },
    );
  }
  return directory;
}

export interface LoadedRevisions {
  directory: string;
  revisions: LoadedRevision[];
  byId: Map<string, LoadedRevision>;
  graph: RevisionGraph;
}

/** Graph errors whose message gains the files of the revisions it names. */
const FILE_NAMED_ERRORS: Record<string, (details: Record<string, unknown>) => string[]> = {
  DuplicateRevision: (d) => ((d.revisions as Array<{ id: string }> | undefined) ?? []).map((r) => r.id),
  MissingParent: (d) => ((d.missing as Array<{ revision: string }> | undefined) ?? []).map((m) => m.revision),
  MissingDependency: (d) => ((d.missing as Array<{ revision: string }> | undefined) ?? []).map((m) => m.revision),
  CycleDetected: (d) => (d.cycle as string[] | undefined) ?? [],
};

/** Loads every revision file of a folder and builds the graph; a failure names the file(s) at fault. */
export function loadRevisions(directory: string): LoadedRevisions {
  const revisions = loadRevisionDirectory(directory);
  let graph: RevisionGraph;
  try {
    graph = RevisionGraph.build(revisions.map((r) => r.node));
  } catch (err) {
    const error = err as PhasegateError;
    const named = error.type ? FILE_NAMED_ERRORS[error.type] : undefined;
    if (!named) throw err;
    const ids = new Set(named(error.details ?? {}));
    const files = revisions.filter((r) => ids.has(r.node.id)).map((r) => path.basename(r.file));
    throw new PhasegateError(error.type, `${error.message} (in ${directory}: ${files.join(', ')})`, {
      details: { ...error.details, directory, files },
    });
  }
  return { directory, revisions, byId: new Map(revisions.map((r) => [r.node.id, r])), graph };
}

/** The one revision a name means (id, prefix, label, `head`, …); several or none is an error. */
export function resolveOne(graph: RevisionGraph, name: string, what: string, current: readonly string[] = []): string {
  const ids = graph.resolve(name, current);
  if (ids.length !== 1) {
    throw new PhasegateError(
      'InvalidTarget',
      ids.length === 0
        ? `${what} "${name}" is base, not a revision; name a revision (\`phasegate history\` lists them)`
        : `${what} "${name}" means ${ids.length} revisions (${ids.join(', ')}); name one of them`,
      { details: { name, revisions: ids } },
    );
  }
  return ids[0];
}

/** A revision as commands report it: plain JSON. */
export interface RevisionSummary {
  id: string;
  message: string;
  parents: string[];
  /** Revisions that name this one as a parent. */
  children: string[];
  dependsOn: string[];
  branchLabels: string[];
  /** Every label naming a branch this revision is on (its own and inherited), as history and heads show them. */
  branchNames: string[];
  /** File name inside the migrations folder. */
  file: string;
  isHead: boolean;
  isBase: boolean;
  isBranchPoint: boolean;
  isMerge: boolean;
  transactional: boolean;
  phase?: string;
}

export function summarize(loaded: LoadedRevisions, node: RevisionNode | string): RevisionSummary {
  const id = typeof node === 'string' ? node : node.id;
  const revision = loaded.byId.get(id);
  const graphNode = loaded.graph.get(id);
  const children = loaded.graph.children(id);
  return {
    id,
    message: graphNode.message,
    parents: [...graphNode.parents],
    children,
    dependsOn: [...graphNode.dependsOn],
    branchLabels: [...graphNode.branchLabels],
    branchNames: loaded.graph.branchNamesOf(id),
    file: revision ? path.basename(revision.file) : '',
    isHead: children.length === 0,
    isBase: graphNode.parents.length === 0,
    isBranchPoint: children.length >= 2,
    isMerge: graphNode.parents.length >= 2,
    transactional: revision?.module.transactional !== false,
    ...(revision?.module.phase ? { phase: revision.module.phase } : {}),
  };
}
