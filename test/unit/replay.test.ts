/**
 * Fault 12, non-determinism: every history recorded by `npm run record:replay` (real migrations of
 * every pattern, test/replay/histories) must replay on the current workflow code. A run that is open
 * when a new phasegate is deployed — waiting at a gate for days, paused, failed — replays its
 * history on the new code; a change that does not fit the history wedges it. No server needed.
 *
 * The guard is shown to bite: a plausible change to `migrate` (one more activity before each step)
 * without patched() fails replaying with a DeterminismViolationError; behind patched() all replay.
 */
import { Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';
import { bundleWorkflows } from '../helpers';
import { bundleWorkflowVariant, confirmLeaseBeforeSteps, historyFromFile, readRecordedHistories, type RecordedHistory } from '../../scripts/record-replay-histories';

const recorded = readRecordedHistories();

let current: WorkflowBundleWithSourceMap;
let unpatched: WorkflowBundleWithSourceMap;
let patched: WorkflowBundleWithSourceMap;

beforeAll(async () => {
  [current, unpatched, patched] = await Promise.all([
    bundleWorkflows(),
    bundleWorkflowVariant(confirmLeaseBeforeSteps({ patched: false })),
    bundleWorkflowVariant(confirmLeaseBeforeSteps({ patched: true })),
  ]);
}, 180_000);

/** Replays each history on `bundle`, one at a time, and returns the outcome by file name. */
async function replayAll(bundle: WorkflowBundleWithSourceMap, histories: Array<{ file: string } & RecordedHistory>): Promise<Map<string, Error | undefined>> {
  const outcomes = new Map<string, Error | undefined>();
  const input = histories.map((h) => ({ workflowId: h.workflowId, history: historyFromFile(h.history) }));
  let i = 0;
  for await (const result of Worker.runReplayHistories({ workflowBundle: bundle }, input)) {
    outcomes.set(histories[i++].file, result.error);
  }
  expect(i).toBe(histories.length);
  return outcomes;
}

const describeError = (err: Error | undefined) => (err ? `${err.name}: ${err.message}` : null);

test('fault 12: a history is recorded for every pattern, with continue-as-new chains of migrate and backfill', () => {
  const patterns = new Set(recorded.map((r) => r.pattern));
  expect([...patterns].sort()).toEqual(
    [
      'abandon',
      'backfill-pause-resume-throttle',
      'check-failed-retry',
      'continue-as-new-backfill',
      'continue-as-new-migrate',
      'downgrade',
      'failure-rollback',
      'gate-approve',
      'gate-reject-rollback',
      'upgrade',
    ].sort(),
  );
  const runs = (pattern: string, type: string) => recorded.filter((r) => r.pattern === pattern && r.workflowType === type).length;
  expect(runs('continue-as-new-migrate', 'migrate')).toBeGreaterThanOrEqual(3);
  expect(runs('continue-as-new-backfill', 'backfill')).toBeGreaterThanOrEqual(2);
  expect(runs('backfill-pause-resume-throttle', 'backfill')).toBeGreaterThanOrEqual(1);
  // Every file is a real run: it starts with the workflow's start event.
  for (const r of recorded) {
    const history = historyFromFile(r.history);
    expect([r.file, history.events?.[0]?.workflowExecutionStartedEventAttributes?.workflowType?.name]).toEqual([r.file, r.workflowType]);
  }
});

describe('every recorded history replays on the current workflow code', () => {
  let outcomes: Map<string, Error | undefined>;
  beforeAll(async () => {
    outcomes = await replayAll(current, recorded);
  }, 180_000);

  test.each(recorded.map((r) => r.file))('fault 12: %s replays without non-determinism', (file) => {
    // The file name in the expectation names the history that no longer replays.
    expect({ file, error: describeError(outcomes.get(file)) }).toEqual({ file, error: null });
  });
});

test('fault 12: the guard bites: the same histories fail on a changed workflow (an extra activity before each step, no patched())', async () => {
  const gate = recorded.find((r) => r.file === 'gate-approve.json');
  expect(gate).toBeDefined();
  const replay = Worker.runReplayHistory({ workflowBundle: unpatched }, historyFromFile(gate!.history), gate!.workflowId);
  await expect(replay).rejects.toBeInstanceOf(DeterminismViolationError);
  await expect(Worker.runReplayHistory({ workflowBundle: unpatched }, historyFromFile(gate!.history), gate!.workflowId)).rejects.toThrow(/nondetermin/i);
  // Every migrate run that applied a step breaks; the backfill children (other code) do not.
  const outcomes = await replayAll(unpatched, recorded);
  const broken = [...outcomes].filter(([, err]) => err !== undefined).map(([file]) => file);
  for (const file of ['upgrade.json', 'downgrade.json', 'gate-approve.json', 'gate-reject-rollback.json', 'failure-rollback.json', 'abandon.json']) expect(broken).toContain(file);
  expect(broken.filter((file) => recorded.find((r) => r.file === file)?.workflowType !== 'migrate')).toEqual([]);
  for (const file of broken) expect(outcomes.get(file)).toBeInstanceOf(DeterminismViolationError);
}, 120_000);

test('fault 12: the same change behind patched() replays every recorded history', async () => {
  const outcomes = await replayAll(patched, recorded);
  expect([...outcomes].map(([file, err]) => [file, describeError(err)])).toEqual(recorded.map((r) => [r.file, null]));
}, 120_000);
