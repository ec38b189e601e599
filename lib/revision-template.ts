/**
 * Writing new revision files (`phasegate revision`, `phasegate merge`): a fresh id, a file name
 * made from the message, and a typed module whose stubs remind the author to say which lock each
 * statement takes. Files only: the revision graph decides the parents before this is called.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { PhasegateError } from './errors';

export interface RevisionTemplateInput {
  id: string;
  /** [] for a new base, one id for a normal revision, two or more for a merge. */
  parents: string[];
  message: string;
  branchLabels?: string[];
  dependsOn?: string[];
  /** `false` writes `transactional: false` (for CONCURRENTLY statements). */
  transactional?: boolean;
  /** Module specifier the file imports its types from (see `typesImportFor`). */
  typesModule: string;
  /** When the file was created, written in its header (no clock is read here). */
  createdAt: Date;
}

/** Alembic-style id: 12 hex characters, random. */
export function newRevisionId(): string {
  return randomBytes(6).toString('hex');
}

/**
 * The file-name part made from a message, like Alembic's `<rev>_<slug>.py`: lowercase words joined
 * by `_`, cut at a word boundary near 40 characters.
 */
export function slugify(message: string): string {
  const words = message
    .toLowerCase()
    .normalize('NFKD')
    .replace(/[^a-z0-9]+/g, ' ')
    .trim()
    .split(' ')
    .filter(Boolean);
  let slug = '';
  for (const word of words) {
    const next = slug ? `${slug}_${word}` : word;
    if (next.length > 40 && slug) break;
    slug = next.slice(0, 40);
  }
  return slug || 'revision';
}

export function revisionFileName(id: string, message: string): string {
  return `${id}_${slugify(message)}.ts`;
}

/**
 * How a file in `directory` imports one of phasegate's `lib/` modules for its types: a relative
 * path to this checkout, or `'phasegate'` (the package's entry, index.ts, exports them all) when
 * phasegate is installed as a package.
 * Generated files use `import type`, erased at run time, so loading never depends on it resolving.
 */
export function typesImportFor(directory: string, libModule: 'revision' | 'config' = 'revision'): string {
  const target = path.resolve(__dirname, libModule);
  const marker = `${path.sep}node_modules${path.sep}`;
  const installed = target.lastIndexOf(marker);
  // Installed: the package's main entry (index.ts) exports every type a generated file names.
  if (installed >= 0) return 'phasegate';
  const relative = path.relative(path.resolve(directory), target).split(path.sep).join('/');
  return relative.startsWith('.') ? relative : `./${relative}`;
}

const literal = (value: string): string => `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
const literalList = (values: readonly string[]): string => `[${values.map(literal).join(', ')}]`;

/** The text of a new revision file. */
export function renderRevisionFile(input: RevisionTemplateInput): string {
  const isMerge = input.parents.length > 1;
  const lines: string[] = [];
  lines.push(`import type { RevisionModule } from ${literal(input.typesModule)};`, '');
  lines.push('/**');
  for (const line of input.message.split('\n')) lines.push(` * ${line}`.trimEnd());
  lines.push(' *');
  lines.push(` * Revision: ${input.id}`);
  lines.push(` * Revises: ${input.parents.length ? input.parents.join(', ') : '(base)'}`);
  if (input.dependsOn?.length) lines.push(` * Depends on: ${input.dependsOn.join(', ')}`);
  lines.push(` * Created: ${input.createdAt.toISOString()}`);
  if (!isMerge) {
    lines.push(' *');
    lines.push(' * Locks: say which lock each statement takes, on what, and for how long, e.g. "ACCESS EXCLUSIVE');
    lines.push(' * on accounts, catalog-only, milliseconds under lock_timeout" or "SHARE UPDATE EXCLUSIVE (CREATE');
    lines.push(' * INDEX CONCURRENTLY): reads and writes go on". Anything that rewrites or scans a big table under');
    lines.push(' * a strong lock belongs in a backfill or a NOT VALID + VALIDATE pair instead.');
  }
  if (input.transactional === false) {
    lines.push(' *');
    lines.push(' * Non-transactional: each statement runs on its own (CONCURRENTLY cannot run in a transaction),');
    lines.push(' * so keep every statement safe to run twice (IF NOT EXISTS) and keep the revision small.');
  }
  lines.push(' */');
  lines.push('const revision: RevisionModule = {');
  lines.push(`  id: ${literal(input.id)},`);
  if (isMerge) lines.push(`  parents: ${literalList(input.parents)},`);
  else lines.push(`  parent: ${input.parents.length ? literal(input.parents[0]) : 'null'},`);
  lines.push(`  message: ${literal(input.message)},`);
  if (input.branchLabels?.length) lines.push(`  branchLabels: ${literalList(input.branchLabels)},`);
  if (input.dependsOn?.length) lines.push(`  dependsOn: ${literalList(input.dependsOn)},`);
  if (input.transactional === false) lines.push('  transactional: false,');
  if (isMerge) {
    lines.push('  // A merge joins lines of revisions; it changes no schema itself.');
    lines.push('  upgrade() {},');
    lines.push('  downgrade() {},');
  } else {
    // `op` stays unused until the author writes the change: `npm run typecheck` (noUnusedParameters)
    // then flags a revision that was generated and never filled in.
    lines.push('  upgrade(op) {');
    lines.push('    // The change, e.g. op.addColumn(...). Lock taken: ...');
    lines.push('  },');
    lines.push('  downgrade(op) {');
    lines.push('    // The exact reverse of upgrade, or throw an Error that says why it cannot be reversed.');
    lines.push('  },');
  }
  lines.push('};', '', 'export default revision;', '');
  return lines.join('\n');
}

/** Writes a new revision file into `directory`; never overwrites. Returns its absolute path. */
export function writeRevisionFile(directory: string, input: RevisionTemplateInput): string {
  const file = path.join(path.resolve(directory), revisionFileName(input.id, input.message));
  try {
    writeFileSync(file, renderRevisionFile(input), { flag: 'wx' });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new PhasegateError(
      'RevisionFileExists',
      code === 'EEXIST'
        ? `${file} already exists; phasegate never overwrites a revision file. Run the command again (a new id is drawn)`
        : `cannot write ${file}: ${(err as Error).message}`,
      { details: { file } },
    );
  }
  return file;
}
