/**
 * phasegate's workflow-side metrics, through the SDK's workflow metric meter. Deterministic
 * workflow code: emitting a metric is a sink call, not a command, so it never changes a history,
 * and the SDK drops it while the workflow replays (a replayed gate is not reported again).
 *
 * The values are kept by the worker process that runs the workflow task and show up on its
 * Prometheus endpoint (lib/metrics.ts) with the SDK's tags (`namespace`, `taskQueue`,
 * `workflowType`: camelCase on custom metrics) plus `database`.
 */
import { metricMeter } from '@temporalio/workflow';

export const GATES_WAITING = 'phasegate_gates_waiting';

function setGateWaiting(database: string, waiting: boolean): void {
  metricMeter.createGauge(GATES_WAITING, 'int', undefined, 'migrations waiting at a gate for a decision (1) or not (0)').set(waiting ? 1 : 0, { database });
}

/**
 * Runs a gate's wait with `phasegate_gates_waiting{database}` at 1, and back at 0 however the wait
 * ends (approved, rejected, abandoned, cancelled, continued as new). A worker that picks the
 * workflow up mid-wait (after a restart) replays the wait silently: until the decision, only the
 * PhasegateState search attribute (`awaiting-approval`) and `phasegate status` say it waits.
 */
export async function whileAtGate<T>(database: string, wait: () => Promise<T>): Promise<T> {
  setGateWaiting(database, true);
  try {
    return await wait();
  } finally {
    setGateWaiting(database, false);
  }
}
