/**
 * The version table (`phasegate_version`, like `alembic_version`): one row per applied head.
 * Its SQL lives here so the runtime, the CLI and the offline `--sql` script all write exactly the
 * same statements.
 */
import type pg from 'pg';
import type { PhasegateConfig } from './config';
import { quoteIdent, quoteLiteral, type Statement } from './sql';

/**
 * Advisory lock key that every phasegate writer of a version table takes (migration steps, stamp):
 * one writer per database at a time.
 */
export const MIGRATION_LOCK_KEY = 0x70686173; // 'phas'

export function versionTableName(config: PhasegateConfig): string {
  return `${quoteIdent(config.migrations.versionTableSchema)}.${quoteIdent(config.migrations.versionTable)}`;
}

export function createVersionTable(config: PhasegateConfig): Statement {
  return { sql: `CREATE TABLE IF NOT EXISTS ${versionTableName(config)} (version_num text PRIMARY KEY)` };
}

export function selectHeads(config: PhasegateConfig): Statement {
  return { sql: `SELECT version_num FROM ${versionTableName(config)} ORDER BY version_num` };
}

/** Statements that turn the version table's rows into exactly `heads`. */
export function writeHeadsStatements(config: PhasegateConfig, heads: string[]): Statement[] {
  return [
    createVersionTable(config),
    { sql: `DELETE FROM ${versionTableName(config)} WHERE NOT (version_num = ANY($1::text[]))`, params: [heads] },
    { sql: `INSERT INTO ${versionTableName(config)} (version_num) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING`, params: [heads] },
  ];
}

/**
 * The offline script's version-row move for one step, as one DO block: delete exactly the rows the
 * step replaces and insert exactly the rows it adds, leaving every other row alone (Alembic's
 * UPDATE-by-value). Why not `writeHeadsStatements`: an offline script never reads the table, so
 * "make the table exactly these rows" would delete the rows of lines its range does not name. The
 * block raises, stopping psql, when a row to replace is missing or a row to add is already there:
 * the database is not where the script was generated from.
 */
export function moveHeadsStatement(config: PhasegateConfig, before: readonly string[], after: readonly string[]): Statement {
  const removed = before.filter((h) => !after.includes(h));
  const added = after.filter((h) => !before.includes(h));
  const table = versionTableName(config);
  const array = (ids: readonly string[]) => `ARRAY[${ids.map(quoteLiteral).join(', ')}]::text[]`;
  const lines = ['DO $phasegate$', 'DECLARE moved integer;', 'BEGIN'];
  if (removed.length > 0) {
    lines.push(
      `  DELETE FROM ${table} WHERE version_num = ANY (${array(removed)});`,
      '  GET DIAGNOSTICS moved = ROW_COUNT;',
      `  IF moved <> ${removed.length} THEN`,
      `    RAISE EXCEPTION 'phasegate: the version table does not hold %; this script was generated for another starting point', ${quoteLiteral(removed.join(', '))}`,
      `      USING HINT = 'run phasegate current, then generate the script from what it shows';`,
      '  END IF;',
    );
  }
  if (added.length > 0) {
    lines.push(
      `  INSERT INTO ${table} (version_num) SELECT unnest(${array(added)}) ON CONFLICT DO NOTHING;`,
      '  GET DIAGNOSTICS moved = ROW_COUNT;',
      `  IF moved <> ${added.length} THEN`,
      `    RAISE EXCEPTION 'phasegate: the version table already holds one of %; this part of the script already ran', ${quoteLiteral(added.join(', '))}`,
      `      USING HINT = 'run phasegate current, then generate the script from what it shows';`,
      '  END IF;',
    );
  }
  lines.push('END', '$phasegate$');
  return { sql: lines.join('\n') };
}

/**
 * The offline script's migration lock: the same advisory lock every phasegate writer takes, held
 * for the psql session. Why try-lock: a script that waits behind a running migration would run its
 * steps against a schema that is changing under it; failing at once says what is happening.
 */
export function offlineLockStatement(): Statement {
  return {
    sql: [
      'DO $phasegate$',
      'BEGIN',
      `  IF NOT pg_try_advisory_lock(${MIGRATION_LOCK_KEY}) THEN`,
      `    RAISE EXCEPTION 'phasegate: another migration of this database holds the migration lock (advisory lock ${MIGRATION_LOCK_KEY})'`,
      `      USING HINT = 'wait for it to finish (phasegate status), then run this script again';`,
      '  END IF;',
      'END',
      '$phasegate$',
    ].join('\n'),
  };
}

export function sameHeads(a: readonly string[], b: readonly string[]): boolean {
  const x = [...a].sort();
  const y = [...b].sort();
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

/** The applied heads; empty when the table does not exist yet (nothing applied). */
export async function readHeads(client: pg.ClientBase, config: PhasegateConfig): Promise<string[]> {
  const exists = await client.query<{ t: string | null }>('SELECT to_regclass($1) AS t', [versionTableName(config)]);
  if (!exists.rows[0]?.t) return [];
  const { rows } = await client.query<{ version_num: string }>(selectHeads(config).sql);
  return rows.map((r) => r.version_num);
}

/** Replaces the applied heads; the caller runs this inside the transaction that justifies it. */
export async function writeHeads(client: pg.ClientBase, config: PhasegateConfig, heads: string[]): Promise<void> {
  for (const statement of writeHeadsStatements(config, heads)) await client.query(statement.sql, statement.params ?? []);
}

/**
 * Revisions whose statements ran but whose version row waits for their backfill and check
 * (`phasegate_version_pending`): the version table only ever names revisions that are complete,
 * and `current` shows these beside it as "applied, backfill pending".
 */
export function pendingTableName(config: PhasegateConfig): string {
  return `${quoteIdent(config.migrations.versionTableSchema)}.${quoteIdent(`${config.migrations.versionTable}_pending`)}`;
}

export function createPendingTable(config: PhasegateConfig): Statement {
  return {
    sql: `CREATE TABLE IF NOT EXISTS ${pendingTableName(config)} (
  version_num text PRIMARY KEY,
  workflow_id text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
)`,
  };
}

/** The revisions applied but not yet stamped; empty when the table does not exist. */
export async function readPending(client: pg.ClientBase, config: PhasegateConfig): Promise<Array<{ revision: string; workflowId: string; appliedAt: string }>> {
  const exists = await client.query<{ t: string | null }>('SELECT to_regclass($1) AS t', [pendingTableName(config)]);
  if (!exists.rows[0]?.t) return [];
  const { rows } = await client.query<{ version_num: string; workflow_id: string; applied_at: Date }>(
    `SELECT version_num, workflow_id, applied_at FROM ${pendingTableName(config)} ORDER BY applied_at`,
  );
  return rows.map((r) => ({ revision: r.version_num, workflowId: r.workflow_id, appliedAt: r.applied_at.toISOString() }));
}

/**
 * The migration lease (`phasegate_lease`): one row naming the workflow that migrates this database.
 * Held from a migration's start to its end, whatever its workflow id, so a second migration of the
 * same database is refused at once instead of running beside the first.
 */
export function leaseTableName(config: PhasegateConfig): string {
  return `${quoteIdent(config.migrations.versionTableSchema)}.${quoteIdent('phasegate_lease')}`;
}

export function createLeaseTable(config: PhasegateConfig): Statement {
  return {
    sql: `CREATE TABLE IF NOT EXISTS ${leaseTableName(config)} (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  workflow_id text NOT NULL,
  acquired_at timestamptz NOT NULL DEFAULT now()
)`,
  };
}

/**
 * The approval audit (`phasegate_approval`): every decision sent to a gate, by a workflow's
 * control verbs (activities/audit.ts) or by a person running an offline script with
 * `-v approve=<gate>`.
 */
export function approvalTableName(config: PhasegateConfig): string {
  return `${quoteIdent(config.migrations.versionTableSchema)}.${quoteIdent('phasegate_approval')}`;
}

export function createApprovalTable(config: PhasegateConfig): Statement {
  return {
    sql: `CREATE TABLE IF NOT EXISTS ${approvalTableName(config)} (
  id bigserial PRIMARY KEY,
  workflow_id text NOT NULL,
  run_id text NOT NULL,
  database text NOT NULL,
  revision text,
  gate text,
  decision text NOT NULL,
  decided_by text NOT NULL,
  comment text,
  accepted boolean NOT NULL,
  ignored_reason text,
  decided_at timestamptz NOT NULL,
  seq bigint NOT NULL,
  -- A retried activity must not write the same decision twice; two equal decisions in one
  -- workflow task (same workflow time) are still two rows.
  UNIQUE (workflow_id, seq)
)`,
  };
}
