/**
 * Fault matrix cases 14 and 18: control messages that arrive too early, name the wrong gate, repeat
 * themselves, are malformed, or come from someone not on the approver list. Each has exactly its
 * specified effect (none, for all but the first real approval of a gate), and each is recorded:
 * a signal in `status` (approvals / ignoredSignals) and, for decisions, in `phasegate_approval`;
 * an Update is refused by its validator with the reason (test/workflow/failure-semantics.test.ts
 * "bad control payloads…" and test/workflow/gates.test.ts "approvals for the wrong gate…" prove
 * the single cases; these pin the whole matrix and the audit rows exactly).
 */
import { createPhasegateWorker } from '../../workers/worker';
import {
  approveSignal,
  approveUpdate,
  pauseSignal,
  resumeSignal,
  statusQuery,
  type MigrateStatus,
} from '../../workflows/messages';
import { silentLog, testConfig } from '../helpers';
import {
  accountsTable,
  eventually,
  labConfig,
  uniqueId,
  untilState,
  untilStatus,
  useFaultLab,
  versionRows,
  withWorker,
  writeMigrations,
  type FaultLab,
  type LabDatabase,
  type LabSettings,
  type MigrateHandle,
} from './harness';
import { migrate } from '../../workflows';

const lab = useFaultLab();

/** r1 (gate "deploy") adds org_id and backfills it; r2 (gate "contract") makes it NOT NULL. */
function gatedChain(): string {
  return writeMigrations({
    'r1.js': `module.exports = { id: 'r1', parent: null, message: 'add org_id',
      gate: { name: 'deploy', prompt: 'deploy the app that writes org_id' },
      upgrade(op) { op.addColumn('accounts', 'org_id', 'bigint'); },
      downgrade(op) { op.dropColumn('accounts', 'org_id'); },
      backfill: { table: 'accounts', set: { org_id: 'id % 7' }, where: 'org_id IS NULL' } };`,
    'r2.js': `module.exports = { id: 'r2', parent: 'r1', message: 'enforce org_id',
      gate: { name: 'contract', prompt: 'every writer sets org_id' },
      upgrade(op) { op.alterColumn('accounts', 'org_id', { nullable: false }); },
      downgrade(op) { op.alterColumn('accounts', 'org_id', { nullable: true }); } };`,
  });
}

/** A worker on a fixed task queue, so a case can stop it, queue messages, and start another. */
async function runWorker<T>(db: LabDatabase, dir: string, taskQueue: string, body: () => Promise<T>, settings: LabSettings = {}): Promise<T> {
  const config = testConfig(labConfig(lab as FaultLab, db, dir, taskQueue, settings));
  const { worker } = await createPhasegateWorker({ config, log: silentLog, workflowBundle: lab.bundle, taskQueue, connection: lab.env.nativeConnection });
  return worker.runUntil(body);
}

interface AuditRow {
  seq: string;
  decision: string;
  decided_by: string;
  gate: string | null;
  revision: string | null;
  accepted: boolean;
  ignored_reason: string | null;
}

async function auditRows(db: LabDatabase): Promise<AuditRow[]> {
  return db.sql<AuditRow>(`SELECT seq::text, decision, decided_by, gate, revision, accepted, ignored_reason FROM phasegate_approval ORDER BY id`);
}

/** The Update's refusal reason (the validator's message), or a failure when it was accepted. */
async function refusal(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    const e = err as { name?: string; cause?: { message?: string } };
    expect(e.name).toBe('WorkflowUpdateFailedError');
    return e.cause?.message ?? '';
  }
  throw new Error('the Update was accepted');
}

const NO_GATE = 'no gate is waiting for a decision; send approve when status shows state "awaiting-approval"';
const DUPLICATE = 'gate "deploy" already has a decision (approve by alice) that the workflow is acting on; this approve changes nothing';
const approveInvalid = (raw: unknown, why: string) => `approve input ${JSON.stringify(raw)} is not valid: ${why}`;
const pauseInvalid = (raw: unknown, why: string) => `pause input ${JSON.stringify(raw)} is not valid: ${why}`;

test('fault 14: early, wrong-gate, duplicate and malformed signals and Updates have exactly their effect, each recorded', async () => {
  const db = await lab.database();
  await accountsTable(db, 30);
  const dir = gatedChain();
  const taskQueue = uniqueId('fault14');
  const workflowId = uniqueId('migrate-app');
  const start = () => lab.env.client.workflow.start(migrate, { workflowId, taskQueue, args: [{ database: 'app', target: 'head', direction: 'upgrade' }] });

  let handle!: MigrateHandle;
  let final!: MigrateStatus;
  await runWorker(db, dir, taskQueue, async () => {
    handle = await start();
    // Before the gate: the signal is recorded and ignored, the Update refused with the same reason.
    await handle.signal(approveSignal, { by: 'alice' });
    expect(await refusal(handle.executeUpdate(approveUpdate, { args: [{ by: 'alice' }] }))).toBe(NO_GATE);
    const waiting = await untilState(handle, 'awaiting-approval');
    expect(waiting.gate).toMatchObject({ name: 'deploy', revision: 'r1' });
    expect(waiting.approvals).toHaveLength(1);

    // The wrong gate.
    const wrongGate = 'this approve names gate "contract", but the workflow waits at gate "deploy"';
    await handle.signal(approveSignal, { by: 'alice', gate: 'contract' });
    expect(await refusal(handle.executeUpdate(approveUpdate, { args: [{ by: 'alice', gate: 'contract' }] }))).toBe(wrongGate);

    // Malformed approvals: a string, an array, an extra key, a NUL.
    const malformed: Array<[unknown, string]> = [
      ['junk', 'expected an object like {"by":"alice"}'],
      [['alice'], 'expected an object like {"by":"alice"}'],
      [{ by: 'alice', extra: 1 }, 'unknown field(s) "extra"'],
      [{ by: 'al\u0000ice' }, '"by" must not contain a NUL (\\u0000) character'],
    ];
    for (const [raw, why] of malformed) {
      await handle.signal('approve', raw);
      expect(await refusal(handle.executeUpdate<unknown, [unknown]>('approve', { args: [raw] }))).toBe(approveInvalid(raw, why));
    }

    // Pause / resume, each twice: the second of each changes nothing and says so — a signal is
    // recorded as ignored, an Update is answered (not refused: the caller got what it asked for).
    await handle.signal(pauseSignal, {});
    await untilStatus(handle, 'paused', (s) => s.control.paused);
    await handle.signal(pauseSignal, {});
    expect(await handle.executeUpdate<{ message: string }, [unknown]>('pause', { args: [{}] })).toMatchObject({ accepted: true, message: 'already paused; send resume to continue' });
    await handle.signal(resumeSignal, {});
    await untilStatus(handle, 'resumed', (s) => !s.control.paused);
    await handle.signal(resumeSignal, {});
    expect(await handle.executeUpdate<{ message: string }, [unknown]>('resume', { args: [{}] })).toMatchObject({ accepted: true, message: expect.stringMatching(/^not paused/) });
    // Malformed pause payloads on both paths.
    const badPause: Array<[unknown, string]> = [
      ['junk', 'expected an object like {}'],
      [[1], 'expected an object like {}'],
      [{ extra: 1 }, 'unknown field(s) "extra"'],
      [{ by: 'b\u0000b' }, '"by" must not contain a NUL (\\u0000) character'],
    ];
    for (const [raw, why] of badPause) {
      await handle.signal('pause', raw);
      expect(await refusal(handle.executeUpdate<unknown, [unknown]>('pause', { args: [raw] }))).toBe(pauseInvalid(raw, why));
    }
    const s = await untilStatus(handle, 'every ignored signal recorded', (st) => st.ignoredSignals.length === 6 && st.approvals.length === 6);
    expect(s.state).toBe('awaiting-approval');
    expect(s.control).toEqual({ paused: false, throttle: {}, version: 2 });
    expect(s.ignoredSignals.map((i) => [i.signal, i.reason])).toEqual([
      ['pause', 'already paused; send resume to continue'],
      ['resume', 'not paused: the backfill is already running (or starts running)'],
      ...badPause.map(([raw, why]) => ['pause', pauseInvalid(raw, why)]),
    ]);
  });

  // Two approvals of the same gate that reach the workflow together (queued while no worker ran):
  // the first opens the gate, the second changes nothing and is recorded as such.
  await handle.signal(approveSignal, { by: 'alice', comment: 'first' });
  await handle.signal(approveSignal, { by: 'alice', comment: 'again' });
  await runWorker(db, dir, taskQueue, async () => {
    const atContract = await untilStatus(handle, 'gate "contract"', (st) => st.gate?.name === 'contract');
    expect(atContract.approvals.slice(6).map((a) => [a.comment, a.accepted, a.ignoredReason])).toEqual([
      ['first', true, null],
      ['again', false, DUPLICATE],
    ]);
    // A late approval of the gate already passed: recorded and ignored; the Update refused.
    const passed = 'this approve names gate "deploy", but the workflow waits at gate "contract"';
    await handle.signal(approveSignal, { by: 'alice', gate: 'deploy' });
    expect(await refusal(handle.executeUpdate(approveUpdate, { args: [{ by: 'alice', gate: 'deploy' }] }))).toBe(passed);
    await untilStatus(handle, 'the late approval recorded', (st) => st.approvals.length === 9);
    expect((await handle.query(statusQuery)).gate?.name).toBe('contract');
    await handle.signal(approveSignal, { by: 'bob', gate: 'contract' });
    expect((await handle.result()).outcome).toBe('done');
    final = await handle.query(statusQuery);
  });

  const expected: Array<[string, string | null, string | null, boolean, string | null]> = [
    ['alice', null, null, false, NO_GATE],
    ['alice', 'contract', 'r1', false, 'this approve names gate "contract", but the workflow waits at gate "deploy"'],
    ['', 'deploy', 'r1', false, approveInvalid('junk', 'expected an object like {"by":"alice"}')],
    ['', 'deploy', 'r1', false, approveInvalid(['alice'], 'expected an object like {"by":"alice"}')],
    ['alice', 'deploy', 'r1', false, approveInvalid({ by: 'alice', extra: 1 }, 'unknown field(s) "extra"')],
    ['al\uFFFDice', 'deploy', 'r1', false, approveInvalid({ by: 'al\u0000ice' }, '"by" must not contain a NUL (\\u0000) character')],
    ['alice', 'deploy', 'r1', true, null],
    ['alice', 'deploy', 'r1', false, DUPLICATE],
    ['alice', 'deploy', 'r2', false, 'this approve names gate "deploy", but the workflow waits at gate "contract"'],
    ['bob', 'contract', 'r2', true, null],
  ];
  expect(final.decisions).toBe(10);
  expect(final.approvals.map((a) => [a.by, a.gate, a.revision, a.accepted, a.ignoredReason])).toEqual(expected);
  expect(final.auditErrors).toEqual([]);
  const rows = await eventually('ten audit rows', async () => {
    const r = await auditRows(db).catch(() => []);
    return r.length === 10 ? r : undefined;
  });
  expect(rows.map((r) => [r.decided_by, r.gate, r.revision, r.accepted, r.ignored_reason])).toEqual(expected);
  expect(rows.map((r) => r.seq)).toEqual(['1', '2', '3', '4', '5', '6', '7', '8', '9', '10']);
  expect(rows.every((r) => r.decision === 'approve')).toBe(true);
  // Exactly one real effect per gate: the chain is applied once, the backfill ran once.
  expect(await versionRows(db)).toEqual({ version: ['r2'], pending: [] });
  expect(await db.sql(`SELECT count(*)::int AS n FROM accounts WHERE org_id IS DISTINCT FROM id % 7`)).toEqual([{ n: 0 }]);
});

test('fault 18: with approvers [alice], mallory’s approval (signal and Update) is recorded and opens nothing; alice’s opens the gate', async () => {
  const db = await lab.database();
  await accountsTable(db, 10);
  const dir = writeMigrations({
    'r1.js': `module.exports = { id: 'r1', parent: null, message: 'add note',
      gate: { name: 'deploy', prompt: 'ready?' },
      upgrade(op) { op.addColumn('accounts', 'note', 'text'); }, downgrade(op) { op.dropColumn('accounts', 'note'); } };`,
  });
  const notApprover = '"mallory" is not an approver of gate "deploy" (approvers: alice)';
  await withWorker(
    lab,
    db,
    dir,
    async (w) => {
      const handle = await w.start();
      const waiting = await untilState(handle, 'awaiting-approval');
      expect(waiting.gate?.approvers).toEqual(['alice']);

      await handle.signal(approveSignal, { by: 'mallory', comment: 'via signal' });
      // The Update is refused with the reason, and (unlike a malformed one) still recorded: an
      // unauthorised approval attempt must leave an audit trail whichever way it was sent.
      expect(await refusal(handle.executeUpdate(approveUpdate, { args: [{ by: 'mallory', comment: 'via update' }] }))).toBe(notApprover);
      const after = await untilStatus(handle, 'both recorded', (s) => s.approvals.length === 2);
      expect(after.state).toBe('awaiting-approval');
      expect(after.gate?.name).toBe('deploy');
      expect(after.approvals.map((a) => [a.by, a.comment, a.accepted, a.ignoredReason])).toEqual([
        ['mallory', 'via signal', false, notApprover],
        ['mallory', 'via update', false, notApprover],
      ]);
      // Nothing was applied behind the gate.
      expect(await db.sql(`SELECT column_name FROM information_schema.columns WHERE table_name = 'accounts' ORDER BY ordinal_position`)).toEqual([
        { column_name: 'id' },
        { column_name: 'email' },
      ]);
      expect(await versionRows(db)).toEqual({ version: [], pending: [] });

      const answer = await handle.executeUpdate(approveUpdate, { args: [{ by: 'alice' }] });
      expect(answer).toMatchObject({ accepted: true, verb: 'approve' });
      expect((await handle.result()).outcome).toBe('done');
      const final = await handle.query(statusQuery);
      expect(final.approvals.map((a) => [a.by, a.accepted])).toEqual([
        ['mallory', false],
        ['mallory', false],
        ['alice', true],
      ]);
    },
    { database: { approvers: ['alice'] } },
  );
  const rows = await eventually('three audit rows', async () => {
    const r = await auditRows(db).catch(() => []);
    return r.length === 3 ? r : undefined;
  });
  expect(rows.map((r) => [r.decided_by, r.gate, r.revision, r.accepted, r.ignored_reason])).toEqual([
    ['mallory', 'deploy', 'r1', false, notApprover],
    ['mallory', 'deploy', 'r1', false, notApprover],
    ['alice', 'deploy', 'r1', true, null],
  ]);
  expect(await versionRows(db)).toEqual({ version: ['r1'], pending: [] });
});
