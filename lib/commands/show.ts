/**
 * `phasegate show <rev>`: one revision as a reviewer wants it — where it sits in the graph, its file
 * and hash, and the SQL its upgrade and downgrade render to. No database.
 */
import path from 'node:path';
import { recordOps, type RecordedOp } from '../ops';
import type { RevisionModule } from '../revision';
import { renderStatementLines } from '../offline-sql';
import { loadProject, loadRevisions, migrationsDirectory, resolveOne, summarize, type RevisionFilesOptions, type RevisionSummary } from './project';

export interface ShowOptions extends RevisionFilesOptions {
  /** Id, unique prefix, branch label, `head`, `<label>@head`, … naming exactly one revision. */
  revision: string;
}

export interface RenderedDirection {
  /** What each op does, in order. */
  operations: string[];
  /** Script lines: each statement with parameters inlined, `;`-terminated; a guarded one as comments with its guard. */
  sql: string[];
  /** Ops that cannot run in a transaction (CONCURRENTLY). */
  nonTransactional: string[];
  /** Set when the function threw (e.g. a downgrade that explains why it cannot be reversed). */
  error: string | null;
}

export interface ShowResult extends RevisionSummary {
  /** Absolute path of the file. */
  path: string;
  /** sha256 of the file: the hash a plan records and a worker checks before applying. */
  hash: string;
  upgrade: RenderedDirection;
  downgrade: RenderedDirection;
  /** What would stop this revision from being planned, each with what to do. */
  problems: string[];
}

async function render(fn: RevisionModule['upgrade'], module: RevisionModule): Promise<RenderedDirection> {
  let ops: RecordedOp[];
  try {
    ops = await recordOps(fn.bind(module));
  } catch (err) {
    return { operations: [], sql: [], nonTransactional: [], error: (err as Error).message };
  }
  return {
    operations: ops.map((o) => o.description),
    sql: ops.flatMap((o) => o.statements.flatMap(renderStatementLines)),
    nonTransactional: ops.filter((o) => o.nonTransactional).map((o) => o.description),
    error: null,
  };
}

export async function show(options: ShowOptions): Promise<ShowResult> {
  const project = loadProject(options);
  const loaded = loadRevisions(migrationsDirectory(project, options.database));
  const id = resolveOne(loaded.graph, options.revision, 'revision');
  const revision = loaded.byId.get(id)!;
  const summary = summarize(loaded, id);
  const upgrade = await render(revision.module.upgrade, revision.module);
  const downgrade = await render(revision.module.downgrade, revision.module);
  const problems: string[] = [];
  if (summary.transactional) {
    for (const [direction, rendered] of [['upgrade', upgrade], ['downgrade', downgrade]] as const) {
      if (rendered.nonTransactional.length > 0) {
        problems.push(
          `${direction}: ${rendered.nonTransactional.join(', ')} cannot run inside a transaction; add \`transactional: false\` to ${path.basename(revision.file)}`,
        );
      }
    }
  }
  if (upgrade.error) problems.push(`upgrade throws: ${upgrade.error}`);
  return { ...summary, path: revision.file, hash: revision.hash, upgrade, downgrade, problems };
}
