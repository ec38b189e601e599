/**
 * Activities of the `migrate` workflow: plan a migration, apply one revision step.
 */
import { heartbeat } from '@temporalio/activity';
import path from 'node:path';
import type pg from 'pg';
import type { Logger } from 'pino';
import { databaseFor, migrationsDirectoryFor, type PhasegateConfig } from '../lib/config';
import { PhasegateError } from '../lib/errors';
import type { OpStatement } from '../lib/ops';
import { buildPlan, type Direction, type Plan, type PlanStep } from '../lib/plan';
import { hashFile, loadRevisionDirectory } from '../lib/revision-files';
import { resolveBackfillKey } from './backfill';
import { DatabasePools, withClient, withTransaction } from './db';
import { describeLockWait, watchLockWaits, type LockWait } from './lock-watch';
import { MIGRATION_LOCK_KEY, readHeads, sameHeads, writeHeads } from '../lib/version-table';


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


export function createMigrationActivities({ config, pools, log }: MigrationDeps) {
  async function planMigration(input: PlanMigrationInput): Promise<Plan> {
    const directory = migrationsDirectoryFor(config, input.database);
    const revisions = loadRevisionDirectory(directory);
    const currentHeads = await withClient(pools.pool(input.database), (client) => readHeads(client, config));
    const plan = await buildPlan({ ...input, revisions, currentHeads, lockRetry: config.defaults.lockRetry });
    const approvers = databaseFor(config, input.database).approvers;
    if (approvers) plan.approvers = approvers;
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

  async function applyRevision({ database, step }: ApplyRevisionInput): Promise<ApplyRevisionResult> {
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
    // Keep the activity visibly alive while a long statement (VALIDATE, CONCURRENTLY) runs.
    const beat = setInterval(() => heartbeat({ revision: step.revision }), 5_000);
    try {
      return await withClient(pools.pool(database), async (client) => {
        const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
        const watcher = watchLockWaits(pools.pool(database), rows[0].pid);
        try {
          const outcome = step.transactional ? await applyInTransaction(client, step) : await applyOutsideTransaction(client, step);
          await watcher.stop();
          log.info({ database, revision: step.revision, direction: step.direction, outcome }, 'revision step done');
          return { revision: step.revision, outcome, durationMs: Date.now() - started };
        } catch (err) {
          const lockWait = await watcher.stop();
          if ((err as { code?: string }).code !== '55P03') throw err;
          const waiting = describeLockWait(lockWait);
          log.warn({ database, revision: step.revision, lockWait }, `lock_timeout: ${waiting}`);
          return {
            revision: step.revision,
            outcome: 'lock-timeout' as const,
            durationMs: Date.now() - started,
            waiting,
            ...(lockWait ? { lockWait } : {}),
          };
        }
      });
    } finally {
      clearInterval(beat);
    }
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
      if (!step.transactional && /\bCONCURRENTLY\b/i.test(statement.sql)) {
        // A concurrent build or drop waits for every older transaction to finish; that wait blocks
        // no reader or writer, so the short lock_timeout (meant for queue-jumping ACCESS EXCLUSIVE
        // locks) would only make it fail, leave an INVALID index and start over, forever.
        await client.query('SET lock_timeout = 0');
        try {
          await client.query(statement.sql, statement.params ?? []);
        } finally {
          await client.query(`SET lock_timeout = ${Number(config.defaults.lockTimeoutMs)}`);
        }
        continue;
      }
      await client.query(statement.sql, statement.params ?? []);
    }
  }

  /** DDL and version row commit together: a crash leaves either both or neither. */
  async function applyInTransaction(client: pg.ClientBase, step: PlanStep): Promise<ApplyRevisionResult['outcome']> {
    return withTransaction(client, async () => {
      await setTimeouts(client, 'LOCAL');
      await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
      if (await alreadyApplied(client, step)) return 'already-applied';
      await runStatements(client, step);
      await writeHeads(client, config, step.headsAfter);
      return 'applied';
    });
  }

  /**
   * Statements that cannot run in a transaction (CONCURRENTLY) run one by one; each is idempotent,
   * so if the worker dies between the DDL and the version stamp, the retry re-runs them as no-ops
   * and then stamps — the revision is recorded exactly once.
   */
  async function applyOutsideTransaction(client: pg.ClientBase, step: PlanStep): Promise<ApplyRevisionResult['outcome']> {
    await setTimeouts(client, 'SESSION');
    // If this worker dies mid-statement, the server notices the closed connection within seconds
    // (PG14+) and aborts the statement, releasing the session's advisory lock for the retry.
    await client.query(
      `SELECT set_config('client_connection_check_interval', '2000', false) WHERE current_setting('server_version_num')::int >= 140000`,
    );
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    try {
      if (await alreadyApplied(client, step)) return 'already-applied';
      await runStatements(client, step);
      await withTransaction(client, () => writeHeads(client, config, step.headsAfter));
      return 'applied';
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]);
      await client.query('RESET lock_timeout; RESET statement_timeout');
    }
  }

  return { planMigration, applyRevision };
}
