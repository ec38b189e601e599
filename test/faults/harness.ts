/**
 * What every case of the fault matrix (test/faults/*.test.ts, docs/fault-matrix.md) shares: a
 * database to break, a worker (in-process or a real process to SIGKILL), a migration to start, and
 * the exact-truth probes the cases assert with (version table, checkpoints, checksums).
 *
 * A case file calls `useFaultLab()` once at its top; it connects to the shared Temporal dev server
 * and PostgreSQL that global set-up started (embedded, or Debian's PostgreSQL 15 with
 * PHASEGATE_TEST_POSTGRES=15), and bundles the workflow code once per file.
 */
import type { WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { PhasegateConfigInput } from '../../lib/config';
import { migrate } from '../../workflows';
import { statusQuery, type MigrateInput, type MigrateStatus } from '../../workflows/messages';
import { createPhasegateWorker } from '../../workers/worker';
import {
  bundleWorkflows,
  connectTestTemporal,
  createTestDatabase,
  eventually,
  silentLog,
  spawnWorkerProcess,
  testConfig,
  uniqueId,
  type WorkerProcess,
} from '../helpers';

export { eventually, uniqueId, writeMigrations } from '../helpers';

/** A database a case owns: created empty, dropped after the file. */
export interface LabDatabase {
  name: string;
  url: string;
  /** One statement on a short-lived connection; rows only. */
  sql<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, params?: unknown[]): Promise<R[]>;
  /** A long-lived session (an "app" or a blocker); end it with `end()`. */
  session(): Promise<pg.Client>;
}

export interface FaultLab {
  env: TestWorkflowEnvironment;
  bundle: WorkflowBundleWithSourceMap;
  database(): Promise<LabDatabase>;
}

/** Registers beforeAll/afterAll for one case file; the lab's fields are ready inside tests. */
export function useFaultLab(): FaultLab {
  const drops: Array<() => Promise<void>> = [];
  const lab = {
    env: undefined as unknown as TestWorkflowEnvironment,
    bundle: undefined as unknown as WorkflowBundleWithSourceMap,
    async database(): Promise<LabDatabase> {
      const db = await createTestDatabase();
      drops.push(() => db.drop());
      return labDatabase(db.name, db.url);
    },
  };
  beforeAll(async () => {
    [lab.env, lab.bundle] = await Promise.all([connectTestTemporal(), bundleWorkflows()]);
  }, 120_000);
  afterAll(async () => {
    for (const drop of drops) await drop().catch(() => undefined);
    await lab.env?.teardown();
  });
  return lab;
}

/** Wraps any database URL (the shared server's, or a restartable server's) as a LabDatabase. */
export function labDatabase(name: string, url: string): LabDatabase {
  return {
    name,
    url,
    async sql<R extends pg.QueryResultRow>(text: string, params: unknown[] = []) {
      const client = new pg.Client({ connectionString: url });
      client.on('error', () => undefined);
      await client.connect();
      try {
        return (await client.query<R>(text, params)).rows;
      } finally {
        await client.end().catch(() => undefined);
      }
    },
    async session() {
      const client = new pg.Client({ connectionString: url });
      client.on('error', () => undefined);
      await client.connect();
      return client;
    },
  };
}

export type MigrateHandle = WorkflowHandle<typeof migrate>;

export interface LabWorker {
  taskQueue: string;
  /** Starts `migrate` for alias `app` (upgrade to head unless told otherwise). */
  start(input?: Partial<MigrateInput>, workflowId?: string): Promise<MigrateHandle>;
}

/** Config a case adds: settings of database `app` (approvers, poolSize, …) and `defaults` (lockTimeoutMs, lockRetry, …). */
export interface LabSettings {
  database?: Record<string, unknown>;
  defaults?: PhasegateConfigInput['defaults'];
}

/** The worker config a case uses: database alias `app` pointing at `db`. */
export function labConfig(lab: FaultLab, db: LabDatabase, migrationsDirectory: string, taskQueue: string, settings: LabSettings = {}): PhasegateConfigInput {
  return {
    temporal: { address: lab.env.address, taskQueue },
    databases: { app: { url: db.url, migrationsDirectory, ...settings.database } },
    ...(settings.defaults ? { defaults: settings.defaults } : {}),
  } as PhasegateConfigInput;
}

function starter(lab: FaultLab, taskQueue: string): LabWorker['start'] {
  return (input = {}, workflowId = uniqueId('migrate-app')) =>
    lab.env.client.workflow.start(migrate, {
      workflowId,
      taskQueue,
      args: [{ database: 'app', target: 'head', direction: 'upgrade', ...input }],
    });
}

/** An in-process worker for `db` while `body` runs; never left running afterwards. */
export async function withWorker<T>(
  lab: FaultLab,
  db: LabDatabase,
  migrationsDirectory: string,
  body: (w: LabWorker) => Promise<T>,
  settings: LabSettings = {},
): Promise<T> {
  const taskQueue = uniqueId('fault');
  const config = testConfig(labConfig(lab, db, migrationsDirectory, taskQueue, settings));
  const { worker } = await createPhasegateWorker({ config, log: silentLog, workflowBundle: lab.bundle, taskQueue, connection: lab.env.nativeConnection });
  return worker.runUntil(() => body({ taskQueue, start: starter(lab, taskQueue) }));
}

/**
 * Real worker processes (`workers/main.ts`) for `db`, to SIGKILL mid-step. `spawn()` starts one more
 * on the same task queue; every process left is stopped by `stopAll()` (call it in `finally`).
 */
export function workerProcesses(lab: FaultLab, db: LabDatabase, migrationsDirectory: string, settings: LabSettings = {}, env: NodeJS.ProcessEnv = {}) {
  const taskQueue = uniqueId('fault-proc');
  const config = labConfig(lab, db, migrationsDirectory, taskQueue, settings);
  const running: WorkerProcess[] = [];
  return {
    taskQueue,
    start: starter(lab, taskQueue),
    /** One more worker process; it loads the file's bundle instead of bundling the workflows again. */
    spawn(): WorkerProcess {
      const w = spawnWorkerProcess(config, { workflowBundlePath: bundleFile(lab), env });
      running.push(w);
      return w;
    },
    /** Everything every process wrote (for failure messages). */
    output: () => running.map((w) => `--- worker ${w.pid}\n${w.output()}`).join('\n'),
    async stopAll(): Promise<void> {
      await Promise.all(running.map((w) => w.kill('SIGTERM')));
    },
  };
}

const bundleFiles = new WeakMap<WorkflowBundleWithSourceMap, string>();

/** The lab's workflow bundle as a file a worker process loads (PHASEGATE_WORKFLOW_BUNDLE); written once per file. */
function bundleFile(lab: FaultLab): string {
  let file = bundleFiles.get(lab.bundle);
  if (!file) {
    file = path.join(mkdtempSync(path.join(os.tmpdir(), 'phasegate-bundle-')), 'workflow-bundle.js');
    writeFileSync(file, lab.bundle.code);
    bundleFiles.set(lab.bundle, file);
  }
  return file;
}

export async function untilState(handle: MigrateHandle, state: MigrateStatus['state'] | Array<MigrateStatus['state']>, timeoutMs = 60_000): Promise<MigrateStatus> {
  const wanted = Array.isArray(state) ? state : [state];
  let last: MigrateStatus | undefined;
  try {
    return await eventually(
      `state ${wanted.join('|')}`,
      async () => {
        last = await handle.query(statusQuery);
        return wanted.includes(last.state) ? last : undefined;
      },
      timeoutMs,
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}; last status: ${JSON.stringify(last)?.slice(0, 2000)}`);
  }
}

/** Polls the status query until `probe` accepts it. */
export async function untilStatus(handle: MigrateHandle, what: string, probe: (s: MigrateStatus) => boolean, timeoutMs = 60_000): Promise<MigrateStatus> {
  let last: MigrateStatus | undefined;
  try {
    return await eventually(
      what,
      async () => {
        last = await handle.query(statusQuery);
        return probe(last) ? last : undefined;
      },
      timeoutMs,
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}; last status: ${JSON.stringify(last)?.slice(0, 2000)}`);
  }
}

/** What the version table and its pending table say (either may not exist yet). */
export async function versionRows(db: LabDatabase): Promise<{ version: string[]; pending: string[] }> {
  const [t] = await db.sql<{ v: string | null; p: string | null }>(
    `SELECT to_regclass('public.phasegate_version')::text AS v, to_regclass('public.phasegate_version_pending')::text AS p`,
  );
  const version = t.v ? (await db.sql<{ r: string }>('SELECT version_num AS r FROM phasegate_version ORDER BY 1')).map((r) => r.r) : [];
  const pending = t.p ? (await db.sql<{ r: string }>('SELECT version_num AS r FROM phasegate_version_pending ORDER BY 1')).map((r) => r.r) : [];
  return { version, pending };
}

/** Checkpoint rows of a revision's backfill (migrate names them `revision:<id>`). */
export async function checkpoints(db: LabDatabase, revision: string): Promise<{ rows: number; rowsDone: number; rowsUpdated: number }> {
  const [t] = await db.sql<{ t: string | null }>(`SELECT to_regclass('public.phasegate_backfill_progress')::text AS t`);
  if (!t.t) return { rows: 0, rowsDone: 0, rowsUpdated: 0 };
  const [row] = await db.sql<{ rows: number; rows_done: number; rows_updated: number }>(
    `SELECT count(*)::int AS rows, coalesce(sum(rows_done), 0)::int AS rows_done, coalesce(sum(rows_updated), 0)::int AS rows_updated
     FROM phasegate_backfill_progress WHERE backfill_id = $1`,
    [`revision:${revision}`],
  );
  return { rows: row.rows, rowsDone: row.rows_done, rowsUpdated: row.rows_updated };
}

/** `accounts (id bigint PRIMARY KEY, email text)` with `rows` rows, analyzed. */
export async function accountsTable(db: LabDatabase, rows: number): Promise<void> {
  await db.sql('CREATE TABLE accounts (id bigint PRIMARY KEY, email text)');
  await db.sql(`INSERT INTO accounts SELECT g, 'u' || g || '@example.com' FROM generate_series(1, $1::int) g`, [rows]);
  await db.sql('ANALYZE accounts');
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** mulberry32: a small seeded PRNG, so a failing run's random fault points can be replayed (PHASEGATE_FAULT_SEED). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
