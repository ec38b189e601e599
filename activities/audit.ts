/**
 * The approval audit: every decision sent to a gate (accepted or ignored, and why) is stored in
 * `phasegate_approval` in the target database, next to the version table.
 */
import type { PhasegateConfig } from '../lib/config';
import { quoteIdent } from '../lib/sql';
import type { DatabasePools } from './db';
import { withClient } from './db';

export interface GateDecision {
  workflowId: string;
  runId: string;
  database: string;
  revision: string | null;
  gate: string | null;
  /** A gate decision, or a person's answer to a stopped migration (retry, rollback, abandon). */
  decision: 'approve' | 'reject' | 'expire' | 'retry' | 'rollback' | 'abandon';
  by: string;
  comment: string | null;
  accepted: boolean;
  ignoredReason: string | null;
  /** Workflow time of the decision (ISO 8601). */
  at: string;
  /** The decision's number within its migration (workflow id): what makes a retried insert a no-op. */
  seq: number;
}

export function approvalTableName(config: PhasegateConfig): string {
  return `${quoteIdent(config.migrations.versionTableSchema)}.${quoteIdent('phasegate_approval')}`;
}

export function createAuditActivities({ config, pools }: { config: PhasegateConfig; pools: DatabasePools }) {
  async function recordDecision(decision: GateDecision): Promise<void> {
    const table = approvalTableName(config);
    await withClient(pools.pool(decision.database), async (client) => {
      await client.query(`CREATE TABLE IF NOT EXISTS ${table} (
        id bigserial PRIMARY KEY,
        workflow_id text NOT NULL,
        run_id text NOT NULL,
        database text NOT NULL,
        revision text,
        gate text,
        decision text NOT NULL,
        decided_by text NOT NULL,
        comment text,
        accepted boolean NOT NULL,
        ignored_reason text,
        decided_at timestamptz NOT NULL,
        seq bigint NOT NULL,
        -- A retried activity must not write the same decision twice; two equal decisions in one
        -- workflow task (same workflow time) are still two rows.
        UNIQUE (workflow_id, seq)
      )`);
      await client.query(
        `INSERT INTO ${table} (workflow_id, run_id, database, revision, gate, decision, decided_by, comment, accepted, ignored_reason, decided_at, seq)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING`,
        [
          decision.workflowId,
          decision.runId,
          decision.database,
          decision.revision,
          decision.gate,
          decision.decision,
          decision.by,
          decision.comment,
          decision.accepted,
          decision.ignoredReason,
          decision.at,
          decision.seq,
        ],
      );
    });
  }
  return { recordDecision };
}
