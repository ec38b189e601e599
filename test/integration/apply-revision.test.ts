/**
 * @pg-matrix: its SQL, catalog or server behaviour can differ by PostgreSQL major; `npm run test:pg15` runs it again on 15.
 * The revision activities against real PostgreSQL, run in MockActivityEnvironment (no Temporal).
 */
import { appendFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { createActivities } from '../../activities';
import { DatabasePools } from '../../activities/db';
import type { PhasegateConfig } from '../../lib/config';
import { createTestDatabase, runActivity, silentLog, testConfig, writeMigrations, type TestDatabase } from '../helpers';

const addOrgId = `module.exports = {
  id: 'aaa111', parent: null, message: 'add org_id',
  upgrade(op) { op.addColumn('accounts', 'org_id', 'bigint'); },
  downgrade(op) { op.dropColumn('accounts', 'org_id'); },
};`;

let db: TestDatabase;
let pools: DatabasePools;
let config: PhasegateConfig;
let dir: string;

beforeEach(async () => {
  db = await createTestDatabase();
  await db.query('CREATE TABLE accounts (id bigint PRIMARY KEY)');
  dir = writeMigrations({ 'aaa111_add_org_id.js': addOrgId });
  config = testConfig({ databases: { app: { url: db.url, migrationsDirectory: dir } }, defaults: { lockTimeoutMs: 200 } });
  pools = new DatabasePools(config);
});
afterEach(async () => {
  await pools.close();
  await db.drop();
});

const activities = () => createActivities({ config, pools, log: silentLog });

async function planUpgrade() {
  return runActivity(activities().planMigration, { database: 'app', target: 'head', direction: 'upgrade' as const });
}

test('plan renders each step with its SQL, content hash and version-table transition', async () => {
  const plan = await planUpgrade();
  expect(plan.currentHeads).toEqual([]);
  expect(plan.steps).toHaveLength(1);
  expect(plan.steps[0]).toMatchObject({
    revision: 'aaa111',
    file: 'aaa111_add_org_id.js',
    transactional: true,
    headsBefore: [],
    headsAfter: ['aaa111'],
    statements: [{ sql: 'ALTER TABLE "accounts" ADD COLUMN IF NOT EXISTS "org_id" bigint' }],
  });
  expect(plan.steps[0].hash).toMatch(/^[0-9a-f]{64}$/);
});

test('a retried applyRevision (the first attempt committed, its result was lost) does not apply twice', async () => {
  const plan = await planUpgrade();
  const first = await runActivity(activities().applyRevision, { database: 'app', step: plan.steps[0] });
  const retry = await runActivity(activities().applyRevision, { database: 'app', step: plan.steps[0] });
  expect(first.outcome).toBe('applied');
  expect(retry.outcome).toBe('already-applied');
  const { rows } = await db.query('SELECT version_num FROM phasegate_version');
  expect(rows).toEqual([{ version_num: 'aaa111' }]);
});

test('a revision file changed after planning is refused before anything runs', async () => {
  const plan = await planUpgrade();
  appendFileSync(path.join(dir, 'aaa111_add_org_id.js'), '\n// edited after review\n');
  await expect(
    runActivity(activities().applyRevision, { database: 'app', step: plan.steps[0] }),
  ).rejects.toMatchObject({ type: 'RevisionChanged', nonRetryable: true, message: expect.stringContaining('aaa111_add_org_id.js changed') });
  const { rows } = await db.query(`SELECT to_regclass('phasegate_version') AS t`);
  expect(rows[0].t).toBeNull();
});

test('a lock held by another session ends the attempt after lock_timeout, naming the table and the blocking pid', async () => {
  const plan = await planUpgrade();
  const blocker = new pg.Client({ connectionString: db.url });
  await blocker.connect();
  try {
    const { rows } = await blocker.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    await blocker.query('BEGIN');
    await blocker.query('LOCK TABLE accounts IN ACCESS SHARE MODE');
    const started = Date.now();
    const result = await runActivity(activities().applyRevision, { database: 'app', step: plan.steps[0] });
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(result).toMatchObject({
      outcome: 'lock-timeout',
      lockWait: { relation: 'accounts', mode: 'AccessExclusiveLock', blockedBy: [{ pid: rows[0].pid, state: 'idle in transaction' }] },
      waiting: `waiting for lock on accounts (AccessExclusiveLock), blocked by pid ${rows[0].pid} (idle in transaction)`,
    });
  } finally {
    await blocker.query('ROLLBACK');
    await blocker.end();
  }
  const { rows } = await db.query(`SELECT count(*)::int AS n FROM information_schema.columns WHERE table_name = 'accounts' AND column_name = 'org_id'`);
  expect(rows[0].n).toBe(0);
  const version = await db.query(`SELECT to_regclass('phasegate_version') AS t`);
  expect(version.rows[0].t).toBeNull();
});

test('a backfill over a table with no key to walk is refused at plan time, before anything runs', async () => {
  await db.query('CREATE TABLE events (payload text)');
  const keyless = writeMigrations({
    'kkk111_fill_events.js': `module.exports = {
      id: 'kkk111', parent: null, message: 'fill events.kind',
      upgrade(op) { op.addColumn('events', 'kind', 'text'); },
      downgrade(op) { op.dropColumn('events', 'kind'); },
      backfill: { table: 'events', set: { kind: "'legacy'" }, where: 'kind IS NULL' },
    };`,
  });
  config = testConfig({ databases: { app: { url: db.url, migrationsDirectory: keyless } } });
  await pools.close();
  pools = new DatabasePools(config);
  await expect(runActivity(activities().planMigration, { database: 'app', target: 'head', direction: 'upgrade' as const })).rejects.toMatchObject({
    type: 'BackfillKeyMissing',
    nonRetryable: true,
    message: expect.stringMatching(/^revision kkk111: .*events/),
  });
  const { rows } = await db.query(`SELECT to_regclass('phasegate_version') AS t`);
  expect(rows[0].t).toBeNull();
});
