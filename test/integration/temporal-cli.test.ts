/**
 * End to end with the real `temporal` CLI binary (issue 10, item 9): a whole gated, backfilling
 * migration driven only by `temporal workflow start|query|describe|metadata|signal|update execute|result`,
 * the way an operator without phasegate's own CLI would (README "Driving a migration with the
 * temporal CLI"). The worker runs in-process (the fault-test harness); every message to the workflow
 * goes through the binary, and the end state is checked in PostgreSQL.
 */
import { execFile } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import path from 'node:path';
import { ensureTemporalCli } from '../../lib/local/temporal-cli';
import type { BackfillProgress, MigrateStatus } from '../../workflows/messages';
import { eventually, sleep, useFaultLab, versionRows, withWorker, writeMigrations, type LabDatabase } from '../faults/harness';

const lab = useFaultLab();
const root = path.resolve(__dirname, '../..');
const temporal = ensureTemporalCli(root, () => undefined).path;

/** PHASEGATE_CLI_TRANSCRIPT=<file>: every command run and its output, appended (for the README). */
const transcript = process.env.PHASEGATE_CLI_TRANSCRIPT;

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `temporal <args> --address <dev server> --namespace default` (no shell); never rejects. */
function cli(args: string[], timeoutMs = 30_000): Promise<CliResult> {
  const full = [...args, '--address', lab.env.address, '--namespace', 'default'];
  return new Promise((resolve) =>
    execFile(temporal, full, { timeout: timeoutMs }, (error, stdout, stderr) => {
      const code = error ? Number((error as { code?: unknown }).code ?? 1) || 1 : 0;
      if (transcript) appendFileSync(transcript, `\n$ temporal ${args.join(' ')}   # exit ${code}\n${stdout}${stderr}`);
      resolve({ code, stdout, stderr });
    }),
  );
}

/** Like `cli`, but a non-zero exit is a test failure that shows the command and its output. */
async function ok(args: string[]): Promise<string> {
  const r = await cli(args);
  if (r.code !== 0) throw new Error(`temporal ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r.stdout;
}

/** `temporal workflow query -o json` prints {"queryResult":[<value>]}. */
async function query<T>(workflowId: string, name: string): Promise<T> {
  const out = JSON.parse(await ok(['workflow', 'query', '--workflow-id', workflowId, '--name', name, '-o', 'json'])) as { queryResult: T[] };
  return out.queryResult[0];
}

/**
 * The status query through the CLI. `-o json` prints an empty array as null (`"approvals": null`),
 * so lists are put back to [] here.
 */
async function status(workflowId: string): Promise<MigrateStatus> {
  const s = await query<MigrateStatus>(workflowId, 'status');
  return { ...s, approvals: s.approvals ?? [], ignoredSignals: s.ignoredSignals ?? [], auditErrors: s.auditErrors ?? [], steps: s.steps ?? [] };
}

async function untilCliStatus(workflowId: string, what: string, probe: (s: MigrateStatus) => boolean, timeoutMs = 30_000): Promise<MigrateStatus> {
  let last: MigrateStatus | undefined;
  try {
    return await eventually(
      what,
      async () => {
        await sleep(200); // each poll is a process start; keep the shared cores free
        last = await status(workflowId);
        return probe(last) ? last : undefined;
      },
      timeoutMs,
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}; last status: ${JSON.stringify(last)?.slice(0, 2000)}`);
  }
}

async function filled(db: LabDatabase): Promise<number> {
  const [row] = await db.sql<{ n: number }>('SELECT count(*)::int AS n FROM items WHERE code IS NOT NULL');
  return row.n;
}

const ROWS = 3000;
/** What `phasegate upgrade` sets as the static summary (workflows/details.ts); with the temporal CLI the starter passes it. */
const SUMMARY = 'upgrade app to head';
const GATE = 'deploy:items.code';
const PROMPT = 'deploy the app version that writes items.code';

/** r1 adds items.code (nullable); r2 waits at a gate, then backfills it slowly (50 rows per 250 ms) and checks no NULL is left. */
function chain(): string {
  return writeMigrations({
    'c1a000000001_add_code.js': `module.exports = { id: 'c1a000000001', parent: null, message: 'add items.code', phase: 'expand',
      upgrade(op) { op.addColumn('items', 'code', 'text'); },
      downgrade(op) { op.dropColumn('items', 'code'); } };`,
    'c1a000000002_fill_code.js': `module.exports = { id: 'c1a000000002', parent: 'c1a000000001', message: 'fill items.code', phase: 'backfill',
      gate: { name: ${JSON.stringify(GATE)}, prompt: ${JSON.stringify(PROMPT)} },
      upgrade(op) { op.sql("COMMENT ON COLUMN items.code IS 'filled by phasegate'"); },
      downgrade(op) { op.sql('COMMENT ON COLUMN items.code IS NULL'); },
      backfill: { table: 'items', set: { code: "'c-' || id" }, where: 'code IS NULL',
        batchSize: 50, targetBatchMs: 0, maxRowsPerSecond: 200, sliceCallMs: 500 },
      check: { name: 'no NULL left in items.code', failingRows: 'SELECT id FROM items WHERE code IS NULL' } };`,
  });
}

test('the temporal CLI alone drives a gated, backfilling migration: start, query, describe, signal (approve/pause/resume/throttle), update, result', async () => {
  const db = await lab.database();
  await db.sql('CREATE TABLE items (id bigint PRIMARY KEY, name text)');
  await db.sql(`INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, ${ROWS}) g`);
  await db.sql('ANALYZE items');
  const dir = chain();
  const workflowId = `migrate-app-cli-${Date.now().toString(36)}`;
  const wf = ['--workflow-id', workflowId];

  await withWorker(lab, db, dir, async ({ taskQueue }) => {
    // 1. start
    const input = JSON.stringify({ database: 'app', target: 'head', direction: 'upgrade' });
    const start = ['workflow', 'start', '--type', 'migrate', '--task-queue', taskQueue, ...wf, '--input', input, '--static-summary', SUMMARY, '-o', 'json'];
    const started = JSON.parse(await ok(start)) as { workflowId: string; runId: string; type: string; taskQueue: string };
    expect(started).toMatchObject({ workflowId, type: 'migrate', taskQueue });
    expect(started.runId).toMatch(/^[0-9a-f-]{36}$/);

    // 2. query until the gate
    const atGate = await untilCliStatus(workflowId, 'state awaiting-approval', (s) => s.state === 'awaiting-approval');
    expect(atGate.gate).toMatchObject({ name: GATE, prompt: PROMPT, revision: 'c1a000000002' });
    expect(atGate.steps.map((s) => [s.revision, s.state])).toEqual([
      ['c1a000000001', 'applied'],
      ['c1a000000002', 'pending'],
    ]);
    // The text form too (what a person reads): the gate and prompt are in it.
    const text = await ok(['workflow', 'query', ...wf, '--name', 'status']);
    expect(text).toContain(GATE);
    expect(text).toContain(PROMPT);

    // 3. describe: the search attributes (text and JSON), the static summary; metadata: the current details
    let lastDescribe = '';
    const described = await eventually('describe to show PhasegateState=awaiting-approval', async () => {
      lastDescribe = await ok(['workflow', 'describe', ...wf]);
      return /PhasegateState:[^\]]*?data:"\\"awaiting-approval\\""/.test(lastDescribe) ? lastDescribe : undefined;
    }, 10_000).catch((err: Error) => {
      throw new Error(`${err.message}; last output:\n${lastDescribe}`);
    });
    expect(described).toMatch(/PhasegateDatabase:[^\]]*?data:"\\"app\\""/);
    const describedJson = JSON.parse(await ok(['workflow', 'describe', ...wf, '-o', 'json'])) as DescribeJson;
    // -o json decodes the memo, but leaves search attributes as payloads with base64 metadata and data.
    const attrs = describedJson.workflowExecutionInfo?.searchAttributes?.indexedFields ?? {};
    expect(payloadValue(attrs.PhasegateState)).toBe('awaiting-approval');
    // At the gate before the backfill step, the migration is still in the phase it finished.
    expect(payloadValue(attrs.PhasegatePhase)).toBe('expand');
    expect(payloadValue(attrs.PhasegateDatabase)).toBe('app');
    expect(describedJson.workflowExecutionInfo?.memo?.fields?.plan).toMatchObject({ direction: 'upgrade', target: 'head' });
    expect(describedJson.workflowExecutionInfo?.type?.name).toBe('migrate');
    // Metadata: the static summary is the starter's (`--static-summary`, what `phasegate upgrade`
    // sets); describe shows it in text and JSON. Current details are the workflow's own
    // (setCurrentDetails): only `temporal workflow metadata` shows them, not describe.
    expect(described).toMatch(new RegExp(`Metadata:\\s+StaticSummary\\s+"${SUMMARY}"`));
    expect(describedJson.executionConfig?.userMetadata?.summary).toBe(SUMMARY);
    const atGateMetadata = await metadataOf(workflowId);
    const gateDetails = atGateMetadata.currentDetails;
    if (typeof gateDetails !== 'string') throw new Error('`temporal workflow metadata` shows no current details');
    expect(gateDetails).toContain('**upgrade app to head** — awaiting-approval, step 2 of 2');
    expect(gateDetails).toContain(`gate \`${GATE}\``);
    expect(gateDetails).toContain(`> ${PROMPT}`);
    // The handlers, with descriptions, are there too (what the UI's "Send a Signal" lists).
    const verbs = ['approve', 'reject', 'retry', 'rollback', 'abandon', 'pause', 'resume', 'throttle'];
    const definition = atGateMetadata.definition;
    expect(definition?.signalDefinitions?.map((d) => d.name)).toEqual(expect.arrayContaining(verbs));
    expect(definition?.updateDefinitions?.map((d) => d.name)).toEqual(expect.arrayContaining(verbs));
    expect(definition?.queryDefinitions?.map((d) => d.name)).toContain('status');
    expect(definition?.signalDefinitions?.find((d) => d.name === 'approve')?.description).toContain('{"by":"alice"');

    // 4. a typo'd JSON never leaves the CLI; an approve without "by" is recorded as ignored, the gate keeps waiting
    const typo = await cli(['workflow', 'signal', ...wf, '--name', 'approve', '--input', '{"by":', '--log-format', 'json']);
    expect(typo.code).toBe(1);
    expect(errorMessage(typo)).toBe('input #1 is not valid JSON');
    const noBy = await ok(['workflow', 'signal', ...wf, '--name', 'approve', '--input', '{}']);
    expect(noBy).toMatch(/Signal workflow succeeded/i);
    const ignored = await untilCliStatus(workflowId, 'the approve without "by" recorded', (s) => s.approvals.length === 1);
    expect(ignored.state).toBe('awaiting-approval');
    expect(ignored.approvals[0]).toMatchObject({ decision: 'approve', accepted: false });
    expect(ignored.approvals[0].ignoredReason).toBe('approve input {} is not valid: "by" is missing: say who decides, e.g. {"by":"alice"}');
    // The typo'd one never reached the workflow: one decision so far, the empty one.
    expect(ignored.decisions).toBe(1);

    // 5. approve with the command the current details print (as printed, <you> filled in)
    const approve = printedSignal(gateDetails, 'approve');
    expect(approve).toEqual(['workflow', 'signal', ...wf, '--name', 'approve', '--input', '{"by":"cli-test"}']);
    await ok(approve);
    const backfilling = await untilCliStatus(workflowId, 'state backfilling', (s) => s.state === 'backfilling');
    expect(backfilling.approvals.map((a) => [a.by, a.accepted])).toEqual([
      ['', false],
      ['cli-test', true],
    ]);
    const child = backfilling.backfillWorkflowId!;
    expect(child).toBe(`${workflowId}/backfill-c1a000000002`);
    await eventually('some rows filled', async () => (await filled(db)) > 0, 10_000);

    // 6. an approve Update while no gate waits: the CLI exits 1 with the validator's reason
    //    (text logs escape the quotes in msg="…"; --log-format json gives the message as is)
    const refused = await cli(['workflow', 'update', 'execute', ...wf, '--name', 'approve', '--input', '{"by":"cli-test"}', '--log-format', 'json']);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toBe('');
    expect(errorMessage(refused)).toMatch(
      /^unable to update workflow: no gate is waiting for a decision; send approve when status shows state "awaiting-approval"( \(type: \w+, retryable: \w+\))?$/,
    );

    // 7. pause: the parent and the child say paused, and no row changes for 2 s; resume (with the
    //    printed command): rows grow again; then an Update lifts the rate limit
    await ok(['workflow', 'signal', ...wf, '--name', 'pause', '--input', '{}']);
    const paused = await untilCliStatus(workflowId, 'state paused', (s) => s.state === 'paused');
    expect(paused.control.paused).toBe(true);
    const atPause = await query<BackfillProgress>(child, 'backfillStatus');
    expect(atPause.state).toBe('paused');
    const rowsAtPause = await filled(db);
    await sleep(2_000);
    expect(await filled(db)).toBe(rowsAtPause);
    expect((await query<BackfillProgress>(child, 'backfillStatus')).rowsDone).toBe(atPause.rowsDone);
    expect(rowsAtPause).toBeLessThan(ROWS);
    await eventually('describe to show PhasegateState=paused', async () => {
      const d = JSON.parse(await ok(['workflow', 'describe', ...wf, '-o', 'json'])) as DescribeJson;
      return payloadValue(d.workflowExecutionInfo?.searchAttributes?.indexedFields?.PhasegateState) === 'paused';
    }, 10_000);
    const pausedDetails = await currentDetails(workflowId);
    expect(pausedDetails).toContain('**Backfill paused**');
    const resume = printedSignal(pausedDetails, 'resume');
    expect(resume).toEqual(['workflow', 'signal', ...wf, '--name', 'resume', '--input', '{}']);
    await ok(resume);
    await untilCliStatus(workflowId, 'state backfilling again', (s) => s.state === 'backfilling' || s.state === 'checking' || s.state === 'done');
    await eventually('rows growing after resume', async () => (await filled(db)) > rowsAtPause, 10_000);
    await eventually('the child to report more rows after resume', async () => (await query<BackfillProgress>(child, 'backfillStatus')).rowsDone > atPause.rowsDone, 10_000);

    // The same verbs as Updates answer at once: lift the limit so the rest finishes quickly.
    const throttled = JSON.parse(await ok(['workflow', 'update', 'execute', ...wf, '--name', 'throttle', '--input', '{"maxRowsPerSecond":0}', '-o', 'json'])) as {
      result?: unknown;
    };
    expect(throttled.result).toMatchObject({ accepted: true, verb: 'throttle' });

    // 8. the result; then PostgreSQL: every row filled, the version table at head
    const result = JSON.parse(await cliResult(workflowId)) as ResultJson;
    expect(result.status).toBe('COMPLETED');
    expect(result.result).toMatchObject({ outcome: 'done', applied: ['c1a000000001', 'c1a000000002'] });
    const final = await status(workflowId);
    expect(final.state).toBe('done');
    expect(final.check).toMatchObject({ passed: true, failingCount: 0 });
  });

  expect(await versionRows(db)).toEqual({ version: ['c1a000000002'], pending: [] });
  expect(await db.sql(`SELECT count(*)::int AS n FROM items WHERE code IS DISTINCT FROM 'c-' || id`)).toEqual([{ n: 0 }]);
  expect(await filled(db)).toBe(ROWS);
});

interface MetadataJson {
  currentDetails?: string;
  definition?: Record<'queryDefinitions' | 'signalDefinitions' | 'updateDefinitions', Array<{ name: string; description?: string }> | null>;
}

/** `temporal workflow metadata -o json` prints {"queryResult":[{currentDetails, definition}]} (the __temporal_workflow_metadata query). */
async function metadataOf(workflowId: string): Promise<MetadataJson> {
  const out = JSON.parse(await ok(['workflow', 'metadata', '--workflow-id', workflowId, '-o', 'json'])) as { queryResult: MetadataJson[] };
  return out.queryResult[0];
}

async function currentDetails(workflowId: string): Promise<string> {
  const details = (await metadataOf(workflowId)).currentDetails;
  if (typeof details !== 'string') throw new Error('`temporal workflow metadata` shows no current details');
  return details;
}

/**
 * The `temporal workflow signal … --name <verb> --input '<json>'` command the current details print,
 * as execFile arguments, with `<you>` replaced by the test's name.
 */
function printedSignal(details: string, verb: string): string[] {
  const m = details.match(new RegExp(`\`temporal (workflow signal --workflow-id \\S+ --name ${verb}) --input '([^']*)'\``));
  if (!m) throw new Error(`no temporal command for ${verb} in the current details:\n${details}`);
  return [...m[1].split(' '), '--input', m[2].replace(/<you>/g, 'cli-test')];
}

/** The `msg` of the ERROR line a command printed with `--log-format json`. */
function errorMessage(r: CliResult): string {
  const lines = r.stderr.split('\n').filter((l) => l.startsWith('{'));
  const error = lines.map((l) => JSON.parse(l) as { level?: string; msg?: string }).find((l) => l.level === 'ERROR');
  if (!error?.msg) throw new Error(`no ERROR log line in stderr: ${r.stderr}`);
  return error.msg;
}

async function cliResult(workflowId: string): Promise<string> {
  const r = await cli(['workflow', 'result', '--workflow-id', workflowId, '-o', 'json'], 60_000);
  if (r.code !== 0) throw new Error(`temporal workflow result exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r.stdout;
}

interface JsonPayload {
  metadata?: Record<string, string>;
  data?: string;
}

/** A search attribute as `describe -o json` prints it: {metadata:{encoding:<base64>}, data:<base64 JSON>}. */
function payloadValue(p: JsonPayload | undefined): unknown {
  return p?.data === undefined ? undefined : JSON.parse(Buffer.from(p.data, 'base64').toString('utf8'));
}

interface DescribeJson {
  executionConfig?: { userMetadata?: { summary?: unknown; details?: unknown } };
  workflowExecutionInfo?: {
    type?: { name?: string };
    memo?: { fields?: Record<string, unknown> };
    searchAttributes?: { indexedFields?: Record<string, JsonPayload> };
  };
}

interface ResultJson {
  status: string;
  result: unknown;
}
