/**
 * @pg-matrix: its SQL, catalog or server behaviour can differ by PostgreSQL major; `npm run test:pg15` runs it again on 15.
 * Fault matrix, issue 9 — lock contention (cases 1 and 5).
 *
 * 1. A session holds a lock on the table while a DDL revision runs: each attempt queues for at most
 *    lock_timeout (so the application's reads, queued behind the DDL's ACCESS EXCLUSIVE request, wait
 *    no longer), is retried after a jittered pause, and after the configured attempts the workflow
 *    waits in `blocked`, naming the blocking pid.
 * 5. An old snapshot (a REPEATABLE READ transaction older than a CREATE INDEX CONCURRENTLY) makes the
 *    build wait without any lock_timeout: the activity keeps heartbeating, the pending activity names
 *    the blocker, and a cancel stops the build in PostgreSQL.
 */
import { defaultPayloadConverter } from '@temporalio/common';
import type pg from 'pg';
import { performance } from 'node:perf_hooks';
import { status } from '../../lib/commands/control';
import { retrySignal } from '../../workflows/messages';
import {
  accountsTable,
  eventually,
  sleep,
  untilState,
  untilStatus,
  useFaultLab,
  versionRows,
  withWorker,
  writeMigrations,
  type LabDatabase,
  type MigrateHandle,
} from './harness';

const lab = useFaultLab();

/** An application session running `SELECT … WHERE id = $1` back to back, timing each query's own wall time. */
function appQueryLoop(app: pg.Client, rows: number) {
  const durations: number[] = [];
  let running = true;
  const loop = (async () => {
    for (let i = 0; running; i++) {
      const started = performance.now();
      await app.query('SELECT email FROM accounts WHERE id = $1', [(i % rows) + 1]);
      durations.push(performance.now() - started);
    }
  })();
  return {
    durations,
    async stop(): Promise<number[]> {
      running = false;
      await loop;
      return durations;
    },
  };
}

interface Attempt {
  pid: number;
  /** Server clock, ms since the epoch. */
  startedMs: number;
  /** Longest time the attempt had been waiting for its lock when sampled (server clock). */
  longestWaitMs: number;
}

/**
 * Samples pg_stat_activity (its own session) for the migration's statements waiting on a lock: one
 * attempt per (pid, query_start), with how long each had waited by the last sample that saw it.
 */
function lockWaitSampler(session: pg.Client, queryLike: string) {
  const attempts = new Map<string, Attempt>();
  let running = true;
  const loop = (async () => {
    while (running) {
      const { rows } = await session.query<{ pid: number; started_ms: string; waited_ms: string }>(
        `SELECT pid, (extract(epoch FROM query_start) * 1000)::text AS started_ms,
                (extract(epoch FROM clock_timestamp() - query_start) * 1000)::text AS waited_ms
         FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid() AND wait_event_type = 'Lock' AND query ILIKE $1`,
        [queryLike],
      );
      for (const r of rows) {
        const key = `${r.pid}@${r.started_ms}`;
        const seen = attempts.get(key) ?? { pid: r.pid, startedMs: Number(r.started_ms), longestWaitMs: 0 };
        seen.longestWaitMs = Math.max(seen.longestWaitMs, Number(r.waited_ms));
        attempts.set(key, seen);
      }
      await sleep(20);
    }
  })();
  return {
    attempts: () => [...attempts.values()].sort((a, b) => a.startedMs - b.startedMs),
    async stop(): Promise<Attempt[]> {
      running = false;
      await loop;
      return [...attempts.values()].sort((a, b) => a.startedMs - b.startedMs);
    },
  };
}

async function backendPid(session: pg.Client): Promise<number> {
  return (await session.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid;
}

/** The running applyRevision activity as Temporal sees it: attempt, last heartbeat, decoded details. */
async function pendingApply(handle: MigrateHandle): Promise<{ attempt: number; lastHeartbeatMs: number | null; details: Array<{ waiting?: string | null }> } | null> {
  const description = await handle.describe();
  const pending = (description.raw.pendingActivities ?? []).find((a) => a.activityType?.name === 'applyRevision');
  if (!pending) return null;
  const hb = pending.lastHeartbeatTime;
  return {
    attempt: pending.attempt ?? 0,
    lastHeartbeatMs: hb ? Number(String(hb.seconds ?? 0)) * 1000 + (hb.nanos ?? 0) / 1e6 : null,
    details: (pending.heartbeatDetails?.payloads ?? []).map((p) => defaultPayloadConverter.fromPayload(p)),
  };
}

/** What `attempt N of M timed out, next in X s` said for each attempt, from every status text seen. */
function announcedPauses(texts: string[]): Map<number, number> {
  const pauses = new Map<number, number>();
  for (const text of texts) {
    const m = /attempt (\d+) of (\d+) timed out, next in ([\d.]+) s/.exec(text);
    if (m) pauses.set(Number(m[1]), Number(m[3]));
  }
  return pauses;
}

test('fault 1: a lock held by another session: each attempt gives up within lock_timeout, app reads wait no longer, jittered retries, then blocked naming the pid', async () => {
  const LOCK_TIMEOUT_MS = 1_000;
  const MAX_ATTEMPTS = 5;
  // initialDelayMs = maxDelayMs: the backoff is constant, so pauses that differ can only be jitter.
  const PAUSE_MS = 3_000;
  const db = await lab.database();
  await accountsTable(db, 100);
  const dir = writeMigrations({
    'r1.js': `module.exports = { id: 'r1', parent: null, message: 'add note',
      upgrade(op) { op.addColumn('accounts', 'note', 'text'); }, downgrade(op) { op.dropColumn('accounts', 'note'); } };`,
  });
  const blocker = await db.session();
  const app = await db.session();
  const probe = await db.session();
  const blockerPid = await backendPid(blocker);
  await blocker.query('BEGIN');
  await blocker.query('SELECT count(*) FROM accounts'); // ACCESS SHARE until ROLLBACK: conflicts with the DDL's ACCESS EXCLUSIVE
  const appLoop = appQueryLoop(app, 100);
  const sampler = lockWaitSampler(probe, 'ALTER TABLE%note%');
  try {
    await withWorker(
      lab,
      db,
      dir,
      async (w) => {
        const handle = await w.start();
        const texts: string[] = [];
        const blocked = await untilStatus(
          handle,
          'state blocked',
          (s) => {
            if (s.waiting) texts.push(s.waiting);
            return s.state === 'blocked';
          },
          50_000,
        );
        const appDurations = [...appLoop.durations];
        const attempts = sampler.attempts();

        // Blocked, not failed: the failure names the lock and the blocking session.
        expect(blocked.failure).toMatchObject({ kind: 'lock', revision: 'r1', type: 'LockTimeout', options: ['retry', 'rollback', 'abandon'] });
        expect(blocked.failure!.message).toContain(`gave up after ${MAX_ATTEMPTS} attempts`);
        expect(blocked.failure!.message).toContain(`blocked by pid ${blockerPid} (idle in transaction)`);
        expect(blocked.steps[0]).toMatchObject({ revision: 'r1', state: 'failed', attempts: MAX_ATTEMPTS });
        // While it retried, status named the table, the lock and the blocker on every attempt.
        const retryTexts = texts.filter((t) => /timed out, next in/.test(t));
        expect(retryTexts.length).toBeGreaterThan(0);
        for (const t of retryTexts) expect(t).toContain(`waiting for lock on accounts (AccessExclusiveLock), blocked by pid ${blockerPid} (idle in transaction)`);

        // PostgreSQL saw exactly MAX_ATTEMPTS lock waits, each ended by lock_timeout (server clock).
        expect(attempts).toHaveLength(MAX_ATTEMPTS);
        for (const a of attempts) expect(a.longestWaitMs).toBeLessThanOrEqual(LOCK_TIMEOUT_MS + 100);

        // The pauses are jittered: each announced pause lies in [backoff/2, backoff], they are not all
        // the same (constant backoff), and PostgreSQL's own attempt start times honour them.
        const pauses = announcedPauses(texts);
        expect([...pauses.keys()].sort()).toEqual([1, 2, 3, 4]);
        for (const p of pauses.values()) {
          expect(p).toBeGreaterThanOrEqual(PAUSE_MS / 2000 - 0.05);
          expect(p).toBeLessThanOrEqual(PAUSE_MS / 1000 + 0.05);
        }
        expect(new Set(pauses.values()).size).toBeGreaterThan(1);
        const gaps = attempts.slice(1).map((a, i) => a.startedMs - attempts[i].startedMs);
        gaps.forEach((gap, i) => expect(gap).toBeGreaterThanOrEqual(LOCK_TIMEOUT_MS + pauses.get(i + 1)! * 1000 - 100));

        // The application's reads queued behind every attempt (so the bound below is not vacuous),
        // and none waited longer than lock_timeout + 100 ms.
        const maxAppMs = Math.max(...appDurations);
        const queued = appDurations.filter((d) => d > LOCK_TIMEOUT_MS / 2).length;
        console.info(
          `fault 1: ${appDurations.length} app queries, max ${maxAppMs.toFixed(0)} ms (bound ${LOCK_TIMEOUT_MS + 100}), ${queued} queued > ${LOCK_TIMEOUT_MS / 2} ms; ` +
            `attempt waits ${attempts.map((a) => a.longestWaitMs.toFixed(0)).join('/')} ms; pauses ${[...pauses.values()].join('/')} s; gaps ${gaps.map((g) => g.toFixed(0)).join('/')} ms`,
        );
        expect(queued).toBeGreaterThanOrEqual(MAX_ATTEMPTS - 1);
        expect(maxAppMs).toBeLessThanOrEqual(LOCK_TIMEOUT_MS + 100);

        // It waits in blocked: no further attempt starts within a longer time than any pause, and the
        // workflow is still running.
        await sleep(PAUSE_MS + 500);
        expect(sampler.attempts()).toHaveLength(MAX_ATTEMPTS);
        expect((await untilState(handle, 'blocked')).state).toBe('blocked');
        expect((await handle.describe()).status.name).toBe('RUNNING');
        expect(await versionRows(db)).toEqual({ version: [], pending: [] });

        // End the blocker, retry: the revision lands.
        await blocker.query('ROLLBACK');
        await handle.signal(retrySignal, { by: 'alice' });
        expect((await handle.result()).outcome).toBe('done');
      },
      { defaults: { lockTimeoutMs: LOCK_TIMEOUT_MS, lockRetry: { maxAttempts: MAX_ATTEMPTS, initialDelayMs: PAUSE_MS, maxDelayMs: PAUSE_MS } } },
    );
  } finally {
    await sampler.stop().catch(() => undefined);
    const all = await appLoop.stop().catch(() => []);
    await blocker.query('ROLLBACK').catch(() => undefined);
    await Promise.all([blocker.end(), app.end(), probe.end()]);
    expect(Math.max(...all)).toBeLessThanOrEqual(LOCK_TIMEOUT_MS + 100);
  }
  expect(await versionRows(db)).toEqual({ version: ['r1'], pending: [] });
  expect(await columnsOf(db)).toEqual(['id', 'email', 'note']);
}, 60_000);

test('fault 5: an old snapshot stalls CREATE INDEX CONCURRENTLY: the step keeps heartbeating, names the blocker, and a cancel stops the build', async () => {
  const HEARTBEAT_TIMEOUT_MS = 10_000; // workflows/migration.ts, applyRevision
  const db = await lab.database();
  await accountsTable(db, 50);
  const dir = writeMigrations({
    'r1.js': `module.exports = { id: 'r1', parent: null, message: 'index email', transactional: false,
      upgrade(op) { op.createIndex('accounts_email_idx', 'accounts', ['email'], { concurrently: true }); },
      downgrade(op) { op.dropIndex('accounts_email_idx', { concurrently: true }); } };`,
  });
  const snapshot = await db.session();
  const snapshotPid = await backendPid(snapshot);
  await snapshot.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
  await snapshot.query('SELECT count(*) FROM accounts'); // the snapshot is taken here, before the build starts
  try {
    await withWorker(
      lab,
      db,
      dir,
      async (w) => {
        const handle = await w.start();
        // PostgreSQL: the build settles on waiting for the old snapshot's virtual transaction, and
        // nothing else. On its way there it can wait a moment for another short transaction that was
        // running when it listed the older snapshots (a CI run saw one); only the settled wait counts.
        const build = await eventually('the build to wait for the old snapshot', async () => {
          const rows = await db.sql<{ pid: number; wait_event: string; blockers: number[] }>(
            `SELECT pid, wait_event, pg_blocking_pids(pid) AS blockers FROM pg_stat_activity
             WHERE datname = current_database() AND query LIKE 'CREATE INDEX CONCURRENTLY%' AND wait_event_type = 'Lock'`,
          );
          return rows[0]?.blockers.includes(snapshotPid) ? rows[0] : undefined;
        }, 30_000);
        expect(build).toMatchObject({ wait_event: 'virtualxid', blockers: [snapshotPid] });

        // The step outlives its heartbeat timeout on its first attempt, heartbeating all along, and
        // its heartbeat names the blocker.
        const first = await eventually('the step to stay alive past its heartbeat timeout', async () => {
          const p = await pendingApply(handle);
          if (!p) throw new Error('applyRevision is not pending while the build waits');
          expect(p.attempt).toBe(1);
          return p.lastHeartbeatMs !== null ? p : undefined;
        }, 10_000);
        const waitingSince = Date.now();
        const alive = await eventually(
          'the step to outlive its heartbeat timeout',
          async () => {
            const p = await pendingApply(handle);
            expect(p?.attempt).toBe(1);
            expect(Date.now() - p!.lastHeartbeatMs!).toBeLessThan(HEARTBEAT_TIMEOUT_MS);
            return Date.now() - waitingSince > HEARTBEAT_TIMEOUT_MS + 2_000 ? p : undefined;
          },
          30_000,
        );
        // By now the SDK has sent the details of a beat taken while the build waited (it flushes the
        // latest at least every 0.8 × heartbeatTimeout).
        expect(alive.lastHeartbeatMs!).toBeGreaterThan(first.lastHeartbeatMs!);
        expect(alive.details[0]).toMatchObject({ revision: 'r1', waiting: `waiting for virtualxid lock (ShareLock), blocked by pid ${snapshotPid} (idle in transaction)` });
        expect((await untilState(handle, 'applying')).steps[0]).toMatchObject({ revision: 'r1', state: 'applying', attempts: 1 });
        // `phasegate status` shows the same blocker to the operator.
        const shown = await status({ client: lab.env.client, workflowId: handle.workflowId });
        expect(shown.status.waiting).toBe(`waiting for virtualxid lock (ShareLock), blocked by pid ${snapshotPid} (idle in transaction)`);

        // Cancel: the build is cancelled in PostgreSQL, the workflow ends cancelled, nothing recorded.
        const cancelledAt = Date.now();
        await handle.cancel();
        await expect(handle.result()).rejects.toMatchObject({ cause: { name: 'CancelledFailure' } });
        const cancelMs = Date.now() - cancelledAt;
        console.info(`fault 5: cancelled ${cancelMs} ms after the request`);
        expect(cancelMs).toBeLessThan(HEARTBEAT_TIMEOUT_MS + 5_000);
        expect(await db.sql(`SELECT pid FROM pg_stat_activity WHERE pid = $1 AND state <> 'idle'`, [build.pid])).toEqual([]);
        expect((await untilState(handle, 'cancelled')).state).toBe('cancelled');
      },
      { defaults: { lockTimeoutMs: 500 } },
    );
    expect(await versionRows(db)).toEqual({ version: [], pending: [] });
    // The cancelled build left an INVALID index; a later upgrade (the snapshot gone) replaces it.
    expect(await db.sql(`SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass('accounts_email_idx')`)).toEqual([{ indisvalid: false }]);
    await snapshot.query('ROLLBACK');
    await withWorker(lab, db, dir, async (w) => expect((await (await w.start()).result()).outcome).toBe('done'));
    expect(await db.sql(`SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass('accounts_email_idx')`)).toEqual([{ indisvalid: true }]);
    expect(await versionRows(db)).toEqual({ version: ['r1'], pending: [] });
  } finally {
    await snapshot.query('ROLLBACK').catch(() => undefined);
    await snapshot.end();
  }
}, 60_000);

async function columnsOf(db: LabDatabase): Promise<string[]> {
  const rows = await db.sql<{ c: string }>(`SELECT column_name AS c FROM information_schema.columns WHERE table_name = 'accounts' ORDER BY ordinal_position`);
  return rows.map((r) => r.c);
}
