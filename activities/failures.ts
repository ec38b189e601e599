/**
 * The activity boundary: phasegate errors and PostgreSQL errors become ApplicationFailures whose
 * `type` callers match on, with `nonRetryable` set deliberately.
 *
 * The one rule for "will this fix itself?" lives here (`classifyDatabaseError`); `isTransientPgError`
 * in ./db delegates to it. This file imports nothing from ./db, so the two cannot form a cycle.
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import pg from 'pg';
import { PhasegateError } from '../lib/errors';

export interface DatabaseErrorClass {
  /** Retrying the same step can succeed once the database is back or the contention is gone. */
  transient: boolean;
  /** Short, operator-facing cause; the workflow shows it as "waiting for database: <reason>". */
  reason: string;
  /** The server's SQLSTATE when the error came from PostgreSQL itself. */
  sqlstate: string | null;
  /** The Node errno string (ECONNREFUSED, …) when the socket failed. */
  errno: string | null;
}

/**
 * SQLSTATEs (or their class, by two-character prefix) that describe the server's situation rather
 * than the statement: the same statement succeeds once the server is back or the contention is gone.
 * 57014 (query_canceled: statement_timeout or a cancel) is deliberately absent: the same statement
 * would run just as long again. Class 58 (system error, e.g. a missing file) is absent too.
 */
const TRANSIENT_SQLSTATES: Record<string, string> = {
  '08': 'connection exception',
  '53': 'server out of resources',
  '57P01': 'server shutting down (administrator command)',
  '57P02': 'server crashed',
  '57P03': 'server not accepting connections yet',
  '40001': 'serialization failure',
  '40P01': 'deadlock',
  '55P03': 'lock not available',
};

/** Finer names inside the transient classes, where the class name alone says too little. */
const SQLSTATE_NAMES: Record<string, string> = {
  '08001': 'cannot establish connection',
  '08004': 'server rejected the connection',
  '08006': 'connection failure',
  '08P01': 'protocol violation',
  '53100': 'server disk full',
  '53200': 'server out of memory',
  '53300': 'too many connections',
};

/**
 * Socket failures: the server (or the path to it) is down, restarting or overloaded. Only network
 * errnos count: an ENOENT or EACCES from our own file access says nothing about the database.
 */
const TRANSIENT_ERRNOS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ECONNABORTED: 'connection aborted',
  ETIMEDOUT: 'connection timed out',
  EPIPE: 'connection closed while sending',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host name lookup failed',
  EHOSTUNREACH: 'host unreachable',
  EHOSTDOWN: 'host down',
  ENETUNREACH: 'network unreachable',
  ENETDOWN: 'network down',
  ENETRESET: 'network reset',
};

/** Messages pg and pg-pool raise without a code when the connection, not the statement, failed. */
const TRANSIENT_DRIVER_MESSAGES: Record<string, string> = {
  'Connection terminated': 'connection terminated',
  'Connection terminated unexpectedly': 'connection terminated unexpectedly',
  'Connection terminated due to connection timeout': 'connection timed out',
  'timeout expired': 'connection timed out',
  'timeout exceeded when trying to connect': 'no pooled connection became free in time',
  'Client has encountered a connection error and is not queryable': 'connection lost',
  'terminating connection due to administrator command': 'server shutting down (administrator command)',
};

function isServerError(err: unknown): err is pg.DatabaseError {
  if (err instanceof pg.DatabaseError) return typeof err.code === 'string';
  // Duck-typed too: a DatabaseError from another copy of pg-protocol fails `instanceof`.
  const e = err as { severity?: unknown; code?: unknown } | null;
  return typeof e?.severity === 'string' && typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code);
}

/** Whether an error says the database is unreachable or busy right now (retry) or the step is wrong (stop). */
export function classifyDatabaseError(err: unknown): DatabaseErrorClass {
  if (isServerError(err)) {
    const sqlstate = err.code as string;
    const what = TRANSIENT_SQLSTATES[sqlstate] ?? TRANSIENT_SQLSTATES[sqlstate.slice(0, 2)];
    if (what) return { transient: true, reason: `${SQLSTATE_NAMES[sqlstate] ?? what} (SQLSTATE ${sqlstate})`, sqlstate, errno: null };
    return { transient: false, reason: `${err.message} (SQLSTATE ${sqlstate})`, sqlstate, errno: null };
  }
  const e = err as { code?: unknown; message?: unknown; errors?: unknown } | null;
  const message = typeof e?.message === 'string' ? e.message : String(err);
  if (typeof e?.code === 'string' && /^E[A-Z0-9_]+$/.test(e.code)) {
    const what = TRANSIENT_ERRNOS[e.code];
    return { transient: Boolean(what), reason: what ? `${what} (${e.code})` : message, sqlstate: null, errno: e.code };
  }
  // Connecting to a name with several addresses (localhost: ::1 and 127.0.0.1) fails with one
  // AggregateError; the first attempt's error says why.
  if (Array.isArray(e?.errors) && e.errors.length > 0) {
    const first = classifyDatabaseError(e.errors[0]);
    if (first.transient) return first;
  }
  const what = TRANSIENT_DRIVER_MESSAGES[message];
  if (what) return { transient: true, reason: what, sqlstate: null, errno: null };
  return { transient: false, reason: message, sqlstate: null, errno: null };
}

/** The activity's cancellation, when this runs inside an activity that has been cancelled. */
function activityCancellation(): unknown {
  try {
    const signal = Context.current().cancellationSignal;
    return signal.aborted ? signal.reason : undefined;
  } catch {
    return undefined; // not inside an activity
  }
}

export function toFailure(err: unknown): Error {
  if (err instanceof ApplicationFailure) return err;
  if (err instanceof PhasegateError) {
    return ApplicationFailure.create({ type: err.type, message: err.message, nonRetryable: !err.retryable, details: [err.details] });
  }
  const found = classifyDatabaseError(err);
  const pgErr = err as { message?: string; detail?: string; hint?: string };
  if (found.transient) {
    return ApplicationFailure.create({
      type: found.sqlstate === '55P03' ? 'LockTimeout' : 'TransientDatabaseError',
      message: `${pgErr.message ?? String(err)}${found.sqlstate ? ` (SQLSTATE ${found.sqlstate})` : found.errno ? ` (errno ${found.errno})` : ''}`,
      nonRetryable: false,
      details: [{ sqlstate: found.sqlstate, errno: found.errno, reason: found.reason, transient: true }],
    });
  }
  if (found.sqlstate) {
    // Our own cancel of the running statement (the activity was cancelled) surfaces as 57014; it
    // must leave as the cancellation, so Temporal records the activity cancelled, not failed.
    const cancellation = found.sqlstate === '57014' ? activityCancellation() : undefined;
    if (cancellation instanceof Error) return cancellation;
    // Any other SQL error (syntax, missing object, constraint violation, statement_timeout) will
    // not fix itself: the revision or the data must change first.
    return ApplicationFailure.create({
      type: 'SqlError',
      message: `${pgErr.message} (SQLSTATE ${found.sqlstate})${pgErr.detail ? `: ${pgErr.detail}` : ''}${pgErr.hint ? ` (hint: ${pgErr.hint})` : ''}`,
      nonRetryable: true,
      details: [{ sqlstate: found.sqlstate, transient: false }],
    });
  }
  // Neither phasegate's nor the database's (a TypeError, a plain Error from our code, an fs errno):
  // passed on as is, so the SDK makes it a retryable ApplicationFailure named after the error and the
  // activity's retry policy bounds it. Guessing "permanent" here would strand a migration on a
  // hiccup we did not foresee; a bug repeats its attempts and then fails visibly with its stack.
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
