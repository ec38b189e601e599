/**
 * `phasegate new <pattern> …`: writes the revision chain of a common multi-phase change as ordinary
 * revision files, for review. Everything is checked before the first file is written: the
 * pattern's arguments, every op the files will call (the same validation a plan runs), and the
 * revision graph with the new chain in it. Files only: no database.
 */
import { existsSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { PhasegateError } from '../errors';
import { Op, type RecordedOp } from '../ops';
import { findPattern, type RevisionDraft } from '../patterns';
import { renderDraftFile } from '../patterns/source';
import type { BackfillSpec, CheckSpec, GateSpec, RevisionNode } from '../revision';
import { RevisionGraph } from '../revision-graph';
import { revisionFileName, typesImportFor } from '../revision-template';
import { loadProject, loadRevisions, migrationsDirectory, type RevisionFilesOptions } from './project';
import { freshIds, parentFor } from './revision';

export interface NewPatternOptions extends RevisionFilesOptions {
  /** A registered pattern: `add-not-null-column`, `rename-column`, `add-index`, … */
  pattern: string;
  /** Positional arguments, as on the command line: `['accounts', 'org_id', 'bigint']`. */
  args?: readonly string[];
  /** The pattern's options by key: `{ default: '0' }`, `{ unique: true }`. */
  options?: Record<string, unknown>;
  /** The revision the chain starts on: a head, or `base`. Default: the only head. */
  head?: string;
  /** The files' creation time; default now. */
  now?: Date;
}

export interface NewPatternFile {
  id: string;
  /** Absolute path. */
  file: string;
  parent: string | null;
  message: string;
  phase: string;
  transactional: boolean;
  gate?: GateSpec;
  backfill?: BackfillSpec;
  check?: CheckSpec;
  /** What upgrade and downgrade do, op by op. */
  upgrade: string[];
  downgrade: string[];
}

export interface NewPatternResult {
  pattern: string;
  directory: string;
  /** The chain, first revision first. */
  files: NewPatternFile[];
}

/** Records a draft's calls on a fresh Op: bad names or options fail here, as they would at plan time. */
function record(pattern: string, draft: RevisionDraft, direction: 'upgrade' | 'downgrade'): RecordedOp[] {
  const op = new Op();
  for (const c of draft[direction]) {
    const method = op[c.method] as (...args: unknown[]) => void;
    try {
      method.apply(op, c.args);
    } catch (err) {
      const error = err as PhasegateError;
      throw new PhasegateError('InvalidPatternArguments', `${pattern}: ${error.message}`, { details: { pattern, ...(error.details ?? {}) } });
    }
  }
  const outside = op.recorded.filter((o) => o.nonTransactional);
  if (outside.length > 0 && draft.transactional !== false) {
    throw new PhasegateError('PatternBug', `${pattern}: "${draft.message}" runs ${outside.map((o) => o.description).join(', ')} in a transactional revision`);
  }
  return op.recorded;
}


export async function newPattern(options: NewPatternOptions): Promise<NewPatternResult> {
  const pattern = findPattern(options.pattern);
  const drafts = pattern.build(options.args ?? [], options.options ?? {});
  const invocation = [pattern.name, ...(options.args ?? []), ...optionText(options.options ?? {})].join(' ');
  const { directory, files } = writeDraftChain({ ...options, what: pattern.name, drafts, origin: `phasegate new ${invocation}` });
  return { pattern: pattern.name, directory, files };
}

export interface DraftChainOptions extends RevisionFilesOptions {
  /** For messages: the pattern's name, or `autogenerate`. */
  what: string;
  drafts: RevisionDraft[];
  /** The command that wrote the chain, for each file's header (`(step i of n)` is added). */
  origin: string;
  head?: string;
  now?: Date;
}

/**
 * Writes `drafts` as a chain of revision files on `head`: every op is validated and the graph with
 * the new chain in it is built before the first file is written, and a failure part-way removes
 * the files already written, so a chain is written whole or not at all.
 */
export function writeDraftChain(options: DraftChainOptions): { directory: string; files: NewPatternFile[] } {
  const { drafts, what } = options;
  const recorded = drafts.map((d) => ({ upgrade: record(what, d, 'upgrade'), downgrade: record(what, d, 'downgrade') }));

  const project = loadProject(options);
  const directory = migrationsDirectory(project, options.database);
  if (!existsSync(directory)) {
    throw new PhasegateError('MigrationsFolderNotFound', `${directory} does not exist; run \`phasegate init\` first`, { details: { directory } });
  }
  const loaded = loadRevisions(directory);
  const first = parentFor(loaded, options.head)[0] ?? null;
  const ids = freshIds(loaded.graph, drafts.length);
  const parents = ids.map((_, i) => (i === 0 ? first : ids[i - 1]));
  const nodes: RevisionNode[] = drafts.map((d, i) => ({ id: ids[i], parents: parents[i] === null ? [] : [parents[i]!], dependsOn: [], branchLabels: [], message: d.message }));
  RevisionGraph.build([...loaded.graph.all(), ...nodes]);

  const now = options.now ?? new Date();
  const typesModule = typesImportFor(directory);
  const files: NewPatternFile[] = [];
  try {
    drafts.forEach((draft, i) => {
      const file = path.join(directory, revisionFileName(ids[i], draft.message));
      const text = renderDraftFile({
        draft,
        id: ids[i],
        parent: parents[i],
        typesModule,
        origin: `${options.origin} (step ${i + 1} of ${drafts.length})`,
        createdAt: now,
      });
      writeFileSync(file, text, { flag: 'wx' });
      files.push({
        id: ids[i],
        file,
        parent: parents[i],
        message: draft.message,
        phase: draft.phase,
        transactional: draft.transactional !== false,
        ...(draft.gate ? { gate: draft.gate } : {}),
        ...(draft.backfill ? { backfill: draft.backfill } : {}),
        ...(draft.check ? { check: draft.check } : {}),
        upgrade: recorded[i].upgrade.map((o) => o.description),
        downgrade: recorded[i].downgrade.map((o) => o.description),
      });
    });
  } catch (err) {
    for (const written of files) unlinkSync(written.file);
    const exists = (err as NodeJS.ErrnoException).code === 'EEXIST';
    throw new PhasegateError(exists ? 'RevisionFileExists' : 'CannotWriteRevision', `cannot write the ${what} chain into ${directory}: ${(err as Error).message}; nothing was written`, {
      details: { directory },
    });
  }
  return { directory, files };
}

/** `--default '0' --unique`: the options as a command line, for the files' headers. */
function optionText(options: Record<string, unknown>): string[] {
  const flag = (key: string) => `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
  return Object.entries(options).flatMap(([key, value]) => {
    if (value === undefined || value === false) return [];
    if (value === true) return [flag(key)];
    const text = String(value);
    return [flag(key), /^[\w.:-]+$/.test(text) ? text : `'${text.replace(/'/g, `'\\''`)}'`];
  });
}

/** Text output: one line per file, then what each step waits for and runs. */
export function formatNewPattern(result: NewPatternResult): string {
  const lines = [`${result.pattern}: ${result.files.length} revision(s) in ${result.directory}`];
  for (const f of result.files) {
    const hooks = [
      f.transactional ? '' : 'non-transactional',
      f.gate ? `gate "${f.gate.name ?? f.id}"` : '',
      f.backfill ? `backfill ${Object.keys(f.backfill.set).join(', ')}` : '',
      f.check ? `check "${f.check.name}"` : '',
    ].filter(Boolean);
    lines.push(`created ${f.id} (on ${f.parent ?? '<base>'}) [${f.phase}] ${f.message}${hooks.length ? ` — ${hooks.join('; ')}` : ''}`);
    lines.push(`  ${path.basename(f.file)}`);
  }
  return lines.join('\n');
}
