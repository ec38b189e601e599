/**
 * Shared test helpers: a fresh database per test, a config pointing at it, a Temporal environment
 * on the shared dev server, workflow code bundled once per file.
 */
import { MockActivityEnvironment, TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
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
