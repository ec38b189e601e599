/**
 * The backfill engine's pure part: a BackfillSpec checked and filled with defaults, the SQL of a
 * keyset batch and of its checkpoint, and the pacing arithmetic. No I/O: activities/backfill.ts
 * runs these statements, and test/unit/backfill-sql.test.ts asserts them as text.
 *
 * Key values travel as text everywhere outside PostgreSQL (workflow state, heartbeats, the
 * checkpoint table): a bigint would lose precision as a JSON number, and integer, uuid and text
 * keys all round-trip exactly through their text form. PostgreSQL infers each `$n`'s type from the
 * key column it is compared with, so ordering is always the column's own (collation included).
 */
import { PhasegateError } from './errors';
import type { BackfillSpec } from './revision';
import { qualified, quoteIdent, type Statement } from './sql';

/** Key column types phasegate walks: their text form round-trips and sorts like the column. */
export type KeyKind = 'integer' | 'uuid' | 'text';

export const KEY_TYPES: Record<string, KeyKind> = {
  smallint: 'integer',
  integer: 'integer',
  bigint: 'integer',
  uuid: 'uuid',
  text: 'text',
  'character varying': 'text',
  character: 'text',
};

export interface BackfillKey {
  /** Key columns in walk order (the order of the unique index that covers them). */
  columns: string[];
  kinds: KeyKind[];
  /** Where the key came from, for messages: `primary key accounts_pkey`, `unique index …`. */
  source: string;
}

/** Pacing of one running backfill: the spec's values, then whatever `throttle` changed. */
export interface BackfillPacing {
  /** Rows per batch to start with; adaptive sizing moves it toward `targetBatchMs`. */
  batchSize: number;
  /** Upper bound for adaptive sizing; a `throttle {batchSize}` lowers it to that size. */
  maxBatchSize: number;
  /** Pause between batches. */
  delayMs: number;
  /** Rows per second for the whole backfill (shared by its slices); null = no limit. */
  maxRowsPerSecond: number | null;
  /** Adaptive batch sizing aims at this duration per batch; 0 keeps `batchSize` fixed. */
  targetBatchMs: number;
}

export interface NormalizedBackfillSpec {
  table: string;
  key: string[] | null;
  set: Array<[column: string, expression: string]>;
  where: string | null;
  parallelism: number;
  pacing: BackfillPacing;
}

export const BACKFILL_DEFAULTS = {
  /**
   * A batch this long keeps row locks short (an application update that hits a row of the batch
   * waits at most this long) and still amortises each commit's WAL flush. Measured with
   * `npm run bench` (docs/backfill.md): 100 ms kept the application's p99 within 2× of idle at
   * the same rows/s; 200 ms doubled the update p99 in some runs.
   */
  targetBatchMs: 100,
  batchSize: 1000,
  minBatchSize: 10,
  maxBatchSize: 100_000,
  parallelism: 1,
  /** Back off while a replica replays this far behind. */
  maxReplicationLagMs: 10_000,
  /** A batch UPDATE waits at most this long for a row lock an application session holds. */
  lockTimeoutMs: 2_000,
} as const;

export const PROGRESS_TABLE = 'phasegate_backfill_progress';

function invalid(message: string, details: Record<string, unknown> = {}): PhasegateError {
  return new PhasegateError('InvalidBackfillSpec', message, { details });
}

/**
 * Checks a spec and fills in defaults. Errors name the field and say what to write instead; a
 * missing `where` is allowed but returned as a warning (a re-run would rewrite finished rows).
 */
export function normalizeBackfillSpec(
  spec: BackfillSpec,
  defaults: { batchSize?: number } = {},
): { spec: NormalizedBackfillSpec; warnings: string[] } {
  const warnings: string[] = [];
  if (!spec || typeof spec !== 'object') throw invalid('backfill must be an object: { table, set, where, … }');
  if (typeof spec.table !== 'string' || spec.table.trim() === '') throw invalid('backfill.table must name a table, e.g. "accounts" or "app.accounts"');
  const key = spec.key === undefined ? null : Array.isArray(spec.key) ? spec.key : [spec.key];
  if (key && (key.length === 0 || key.some((k) => typeof k !== 'string' || k === ''))) {
    throw invalid('backfill.key must be a column name or a non-empty list of column names');
  }
  if (key && new Set(key).size !== key.length) throw invalid(`backfill.key lists a column twice: ${key.join(', ')}`);
  const set = Object.entries(spec.set ?? {});
  if (set.length === 0) throw invalid('backfill.set needs at least one column: { set: { org_id: "…expression…" } }');
  for (const [column, expression] of set) {
    if (typeof expression !== 'string' || expression.trim() === '') throw invalid(`backfill.set.${column} must be a SQL expression`);
  }
  if (key) {
    const rewritten = set.map(([c]) => c).filter((c) => key.includes(c));
    if (rewritten.length) throw invalid(`backfill.set must not change key column(s) ${rewritten.join(', ')}: the keyset walk orders by them`);
  }
  const where = spec.where === undefined || spec.where.trim() === '' ? null : spec.where;
  if (!where) {
    warnings.push(
      `backfill of ${spec.table} has no \`where\`: a batch retried after a crash rewrites its rows again. ` +
        'Add a condition that is false for finished rows (e.g. "org_id IS NULL") so a re-run is a no-op',
    );
  }
  const positiveInt = (name: string, value: number | undefined, fallback: number, max = Number.MAX_SAFE_INTEGER) => {
    if (value === undefined) return fallback;
    if (!Number.isInteger(value) || value <= 0 || value > max) throw invalid(`backfill.${name} must be a whole number from 1 to ${max}`);
    return value;
  };
  const nonNegativeInt = (name: string, value: number | undefined, fallback: number) => {
    if (value === undefined) return fallback;
    if (!Number.isInteger(value) || value < 0) throw invalid(`backfill.${name} must be a whole number ≥ 0`);
    return value;
  };
  const batchSize = positiveInt('batchSize', spec.batchSize, defaults.batchSize ?? BACKFILL_DEFAULTS.batchSize, 1_000_000);
  if (spec.maxRowsPerSecond !== undefined && !(typeof spec.maxRowsPerSecond === 'number' && spec.maxRowsPerSecond > 0)) {
    throw invalid('backfill.maxRowsPerSecond must be a positive number');
  }
  if (spec.window !== undefined) {
    const w = spec.window as Record<string, unknown> | null;
    const unknown = w && typeof w === 'object' ? Object.keys(w).filter((k) => k !== 'maxRowsPerSecond' && k !== 'outside') : [];
    if (!w || typeof w !== 'object' || Array.isArray(w) || unknown.length || (w.maxRowsPerSecond === undefined && w.outside === undefined)) {
      throw invalid(`backfill.window must be { maxRowsPerSecond?: number | null, outside?: 'run' | 'wait' } with at least one of them`);
    }
    if (w.maxRowsPerSecond !== undefined && w.maxRowsPerSecond !== null && !(typeof w.maxRowsPerSecond === 'number' && w.maxRowsPerSecond > 0)) {
      throw invalid('backfill.window.maxRowsPerSecond must be a positive number (or null for no limit inside windows)');
    }
    if (w.outside !== undefined && w.outside !== 'run' && w.outside !== 'wait') throw invalid(`backfill.window.outside must be 'run' or 'wait'`);
  }
  return {
    spec: {
      table: spec.table,
      key,
      set,
      where,
      parallelism: positiveInt('parallelism', spec.parallelism, BACKFILL_DEFAULTS.parallelism, 64),
      pacing: {
        batchSize,
        maxBatchSize: Math.max(batchSize, BACKFILL_DEFAULTS.maxBatchSize),
        delayMs: nonNegativeInt('delayMs', spec.delayMs, 0),
        maxRowsPerSecond: spec.maxRowsPerSecond ?? null,
        targetBatchMs: nonNegativeInt('targetBatchMs', spec.targetBatchMs, BACKFILL_DEFAULTS.targetBatchMs),
      },
    },
    warnings,
  };
}

/** Collects `$n` parameters in order while a statement is written. */
class Params {
  readonly values: unknown[] = [];
  add(value: unknown): string {
    this.values.push(value);
    return `$${this.values.length}`;
  }
}

/** `"id"` for one column, `("a", "b")` for several: the form a keyset comparison takes. */
function keyTuple(columns: string[]): string {
  const quoted = columns.map(quoteIdent);
  return quoted.length === 1 ? quoted[0] : `(${quoted.join(', ')})`;
}

function valueTuple(params: Params, values: string[]): string {
  const placeholders = values.map((v) => params.add(v));
  return placeholders.length === 1 ? placeholders[0] : `(${placeholders.join(', ')})`;
}

/** Names of the batch's key columns inside the statement: never collide with the table's own. */
const keyAlias = (i: number) => quoteIdent(`__phasegate_k${i}`);

export function progressTableName(schema: string): string {
  return `${quoteIdent(schema)}.${quoteIdent(PROGRESS_TABLE)}`;
}

/**
 * The checkpoint table: one row per slice of a running backfill, written in the same transaction as
 * each batch. `stop_epoch` is how `pause`/`throttle` reach a running slice within one batch.
 */
export function createProgressTable(schema: string): Statement {
  return {
    sql: `CREATE TABLE IF NOT EXISTS ${progressTableName(schema)} (
  backfill_id text NOT NULL,
  slice integer NOT NULL,
  table_name text NOT NULL,
  from_key text[],
  to_key text[],
  last_key text[],
  rows_done bigint NOT NULL DEFAULT 0,
  rows_updated bigint NOT NULL DEFAULT 0,
  done boolean NOT NULL DEFAULT false,
  stop_epoch integer NOT NULL DEFAULT 0,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (backfill_id, slice)
)`,
  };
}

export interface SliceRange {
  /** Inclusive start, exclusive end; null = open. Key values as text. */
  from: string[] | null;
  to: string[] | null;
}

/** Registers the slices of a new backfill; a retried prepare leaves existing rows (and their progress) alone. */
export function insertSlicesStatement(schema: string, backfillId: string, table: string, slices: SliceRange[]): Statement {
  return {
    sql: `INSERT INTO ${progressTableName(schema)} (backfill_id, slice, table_name, from_key, to_key)
SELECT $1, s.ordinality - 1, $2, CASE WHEN s.r->'from' = 'null' THEN NULL ELSE ARRAY(SELECT jsonb_array_elements_text(s.r->'from')) END,
       CASE WHEN s.r->'to' = 'null' THEN NULL ELSE ARRAY(SELECT jsonb_array_elements_text(s.r->'to')) END
FROM jsonb_array_elements($3::jsonb) WITH ORDINALITY AS s(r, ordinality)
ON CONFLICT (backfill_id, slice) DO NOTHING`,
    params: [backfillId, table, JSON.stringify(slices)],
  };
}

/** Creates a slice's checkpoint row when it is missing (e.g. resumed from a heartbeat after the row was removed). */
export function ensureCheckpointStatement(
  schema: string,
  row: { backfillId: string; slice: number; table: string; range: SliceRange; lastKey: string[] | null; rowsDone: number; rowsUpdated: number },
): Statement {
  return {
    sql: `INSERT INTO ${progressTableName(schema)} (backfill_id, slice, table_name, from_key, to_key, last_key, rows_done, rows_updated)
VALUES ($1, $2, $3, $4::text[], $5::text[], $6::text[], $7, $8)
ON CONFLICT (backfill_id, slice) DO NOTHING`,
    params: [row.backfillId, row.slice, row.table, row.range.from, row.range.to, row.lastKey, row.rowsDone, row.rowsUpdated],
  };
}

export function readCheckpointStatement(schema: string, backfillId: string, slice: number): Statement {
  return {
    sql: `SELECT last_key, rows_done::float8 AS rows_done, rows_updated::float8 AS rows_updated, done, stop_epoch
FROM ${progressTableName(schema)} WHERE backfill_id = $1 AND slice = $2`,
    params: [backfillId, slice],
  };
}

/** Asks every running slice of a backfill to stop after its current batch (pause, throttle). */
export function requestStopStatement(schema: string, backfillId: string, epoch: number): Statement {
  return {
    sql: `UPDATE ${progressTableName(schema)} SET stop_epoch = $2 WHERE backfill_id = $1 AND stop_epoch < $2`,
    params: [backfillId, epoch],
  };
}

export function deleteCheckpointsStatement(schema: string, backfillId: string): Statement {
  return { sql: `DELETE FROM ${progressTableName(schema)} WHERE backfill_id = $1`, params: [backfillId] };
}

export interface BatchInput {
  table: string;
  key: string[];
  set: Array<[string, string]>;
  where: string | null;
  /** Where the walk stands: after `values` (exclusive), or at a slice start (inclusive); null = from the first key. */
  lower: { values: string[]; inclusive: boolean } | null;
  /** The slice's exclusive end; null = to the last key. */
  upper: string[] | null;
  limit: number;
}

/**
 * The statements of one batch. The activity runs them in one short transaction, together with the
 * checkpoint update (checkpointStatement), so batch and cursor commit or roll back together:
 *
 * 1. `findEnd`: the key `limit` rows ahead in key order (an index-only scan that skips `limit - 1`
 *    entries, `is_full`), or else the slice's last key — no row: the slice is finished;
 * 2. `update(end)`: ONE UPDATE of the rows in (lower, end] that still match `where` (an index range
 *    scan; its row locks last until this batch's commit, never longer);
 * 3. `count(end)`: rows in (lower, end] — only for the short last batch; a full one has `limit`.
 *
 * Key values come back as text and go in as `$n`; PostgreSQL types each `$n` from its key column.
 */
export function batchStatements(input: BatchInput): { findEnd: Statement; update(end: string[]): Statement; count(end: string[]): Statement } {
  const key = keyTuple(input.key);
  const table = qualified(input.table);
  const ascending = input.key.map(quoteIdent).join(', ');
  const descending = input.key.map((c) => `${quoteIdent(c)} DESC`).join(', ');
  const asText = `ARRAY[${input.key.map((c) => `${quoteIdent(c)}::text`).join(', ')}]`;
  const lower = (params: Params) => (input.lower ? `${key} ${input.lower.inclusive ? '>=' : '>'} ${valueTuple(params, input.lower.values)}` : null);

  const findEnd = (() => {
    const params = new Params();
    const range = [lower(params), input.upper ? `${key} < ${valueTuple(params, input.upper)}` : null].filter((c): c is string => c !== null);
    const where = range.length ? ` WHERE ${range.join(' AND ')}` : '';
    const limit = params.add(input.limit);
    return {
      sql: `(SELECT ${asText} AS end_key, true AS is_full FROM ${table}${where} ORDER BY ${ascending} OFFSET ${limit}::bigint - 1 LIMIT 1)
UNION ALL
(SELECT ${asText}, false FROM ${table}${where} ORDER BY ${descending} LIMIT 1)
LIMIT 1`,
      params: params.values,
    };
  })();

  const inBatch = (params: Params, end: string[]) => [lower(params), `${key} <= ${valueTuple(params, end)}`].filter((c): c is string => c !== null);

  return {
    findEnd,
    update(end) {
      const params = new Params();
      const assignments = input.set.map(([column, expression]) => `${quoteIdent(column)} = (${expression})`).join(', ');
      const conditions = [...inBatch(params, end), ...(input.where ? [`(${input.where})`] : [])];
      return { sql: `UPDATE ${table} SET ${assignments}\nWHERE ${conditions.join('\n  AND ')}`, params: params.values };
    },
    count(end) {
      const params = new Params();
      return { sql: `SELECT count(*)::float8 AS n FROM ${table} WHERE ${inBatch(params, end).join(' AND ')}`, params: params.values };
    },
  };
}

/**
 * Moves a slice's cursor, in the batch's own transaction. Returns the slice's totals and its
 * `stop_epoch` (how a pause reaches the loop within one batch); no row means the checkpoint is gone.
 */
export function checkpointStatement(
  schema: string,
  batch: { backfillId: string; slice: number; lastKey: string[] | null; scanned: number; updated: number; done: boolean },
): Statement {
  return {
    sql: `UPDATE ${progressTableName(schema)} SET
  last_key = COALESCE($3::text[], last_key), rows_done = rows_done + $4, rows_updated = rows_updated + $5, done = $6, updated_at = now()
WHERE backfill_id = $1 AND slice = $2
RETURNING last_key, rows_done::float8 AS rows_done, rows_updated::float8 AS rows_updated, done, stop_epoch`,
    params: [batch.backfillId, batch.slice, batch.lastKey, batch.scanned, batch.updated, batch.done],
  };
}

/**
 * The candidate keys of a table: its primary key and its valid, non-partial unique indexes on
 * plain columns, primary key first, then the narrowest. `$1` is the table's regclass.
 */
export const KEY_CANDIDATES_SQL = `SELECT c.relname AS index_name, i.indisprimary AS is_primary,
       array_agg(a.attname::text ORDER BY k.ord) AS columns,
       array_agg(format_type(a.atttypid, NULL) ORDER BY k.ord) AS types,
       bool_and(a.attnotnull) AS not_null
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = $1::regclass AND i.indisunique AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL
  AND k.ord <= i.indnkeyatts
GROUP BY c.relname, i.indisprimary
ORDER BY i.indisprimary DESC, count(*), c.relname`;

export interface KeyCandidate {
  index_name: string;
  is_primary: boolean;
  columns: string[];
  types: string[];
  not_null: boolean;
}

/**
 * Picks the key to walk: the columns named in the spec (they must be exactly the columns of a
 * unique index, NOT NULL, of a supported type), else the primary key, else a unique NOT NULL
 * index. Anything else is an error that says what to add.
 */
export function chooseBackfillKey(table: string, requested: string[] | null, candidates: KeyCandidate[]): BackfillKey {
  const supported = (c: KeyCandidate) => c.types.every((t) => t in KEY_TYPES);
  const describe = (c: KeyCandidate) => `${c.is_primary ? 'primary key' : 'unique index'} ${c.index_name} (${c.columns.join(', ')})`;
  const toKey = (c: KeyCandidate): BackfillKey => ({ columns: c.columns, kinds: c.types.map((t) => KEY_TYPES[t]), source: describe(c) });
  const unsupported = (c: KeyCandidate) =>
    new PhasegateError(
      'BackfillKeyUnsupported',
      `backfill of ${table}: ${describe(c)} has type ${c.types.join(', ')}; phasegate walks integer, uuid and text keys. ` +
        'Name another unique NOT NULL key with backfill.key',
      { details: { table, index: c.index_name, columns: c.columns, types: c.types } },
    );
  if (requested) {
    const match = candidates.find((c) => c.columns.length === requested.length && c.columns.every((col, i) => col === requested[i]));
    if (!match) {
      const known = candidates.map(describe);
      throw new PhasegateError(
        'BackfillKeyMissing',
        `backfill of ${table}: key (${requested.join(', ')}) is not covered by a primary key or a valid unique index on exactly ` +
          `these columns in this order${known.length ? `; the table has ${known.join('; ')}` : ''}. ` +
          'Create such a unique index (CONCURRENTLY) or name one of the existing keys',
        { details: { table, key: requested, candidates: known } },
      );
    }
    if (!match.not_null) {
      throw new PhasegateError(
        'BackfillKeyMissing',
        `backfill of ${table}: key (${requested.join(', ')}) allows NULLs, and rows with a NULL key would be skipped. ` +
          'Make the columns NOT NULL, or use the primary key',
        { details: { table, key: requested } },
      );
    }
    if (!supported(match)) throw unsupported(match);
    return toKey(match);
  }
  const usable = candidates.filter((c) => c.not_null);
  const pick = usable.find(supported);
  if (pick) return toKey(pick);
  if (usable.length) throw unsupported(usable[0]);
  throw new PhasegateError(
    'BackfillKeyMissing',
    `backfill of ${table}: the table has no primary key and no unique index on NOT NULL columns, so it cannot be walked in ` +
      'batches without skipping or repeating rows. Add a primary key (or a unique index on NOT NULL columns) first, ' +
      'e.g. in an earlier revision, and name it with backfill.key if it is not the primary key',
    { details: { table } },
  );
}

/**
 * Slice boundaries for an integer key: N equal ranges between min and max, computed in numeric
 * so bigint bounds stay exact. `$1` = parallelism. Returns the inner boundaries (N-1 at most).
 */
export function integerBoundariesStatement(table: string, column: string, parallelism: number): Statement {
  const col = quoteIdent(column);
  return {
    sql: `SELECT DISTINCT b::text AS boundary, b FROM (
  SELECT (m.lo + floor((m.hi - m.lo + 1) * i / $1::numeric))::numeric AS b, m.lo
  FROM (SELECT min(${col})::numeric AS lo, max(${col})::numeric AS hi FROM ${qualified(table)}) m,
       generate_series(1, $1::int - 1) AS i
  WHERE m.lo IS NOT NULL
) s WHERE b > lo ORDER BY b`,
    params: [parallelism],
  };
}

/**
 * Slice boundaries for any key (uuid, text, composite): the first key of each of N tiles of a
 * block sample of about 300 pages, so slices hold about equal numbers of rows.
 */
export function sampledBoundariesStatement(table: string, key: string[], parallelism: number): Statement {
  const cols = key.map(quoteIdent).join(', ');
  const t = qualified(table);
  return {
    sql: `SELECT ARRAY[${key.map((_, i) => `${keyAlias(i)}::text`).join(', ')}] AS boundary FROM (
  SELECT DISTINCT ON (tile) tile, ${key.map((c, i) => `${quoteIdent(c)} AS ${keyAlias(i)}`).join(', ')} FROM (
    SELECT ${cols}, ntile($1::int) OVER (ORDER BY ${cols}) AS tile
    FROM ${t} TABLESAMPLE SYSTEM ((SELECT LEAST(100, 300 * 100.0 / GREATEST(pg_relation_size($2::regclass) / current_setting('block_size')::int, 1))))
  ) tiles
  WHERE tile > 1
  ORDER BY tile, ${cols}
) firsts ORDER BY tile`,
    params: [parallelism, t],
  };
}

/** Turns ordered inner boundaries into contiguous ranges: [null, b1), [b1, b2), …, [bn, null). */
export function slicesFromBoundaries(boundaries: string[][]): SliceRange[] {
  const bounds: Array<string[] | null> = [null, ...boundaries, null];
  const slices: SliceRange[] = [];
  for (let i = 0; i + 1 < bounds.length; i++) slices.push({ from: bounds[i], to: bounds[i + 1] });
  return slices;
}

/** Planner's row estimate (-1 before the first ANALYZE/VACUUM). */
export const ESTIMATE_SQL = `SELECT reltuples::float8 AS estimate FROM pg_class WHERE oid = $1::regclass`;

/**
 * Application sessions waiting for a lock, by the pid holding it up. Only sessions already waiting
 * on a lock pay for pg_blocking_pids (it briefly locks the lock manager).
 */
export const LOCK_WAITERS_SQL = `SELECT b.pid AS blocker, count(*)::int AS waiters
FROM pg_stat_activity w CROSS JOIN LATERAL unnest(pg_blocking_pids(w.pid)) AS b(pid)
WHERE w.wait_event_type = 'Lock' AND w.datname = current_database()
GROUP BY b.pid`;

/** The replica furthest behind (replay_lag is NULL once a standby is idle and caught up). */
export const REPLICATION_LAG_SQL = `SELECT application_name, (extract(epoch FROM replay_lag) * 1000)::float8 AS lag_ms
FROM pg_stat_replication WHERE replay_lag IS NOT NULL ORDER BY replay_lag DESC LIMIT 1`;

/**
 * Adaptive batch size: scale toward the target duration — growing at most ×4 per batch (a fast
 * ramp from the small starting size costs at most one batch of 4× the target), shrinking at most
 * ÷2, so one slow commit (a checkpoint, an autovacuum pass) does not swing it wildly.
 */
export function nextBatchSize(current: number, rows: number, durationMs: number, pacing: BackfillPacing): number {
  // Fixed size: the configured one (a contention cap, applied by the caller, may hold it lower).
  if (pacing.targetBatchMs <= 0) return Math.min(pacing.batchSize, pacing.maxBatchSize);
  // A short final batch says nothing about how long a full one takes.
  if (rows < current || durationMs <= 0) return current;
  const factor = Math.min(4, Math.max(0.5, pacing.targetBatchMs / durationMs));
  return Math.max(BACKFILL_DEFAULTS.minBatchSize, Math.min(pacing.maxBatchSize, Math.round(current * factor)));
}

/** How long to wait before the next batch so `rows` per batch stays under `maxRowsPerSecond`. */
export function rateLimitDelayMs(rows: number, batchElapsedMs: number, maxRowsPerSecond: number | null): number {
  if (!maxRowsPerSecond) return 0;
  return Math.max(0, Math.ceil((rows * 1000) / maxRowsPerSecond - batchElapsedMs));
}
