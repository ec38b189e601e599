/**
 * SQL-building helpers shared by the ops: argument checks, names, DO blocks, guards. Identifiers go
 * through lib/sql.ts's quoteIdent/qualified; inside DO bodies (which take no `$n` parameters) values
 * go through quoteLiteral.
 */
import { qualified, quoteIdent, quoteLiteral } from '../sql';
import { InvalidOpError, type OpStatement } from './types';

/** PostgreSQL truncates longer identifiers (NAMEDATALEN - 1), and a catalog check by name would then never match. */
const MAX_IDENTIFIER_BYTES = 63;
const utf8 = new TextEncoder();

/** A non-empty identifier of at most 63 bytes. `unqualified` rejects dots, for names that live in their table's schema. */
export function requireName(op: string, what: string, value: unknown, opts: { unqualified?: boolean } = {}): string {
  if (typeof value !== 'string' || value.trim() === '') throw new InvalidOpError(op, `${what} must be a non-empty string`);
  if (value.includes('\u0000')) throw new InvalidOpError(op, `${what} contains a NUL byte`);
  if (utf8.encode(value).length > MAX_IDENTIFIER_BYTES) {
    throw new InvalidOpError(op, `${what} "${value}" is longer than ${MAX_IDENTIFIER_BYTES} bytes; PostgreSQL would truncate it, so pick a shorter name`);
  }
  if (opts.unqualified && value.includes('.')) {
    throw new InvalidOpError(op, `${what} "${value}" must not be schema-qualified: it lives in its table's schema`);
  }
  return value;
}

export function requireNames(op: string, what: string, values: unknown): string[] {
  if (!Array.isArray(values) || values.length === 0) throw new InvalidOpError(op, `${what} must be a non-empty array of names`);
  return values.map((v, i) => requireName(op, `${what}[${i}]`, v));
}

/** A table (or function) name, optionally schema-qualified: `users`, `app.users`. */
export interface TableRef {
  /** `"app"."users"` */
  sql: string;
  /** `'"app"."users"'`: for `::regclass` inside DO bodies. */
  literal: string;
  schema?: string;
  name: string;
  /** As the author wrote it, for descriptions. */
  text: string;
}

export function tableRef(op: string, what: string, value: unknown): TableRef {
  const text = requireName(op, what, value);
  const parts = text.split('.');
  if (parts.length > 2) throw new InvalidOpError(op, `${what} "${text}" has more than one dot; write schema.name`);
  parts.forEach((part) => requireName(op, what, part));
  const sql = qualified(text);
  return { sql, literal: quoteLiteral(sql), schema: parts.length === 2 ? parts[0] : undefined, name: parts[parts.length - 1], text };
}

/** `"app"."idx"`: an object that lives in the schema of `table` (indexes, constraints' indexes). */
export function inSchemaOf(table: TableRef, name: string): string {
  return table.schema === undefined ? quoteIdent(name) : `${quoteIdent(table.schema)}.${quoteIdent(name)}`;
}

/**
 * A type or other SQL fragment spliced into a statement (`bigint`, `numeric(12,2)`, `text[]`).
 * Rejects what would end the statement or hide the rest of it.
 */
export function requireSqlFragment(op: string, what: string, value: unknown): string {
  if (typeof value !== 'string' || value.trim() === '') throw new InvalidOpError(op, `${what} must be a non-empty SQL fragment`);
  if (/;|--|\/\*/.test(value) || value.includes('\u0000')) {
    throw new InvalidOpError(op, `${what} "${value}" contains ';', a comment or a NUL byte; pass a single type or clause`);
  }
  return value.trim();
}

/** A SQL expression written by the revision's author (CHECK, WHERE, DEFAULT, USING): spliced verbatim, the author owns it. */
export function requireExpression(op: string, what: string, value: unknown): string {
  if (typeof value !== 'string' || value.trim() === '') throw new InvalidOpError(op, `${what} must be a non-empty SQL expression`);
  if (value.includes('\u0000')) throw new InvalidOpError(op, `${what} contains a NUL byte`);
  return value.trim();
}

export function requireOneOf<T extends string>(op: string, what: string, value: unknown, allowed: readonly T[]): T {
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    throw new InvalidOpError(op, `${what} must be one of ${allowed.join(', ')}; got ${JSON.stringify(value)}`);
  }
  return value as T;
}

/** `$phasegate$…$phasegate$`, with a tag the body does not contain. */
export function dollarQuote(body: string): string {
  let tag = '$phasegate$';
  for (let n = 1; body.includes(tag); n++) tag = `$phasegate${n}$`;
  return `${tag}${body}${tag}`;
}

/** A DO block that runs `ddl` only when `condition` holds: the idempotency of ops with no IF [NOT] EXISTS form. */
export function doIf(condition: string, ddl: string): string {
  return `DO ${dollarQuote(`\nBEGIN\n  IF ${condition} THEN\n    ${ddl};\n  END IF;\nEND\n`)}`;
}

export function constraintExists(table: TableRef, name: string): string {
  return `EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = ${table.literal}::regclass AND conname = ${quoteLiteral(name)})`;
}

export function columnExists(table: TableRef, column: string): string {
  return `EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = ${table.literal}::regclass AND attname = ${quoteLiteral(column)} AND NOT attisdropped)`;
}

/** `ddl` adds constraint `name` to `table`; it runs only when no constraint of that name is on the table. */
export function unlessConstraintExists(table: TableRef, name: string, ddl: string): OpStatement {
  return { sql: doIf(`NOT ${constraintExists(table, name)}`, ddl) };
}
