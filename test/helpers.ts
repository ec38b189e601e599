/**
 * Shared test helpers: a fresh database per test, a config pointing at it, a Temporal environment
 * on the shared dev server, workflow code bundled once per file.
 */
import { MockActivityEnvironment, TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import pino from 'pino';
import { loadConfig, type PhasegateConfig, type PhasegateConfigInput } from '../lib/config';
import { quoteIdent } from '../lib/sql';

export const silentLog = pino({ level: 'silent' });

export function uniqueId(prefix: string): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}

function adminUrl(): string {
  const url = process.env.PHASEGATE_TEST_PG_URL;
  if (!url) throw new Error('PHASEGATE_TEST_PG_URL is not set: run these tests through `npm test` (global setup starts PostgreSQL)');
  return url;
}

export interface TestDatabase {
  name: string;
  url: string;
  /** Runs a query on a short-lived connection. */
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<pg.QueryResult<R>>;
  drop(): Promise<void>;
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `t_${randomUUID().replace(/-/g, '').slice(0, 16)}`;
  const admin = new pg.Client({ connectionString: adminUrl() });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${quoteIdent(name)}`);
  await admin.end();
  const url = new URL(adminUrl());
  url.pathname = `/${name}`;
  const dbUrl = url.toString();
  return {
    name,
    url: dbUrl,
    async query<R extends pg.QueryResultRow>(sql: string, params: unknown[] = []) {
      const client = new pg.Client({ connectionString: dbUrl });
      await client.connect();
      try {
        return await client.query<R>(sql, params);
      } finally {
        await client.end();
      }
    },
    async drop() {
      const c = new pg.Client({ connectionString: adminUrl() });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`);
      await c.end();
    },
  };
}

export function testConfig(input: PhasegateConfigInput): PhasegateConfig {
  return loadConfig(input, {});
}

/** Writes revision files into a new temporary folder; returns its path. */
export function writeMigrations(files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'phasegate-migrations-'));
  for (const [name, content] of Object.entries(files)) writeFileSync(path.join(dir, name), content);
  return dir;
}

export function connectTestTemporal(): Promise<TestWorkflowEnvironment> {
  const address = process.env.PHASEGATE_TEST_TEMPORAL_ADDRESS;
  if (!address) throw new Error('PHASEGATE_TEST_TEMPORAL_ADDRESS is not set: run these tests through `npm test`');
  return TestWorkflowEnvironment.createFromExistingServer({ address });
}

export function bundleWorkflows(): Promise<WorkflowBundleWithSourceMap> {
  return bundleWorkflowCode({ workflowsPath: require.resolve('../workflows'), logger: undefined });
}

/** Runs an activity in MockActivityEnvironment keeping its types (the SDK's `run` infers `unknown`). */
export function runActivity<F extends (...args: never[]) => Promise<unknown>>(
  fn: F,
  ...args: Parameters<F>
): ReturnType<F> {
  return new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') }).run(fn as never, ...(args as never[])) as ReturnType<F>;
}

export interface WorkerProcess {
  pid: number;
  /** Everything the worker wrote, for failure messages. */
  output(): string;
  kill(signal: NodeJS.Signals): Promise<void>;
}

/**
 * Starts a real worker process (`workers/main.ts`) with a config file written for the test, so a
 * test can SIGKILL it mid-step the way a crash or an OOM kill would.
 */
export function spawnWorkerProcess(config: PhasegateConfigInput, opts: { workflowBundlePath?: string; env?: NodeJS.ProcessEnv } = {}): WorkerProcess {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'phasegate-worker-'));
  const configFile = path.join(dir, 'phasegate.config.js');
  writeFileSync(configFile, `module.exports = ${JSON.stringify(config, null, 2)};\n`);
  const root = path.resolve(__dirname, '..');
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'workers', 'main.ts')], {
    cwd: root,
    env: {
      ...process.env,
      PHASEGATE_CONFIG: configFile,
      // info: the SDK's "Worker state changed" line (state RUNNING) says when a process polls.
      PHASEGATE_LOG_LEVEL: 'info',
      // Several processes run at once (and maybe `npm start`'s worker): none takes the default metrics port.
      PHASEGATE_METRICS_PORT: 'off',
      ...(opts.workflowBundlePath ? { PHASEGATE_WORKFLOW_BUNDLE: opts.workflowBundlePath } : {}),
      ...opts.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    pid: child.pid ?? -1,
    output: () => output,
    async kill(signal) {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}

/** Polls `probe` until it returns a truthy value, or fails after `timeoutMs` with `what`. */
export async function eventually<T>(what: string, probe: () => Promise<T | undefined | null | false>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
