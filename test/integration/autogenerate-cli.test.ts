/**
 * `revision --autogenerate`, `check` and `drift` as a user runs them: the CLI binary in a project
 * folder with a `schema.sql`, a real PostgreSQL, the chain applied by the `migrate` workflow (an
 * in-process worker). Exit codes are the contract CI jobs rely on: `check` exits 1 while anything
 * differs (also with the embedded shadow, whose package used to force exit code 0), `drift` exits 1
 * on a change made by hand. Bad input is refused before anything is written.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createPhasegateWorker } from '../../workers/worker';
import { bundleWorkflows, connectTestTemporal, createTestDatabase, silentLog, testConfig, uniqueId, type TestDatabase } from '../helpers';

jest.setTimeout(180_000);

const root = path.resolve(__dirname, '../..');
const tsxLoader = require.resolve('tsx');

let env: TestWorkflowEnvironment;
let bundle: WorkflowBundleWithSourceMap;
let db: TestDatabase;

beforeAll(async () => {
  [env, bundle] = await Promise.all([connectTestTemporal(), bundleWorkflows()]);
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
  await env?.teardown();
});

const SCHEMA = `CREATE TABLE accounts (
  id bigint PRIMARY KEY,
  email text NOT NULL,
  plan text NOT NULL DEFAULT 'free'
);
CREATE INDEX accounts_lower_email_idx ON accounts (lower(email));
`;

test('autogenerate writes the chain, check and drift exit 1 exactly while something differs', async () => {
  const alias = uniqueId('ag').replace('-', '_');
  const cwd = mkdtempSync(path.join(os.tmpdir(), 'phasegate-autogenerate-'));
  const versions = path.join(cwd, 'migrations/versions');
  mkdirSync(versions, { recursive: true });
  writeFileSync(path.join(cwd, 'temporal.config.ts'), `export default { temporal: { address: process.env.PHASEGATE_TEST_TEMPORAL_ADDRESS, taskQueue: process.env.PHASEGATE_TASK_QUEUE } };\n`);
  writeFileSync(path.join(cwd, 'schema.sql'), SCHEMA);
  // An existing database adopts phasegate: a baseline revision that builds what is there, stamped.
  await db.query('CREATE TABLE accounts (id bigint PRIMARY KEY, email text NOT NULL)');
  await db.query("INSERT INTO accounts SELECT g, 'u' || g || '@example.com' FROM generate_series(1, 500) g");
  writeFileSync(
    path.join(versions, '000base_baseline.js'),
    `module.exports = { id: '000base', parent: null, message: 'baseline',
  upgrade(op) { op.sql('CREATE TABLE accounts (id bigint PRIMARY KEY, email text NOT NULL)'); },
  downgrade(op) { op.dropTable('accounts'); } };
`,
  );

  const cli = (args: string[], extraEnv: Record<string, string> = {}) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(
        process.execPath,
        ['--import', tsxLoader, path.join(root, 'scripts/phasegate.ts'), ...args],
        { cwd, env: { ...process.env, [`PHASEGATE_DATABASE_URL_${alias.toUpperCase()}`]: db.url, ...extraEnv }, timeout: 120_000 },
        (error, stdout, stderr) => resolve({ code: error ? Number((error as { code?: unknown }).code ?? 1) : 0, stdout, stderr }),
      );
    });
  const files = () => readdirSync(versions).filter((f) => f.endsWith('.ts')).sort();

  // Before the baseline is stamped, check says so first (Alembic's check does the same).
  const unstamped = await cli(['check', '--database', alias]);
  expect(unstamped.code).toBe(1);
  expect(unstamped.stderr).toContain('1 revision(s) pending');
  expect((await cli(['stamp', 'head', '--database', alias])).code).toBe(0);

  // The database differs from schema.sql.
  const differs = await cli(['check', '--database', alias]);
  expect(differs.code).toBe(1);
  expect(differs.stderr).toContain("+ column public.accounts.plan text NOT NULL DEFAULT 'free'::text");
  expect(differs.stderr).toContain('+ index public.accounts.accounts_lower_email_idx');
  const embedded = await cli(['check', '--database', alias, '--shadow', 'embedded']);
  expect({ code: embedded.code, stderr: embedded.stderr.split('\n')[1] }).toEqual({ code: 1, stderr: differs.stderr.split('\n')[1] });

  // Bad input: refused, nothing written.
  const badRename = await cli(['revision', '--autogenerate', '-m', 'plan', '--database', alias, '--rename', 'accounts.nope=accounts.plan']);
  expect(badRename.code).toBe(1);
  expect(badRename.stderr).toContain('public.accounts has no column nope now');
  const noSchema = await cli(['revision', '--autogenerate', '-m', 'plan', '--database', alias, '--schema', 'missing.sql']);
  expect(noSchema.code).toBe(1);
  expect(noSchema.stderr).toContain(`no desired schema at ${path.join(cwd, 'missing.sql')}`);
  writeFileSync(path.join(cwd, 'broken.sql'), 'CREATE TABLE t (id bigint PRIMARY KEY);\nCREATE TABLE u (id bigint REFERENCES t (id),\n  name txet);\n');
  const broken = await cli(['check', '--database', alias, '--schema', 'broken.sql']);
  expect(broken.code).toBe(1);
  expect(broken.stderr).toContain('broken.sql:3:8: PostgreSQL refused the desired schema: type "txet" does not exist');
  expect(files()).toEqual([]);

  // Autogenerate: the add-not-null-column chain (with its gate) and a CONCURRENTLY index.
  const generated = await cli(['revision', '--autogenerate', '-m', 'plan column', '--database', alias, '--json']);
  expect(generated.code).toBe(0);
  const result = JSON.parse(generated.stdout) as { files: Array<{ id: string; phase: string; transactional: boolean; gate?: { name: string } }> };
  expect(result.files.map((f) => f.phase)).toEqual(['expand', 'enforce', 'validate', 'contract', 'build']);
  expect(result.files.find((f) => f.gate)?.gate?.name).toBe('enforce:accounts.plan');
  expect(result.files[4].transactional).toBe(false);
  expect(files()).toHaveLength(5);

  // The chain's head matches schema.sql (no database needed); the database has it pending.
  expect((await cli(['check', '--offline', '--database', alias])).code).toBe(0);
  expect((await cli(['check', '--database', alias])).stderr).toContain('5 revision(s) pending');
  const again = await cli(['revision', '--autogenerate', '-m', 'again', '--database', alias]);
  expect(again.code).toBe(1);
  expect(again.stderr).toContain(`database "${alias}" is not up to date: 5 revision(s) are not applied`);

  // Applied by the workflow, the gate approved by a person.
  const taskQueue = uniqueId('ag-cli');
  const config = testConfig({ temporal: { address: env.address, taskQueue }, databases: { [alias]: { url: db.url, migrationsDirectory: versions } } });
  const { worker } = await createPhasegateWorker({ config, log: silentLog, workflowBundle: bundle, taskQueue, connection: env.nativeConnection });
  await worker.runUntil(async () => {
    const upgrade = cli(['upgrade', '--database', alias], { PHASEGATE_TASK_QUEUE: taskQueue });
    for (;;) {
      const status = await cli(['status', '--database', alias, '--json'], { PHASEGATE_TASK_QUEUE: taskQueue });
      if (status.stdout.includes('"awaiting-approval"')) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    expect((await cli(['approve', '--database', alias, '--by', 'dba@example.com'], { PHASEGATE_TASK_QUEUE: taskQueue })).code).toBe(0);
    const done = await upgrade;
    expect({ code: done.code, stderr: done.stderr }).toEqual({ code: 0, stderr: expect.any(String) });
  });

  const same = await cli(['check', '--database', alias]);
  expect(same.code).toBe(0);
  expect(same.stdout).toContain('autogenerate would write nothing');
  const noDrift = await cli(['drift', '--database', alias]);
  expect(noDrift.code).toBe(0);
  expect(noDrift.stdout).toContain('no drift');

  // A hot fix made by hand in production.
  await db.query('ALTER TABLE accounts ADD COLUMN hotfix text');
  await db.query('CREATE INDEX accounts_plan_idx ON accounts (plan)');
  const drifted = await cli(['drift', '--database', alias]);
  expect(drifted.code).toBe(1);
  expect(drifted.stderr).toContain('- column public.accounts.hotfix');
  expect(drifted.stderr).toContain('- index public.accounts.accounts_plan_idx');
});
