/**
 * The approval audit: every decision sent to a gate (accepted or ignored, and why) is stored in
 * `phasegate_approval` in the target database, next to the version table.
 */
import type { PhasegateConfig } from '../lib/config';
import { approvalTableName, createApprovalTable } from '../lib/version-table';
import type { DatabasePools } from './db';
import { withClient } from './db';

export interface GateDecision {
  workflowId: string;
  runId: string;
  database: string;
  revision: string | null;
  gate: string | null;
  /** A gate decision, a person's answer to a stopped migration (retry, rollback, abandon), or a soak ended early. */
  decision: 'approve' | 'reject' | 'expire' | 'retry' | 'rollback' | 'abandon' | 'skipSoak';
  by: string;
  comment: string | null;
  accepted: boolean;
  ignoredReason: string | null;
  /** Workflow time of the decision (ISO 8601). */
  at: string;
  /** The decision's number within its migration (workflow id): what makes a retried insert a no-op. */
  seq: number;
}

export { approvalTableName };

export function createAuditActivities({ config, pools }: { config: PhasegateConfig; pools: DatabasePools }) {
  async function recordDecision(decision: GateDecision): Promise<void> {
    const table = approvalTableName(config);
    await withClient(pools.pool(decision.database), async (client) => {
      await client.query(createApprovalTable(config).sql);
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
