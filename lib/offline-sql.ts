/**
 * The `--sql` script (Alembic's "offline mode"): a plan rendered as one SQL file for review or for
 * a DBA to run with psql, without touching the database. It writes what the runtime does, in the
 * same order: per transactional revision a transaction that first sets lock_timeout and
 * statement_timeout, then the revision's statements, then the version-table rows; a
 * non-transactional revision's statements one by one under session timeouts, then its version rows
 * in a short transaction of their own. The script takes the migration lock first and checks that
 * the version table holds its starting point; each step moves only the rows it changes, so rows of
 * lines the range does not name stay as they are. Pure: a plan and the config in, text out.
 */
import type { PhasegateConfig } from './config';
import type { Plan, PlanStep } from './plan';
import { inlineParams, type Statement } from './sql';
import { MIGRATION_LOCK_KEY, createVersionTable, expectHeadsStatement, moveHeadsStatement, offlineLockStatement } from './version-table';

export interface OfflineScriptOptions {
  /** How the range was written (`base:head`), for the header. */
  range?: string;
}

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

/** `SET [LOCAL] lock_timeout` and `statement_timeout` from the config: what every step runs first. */
export function timeoutStatements(config: PhasegateConfig, scope: 'LOCAL' | 'SESSION'): string[] {
  const set = scope === 'LOCAL' ? 'SET LOCAL' : 'SET';
  const { lockTimeoutMs, statementTimeoutMs } = config.defaults;
  return [
    `${set} lock_timeout = '${lockTimeoutMs}ms';`,
    statementTimeoutMs > 0 ? `${set} statement_timeout = '${statementTimeoutMs}ms';` : `${set} statement_timeout = 0;  -- no limit`,
  ];
}

const arrow = (step: PlanStep): string => {
  const before = step.headsBefore.length ? step.headsBefore.join(', ') : '<base>';
  const after = step.headsAfter.length ? step.headsAfter.join(', ') : '<base>';
  return `${before} -> ${after}`;
};

function renderStep(step: PlanStep, config: PhasegateConfig): string[] {
  const phase = step.phase ? ` [phase ${step.phase}]` : '';
  const lines = [`-- Running ${step.direction} ${step.revision}: ${step.message}${phase} (${step.file}; version rows ${arrow(step)})`];
  if (step.operations.length > 0) lines.push(`-- operations: ${step.operations.join('; ')}`);
  const body = step.statements.flatMap(renderStatementLines);
  const versionRows = [renderStatement(moveHeadsStatement(config, step.headsBefore, step.headsAfter))];
  if (step.transactional) {
    lines.push('BEGIN;', ...timeoutStatements(config, 'LOCAL'), ...body, ...versionRows, 'COMMIT;');
    return lines;
  }
  lines.push(
    '-- non-transactional: runs statement by statement (CONCURRENTLY cannot run inside a transaction);',
    '-- every statement is idempotent, so if one fails, fix the cause and run this section again',
    ...timeoutStatements(config, 'SESSION'),
    ...body,
    'BEGIN;',
    ...versionRows,
    'COMMIT;',
    'RESET lock_timeout;',
    'RESET statement_timeout;',
  );
  return lines;
}

/** The whole script for `plan`. */
export function renderOfflineScript(plan: Plan, config: PhasegateConfig, options: OfflineScriptOptions = {}): string {
  const from = plan.currentHeads.length ? plan.currentHeads.join(', ') : 'base';
  const header = [
    `-- phasegate ${plan.direction} ${options.range ?? plan.target} for database "${plan.database}" (offline script; nothing was run)`,
    `-- from ${from}; ${plan.steps.length} revision(s); lock_timeout ${config.defaults.lockTimeoutMs}ms on every statement`,
    '-- Run it with: psql -v ON_ERROR_STOP=1 -f <this file>',
  ];
  if (plan.steps.length === 0) return [...header, '', '-- nothing to do: the range holds no revision to run', ''].join('\n');
  const start = [
    '-- the migration lock (the one every phasegate writer takes), held until the end of this session',
    ...timeoutStatements(config, 'SESSION'),
    renderStatement(offlineLockStatement()),
    renderStatement(createVersionTable(config)),
  ];
  if (plan.currentHeads.length > 0) {
    start.push(`-- this script starts from ${from}: stop here unless the version table holds that`, renderStatement(expectHeadsStatement(config, plan.currentHeads)));
  }
  start.push('RESET lock_timeout;', 'RESET statement_timeout;');
  const sections = plan.steps.map((step) => renderStep(step, config).join('\n'));
  const end = [`SELECT pg_advisory_unlock(${MIGRATION_LOCK_KEY});`];
  return `${[header.join('\n'), start.join('\n'), ...sections, end.join('\n')].join('\n\n')}\n`;
}
