/**
 * Checks between phases: a query selecting the rows that violate an expectation; it passes when
 * there are none. Runs read-only, under the configured statement_timeout.
 */
import type { PhasegateConfig } from '../lib/config';
import type { CheckSpec } from '../lib/revision';
import { withClient, withTransaction, type DatabasePools } from './db';

export interface RunCheckInput {
  database: string;
  revision: string;
  check: CheckSpec;
}

export interface CheckResult {
  name: string;
  passed: boolean;
  failingCount: number;
  /** Up to 10 offending rows, as the query returned them. */
  sample: Record<string, unknown>[];
}

const SAMPLE_SIZE = 10;

export function createCheckActivities({ config, pools }: { config: PhasegateConfig; pools: DatabasePools }) {
  async function runCheck({ database, check }: RunCheckInput): Promise<CheckResult> {
    return withClient(pools.pool(database), (client) =>
      withTransaction(client, async () => {
        await client.query('SET TRANSACTION READ ONLY');
        await client.query(`SET LOCAL statement_timeout = ${Number(config.defaults.statementTimeoutMs)}`);
        const query = check.failingRows.trim().replace(/;\s*$/, '');
        const count = await client.query<{ n: string }>(`SELECT count(*) AS n FROM (${query}) AS failing`);
        const failingCount = Number(count.rows[0].n);
        const sample = failingCount > 0 ? (await client.query(`SELECT * FROM (${query}) AS failing LIMIT ${SAMPLE_SIZE}`)).rows : [];
        return { name: check.name, passed: failingCount === 0, failingCount, sample: JSON.parse(JSON.stringify(sample)) };
      }),
    );
  }
  return { runCheck };
}
