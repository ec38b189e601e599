/**
 * Activities of the `backfill` workflow: prepare a backfill (key, slices, estimate, checkpoint
 * rows), run one slice for a bounded time in keyset batches, ask running slices to stop, and clean
 * up. All SQL comes from lib/backfill.ts.
 */
import { activityInfo, cancellationSignal, cancelled, heartbeat, sleep } from '@temporalio/activity';
import type pg from 'pg';
import type { Logger } from 'pino';
import {
  BACKFILL_DEFAULTS,
  batchStatements,
  checkpointStatement,
  chooseBackfillKey,
  createProgressTable,
  deleteCheckpointsStatement,
  ensureCheckpointStatement,
  ESTIMATE_SQL,
  insertSlicesStatement,
  integerBoundariesStatement,
  KEY_CANDIDATES_SQL,
  nextBatchSize,
  normalizeBackfillSpec,
  progressTableName,
  rateLimitDelayMs,
  readCheckpointStatement,
  requestStopStatement,
  sampledBoundariesStatement,
  slicesFromBoundaries,
  type BackfillKey,
  type BackfillPacing,
  type KeyCandidate,
  type KeyKind,
  type SliceRange,
} from '../lib/backfill';
import { databaseFor, type PhasegateConfig } from '../lib/config';
import { PhasegateError } from '../lib/errors';
import type { BackfillSpec } from '../lib/revision';
import { qualified, type Statement } from '../lib/sql';
import { createBackfillWatchers, type BackfillWatch } from './backfill-watch';
import { DatabasePools, withClient, withTransaction } from './db';
import { createBackfillMeters } from './metrics';

export interface BackfillDeps {
  config: PhasegateConfig;
  pools: DatabasePools;
  log: Logger;
}

export interface PrepareBackfillInput {
  database: string;
  /** Names this backfill's checkpoint rows: the workflow id plus its first run id. */
  backfillId: string;
  spec: BackfillSpec;
}

export interface BackfillPlan {
  table: string;
  key: BackfillKey;
  slices: SliceRange[];
  /** pg_class.reltuples, or a count when the table was never analysed; null when unknown. */
  estimatedTotal: number | null;
  pacing: BackfillPacing;
  warnings: string[];
}

export interface BackfillSliceInput {
  database: string;
  backfillId: string;
  spec: BackfillSpec;
  key: BackfillKey;
  slice: number;
  range: SliceRange;
  /** The workflow's last known position; used only when no checkpoint row and no heartbeat say more. */
  lastKey: string[] | null;
  rowsDone: number;
  rowsUpdated: number;
  /** This slice's pacing (the workflow divides maxRowsPerSecond among running slices). */
  pacing: BackfillPacing;
  /** Stop generation: the slice stops as soon as its checkpoint row's stop_epoch is higher. */
  epoch: number;
  /** Return after about this long of batches, so each call is short and history grows with time, not rows. */
  maxCallMs: number;
  maxReplicationLagMs?: number;
}

/**
 * What every heartbeat carries: enough to resume exactly after the last committed batch, and (for
 * the Temporal UI's pending-activity view) why the slice is going slower than it could.
 */
export interface SliceHeartbeat {
  lastKey: string[] | null;
  rowsDone: number;
  rowsUpdated: number;
  batchSize: number;
  slowedBy?: string | null;
}

export interface BackfillSliceResult {
  slice: number;
  lastKey: string[] | null;
  /** Totals for the slice so far (from its checkpoint row), not just this call. */
  rowsDone: number;
  rowsUpdated: number;
  done: boolean;
  /** A pause or throttle asked this call to stop (it did, after a committed batch). */
  stopped: boolean;
  /** The tuned batch size: the next call starts from here. */
  batchSize: number;
  batches: number;
  rowsThisCall: number;
  elapsedMs: number;
  slowedBy: string | null;
  resumedFrom: 'checkpoint' | 'heartbeat' | 'input';
}

export interface StopBackfillSlicesInput {
  database: string;
  backfillId: string;
  epoch: number;
}

export interface FinishBackfillInput {
  database: string;
  backfillId: string;
}

export interface SliceCheckpoint {
  slice: number;
  lastKey: string[] | null;
  rowsDone: number;
  rowsUpdated: number;
  done: boolean;
}

interface CheckpointRow {
  last_key: string[] | null;
  rows_done: number;
  rows_updated: number;
  done: boolean;
  stop_epoch: number;
}

/** A valid value of each key kind, for EXPLAINing the batch UPDATE. */
const SAMPLE_KEY: Record<KeyKind, string> = { integer: '0', uuid: '00000000-0000-0000-0000-000000000000', text: '' };

interface BatchOutcome {
  scanned: number;
  updated: number;
  checkpoint: CheckpointRow;
}

function run<R extends pg.QueryResultRow = pg.QueryResultRow>(client: pg.ClientBase, statement: Statement): Promise<pg.QueryResult<R>> {
  return client.query<R>(statement.sql, statement.params ?? []);
}

/**
 * The backfill's key for `spec.table`: named columns, or the primary key, or a unique NOT NULL
 * index. Throws `BackfillTableMissing` or `BackfillKeyMissing` with what to do. The plan activity
 * calls this so a table without a usable key fails at plan time, before anything is applied.
 */
export async function resolveBackfillKey(client: pg.ClientBase, spec: BackfillSpec): Promise<BackfillKey> {
  const { spec: normalized } = normalizeBackfillSpec(spec);
  const table = qualified(normalized.table);
  const { rows } = await client.query<{ rel: string | null }>('SELECT to_regclass($1)::text AS rel', [table]);
  if (!rows[0]?.rel) {
    throw new PhasegateError(
      'BackfillTableMissing',
      `backfill table ${normalized.table} does not exist; check backfill.table (schema-qualify it if it is not on the search_path)`,
      { details: { table: normalized.table } },
    );
  }
  const candidates = await client.query<KeyCandidate>(KEY_CANDIDATES_SQL, [table]);
  return chooseBackfillKey(normalized.table, normalized.key, candidates.rows);
}

export function createBackfillActivities({ config, pools, log }: BackfillDeps) {
  const schema = config.migrations.versionTableSchema;
  const watchers = createBackfillWatchers();
  const meters = createBackfillMeters();
  // A checked-out pg client whose server connection dies mid-query emits 'error' after the query
  // rejects; with no listener that would crash the worker (pg-pool listens only while idle).
  const guarded = new WeakSet<pg.PoolClient>();
  const withBackfillClient = <T>(database: string, fn: (client: pg.PoolClient) => Promise<T>) =>
    withClient(pools.pool(database), (client) => {
      if (!guarded.has(client)) {
        client.on('error', () => undefined);
        guarded.add(client);
      }
      return fn(client);
    });

  async function prepareBackfill(input: PrepareBackfillInput): Promise<BackfillPlan> {
    const { spec, warnings } = normalizeBackfillSpec(input.spec, { batchSize: config.defaults.batchSize });
    return withBackfillClient(input.database, async (client) => {
      const key = await resolveBackfillKey(client, input.spec);
      const table = qualified(spec.table);
      const missing = await client.query<{ column: string }>(
        `SELECT c AS column FROM unnest($2::text[]) AS c
         WHERE NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = $1::regclass AND attname = c AND attnum > 0 AND NOT attisdropped)`,
        [table, spec.set.map(([c]) => c)],
      );
      if (missing.rows.length) {
        throw new PhasegateError(
          'InvalidBackfillSpec',
          `backfill of ${spec.table}: backfill.set names column(s) ${missing.rows.map((r) => r.column).join(', ')} that the table does not have`,
          { details: { table: spec.table, columns: missing.rows.map((r) => r.column) } },
        );
      }
      const rewritesKey = spec.set.map(([c]) => c).filter((c) => key.columns.includes(c));
      if (rewritesKey.length) {
        throw new PhasegateError('InvalidBackfillSpec', `backfill of ${spec.table}: backfill.set must not change key column(s) ${rewritesKey.join(', ')}`);
      }

      // Concurrent first backfills could both try to create the table; the advisory lock orders them.
      await withTransaction(client, async () => {
        await client.query(`SELECT pg_advisory_xact_lock(hashtext('phasegate_backfill_progress'))`);
        await run(client, createProgressTable(schema));
      });

      // `set` and `where` are the user's SQL: EXPLAIN compiles the real batch UPDATE without
      // running it, so a typo fails here, once, with the expression named, not in every slice.
      try {
        const probe = batchStatements({ table: spec.table, key: key.columns, set: spec.set, where: spec.where, lower: null, upper: null, limit: 1 });
        const update = probe.update(key.kinds.map((kind) => SAMPLE_KEY[kind]));
        await client.query(`EXPLAIN ${update.sql}`, update.params);
      } catch (err) {
        const pgErr = err as { code?: string; message?: string };
        if (!pgErr.code || pgErr.code.startsWith('08') || pgErr.code.startsWith('57')) throw err;
        throw new PhasegateError(
          'InvalidBackfillSpec',
          `backfill of ${spec.table}: its set/where expressions do not compile: ${pgErr.message} (SQLSTATE ${pgErr.code}). ` +
            `Fix the revision's backfill (set: ${JSON.stringify(Object.fromEntries(spec.set))}${spec.where ? `, where: ${JSON.stringify(spec.where)}` : ''})`,
          { details: { table: spec.table, sqlstate: pgErr.code } },
        );
      }

      // A retried prepare must hand back the slices already registered (sampling is random).
      const existing = await client.query<{ from_key: string[] | null; to_key: string[] | null }>(
        `SELECT from_key, to_key FROM ${progressTableName(schema)} WHERE backfill_id = $1 ORDER BY slice`,
        [input.backfillId],
      );
      let slices: SliceRange[];
      if (existing.rows.length) {
        slices = existing.rows.map((r) => ({ from: r.from_key, to: r.to_key }));
        // Checkpoints left by an earlier backfill workflow (a cancelled or terminated migration):
        // resume from them; their stop requests belonged to that workflow's epochs, not this one's.
        await client.query(`UPDATE ${progressTableName(schema)} SET stop_epoch = 0 WHERE backfill_id = $1 AND stop_epoch <> 0`, [input.backfillId]);
      } else {
        slices = slicesFromBoundaries(await boundaries(client, spec.table, key, spec.parallelism));
        await run(client, insertSlicesStatement(schema, input.backfillId, spec.table, slices));
      }
      const estimatedTotal = await estimateRows(client, table);
      log.info({ database: input.database, table: spec.table, key: key.columns, slices: slices.length, estimatedTotal }, 'backfill prepared');
      for (const warning of warnings) log.warn({ database: input.database, table: spec.table }, warning);
      return { table: spec.table, key, slices, estimatedTotal, pacing: spec.pacing, warnings };
    });
  }

  async function boundaries(client: pg.ClientBase, table: string, key: BackfillKey, parallelism: number): Promise<string[][]> {
    if (parallelism <= 1) return [];
    if (key.columns.length === 1 && key.kinds[0] === 'integer') {
      const { rows } = await run<{ boundary: string }>(client, integerBoundariesStatement(table, key.columns[0], parallelism));
      return rows.map((r) => [r.boundary]);
    }
    const { rows } = await run<{ boundary: string[] }>(client, sampledBoundariesStatement(table, key.columns, parallelism));
    return rows.map((r) => r.boundary);
  }

  async function estimateRows(client: pg.ClientBase, table: string): Promise<number | null> {
    const { rows } = await client.query<{ estimate: number }>(ESTIMATE_SQL, [table]);
    if (rows[0] && rows[0].estimate >= 0) return Math.round(rows[0].estimate);
    // Never analysed: count, but only for as long as a planner estimate is worth waiting for.
    try {
      return await withTransaction(client, async () => {
        await client.query('SET LOCAL statement_timeout = 5000');
        const count = await client.query<{ n: number }>(`SELECT count(*)::float8 AS n FROM ${table}`);
        return count.rows[0].n;
      });
    } catch (err) {
      if ((err as { code?: string }).code === '57014') return null;
      throw err;
    }
  }

  async function backfillSlice(input: BackfillSliceInput): Promise<BackfillSliceResult> {
    const started = Date.now();
    const { spec } = normalizeBackfillSpec(input.spec);
    const pacing = input.pacing;
    const maxLagMs = input.maxReplicationLagMs ?? BACKFILL_DEFAULTS.maxReplicationLagMs;
    const signal = cancellationSignal();

    return withBackfillClient(input.database, async (client) => {
      // Where to resume. The checkpoint row is committed in the same transaction as each batch, so it
      // is exact even when the worker died before its last heartbeat reached Temporal; the
      // heartbeat (then the workflow's copy) only stands in when the row is missing.
      let resumedFrom: BackfillSliceResult['resumedFrom'] = 'checkpoint';
      let row = (await run<CheckpointRow>(client, readCheckpointStatement(schema, input.backfillId, input.slice))).rows[0];
      if (!row) {
        const beat = activityInfo().heartbeatDetails as SliceHeartbeat | undefined;
        const from = beat && typeof beat === 'object' && 'rowsDone' in beat ? beat : input;
        resumedFrom = from === input ? 'input' : 'heartbeat';
        await run(
          client,
          ensureCheckpointStatement(schema, {
            backfillId: input.backfillId,
            slice: input.slice,
            table: spec.table,
            range: input.range,
            lastKey: from.lastKey,
            rowsDone: from.rowsDone,
            rowsUpdated: from.rowsUpdated,
          }),
        );
        row = (await run<CheckpointRow>(client, readCheckpointStatement(schema, input.backfillId, input.slice))).rows[0];
      }
      const cursor = { lastKey: row.last_key, rowsDone: row.rows_done, rowsUpdated: row.rows_updated };
      let batchSize = Math.max(BACKFILL_DEFAULTS.minBatchSize, Math.min(pacing.batchSize, pacing.maxBatchSize));
      let batches = 0;
      let rowsThisCall = 0;
      let slowedBy: string | null = null;
      const result = (done: boolean, stopped: boolean): BackfillSliceResult => ({
        slice: input.slice,
        ...cursor,
        done,
        stopped,
        batchSize,
        batches,
        rowsThisCall,
        elapsedMs: Date.now() - started,
        slowedBy,
        resumedFrom,
      });
      if (row.done) return result(true, false);
      if (row.stop_epoch > input.epoch) return result(false, true);

      const { rows: pidRows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      const watch: BackfillWatch = watchers.watch(databaseFor(config, input.database).url, pidRows[0].pid);
      const beat = () => heartbeat({ ...cursor, batchSize, slowedBy } satisfies SliceHeartbeat);
      // Heartbeats also flow while one statement or one long pause runs, so only a dead worker
      // (not a slow batch) trips the heartbeat timeout.
      const keepAlive = setInterval(beat, 2_000);
      const meter = meters.sliceCall(input.database, spec.table, `${input.backfillId}:${input.slice}`);
      // A batch waits at most this long behind an application's row lock, then backs off.
      await client.query(`SET lock_timeout = ${Number(BACKFILL_DEFAULTS.lockTimeoutMs)}`);
      await client.query(`SET application_name = 'phasegate backfill'`);

      /** Sleeps in short steps; true when a pause/throttle asked this call to stop meanwhile. */
      const rest = async (ms: number): Promise<boolean> => {
        for (let left = ms; left > 0; left -= 1_000) {
          await sleep(Math.min(left, 1_000)); // rejects with CancelledFailure on cancellation
          if (left > 1_000) {
            const check = (await run<CheckpointRow>(client, readCheckpointStatement(schema, input.backfillId, input.slice))).rows[0];
            if (check && check.stop_epoch > input.epoch) return true;
          }
        }
        return false;
      };

      let contentionCap: number | null = null;
      let backoffMs = 0;
      try {
        for (;;) {
          if (signal.aborted) await cancelled();
          const timeUp = () => Date.now() - started >= input.maxCallMs;

          const lag = watch.replicationLag();
          if (lag && lag.lagMs > maxLagMs) {
            slowedBy = `replica ${lag.application || '(unnamed)'} replays ${(lag.lagMs / 1000).toFixed(1)} s behind (limit ${(maxLagMs / 1000).toFixed(1)} s)`;
            beat();
            if (timeUp()) return result(false, false);
            if (await rest(1_000)) return result(false, true);
            continue;
          }

          const sql = batchStatements({
            table: spec.table,
            key: input.key.columns,
            set: spec.set,
            where: spec.where,
            lower: cursor.lastKey ? { values: cursor.lastKey, inclusive: false } : input.range.from ? { values: input.range.from, inclusive: true } : null,
            upper: input.range.to,
            limit: batchSize,
          });
          const t0 = Date.now();
          let outcome: BatchOutcome;
          try {
            // One short transaction per batch: find its end, update it, move the checkpoint. Row
            // locks taken by the UPDATE end at this COMMIT; nothing is held between batches.
            outcome = await withTransaction(client, async () => {
              const end = (await run<{ end_key: string[]; is_full: boolean }>(client, sql.findEnd)).rows[0];
              let scanned = 0;
              let updated = 0;
              if (end) {
                updated = (await run(client, sql.update(end.end_key))).rowCount ?? 0;
                scanned = end.is_full ? batchSize : (await run<{ n: number }>(client, sql.count(end.end_key))).rows[0].n;
              }
              const saved = (
                await run<CheckpointRow>(
                  client,
                  checkpointStatement(schema, {
                    backfillId: input.backfillId,
                    slice: input.slice,
                    lastKey: end?.end_key ?? null,
                    scanned,
                    updated,
                    done: !end?.is_full,
                  }),
                )
              ).rows[0];
              if (!saved) {
                // Rolls the batch back with it: the retry starts from the last heartbeat.
                throw new PhasegateError(
                  'BackfillCheckpointMissing',
                  `backfill ${input.backfillId} slice ${input.slice}: its row in ${progressTableName(schema)} disappeared mid-run; resuming from the last heartbeat`,
                  { retryable: true },
                );
              }
              return { scanned, updated, checkpoint: saved };
            });
          } catch (err) {
            const code = (err as { code?: string }).code;
            // lock_timeout or a deadlock rolled the batch back; nothing was committed.
            if (code !== '55P03' && code !== '40P01') throw err;
            contentionCap = Math.max(BACKFILL_DEFAULTS.minBatchSize, Math.floor(batchSize / 2));
            batchSize = contentionCap;
            backoffMs = Math.min(2_000, Math.max(200, backoffMs * 2));
            slowedBy = `a batch waited over ${BACKFILL_DEFAULTS.lockTimeoutMs} ms for row locks held by other sessions; smaller batches`;
            beat();
            if (timeUp()) return result(false, false);
            if (await rest(backoffMs)) return result(false, true);
            continue;
          }
          const elapsed = Date.now() - t0;
          cursor.lastKey = outcome.checkpoint.last_key;
          cursor.rowsDone = outcome.checkpoint.rows_done;
          cursor.rowsUpdated = outcome.checkpoint.rows_updated;
          batches++;
          rowsThisCall += outcome.scanned;
          meter.batch(outcome.updated);
          beat();
          if (outcome.checkpoint.done) return result(true, false);
          if (outcome.checkpoint.stop_epoch > input.epoch) return result(false, true);

          // Pacing for the next batch.
          const waiters = watch.takeWaiters();
          let size = nextBatchSize(batchSize, outcome.scanned, elapsed, pacing);
          if (waiters > 0) {
            contentionCap = Math.max(BACKFILL_DEFAULTS.minBatchSize, Math.floor(batchSize / 2));
            backoffMs = Math.min(2_000, Math.max(100, backoffMs * 2));
          } else {
            // Recover gradually: the cap grows a quarter per clean batch until it no longer binds.
            backoffMs = backoffMs >= 50 ? Math.floor(backoffMs / 2) : 0;
            if (contentionCap !== null) contentionCap = Math.ceil(contentionCap * 1.25) >= size ? null : Math.ceil(contentionCap * 1.25);
          }
          if (contentionCap !== null) size = Math.min(size, contentionCap);
          // Under a rate limit a batch covers at most about one second of allowed rows.
          if (pacing.maxRowsPerSecond) size = Math.min(size, Math.max(BACKFILL_DEFAULTS.minBatchSize, Math.ceil(pacing.maxRowsPerSecond)));
          batchSize = size;
          const rateDelay = rateLimitDelayMs(outcome.scanned, elapsed, pacing.maxRowsPerSecond);
          const delay = Math.max(pacing.delayMs, rateDelay, backoffMs);
          slowedBy =
            waiters > 0
              ? `${waiters} session(s) waited for locks held by the backfill; smaller batches, ${backoffMs} ms pauses`
              : rateDelay > 0 && rateDelay >= pacing.delayMs
                ? `throttled to ${pacing.maxRowsPerSecond} rows/s`
                : pacing.delayMs > 0
                  ? `throttled: ${pacing.delayMs} ms between batches`
                  : contentionCap !== null
                    ? 'recovering from lock contention'
                    : null;
          // Every call commits at least one batch, so even a tiny maxCallMs makes progress.
          if (timeUp()) {
            // The rate limit's pause after this batch is still owed: paid here, or every call would
            // skip one (about 8 % over the limit with 10 s calls and 1 s batches). At most about a
            // second of rows (the batch cap above); delayMs and back-off are not carried over.
            if (rateDelay > 0 && (await rest(rateDelay))) return result(false, true);
            return result(false, false);
          }
          if (delay > 0 && (await rest(delay))) return result(false, true);
        }
      } finally {
        clearInterval(keepAlive);
        meter.end();
        watch.release();
        // A broken connection is destroyed by withClient anyway; a healthy one goes back clean.
        await client.query('RESET lock_timeout; RESET application_name').catch(() => undefined);
      }
    });
  }

  async function stopBackfillSlices(input: StopBackfillSlicesInput): Promise<{ slices: number }> {
    return withBackfillClient(input.database, async (client) => {
      const exists = await client.query<{ t: string | null }>('SELECT to_regclass($1)::text AS t', [progressTableName(schema)]);
      if (!exists.rows[0]?.t) return { slices: 0 };
      const { rowCount } = await run(client, requestStopStatement(schema, input.backfillId, input.epoch));
      return { slices: rowCount ?? 0 };
    });
  }

  /**
   * The slices' committed progress, straight from their checkpoint rows: what status shows after a
   * slice call ended without a result (failed, or cancelled as a fallback).
   */
  async function readBackfillProgress(input: FinishBackfillInput): Promise<SliceCheckpoint[]> {
    return withBackfillClient(input.database, async (client) => {
      const exists = await client.query<{ t: string | null }>('SELECT to_regclass($1)::text AS t', [progressTableName(schema)]);
      if (!exists.rows[0]?.t) return [];
      const { rows } = await client.query<{ slice: number; last_key: string[] | null; rows_done: number; rows_updated: number; done: boolean }>(
        `SELECT slice, last_key, rows_done::float8 AS rows_done, rows_updated::float8 AS rows_updated, done
         FROM ${progressTableName(schema)} WHERE backfill_id = $1 ORDER BY slice`,
        [input.backfillId],
      );
      return rows.map((r) => ({ slice: r.slice, lastKey: r.last_key, rowsDone: r.rows_done, rowsUpdated: r.rows_updated, done: r.done }));
    });
  }

  /** Removes a finished backfill's checkpoint rows (the table keeps only backfills in flight). */
  async function finishBackfill(input: FinishBackfillInput): Promise<{ removed: number }> {
    return withBackfillClient(input.database, async (client) => {
      const exists = await client.query<{ t: string | null }>('SELECT to_regclass($1)::text AS t', [progressTableName(schema)]);
      if (!exists.rows[0]?.t) return { removed: 0 };
      const { rowCount } = await run(client, deleteCheckpointsStatement(schema, input.backfillId));
      return { removed: rowCount ?? 0 };
    });
  }

  return { prepareBackfill, backfillSlice, stopBackfillSlices, readBackfillProgress, finishBackfill };
}
