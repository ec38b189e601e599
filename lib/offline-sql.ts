/**
 * The `--sql` script (Alembic's "offline mode"): a plan rendered as one psql script for review or
 * for a DBA to run with `psql -v ON_ERROR_STOP=1 -f`, without touching the database. It is the
 * whole change, in the order the `migrate` workflow runs it:
 *
 * - per step: its statements (a transactional revision in one transaction that first sets
 *   lock_timeout and statement_timeout; a non-transactional one statement by statement under
 *   session timeouts), then its version rows;
 * - a step with a backfill or check records its statements in the pending table instead, then runs
 *   the backfill as keyset batches that each commit with their checkpoint, then the check (which
 *   raises, stopping the script, when rows fail), and only then writes its version rows — as the
 *   workflow does, the version table never names a revision whose data is not there yet;
 * - a gate stops the script before its step: the script prints the prompt and the command that
 *   approves it (`-v approve=<gate>`), and ends; run with that variable, it records the approval in
 *   the audit table and goes on.
 *
 * Every step is guarded by what the version table holds (psql `\if`): a step that ran is skipped, a
 * step whose backfill stopped resumes at its last committed batch, and a table that holds neither
 * the step's starting point nor its result stops the script before anything changes. So the same
 * file is run again after a gate, a failed check or a lock timeout, and a second run of a finished
 * script changes nothing. Pure: a plan and the config in, text out.
 */
import { createProgressTable, KEY_CANDIDATES_SQL, KEY_TYPES, normalizeBackfillSpec, progressTableName } from './backfill';
import type { PhasegateConfig } from './config';
import type { OpStatement } from './ops/types';
import type { Plan, PlanStep } from './plan';
import { CHECK_COUNT_CAP, CHECK_SAMPLE_SIZE, DEFAULT_CHECK_TIMEOUT_MS, type BackfillSpec, type CheckSpec } from './revision';
import { inlineParams, qualified, quoteIdent, quoteLiteral, type Statement } from './sql';
import {
  approvalTableName,
  createApprovalTable,
  createPendingTable,
  createVersionTable,
  leaseTableName,
  MIGRATION_LOCK_KEY,
  moveHeadsStatement,
  offlineLockStatement,
  pendingTableName,
  versionTableName,
} from './version-table';

export interface OfflineScriptOptions {
  /** How the range was written (`base:head`), for the header. */
  range?: string;
}

/** What the pending table's `workflow_id` says for a step an offline script applied. */
export const OFFLINE_OWNER = 'psql script';
/** A backfill's checkpoint id in an offline script (the workflow's are `revision:<id>`). */
export const offlineBackfillId = (revision: string) => `offline:${revision}`;
/** How many times in a row a batch may hit lock_timeout on row locks before the script stops. */
const BATCH_LOCK_RETRIES = 30;
/** A batch waits this long for application row locks (the workflow's batches too). */
const BATCH_LOCK_TIMEOUT_MS = 2_000;
/** The backfill prints its progress this often. */
const PROGRESS_EVERY_S = 10;

/** One statement as script text: parameters inlined as literals (arrays as array literals), `;`-terminated. */
export function renderStatement(statement: Statement): string {
  const sql = inlineParams(statement).trim().replace(/;\s*$/, '');
  return `${sql};`;
}

/** A statement an op guards with a query the runtime runs first (`onlyIf`; see lib/ops/types.ts). */
type MaybeGuarded = Statement & { onlyIf?: Statement };

/**
 * A statement as script lines. A guarded one is written commented out with its guard: plain SQL
 * cannot run a statement conditionally where a DO block is not allowed (DROP INDEX CONCURRENTLY),
 * and running it unconditionally could drop what the guard protects. A fresh database never needs
 * it; on one where the guard returns a row, run the statement by hand.
 */
export function renderStatementLines(statement: MaybeGuarded): string[] {
  if (!statement.onlyIf) return [renderStatement(statement)];
  return [
    '-- guarded: the runtime runs the next statement only when this query returns a row; check it and run the statement by hand if it does',
    `--   ${renderStatement(statement.onlyIf)}`,
    `--   ${renderStatement(statement)}`,
  ];
}

/**
 * A statement as lines of the psql script: a guarded one runs only when its guard returns a row
 * (psql `\if`, as the runtime does it); a CONCURRENTLY one runs with lock_timeout 0, as the runtime
 * runs it: its wait for older transactions blocks no reader or writer, and a short lock_timeout
 * would only leave an INVALID index behind.
 */
function scriptStatementLines(statement: OpStatement, config: PhasegateConfig): string[] {
  const run = statement.concurrently
    ? ['SET lock_timeout = 0;', renderStatement(statement), `SET lock_timeout = '${config.defaults.lockTimeoutMs}ms';`]
    : [renderStatement(statement)];
  if (!statement.onlyIf) return run;
  return [
    `SELECT EXISTS (${inlineParams(statement.onlyIf).trim().replace(/;\s*$/, '')}) AS phasegate_guard`,
    '\\gset',
    '\\if :phasegate_guard',
    ...run,
    '\\endif',
  ];
}


/** `SET [LOCAL] lock_timeout` and `statement_timeout` from the config: what every step runs first. */
export function timeoutStatements(config: PhasegateConfig, scope: 'LOCAL' | 'SESSION'): string[] {
  const set = scope === 'LOCAL' ? 'SET LOCAL' : 'SET';
  const { lockTimeoutMs, statementTimeoutMs } = config.defaults;
  return [
    `${set} lock_timeout = '${lockTimeoutMs}ms';`,
    statementTimeoutMs > 0 ? `${set} statement_timeout = '${statementTimeoutMs}ms';` : `${set} statement_timeout = 0;  -- no limit`,
  ];
}

/** A psql `\echo` of one line: psql reads `''` as a quote and `\\` as a backslash inside '…'. */
function echo(text: string): string {
  return `\\echo '${text.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

const textArray = (values: readonly string[]) => (values.length ? `ARRAY[${values.map(quoteLiteral).join(', ')}]::text[]` : `'{}'::text[]`);

const arrow = (step: PlanStep): string => {
  const before = step.headsBefore.length ? step.headsBefore.join(', ') : '<base>';
  const after = step.headsAfter.length ? step.headsAfter.join(', ') : '<base>';
  return `${before} -> ${after}`;
};

/** Steps whose version row waits for a backfill and a check (the workflow's `stamp: 'defer'`). */
const deferred = (step: PlanStep) => step.direction === 'upgrade' && (step.backfill !== undefined || step.check !== undefined);

/**
 * Where the version table stands for step `index`, as psql variables: `phasegate_before` (it holds
 * the step's starting point), `phasegate_todo` (before, and the statements have not run: no pending
 * row), `phasegate_approved` (the gate is named in `-v approve`). The plan is a walk through states
 * S0 … Sn of the rows it touches (rows of other lines are left out of the comparison); step i runs
 * from S(i-1) to S(i). Comparing the whole touched set, not only the step's own rows, is what tells
 * "step 1 not run" from "step 2 ran" (both lack step 1's row). First a block that raises when the
 * table holds none of the states from the step's start on: the database is not where the script
 * was generated from, and nothing of this step may run.
 */
function stepState(index: number, plan: Plan, config: PhasegateConfig): string[] {
  const step = plan.steps[index];
  const table = versionTableName(config);
  const states = [plan.steps[0].headsBefore, ...plan.steps.map((s) => s.headsAfter)].map((heads) => [...heads].sort());
  const touched = [...new Set(states.flat())].sort();
  const heads = `(SELECT coalesce(array_agg(version_num ORDER BY version_num), '{}') AS heads FROM ${table} WHERE version_num = ANY (${textArray(touched)}))`;
  const before = `heads = ${textArray(states[index])}`;
  const columns = [
    `${before} AS phasegate_before`,
    `${before} AND NOT EXISTS (SELECT 1 FROM ${pendingTableName(config)} WHERE version_num = ${quoteLiteral(step.revision)}) AS phasegate_todo`,
    `heads IN (${states.slice(index).map(textArray).join(', ')}) AS phasegate_known`,
  ];
  if (step.gate) columns.push(`${quoteLiteral(step.gate.name)} = ANY (string_to_array(:'approve', ',')) AS phasegate_approved`);
  return [
    `SELECT ${columns.join(',\n       ')}`,
    `  FROM ${heads} AS at`,
    '\\gset',
    '\\if :phasegate_known',
    '\\else',
    'DO $phasegate$',
    'BEGIN',
    `  RAISE EXCEPTION 'phasegate: the version table holds %, neither the starting point of revision % (%) nor a later point of this script', ${heads.replace(' AS heads', '')}, ${quoteLiteral(step.revision)}, ${quoteLiteral(step.headsBefore.join(', ') || '<base>')}`,
    `    USING HINT = 'another migration ran meanwhile: run phasegate current, then generate the script from what it shows';`,
    'END',
    '$phasegate$;',
    '\\endif',
  ];
}

/** The gate before a step: stop with the prompt unless `-v approve` names it; record the approval. */
function gateLines(step: PlanStep, plan: Plan, config: PhasegateConfig): string[] {
  const gate = step.gate!;
  const table = approvalTableName(config);
  const prompt = gate.prompt.split('\n');
  return [
    `-- Gate ${gate.name} (before ${step.revision}): ${prompt[0]}`,
    ...prompt.slice(1).map((l) => `--   ${l}`),
    '\\if :phasegate_todo',
    '\\if :phasegate_approved',
    `INSERT INTO ${table} (workflow_id, run_id, database, revision, gate, decision, decided_by, comment, accepted, ignored_reason, decided_at, seq)`,
    `SELECT ${quoteLiteral(OFFLINE_OWNER)}, ${quoteLiteral(`${plan.direction} ${plan.target}`)}, ${quoteLiteral(plan.database)}, ${quoteLiteral(step.revision)}, ${quoteLiteral(gate.name)}, 'approve', session_user,`,
    `       'approved with psql -v approve', true, NULL, now(), coalesce(max(seq), 0) + 1 FROM ${table} WHERE workflow_id = ${quoteLiteral(OFFLINE_OWNER)};`,
    echo(`phasegate: gate ${gate.name} approved (-v approve); going on`),
    '\\else',
    echo(''),
    echo(`phasegate: stopped at gate ${gate.name}, before revision ${step.revision} (${step.message}).`),
    ...prompt.map((l) => echo(`  ${l}`)),
    echo('Everything before this gate is done and recorded. When the above is true, run the same file again with the gate approved:'),
    echo(`  psql -v ON_ERROR_STOP=1 -v approve='${gate.name}' -f <this file>`),
    '\\quit',
    '\\endif',
    '\\endif',
  ];
}

/**
 * A backfill as one DO block that commits after every batch (PostgreSQL 11+: a DO block run
 * outside a transaction may COMMIT), so row locks last one batch and a stop loses at most the
 * batch in flight. The same walk as the workflow's engine (lib/backfill.ts batchStatements): the key
 * comes from the catalog when the script runs (the primary key, else a unique index on NOT NULL
 * integer, uuid or text columns; or the columns `key` names), each batch finds the key
 * `batchSize` rows ahead, updates the rows up to it that still match `where`, and moves its
 * checkpoint row (`offline:<revision>` in the progress table) in the same transaction. A re-run
 * starts after the last committed batch. A batch that waits over 2 s for application row locks is
 * rolled back and retried after a pause (30 times in a row at most). Pacing: `delayMs` between
 * batches and `maxRowsPerSecond`; the batch size is fixed (no adaptive sizing, no parallel slices).
 */
export function offlineBackfillBlock(revision: string, backfill: BackfillSpec, config: PhasegateConfig): string {
  const { spec } = normalizeBackfillSpec(backfill);
  const progress = progressTableName(config.migrations.versionTableSchema);
  const id = quoteLiteral(offlineBackfillId(revision));
  const { batchSize, delayMs, maxRowsPerSecond } = spec.pacing;
  const assignments = spec.set.map(([column, expression]) => `${quoteIdent(column)} = (${expression})`).join(', ');
  const where = spec.where ? ` AND (${spec.where})` : '';
  // The candidate query of the engine, asked of the table the block resolved.
  const candidates = KEY_CANDIDATES_SQL.replace('$1::regclass', 'v_table');
  const supported = textArray(Object.keys(KEY_TYPES));
  const lit = (s: string) => quoteLiteral(s);
  return `DO $phasegate_backfill$
DECLARE
  v_table regclass := to_regclass(${lit(qualified(spec.table))});
  v_requested text[] := ${spec.key ? textArray(spec.key) : 'NULL::text[]'};
  v_cols text[];
  v_types text[];
  v_list text; v_desc text; v_key text; v_key_text text; v_lo text; v_hi text;
  v_find_first text; v_find_next text; v_update_first text; v_update_next text; v_count_first text; v_count_next text;
  v_last text[]; v_end text[]; v_full boolean; v_done boolean;
  v_updated bigint; v_scanned bigint;
  v_rows bigint; v_changed bigint; v_run_rows bigint := 0;
  v_started timestamptz := clock_timestamp();
  v_reported timestamptz := clock_timestamp();
  v_waits integer := 0;
  v_ahead float8;
BEGIN
  IF v_table IS NULL THEN
    RAISE EXCEPTION 'phasegate: backfill of %: the table does not exist', ${lit(spec.table)};
  END IF;
  SELECT c.columns, c.types INTO v_cols, v_types FROM (${candidates.replace(/\n/g, '\n    ')}) c
   WHERE c.not_null AND (v_requested IS NULL OR c.columns = v_requested) AND c.types <@ ${supported}
   ORDER BY c.is_primary DESC, cardinality(c.columns), c.index_name LIMIT 1;
  IF v_cols IS NULL THEN
    RAISE EXCEPTION 'phasegate: backfill of %: no primary key or unique index on NOT NULL integer, uuid or text columns%', ${lit(spec.table)},
      CASE WHEN v_requested IS NULL THEN '' ELSE ' matches key (' || array_to_string(v_requested, ', ') || ')' END
      USING HINT = 'add a primary key (or a unique index on NOT NULL columns) in an earlier revision, or name one with backfill.key';
  END IF;
  -- The walk's SQL, from the key: "(a, b) > (($1)[1]::bigint, ($1)[2]::text)" compares in the columns' own order.
  SELECT string_agg(quote_ident(c), ', ' ORDER BY o), string_agg(quote_ident(c) || ' DESC', ', ' ORDER BY o),
         'ARRAY[' || string_agg(quote_ident(c) || '::text', ', ' ORDER BY o) || ']'
    INTO v_list, v_desc, v_key_text FROM unnest(v_cols) WITH ORDINALITY AS u(c, o);
  -- bpchar, not "character" (which means character(1)): a key value keeps its length.
  SELECT string_agg(format('($1)[%s]::%s', o, CASE t WHEN 'character' THEN 'bpchar' ELSE t END), ', ' ORDER BY o),
         string_agg(format('($2)[%s]::%s', o, CASE t WHEN 'character' THEN 'bpchar' ELSE t END), ', ' ORDER BY o)
    INTO v_lo, v_hi FROM unnest(v_types) WITH ORDINALITY AS u(t, o);
  IF cardinality(v_cols) > 1 THEN
    v_key := '(' || v_list || ')'; v_lo := '(' || v_lo || ')'; v_hi := '(' || v_hi || ')';
  ELSE
    v_key := v_list;
  END IF;
  v_find_first := format('(SELECT %s, true FROM %s ORDER BY %s OFFSET %s LIMIT 1) UNION ALL (SELECT %s, false FROM %s ORDER BY %s LIMIT 1) LIMIT 1',
    v_key_text, v_table, v_list, ${batchSize - 1}, v_key_text, v_table, v_desc);
  v_find_next := format('(SELECT %s, true FROM %s WHERE %s > %s ORDER BY %s OFFSET %s LIMIT 1) UNION ALL (SELECT %s, false FROM %s WHERE %s > %s ORDER BY %s LIMIT 1) LIMIT 1',
    v_key_text, v_table, v_key, v_lo, v_list, ${batchSize - 1}, v_key_text, v_table, v_key, v_lo, v_desc);
  v_update_first := format('UPDATE %s SET %s WHERE %s <= %s%s', v_table, ${lit(assignments)}, v_key, v_hi, ${lit(where)});
  v_update_next := format('UPDATE %s SET %s WHERE %s > %s AND %s <= %s%s', v_table, ${lit(assignments)}, v_key, v_lo, v_key, v_hi, ${lit(where)});
  v_count_first := format('SELECT count(*) FROM %s WHERE %s <= %s', v_table, v_key, v_hi);
  v_count_next := format('SELECT count(*) FROM %s WHERE %s > %s AND %s <= %s', v_table, v_key, v_lo, v_key, v_hi);
  -- The checkpoint: where an earlier run of this script stopped.
  INSERT INTO ${progress} (backfill_id, slice, table_name) VALUES (${id}, 0, ${lit(spec.table)}) ON CONFLICT (backfill_id, slice) DO NOTHING;
  SELECT last_key, rows_done, rows_updated, done INTO v_last, v_rows, v_changed, v_done FROM ${progress} WHERE backfill_id = ${id} AND slice = 0;
  COMMIT;
  IF v_done THEN
    RAISE NOTICE 'phasegate: backfill of % finished before (% rows walked, % changed)', ${lit(spec.table)}, v_rows, v_changed;
    RETURN;
  END IF;
  RAISE NOTICE 'phasegate: backfill of % by key (%), % rows per batch%', ${lit(spec.table)}, array_to_string(v_cols, ', '), ${batchSize},
    CASE WHEN v_last IS NULL THEN '' ELSE ', resuming after key ' || v_last::text || ' (' || v_rows || ' rows walked before)' END;
  LOOP
    BEGIN
      IF v_last IS NULL THEN EXECUTE v_find_first INTO v_end, v_full; ELSE EXECUTE v_find_next INTO v_end, v_full USING v_last; END IF;
      v_updated := 0; v_scanned := 0;
      IF v_end IS NULL THEN
        v_full := false;
      ELSE
        IF v_last IS NULL THEN EXECUTE v_update_first USING v_last, v_end; ELSE EXECUTE v_update_next USING v_last, v_end; END IF;
        GET DIAGNOSTICS v_updated = ROW_COUNT;
        IF v_full THEN
          v_scanned := ${batchSize};
        ELSIF v_last IS NULL THEN
          EXECUTE v_count_first INTO v_scanned USING v_last, v_end;
        ELSE
          EXECUTE v_count_next INTO v_scanned USING v_last, v_end;
        END IF;
      END IF;
      UPDATE ${progress} SET last_key = COALESCE(v_end, last_key), rows_done = rows_done + v_scanned, rows_updated = rows_updated + v_updated,
             done = NOT v_full, updated_at = now()
       WHERE backfill_id = ${id} AND slice = 0;
    EXCEPTION WHEN lock_not_available OR deadlock_detected THEN
      -- The batch and its checkpoint rolled back together: nothing of it was written.
      v_waits := v_waits + 1;
      IF v_waits > ${BATCH_LOCK_RETRIES} THEN
        RAISE EXCEPTION 'phasegate: backfill of %: % batches in a row waited over ${BATCH_LOCK_TIMEOUT_MS} ms for row locks held by other sessions', ${lit(spec.table)}, v_waits
          USING HINT = 'find the long transactions (pg_stat_activity), then run this script again: it resumes at the last committed batch';
      END IF;
      RAISE NOTICE 'phasegate: a batch waited over ${BATCH_LOCK_TIMEOUT_MS} ms for row locks; rolled back, retrying (% of ${BATCH_LOCK_RETRIES})', v_waits;
      PERFORM pg_sleep(least(2.0, 0.2 * v_waits));
      CONTINUE;
    END;
    COMMIT;
    v_waits := 0;
    v_rows := v_rows + v_scanned; v_changed := v_changed + v_updated; v_run_rows := v_run_rows + v_scanned;
    IF v_end IS NOT NULL THEN v_last := v_end; END IF;
    EXIT WHEN NOT v_full;
    IF clock_timestamp() - v_reported >= interval '${PROGRESS_EVERY_S} seconds' THEN
      RAISE NOTICE 'phasegate: backfill of %: % rows walked, % changed, at key %, % rows/s', ${lit(spec.table)}, v_rows, v_changed, v_last::text,
        round(v_run_rows / greatest(extract(epoch FROM clock_timestamp() - v_started), 0.001));
      v_reported := clock_timestamp();
    END IF;${delayMs > 0 ? `\n    PERFORM pg_sleep(${delayMs / 1000});` : ''}${
      maxRowsPerSecond
        ? `\n    v_ahead := v_run_rows / ${maxRowsPerSecond}::float8 - extract(epoch FROM clock_timestamp() - v_started);\n    IF v_ahead > 0 THEN PERFORM pg_sleep(v_ahead); END IF;`
        : ''
    }
  END LOOP;
  RAISE NOTICE 'phasegate: backfill of % finished: % rows walked, % changed, % s', ${lit(spec.table)}, v_rows, v_changed,
    round(extract(epoch FROM clock_timestamp() - v_started)::numeric, 1);
END
$phasegate_backfill$;`;
}

/**
 * A check as a DO block that raises when rows fail, with how many (up to 1000: the scan stops
 * early, as the workflow's check does) and a sample of them; psql stops there, and a re-run after
 * the rows are fixed starts again with this check. Read-only, under the check's own timeout.
 */
export function offlineCheckBlock(check: CheckSpec): string[] {
  const query = check.failingRows.trim().replace(/;\s*$/, '');
  const timeoutMs = typeof check.timeoutMs === 'number' && check.timeoutMs > 0 ? Math.ceil(check.timeoutMs) : DEFAULT_CHECK_TIMEOUT_MS;
  return [
    'BEGIN READ ONLY;',
    `SET LOCAL statement_timeout = '${timeoutMs}ms';`,
    'DO $phasegate_check$',
    'DECLARE',
    '  v_failing bigint;',
    '  v_sample text;',
    'BEGIN',
    `  EXECUTE 'SELECT count(*) FROM (SELECT 1 FROM (' || ${quoteLiteral(query)} || ') AS failing LIMIT ${CHECK_COUNT_CAP + 1}) AS capped' INTO v_failing;`,
    '  IF v_failing > 0 THEN',
    `    EXECUTE 'SELECT string_agg(f::text, '', '') FROM (SELECT * FROM (' || ${quoteLiteral(query)} || ') AS failing LIMIT ${CHECK_SAMPLE_SIZE}) AS f' INTO v_sample;`,
    `    RAISE EXCEPTION 'phasegate: check "%" failed: % row(s), e.g. %', ${quoteLiteral(check.name)},`,
    `      CASE WHEN v_failing > ${CHECK_COUNT_CAP} THEN 'more than ${CHECK_COUNT_CAP}' ELSE v_failing::text END, v_sample`,
    `      USING HINT = 'fix those rows (or the revision), then run this script again: it resumes at this check';`,
    '  END IF;',
    `  RAISE NOTICE 'phasegate: check "%" passed', ${quoteLiteral(check.name)};`,
    'END',
    '$phasegate_check$;',
    'COMMIT;',
  ];
}

/** The version-row move of a step, and what goes with it. */
function recordLines(step: PlanStep, config: PhasegateConfig): string[] {
  const lines = [renderStatement(moveHeadsStatement(config, step.headsBefore, step.headsAfter))];
  lines.push(`DELETE FROM ${pendingTableName(config)} WHERE version_num = ${quoteLiteral(step.revision)};`);
  const progress = progressTableName(config.migrations.versionTableSchema);
  const ids = [`revision:${step.revision}`, offlineBackfillId(step.revision)];
  // Finished (upgrade) or undone (downgrade), a backfill's checkpoints must not survive: a later
  // upgrade would resume past rows it never wrote.
  if (step.direction === 'downgrade') lines.push(`DELETE FROM ${progress} WHERE backfill_id = ANY (${textArray(ids)});`);
  else if (step.backfill) lines.push(`DELETE FROM ${progress} WHERE backfill_id = ${quoteLiteral(offlineBackfillId(step.revision))};`);
  return lines;
}

function renderStep(step: PlanStep, index: number, plan: Plan, config: PhasegateConfig): string[] {
  const phase = step.phase ? ` [phase ${step.phase}]` : '';
  const lines = [`-- Running ${step.direction} ${step.revision}: ${step.message}${phase} (${step.file}; version rows ${arrow(step)})`];
  if (step.operations.length > 0) lines.push(`-- operations: ${step.operations.join('; ')}`);
  lines.push(...stepState(index, plan, config));
  if (step.gate && step.direction === 'upgrade') lines.push(...gateLines(step, plan, config));
  const body = step.statements.flatMap((statement) => scriptStatementLines(statement, config));
  const later = deferred(step);
  const record = later ? [`INSERT INTO ${pendingTableName(config)} (version_num, workflow_id) VALUES (${quoteLiteral(step.revision)}, ${quoteLiteral(OFFLINE_OWNER)}) ON CONFLICT DO NOTHING;`] : recordLines(step, config);
  const name = `step ${index + 1} of ${plan.steps.length}, ${step.direction} ${step.revision}`;
  lines.push('\\if :phasegate_todo');
  if (step.transactional) {
    lines.push('BEGIN;', ...timeoutStatements(config, 'LOCAL'), ...body, ...record, 'COMMIT;');
  } else {
    lines.push(
      '-- non-transactional: runs statement by statement (CONCURRENTLY cannot run inside a transaction) under the',
      "-- session's timeouts; every statement is idempotent, so if one fails, fix the cause and run the script again",
      ...body,
      'BEGIN;',
      ...record,
      'COMMIT;',
    );
  }
  if (later) lines.push('\\elif :phasegate_before', echo(`phasegate: ${name}: its statements ran before; its backfill and check go on`));
  lines.push('\\else', echo(`phasegate: ${name}: already applied; skipped`), '\\endif');
  if (!later) return lines;

  lines.push('\\if :phasegate_before');
  if (step.backfill) {
    lines.push(
      `-- backfill of ${step.backfill.table}: batches that commit one by one; a batch waits at most ${BATCH_LOCK_TIMEOUT_MS} ms for row locks.`,
      '-- One statement for the whole walk, so no statement_timeout; interrupt it at any time and run the script again to resume.',
      ...(step.backfill.window
        ? [`-- backfill.window (${step.backfill.window.outside === 'wait' ? 'only inside maintenance windows' : 'another pace inside maintenance windows'}) is not applied by this script: run it when the window allows; it walks at the spec's own pace.`]
        : []),
      `SET lock_timeout = '${BATCH_LOCK_TIMEOUT_MS}ms';`,
      'SET statement_timeout = 0;',
      offlineBackfillBlock(step.revision, step.backfill, config),
      ...timeoutStatements(config, 'SESSION'),
    );
  }
  if (step.check) lines.push(`-- check: ${step.check.name}`, ...offlineCheckBlock(step.check));
  lines.push('BEGIN;', ...timeoutStatements(config, 'LOCAL'), ...recordLines(step, config), 'COMMIT;', '\\endif');
  return lines;
}

/** A statement on one line, its `--` comments dropped (phasegate's own CREATE TABLEs carry no strings). */
const oneLine = (statement: Statement) =>
  renderStatement({ sql: statement.sql.replace(/--[^\n]*/g, '').replace(/\s*\n\s*/g, ' ').replace(/\( /g, '(').replace(/ \)/g, ')') });

/** The whole script for `plan`. */
export function renderOfflineScript(plan: Plan, config: PhasegateConfig, options: OfflineScriptOptions = {}): string {
  const from = plan.currentHeads.length ? plan.currentHeads.join(', ') : 'base';
  const gates = plan.direction === 'upgrade' ? plan.steps.filter((s) => s.gate) : [];
  const header = [
    `-- phasegate ${plan.direction} ${options.range ?? plan.target} for database "${plan.database}" (offline script; nothing was run)`,
    `-- from ${from}; ${plan.steps.length} revision(s); lock_timeout ${config.defaults.lockTimeoutMs}ms on every statement`,
    '-- Run it with: psql -v ON_ERROR_STOP=1 -f <this file>   (not with -1/--single-transaction: backfills commit per batch)',
    '-- Safe to run again: steps that ran are skipped, a backfill resumes at its last committed batch, a failed check runs again.',
  ];
  if (gates.length > 0) {
    header.push(
      `-- ${gates.length} gate(s) split it into ${gates.length + 1} parts; the script stops at each one, prints its prompt and the command that approves it:`,
      ...gates.map((s, i) => `--   part ${i + 2}: gate ${s.gate!.name} before ${s.revision}; continue with psql -v ON_ERROR_STOP=1 -v approve='${s.gate!.name}' -f <this file>`),
    );
  }
  if (plan.steps.length === 0) return [...header, '', '-- nothing to do: the range holds no revision to run', ''].join('\n');
  const lease = leaseTableName(config);
  const start = [
    // Stop at the first error even when -v ON_ERROR_STOP=1 was forgotten: a step must never run after a failed one.
    '\\set ON_ERROR_STOP on',
    '\\if :{?approve}',
    '\\else',
    "\\set approve ''",
    '\\endif',
    '-- every statement from here on waits at most lock_timeout for its lock (steps set it again for their transaction)',
    ...timeoutStatements(config, 'SESSION'),
    '-- the migration lock (the one every phasegate writer takes), held until the end of this session',
    renderStatement(offlineLockStatement()),
    // phasegate's own tables; their "already exists, skipping" notices would drown the script's own.
    'SET client_min_messages = warning;',
    renderStatement(createVersionTable(config)),
    renderStatement(createPendingTable(config)),
    // squawk's type-choice rules judge an application's schema; these tables are phasegate's own, created
    // as the runtime creates them. One line each, because squawk-ignore covers the line after it.
    ...(plan.steps.some((s) => s.backfill || s.direction === 'downgrade')
      ? ['-- squawk-ignore prefer-bigint-over-int', oneLine(createProgressTable(config.migrations.versionTableSchema))]
      : []),
    ...(gates.length > 0 ? ['-- squawk-ignore prefer-identity, prefer-bigint-over-int', oneLine(createApprovalTable(config))] : []),
    'RESET client_min_messages;',
    '-- a migrate workflow that holds the lease may be running a backfill, which takes no migration lock between batches',
    [
      'DO $phasegate$',
      'DECLARE v_holder text;',
      'BEGIN',
      `  IF to_regclass(${quoteLiteral(lease)}) IS NOT NULL THEN`,
      `    EXECUTE 'SELECT workflow_id FROM ${lease.replace(/'/g, "''")}' INTO v_holder;`,
      '    IF v_holder IS NOT NULL THEN',
      `      RAISE EXCEPTION 'phasegate: migration workflow % holds this database''s migration lease', v_holder`,
      `        USING HINT = 'wait for it to finish (phasegate status); if it no longer runs, delete its row from ${lease.replace(/'/g, "''")} and run this script again';`,
      '    END IF;',
      '  END IF;',
      'END',
      '$phasegate$;',
    ].join('\n'),
  ];
  const sections = plan.steps.map((step, i) => renderStep(step, i, plan, config).join('\n'));
  const end = [echo(`phasegate: ${plan.direction} ${options.range ?? plan.target} of "${plan.database}" finished`), `SELECT pg_advisory_unlock(${MIGRATION_LOCK_KEY}) AS phasegate_unlocked`, '\\gset', 'RESET lock_timeout;', 'RESET statement_timeout;'];
  return `${[header.join('\n'), start.join('\n'), ...sections, end.join('\n')].join('\n\n')}\n`;
}
