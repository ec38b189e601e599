/**
 * The migration lease: one migration per database, whatever its workflow id. Temporal already keeps
 * one run per workflow id; the lease row in the target database covers a second migration started
 * under another id (`-w migrate-demo-2`, or the UI's random id). A lease whose owner workflow is no
 * longer running (terminated, timed out) is taken over: the lease can never wedge a database.
 */
import { Context } from '@temporalio/activity';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { PhasegateConfig } from '../lib/config';
import { PhasegateError } from '../lib/errors';
import { createLeaseTable, leaseTableName, MIGRATION_LOCK_KEY } from '../lib/version-table';
import { withClient, withTransaction, type DatabasePools } from './db';

export interface LeaseInput {
  database: string;
  workflowId: string;
}

/** Whether a workflow is still running, asked of Temporal; injectable so tests can run without a worker. */
export type WorkflowRunning = (workflowId: string) => Promise<boolean>;

async function runningInTemporal(workflowId: string): Promise<boolean> {
  try {
    const description = await Context.current().client.workflow.getHandle(workflowId).describe();
    return description.status.name === 'RUNNING';
  } catch (err) {
    if ((err as Error).name === 'WorkflowNotFoundError') return false;
    throw new PhasegateError('TemporalUnavailable', `could not ask Temporal whether ${workflowId} still runs: ${(err as Error).message}`, { retryable: true });
  }
}

/** Refuses a step of a migration that no longer holds its database's lease. */
export async function assertLeaseOwner(client: pg.ClientBase, config: PhasegateConfig, owner: string): Promise<void> {
  const table = leaseTableName(config);
  const exists = await client.query<{ t: string | null }>('SELECT to_regclass($1) AS t', [table]);
  const holder = exists.rows[0]?.t ? (await client.query<{ workflow_id: string }>(`SELECT workflow_id FROM ${table}`)).rows[0]?.workflow_id : undefined;
  if (holder === owner) return;
  throw new PhasegateError(
    'LeaseLost',
    `migration ${owner} no longer holds this database's migration lease (${holder ? `${holder} holds it` : 'nobody holds it'}); ` +
      'it stops here without changing anything. Check `phasegate status`, then start a new migration if one is still needed',
    { details: { owner, holder: holder ?? null } },
  );
}

export function createLeaseActivities({
  config,
  pools,
  log,
  workflowRunning = runningInTemporal,
}: {
  config: PhasegateConfig;
  pools: DatabasePools;
  log: Logger;
  workflowRunning?: WorkflowRunning;
}) {
  const table = leaseTableName(config);

  async function acquireMigrationLease({ database, workflowId }: LeaseInput): Promise<{ tookOverFrom: string | null }> {
    return withClient(pools.pool(database), (client) =>
      withTransaction(client, async () => {
        // Version-table writers take the same lock: the lease changes hands between their steps only.
        await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
        await client.query(createLeaseTable(config).sql);
        const { rows } = await client.query<{ workflow_id: string; acquired_at: Date }>(`SELECT workflow_id, acquired_at FROM ${table} FOR UPDATE`);
        const holder = rows[0];
        let tookOverFrom: string | null = null;
        if (holder && holder.workflow_id !== workflowId) {
          if (await workflowRunning(holder.workflow_id)) {
            throw new PhasegateError(
              'MigrationInProgress',
              `${holder.workflow_id} is migrating database "${database}" (since ${holder.acquired_at.toISOString()}); one migration per database at a time. ` +
                `Wait for it to finish, or steer it: phasegate status --workflow-id ${holder.workflow_id}`,
              { details: { holder: holder.workflow_id, since: holder.acquired_at.toISOString() } },
            );
          }
          tookOverFrom = holder.workflow_id;
          log.warn({ database, workflowId, previous: holder.workflow_id }, 'took over the migration lease of a workflow that no longer runs');
        }
        await client.query(
          `INSERT INTO ${table} (singleton, workflow_id) VALUES (true, $1)
           ON CONFLICT (singleton) DO UPDATE SET workflow_id = EXCLUDED.workflow_id,
             acquired_at = CASE WHEN ${table}.workflow_id = EXCLUDED.workflow_id THEN ${table}.acquired_at ELSE now() END`,
          [workflowId],
        );
        return { tookOverFrom };
      }),
    );
  }

  async function releaseMigrationLease({ database, workflowId }: LeaseInput): Promise<{ released: boolean }> {
    return withClient(pools.pool(database), async (client) => {
      const exists = await client.query<{ t: string | null }>('SELECT to_regclass($1) AS t', [table]);
      if (!exists.rows[0]?.t) return { released: false };
      const { rowCount } = await client.query(`DELETE FROM ${table} WHERE workflow_id = $1`, [workflowId]);
      return { released: (rowCount ?? 0) > 0 };
    });
  }

  return { acquireMigrationLease, releaseMigrationLease };
}
