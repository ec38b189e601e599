/**
 * The migration lease: one migration per database, whatever its workflow id. Temporal already keeps
 * one run per workflow id; the lease row in the target database covers a second migration started
 * under another id (`-w migrate-demo-2`, or the UI's random id). A lease whose owner workflow is no
 * longer running (terminated, timed out) is taken over: the lease can never wedge a database.
 * The row names the owner's Temporal namespace too, and the owner is looked up there: workers of
 * two namespaces (two teams, two configs) may serve the same database, and a workflow of another
 * namespace is "not found" in this one although it runs.
 */
import { Context } from '@temporalio/activity';
import { Client } from '@temporalio/client';
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

/** Whether a workflow is still running in `namespace`, asked of Temporal; injectable so tests can run without a worker. */
export type WorkflowRunning = (workflowId: string, namespace: string) => Promise<boolean>;

/** The namespace of the workflow this activity runs for; undefined outside an activity. */
function currentNamespace(): string | undefined {
  try {
    const info = Context.current().info;
    return info.workflowNamespace ?? info.activityNamespace;
  } catch {
    return undefined;
  }
}

async function runningInTemporal(workflowId: string, namespace: string): Promise<boolean> {
  const own = Context.current().client;
  // The worker's client serves its own namespace only; another namespace gets a client on the same connection.
  const client = namespace === own.options.namespace ? own : new Client({ connection: own.connection, namespace });
  try {
    const description = await client.workflow.getHandle(workflowId).describe();
    return description.status.name === 'RUNNING';
  } catch (err) {
    if ((err as Error).name === 'WorkflowNotFoundError') return false;
    throw new PhasegateError(
      'TemporalUnavailable',
      `could not ask Temporal whether ${workflowId} (namespace ${namespace}) still runs: ${(err as Error).message}`,
      { retryable: true },
    );
  }
}

/** `workflowId`, qualified by its namespace when that is not the reader's own. */
const ownerName = (workflowId: string, namespace: string | null, own: string | undefined) =>
  namespace && namespace !== own ? `${workflowId} (namespace ${namespace})` : workflowId;

/** Refuses a step of a migration that no longer holds its database's lease. */
export async function assertLeaseOwner(client: pg.ClientBase, config: PhasegateConfig, owner: string): Promise<void> {
  const table = leaseTableName(config);
  const exists = await client.query<{ t: string | null }>('SELECT to_regclass($1) AS t', [table]);
  // to_jsonb: a lease row written before the namespace column existed reads as namespace null.
  const row = exists.rows[0]?.t
    ? (await client.query<{ workflow_id: string; namespace: string | null }>(`SELECT l.workflow_id, to_jsonb(l)->>'namespace' AS namespace FROM ${table} l`)).rows[0]
    : undefined;
  const namespace = currentNamespace();
  const holder = row ? ownerName(row.workflow_id, row.namespace, namespace) : undefined;
  if (row?.workflow_id === owner && (!row.namespace || !namespace || row.namespace === namespace)) return;
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
        // A table from before the namespace column gets it; only then, so no ACCESS EXCLUSIVE lock otherwise.
        const column = await client.query(`SELECT 1 FROM pg_attribute WHERE attrelid = $1::regclass AND attname = 'namespace' AND NOT attisdropped`, [table]);
        if (column.rows.length === 0) await client.query(`ALTER TABLE ${table} ADD COLUMN IF NOT EXISTS namespace text`);
        const namespace = currentNamespace() ?? config.temporal.namespace;
        const { rows } = await client.query<{ workflow_id: string; namespace: string | null; acquired_at: Date }>(
          `SELECT workflow_id, namespace, acquired_at FROM ${table} FOR UPDATE`,
        );
        const holder = rows[0];
        // A row without a namespace was written before the column existed, by a worker of this namespace.
        const holderNamespace = holder?.namespace ?? namespace;
        let tookOverFrom: string | null = null;
        if (holder && (holder.workflow_id !== workflowId || holderNamespace !== namespace)) {
          const name = ownerName(holder.workflow_id, holderNamespace, namespace);
          if (await workflowRunning(holder.workflow_id, holderNamespace)) {
            throw new PhasegateError(
              'MigrationInProgress',
              `${name} is migrating database "${database}" (since ${holder.acquired_at.toISOString()}); one migration per database at a time. ` +
                `Wait for it to finish, or steer it: phasegate status --workflow-id ${holder.workflow_id}`,
              { details: { holder: holder.workflow_id, namespace: holderNamespace, since: holder.acquired_at.toISOString() } },
            );
          }
          tookOverFrom = holder.workflow_id;
          log.warn({ database, workflowId, namespace, previous: holder.workflow_id, previousNamespace: holderNamespace }, 'took over the migration lease of a workflow that no longer runs');
        }
        await client.query(
          `INSERT INTO ${table} (singleton, workflow_id, namespace) VALUES (true, $1, $2)
           ON CONFLICT (singleton) DO UPDATE SET workflow_id = EXCLUDED.workflow_id, namespace = EXCLUDED.namespace,
             acquired_at = CASE WHEN ${table}.workflow_id = EXCLUDED.workflow_id AND ${table}.namespace IS NOT DISTINCT FROM EXCLUDED.namespace
               THEN ${table}.acquired_at ELSE now() END`,
          [workflowId, namespace],
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
