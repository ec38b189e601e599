/**
 * The version table (`phasegate_version`, like `alembic_version`): one row per applied head.
 * Its SQL lives here so the runtime and the offline `--sql` script write exactly the same statements.
 */
import type { PhasegateConfig } from './config';
import { quoteIdent, type Statement } from './sql';

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

export function sameHeads(a: readonly string[], b: readonly string[]): boolean {
  const x = [...a].sort();
  const y = [...b].sort();
  return x.length === y.length && x.every((v, i) => v === y[i]);
}
