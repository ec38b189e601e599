/**
 * The installed package, end to end, as README's "Use phasegate in your project" tells a team to
 * use it: `npm pack` in this repository, `npm install` of the tarball into an empty Node project,
 * then only `npx phasegate …` and `node deploy.js …` there — `init`, `dev` (the project's own
 * Temporal dev server and embedded PostgreSQL), a hand-written JavaScript revision, a generated
 * TypeScript one with a gate and a backfill, `upgrade --sql`, `worker`, `upgrade --until gate`,
 * `status`, `approve`, `follow`, `current`, `new <pattern>`, and the README's deploy script on the
 * programmatic API. Every command run here must appear verbatim in that README section, and the
 * files are written from its code blocks, so the section cannot drift from what works.
 *
 * Nothing of this repository is imported by the project: it sees the tarball only. The servers are
 * the project's own (`phasegate dev`, on free ports via PHASEGATE_*_PORT), not the shared test stack.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { appendFileSync, chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { freePort } from '../../lib/local/ports';

jest.setTimeout(600_000);

const root = path.resolve(__dirname, '..', '..');
const version = (JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string }).version;
const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
const section = readme.slice(readme.indexOf('## Use phasegate in your project'), readme.indexOf('## Operating a migration'));
const artifacts = path.join(root, 'test-artifacts', 'package');
const transcript = path.join(artifacts, 'transcript.txt');

/** The code block of the section whose first line is `marker` (that line dropped). */
function block(marker: string): string {
  for (const match of section.matchAll(/```(?:js|ts)\n([\s\S]*?)```/g)) {
    const [first, ...rest] = match[1].split('\n');
    if (first.trim() === marker) return rest.join('\n');
  }
  throw new Error(`README section has no code block starting with ${marker}`);
}

let work: string;
let project: string;
/** The environment every command of the project runs in: no variable of this test run leaks into it. */
let env: NodeJS.ProcessEnv;
const background: ChildProcess[] = [];

interface Ran {
  seconds: number;
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs one README command (`<clone>` stands for this repository) in the project, through bash. */
function run(command: string, opts: { cwd?: string; extraEnv?: NodeJS.ProcessEnv; expectStatus?: number } = {}): Ran {
  expect(section).toContain(command);
  const line = command.replace('<clone>', root);
  const started = Date.now();
  const result = spawnSync('bash', ['-c', line], { cwd: opts.cwd ?? project, env: { ...env, ...opts.extraEnv }, encoding: 'utf8', timeout: 300_000 });
  appendFileSync(transcript, `$ ${line}   (exit ${result.status}, ${((Date.now() - started) / 1000).toFixed(1)} s)\n${result.stdout}${result.stderr}\n`);
  const ran = { seconds: (Date.now() - started) / 1000, status: result.status, stdout: result.stdout, stderr: result.stderr };
  if (ran.status !== (opts.expectStatus ?? 0)) {
    throw new Error(`\`${command}\` exited ${ran.status} (expected ${opts.expectStatus ?? 0}):\n${ran.stdout}\n${ran.stderr}`);
  }
  return ran;
}

/** Starts a long-running README command and resolves once its output matches `ready`. */
function start(command: string, ready: RegExp, extraEnv: NodeJS.ProcessEnv = {}): Promise<{ child: ChildProcess; output: () => string }> {
  expect(section).toContain(command);
  // Its own process group, as a terminal's foreground job: Ctrl-C (SIGINT) reaches npx and the
  // phasegate process under it alike.
  const child = spawn('bash', ['-c', `exec ${command}`], { cwd: project, env: { ...env, ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  background.push(child);
  let output = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`\`${command}\` not ready after 180 s:\n${output}`)), 180_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (ready.test(output)) {
        clearTimeout(timer);
        resolve({ child, output: () => output });
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      appendFileSync(transcript, `$ ${command}   (exited ${code})\n${output}\n`);
      reject(new Error(`\`${command}\` exited ${code} before it was ready:\n${output}`));
    });
  });
}

/**
 * Ctrl-C: SIGINT to the job's process group. Resolves with how npx ended: npm re-raises the signal
 * once its child is done, so a clean stop is `SIGINT` (never `SIGKILL`, sent after 60 s).
 */
function stop(child: ChildProcess): Promise<string> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(String(child.signalCode ?? child.exitCode));
  const exited = new Promise<string>((resolve) => child.once('exit', (code, signal) => resolve(String(signal ?? code))));
  process.kill(-child.pid!, 'SIGINT');
  const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), 60_000);
  return exited.finally(() => clearTimeout(timer));
}

beforeAll(async () => {
  mkdirSync(artifacts, { recursive: true });
  writeFileSync(transcript, '');
  work = mkdtempSync(path.join(os.tmpdir(), 'phasegate-package-'));
  // As root, embedded PostgreSQL runs as the `postgres` OS user, which must reach the project's
  // node_modules: mkdtemp's folder is 0700.
  chmodSync(work, 0o755);
  project = path.join(work, 'app');
  mkdirSync(project);
  const [temporalPort, uiPort, pgPort, metricsPort] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
  // An ordinary shell: this repository's node_modules/.bin (put on PATH by npm test) is left out, so
  // `npx phasegate` can only be the project's; no DATABASE_URL or TEMPORAL_ADDRESS from outside.
  const keep = ['HOME', 'USER', 'LANG', 'TMPDIR', 'XDG_CACHE_HOME', 'TEMPORAL_CLI', 'npm_config_cache'];
  env = Object.fromEntries(keep.filter((k) => process.env[k] !== undefined).map((k) => [k, process.env[k]]));
  env.PATH = (process.env.PATH ?? '').split(path.delimiter).filter((dir) => !dir.startsWith(root)).join(path.delimiter);
  Object.assign(env, {
    PHASEGATE_TEMPORAL_PORT: String(temporalPort),
    PHASEGATE_TEMPORAL_UI_PORT: String(uiPort),
    PHASEGATE_PG_PORT: String(pgPort),
    PHASEGATE_METRICS_PORT: String(metricsPort),
  });
});

afterAll(async () => {
  for (const child of background.reverse()) await stop(child);
  if (work) rmSync(work, { recursive: true, force: true });
});

test('a team installs the tarball into its own project and runs a gated, backfilled change with npx phasegate and the API', async () => {
  // ── the package ─────────────────────────────────────────────────────────────────────────────
  const tarball = path.join(root, `phasegate-${version}.tgz`);
  rmSync(tarball, { force: true });
  const packed = spawnSync('npm', ['pack'], { cwd: root, encoding: 'utf8', env: process.env });
  appendFileSync(transcript, `$ npm pack   (exit ${packed.status})\n${packed.stdout}${packed.stderr.split('\n').filter((l) => !l.startsWith('npm notice')).join('\n')}\n`);
  expect(packed.status).toBe(0);
  expect(section).toContain('`npm pack`');
  const listing = spawnSync('tar', ['tzf', tarball], { encoding: 'utf8' }).stdout.split('\n');
  // Compiled code with declarations, the prebuilt workflow bundle, the pinned tree; no tests, no sources.
  for (const file of ['package/dist/index.js', 'package/dist/index.d.ts', 'package/dist/scripts/phasegate.js', 'package/dist/workflow-bundle.js', 'package/npm-shrinkwrap.json', 'package/CHANGELOG.md']) {
    expect(listing).toContain(file);
  }
  expect(listing.filter((f) => f.startsWith('package/test/') || (f.endsWith('.ts') && !f.endsWith('.d.ts')))).toEqual([]);

  // ── an empty project installs it ────────────────────────────────────────────────────────────
  writeFileSync(path.join(project, 'package.json'), `${JSON.stringify({ name: 'app', version: '1.0.0', private: true }, null, 2)}\n`);
  try {
    run(`npm install --prefer-offline <clone>/phasegate-${version}.tgz`);
  } finally {
    rmSync(tarball, { force: true });
  }
  const installed = spawnSync('npx', ['phasegate', '--version'], { cwd: project, env, encoding: 'utf8' });
  expect(installed.stdout.trim()).toBe(version);

  // ── init, and the project's own servers ─────────────────────────────────────────────────────
  run('npx phasegate init');
  const configText = readFileSync(path.join(project, 'phasegate.config.ts'), 'utf8');
  expect(configText).toContain("import type { PhasegateConfigInput } from 'phasegate';");
  expect(existsSync(path.join(project, 'temporal.config.ts'))).toBe(false);

  const devStack = await start('npx phasegate dev', /Ctrl-C stops Temporal and PostgreSQL/);
  const exported = /export TEMPORAL_ADDRESS=(\S+) DATABASE_URL=(\S+)/.exec(devStack.output());
  expect(exported).not.toBeNull();
  const stack = { TEMPORAL_ADDRESS: exported![1], DATABASE_URL: exported![2] };
  expect(stack.TEMPORAL_ADDRESS).toBe(`127.0.0.1:${env.PHASEGATE_TEMPORAL_PORT}`);
  expect(stack.DATABASE_URL).toContain(`:${env.PHASEGATE_PG_PORT}/phasegate_dev`);
  // embedded PostgreSQL's data under the project, in .phasegate/ as README says
  expect(existsSync(path.join(project, '.phasegate', 'pg', 'PG_VERSION'))).toBe(true);

  // ── two revisions: plain JavaScript by hand, TypeScript from `revision` with a gate and a backfill ──
  const versions = path.join(project, 'migrations', 'versions');
  writeFileSync(path.join(versions, '0001_create_accounts.js'), block('// migrations/versions/0001_create_accounts.js'));
  run('npx phasegate revision -m "add accounts.plan and backfill it"');
  const tsFile = readdirSync(versions).find((f) => f.endsWith('_add_accounts_plan_and_backfill_it.ts'))!;
  const generated = readFileSync(path.join(versions, tsFile), 'utf8');
  expect(generated).toContain("import type { RevisionModule } from 'phasegate';");
  expect(generated).toContain("parent: 'create_accounts',");
  const stubs = / {2}upgrade\(op\) \{\n[\s\S]*?\n {2}\},\n {2}downgrade\(op\) \{\n[\s\S]*?\n {2}\},\n/;
  expect(generated).toMatch(stubs);
  writeFileSync(path.join(versions, tsFile), generated.replace(stubs, block('// the body of <id>_add_accounts_plan_and_backfill_it.ts')));
  const secondId = /id: '([0-9a-f]{12})'/.exec(generated)![1];

  // The declarations type-check the project's files (tsx does not): this repository's tsc, the project's node_modules.
  const tsc = spawnSync(
    process.execPath,
    [require.resolve('typescript/bin/tsc'), '--noEmit', '--strict', '--module', 'commonjs', '--moduleResolution', 'node', '--target', 'ES2022', '--skipLibCheck', '--typeRoots', path.join(root, 'node_modules', '@types'), '--types', 'node', 'phasegate.config.ts', path.join('migrations', 'versions', tsFile)],
    { cwd: project, encoding: 'utf8' },
  );
  expect(tsc.stdout + tsc.stderr).toBe('');
  expect(tsc.status).toBe(0);

  // ── review, worker, upgrade to the gate, approve, follow ───────────────────────────────────
  const sql = run('npx phasegate upgrade head --sql > up.sql', { extraEnv: stack });
  expect(sql.stdout).toBe('');
  const script = readFileSync(path.join(project, 'up.sql'), 'utf8');
  expect(script).toContain('CREATE TABLE accounts');
  expect(script).toContain("-v approve='deploy:plan'");

  const worker = await start('npx phasegate worker', /phasegate worker started/, stack);
  const upgraded = run('npx phasegate upgrade head --until gate', { extraEnv: stack, expectStatus: 2 });
  expect(upgraded.stdout).toContain('applied create_accounts');
  expect(upgraded.stdout).toContain('waits at gate "deploy:plan"');
  // Not a speed target, a hang check: stopping at the gate cancels the result's long poll, which
  // otherwise kept the process alive until the server ended it (about 20 s on every run).
  expect(upgraded.seconds).toBeLessThan(15);
  expect(run('npx phasegate status', { extraEnv: stack }).stdout).toMatch(/awaiting-approval at [0-9a-f]{12}/);

  const client = new pg.Client({ connectionString: stack.DATABASE_URL });
  await client.connect();
  try {
    // Stopped before the gate: the first revision applied, the column not there yet.
    expect((await client.query('SELECT version_num FROM phasegate_version')).rows).toEqual([{ version_num: 'create_accounts' }]);
    expect((await client.query("SELECT count(*)::int AS n FROM information_schema.columns WHERE table_name = 'accounts' AND column_name = 'plan'")).rows[0].n).toBe(0);

    expect(run('npx phasegate approve --gate deploy:plan --by you', { extraEnv: stack }).stdout).toContain('approve accepted');
    expect(run('npx phasegate follow', { extraEnv: stack }).stdout).toContain(`upgraded database "default" to ${secondId}`);
    expect(run('npx phasegate current', { extraEnv: stack }).stdout).toContain(`${secondId} (head)`);

    expect((await client.query('SELECT count(*)::int AS rows, count(plan)::int AS filled, count(*) FILTER (WHERE plan = $1)::int AS free FROM accounts', ['free'])).rows).toEqual([
      { rows: 5000, filled: 5000, free: 5000 },
    ]);
    expect((await client.query('SELECT version_num FROM phasegate_version')).rows).toEqual([{ version_num: secondId }]);
    expect((await client.query('SELECT gate, decided_by, decision FROM phasegate_approval')).rows).toEqual([{ gate: 'deploy:plan', decided_by: 'you', decision: 'approve' }]);

    // ── the API: the README's deploy script over a pattern's chain ───────────────────────────
    run(`npx phasegate new add-not-null-column accounts region text --backfill "'eu'"`);
    writeFileSync(path.join(project, 'deploy.js'), block('// deploy.js: `node deploy.js before-deploy`, ship the app, `node deploy.js after-deploy <gate>`'));
    const before = run('node deploy.js before-deploy', { extraEnv: stack, expectStatus: 2 });
    expect(before.stdout).toContain('waiting at gate deploy:accounts.region');
    run('node deploy.js after-deploy deploy:accounts.region', { extraEnv: stack });
    expect((await client.query("SELECT attnotnull FROM pg_attribute WHERE attrelid = 'accounts'::regclass AND attname = 'region'")).rows).toEqual([{ attnotnull: true }]);
    expect((await client.query("SELECT count(*)::int AS n FROM accounts WHERE region = 'eu'")).rows[0].n).toBe(5000);
    const heads = (await client.query('SELECT version_num FROM phasegate_version')).rows.map((r: { version_num: string }) => r.version_num);
    expect(heads).toHaveLength(1);
    expect(heads[0]).not.toBe(secondId);

    // A typed error, before anything changes: no DATABASE_URL means no `default` database.
    const refused = run('node deploy.js before-deploy', { extraEnv: { TEMPORAL_ADDRESS: stack.TEMPORAL_ADDRESS }, expectStatus: 1 });
    expect(refused.stderr).toMatch(/^UnknownDatabase: /m);
  } finally {
    await client.end();
  }

  // Ctrl-C: the worker drains and says so; then the dev stack stops both servers.
  expect(['0', 'SIGINT']).toContain(await stop(worker.child));
  expect(worker.output()).toContain('phasegate worker stopped');
  expect(['0', 'SIGINT']).toContain(await stop(devStack.child));
  expect(devStack.output()).toContain('[phasegate dev] postgres stopped');
  expect(await new Promise((resolve) => {
    const probe = new pg.Client({ connectionString: stack.DATABASE_URL, connectionTimeoutMillis: 2000 });
    probe.connect().then(() => probe.end().then(() => resolve('still up')), () => resolve('stopped'));
  })).toBe('stopped');
});
