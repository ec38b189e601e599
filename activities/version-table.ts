/**
 * Reading and writing the version table on a live connection (its SQL is in lib/version-table.ts).
 */
import type pg from 'pg';
import type { PhasegateConfig } from '../lib/config';
import { selectHeads, versionTableName, writeHeadsStatements } from '../lib/version-table';

/** The applied heads; empty when the table does not exist yet (nothing applied). */
export async function readHeads(client: pg.ClientBase, config: PhasegateConfig): Promise<string[]> {
  const exists = await client.query<{ t: string | null }>('SELECT to_regclass($1) AS t', [versionTableName(config)]);
  if (!exists.rows[0]?.t) return [];
  const { rows } = await client.query<{ version_num: string }>(selectHeads(config).sql);
  return rows.map((r) => r.version_num);
}

/** Replaces the applied heads; the caller runs this inside the revision's own transaction. */
export async function writeHeads(client: pg.ClientBase, config: PhasegateConfig, heads: string[]): Promise<void> {
  for (const statement of writeHeadsStatements(config, heads)) await client.query(statement.sql, statement.params ?? []);
}
