/**
 * Starts what the workflow, integration and fault tests share: one Temporal dev server (the real
 * `temporal` CLI, through TestWorkflowEnvironment.createLocal) and one real PostgreSQL: DATABASE_URL;
 * or Debian's PostgreSQL <major> with PHASEGATE_TEST_POSTGRES=<major> (`npm run test:pg15`,
 * installed with apt when missing); or by default a throwaway embedded cluster. Tests reach them
 * through PHASEGATE_TEST_* variables.
 */
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { externalPostgres, startEmbeddedPostgres, type RunningPostgres } from '../lib/local/postgres';
import { freePort } from '../lib/local/ports';
import { ensureTemporalCli } from '../lib/local/temporal-cli';
import { searchAttributeKeys } from '../workflows/search-attributes';
import { ensureDebianPostgres } from './support/postgres-binaries';
import { startRestartablePostgres } from './support/restartable-postgres';

export interface SharedServices {
  temporal: TestWorkflowEnvironment;
  postgres: RunningPostgres;
  tmpDir?: string;
}

declare global {
  var __phasegateServices: SharedServices | undefined;
}

export default async function globalSetup(): Promise<void> {
  const root = path.resolve(__dirname, '..');
  const cli = ensureTemporalCli(root, (line) => process.stderr.write(`\n[global-setup] ${line}`));
  const temporal = await TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: cli.path },
      ip: '127.0.0.1',
      searchAttributes: searchAttributeKeys,
    },
  });
  let postgres: RunningPostgres;
  let tmpDir: string | undefined;
  const major = process.env.PHASEGATE_TEST_POSTGRES;
  if (process.env.DATABASE_URL) {
    postgres = externalPostgres(process.env.DATABASE_URL);
  } else if (major) {
    process.env.PHASEGATE_TEST_PG_BIN = ensureDebianPostgres(major, (line) => process.stderr.write(`\n[global-setup] ${line}`));
    const server = await startRestartablePostgres();
    postgres = { url: (database) => server.url(database), stop: () => server.destroy() };
  } else {
    tmpDir = mkdtempSync(path.join(os.tmpdir(), 'phasegate-test-'));
    postgres = await startEmbeddedPostgres({ dataDir: path.join(tmpDir, 'pg'), port: await freePort(), throwaway: true });
  }
  globalThis.__phasegateServices = { temporal, postgres, tmpDir };
  process.env.PHASEGATE_TEST_TEMPORAL_ADDRESS = temporal.address;
  process.env.PHASEGATE_TEST_PG_URL = postgres.url();
}
