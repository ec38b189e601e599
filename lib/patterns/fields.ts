/**
 * What patterns share: argument schemas (names, types, expressions — the same rules the ops apply,
 * checked before anything is written) and how they name the objects they create.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { qualified, quoteIdent, quoteLiteral } from '../sql';

const MAX_IDENTIFIER_BYTES = 63;
const bytes = (s: string): number => Buffer.byteLength(s, 'utf8');

/** A column, index or constraint name: non-empty, at most 63 bytes (PostgreSQL would truncate it). */
export const identifier = z
  .string()
  .min(1, 'must not be empty')
  .refine((s) => !s.includes('\u0000'), 'must not contain a NUL byte')
  .refine((s) => bytes(s) <= MAX_IDENTIFIER_BYTES, `must be at most ${MAX_IDENTIFIER_BYTES} bytes (PostgreSQL would truncate it)`);

/** A table, optionally schema-qualified: `accounts`, `app.accounts`. */
export const tableName = z
  .string()
  .min(1, 'must not be empty')
  .refine((s) => s.split('.').length <= 2, 'has more than one dot; write schema.table')
  .refine((s) => s.split('.').every((part) => identifier.safeParse(part).success), 'each part must be a non-empty name of at most 63 bytes');

/** A SQL type spliced into DDL: `bigint`, `numeric(12,2)`, `text[]` — one type, nothing after it. */
export const sqlType = z
  .string()
  .trim()
  .min(1, 'must not be empty')
  .refine((s) => !/;|--|\/\*/.test(s) && !s.includes('\u0000'), "must be a single type: no ';', comment or NUL byte");

/** A SQL expression written by the user (DEFAULT, USING, backfill value): spliced verbatim, the user owns it. */
export const sqlExpression = z
  .string()
  .trim()
  .min(1, 'must not be empty')
  .refine((s) => !/;/.test(s) && !s.includes('\u0000'), "must be one expression: no ';' or NUL byte");

/** A table reference split for rendering. */
export interface TableName {
  /** As given: `app.accounts`. */
  text: string;
  /** `"app"."accounts"`. */
  sql: string;
  /** `'"app"."accounts"'`: for `::regclass` in DO blocks and catalog queries. */
  literal: string;
  schema?: string;
  /** Bare name: `accounts`. */
  name: string;
}

export function tableOf(text: string): TableName {
  const parts = text.split('.');
  const sql = qualified(text);
  return { text, sql, literal: quoteLiteral(sql), schema: parts.length === 2 ? parts[0] : undefined, name: parts[parts.length - 1] };
}

/** `name` in the schema of `table`, as `schema.name` text (for ops that take qualified names, like dropIndex). */
export function inSchemaOf(table: TableName, name: string): string {
  return table.schema === undefined ? name : `${table.schema}.${name}`;
}

/**
 * A generated object name from `parts`, at most 63 bytes: when too long, the front is shortened and a
 * short hash of the full name keeps it unique.
 */
export function objectName(...parts: string[]): string {
  const full = parts.join('_');
  if (bytes(full) <= MAX_IDENTIFIER_BYTES) return full;
  const hash = createHash('sha256').update(full).digest('hex').slice(0, 8);
  let head = full;
  while (bytes(`${head}_${hash}`) > MAX_IDENTIFIER_BYTES) head = head.slice(0, -1);
  return `${head}_${hash}`;
}

/** `"app"."name"`: an object in the schema of `table`, quoted for SQL. */
export function inSchemaOfSql(table: TableName, name: string): string {
  return table.schema === undefined ? quoteIdent(name) : `${quoteIdent(table.schema)}.${quoteIdent(name)}`;
}

/** A name that lives in its table's schema (index, constraint, trigger): no dot. */
export const localName = identifier.refine((s) => !s.includes('.'), 'must not be schema-qualified: it lives in the schema of its table');

export const ident = quoteIdent;
export const literal = quoteLiteral;

/** `"a", "b"` */
export const identList = (names: readonly string[]): string => names.map(quoteIdent).join(', ');
