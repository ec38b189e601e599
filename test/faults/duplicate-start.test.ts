/**
 * Fault 15: a migration of the same database is started twice. Under the same workflow id Temporal
 * refuses the second start (and `phasegate upgrade` says so in one line); under another workflow
 * id, and from a worker of another Temporal namespace serving the same database, the lease refuses
 * it at once (MigrationInProgress). Either way exactly one migration runs, and it finishes.
 */
import { Client, WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureTemporalCli } from '../../lib/local/temporal-cli';
import { migrate } from '../../workflows';
import { approveSignal, type MigrateInput } from '../../workflows/messages';
import { searchAttributeKeys } from '../../workflows/search-attributes';
import { TypedSearchAttributes } from '@temporalio/common';
import { createPhasegateWorker } from '../../workers/worker';
import { silentLog, testConfig } from '../helpers';
import {
  accountsTable,
  eventually,
  labConfig,
  uniqueId,
  untilState,
  useFaultLab,
  versionRows,
  withWorker,
  writeMigrations,
  type LabDatabase,
  type MigrateHandle,
} from './harness';

const lab = useFaultLab();
const root = path.resolve(__dirname, '../..');

const REV = 'f15a00000001';
const gatedRevision = `module.exports = {
  id: '${REV}', parent: null, message: 'add accounts.note',
  gate: { name: 'deploy', prompt: 'deploy the app' },
  upgrade(op) { op.addColumn('accounts', 'note', 'text'); },
  downgrade(op) { op.dropColumn('accounts', 'note'); },
};`;

/** The duplicate ends on its own, quickly (a lease refusal is non-retryable), and how. */
async function closedQuickly(handle: MigrateHandle): Promise<string> {
  return eventually(
    `${handle.workflowId} to end (a duplicate must be refused at once, not wait at the gate)`,
    async () => {
      const d = await handle.describe();
      return d.status.name !== 'RUNNING' ? d.status.name : undefined;
    },
    30_000,
  );
}

async function refusedAsInProgress(handle: MigrateHandle, holder: RegExp): Promise<void> {
  expect(await closedQuickly(handle)).toBe('FAILED');
  const err = await handle.result().then(
    () => undefined,
    (e: unknown) => e,
  );
  let cause = err as { cause?: unknown; type?: string; message?: string } | undefined;
  while (cause?.cause) cause = cause.cause as typeof cause;
  expect(cause?.type).toBe('MigrationInProgress');
  expect(cause?.message).toMatch(holder);
}

async function finishFirst(first: MigrateHandle, db: LabDatabase): Promise<void> {
  // The first one never noticed the duplicates: still at its gate, and it finishes when approved.
  const status = await untilState(first, 'awaiting-approval');
  expect(status.failure).toBeNull();
  await first.signal(approveSignal, { by: 'alice' });
  expect(await first.result()).toMatchObject({ outcome: 'done', applied: [REV], headsAfter: [REV] });
  expect(await versionRows(db)).toEqual({ version: [REV], pending: [] });
  expect(await db.sql(`SELECT column_name FROM information_schema.columns WHERE table_name = 'accounts' ORDER BY ordinal_position`)).toEqual([
    { column_name: 'id' },
    { column_name: 'email' },
    { column_name: 'note' },
  ]);
  // Only the first one decided anything, and it let go of the database at its end.
  expect(await db.sql('SELECT decision, decided_by, gate FROM phasegate_approval ORDER BY id')).toEqual([
    { decision: 'approve', decided_by: 'alice', gate: 'deploy' },
  ]);
  expect(await db.sql('SELECT count(*)::int AS n FROM phasegate_lease')).toEqual([{ n: 0 }]);
}

function runCli(cwd: string, args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', require.resolve('tsx'), path.join(root, 'scripts/phasegate.ts'), ...args],
      { cwd, env: { ...process.env, ...env }, timeout: 60_000 },
      (error, stdout, stderr) => resolve({ code: error ? Number((error as { code?: unknown }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

test('fault 15: the same workflow id twice: Temporal refuses the second start, `phasegate upgrade` prints one clear line (no stack), the first finishes', async () => {
  const db = await lab.database();
  await accountsTable(db, 100);
  // An alias of its own: `phasegate upgrade` names its workflow migrate-<alias>.
  const alias = uniqueId('dup').replace('-', '_');
  const cwd = mkdtempSync(path.join(os.tmpdir(), 'phasegate-dup-project-'));
  mkdirSync(path.join(cwd, 'migrations/versions'), { recursive: true });
  writeFileSync(path.join(cwd, 'migrations/versions', `${REV}_note.js`), gatedRevision);
  const taskQueue = uniqueId('fault-dup');
  writeFileSync(
    path.join(cwd, 'temporal.config.ts'),
    `export default { temporal: { address: ${JSON.stringify(lab.env.address)}, taskQueue: ${JSON.stringify(taskQueue)} } };\n`,
  );
  const config = testConfig({
    temporal: { address: lab.env.address, taskQueue },
    databases: { [alias]: { url: db.url, migrationsDirectory: path.join(cwd, 'migrations/versions') } },
  });
  const { worker } = await createPhasegateWorker({ config, log: silentLog, workflowBundle: lab.bundle, taskQueue, connection: lab.env.nativeConnection });
  await worker.runUntil(async () => {
    const workflowId = `migrate-${alias}`;
    const args: [MigrateInput] = [{ database: alias, target: 'head', direction: 'upgrade' }];
    const first = await lab.env.client.workflow.start(migrate, { workflowId, taskQueue, args });
    await untilState(first, 'awaiting-approval');

    // Straight to Temporal: one run per workflow id.
    const again = lab.env.client.workflow.start(migrate, { workflowId, taskQueue, args });
    await expect(again).rejects.toBeInstanceOf(WorkflowExecutionAlreadyStartedError);

    // What an operator sees running `phasegate upgrade` again.
    const run = await runCli(cwd, ['upgrade', '--database', alias], { [`PHASEGATE_DATABASE_URL_${alias.toUpperCase()}`]: db.url });
    expect(run.code).toBe(1);
    expect(run.stderr.trim()).toBe(
      `phasegate: a migration of database "${alias}" is already running (workflow ${workflowId}); follow it with phasegate status, or cancel it in the UI`,
    );
    expect(run.stderr).not.toMatch(/^\s+at /m);

    // Nothing replaced the first run.
    expect((await lab.env.client.workflow.getHandle(workflowId).describe()).runId).toBe(first.firstExecutionRunId);
    await finishFirst(first, db);
  });
}, 90_000);

test('fault 15: another workflow id for the same database: the lease refuses it at once (MigrationInProgress), the first finishes', async () => {
  const db = await lab.database();
  await accountsTable(db, 100);
  const dir = writeMigrations({ [`${REV}_note.js`]: gatedRevision });
  await withWorker(lab, db, dir, async (w) => {
    const first = await w.start({}, uniqueId('migrate-app'));
    await untilState(first, 'awaiting-approval');
    const second = await w.start({}, uniqueId('migrate-app-2'));
    await refusedAsInProgress(second, new RegExp(`^${first.workflowId} is migrating database "app" \\(since `));
    await finishFirst(first, db);
  });
}, 90_000);

test('fault 15: a worker of another namespace for the same database: the lease finds the owner in its own namespace and refuses both duplicates', async () => {
  const db = await lab.database();
  await accountsTable(db, 100);
  const dir = writeMigrations({ [`${REV}_note.js`]: gatedRevision });

  // A second namespace on the shared dev server, with phasegate's search attributes.
  const namespace = uniqueId('phasegate-ns2');
  const temporal = ensureTemporalCli(root, () => undefined).path;
  const operator = (args: string[]) =>
    new Promise<void>((resolve, reject) =>
      execFile(temporal, ['operator', ...args, '--address', lab.env.address], { timeout: 30_000 }, (error, _out, stderr) =>
        error ? reject(new Error(`temporal operator ${args.join(' ')}: ${stderr || error.message}`)) : resolve(),
      ),
    );
  await operator(['namespace', 'create', '--namespace', namespace, '--retention', '24h']);
  for (const key of searchAttributeKeys) {
    await eventually(
      `search attribute ${key.name} in ${namespace}`,
      () =>
        operator(['search-attribute', 'create', '--namespace', namespace, '--name', key.name, '--type', TypedSearchAttributes.toMetadataType(key.type)]).then(
          () => true,
          () => false,
        ),
      30_000,
    );
  }
  const other = new Client({ connection: lab.env.connection, namespace });

  await withWorker(lab, db, dir, async (w) => {
    const first = await w.start({}, uniqueId('migrate-app'));
    await untilState(first, 'awaiting-approval');

    const taskQueue = uniqueId('fault-ns2');
    const config = testConfig({ ...labConfig(lab, db, dir, taskQueue), temporal: { address: lab.env.address, taskQueue, namespace } });
    const { worker } = await eventually(
      `a worker in namespace ${namespace}`,
      () =>
        createPhasegateWorker({ config, log: silentLog, workflowBundle: lab.bundle, taskQueue, connection: lab.env.nativeConnection }).catch(() => undefined),
      30_000,
    );
    await worker.runUntil(async () => {
      const holder = new RegExp(`^${first.workflowId} \\(namespace default\\) is migrating database "app" \\(since `);
      const args: [MigrateInput] = [{ database: 'app', target: 'head', direction: 'upgrade' }];
      // The same workflow id (what `phasegate upgrade` with that namespace's config starts), then another one.
      const sameId = await other.workflow.start(migrate, { workflowId: first.workflowId, taskQueue, args });
      await refusedAsInProgress(sameId, holder);
      const otherId = await other.workflow.start(migrate, { workflowId: uniqueId('migrate-app-ns2'), taskQueue, args });
      await refusedAsInProgress(otherId, holder);
      // The lease still names the first migration, in its namespace.
      expect(await db.sql('SELECT workflow_id, namespace FROM phasegate_lease')).toEqual([{ workflow_id: first.workflowId, namespace: 'default' }]);
    });
    await finishFirst(first, db);
  });
}, 90_000);
