/**
 * A Temporal time-skipping test environment (the Java test server, lib/local/temporal-test-server.ts)
 * for tests that wait hours of workflow time in seconds: one env per test file. phasegate's search
 * attributes are registered first (an upsert of an unregistered one fails the workflow task, and
 * time skipping stops for that env). List queries do not work on this server.
 *
 * Time skips while the test awaits a workflow's result or `env.sleep(…)`, and only when no
 * activity runs; queries alone do not move the clock.
 */
import { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { ensureTemporalTestServer } from '../../lib/local/temporal-test-server';
import { searchAttributeKeys } from '../../workflows/search-attributes';
import { bundleWorkflows } from '../helpers';

/** temporal.api.enums.v1.IndexedValueType, by the SDK's SearchAttributeType names. */
const INDEXED_VALUE_TYPE: Record<string, number> = { TEXT: 1, KEYWORD: 2, INT: 3, DOUBLE: 4, BOOL: 5, DATETIME: 6, KEYWORD_LIST: 7 };

export interface TimeSkipping {
  env: TestWorkflowEnvironment;
  bundle: WorkflowBundleWithSourceMap;
}

export async function startTimeSkipping(): Promise<TimeSkipping> {
  const path = ensureTemporalTestServer((line) => process.stderr.write(`[time-skipping] ${line}\n`));
  const env = await TestWorkflowEnvironment.createTimeSkipping({ server: { executable: { type: 'existing-path', path } } });
  try {
    // Read at test time: whatever keys workflows/search-attributes.ts lists now.
    const searchAttributes = Object.fromEntries(
      searchAttributeKeys.map((key) => {
        const type = INDEXED_VALUE_TYPE[key.type];
        if (type === undefined) throw new Error(`search attribute ${key.name} has type ${key.type}, unknown to test/support/time-skipping.ts`);
        return [key.name, type];
      }),
    );
    await env.connection.operatorService.addSearchAttributes({ namespace: env.namespace ?? 'default', searchAttributes });
    return { env, bundle: await bundleWorkflows() };
  } catch (err) {
    await env.teardown();
    throw err;
  }
}
