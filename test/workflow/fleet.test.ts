/**
 * `migrateFleet` on the real dev server and 30 real databases of one PostgreSQL server: a canary of 1,
 * its gate, then waves of 10 with at most 5 migrations at once. Wave 1 is paused mid-wave (no new
 * starts, running backfills pause) and resumed; wave 2 has 2 databases whose revision fails, which
 * with failureThreshold 2 halts the fleet with both errors shown; after the fix, `retry` and `resume`,
 * all 30 reach head. Gates of the revisions are approved once per wave (approval policy `wave`), and
 * the fleet continues as new between waves.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { migrateFleet } from '../../workflows';
import { fleetAbortUpdate, fleetApproveWaveUpdate, fleetPauseUpdate, fleetResumeUpdate, fleetRetryUpdate, fleetStatusQuery, type FleetStatus, type MemberState } from '../../workflows/fleet-messages';
import { createPhasegateWorker } from '../../workers/worker';
import { bundleWorkflows, connectTestTemporal, createTestDatabase, eventually, silentLog, testConfig, uniqueId, writeMigrations, type TestDatabase } from '../helpers';

let env: TestWorkflowEnvironment;
let bundle: WorkflowBundleWithSourceMap;

beforeAll(async () => {
  env = await connectTestTemporal();
  bundle = await bundleWorkflows();
});
afterAll(() => env?.teardown());

const ACTIVE: MemberState[] = ['starting', 'running', 'awaiting-approval', 'paused', 'failed', 'blocked'];
const activeCount = (s: FleetStatus) => ACTIVE.reduce((n, k) => n + s.counts[k], 0);
/** The reason an Update was refused with (the validator's message travels as the failure's cause). */
const refusal = (update: Promise<unknown>) =>
  update.then(
    () => {
      throw new Error('expected the update to be refused');
    },
    (err: { cause?: { message?: string }; message: string }) => err.cause?.message ?? err.message,
  );

/** r1 adds `plan` and backfills it in small paced batches; r2, behind gate `contract`, adds a unique constraint on email. */
const migrations = () =>
  writeMigrations({
    'r1_add_plan.js': `module.exports = {
      id: 'r1', parent: null, message: 'add plan',
      upgrade(op) { op.addColumn('accounts', 'plan', 'text'); },
      downgrade(op) { op.dropColumn('accounts', 'plan'); },
      backfill: { table: 'accounts', set: { plan: "'free'" }, where: 'plan IS NULL', batchSize: 20, maxRowsPerSecond: 400, targetBatchMs: 0 },
    };`,
    'r2_unique_email.js': `module.exports = {
      id: 'r2', parent: 'r1', message: 'unique email',
      gate: { name: 'contract', prompt: 'the app no longer writes duplicate emails' },
      upgrade(op) { op.sql('ALTER TABLE accounts ADD CONSTRAINT accounts_email_key UNIQUE (email)'); },
      downgrade(op) { op.sql('ALTER TABLE accounts DROP CONSTRAINT accounts_email_key'); },
    };`,
  });

test('30 databases: canary → gate → waves of 10 (5 at once); pause mid-wave; 2 failures halt wave 2; fix, retry, resume → all at head', async () => {
  const prefix = `fl${randomUUID().slice(0, 6)}`;
  const aliases = Array.from({ length: 30 }, (_, i) => `${prefix}_${String(i).padStart(2, '0')}`);
  const broken = [aliases[12], aliases[13]]; // the 2nd and 3rd database of wave 2 (wave 0 is the canary)
  const dbs = new Map<string, TestDatabase>();
  for (const alias of aliases) {
    const db = await createTestDatabase();
    // Wave 1's tables are bigger, so its backfills are still running when the pause arrives.
    const rows = aliases.indexOf(alias) >= 1 && aliases.indexOf(alias) <= 10 ? 1200 : 60;
    await db.query('CREATE TABLE accounts (id bigint PRIMARY KEY, email text NOT NULL)');
    await db.query(`INSERT INTO accounts SELECT i, 'u' || i || '@example.com' FROM generate_series(1, ${rows}) i`);
    if (broken.includes(alias)) await db.query("INSERT INTO accounts VALUES (100000, 'u1@example.com')");
    dbs.set(alias, db);
  }
  const dir = migrations();
  const config = testConfig({ databases: Object.fromEntries(aliases.map((a) => [a, { url: dbs.get(a)!.url, migrationsDirectory: dir, poolSize: 3 }])) });
  const taskQueue = uniqueId('fleet');
  const { worker } = await createPhasegateWorker({ config, log: silentLog, workflowBundle: bundle, taskQueue, connection: env.nativeConnection });
  try {
    await worker.runUntil(async () => {
      const fleetId = uniqueId('fleet-tenants');
      const handle = await env.client.workflow.start(migrateFleet, {
        workflowId: fleetId,
        taskQueue,
        args: [{ select: `${prefix}_*`, target: 'head', rollout: { canary: 1, waveSize: 10, maxConcurrent: 5, failureThreshold: 2 }, continueAsNewAfterEvents: 60 }],
      });
      let maxActive = 0;
      const status = () => handle.query(fleetStatusQuery);
      const until = (what: string, ok: (s: FleetStatus) => boolean, timeoutMs = 60_000) =>
        eventually(
          what,
          async () => {
            const s = await status();
            maxActive = Math.max(maxActive, activeCount(s));
            return ok(s) ? s : undefined;
          },
          timeoutMs,
        );
      const by = { by: 'alice' };

      // Wave 0, the canary: its migration reaches gate `contract`; one approveWave opens it.
      let s = await until('canary at its gate', (x) => x.counts['awaiting-approval'] === 1);
      expect(s.waves.map((w) => w.length)).toEqual([1, 10, 10, 9]);
      expect(s.waiting).toMatch(/wait at gate contract/);
      expect((await handle.executeUpdate(fleetApproveWaveUpdate, { args: [by] })).message).toMatch(/gate contract approved for wave 0: sent to 1/);
      s = await until('the canary settled, the fleet at its gate', (x) => x.state === 'awaiting-approval');
      expect(s.counts.done).toBe(1);
      expect(s.counts.pending).toBe(29);
      expect(s.waiting).toMatch(/start wave 1/);
      expect(await refusal(handle.executeUpdate(fleetApproveWaveUpdate, { args: [{ by: '' }] }))).toMatch(/"by" must name who decides/);

      // Wave 1, with the gate approved ahead for the whole wave; paused once backfills run.
      await handle.executeUpdate(fleetApproveWaveUpdate, { args: [by] });
      await handle.executeUpdate(fleetApproveWaveUpdate, { args: [{ ...by, gate: 'contract' }] });
      await until('wave 1 running', (x) => x.wave === 1 && x.counts.running > 0);
      await eventually('a backfill of wave 1 running', async () => {
        for (const alias of aliases.slice(1, 11)) {
          const own = await env.client.workflow.getHandle(`migrate-${alias}`).query<{ state: string }>('status').catch(() => null);
          if (own?.state === 'backfilling') return true;
        }
        return false;
      });
      expect((await handle.executeUpdate(fleetPauseUpdate, { args: [by] })).message).toMatch(/pause sent to/);
      s = await until('running backfills paused', (x) => Object.values(x.members).filter((m) => m.wave === 1 && ACTIVE.includes(m.state)).every((m) => m.state === 'paused' || m.migrateState === 'paused'), 30_000);
      expect(s.state).toBe('paused');
      const frozen = s.counts.pending;
      expect(frozen).toBeGreaterThan(0);
      const rowsDone = async () => (await Promise.all(aliases.slice(1, 11).map(async (a) => Number((await dbs.get(a)!.query<{ n: string }>("SELECT count(*) AS n FROM accounts WHERE plan = 'free'").catch(() => ({ rows: [{ n: '0' }] }))).rows[0].n)))).reduce((x, y) => x + y, 0);
      const before = await rowsDone();
      await new Promise((r) => setTimeout(r, 2000));
      s = await status();
      expect(s.counts.pending).toBe(frozen); // no new starts while paused
      expect(await rowsDone()).toBeLessThanOrEqual(before + 5 * 20); // at most the batch each had in flight
      expect(await refusal(handle.executeUpdate(fleetPauseUpdate, { args: [by] }))).toMatch(/already paused/);
      await handle.executeUpdate(fleetResumeUpdate, { args: [by] });

      // Wave 2: two databases fail at r2 (duplicate emails); with threshold 2 the fleet halts.
      await until('wave 2 at the gate', (x) => x.wave === 2 && x.counts['awaiting-approval'] > 0, 120_000);
      await handle.executeUpdate(fleetApproveWaveUpdate, { args: [by] });
      s = await until('wave 2 halted on 2 failures', (x) => x.state === 'halted' && x.failures.length === 2, 60_000);
      expect(s.failures.map((f) => f.database).sort()).toEqual([...broken].sort());
      for (const f of s.failures) expect(f.error).toMatch(/could not create unique index|duplicate/i);
      s = await until('the running ones of wave 2 finished', (x) => activeCount(x) === 2, 60_000);
      const pendingWhenHalted = s.counts.pending;
      expect(pendingWhenHalted).toBeGreaterThan(0); // stopped starting new databases
      await new Promise((r) => setTimeout(r, 1000));
      expect((await status()).counts.pending).toBe(pendingWhenHalted);

      // Fix, retry, resume.
      for (const alias of broken) await dbs.get(alias)!.query('DELETE FROM accounts WHERE id = 100000');
      expect((await handle.executeUpdate(fleetRetryUpdate, { args: [by] })).message).toMatch(new RegExp(broken.join('.*')));
      await until('the two retried to done', (x) => broken.every((a) => x.members[a].state === 'done'), 60_000);
      expect((await status()).state).toBe('halted'); // a halt lasts until a person resumes
      expect((await handle.executeUpdate(fleetResumeUpdate, { args: [by] })).message).toMatch(/resumed/);
      // Wave 3 gets its gate approved as its databases reach it.
      await until('wave 3 at the gate', (x) => x.wave === 3 && x.counts['awaiting-approval'] > 0, 120_000);
      await handle.executeUpdate(fleetApproveWaveUpdate, { args: [by] });

      const result = await handle.result();
      expect(result.outcome).toBe('done');
      expect(result.counts.done).toBe(30);
      expect(result.notAtTarget).toEqual([]);
      expect(maxActive).toBeLessThanOrEqual(5);
      expect(maxActive).toBeGreaterThanOrEqual(2);
      const final = await status();
      expect(final.runs).toBeGreaterThan(1); // continued as new between waves
      for (const alias of aliases) {
        const { rows } = await dbs.get(alias)!.query<{ version_num: string }>('SELECT version_num FROM phasegate_version');
        expect(rows.map((r) => r.version_num)).toEqual(['r2']);
      }
      // The UI lists the fleet (each of its runs) and its 30 migrations by PhasegateFleet.
      await eventually('visibility lists fleet + 30 migrations', async () => {
        const ids = new Set<string>();
        for await (const execution of env.client.workflow.list({ query: `PhasegateFleet = "${fleetId}"` })) ids.add(`${execution.type}:${execution.workflowId}`);
        return ids.size === 31 && ids.has(`migrateFleet:${fleetId}`) && aliases.every((a) => ids.has(`migrate:migrate-${a}`));
      });
      expect(await refusal(handle.executeUpdate(fleetAbortUpdate, { args: [by] }))).toMatch(/already completed/); // the fleet ended: the server refuses
      // The history each run of the fleet kept (docs/fleets.md "Scale" quotes these figures).
      const runs: Array<{ runId: string; historyLength: number; start: string }> = [];
      for await (const e of env.client.workflow.list({ query: `WorkflowId = "${fleetId}"` })) runs.push({ runId: e.runId, historyLength: e.historyLength, start: e.startTime.toISOString() });
      runs.sort((x, y) => x.start.localeCompare(y.start));
      const artifacts = path.join(__dirname, '..', '..', 'test-artifacts', 'fleet');
      mkdirSync(artifacts, { recursive: true });
      writeFileSync(path.join(artifacts, 'history.json'), `${JSON.stringify({ databases: 30, waves: final.waves.map((w) => w.length), runs }, null, 2)}\n`);
      expect(runs.length).toBe(final.runs);
      expect(Math.max(...runs.map((r) => r.historyLength))).toBeLessThan(1000);
    });
  } finally {
    await Promise.all([...dbs.values()].map((db) => db.drop()));
  }
}, 420_000);

test('bad input fails the fleet at once, listing every problem; an unknown database stops it before any migration starts', async () => {
  const db = await createTestDatabase();
  const config = testConfig({ databases: { known_one: { url: db.url, migrationsDirectory: migrations() } } });
  const taskQueue = uniqueId('fleet-bad');
  const { worker } = await createPhasegateWorker({ config, log: silentLog, workflowBundle: bundle, taskQueue, connection: env.nativeConnection });
  try {
    await worker.runUntil(async () => {
      const bad = await env.client.workflow.start(migrateFleet, {
        workflowId: uniqueId('fleet-bad'),
        taskQueue,
        args: [{ databases: ['known_one'], select: 'x*', rollout: { waveSize: 0, maxConcurent: 3 } } as never],
      });
      const failure = await bad.result().catch((err: { cause?: { message?: string } }) => err.cause?.message ?? String(err));
      expect(failure).toMatch(/waveSize.*at least 1/);
      expect(failure).toMatch(/unknown field\(s\) "maxConcurent"/);
      expect(failure).toMatch(/exactly one of them/);

      const unknown: WorkflowHandle<typeof migrateFleet> = await env.client.workflow.start(migrateFleet, { workflowId: uniqueId('fleet-unknown'), taskQueue, args: [{ databases: ['known_one', 'nope'] }] });
      const message = await unknown.result().catch((err: { cause?: { cause?: { message?: string } } }) => err.cause?.cause?.message ?? String(err));
      expect(message).toMatch(/no database "nope"; configured: known_one/);
      // Nothing started: the known database's migration never ran.
      expect((await db.query("SELECT to_regclass('phasegate_version') AS t")).rows[0].t).toBeNull();
    });
  } finally {
    await db.drop();
  }
});

test('a database whose migration already runs outside the fleet fails visibly; cancelling the fleet leaves its migrations running and controllable', async () => {
  const a = await createTestDatabase();
  const b = await createTestDatabase();
  const prefix = `fc${randomUUID().slice(0, 6)}`;
  const [aliasA, aliasB] = [`${prefix}_a`, `${prefix}_b`];
  for (const db of [a, b]) await db.query("CREATE TABLE accounts (id bigint PRIMARY KEY, email text NOT NULL); INSERT INTO accounts VALUES (1, 'a@example.com')");
  const dir = migrations();
  const config = testConfig({ databases: { [aliasA]: { url: a.url, migrationsDirectory: dir }, [aliasB]: { url: b.url, migrationsDirectory: dir } } });
  const taskQueue = uniqueId('fleet-cancel');
  const { worker } = await createPhasegateWorker({ config, log: silentLog, workflowBundle: bundle, taskQueue, connection: env.nativeConnection });
  try {
    await worker.runUntil(async () => {
      // Someone already migrates B by hand.
      const own = await env.client.workflow.start('migrate', { workflowId: `migrate-${aliasB}`, taskQueue, args: [{ database: aliasB, target: 'head' }] });
      const fleet = await env.client.workflow.start(migrateFleet, { workflowId: uniqueId('fleet-cancel'), taskQueue, args: [{ databases: [aliasA, aliasB], rollout: { maxConcurrent: 2, failureThreshold: 5, approval: 'database' } }] });
      const s = await eventually('A at its gate, B refused', async () => {
        const x = await fleet.query(fleetStatusQuery);
        return x.members[aliasA]?.state === 'awaiting-approval' && x.members[aliasB]?.state === 'ended' ? x : undefined;
      });
      expect(s.members[aliasB].error).toMatch(/already running \(a migration started outside this fleet\)/);
      expect(s.failures.map((f) => f.database)).toEqual([aliasB]);
      // Policy "database": the fleet does not approve for them.
      expect(await refusal(fleet.executeUpdate(fleetApproveWaveUpdate, { args: [{ by: 'alice' }] }))).toMatch(/approval policy is "database"/);

      await fleet.cancel();
      await expect(fleet.result()).rejects.toThrow();
      expect((await fleet.describe()).status.name).toBe('CANCELLED');
      const child = env.client.workflow.getHandle(`migrate-${aliasA}`);
      expect((await child.describe()).status.name).toBe('RUNNING'); // not cancelled with its fleet
      await child.executeUpdate('approve', { args: [{ by: 'alice' }] });
      expect(await child.result()).toMatchObject({ outcome: 'done' });
      await own.terminate('test over');
    });
  } finally {
    await Promise.all([a.drop(), b.drop()]);
  }
});
