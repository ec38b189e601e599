/**
 * Watching a session that waits for a lock: which relation it waits on and who holds it. Used to
 * tell the operator "waiting for lock on accounts, blocked by pid 4242 (idle in transaction)".
 */
import type pg from 'pg';

export interface Blocker {
  pid: number;
  state: string | null;
  application: string | null;
  query: string | null;
  transactionAgeSeconds: number | null;
}

export interface LockWait {
  relation: string | null;
  lockType: string;
  mode: string;
  blockedBy: Blocker[];
}

const WAIT_QUERY = `
  SELECT l.relation::regclass::text AS relation, l.locktype AS lock_type, l.mode,
         COALESCE((
           SELECT json_agg(json_build_object(
                    'pid', a.pid, 'state', a.state, 'application', a.application_name,
                    'query', left(a.query, 200),
                    'transactionAgeSeconds', extract(epoch FROM now() - a.xact_start)::int) ORDER BY a.pid)
           FROM pg_stat_activity a WHERE a.pid = ANY (pg_blocking_pids($1))), '[]') AS blocked_by
  FROM pg_locks l
  WHERE l.pid = $1 AND NOT l.granted
  LIMIT 1`;

/**
 * Polls, on its own connection, what `pid` is waiting for, until stopped; returns the last wait
 * seen (lock_timeout cancels the wait, so it must be observed while it happens).
 */
export function watchLockWaits(
  pool: pg.Pool,
  pid: number,
  intervalMs = 100,
): { ready: Promise<void>; current(): LockWait | undefined; stop(): Promise<LockWait | undefined> } {
  let last: LockWait | undefined;
  /** What the latest poll saw (undefined: not waiting right now). */
  let now: LockWait | undefined;
  let running = true;
  let connected: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => (connected = resolve));
  const loop = (async () => {
    const client = await pool.connect().catch(() => undefined);
    connected();
    if (!client) return;
    // A checked-out client whose connection dies between polls (PostgreSQL restarting) emits
    // 'error'; unheard, that would crash the worker mid-step instead of letting the step retry.
    let broken: Error | undefined;
    const onError = (err: Error) => (broken = err);
    client.on('error', onError);
    try {
      while (running && !broken) {
        const { rows } = await client.query<{ relation: string | null; lock_type: string; mode: string; blocked_by: Blocker[] }>(WAIT_QUERY, [pid]);
        now = rows[0] ? { relation: rows[0].relation, lockType: rows[0].lock_type, mode: rows[0].mode, blockedBy: rows[0].blocked_by } : undefined;
        if (now) last = now;
        await new Promise((r) => setTimeout(r, intervalMs));
      }
    } catch (err) {
      // Watching is best effort: a failed probe must never fail the migration step itself.
      broken ??= err as Error;
    } finally {
      now = undefined;
      client.off('error', onError);
      // A broken connection is destroyed, not handed back to the pool.
      client.release(broken);
    }
  })();
  return {
    ready,
    current: () => (running ? now : undefined),
    async stop() {
      running = false;
      await loop;
      return last;
    },
  };
}

export function describeLockWait(wait: LockWait | undefined): string {
  if (!wait) return 'waiting for a lock';
  const what = wait.relation ? `lock on ${wait.relation}` : `${wait.lockType} lock`;
  const who = wait.blockedBy.length
    ? `, blocked by ${wait.blockedBy.map((b) => `pid ${b.pid}${b.state ? ` (${b.state})` : ''}`).join(', ')}`
    : '';
  return `waiting for ${what} (${wait.mode})${who}`;
}
