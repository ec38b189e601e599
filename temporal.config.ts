/**
 * phasegate configuration. Database URLs come from the environment, never from workflow input:
 * `DATABASE_URL` is the `default` database, and `PHASEGATE_DATABASE_URL_<ALIAS>` adds `<alias>`.
 */
import { defineConfig } from './lib/config';

export default defineConfig({
  temporal: {
    address: process.env.TEMPORAL_ADDRESS || 'localhost:7233',
    namespace: process.env.TEMPORAL_NAMESPACE || 'default',
    taskQueue: process.env.PHASEGATE_TASK_QUEUE || 'phasegate',
    ...(process.env.TEMPORAL_API_KEY ? { apiKey: process.env.TEMPORAL_API_KEY, tls: true } : {}),
  },
  migrations: {
    directory: 'migrations/versions',
    versionTable: 'phasegate_version',
  },
  defaults: {
    lockTimeoutMs: 500,
    statementTimeoutMs: 0,
    batchSize: 1000,
  },
});
