/**
 * `phasegate heads`, `branches` and `history`: questions about the revision files alone. None of
 * them needs a database, except `history` when asked to mark (or range from) the current revision.
 */
import { PhasegateError } from '../errors';
import { readCurrentHeads } from './database';
import { loadProject, loadRevisions, migrationsDirectory, summarize, type RevisionFilesOptions, type RevisionSummary } from './project';

export interface HeadsResult {
  directory: string;
  heads: RevisionSummary[];
}

export interface BranchesResult {
  directory: string;
  /** Revisions with two or more children, each with the children it splits into. */
  branchPoints: Array<RevisionSummary & { branchesInto: RevisionSummary[] }>;
}

export interface HistoryOptions extends RevisionFilesOptions {
  /** Alembic's `-r [start]:[end]`: both ends inclusive, either may be left out. */
  range?: string;
  /**
   * Read the version table of this database (`--database`/`--indicate-current`): marks the applied
   * heads and lets the range use `current`, `+N` and `-N`.
   */
  indicateCurrent?: boolean;
}

export interface HistoryResult {
  directory: string;
  range: { from?: string; to?: string };
  /** The version table's rows when read (indicateCurrent), else null. */
  current: string[] | null;
  /** Newest first. */
  revisions: Array<RevisionSummary & { isCurrent: boolean }>;
}

export async function heads(options: RevisionFilesOptions = {}): Promise<HeadsResult> {
  const project = loadProject(options);
  const loaded = loadRevisions(migrationsDirectory(project, options.database));
  return { directory: loaded.directory, heads: loaded.graph.heads().map((id) => summarize(loaded, id)) };
}

export async function branches(options: RevisionFilesOptions = {}): Promise<BranchesResult> {
  const project = loadProject(options);
  const loaded = loadRevisions(migrationsDirectory(project, options.database));
  return {
    directory: loaded.directory,
    branchPoints: loaded.graph.branchPoints().map((id) => ({
      ...summarize(loaded, id),
      branchesInto: loaded.graph.children(id).map((child) => summarize(loaded, child)),
    })),
  };
}

/** `a:b`, `a:`, `:b` (Alembic's forms); a lone revision is refused, as Alembic does. */
export function parseRange(range: string | undefined): { from?: string; to?: string } {
  if (range === undefined || range.trim() === '') return {};
  const parts = range.split(':');
  if (parts.length !== 2) {
    throw new PhasegateError(
      'InvalidRange',
      `history range "${range}" must be [start]:[end], [start]: or :[end] (e.g. -r base:head, -r ${range}:)`,
      { details: { range } },
    );
  }
  const [from, to] = parts.map((p) => p.trim());
  return { ...(from ? { from } : {}), ...(to ? { to } : {}) };
}

const needsCurrent = (bound: string | undefined): boolean =>
  bound !== undefined && (bound === 'current' || /^[+-]\d+$/.test(bound) || /@[+-]\d+$/.test(bound));

export async function history(options: HistoryOptions = {}): Promise<HistoryResult> {
  const range = parseRange(options.range);
  const project = loadProject(options);
  const loaded = loadRevisions(migrationsDirectory(project, options.database));
  const wantsCurrent = options.indicateCurrent === true || needsCurrent(range.from) || needsCurrent(range.to);
  let current: string[] | null = null;
  if (wantsCurrent) {
    if (!options.database) {
      throw new PhasegateError(
        'DatabaseRequired',
        `${options.indicateCurrent ? '--indicate-current' : `the range "${options.range}"`} needs the current revision of a database; pass --database <alias>`,
      );
    }
    current = await readCurrentHeads(project.config, options.database);
  }
  const currentHeads = new Set(current ? loaded.graph.versionHeads(current) : []);
  const nodes = loaded.graph.history({ ...range, current: current ?? [] });
  return {
    directory: loaded.directory,
    range,
    current,
    revisions: nodes.map((node) => ({ ...summarize(loaded, node), isCurrent: currentHeads.has(node.id) })),
  };
}
