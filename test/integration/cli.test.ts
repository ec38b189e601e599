/**
 * The commands against a real PostgreSQL and the shared Temporal dev server: upgrade and downgrade
 * through the `migrate` workflow (a worker runs in-process), current, check and stamp on the
 * version table, `--sql` leaving the database alone, the one-migration-per-database rule, and the
 * CLI binary itself.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { execFile, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { abandon, check, current, downgrade, history, lint, stamp, upgrade, type MigrateEvent } from '../../lib/commands';
import type * as commands from '../../lib/commands';
import type { PhasegateConfig } from '../../lib/config';
import type { PhasegateError } from '../../lib/errors';
import { createPhasegateWorker } from '../../workers/worker';
import { bundleWorkflows, connectTestTemporal, createTestDatabase, silentLog, testConfig, uniqueId, writeMigrations, type TestDatabase } from '../helpers';
import { psqlBinary } from '../support/postgres-binaries';

const revisions = {
  'aaa111_add_plan.js': `module.exports = {
    id: 'aaa111', parent: null, message: 'add accounts.plan', phase: 'expand',
    upgrade(op) { op.addColumn('accounts', 'plan', 'text'); },
    downgrade(op) { op.dropColumn('accounts', 'plan'); },
  };`,
  'bbb222_create_orgs.js': `module.exports = {
    id: 'bbb222', parent: 'aaa111', message: 'create orgs',
    upgrade(op) { op.createTable('orgs', (t) => { t.bigIncrements('id'); t.text('name').notNullable(); }); },
    downgrade(op) { op.dropTable('orgs'); },
  };`,
};

// Each CLI run is a fresh Node process compiling TypeScript (about a second); a test makes several.
jest.setTimeout(60_000);

let env: TestWorkflowEnvironment;
let bundle: WorkflowBundleWithSourceMap;
let db: TestDatabase;
/** A database alias of its own per test, so workflow ids (`migrate-<alias>`) never collide; `_` so it can be an env var suffix. */
let alias: string;
let dir: string;
let config: PhasegateConfig;

beforeAll(async () => {
  env = await connectTestTemporal();
  bundle = await bundleWorkflows();
});
afterAll(() => env?.teardown());

beforeEach(async () => {
  db = await createTestDatabase();
  await db.query('CREATE TABLE accounts (id bigint PRIMARY KEY, email text NOT NULL)');
  alias = uniqueId('cli').replace('-', '_');
  dir = writeMigrations(revisions);
  config = testConfig({ databases: { [alias]: { url: db.url, migrationsDirectory: dir } } });
});
afterEach(() => db.drop());

/** Runs `fn` while an in-process worker serves a fresh task queue. */
async function withWorker<T>(fn: (taskQueue: string) => Promise<T>): Promise<T> {
  const taskQueue = uniqueId('cli');
  const { worker } = await createPhasegateWorker({ config, log: silentLog, workflowBundle: bundle, taskQueue, connection: env.nativeConnection });
  return worker.runUntil(fn(taskQueue));
}

async function columns(table: string): Promise<string[]> {
  const { rows } = await db.query<{ column_name: string }>(
    'SELECT column_name FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position',
    [table],
  );
  return rows.map((r) => r.column_name);
}

async function versionTableExists(): Promise<boolean> {
  const { rows } = await db.query<{ t: string | null }>("SELECT to_regclass('public.phasegate_version')::text AS t");
  return rows[0].t !== null;
}

async function failure(promise: Promise<unknown>): Promise<PhasegateError> {
  try {
    await promise;
  } catch (err) {
    return err as PhasegateError;
  }
  throw new Error('expected the command to fail');
}

test('upgrade head runs the workflow, reports each step, and current/check agree with the version table', async () => {
  const before = await check({ config, database: alias });
  expect(before.upToDate).toBe(false);
  expect(before.pending.map((r) => r.id)).toEqual(['aaa111', 'bbb222']);

  const events: MigrateEvent[] = [];
  const result = await withWorker((taskQueue) =>
    upgrade({ config, database: alias, client: env.client, taskQueue, pollIntervalMs: 200, onEvent: (e) => events.push(e) }),
  );

  expect(result).toMatchObject({ mode: 'workflow', outcome: 'done', workflowId: `migrate-${alias}`, applied: ['aaa111', 'bbb222'], headsAfter: ['bbb222'] });
  expect(result.planned.map((s) => s.revision)).toEqual(['aaa111', 'bbb222']);
  // A 'warning' (no poller seen yet) may come first when the worker is slow to poll.
  expect(events.find((e) => e.type !== 'warning')).toMatchObject({ type: 'started', workflowId: `migrate-${alias}` });
  const steps = events.flatMap((e) => (e.type === 'step' ? [[e.step.revision, e.step.state]] : []));
  expect(steps).toEqual([
    ['aaa111', 'applied'],
    ['bbb222', 'applied'],
  ]);
  expect(await columns('accounts')).toEqual(['id', 'email', 'plan']);
  expect(await columns('orgs')).toEqual(['id', 'name']);

  const now = await current({ config, database: alias });
  expect(now.heads).toEqual([{ id: 'bbb222', known: true, revision: expect.objectContaining({ id: 'bbb222', isHead: true }) }]);
  expect(await check({ config, database: alias })).toMatchObject({ upToDate: true, pending: [], current: ['bbb222'] });

  // Nothing left to do: no workflow is started at all.
  const again = await upgrade({ config, database: alias, client: env.client });
  expect(again).toMatchObject({ outcome: 'nothing-to-do', workflowId: null, applied: [] });
});

test('downgrade -1 un-applies only the newest revision', async () => {
  await withWorker((taskQueue) => upgrade({ config, database: alias, client: env.client, taskQueue }));
  const result = await withWorker((taskQueue) => downgrade({ config, database: alias, target: '-1', client: env.client, taskQueue, pollIntervalMs: 200 }));

  expect(result).toMatchObject({ direction: 'downgrade', outcome: 'done', applied: ['bbb222'], headsAfter: ['aaa111'] });
  expect(await columns('orgs')).toEqual([]);
  expect(await columns('accounts')).toEqual(['id', 'email', 'plan']);
  expect((await current({ config, database: alias })).heads.map((h) => h.id)).toEqual(['aaa111']);
  expect((await check({ config, database: alias })).pending.map((r) => r.id)).toEqual(['bbb222']);
});

test('bad input fails before anything changes: below base, unknown target, wrong direction', async () => {
  const below = await failure(downgrade({ config, database: alias, target: '-1', client: env.client }));
  expect(below.type).toBe('BelowBase');
  const unknown = await failure(upgrade({ config, database: alias, target: 'nope', client: env.client }));
  expect(unknown.type).toBe('UnknownRevision');
  expect(unknown.message).toContain('"nope"');
  expect(await versionTableExists()).toBe(false);

  await stamp({ config, database: alias, targets: ['head'] });
  const wrongWay = await failure(upgrade({ config, database: alias, target: 'aaa111', client: env.client }));
  expect(wrongWay.type).toBe('WrongDirection');
  expect(wrongWay.message).toContain('phasegate downgrade aaa111');
  expect((await current({ config, database: alias })).heads.map((h) => h.id)).toEqual(['bbb222']);

  // No workflow was started for this database.
  await expect(env.client.workflow.getHandle(`migrate-${alias}`).describe()).rejects.toMatchObject({ name: 'WorkflowNotFoundError' });
});

test('a revision that fails in the database ends the command with the cause; the migration waits in failed, nothing rolled back', async () => {
  writeFileSync(
    path.join(dir, 'ccc333_broken.js'),
    `module.exports = {
      id: 'ccc333', parent: 'bbb222', message: 'broken',
      upgrade(op) { op.sql('ALTER TABLE no_such_table ADD COLUMN x int'); },
      downgrade() {},
    };`,
  );
  const events: MigrateEvent[] = [];
  const error = await failure(
    withWorker(async (taskQueue) => {
      try {
        return await upgrade({ config, database: alias, client: env.client, taskQueue, pollIntervalMs: 200, onEvent: (e) => events.push(e) });
      } finally {
        // The workflow keeps waiting for a person; this test's person abandons it.
        await abandon({ client: env.client, database: alias, by: 'test', reason: 'end of test' }).catch(() => undefined);
      }
    }),
  );
  expect(error.type).toBe('MigrationFailed');
  expect(error.message).toContain(`the migration of database "${alias}" stopped at revision ccc333 (broken) and waits in state failed (workflow migrate-${alias})`);
  expect(error.message).toContain('no_such_table');
  expect(error.message).toContain('Nothing was rolled back');
  expect(error.message).toContain(`phasegate retry --workflow-id migrate-${alias} --by <you>`);
  const steps = events.flatMap((e) => (e.type === 'step' ? [[e.step.revision, e.step.state]] : []));
  expect(steps).toEqual(expect.arrayContaining([['ccc333', 'failed'], ['bbb222', 'applied'], ['aaa111', 'applied']]));
  expect((await current({ config, database: alias })).heads.map((h) => h.id)).toEqual(['bbb222']);
});

test('a second migration of the same database while one runs is refused with a clear message', async () => {
  // No worker serves this queue, so the first workflow stays running.
  const taskQueue = uniqueId('idle');
  const started = await upgrade({ config, database: alias, client: env.client, taskQueue, wait: false });
  expect(started).toMatchObject({ outcome: 'started', workflowId: `migrate-${alias}`, applied: [] });
  try {
    const conflict = await failure(upgrade({ config, database: alias, client: env.client, taskQueue }));
    expect(conflict.type).toBe('MigrationAlreadyRunning');
    expect(conflict.message).toBe(
      `a migration of database "${alias}" is already running (workflow migrate-${alias}); follow it with phasegate status, or cancel it in the UI`,
    );
  } finally {
    await env.client.workflow.getHandle(`migrate-${alias}`).terminate('test cleanup');
  }
  expect(await versionTableExists()).toBe(false);
});

test('stamp writes the version table only: no DDL; rows no file declares need --purge', async () => {
  const stamped = await stamp({ config, database: alias, targets: ['head'] });
  expect(stamped).toEqual({ database: alias, before: [], after: ['bbb222'], changed: true });
  expect(await columns('accounts')).toEqual(['id', 'email']);
  expect(await columns('orgs')).toEqual([]);
  expect((await check({ config, database: alias })).upToDate).toBe(true);

  const marked = await history({ config, database: alias, indicateCurrent: true });
  expect(marked.revisions.map((r) => [r.id, r.isCurrent])).toEqual([
    ['bbb222', true],
    ['aaa111', false],
  ]);

  expect(await stamp({ config, database: alias, targets: ['-1'] })).toMatchObject({ before: ['bbb222'], after: ['aaa111'] });
  expect((await history({ config, database: alias, range: 'current:' })).revisions.map((r) => r.id)).toEqual(['bbb222', 'aaa111']);
  expect(await stamp({ config, database: alias, targets: ['base'] })).toMatchObject({ after: [] });

  await db.query("INSERT INTO phasegate_version VALUES ('zzz999')");
  const unknown = await failure(stamp({ config, database: alias, targets: ['aaa111'] }));
  expect(unknown.type).toBe('UnknownAppliedRevision');
  expect(unknown.message).toContain('--purge');
  expect(await stamp({ config, database: alias, targets: ['aaa111'], purge: true })).toMatchObject({ before: ['zzz999'], after: ['aaa111'] });
  const { rows } = await db.query<{ version_num: string }>('SELECT version_num FROM phasegate_version');
  expect(rows).toEqual([{ version_num: 'aaa111' }]);
});

/** A script as psql runs it (the script uses psql's \if and \gset); throws with psql's output when it fails. */
function runPsql(script: string): void {
  const result = spawnSync(psqlBinary(), ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', db.url, '-f', '-'], { input: script, encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`psql exited ${result.status}: ${result.stderr}`);
}

test('upgrade --sql never touches the database, and the script it prints applies cleanly when run', async () => {
  const offline = await upgrade({ config, database: alias, sql: true });
  expect(offline.mode).toBe('sql');
  expect(await versionTableExists()).toBe(false);
  expect(await columns('accounts')).toEqual(['id', 'email']);

  // What a DBA would do with it: run the script with psql; the schema and version table match an online upgrade.
  runPsql(offline.script);
  expect(await columns('accounts')).toEqual(['id', 'email', 'plan']);
  expect(await columns('orgs')).toEqual(['id', 'name']);
  expect((await current({ config, database: alias })).heads.map((h) => h.id)).toEqual(['bbb222']);

  const down = await downgrade({ config, database: alias, sql: true, target: 'head:base' });
  runPsql(down.script);
  expect(await columns('accounts')).toEqual(['id', 'email']);
  expect((await current({ config, database: alias })).heads).toEqual([]);
});

// ── the CLI binary ──────────────────────────────────────────────────────────────────────────────

const root = path.resolve(__dirname, '../..');
const tsxLoader = require.resolve('tsx');

/** A project folder the way a user has one: a config file and migrations/versions/. */
function tempProject(): string {
  const cwd = mkdtempSync(path.join(os.tmpdir(), 'phasegate-cli-project-'));
  mkdirSync(path.join(cwd, 'migrations/versions'), { recursive: true });
  for (const [name, content] of Object.entries(revisions)) writeFileSync(path.join(cwd, 'migrations/versions', name), content);
  // Databases come from the environment (PHASEGATE_DATABASE_URL_<ALIAS>), as in production.
  writeFileSync(
    path.join(cwd, 'temporal.config.ts'),
    `export default {
  temporal: { address: process.env.PHASEGATE_TEST_TEMPORAL_ADDRESS, taskQueue: process.env.PHASEGATE_TASK_QUEUE },
};\n`,
  );
  return cwd;
}

function cli(cwd: string, args: string[], extraEnv: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', tsxLoader, path.join(root, 'scripts/phasegate.ts'), ...args],
      { cwd, env: { ...process.env, [`PHASEGATE_DATABASE_URL_${alias.toUpperCase()}`]: db.url, ...extraEnv }, timeout: 60_000 },
      (error, stdout, stderr) => resolve({ code: error ? Number((error as { code?: unknown }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

test('CLI: heads --json, check exit codes, --sql, and errors as `phasegate: …` with exit 1', async () => {
  const cwd = tempProject();

  const headsRun = await cli(cwd, ['heads', '--json']);
  expect(headsRun).toMatchObject({ code: 0, stderr: '' });
  const parsed = JSON.parse(headsRun.stdout) as { heads: Array<{ id: string; file: string }> };
  expect(parsed.heads).toEqual([expect.objectContaining({ id: 'bbb222', file: 'bbb222_create_orgs.js' })]);

  const pending = await cli(cwd, ['check', '--database', alias]);
  expect(pending.code).toBe(1);
  expect(pending.stderr).toContain(`phasegate: 2 revision(s) pending on database "${alias}": aaa111 (add accounts.plan), bbb222 (create orgs)`);

  const sql = await cli(cwd, ['upgrade', '--sql', '--database', alias]);
  expect(sql.code).toBe(0);
  expect(sql.stdout).toContain("SET LOCAL lock_timeout = '500ms';");
  expect(sql.stdout).toContain('ALTER TABLE "accounts" ADD COLUMN IF NOT EXISTS "plan" text;');
  expect(await versionTableExists()).toBe(false);

  const bad = await cli(cwd, ['show', 'nope']);
  expect(bad.code).toBe(1);
  expect(bad.stdout).toBe('');
  expect(bad.stderr).toMatch(/^phasegate: "nope" matches no revision id/);
});

test('CLI: an alias whose URL is unset (`url: process.env.X`, X unset) stops only the verbs that connect; messages name the --config file', async () => {
  const cwd = tempProject();
  // A second config file, as a DBA keeps one per environment; its variable is not set here.
  writeFileSync(path.join(cwd, 'other.config.ts'), 'export default { databases: { prod: { url: process.env.PHASEGATE_TEST_UNSET_PROD_URL } } };\n');
  expect(process.env.PHASEGATE_TEST_UNSET_PROD_URL).toBeUndefined();
  const run = (args: string[]) => cli(cwd, ['--config', 'other.config.ts', ...args]);
  const shown = (r: { code: number; stdout: string; stderr: string }) => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;

  // They never connect: they work.
  const [heads, historyRun, up, down] = await Promise.all([
    run(['heads']),
    run(['history', '--database', 'prod']),
    run(['upgrade', '--sql', '--database', 'prod']),
    run(['downgrade', 'head:-1', '--sql', '--database', 'prod']),
  ]);
  expect(shown(heads)).toBe(shown({ code: 0, stdout: 'bbb222 (head)\n', stderr: '' }));
  expect(historyRun).toMatchObject({ code: 0, stderr: '' });
  expect(historyRun.stdout).toContain('aaa111 -> bbb222 (head), create orgs');
  expect(up).toMatchObject({ code: 0, stderr: '' });
  expect(up.stdout).toContain('-- phasegate upgrade base:head for database "prod"');
  expect(down).toMatchObject({ code: 0, stderr: '' });
  expect(down.stdout).toContain('DROP TABLE');
  const lint = await run(['lint', '--database', 'prod']);
  expect(lint.stderr).not.toContain('phasegate:');
  const created = await run(['revision', '-m', 'third', '--database', 'prod']);
  expect(shown(created)).toMatch(/^exit 0\n--- stdout\ncreated [0-9a-f]{12} \(on bbb222\): /);
  const pattern = await run(['new', 'add-index', 'accounts', 'plan', '--database', 'prod']);
  expect(shown(pattern)).toMatch(/^exit 0\n/);

  // They connect: they fail before connecting, naming the alias, the key in the file loaded and the variable.
  for (const args of [['current', '--database', 'prod'], ['upgrade', '--database', 'prod'], ['stamp', 'head', '--database', 'prod'], ['worker']]) {
    const failed = await run(args);
    expect({ args, code: failed.code, stdout: failed.stdout }).toEqual({ args, code: 1, stdout: '' });
    expect(failed.stderr).toContain('phasegate: database "prod" has no URL');
    expect(failed.stderr).toContain('set databases.prod.url in other.config.ts');
    expect(failed.stderr).toContain('PHASEGATE_DATABASE_URL_PROD=postgres://');
  }

  const unknown = await run(['current', '--database', 'nope']);
  expect(unknown.code).toBe(1);
  expect(unknown.stderr).toContain('or add it under databases in other.config.ts');
  expect(unknown.stderr).not.toContain('temporal.config.ts');
});

test('CLI: lint exits 1 on errors and 0 with warnings only; --json; --database measures the tables an index is built on', async () => {
  const cwd = tempProject();
  // bbb222's bigIncrements is a bigserial, which squawk's prefer-identity would report.
  const lint = (...args: string[]) => cli(cwd, ['lint', '--exclude', 'prefer-identity', ...args]);
  const clean = await lint();
  expect(clean).toMatchObject({ code: 0, stderr: '' });
  expect(clean.stdout).toContain('lint: nothing to report on base:heads (upgrade) and heads:base (downgrade)');

  // An index built without CONCURRENTLY on accounts (a table the chain did not create): squawk's finding,
  // re-judged with the table's measured size once --database names a database with a URL.
  writeFileSync(
    path.join(cwd, 'migrations/versions/ccc333_index.js'),
    `module.exports = { id: 'ccc333', parent: 'bbb222', message: 'index email',
      upgrade(op) { op.sql('CREATE INDEX accounts_email_idx ON accounts (email)'); }, downgrade(op) { op.sql('UPDATE accounts SET email = email'); } };`,
  );
  const json = await lint('--json');
  expect(json.code).toBe(1);
  const result = JSON.parse(json.stdout) as commands.LintResult;
  expect(result.findings.map((f) => [f.rule, f.level, f.source, f.script, f.revision])).toEqual([
    ['require-concurrent-index-creation', 'error', 'squawk', 'upgrade', 'ccc333'],
    ['full-table-write', 'warning', 'phasegate', 'downgrade', 'ccc333'],
  ]);
  expect(result.findings[0]).toEqual(expect.objectContaining({ line: expect.any(Number), message: expect.any(String), help: expect.anything() }));

  // accounts is tiny here: a warning with its size, so only warnings are left and the exit code is 0.
  const measured = await lint('--database', alias);
  expect({ code: measured.code, stdout: measured.stdout }).toEqual({ code: 0, stdout: expect.stringContaining('warning: index-without-concurrently [phasegate]') });
  expect(measured.stdout).toContain(`table sizes from database "${alias}": accounts`);
  const strict = await lint('--database', alias, '--max-table-bytes', '1', '--json');
  expect(strict.code).toBe(1);
  expect((JSON.parse(strict.stdout) as commands.LintResult).findings[0]).toEqual(expect.objectContaining({ rule: 'index-without-concurrently', level: 'error', source: 'phasegate' }));
});

test('lint --database warns about a view that reads every column (SELECT *) of a table whose column the chain drops; a narrower view is fine', async () => {
  const viewDb = await createTestDatabase();
  try {
    await viewDb.query('CREATE TABLE people (id bigint PRIMARY KEY, name text, note text)');
    await viewDb.query('CREATE VIEW people_all AS SELECT * FROM people');
    await viewDb.query('CREATE VIEW people_ids AS SELECT id, name FROM people');
    const viewDir = writeMigrations({
      'ddd444_drop.js': `module.exports = { id: 'ddd444', parent: null, message: 'drop note', gate: { prompt: 'no app reads people.note' },
        upgrade(op) { op.dropColumn('people', 'note'); }, downgrade(op) { op.addColumn('people', 'note', 'text'); } };`,
    });
    const viewConfig = testConfig({ databases: { people: { url: viewDb.url, migrationsDirectory: viewDir } } });
    const found = (await lint({ config: viewConfig, database: 'people' })).findings.filter((f) => f.rule === 'select-star-view');
    expect(found.map((f) => [f.level, f.revision, f.message])).toEqual([
      ['warning', 'ddd444', expect.stringContaining('people_all (rule _RETURN) uses every column of people, as SELECT * does; this chain drops people.note')],
    ]);
    // Without a database there is nothing to look at: no finding, no error.
    expect((await lint({ config: viewConfig })).findings.filter((f) => f.rule === 'select-star-view')).toEqual([]);
  } finally {
    await viewDb.drop();
  }
});

test('CLI: upgrade follows the workflow and prints each step; current and check then agree', async () => {
  const cwd = tempProject();
  const taskQueue = uniqueId('cli-bin');
  const workerConfig = testConfig({ databases: { [alias]: { url: db.url, migrationsDirectory: path.join(cwd, 'migrations/versions') } } });
  const { worker } = await createPhasegateWorker({ config: workerConfig, log: silentLog, workflowBundle: bundle, taskQueue, connection: env.nativeConnection });
  const run = await worker.runUntil(cli(cwd, ['upgrade', '--database', alias], { PHASEGATE_TASK_QUEUE: taskQueue }));
  const output = `--- stdout\n${run.stdout}\n--- stderr\n${run.stderr}`;
  expect({ code: run.code, output }).toEqual({ code: 0, output });
  expect(run.stderr).toContain('applied aaa111 add accounts.plan');
  expect(run.stderr).toContain('applied bbb222 create orgs');
  expect(run.stdout).toBe(`upgraded database "${alias}" to bbb222: aaa111, bbb222 (workflow migrate-${alias})\n`);

  const now = await cli(cwd, ['current', '--database', alias, '--json']);
  expect(JSON.parse(now.stdout).heads.map((h: { id: string }) => h.id)).toEqual(['bbb222']);
  expect((await cli(cwd, ['check', '--database', alias])).code).toBe(0);

  // A downgrade's progress and result say undone/downgraded, never applied.
  const { worker: again } = await createPhasegateWorker({ config: workerConfig, log: silentLog, workflowBundle: bundle, taskQueue, connection: env.nativeConnection });
  const down = await again.runUntil(cli(cwd, ['downgrade', '-1', '--database', alias], { PHASEGATE_TASK_QUEUE: taskQueue }));
  const downOutput = `--- stdout\n${down.stdout}\n--- stderr\n${down.stderr}`;
  expect({ code: down.code, output: downOutput }).toEqual({ code: 0, output: downOutput });
  expect(down.stderr).toContain('undone bbb222 create orgs');
  expect(down.stderr).not.toContain('appl');
  expect(down.stdout).toBe(`downgraded database "${alias}" to aaa111: bbb222 (workflow migrate-${alias})\n`);
});

test('CLI: worker serves the task queue of the config until SIGINT, then stops cleanly', async () => {
  const cwd = tempProject();
  const taskQueue = uniqueId('cli-worker');
  const child = spawn(process.execPath, ['--import', tsxLoader, path.join(root, 'scripts/phasegate.ts'), 'worker'], {
    cwd,
    env: { ...process.env, [`PHASEGATE_DATABASE_URL_${alias.toUpperCase()}`]: db.url, PHASEGATE_TASK_QUEUE: taskQueue, PHASEGATE_METRICS_PORT: 'off' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    const deadline = Date.now() + 30_000;
    while (!stderr.includes('phasegate worker started')) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`worker did not start:\n${stderr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    // The worker resolves migrations/versions against its project folder, not the test's directory.
    const result = await upgrade({ config, database: alias, client: env.client, taskQueue });
    expect(result.applied).toEqual(['aaa111', 'bbb222']);
  } finally {
    child.kill('SIGINT');
  }
  expect(await exited).toBe(0);
  expect(stdout).toBe('worker stopped (STOPPED)\n');
});
