/**
 * `phasegate lint`: squawk (the PostgreSQL migration linter) and phasegate's own rules
 * (lib/lint-rules.ts) over the `--sql` scripts of a range of revisions, the upgrade and the
 * downgrade that undoes it, so every statement is reviewed with the lock_timeout lines and
 * version-table writes it will really run with. Findings name the script and the revision whose
 * section they are in; errors fail the command, warnings do not.
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { PhasegateError } from '../errors';
import {
  columnDrops,
  DEFAULT_MAX_TABLE_BYTES,
  PHASEGATE_RULES,
  phasegateRules,
  revisionAt,
  sqlForSquawk,
  starViewFindings,
  tablesToMeasure,
  type CheckState,
  type LintFinding,
  type LintScript,
  type RevisionFacts,
  type StarView,
  type TableSizes,
} from '../lint-rules';
import { withDatabase } from './database';
import { downgrade, upgrade, type MigrateCommandOptions } from './migrate';
import { loadProject, loadRevisions, migrationsDirectory } from './project';

export { sqlForSquawk, type LintFinding, type LintLevel, type LintScript } from '../lint-rules';

export interface LintResult {
  range: string;
  /** The range of the downgrade script that was linted (`heads:base` for `base:heads`); null when there was none. */
  downgradeRange: string | null;
  /** Errors and warnings, upgrade script first, each in line order. */
  findings: LintFinding[];
  errors: number;
  warnings: number;
  /**
   * Destructive statements (squawk's ban-drop-column, ban-drop-table, ban-drop-not-null) in a revision with a gate: a
   * person approves each before it runs, which is what these rules ask for. Listed, not failed.
   */
  behindGate: LintFinding[];
  /**
   * The same rules, and squawk's type-choice rules (prefer-*), in the downgrade script: a downgrade restores what was
   * there before its revision, and it only runs when a person asks for it (`phasegate downgrade`, or a rejected
   * gate). Counted, not failed.
   */
  undoing: LintFinding[];
  excluded: string[];
  /** Table sizes read from the database given with `--database`; null without one (or when it was unreachable). */
  measured: { database: string; tables: Record<string, { bytes: number; rows: number }> } | null;
  /** Why no sizes were read although a database was named. */
  measureError?: string;
}

/** squawk rules that ask for a person to look at a destructive statement: a gate before it is that person. */
const GATED_RULES = new Set(['ban-drop-column', 'ban-drop-table', 'ban-drop-not-null']);

export interface LintOptions extends Pick<MigrateCommandOptions, 'cwd' | 'configFile' | 'config' | 'env' | 'database' | 'temporal'> {
  /** `from:to` as for `upgrade --sql`; default `base:heads`. */
  range?: string;
  /** Rules to leave out, squawk's or phasegate's (e.g. `ban-drop-column` for a reviewed contract step). */
  exclude?: string[];
  /** PostgreSQL major version the rules assume (default 15). */
  pgVersion?: string;
  /**
   * With `database` given and its URL reachable, table sizes are read from it: a CREATE INDEX without CONCURRENTLY
   * on a table bigger than this is an error (default 10 MB), and a full-table rewrite's cost is given for the
   * table's row count.
   */
  maxTableBytes?: number;
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

/** The downgrade that undoes `from:to` (or `to` from base): `to:from`. */
export function downgradeRangeOf(range: string): string {
  const parts = range.split(':').map((p) => p.trim());
  return parts.length === 1 ? `${parts[0]}:base` : `${parts[1]}:${parts[0]}`;
}

/** Total size and row estimate of each table, from the catalog; tables that do not exist yet are left out. */
async function measureTables(options: LintOptions, database: string, tables: string[]): Promise<TableSizes & { raw: Record<string, { bytes: number; rows: number }> }> {
  const project = loadProject(options);
  const sizes = { bytes: new Map<string, number>(), rows: new Map<string, number>(), raw: {} as Record<string, { bytes: number; rows: number }> };
  if (tables.length === 0) return sizes;
  await withDatabase(project.config, database, async (client) => {
    // tableKey names are unquoted; quote_ident each part back for to_regclass.
    const { rows } = await client.query<{ name: string; bytes: string; rows: string }>(
      `SELECT t.name, pg_total_relation_size(c.oid)::text AS bytes, greatest(c.reltuples, 0)::bigint::text AS rows
         FROM unnest($1::text[]) AS t(name)
         JOIN pg_class c ON c.oid = to_regclass((SELECT string_agg(quote_ident(p), '.') FROM unnest(string_to_array(t.name, '.')) AS p))`,
      [tables],
    );
    for (const row of rows) {
      sizes.bytes.set(row.name, Number(row.bytes));
      sizes.rows.set(row.name, Number(row.rows));
      sizes.raw[row.name] = { bytes: Number(row.bytes), rows: Number(row.rows) };
    }
  });
  return sizes;
}

/**
 * Views and rules of other relations that depend on every column of `tables` (what `SELECT *`
 * expands to), from pg_depend: a rewrite rule records one dependency per column it uses.
 */
async function readStarViews(options: LintOptions, database: string, tables: string[]): Promise<StarView[]> {
  if (tables.length === 0) return [];
  const project = loadProject(options);
  return withDatabase(project.config, database, async (client) => {
    const { rows } = await client.query<StarView>(
      `WITH t AS (
         SELECT t.name, to_regclass((SELECT string_agg(quote_ident(p), '.') FROM unnest(string_to_array(t.name, '.')) AS p)) AS oid
           FROM unnest($1::text[]) AS t(name)
       )
       SELECT t.name AS table, r.ev_class::regclass::text AS view, r.rulename::text AS rule
         FROM t
         JOIN pg_depend d ON d.refclassid = 'pg_class'::regclass AND d.refobjid = t.oid AND d.classid = 'pg_rewrite'::regclass AND d.refobjsubid > 0
         JOIN pg_rewrite r ON r.oid = d.objid AND r.ev_class <> t.oid
        GROUP BY t.name, t.oid, r.ev_class, r.rulename
       HAVING array_agg(DISTINCT d.refobjsubid::int) @> (SELECT array_agg(attnum::int) FROM pg_attribute WHERE attrelid = t.oid AND attnum > 0 AND NOT attisdropped)
        ORDER BY 1, 2`,
      [tables],
    );
    return rows;
  });
}

interface RenderedScript {
  script: LintScript;
  sql: string;
  squawk: LintFinding[];
}

export async function lint(options: LintOptions = {}): Promise<LintResult> {
  const range = options.range ?? 'base:heads';
  const exclude = options.exclude ?? [];
  const offline = await upgrade({ ...options, sql: true, target: range });
  if (offline.mode !== 'sql') throw new PhasegateError('LintFailed', 'could not render the SQL script to lint');

  const project = loadProject(options);
  const loaded = loadRevisions(migrationsDirectory(project, options.database));
  const revisions = new Map<string, RevisionFacts>(
    loaded.revisions.map((r) => [r.node.id, { gate: r.module.gate !== undefined, ...(r.module.backfill ? { backfill: r.module.backfill } : {}) }]),
  );

  const rendered: RenderedScript[] = [];
  const render = (script: LintScript, text: string) => {
    const sql = sqlForSquawk(text);
    const lines = sql.split('\n');
    // squawk refuses rule names it does not know: phasegate's own are left out here, and below.
    const squawk = runSquawk(sql, { pgVersion: options.pgVersion, exclude: exclude.filter((r) => !PHASEGATE_RULES.includes(r)) })
      // squawk counts lines from 0; the script's lines (and an editor's) count from 1.
      .map((f): LintFinding => ({ rule: f.rule_name, level: 'error', source: 'squawk', script, revision: revisionAt(lines, f.line + 1), line: f.line + 1, message: f.message, help: f.help ?? null }))
      // Above the first revision is phasegate's own preamble (the lock, its tables): the same in every
      // project and nothing a revision can change, so only a syntax error there is reported.
      .filter((f) => f.revision !== null || f.rule === 'syntax-error')
      // A downgrade puts back a schema that was there, often with no online route (a type or NOT NULL
      // restored under ACCESS EXCLUSIVE), and runs only when a person asks: its costs are for that
      // person to know, not a reason to refuse the upgrade.
      .map((f) => (script === 'downgrade' && f.rule !== 'syntax-error' ? { ...f, level: 'warning' as const } : f));
    rendered.push({ script, sql, squawk });
  };
  render('upgrade', offline.script);

  // The way back over the same revisions: a rejected gate or `phasegate downgrade` runs it.
  const findings: LintFinding[] = [];
  let downgradeRange: string | null = null;
  if (offline.steps.length > 0) {
    downgradeRange = downgradeRangeOf(range);
    try {
      const back = await downgrade({ ...options, sql: true, target: downgradeRange });
      render('downgrade', back.script);
    } catch (err) {
      if ((err as PhasegateError).type === 'LintFailed') throw err;
      // A way back that cannot even be rendered is worth knowing before a gate is rejected.
      const finding: LintFinding = {
        rule: 'downgrade-not-rendered',
        level: 'warning',
        source: 'phasegate',
        script: 'downgrade',
        revision: null,
        line: 0,
        message: `the downgrade script ${downgradeRange} cannot be rendered, so it was not linted: ${(err as Error).message}`,
        help: 'A revision whose downgrade cannot run has no way back after a rejected gate; give it a downgrade, or say so in its message',
      };
      if (!exclude.includes(finding.rule)) findings.push(finding);
    }
  }

  let measured: LintResult['measured'] = null;
  let measureError: string | undefined;
  let sizes: TableSizes | null = null;
  if (options.database !== undefined) {
    const tables = [...new Set(rendered.flatMap((r) => tablesToMeasure(r.sql)))];
    try {
      const read = await measureTables(options, options.database, tables);
      sizes = read;
      measured = { database: options.database, tables: read.raw };
      const upgradeSql = rendered[0].sql;
      const views = await readStarViews(options, options.database, [...new Set(columnDrops(upgradeSql).map((d) => d.table))]);
      findings.push(...starViewFindings(upgradeSql, views, 'upgrade').filter((f) => !exclude.includes(f.rule)));
    } catch (err) {
      // Sizes sharpen two rules; without them lint still runs, and says why they are missing.
      measureError = (err as Error).message;
    }
  }

  const behindGate: LintFinding[] = [];
  const undoing: LintFinding[] = [];
  let checks: CheckState | undefined;
  for (const { script, sql, squawk } of rendered) {
    const result = phasegateRules({ script, sql, revisions, checks, sizes, maxTableBytes: options.maxTableBytes ?? DEFAULT_MAX_TABLE_BYTES }, squawk);
    checks = result.checks;
    for (const f of result.squawk) {
      // A downgrade restores what was there before its revision: the drops and the old column types are its purpose.
      if (script === 'downgrade' && (GATED_RULES.has(f.rule) || f.rule.startsWith('prefer-'))) undoing.push(f);
      else if (GATED_RULES.has(f.rule) && f.revision !== null && revisions.get(f.revision)?.gate) behindGate.push(f);
      else findings.push(f);
    }
    findings.push(...result.findings.filter((f) => !exclude.includes(f.rule)));
  }
  const order = (f: LintFinding) => (f.script === 'upgrade' ? 0 : 1);
  findings.sort((a, b) => order(a) - order(b) || a.line - b.line);
  const errors = findings.filter((f) => f.level === 'error').length;
  return {
    range,
    downgradeRange,
    findings,
    errors,
    warnings: findings.length - errors,
    behindGate,
    undoing,
    excluded: exclude,
    measured,
    ...(measureError ? { measureError } : {}),
  };
}

