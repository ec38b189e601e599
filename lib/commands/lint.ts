/**
 * `phasegate lint`: squawk (the PostgreSQL migration linter) over the `--sql` script of a range of
 * revisions, so every statement is reviewed with the lock_timeout lines and version-table writes
 * it will really run with. Findings name the revision whose section they are in.
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { PhasegateError } from '../errors';
import { upgrade, type MigrateCommandOptions } from './migrate';
import { loadProject, loadRevisions, migrationsDirectory } from './project';

export interface LintFinding {
  rule: string;
  message: string;
  line: number;
  /** The revision whose section of the script the line is in. */
  revision: string | null;
  help: string | null;
}

export interface LintResult {
  range: string;
  findings: LintFinding[];
  /**
   * Destructive statements (squawk's ban-drop-column, ban-drop-table, ban-drop-not-null) in a revision with a gate: a
   * person approves each before it runs, which is what these rules ask for. Listed, not failed.
   */
  behindGate: LintFinding[];
  excluded: string[];
}

/** squawk rules that ask for a person to look at a destructive statement: a gate before it is that person. */
const GATED_RULES = new Set(['ban-drop-column', 'ban-drop-table', 'ban-drop-not-null']);

export interface LintOptions extends Pick<MigrateCommandOptions, 'cwd' | 'configFile' | 'config' | 'env' | 'database'> {
  /** `from:to` as for `upgrade --sql`; default `base:heads`. */
  range?: string;
  /** squawk rules to leave out (e.g. `ban-drop-column` for a reviewed contract step). */
  exclude?: string[];
  /** PostgreSQL major version the rules assume (default 15). */
  pgVersion?: string;
}

interface SquawkJson {
  rule_name: string;
  message: string;
  line: number;
  help?: string | null;
}

/**
 * squawk's binary comes from its platform package (an optional dependency: the registry this
 * project installs from carries the linux-x64 build only, and the `squawk-cli` wrapper's lock
 * entries for the other platforms would break `npm ci`).
 */
function squawkBinary(): string {
  const platformPackage = `@squawk-cli/${process.platform}-${process.arch}`;
  try {
    return path.join(path.dirname(require.resolve(`${platformPackage}/package.json`)), 'bin', 'squawk');
  } catch {
    throw new PhasegateError('LintFailed', `squawk is not installed for this platform (${platformPackage}); install it with npm i -D ${platformPackage}`);
  }
}

/** Runs squawk on SQL text; squawk exits 1 when it reports something, with the report on stdout. */
export function runSquawk(sql: string, options: { exclude?: string[]; pgVersion?: string } = {}): SquawkJson[] {
  const bin = squawkBinary();
  const args = ['--pg-version', options.pgVersion ?? '15', '--reporter', 'json', '--stdin-filepath', 'phasegate.sql'];
  for (const rule of options.exclude ?? []) args.push('--exclude', rule);
  let out: string;
  try {
    out = execFileSync(bin, args, { input: sql, encoding: 'utf8' });
  } catch (err) {
    out = (err as { stdout?: string }).stdout ?? '';
    if (!out.trim().startsWith('[')) {
      throw new PhasegateError('LintFailed', `squawk could not run: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  return JSON.parse(out) as SquawkJson[];
}

export async function lint(options: LintOptions = {}): Promise<LintResult> {
  const range = options.range ?? 'base:heads';
  const offline = await upgrade({ ...options, sql: true, target: range });
  if (offline.mode !== 'sql') throw new PhasegateError('LintFailed', 'could not render the SQL script to lint');
  const lines = offline.script.split('\n');
  const revisionAt = (line: number): string | null => {
    for (let i = Math.min(line, lines.length) - 1; i >= 0; i--) {
      const match = /^-- Running (?:upgrade|downgrade) (\S+):/.exec(lines[i]);
      if (match) return match[1];
    }
    return null;
  };
  const findings = runSquawk(offline.script, options).map((f) => ({
    rule: f.rule_name,
    message: f.message,
    line: f.line,
    revision: revisionAt(f.line),
    help: f.help ?? null,
  }));
  // Which revisions a person approves before they run: their drops are the reviewed contract steps.
  const project = loadProject(options);
  const gated = new Set(loadRevisions(migrationsDirectory(project, options.database)).revisions.filter((r) => r.module.gate !== undefined).map((r) => r.node.id));
  const isGatedDrop = (f: LintFinding) => GATED_RULES.has(f.rule) && f.revision !== null && gated.has(f.revision);
  return { range, findings: findings.filter((f) => !isGatedDrop(f)), behindGate: findings.filter(isGatedDrop), excluded: options.exclude ?? [] };
}
