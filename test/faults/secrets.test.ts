/**
 * Fault matrix case 17: the database password never leaves the worker. Every pattern runs (as
 * revision files, docs/patterns.md) through a real worker process logging at info level, against a
 * database owned by a role with a random password; one step fails on the way (an orphan row makes
 * VALIDATE of the foreign key fail, so a failure message is in history), and a second alias with a
 * wrong password fails to connect. Then every history (each run of the parent, each backfill child,
 * payloads decoded) and the worker's whole output are searched for the password, the URL and its
 * `user:password@` part.
 */
import { randomBytes } from 'node:crypto';
import { newPattern } from '../../lib/commands';
import { migrate } from '../../workflows';
import { backfillWorkflowId, retrySignal, statusQuery } from '../../workflows/messages';
import type { PhasegateConfigInput } from '../../lib/config';
import { spawnWorkerProcess, testConfig } from '../helpers';
import { eventually, labConfig, labDatabase, uniqueId, untilState, useFaultLab, versionRows, writeMigrations, type LabDatabase } from './harness';

const lab = useFaultLab();

/** A role with a random password, owning a fresh database; dropped after the test. */
async function ownedDatabase(admin: LabDatabase): Promise<{ db: LabDatabase; role: string; password: string; drop(): Promise<void> }> {
  const role = `h6_${randomBytes(4).toString('hex')}`;
  const password = `Pw${randomBytes(12).toString('hex')}Zq`;
  const name = `h6db_${randomBytes(4).toString('hex')}`;
  await admin.sql(`CREATE ROLE ${role} LOGIN PASSWORD '${password}'`);
  await admin.sql(`CREATE DATABASE ${name} OWNER ${role}`);
  const url = new URL(admin.url);
  url.username = role;
  url.password = password;
  url.pathname = `/${name}`;
  return {
    db: labDatabase(name, url.toString()),
    role,
    password,
    async drop() {
      await admin.sql(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.sql(`DROP ROLE IF EXISTS ${role}`);
    },
  };
}

/** Every string in a history, with each payload's bytes decoded (payloads are JSON bytes, not text). */
function textOf(value: unknown, out: string[] = []): string[] {
  if (value === null || value === undefined) return out;
  if (typeof value === 'string') out.push(value);
  else if (value instanceof Uint8Array) out.push(Buffer.from(value).toString('utf8'));
  else if (Array.isArray(value)) for (const v of value) textOf(v, out);
  else if (typeof value === 'object') for (const v of Object.values(value as Record<string, unknown>)) textOf(v, out);
  return out;
}

async function historiesOf(workflowIds: string[]): Promise<string> {
  const texts: string[] = [];
  for (const workflowId of workflowIds) {
    const runs = await eventually(`runs of ${workflowId}`, async () => {
      const found: string[] = [];
      for await (const w of lab.env.client.workflow.list({ query: `WorkflowId = "${workflowId}"` })) found.push(w.runId);
      return found.length ? found : undefined;
    });
    for (const runId of runs) texts.push(...textOf(await lab.env.client.workflow.getHandle(workflowId, runId).fetchHistory()));
  }
  return texts.join('\n');
}

test('fault 17: every pattern, a failure and a refused login leave no password, URL or user:password@ in any history or the info log', async () => {
  const admin = await lab.database();
  const owned = await ownedDatabase(admin);
  const { db, role, password } = owned;
  const wrongPassword = `Wr${randomBytes(10).toString('hex')}Qx`;
  const wrongUrl = (() => {
    const u = new URL(db.url);
    u.password = wrongPassword;
    return u.toString();
  })();
  const secrets = [password, wrongPassword, db.url, wrongUrl, `${role}:${password}@`, `${role}:${wrongPassword}@`, encodeURIComponent(password)];
  const dir = writeMigrations({});
  const taskQueue = uniqueId('fault17');
  const config = labConfig(lab, db, dir, taskQueue);
  (config.databases as Record<string, unknown>).broken = { url: wrongUrl, migrationsDirectory: dir };
  // A real worker process at info level: its whole log is searched too.
  const worker = spawnWorkerProcess(config as PhasegateConfigInput, { env: { PHASEGATE_LOG_LEVEL: 'info' } });
  try {
    await db.sql(`CREATE TABLE orgs (id bigint PRIMARY KEY)`);
    await db.sql(`INSERT INTO orgs SELECT generate_series(1, 5)`);
    await db.sql(`CREATE TABLE accounts (id bigserial PRIMARY KEY, email text, name text, amount integer, org_id bigint)`);
    await db.sql(`INSERT INTO accounts (email, name, amount, org_id) SELECT 'u' || g || '@example.com', 'n' || g, g, g % 5 + 1 FROM generate_series(1, 40) g`);
    await db.sql(`UPDATE accounts SET org_id = 999 WHERE id = 7`); // an orphan: VALIDATE of the key fails

    const patterns: Array<{ pattern: string; args: string[]; options?: Record<string, unknown> }> = [
      { pattern: 'add-index', args: ['accounts', 'email'] },
      { pattern: 'add-unique', args: ['accounts', 'email'] },
      { pattern: 'add-not-null-column', args: ['accounts', 'region', 'text'], options: { default: "'eu'" } },
      { pattern: 'add-foreign-key', args: ['accounts', 'org_id', 'orgs'] },
      { pattern: 'rename-column', args: ['accounts', 'name', 'full_name'] },
      { pattern: 'change-column-type', args: ['accounts', 'amount', 'bigint'], options: { fromType: 'integer' } },
    ];
    const files = [];
    const patternConfig = testConfig(config);
    for (const p of patterns) files.push(...(await newPattern({ config: patternConfig, database: 'app', ...p })).files);

    const workflowId = uniqueId('migrate-app');
    const handle = await lab.env.client.workflow.start(migrate, { workflowId, taskQueue, args: [{ database: 'app', target: 'head', direction: 'upgrade', autoApprove: true }] });
    const failed = await untilState(handle, 'failed', 90_000);
    expect(failed.failure).toMatchObject({ kind: 'revision', type: 'SqlError' });
    expect(failed.failure?.message).toMatch(/foreign key/);
    await db.sql(`UPDATE accounts SET org_id = 1 WHERE id = 7`);
    await handle.signal(retrySignal, { by: 'alice' });
    expect((await handle.result()).outcome).toBe('done');
    expect((await versionRows(db)).version).toEqual([files[files.length - 1].id]);
    expect((await handle.query(statusQuery)).state).toBe('done');

    // A second alias whose URL has the wrong password: the login is refused, and says so without it.
    const brokenId = uniqueId('migrate-broken');
    const broken = await lab.env.client.workflow.start(migrate, { workflowId: brokenId, taskQueue, args: [{ database: 'broken', target: 'head', direction: 'upgrade' }] });
    const refusedLogin = await broken.result().then(
      () => '',
      (err: Error) => textOf(err).join(' '),
    );
    expect(refusedLogin).toContain(`password authentication failed for user "${role}"`);

    const children = files.filter((f) => f.backfill).map((f) => backfillWorkflowId(workflowId, f.id));
    expect(children.length).toBeGreaterThanOrEqual(3);
    const history = await historiesOf([workflowId, ...children, brokenId]);
    const log = worker.output();
    // The searches can find things: the failure, the plan, the backfills and the login refusal are there.
    expect(history).toContain('violates foreign key constraint');
    expect(history).toContain('password authentication failed');
    expect(history).toContain('_phasegate_new_amount');
    expect(log).toContain('"msg":"planned migration"');
    expect(log).toContain('"msg":"revision step done"');
    for (const secret of secrets) {
      expect({ where: 'history', found: history.includes(secret) ? secret : null }).toEqual({ where: 'history', found: null });
      expect({ where: 'worker log', found: log.includes(secret) ? secret : null }).toEqual({ where: 'worker log', found: null });
    }
  } finally {
    await worker.kill('SIGTERM');
    await owned.drop().catch(() => undefined);
  }
}, 120_000);
