/**
 * The one place identifiers are quoted. Values never go through here: they travel as `$n`
 * parameters. `qualified('app.users')` quotes each dot-separated part.
 */
export function quoteIdent(name: string): string {
  if (name.length === 0) throw new Error('empty SQL identifier');
  if (name.includes('\u0000')) throw new Error('SQL identifier contains a NUL byte');
  return `"${name.replace(/"/g, '""')}"`;
}

export function qualified(name: string): string {
  return name.split('.').map(quoteIdent).join('.');
}

/** A SQL literal for offline (`--sql`) scripts, where no parameters can be bound. */
export function quoteLiteral(value: unknown): string {
  if (value === null || value === undefined) return 'NULL';
  if (typeof value === 'number' || typeof value === 'bigint') return String(value);
  if (typeof value === 'boolean') return value ? 'TRUE' : 'FALSE';
  if (Array.isArray(value)) {
    // An array literal ('{"a","b"}'), which a `$n::text[]` placeholder casts as a bound array would.
    const items = value.map((v) => (v === null || v === undefined ? 'NULL' : `"${String(v).replace(/[\\"]/g, (c) => `\\${c}`)}"`));
    return quoteLiteral(`{${items.join(',')}}`);
  }
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return `'${text.replace(/'/g, "''")}'`;
}

export interface Statement {
  sql: string;
  params?: unknown[];
}

/** Inlines `$n` parameters as literals, for review scripts only (never executed this way). */
export function inlineParams(statement: Statement): string {
  const params = statement.params ?? [];
  if (params.length === 0) return statement.sql;
  return statement.sql.replace(/\$(\d+)/g, (match, n: string) => {
    const index = Number(n) - 1;
    return index < params.length ? quoteLiteral(params[index]) : match;
  });
}
