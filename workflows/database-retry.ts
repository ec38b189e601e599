/**
 * Transient faults never end a migration. An activity that failed for a reason that can pass (the
 * database restarting, a dropped connection, a dead worker's heartbeat timeout) is tried again
 * without a maximum, on a durable timer with jittered backoff, while status says what it waits for.
 * Everything else is permanent and goes to the caller, which stops in `failed` for a person.
 */
import { ApplicationFailure, isCancellation, sleep, TimeoutFailure } from '@temporalio/workflow';
import type { RetryPolicy } from '@temporalio/common';

/**
 * The activities' own retry policy: a few quick attempts absorb a blip unseen; after that the
 * workflow waits out a transient failure itself (retryTransient), visibly, without a maximum.
 */
export const QUICK_RETRY: RetryPolicy = { initialInterval: '1s', maximumInterval: '5s', maximumAttempts: 3 };

/** Activity failure types that are worth waiting out (activities/failures.ts sets them). */
const TRANSIENT_TYPES = new Set(['TransientDatabaseError', 'LockTimeout', 'BackfillCheckpointMissing', 'TemporalUnavailable']);

const MAX_DELAY_MS = 30_000;

/** The failure at the bottom of an ActivityFailure / ChildWorkflowFailure chain. */
export function rootCause(err: unknown): unknown {
  let current = err as { cause?: unknown } | undefined;
  while (current && typeof current === 'object' && current.cause) current = current.cause as typeof current;
  return current;
}

export function failureMessage(err: unknown): string {
  const root = rootCause(err) as { message?: string } | undefined;
  return root?.message ?? String(err);
}

export function failureType(err: unknown): string | null {
  const root = rootCause(err);
  if (root instanceof ApplicationFailure) return root.type ?? null;
  return (root as { name?: string } | undefined)?.name ?? null;
}

export function isTransientFailure(err: unknown): boolean {
  if (isCancellation(err)) return false;
  const root = rootCause(err);
  // The worker died or was deployed mid-activity: the heartbeat or schedule-to-start ran out.
  if (root instanceof TimeoutFailure) return true;
  if (root instanceof ApplicationFailure) return !root.nonRetryable && TRANSIENT_TYPES.has(root.type ?? '');
  return false;
}

/**
 * Runs `fn` until it succeeds or fails permanently. `report` gets the waiting text while it waits
 * and null once it succeeded.
 */
export async function retryTransient<T>(fn: () => Promise<T>, report: (waiting: string | null) => void): Promise<T> {
  const since = new Date().toISOString();
  for (let attempt = 1; ; attempt++) {
    try {
      const result = await fn();
      if (attempt > 1) report(null);
      return result;
    } catch (err) {
      if (!isTransientFailure(err)) throw err;
      const backoff = Math.min(MAX_DELAY_MS, 1_000 * 2 ** Math.min(attempt - 1, 10));
      const delayMs = Math.round(backoff / 2 + Math.random() * (backoff / 2));
      report(`waiting for database: ${failureMessage(err)} (attempt ${attempt}, since ${since}); next try in ${(delayMs / 1000).toFixed(1)} s`);
      await sleep(delayMs);
    }
  }
}
