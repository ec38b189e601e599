/**
 * `phasegate current`, `check` and `stamp`: the version table read or written directly, with no
 * workflow and no DDL — what a person needs to see where a database stands, to gate a deploy on it,
 * or to record where it really is after a change made by hand.
 */
import { PhasegateError } from '../errors';
import type { RevisionGraph } from '../revision-graph';
import { MIGRATION_LOCK_KEY, readHeads, sameHeads, writeHeads } from '../version-table';
import { readCurrentHeads, withDatabase } from './database';
import { loadProject, loadRevisions, migrationsDirectory, summarize, type ProjectOptions, type RevisionSummary } from './project';

export const DEFAULT_DATABASE = 'default';

export interface DatabaseOptions extends ProjectOptions {
  /** Alias of a configured database. Default `default`. */
  database?: string;
}

export interface CurrentResult {
  database: string;
  /** The version table's rows, each described from its revision file when one declares it. */
  heads: Array<{ id: string; known: boolean; revision: RevisionSummary | null }>;
}

export interface CheckResult {
  database: string;
  current: string[];
  /** Revisions `upgrade heads` would apply, in order; empty when up to date. */
  pending: RevisionSummary[];
  upToDate: boolean;
}

export interface StampOptions extends DatabaseOptions {
  /** Where to record the database to be: revision ids, labels, `head`, `heads`, `base`, `-1`, … */
  targets: string[];
  /** Empty the version table first, then write exactly the targets (rows no file declares are dropped too). */
  purge?: boolean;
}

export interface StampResult {
  database: string;
  before: string[];
  after: string[];
  changed: boolean;
}

function context(options: DatabaseOptions) {
  const project = loadProject(options);
  const database = options.database ?? DEFAULT_DATABASE;
  const loaded = loadRevisions(migrationsDirectory(project, database));
  return { project, database, loaded };
}

export async function current(options: DatabaseOptions = {}): Promise<CurrentResult> {
  const { project, database, loaded } = context(options);
  const rows = await readCurrentHeads(project.config, database);
  return {
    database,
    heads: rows.map((id) => ({ id, known: loaded.graph.has(id), revision: loaded.graph.has(id) ? summarize(loaded, id) : null })),
  };
}

export async function check(options: DatabaseOptions = {}): Promise<CheckResult> {
  const { project, database, loaded } = context(options);
  const rows = await readCurrentHeads(project.config, database);
  const pending = loaded.graph.upgradePath(rows, 'heads').map((id) => summarize(loaded, id));
  return { database, current: rows, pending, upToDate: pending.length === 0 };
}

/**
 * The rows after moving `before` to `target` without running anything: the lines the target is on
 * move up or down, the others stay (as Alembic's stamp does).
 */
function stampedHeads(graph: RevisionGraph, before: string[], target: string): string[] {
  let upwardError: PhasegateError;
  try {
    return graph.headsAfter(before, graph.upgradePath(before, target), 'upgrade');
  } catch (err) {
    if ((err as PhasegateError).type !== 'WrongDirection') throw err;
    upwardError = err as PhasegateError;
  }
  try {
    return graph.headsAfter(before, graph.downgradePath(before, target), 'downgrade');
  } catch (err) {
    if ((err as PhasegateError).type !== 'WrongDirection') throw err;
    throw new PhasegateError(
      'StampNeedsPurge',
      `cannot move the version table from ${before.join(', ') || 'base'} to "${target}" in one direction (${upwardError.message}); ` +
        `use --purge to record exactly "${target}"`,
      { details: { before, target } },
    );
  }
}

export async function stamp(options: StampOptions): Promise<StampResult> {
  if (options.targets.length === 0) {
    throw new PhasegateError('MissingTarget', 'stamp needs a revision to record: a revision id, head, heads or base');
  }
  const { project, database, loaded } = context(options);
  const { graph } = loaded;
  return withDatabase(project.config, database, async (client) => {
    await client.query('BEGIN');
    try {
      // The same lock a migration step holds: a stamp never races a running migration.
      await client.query(`SET LOCAL lock_timeout = ${Number(project.config.defaults.lockTimeoutMs)}`);
      await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
      const before = await readHeads(client, project.config);
      let after: string[];
      if (options.purge) {
        // Relative targets (-1, +1) still count from the rows that some revision file declares.
        const known = before.filter((id) => graph.has(id));
        after = graph.versionHeads(options.targets.flatMap((t) => graph.resolve(t, known)));
      } else {
        const unknown = before.filter((id) => !graph.has(id));
        if (unknown.length > 0) {
          throw new PhasegateError(
            'UnknownAppliedRevision',
            `the version table of "${database}" lists ${unknown.join(', ')}, which no revision file declares; ` +
              'restore the file(s), or use --purge to replace every row with the target',
            { details: { unknown } },
          );
        }
        after = options.targets.reduce((heads, target) => stampedHeads(graph, heads, target), graph.versionHeads(before));
      }
      const changed = !sameHeads(before, after);
      if (changed) await writeHeads(client, project.config, after);
      await client.query('COMMIT');
      return { database, before, after, changed };
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
  });
}
