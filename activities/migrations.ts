/**
 * Activities of the `migrate` workflow: plan a migration, apply one revision step.
 */
import { cancellationSignal, heartbeat } from '@temporalio/activity';
import { CancelledFailure } from '@temporalio/common';
import path from 'node:path';
import type pg from 'pg';
import type { Logger } from 'pino';
import { configFileName, databaseFor, migrationsDirectoryFor, type PhasegateConfig } from '../lib/config';
import { PhasegateError } from '../lib/errors';
import type { OpStatement } from '../lib/ops';
import { buildPlan, type Direction, type Plan, type PlanStep } from '../lib/plan';
import { hashFile, loadRevisionDirectory } from '../lib/revision-files';
import { resolveBackfillKey } from './backfill';
import { DatabasePools, withClient, withTransaction } from './db';
import { describeLockWait, watchLockWaits, type LockWait } from './lock-watch';
import { createPendingTable, MIGRATION_LOCK_KEY, pendingTableName, readHeads, sameHeads, writeHeads } from '../lib/version-table';
import { deleteCheckpointsStatement, progressTableName } from '../lib/backfill';
import { assertLeaseOwner } from './lease';
import { explainViolation } from './checks';
import { countLockTimeout } from './metrics';


export interface MigrationDeps {
  config: PhasegateConfig;
  pools: DatabasePools;
  log: Logger;
}

export interface PlanMigrationInput {
  database: string;
  target: string;
  direction: Direction;
}

export interface ApplyRevisionInput {
  database: string;
  step: PlanStep;
  /**
   * How the version table moves: `now` with the statements (the usual case); `defer` for a step
   * whose backfill and check must finish first (a pending row marks the statements as done, and
   * `stampRevision` writes the version row later); `undo-pending` to roll back such a step before
   * it was stamped (its pending row goes, the version table stays).
   */
  stamp?: 'now' | 'defer' | 'undo-pending';
  /** The migration's workflow id: the step runs only while that workflow holds the database's lease. */
  owner?: string;
}

export interface StampRevisionInput {
  database: string;
  step: PlanStep;
  owner?: string;
}

export interface ApplyRevisionResult {
  revision: string;
  /**
   * `already-applied` when a retry found the version table already past this step;
   * `lock-timeout` when a statement waited longer than lock_timeout (nothing was committed for a
   * transactional step) — the workflow decides when to try again.
   */
  outcome: 'applied' | 'already-applied' | 'lock-timeout';
  durationMs: number;
  lockWait?: LockWait;
  /** Human-readable: "waiting for lock on accounts (AccessExclusiveLock), blocked by pid 42 (idle in transaction)". */
  waiting?: string;
}


/** The revision statement an error came from (set by runStatements), for the operator's message. */
const FAILED_STATEMENT = Symbol('failedStatement');

function tagStatement(statement: OpStatement): (err: unknown) => never {
  return (err) => {
    if (err && typeof err === 'object') (err as { [FAILED_STATEMENT]?: string })[FAILED_STATEMENT] = statement.sql;
    throw err;
  };
}

/** 57014 from statement_timeout (not a cancel: that says "due to user request"). */
function isStatementTimeout(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  return e?.code === '57014' && /statement timeout/.test(e.message ?? '');
}

/**
 * statement_timeout ended a statement: the same statement would run just as long again, so this is
 * permanent; the message names the revision, the statement and the limit. A transactional step
 * rolled back whole, so nothing of it stays applied.
 */
function statementTimedOut(err: unknown, step: PlanStep, timeoutMs: number): PhasegateError {
  const sql = (err as { [FAILED_STATEMENT]?: string })[FAILED_STATEMENT];
  const what = sql ? `statement \`${sql.length > 120 ? `${sql.slice(0, 117)}...` : sql}\`` : 'a statement';
  const undone = step.transactional ? 'its transaction was rolled back, nothing of it was applied' : 'statements before it stay applied (the step is not transactional)';
  return new PhasegateError(
    'StatementTimeout',
    `revision ${step.revision}: ${what} ran longer than statement_timeout (${timeoutMs} ms) and was cancelled; ${undone}. ` +
      'Raise defaults.statementTimeoutMs (0 = no limit) or make the step cheaper, then send retry',
    { details: { revision: step.revision, statement: sql ?? null, statementTimeoutMs: timeoutMs, sqlstate: '57014' } },
  );
}

export function createMigrationActivities({ config, pools, log }: MigrationDeps) {
  async function planMigration(input: PlanMigrationInput): Promise<Plan> {
    const directory = migrationsDirectoryFor(config, input.database);
    const revisions = loadRevisionDirectory(directory, configFileName(config));
    // The catalog check reads the same connection: unknown tables, columns or a backfill that does not compile are refused here.
    const plan = await withClient(pools.pool(input.database), async (client) =>
      buildPlan({
        ...input,
        revisions,
        currentHeads: await readHeads(client, config),
        lockRetry: config.defaults.lockRetry,
        catalog: async (sql, params) => (await client.query(sql, params)).rows,
        defaultWindow: databaseFor(config, input.database).window,
      }),
    );
    const approvers = databaseFor(config, input.database).approvers;
    if (approvers) plan.approvers = approvers;
    // A gate whose own approver list shares nobody with the database's could never be opened.
    for (const step of plan.steps) {
      const own = step.gate?.approvers;
      if (own && approvers && !own.some((a) => approvers.includes(a))) {
        throw new PhasegateError(
          'NoApprover',
          `gate "${step.gate!.name}" of revision ${step.revision} names approvers ${own.join(', ')}, none of whom may approve on database "${input.database}" ` +
            `(databases.${input.database}.approvers: ${approvers.join(', ')}); nobody could open it. Fix either list, then start again`,
          { details: { revision: step.revision, gate: step.gate!.name, gateApprovers: own, databaseApprovers: approvers } },
        );
      }
    }
    await checkBackfillKeys(input.database, plan);
    log.info({ database: input.database, steps: plan.steps.map((s) => s.revision) }, 'planned migration');
    return plan;
  }

  /**
   * A backfill needs a key to walk (primary key, or a unique NOT NULL column): a table without one
   * fails here, before anything is applied. A table that an earlier step of this plan creates is
   * checked when its backfill starts.
   */
  async function checkBackfillKeys(database: string, plan: Plan): Promise<void> {
    const specs = plan.steps.flatMap((s) => (s.backfill ? [{ revision: s.revision, spec: s.backfill }] : []));
    if (specs.length === 0) return;
    await withClient(pools.pool(database), async (client) => {
      for (const { revision, spec } of specs) {
        try {
          await resolveBackfillKey(client, spec);
        } catch (err) {
          if ((err as PhasegateError).type === 'BackfillTableMissing') continue;
          if (err instanceof PhasegateError) {
            throw new PhasegateError(err.type, `revision ${revision}: ${err.message}`, { details: { ...err.details, revision } });
          }
          throw err;
        }
      }
    });
  }

  async function applyRevision(input: ApplyRevisionInput): Promise<ApplyRevisionResult> {
    const { database, step } = input;
    const started = Date.now();
    const file = path.join(path.resolve(migrationsDirectoryFor(config, database)), step.file);
    const hash = hashFile(file);
    if (hash !== step.hash) {
      throw new PhasegateError(
        'RevisionChanged',
        `${file} changed after the migration was planned (revision ${step.revision}); ` +
          'cancel this workflow and start a new migration so the new content is planned and reviewed',
        { details: { revision: step.revision, file, plannedHash: step.hash, currentHash: hash } },
      );
    }
    // Keep the activity visibly alive while a long statement (VALIDATE, CONCURRENTLY) runs; the
    // heartbeat is also how a cancel reaches this activity. Its details say what the statement waits
    // for right now (a CONCURRENTLY build waiting for an old snapshot has no lock_timeout to end it),
    // so the pending activity names the blocker while it waits.
    let waitingNow: () => string | null = () => null;
    const beat = setInterval(() => heartbeat({ revision: step.revision, waiting: waitingNow() }), 2_000);
    const signal = cancellationSignal();
    try {
      return await withClient(pools.pool(database), async (client) => {
        const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
        const pid = rows[0].pid;
        // Cancel = stop safely: the running statement is cancelled in PostgreSQL (a transactional
        // step rolls back whole; a CONCURRENTLY build leaves an INVALID index the retry drops).
        // The cancel is awaited before this connection goes back to the pool: a late one must land
        // on this session (idle by then: no effect), never on the next statement of whoever reuses it.
        let cancelling: Promise<void> = Promise.resolve();
        const cancelStatement = () => (cancelling = cancelBackend(database, pid));
        signal.addEventListener('abort', cancelStatement);
        // Poll often enough to see a wait that lock_timeout ends, and only once the watcher's own
        // connection is up: the operator is told who blocks even on the first attempt.
        const watcher = watchLockWaits(pools.pool(database), pid, Math.max(10, Math.min(100, Number(config.defaults.lockTimeoutMs) / 4)));
        await watcher.ready;
        waitingNow = () => {
          const wait = watcher.current();
          return wait ? describeLockWait(wait) : null;
        };
        try {
          const outcome = step.transactional ? await applyInTransaction(client, input) : await applyOutsideTransaction(client, input);
          await watcher.stop();
          log.info({ database, revision: step.revision, direction: step.direction, outcome }, 'revision step done');
          return { revision: step.revision, outcome, durationMs: Date.now() - started };
        } catch (err) {
          const lockWait = await watcher.stop();
          if (signal.aborted) throw new CancelledFailure(`revision ${step.revision}: cancelled; its statement was cancelled in PostgreSQL, nothing of it was recorded`);
          if (isStatementTimeout(err)) throw statementTimedOut(err, step, Number(config.defaults.statementTimeoutMs));
          if ((err as { code?: string }).code !== '55P03') throw await explainViolation(client, err);
          const waiting = describeLockWait(lockWait);
          log.warn({ database, revision: step.revision, lockWait }, `lock_timeout: ${waiting}`);
          countLockTimeout(database, step.revision);
          return {
            revision: step.revision,
            outcome: 'lock-timeout' as const,
            durationMs: Date.now() - started,
            waiting,
            ...(lockWait ? { lockWait } : {}),
          };
        } finally {
          waitingNow = () => null;
          signal.removeEventListener('abort', cancelStatement);
          await cancelling;
        }
      });
    } finally {
      clearInterval(beat);
    }
  }

  /** pg_cancel_backend from a second connection: the statement stops, the session stays usable. */
  async function cancelBackend(database: string, pid: number): Promise<void> {
    try {
      await withClient(pools.pool(database), (other) => other.query('SELECT pg_cancel_backend($1)', [pid]));
      log.info({ database, pid }, 'cancelled the running statement of a cancelled step');
    } catch (err) {
      log.warn({ database, pid, err: (err as Error).message }, 'could not cancel the running statement');
    }
  }

  /** Writes the version row of a step whose backfill and check have finished (exactly once). */
  async function stampRevision({ database, step, owner }: StampRevisionInput): Promise<{ outcome: 'stamped' | 'already-stamped' }> {
    return withClient(pools.pool(database), (client) =>
      withTransaction(client, async () => {
        await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
        if (owner) await assertLeaseOwner(client, config, owner);
        if (await alreadyApplied(client, step)) return { outcome: 'already-stamped' as const };
        await writeHeads(client, config, step.headsAfter);
        await client.query(createPendingTable(config).sql);
        await client.query(`DELETE FROM ${pendingTableName(config)} WHERE version_num = $1`, [step.revision]);
        log.info({ database, revision: step.revision }, 'revision stamped after its backfill and check');
        return { outcome: 'stamped' as const };
      }),
    );
  }

  async function setTimeouts(client: pg.ClientBase, scope: 'LOCAL' | 'SESSION'): Promise<void> {
    // lock_timeout bounds how long any statement may queue behind other sessions' locks, and so how
    // long it can itself block the queries queued behind it.
    await client.query(`SET ${scope} lock_timeout = ${Number(config.defaults.lockTimeoutMs)}`);
    await client.query(`SET ${scope} statement_timeout = ${Number(config.defaults.statementTimeoutMs)}`);
  }

  /** Checks where the version table stands; returns true when this step already ran. */
  async function alreadyApplied(client: pg.ClientBase, step: PlanStep): Promise<boolean> {
    const heads = await readHeads(client, config);
    if (sameHeads(heads, step.headsAfter)) return true;
    if (!sameHeads(heads, step.headsBefore)) {
      throw new PhasegateError(
        'VersionConflict',
        `the database's applied revisions are [${heads.join(', ')}], but this step expected [${step.headsBefore.join(', ')}]; ` +
          'another migration ran meanwhile. Start a new migration to re-plan from where the database is now',
        { details: { heads, expected: step.headsBefore } },
      );
    }
    return false;
  }

  async function runStatements(client: pg.ClientBase, step: PlanStep): Promise<void> {
    const statements: OpStatement[] = step.statements;
    for (const statement of statements) {
      // A guarded statement (e.g. dropping an INVALID index before a concurrent rebuild) runs only
      // when its guard query returns a row.
      if (statement.onlyIf && (await client.query(statement.onlyIf.sql, statement.onlyIf.params ?? [])).rows.length === 0) continue;
      if (!step.transactional && statement.concurrently) {
        // A concurrent build or drop waits for every older transaction to finish; that wait blocks
        // no reader or writer, so the short lock_timeout (meant for queue-jumping ACCESS EXCLUSIVE
        // locks) would only make it fail, leave an INVALID index and start over, forever.
        await client.query('SET lock_timeout = 0');
        try {
          await client.query(statement.sql, statement.params ?? []).catch(tagStatement(statement));
        } finally {
          await client.query(`SET lock_timeout = ${Number(config.defaults.lockTimeoutMs)}`);
        }
        continue;
      }
      await client.query(statement.sql, statement.params ?? []).catch(tagStatement(statement));
    }
  }

  /**
   * Where the version table says this step stands: `done` (already applied: a retry, or a pending
   * row for a deferred step), `todo`, or a conflict (another migration moved the table).
   */
  async function stepState(client: pg.ClientBase, input: ApplyRevisionInput): Promise<'done' | 'todo'> {
    const { step } = input;
    const stamp = input.stamp ?? 'now';
    if (input.owner) await assertLeaseOwner(client, config, input.owner);
    await client.query(createPendingTable(config).sql);
    const pending = (await client.query(`SELECT 1 FROM ${pendingTableName(config)} WHERE version_num = $1`, [step.revision])).rows.length > 0;
    if (stamp === 'undo-pending') {
      // Rolling back a step that never got its version row: the table must still be where it was.
      const heads = await readHeads(client, config);
      if (!sameHeads(heads, step.headsAfter) && !sameHeads(heads, step.headsBefore)) await alreadyApplied(client, step);
      return pending ? 'todo' : 'done';
    }
    if (await alreadyApplied(client, step)) return 'done';
    return stamp === 'defer' && pending ? 'done' : 'todo';
  }

  /** What a finished step writes: the version row, or the pending row of a deferred step. */
  async function record(client: pg.ClientBase, input: ApplyRevisionInput): Promise<void> {
    const { step } = input;
    const stamp = input.stamp ?? 'now';
    if (stamp === 'defer') {
      await client.query(`INSERT INTO ${pendingTableName(config)} (version_num, workflow_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`, [
        step.revision,
        input.owner ?? '',
      ]);
      return;
    }
    if (stamp === 'now') await writeHeads(client, config, step.headsAfter);
    await client.query(`DELETE FROM ${pendingTableName(config)} WHERE version_num = $1`, [step.revision]);
    if (step.direction === 'downgrade') {
      // Undoing a revision drops what its backfill filled: its checkpoints must not survive to a
      // later upgrade, which would resume past rows it never wrote.
      const exists = await client.query<{ t: string | null }>('SELECT to_regclass($1)::text AS t', [progressTableName(config.migrations.versionTableSchema)]);
      if (exists.rows[0]?.t) {
        const del = deleteCheckpointsStatement(config.migrations.versionTableSchema, `revision:${step.revision}`);
        await client.query(del.sql, del.params ?? []);
      }
    }
  }

  /** DDL and version row commit together: a crash leaves either both or neither. */
  async function applyInTransaction(client: pg.ClientBase, input: ApplyRevisionInput): Promise<ApplyRevisionResult['outcome']> {
    const outcome = await withTransaction(client, async () => {
      await setTimeouts(client, 'LOCAL');
      await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
      if ((await stepState(client, input)) === 'done') return 'already-applied' as const;
      await runStatements(client, input.step);
      await record(client, input);
      return 'applied' as const;
    });
    await pauseAfterCommitForTests(input.step.revision, outcome);
    return outcome;
  }

  /**
   * Fault-injection point, test-only (test/faults/worker-kill.test.ts): with
   * PHASEGATE_TEST_PAUSE_AFTER_COMMIT_MS set in the worker's environment, a transactional step
   * waits that long after its COMMIT (statements and version row are durable) and before the
   * activity completes, so a test can SIGKILL the worker in exactly that window. A no-op unless set;
   * never set it in production.
   */
  async function pauseAfterCommitForTests(revision: string, outcome: ApplyRevisionResult['outcome']): Promise<void> {
    const ms = Number(process.env.PHASEGATE_TEST_PAUSE_AFTER_COMMIT_MS ?? 0);
    if (!(ms > 0) || outcome !== 'applied') return;
    log.warn({ revision, ms }, `fault injection: PHASEGATE_TEST_PAUSE_AFTER_COMMIT_MS, revision ${revision} committed, pausing before the activity completes`);
    await new Promise((resolve) => setTimeout(resolve, ms));
  }

  /**
   * Statements that cannot run in a transaction (CONCURRENTLY) run one by one; each is idempotent,
   * so if the worker dies between the DDL and the version stamp, the retry re-runs them as no-ops
   * and then stamps — the revision is recorded exactly once.
   */
  async function applyOutsideTransaction(client: pg.ClientBase, input: ApplyRevisionInput): Promise<ApplyRevisionResult['outcome']> {
    await setTimeouts(client, 'SESSION');
    // If this worker dies mid-statement, the server notices the closed connection within seconds
    // (PG14+) and aborts the statement, releasing the session's advisory lock for the retry.
    await client.query(
      `SELECT set_config('client_connection_check_interval', '2000', false) WHERE current_setting('server_version_num')::int >= 140000`,
    );
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    try {
      if ((await stepState(client, input)) === 'done') return 'already-applied';
      await runStatements(client, input.step);
      await withTransaction(client, () => record(client, input));
      return 'applied';
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]);
      await client.query('RESET lock_timeout; RESET statement_timeout');
    }
  }

  return { planMigration, applyRevision, stampRevision };
}
