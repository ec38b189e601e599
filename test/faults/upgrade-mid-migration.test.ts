/**
 * Fault 12, upgrading phasegate mid-migration: a migration waits at a gate (for days, in real life)
 * while a new phasegate with a changed `migrate` is deployed. The change (re-check the migration
 * lease before each step: one more activity, one more status field) made without patched() wedges
 * the open run — its workflow task fails as non-deterministic, nothing happens to the database —
 * and the same change behind patched('confirm-lease-before-steps') lets it finish on the new code.
 */
import { temporal } from '@temporalio/proto';
import { Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';
import { bundleWorkflowVariant, CONFIRM_LEASE_PATCH, confirmLeaseBeforeSteps } from '../../scripts/record-replay-histories';
import { migrate } from '../../workflows';
import { approveSignal, statusQuery, type MigrateStatus } from '../../workflows/messages';
import { createPhasegateWorker } from '../../workers/worker';
import { silentLog, testConfig } from '../helpers';
import { accountsTable, eventually, labConfig, uniqueId, untilState, useFaultLab, versionRows, writeMigrations } from './harness';

const lab = useFaultLab();

let unpatched: WorkflowBundleWithSourceMap;
let patched: WorkflowBundleWithSourceMap;
beforeAll(async () => {
  [unpatched, patched] = await Promise.all([bundleWorkflowVariant(confirmLeaseBeforeSteps({ patched: false })), bundleWorkflowVariant(confirmLeaseBeforeSteps({ patched: true }))]);
}, 180_000);

const NON_DETERMINISTIC = temporal.api.enums.v1.WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_NON_DETERMINISTIC_ERROR;

test('fault 12: a migration waiting at a gate across an upgrade: the change without patched() fails its workflow task, behind patched() it finishes on the new code', async () => {
  const db = await lab.database();
  await accountsTable(db, 20);
  const dir = writeMigrations({
    'u1.js': `module.exports = { id: 'u1', parent: null, message: 'add a',
      upgrade(op) { op.addColumn('accounts', 'a', 'int'); }, downgrade(op) { op.dropColumn('accounts', 'a'); } };`,
    'u2.js': `module.exports = { id: 'u2', parent: 'u1', message: 'add b', gate: { name: 'deploy', prompt: 'deploy the app that writes b' },
      upgrade(op) { op.addColumn('accounts', 'b', 'int'); }, downgrade(op) { op.dropColumn('accounts', 'b'); } };`,
  });
  // One task queue for every "deployment": each worker below replaces the one before it.
  const taskQueue = uniqueId('upgrade');
  const config = testConfig(labConfig(lab, db, dir, taskQueue));
  const deployed = async <T>(workflowBundle: WorkflowBundleWithSourceMap, body: () => Promise<T>): Promise<T> => {
    const { worker } = await createPhasegateWorker({ config, log: silentLog, workflowBundle, taskQueue, connection: lab.env.nativeConnection });
    return worker.runUntil(body);
  };
  const columns = async () =>
    (await db.sql<{ c: string }>(`SELECT column_name AS c FROM information_schema.columns WHERE table_name = 'accounts' ORDER BY ordinal_position`)).map((r) => r.c);
  const leaseActivities = (events: temporal.api.history.v1.IHistoryEvent[]) =>
    events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'acquireMigrationLease').length;

  // ── the current phasegate: the migration applies u1 and waits at the gate; then it is shut down ──
  const handle = await deployed(lab.bundle, async () => {
    const h = await lab.env.client.workflow.start(migrate, { workflowId: uniqueId('migrate-app'), taskQueue, args: [{ database: 'app', target: 'head', direction: 'upgrade' }] });
    await untilState(h, 'awaiting-approval');
    return h;
  });
  expect(await versionRows(db)).toEqual({ version: ['u1'], pending: [] });
  const leftByOldCode = await handle.fetchHistory();
  expect(leaseActivities(leftByOldCode.events ?? [])).toBe(1);

  // ── the changed phasegate without patched(): the approval's workflow task fails, nothing moves ──
  await deployed(unpatched, async () => {
    await handle.signal(approveSignal, { by: 'alice' });
    const failed = await eventually('a failed workflow task', async () => {
      const events = (await handle.fetchHistory()).events ?? [];
      return events.find((e) => e.workflowTaskFailedEventAttributes)?.workflowTaskFailedEventAttributes;
    }, 30_000).catch(async (err: Error) => {
      const events = (await handle.fetchHistory()).events ?? [];
      throw new Error(`${err.message}; history: ${events.map((e) => `${String(e.eventId)} ${temporal.api.enums.v1.EventType[e.eventType ?? 0]}`).join(', ')}`);
    });
    expect(failed.cause).toBe(NON_DETERMINISTIC);
    expect(failed.failure?.message).toMatch(/nondetermin/i);
  });
  // The run is not failed (Temporal keeps retrying the task, waiting for a worker that fits), and
  // the database is exactly where the old code left it.
  expect((await handle.describe()).status.name).toBe('RUNNING');
  expect(await versionRows(db)).toEqual({ version: ['u1'], pending: [] });
  expect(await columns()).toEqual(['id', 'email', 'a']);

  // The same contrast offline, against the history the old code wrote (what test/unit/replay.test.ts checks).
  await expect(Worker.runReplayHistory({ workflowBundle: unpatched }, leftByOldCode, handle.workflowId)).rejects.toBeInstanceOf(DeterminismViolationError);
  await expect(Worker.runReplayHistory({ workflowBundle: patched }, leftByOldCode, handle.workflowId)).resolves.toBeUndefined();

  // ── the changed phasegate behind patched(): the approval lands, and the new code runs from here ──
  const status = await deployed(patched, async () => {
    expect(await handle.result()).toMatchObject({ outcome: 'done', applied: ['u1', 'u2'] });
    return (await handle.query(statusQuery)) as MigrateStatus & { leaseConfirmedAt?: string };
  });
  // The new behaviour ran for u2 (live, after the gate opened), never for u1 (replayed ground).
  expect(status.leaseConfirmedAt).toEqual(expect.any(String));
  expect(status.approvals.map((a) => [a.decision, a.by, a.accepted])).toEqual([['approve', 'alice', true]]);
  const events = (await handle.fetchHistory()).events ?? [];
  const markers = events.filter((e) => e.markerRecordedEventAttributes?.markerName === 'core_patch');
  expect(markers).toHaveLength(1);
  const markerData = Object.values(markers[0].markerRecordedEventAttributes!.details ?? {}).flatMap((p) => (p.payloads ?? []).map((x) => Buffer.from(x.data ?? []).toString()));
  expect(markerData.join(' ')).toContain(CONFIRM_LEASE_PATCH);
  // One lease activity at the start (old code), one before u2 (new code); none before u1, which the
  // old code had already applied without it.
  expect(leaseActivities(events)).toBe(2);
  expect(events.filter((e) => e.workflowTaskFailedEventAttributes)).toHaveLength(1);
  expect(await versionRows(db)).toEqual({ version: ['u2'], pending: [] });
  expect(await columns()).toEqual(['id', 'email', 'a', 'b']);
});
