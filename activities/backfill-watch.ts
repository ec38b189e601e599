/**
 * What slows a backfill down from outside: application sessions waiting for locks that a backfill
 * session holds, and replicas replaying far behind. One watcher per database per worker process
 * polls both on its own connection (outside the pool, so busy slices can never starve it) while at
 * least one slice of that database runs, and stops when the last one leaves.
 */
import pg from 'pg';
import { LOCK_WAITERS_SQL, REPLICATION_LAG_SQL } from '../lib/backfill';

export interface ReplicationLag {
  application: string;
  lagMs: number;
}

export interface BackfillWatch {
  /** Most sessions seen waiting on this backfill session since the last call; then resets. */
  takeWaiters(): number;
  /** Latest replication lag seen (null: no replica, or all caught up). */
  replicationLag(): ReplicationLag | null;
  release(): void;
}

interface Watcher {
  pids: Map<number, number>;
  users: number;
  lag: ReplicationLag | null;
  stop(): void;
}

export interface WatchOptions {
  /** How often lock waiters are sampled; a batch lasts ~200 ms, so sustained contention shows. */
  lockPollMs?: number;
  /** Replication lag moves slowly; sample it every this many lock polls. */
  lagEvery?: number;
}

/** Shared watchers, one per connection URL, owned by one activities instance (not a module global). */
export function createBackfillWatchers(opts: WatchOptions = {}) {
  const watchers = new Map<string, Watcher>();
  const lockPollMs = opts.lockPollMs ?? 200;
  const lagEvery = opts.lagEvery ?? 5;

  function start(url: string): Watcher {
    let running = true;
    let timer: NodeJS.Timeout | undefined;
    let client: pg.Client | undefined;
    const watcher: Watcher = {
      pids: new Map(),
      users: 0,
      lag: null,
      stop() {
        running = false;
        if (timer) clearTimeout(timer);
        client?.end().catch(() => undefined);
      },
    };
    let polls = 0;
    const poll = async () => {
      try {
        if (!client) {
          client = new pg.Client({ connectionString: url, application_name: 'phasegate backfill watch' });
          client.on('error', () => undefined);
          await client.connect();
        }
        const { rows } = await client.query<{ blocker: number; waiters: number }>(LOCK_WAITERS_SQL);
        for (const row of rows) {
          const seen = watcher.pids.get(row.blocker);
          if (seen !== undefined && row.waiters > seen) watcher.pids.set(row.blocker, row.waiters);
        }
        if (polls++ % lagEvery === 0) {
          const lag = await client.query<{ application_name: string; lag_ms: number }>(REPLICATION_LAG_SQL);
          watcher.lag = lag.rows[0] ? { application: lag.rows[0].application_name, lagMs: lag.rows[0].lag_ms } : null;
        }
      } catch {
        // Watching is best effort: a failed probe never fails a batch. Reconnect on the next poll.
        client?.end().catch(() => undefined);
        client = undefined;
      }
      if (running) timer = setTimeout(() => void poll(), lockPollMs);
    };
    void poll();
    return watcher;
  }

  return {
    watch(url: string, pid: number): BackfillWatch {
      let watcher = watchers.get(url);
      if (!watcher) {
        watcher = start(url);
        watchers.set(url, watcher);
      }
      const w = watcher;
      w.users++;
      w.pids.set(pid, 0);
      let released = false;
      return {
        takeWaiters() {
          const seen = w.pids.get(pid) ?? 0;
          if (w.pids.has(pid)) w.pids.set(pid, 0);
          return seen;
        },
        replicationLag: () => w.lag,
        release() {
          if (released) return;
          released = true;
          w.pids.delete(pid);
          if (--w.users === 0) {
            w.stop();
            watchers.delete(url);
          }
        },
      };
    },
    /** Stops every watcher (worker shutdown, tests). */
    closeAll() {
      for (const w of watchers.values()) w.stop();
      watchers.clear();
    },
  };
}

export type BackfillWatchers = ReturnType<typeof createBackfillWatchers>;
