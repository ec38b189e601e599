/**
 * The version table (`phasegate_version`, like `alembic_version`): one row per applied head.
 */
import type pg from 'pg';
import type { PhasegateConfig } from '../lib/config';
import { quoteIdent } from '../lib/sql';

export function versionTableName(config: PhasegateConfig): string {
  return `${quoteIdent(config.migrations.versionTableSchema)}.${quoteIdent(config.migrations.versionTable)}`;
}

export function createVersionTableSql(config: PhasegateConfig): string {
  return `CREATE TABLE IF NOT EXISTS ${versionTableName(config)} (version_num text PRIMARY KEY)`;
}

/** The applied heads; empty when the table does not exist yet (nothing applied). */
export async function readHeads(client: pg.ClientBase, config: PhasegateConfig): Promise<string[]> {
  const exists = await client.query<{ t: string | null }>('SELECT to_regclass($1) AS t', [versionTableName(config)]);
  if (!exists.rows[0]?.t) return [];
  const { rows } = await client.query<{ version_num: string }>(
    `SELECT version_num FROM ${versionTableName(config)} ORDER BY version_num`,
  );
  return rows.map((r) => r.version_num);
}

/** Replaces the applied heads; the caller runs this inside the revision's own transaction. */
export async function writeHeads(client: pg.ClientBase, config: PhasegateConfig, heads: string[]): Promise<void> {
  await client.query(createVersionTableSql(config));
  await client.query(`DELETE FROM ${versionTableName(config)} WHERE NOT (version_num = ANY($1::text[]))`, [heads]);
  await client.query(
    `INSERT INTO ${versionTableName(config)} (version_num) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING`,
    [heads],
  );
}

export function sameHeads(a: string[], b: string[]): boolean {
  const x = [...a].sort();
  const y = [...b].sort();
  return x.length === y.length && x.every((v, i) => v === y[i]);
}
