/**
 * The activity boundary: phasegate errors and PostgreSQL errors become ApplicationFailures whose
 * `type` callers match on, with `nonRetryable` set deliberately.
 */
import { ApplicationFailure } from '@temporalio/common';
import { PhasegateError } from '../lib/errors';
import { isTransientPgError } from './db';

export function toFailure(err: unknown): Error {
  if (err instanceof ApplicationFailure) return err;
  if (err instanceof PhasegateError) {
    return ApplicationFailure.create({ type: err.type, message: err.message, nonRetryable: !err.retryable, details: [err.details] });
  }
  const pgErr = err as { code?: string; message?: string; table?: string; detail?: string };
  if (isTransientPgError(err)) {
    return ApplicationFailure.create({
      type: pgErr.code === '55P03' ? 'LockTimeout' : 'TransientDatabaseError',
      message: pgErr.message ?? String(err),
      nonRetryable: false,
      details: [{ sqlstate: pgErr.code ?? null }],
    });
  }
  if (typeof pgErr?.code === 'string') {
    // Any other SQL error (syntax, missing object, constraint violation) will not fix itself.
    return ApplicationFailure.create({
      type: 'SqlError',
      message: `${pgErr.message} (SQLSTATE ${pgErr.code})${pgErr.detail ? `: ${pgErr.detail}` : ''}`,
      nonRetryable: true,
      details: [{ sqlstate: pgErr.code }],
    });
  }
  return err instanceof Error ? err : new Error(String(err));
}

/** Wraps every activity so errors cross the boundary as typed failures. */
export function withFailureMapping<T extends Record<string, (...args: never[]) => Promise<unknown>>>(activities: T): T {
  const wrapped: Record<string, unknown> = {};
  for (const [name, fn] of Object.entries(activities)) {
    wrapped[name] = async (...args: never[]) => {
      try {
        return await fn(...args);
      } catch (err) {
        throw toFailure(err);
      }
    };
  }
  return wrapped as T;
}
