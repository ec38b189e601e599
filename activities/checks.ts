/**
 * Checks between phases: a query selecting the rows that violate an expectation; it passes when
 * there are none. A check may run against a table of hundreds of millions of rows, so it never
 * counts every failing row: it asks for a few of them and counts up to a cap, which lets the scan
 * stop at the first rows found. It runs read-only under its own statement_timeout, heartbeats while
 * the scan runs, and cancels the scan in PostgreSQL when the activity is cancelled.
 */
import { activityInfo, cancellationSignal, cancelled, heartbeat } from '@temporalio/activity';
import { createHash } from 'node:crypto';
import pg from 'pg';
import { databaseFor, type PhasegateConfig } from '../lib/config';
import { PhasegateError } from '../lib/errors';
import { CHECK_COUNT_CAP, CHECK_SAMPLE_SIZE, DEFAULT_CHECK_TIMEOUT_MS, type CheckSpec } from '../lib/revision';
import { withClient, withTransaction, type DatabasePools } from './db';

export interface RunCheckInput {
  database: string;
  revision: string;
  check: CheckSpec;
}

export interface CheckResult {
  name: string;
  passed: boolean;
  /** Failing rows, exact below CHECK_COUNT_CAP; equal to the cap when `failingCountCapped`. */
  failingCount: number;
  /** More than CHECK_COUNT_CAP rows fail ("more than 1000"); the exact number was not counted. */
  failingCountCapped: boolean;
  /** Up to CHECK_SAMPLE_SIZE offending rows, as the query returned them. */
  sample: Record<string, unknown>[];
}

// The limits live with CheckSpec: the offline script's check block uses them too.
export { CHECK_COUNT_CAP, CHECK_SAMPLE_SIZE, DEFAULT_CHECK_TIMEOUT_MS };
const HEARTBEAT_INTERVAL_MS = 2_000;
const CANCEL_RETRY_MS = 250;
/** How long a new attempt waits for an earlier attempt's scan to stop before starting its own. */
const EARLIER_ATTEMPT_WAIT_MS = 5_000;

/** Heartbeat details: what the pending activity is doing, as the Temporal UI shows it. */
export interface CheckHeartbeat {
  revision: string;
  check: string;
  runningMs: number;
}

/** `timeoutMs` comes from the plan's JSON (a revision file's own value), so it is checked here. */
function checkTimeoutMs(revision: string, check: CheckSpec): number {
  const timeoutMs = (check as { timeoutMs?: unknown }).timeoutMs;
  if (timeoutMs === undefined || timeoutMs === null) return DEFAULT_CHECK_TIMEOUT_MS;
  if (typeof timeoutMs !== 'number' || !Number.isFinite(timeoutMs) || timeoutMs <= 0) {
    throw new PhasegateError(
      'InvalidCheckSpec',
      `revision ${revision}: check "${check.name}" has timeoutMs ${JSON.stringify(timeoutMs)}; it must be a positive number of milliseconds`,
      { details: { revision, check: check.name, timeoutMs } },
    );
  }
  return Math.ceil(timeoutMs);
}

/**
 * The same activity's attempts share this tag (workflow run + activity id), and nothing else does:
 * it finds a scan that an earlier attempt left running (a dead worker, a timed-out attempt whose
 * worker has not heard so yet). It fits application_name's 63 bytes.
 */
function attemptTag(): string {
  const info = activityInfo();
  const identity = [info.workflowExecution?.workflowId ?? '', info.workflowExecution?.runId ?? '', info.activityId].join('\0');
  return `phasegate check ${createHash('sha256').update(identity).digest('hex').slice(0, 16)}`;
}

/**
 * Cancels scans of this activity's earlier attempts and waits until they stopped, so a retry never
 * scans the table alongside the attempt it replaces. Runs outside a transaction: pg_stat_activity
 * is read once per transaction, and the wait must see fresh rows.
 */
async function stopEarlierAttempts(client: pg.ClientBase, tag: string): Promise<void> {
  const sql = `SELECT pid, pg_cancel_backend(pid) AS signalled FROM pg_stat_activity
                WHERE datname = current_database() AND application_name = $1 AND pid <> pg_backend_pid() AND state = 'active'`;
  const until = Date.now() + EARLIER_ATTEMPT_WAIT_MS;
  while ((await client.query(sql, [tag])).rowCount && Date.now() < until) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * Once `signal` aborts, cancels `pid`'s statement from a connection of its own (outside the pool,
 * so a busy pool cannot delay it), and repeats until `done()`: a cancel that lands between two
 * statements is ignored by PostgreSQL, and the next statement would then run in full.
 */
function cancelBackendOnAbort(url: string, pid: number, signal: AbortSignal): { done(): Promise<void> } {
  let finished = false;
  let loop: Promise<void> = Promise.resolve();
  const run = async () => {
    while (!finished) {
      const client = new pg.Client({ connectionString: url, application_name: 'phasegate check cancel' });
      client.on('error', () => undefined);
      try {
        await client.connect();
        while (!finished) {
          await client.query('SELECT pg_cancel_backend($1)', [pid]);
          await new Promise((resolve) => setTimeout(resolve, CANCEL_RETRY_MS));
        }
      } catch {
        // The database may be briefly unreachable; try again. statement_timeout bounds the scan meanwhile.
        await new Promise((resolve) => setTimeout(resolve, CANCEL_RETRY_MS));
      } finally {
        await client.end().catch(() => undefined);
      }
    }
  };
  const onAbort = () => {
    loop = run();
  };
  if (signal.aborted) onAbort();
  else signal.addEventListener('abort', onAbort, { once: true });
  return {
    async done() {
      finished = true;
      signal.removeEventListener('abort', onAbort);
      await loop;
    },
  };
}

export function createCheckActivities({ config, pools }: { config: PhasegateConfig; pools: DatabasePools }) {
  async function runCheck({ database, revision, check }: RunCheckInput): Promise<CheckResult> {
    const signal = cancellationSignal();
    if (signal.aborted) await cancelled();
    const timeoutMs = checkTimeoutMs(revision, check);
    const { url } = databaseFor(config, database);
    const query = check.failingRows.trim().replace(/;\s*$/, '');
    const started = Date.now();
    const deadline = started + timeoutMs;
    const tag = attemptTag();

    const timedOut = () =>
      new PhasegateError(
        'CheckTimedOut',
        `revision ${revision}: check "${check.name}" did not finish within its timeout of ${timeoutMs} ms and was cancelled in PostgreSQL. ` +
          `Make its failingRows query cheaper (an index on the columns it filters on lets it stop at the first failing row), ` +
          `or raise the check's timeoutMs; then send retry`,
        { details: { revision, check: check.name, timeoutMs } },
      );

    // Heartbeats flow while a single long statement runs: only a dead worker trips the heartbeat
    // timeout, and Temporal delivers a cancellation with a heartbeat's reply.
    const beat = () => heartbeat({ revision, check: check.name, runningMs: Date.now() - started } satisfies CheckHeartbeat);
    beat();
    const keepAlive = setInterval(beat, HEARTBEAT_INTERVAL_MS);
    try {
      return await withClient(pools.pool(database), async (client) => {
        await stopEarlierAttempts(client, tag);
        return withTransaction(client, async () => {
          // One snapshot for the sample and the count, so they agree with each other.
          await client.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY');
          await client.query(`SELECT set_config('application_name', $1, true)`, [tag]);
          const pid = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid;
          const guard = cancelBackendOnAbort(url, pid, signal);

          /** Runs one statement under what is left of the check's timeout. */
          const scan = async <R extends pg.QueryResultRow>(sql: string): Promise<R[]> => {
            if (signal.aborted) await cancelled();
            const left = deadline - Date.now();
            if (left <= 0) throw timedOut();
            await client.query(`SELECT set_config('statement_timeout', $1, true)`, [String(left)]);
            const t0 = Date.now();
            try {
              return (await client.query<R>(sql)).rows;
            } catch (err) {
              if ((err as { code?: string }).code !== '57014' || signal.aborted) throw err;
              // statement_timeout fires no earlier than `left` after the server started the
              // statement, so anything sooner was a pg_cancel_backend from another session.
              if (Date.now() - t0 >= left) throw timedOut();
              throw new PhasegateError(
                'CheckCancelled',
                `revision ${revision}: check "${check.name}" was cancelled in PostgreSQL by another session (pg_cancel_backend, or a newer attempt of this check); send retry to run it again`,
                { details: { revision, check: check.name } },
              );
            }
          };

          try {
            // LIMIT lets the scan stop as soon as enough failing rows are found; a passing check
            // costs this one probe.
            const sample = await scan(`SELECT * FROM (${query}) AS failing LIMIT ${CHECK_SAMPLE_SIZE + 1}`);
            let failingCount = sample.length;
            if (sample.length > CHECK_SAMPLE_SIZE) {
              const counted = await scan<{ n: number }>(`SELECT count(*)::int AS n FROM (SELECT 1 FROM (${query}) AS failing LIMIT ${CHECK_COUNT_CAP + 1}) AS capped`);
              failingCount = counted[0].n;
            }
            const failingCountCapped = failingCount > CHECK_COUNT_CAP;
            return {
              name: check.name,
              passed: failingCount === 0,
              failingCount: Math.min(failingCount, CHECK_COUNT_CAP),
              failingCountCapped,
              sample: JSON.parse(JSON.stringify(sample.slice(0, CHECK_SAMPLE_SIZE))) as Record<string, unknown>[],
            };
          } catch (err) {
            // The scan was cancelled because the activity was: report the cancellation, not 57014.
            if (signal.aborted) await cancelled();
            throw err;
          } finally {
            // Only once the statement has ended: the activity must not return while the scan runs.
            await guard.done();
          }
        });
      });
    } finally {
      clearInterval(keepAlive);
    }
  }
  return { runCheck };
}

/** SQLSTATEs of existing rows breaking a constraint (VALIDATE CONSTRAINT, ADD CONSTRAINT): check_violation, foreign_key_violation. */
const VIOLATION_SQLSTATES = new Set(['23514', '23503']);
/** How long describing the violating rows may take; past it the error keeps PostgreSQL's words only. */
const EXPLAIN_TIMEOUT_MS = 60_000;

interface ViolatedConstraint {
  tbl: string;
  contype: string;
  expr: string | null;
  cols: string[] | null;
  reftbl: string | null;
  refcols: string[] | null;
  pk: string[] | null;
}

const quoteName = (name: string) => `"${name.replace(/"/g, '""')}"`;

/**
 * PostgreSQL reports one violating row of a failed VALIDATE CONSTRAINT (or none); an operator needs
 * how many and which. When `err` is such a violation of a constraint in the catalog (a NOT VALID
 * one), its failing rows are counted (capped, like a check) and a sample of their keys (primary
 * key, else ctid) is appended to the error's `detail`, which the failure message carries. Read-only,
 * under its own statement_timeout; any problem here leaves the error as it was. Returns `err`.
 */
export async function explainViolation(client: pg.ClientBase, err: unknown): Promise<unknown> {
  const e = err as { code?: string; constraint?: string; table?: string; schema?: string; detail?: string } | null;
  if (!e || !VIOLATION_SQLSTATES.has(e.code ?? '') || !e.constraint || !e.table) return err;
  try {
    const described = await withTransaction(client, async () => {
      await client.query('SET TRANSACTION READ ONLY');
      await client.query(`SET LOCAL statement_timeout = ${EXPLAIN_TIMEOUT_MS}`);
      const names = (attrelid: string, keys: string) =>
        `(SELECT array_agg(a.attname::text ORDER BY k.ord) FROM unnest(${keys}) WITH ORDINALITY AS k(attnum, ord) JOIN pg_attribute a ON a.attrelid = ${attrelid} AND a.attnum = k.attnum)`;
      const found = await client.query<ViolatedConstraint>(
        `SELECT format('%I.%I', n.nspname, t.relname) AS tbl, c.contype::text AS contype, pg_get_expr(c.conbin, c.conrelid) AS expr,
                ${names('c.conrelid', 'c.conkey')} AS cols,
                (SELECT format('%I.%I', rn.nspname, r.relname) FROM pg_class r JOIN pg_namespace rn ON rn.oid = r.relnamespace WHERE r.oid = c.confrelid) AS reftbl,
                ${names('c.confrelid', 'c.confkey')} AS refcols,
                (SELECT ${names('i.indrelid', 'i.indkey::int2[]')} FROM pg_index i WHERE i.indrelid = c.conrelid AND i.indisprimary) AS pk
           FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace
          WHERE c.conname = $1 AND t.relname = $2 AND n.nspname = coalesce($3, n.nspname) AND c.contype IN ('c', 'f')`,
        [e.constraint, e.table, e.schema ?? null],
      );
      if (found.rows.length !== 1) return undefined;
      const c = found.rows[0];
      let where: string;
      if (c.contype === 'c' && c.expr) {
        where = `NOT (${c.expr})`;
      } else if (c.contype === 'f' && c.cols && c.refcols && c.reftbl && c.cols.length === c.refcols.length) {
        const cols = c.cols.map(quoteName);
        const match = c.refcols.map((r, i) => `parent.${quoteName(r)} = child.${cols[i]}`).join(' AND ');
        where = `${cols.map((col) => `child.${col} IS NOT NULL`).join(' AND ')} AND NOT EXISTS (SELECT 1 FROM ${c.reftbl} AS parent WHERE ${match})`;
      } else {
        return undefined;
      }
      const keys = c.pk && c.pk.length > 0 ? c.pk : ['ctid'];
      const from = `FROM ${c.tbl} AS child WHERE ${where}`;
      const sample = await client.query<Record<string, string>>(
        `SELECT ${keys.map((k, i) => `child.${quoteName(k)}::text AS k${i}`).join(', ')} ${from} LIMIT ${CHECK_SAMPLE_SIZE}`,
      );
      let count = sample.rows.length;
      if (count === CHECK_SAMPLE_SIZE) {
        count = (await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM (SELECT 1 ${from} LIMIT ${CHECK_COUNT_CAP + 1}) AS capped`)).rows[0].n;
      }
      if (count === 0) return undefined;
      const shown = sample.rows.map((row) => `(${keys.join(', ')})=(${keys.map((_, i) => row[`k${i}`] ?? 'null').join(', ')})`);
      const counted = count > CHECK_COUNT_CAP ? `more than ${CHECK_COUNT_CAP} rows` : `${count} row${count === 1 ? '' : 's'}`;
      return `${counted} of ${c.tbl} violate constraint "${e.constraint}"; ${count > shown.length ? `first ${shown.length} ` : ''}keys: ${shown.join(', ')}.`;
    });
    if (described) e.detail = e.detail ? `${e.detail} ${described}` : described;
  } catch {
    // Describing is a courtesy: the violation itself is what the operator must see.
  }
  return err;
}
