/**
 * phasegate's activity-side metrics, through the SDK's activity metric meter: they appear on the
 * worker's Prometheus endpoint (lib/metrics.ts) next to the SDK's, with the SDK's tags
 * (`namespace`, `taskQueue`, `activityType`: camelCase on custom metrics) plus the labels below. Outside a worker process
 * with an endpoint (in-process tests, MockActivityEnvironment) the meter is a no-op.
 *
 * Call these only from inside an activity (they read `Context.current()`).
 */
import { Context } from '@temporalio/activity';

export const BACKFILL_ROWS = 'phasegate_backfill_rows';
export const BACKFILL_ROWS_PER_SECOND = 'phasegate_backfill_rows_per_second';
export const LOCK_TIMEOUTS = 'phasegate_lock_timeouts';

/** A revision step's attempt ended on lock_timeout (the workflow tries again, up to lockRetry.maxAttempts). */
export function countLockTimeout(database: string, revision: string): void {
  Context.current()
    .metricMeter.createCounter(LOCK_TIMEOUTS, 'attempts', 'revision step attempts that ended on lock_timeout')
    .add(1, { database, revision });
}

/** The rate gauge looks back this far: long enough to span a few batches and their pauses. */
const RATE_WINDOW_MS = 10_000;

/**
 * The backfill metrics of slice calls in this process. `phasegate_backfill_rows_per_second` is the
 * sum over the slices of a table running here, each at the rate of its recent commits: the rows of
 * the commits in the window but the latest, over the time from the first to the latest. Each batch
 * is paired with the pause after it (which pacing sizes on that batch's rows), so a fast batch
 * followed by its pause does not read as a burst. A slice's share goes when its call ends, so the
 * gauge falls to 0 once no slice of that table runs here. Sum it over workers for the whole backfill.
 */
export function createBackfillMeters() {
  const rates = new Map<string, Map<string, number>>();
  return {
    /** One slice call (inside its activity); `sliceId` names the slice uniquely in the process. */
    sliceCall(database: string, table: string, sliceId: string) {
      const key = JSON.stringify([database, table]);
      const commits: Array<{ at: number; rows: number }> = [];
      // Made once per call, not per batch: the meter hands out a native handle for each create.
      const meter = Context.current().metricMeter;
      const rowsCounter = meter.createCounter(BACKFILL_ROWS, 'rows', 'rows written by committed backfill batches');
      const rateGauge = meter.createGauge(BACKFILL_ROWS_PER_SECOND, 'float', 'rows/s', 'rows per second written by running backfill slices');
      const publish = (slices: Map<string, number> | undefined) => {
        let total = 0;
        for (const rate of slices?.values() ?? []) total += rate;
        rateGauge.set(total, { database, table });
      };
      return {
        /** A batch committed, having written `rows` rows. */
        batch(rows: number): void {
          if (rows > 0) rowsCounter.add(rows, { database, table });
          const at = Date.now();
          commits.push({ at, rows });
          while (commits.length > 2 && commits[1].at < at - RATE_WINDOW_MS) commits.shift();
          if (commits.length < 2) return;
          let written = 0;
          for (const c of commits.slice(0, -1)) written += c.rows;
          const slices = rates.get(key) ?? new Map<string, number>();
          slices.set(sliceId, written / Math.max(0.001, (at - commits[0].at) / 1000));
          rates.set(key, slices);
          publish(slices);
        },
        /** The call ended, however (done, time up, stopped, failed, cancelled). */
        end(): void {
          const slices = rates.get(key);
          if (!slices?.delete(sliceId)) return;
          if (slices.size === 0) rates.delete(key);
          publish(slices);
        },
      };
    },
  };
}
