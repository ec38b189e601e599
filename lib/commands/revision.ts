/**
 * `phasegate revision` and `phasegate merge`: new revision files. The graph is checked with the new
 * revision in it before anything is written, so a bad label or parent never reaches the folder.
 */
import { existsSync } from 'node:fs';
import { PhasegateError } from '../errors';
import type { RevisionNode } from '../revision';
import { RevisionGraph } from '../revision-graph';
import { newRevisionId, typesImportFor, writeRevisionFile } from '../revision-template';
import { loadProject, loadRevisions, migrationsDirectory, resolveOne, type LoadedRevisions, type RevisionFilesOptions } from './project';

export interface RevisionOptions extends RevisionFilesOptions {
  message: string;
  /**
   * The revision to build on: a head (id, prefix, `<label>@head`), or `base` to start a new line.
   * Default: the only head; required when there are several.
   */
  head?: string;
  /** Label that names the line this revision starts (`<label>@head` then targets it). */
  branchLabel?: string;
  /** Revisions that must be applied first without being the parent. */
  dependsOn?: string[];
  /** Writes `transactional: false` (for CONCURRENTLY statements). */
  nonTransactional?: boolean;
  /** The file header's creation time; default now. */
  now?: Date;
}

export interface MergeOptions extends RevisionFilesOptions {
  message: string;
  /** Revisions to join (ids, prefixes, labels, `heads`); at least two distinct after resolving. */
  revisions: string[];
  branchLabel?: string;
  now?: Date;
}

export interface NewRevisionResult {
  id: string;
  /** Absolute path of the new file. */
  file: string;
  parents: string[];
  message: string;
  branchLabels: string[];
  dependsOn: string[];
  transactional: boolean;
}

function requireMessage(message: string | undefined): string {
  const trimmed = (message ?? '').trim();
  if (!trimmed) throw new PhasegateError('MissingMessage', 'a revision needs a message: pass -m "what this revision changes"');
  return trimmed;
}

function loadExisting(directory: string): LoadedRevisions {
  if (!existsSync(directory)) {
    throw new PhasegateError('MigrationsFolderNotFound', `${directory} does not exist; run \`phasegate init\` first`, {
      details: { directory },
    });
  }
  return loadRevisions(directory);
}

/** `count` fresh ids: none equal to, or a prefix of, another id (old or new), so prefixes stay unambiguous. */
export function freshIds(graph: RevisionGraph, count: number): string[] {
  const taken = graph.all().map((n) => n.id);
  const ids: string[] = [];
  while (ids.length < count) {
    const id = newRevisionId();
    if (![...taken, ...ids].some((other) => other.startsWith(id) || id.startsWith(other))) ids.push(id);
  }
  return ids;
}

const freshId = (graph: RevisionGraph): string => freshIds(graph, 1)[0];

/** Builds the graph with `node` added: duplicate labels, bad labels and cycles fail here, before writing. */
function checkWith(loaded: LoadedRevisions, node: RevisionNode): void {
  try {
    RevisionGraph.build([...loaded.graph.all(), node]);
  } catch (err) {
    const clash = (err as PhasegateError).type === 'DuplicateBranchLabel' ? node.branchLabels[0] : undefined;
    if (clash === undefined) throw err;
    // Why: the graph's message names the new revision's id, which was never written anywhere.
    const owner = loaded.graph.has(clash) ? `is the id of revision ${clash}` : `already names the branch of revision ${loaded.graph.resolve(clash)[0]}`;
    throw new PhasegateError(
      'DuplicateBranchLabel',
      `--branch-label ${clash} ${owner}; nothing was written. Pick a label no other branch uses (\`phasegate branches\` and \`phasegate heads\` list them), ` +
        `or leave --branch-label out and target the branch by its existing label`,
      { details: { label: clash } },
    );
  }
}

/** The parent(s) of a new revision: the single head, `--head <rev>` (a head), or none for `--head base`. */
export function parentFor(loaded: LoadedRevisions, head: string | undefined): string[] {
  const heads = loaded.graph.heads();
  if (head === undefined) {
    if (heads.length > 1) {
      throw new PhasegateError(
        'MultipleHeads',
        `there are ${heads.length} heads (${heads.join(', ')}); say which one new revisions follow with --head <rev>, ` +
          'or join them first with `phasegate merge -m "merge" heads`',
        { details: { heads } },
      );
    }
    return heads;
  }
  if (head === 'base') return [];
  const id = resolveOne(loaded.graph, head, '--head');
  if (!heads.includes(id)) {
    throw new PhasegateError(
      'NotAHead',
      `--head ${head} is ${id}, which already has children (${loaded.graph.children(id).join(', ')}); a new revision goes on a head ` +
        `(${heads.join(', ')}). Pick one of those, or --head base to start a new line`,
      { details: { head: id, heads } },
    );
  }
  return [id];
}

export async function revision(options: RevisionOptions): Promise<NewRevisionResult> {
  const message = requireMessage(options.message);
  const project = loadProject(options);
  const directory = migrationsDirectory(project, options.database);
  const loaded = loadExisting(directory);
  const parents = parentFor(loaded, options.head);
  // A branch label is written as the label (as Alembic writes it); anything else as the revision id it names.
  const dependsOn = (options.dependsOn ?? []).map((d) => (loaded.graph.isBranchLabel(d) ? d : resolveOne(loaded.graph, d, '--depends-on')));
  const branchLabels = options.branchLabel ? [options.branchLabel] : [];
  const id = freshId(loaded.graph);
  checkWith(loaded, { id, parents, dependsOn, branchLabels, message });
  const transactional = !options.nonTransactional;
  const file = writeRevisionFile(directory, {
    id,
    parents,
    message,
    branchLabels,
    dependsOn,
    transactional,
    typesModule: typesImportFor(directory),
    createdAt: options.now ?? new Date(),
  });
  return { id, file, parents, message, branchLabels, dependsOn, transactional };
}

export async function merge(options: MergeOptions): Promise<NewRevisionResult> {
  const message = requireMessage(options.message);
  const project = loadProject(options);
  const directory = migrationsDirectory(project, options.database);
  const loaded = loadExisting(directory);
  const parents = [...new Set(options.revisions.flatMap((r) => loaded.graph.resolve(r)))].sort();
  if (parents.length < 2) {
    throw new PhasegateError(
      'NothingToMerge',
      `merge needs at least two revisions to join; ${options.revisions.join(' ') || '(none)'} ` +
        `${parents.length === 1 ? `is only ${parents[0]}` : 'names none'}. Current heads: ${loaded.graph.heads().join(', ') || '(none)'}`,
      { details: { revisions: parents } },
    );
  }
  for (const a of parents) {
    for (const b of parents) {
      if (a !== b && loaded.graph.isAncestor(a, b)) {
        throw new PhasegateError(
          'RedundantMerge',
          `${a} is already an ancestor of ${b}, so merging them joins nothing; merge heads of separate lines (\`phasegate heads\`)`,
          { details: { ancestor: a, descendant: b } },
        );
      }
    }
  }
  const branchLabels = options.branchLabel ? [options.branchLabel] : [];
  const id = freshId(loaded.graph);
  checkWith(loaded, { id, parents, dependsOn: [], branchLabels, message });
  const file = writeRevisionFile(directory, {
    id,
    parents,
    message,
    branchLabels,
    typesModule: typesImportFor(directory),
    createdAt: options.now ?? new Date(),
  });
  return { id, file, parents, message, branchLabels, dependsOn: [], transactional: true };
}
