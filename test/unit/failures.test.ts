import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import pg from 'pg';
import { isTransientPgError } from '../../activities/db';
import { classifyDatabaseError, toFailure } from '../../activities/failures';
import { PhasegateError } from '../../lib/errors';

/** An error as pg-protocol builds it from the server's ErrorResponse. */
function serverError(code: string, message: string, extra: Partial<pg.DatabaseError> = {}): pg.DatabaseError {
  return Object.assign(new pg.DatabaseError(message, message.length, 'error'), { code }, extra);
}

/** An error as Node's net module raises it. */
function socketError(code: string, syscall = 'connect'): Error {
  return Object.assign(new Error(`${syscall} ${code} 127.0.0.1:5`), { code, errno: -1, syscall });
}

interface Case {
  name: string;
  err: unknown;
  type: string;
  nonRetryable: boolean;
}

const transient = (name: string, err: unknown, type = 'TransientDatabaseError'): Case => ({ name, err, type, nonRetryable: false });
const permanent = (name: string, err: unknown): Case => ({ name, err, type: 'SqlError', nonRetryable: true });

const cases: Case[] = [
  transient('connection refused (server down)', socketError('ECONNREFUSED')),
  transient('connection reset', socketError('ECONNRESET', 'read')),
  transient('connection timed out', socketError('ETIMEDOUT')),
  transient('broken pipe while writing', socketError('EPIPE', 'write')),
  transient('host not found', socketError('ENOTFOUND', 'getaddrinfo')),
  transient('host unreachable', socketError('EHOSTUNREACH')),
  transient('connection aborted', socketError('ECONNABORTED')),
  transient('connection_failure 08006', serverError('08006', 'connection failure')),
  transient('any class 08 code: 08P01', serverError('08P01', 'protocol violation')),
  transient('too_many_connections 53300', serverError('53300', 'sorry, too many clients already')),
  transient('disk_full 53100', serverError('53100', 'could not extend file')),
  transient('admin_shutdown 57P01', serverError('57P01', 'terminating connection due to administrator command')),
  transient('crash_shutdown 57P02', serverError('57P02', 'terminating connection because of crash of another server process')),
  transient('cannot_connect_now 57P03', serverError('57P03', 'the database system is starting up')),
  transient('serialization_failure 40001', serverError('40001', 'could not serialize access due to concurrent update')),
  transient('deadlock_detected 40P01', serverError('40P01', 'deadlock detected')),
  transient('lock_not_available 55P03', serverError('55P03', 'canceling statement due to lock timeout'), 'LockTimeout'),
  transient('pg: Connection terminated unexpectedly', new Error('Connection terminated unexpectedly')),
  transient('pg: Connection terminated', new Error('Connection terminated')),
  transient('pg: connect timeout', new Error('timeout expired')),
  transient('pg: broken client', new Error('Client has encountered a connection error and is not queryable')),
  transient('pg: admin shutdown without a code', new Error('terminating connection due to administrator command')),
  permanent('syntax_error 42601', serverError('42601', 'syntax error at or near "SELEC"')),
  permanent('undefined_table 42P01', serverError('42P01', 'relation "nope" does not exist')),
  permanent('unique_violation 23505', serverError('23505', 'duplicate key value violates unique constraint "t_pkey"')),
  permanent('query_canceled 57014 (statement_timeout), outside a cancelled activity', serverError('57014', 'canceling statement due to statement timeout')),
  permanent('system error class 58: 58P01', serverError('58P01', 'could not open file')),
  permanent('database_dropped 57P04', serverError('57P04', 'terminating connection because the database was dropped')),
  permanent('a server error shaped like one from another copy of pg', Object.assign(new Error('division by zero'), { severity: 'ERROR', code: '22012' })),
];

describe('toFailure: which errors end a migration', () => {
  it.each(cases)('$name → $type, nonRetryable $nonRetryable', ({ err, type, nonRetryable }) => {
    const failure = toFailure(err);
    expect(failure).toBeInstanceOf(ApplicationFailure);
    expect(failure).toMatchObject({ type, nonRetryable });
  });

  it('names the errno or SQLSTATE in the message and marks the details transient', () => {
    expect(toFailure(socketError('ECONNREFUSED'))).toMatchObject({
      message: 'connect ECONNREFUSED 127.0.0.1:5 (errno ECONNREFUSED)',
      details: [{ errno: 'ECONNREFUSED', sqlstate: null, transient: true, reason: 'connection refused (ECONNREFUSED)' }],
    });
    expect(toFailure(serverError('57P01', 'terminating connection due to administrator command'))).toMatchObject({
      message: 'terminating connection due to administrator command (SQLSTATE 57P01)',
      details: [{ sqlstate: '57P01', errno: null, transient: true }],
    });
  });

  it('keeps the server detail and hint of a permanent SQL error', () => {
    const err = serverError('23505', 'duplicate key value violates unique constraint "t_pkey"', {
      detail: 'Key (id)=(1) already exists.',
      hint: 'use another id',
    });
    expect(toFailure(err)).toMatchObject({
      message: 'duplicate key value violates unique constraint "t_pkey" (SQLSTATE 23505): Key (id)=(1) already exists. (hint: use another id)',
      details: [{ sqlstate: '23505', transient: false }],
    });
  });

  it('turns a 57014 caused by the activity’s own cancellation into that cancellation', async () => {
    const env = new MockActivityEnvironment();
    const running = env.run(async () => {
      await new Promise((resolve) => Context.current().cancellationSignal.addEventListener('abort', resolve));
      return toFailure(serverError('57014', 'canceling statement due to user request'));
    });
    env.cancel();
    expect(await running).toMatchObject({ name: 'CancelledFailure' });
  });

  it('passes an ApplicationFailure through unchanged', () => {
    const failure = ApplicationFailure.create({ type: 'Mine', message: 'x', nonRetryable: true });
    expect(toFailure(failure)).toBe(failure);
  });

  it('maps a PhasegateError to its own type, retryable as it says', () => {
    const permanentErr = new PhasegateError('MultipleHeads', 'two heads', { details: { heads: ['a', 'b'] } });
    expect(toFailure(permanentErr)).toMatchObject({ type: 'MultipleHeads', nonRetryable: true, details: [{ heads: ['a', 'b'] }] });
    const retryableErr = new PhasegateError('Busy', 'try later', { retryable: true });
    expect(toFailure(retryableErr)).toMatchObject({ type: 'Busy', nonRetryable: false });
  });

  it('returns errors that are neither ours nor the database’s as they are (the SDK retries them)', () => {
    const bug = new TypeError("Cannot read properties of undefined (reading 'rows')");
    expect(toFailure(bug)).toBe(bug);
    const fileMissing = Object.assign(new Error("ENOENT: no such file or directory, open 'x.ts'"), { code: 'ENOENT', syscall: 'open' });
    expect(toFailure(fileMissing)).toBe(fileMissing);
  });
});

describe('classifyDatabaseError', () => {
  it('gives the reason the workflow shows while it waits', () => {
    expect(classifyDatabaseError(socketError('ECONNREFUSED'))).toEqual({
      transient: true,
      reason: 'connection refused (ECONNREFUSED)',
      sqlstate: null,
      errno: 'ECONNREFUSED',
    });
    expect(classifyDatabaseError(serverError('53300', 'sorry, too many clients already'))).toEqual({
      transient: true,
      reason: 'too many connections (SQLSTATE 53300)',
      sqlstate: '53300',
      errno: null,
    });
    expect(classifyDatabaseError(serverError('42P01', 'relation "nope" does not exist'))).toEqual({
      transient: false,
      reason: 'relation "nope" does not exist (SQLSTATE 42P01)',
      sqlstate: '42P01',
      errno: null,
    });
  });

  it('looks inside an AggregateError (a host name with several addresses)', () => {
    const err = new AggregateError([socketError('ECONNREFUSED'), socketError('ECONNREFUSED')], '');
    expect(classifyDatabaseError(err)).toMatchObject({ transient: true, errno: 'ECONNREFUSED' });
  });

  it('is what isTransientPgError answers', () => {
    for (const { err, nonRetryable } of cases) expect(isTransientPgError(err)).toBe(!nonRetryable);
  });
});
