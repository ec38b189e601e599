/**
 * The package's entry point (index.ts): the functions README and docs/api.md promise exist, the
 * exit codes a pipeline step ends with, and the realm-safe error check.
 */
import * as api from '../../index';
import { PhasegateError } from '../../lib/errors';

test('exports the verbs as functions, createWorker, and the config helpers', () => {
  for (const name of ['upgrade', 'downgrade', 'follow', 'status', 'approve', 'reject', 'pause', 'resume', 'retry', 'rollback', 'abandon', 'current', 'init', 'revision', 'newPattern', 'lint', 'createWorker', 'dev', 'defineConfig', 'loadConfig', 'exitCodeFor', 'isPhasegateError'] as const) {
    expect(typeof api[name]).toBe('function');
  }
  expect(api.CONFIG_FILES[0]).toBe('phasegate.config.ts');
  expect(api.PHASEGATE_VERSION).toMatch(/^\d+\.\d+\.\d+/);
});

test('exitCodeFor: 0 at the target, 2 at a gate, 3 rolled back or abandoned', () => {
  expect(api.exitCodeFor({ outcome: 'done' })).toBe(0);
  expect(api.exitCodeFor({ outcome: 'nothing-to-do' })).toBe(0);
  expect(api.exitCodeFor({ outcome: 'started' })).toBe(0);
  expect(api.exitCodeFor({ outcome: 'awaiting-approval' })).toBe(2);
  expect(api.exitCodeFor({ outcome: 'rolled-back' })).toBe(3);
  expect(api.exitCodeFor({ outcome: 'abandoned' })).toBe(3);
});

test('isPhasegateError matches on type, also for an error from another realm (a plain object with the fields)', () => {
  const error = new PhasegateError('MigrationFailed', 'x');
  expect(api.isPhasegateError(error)).toBe(true);
  expect(api.isPhasegateError(error, 'MigrationFailed')).toBe(true);
  expect(api.isPhasegateError(error, 'ConfigError')).toBe(false);
  expect(api.isPhasegateError({ type: 'ConfigError', retryable: false, message: 'y' }, 'ConfigError')).toBe(true);
  expect(api.isPhasegateError(new Error('plain'))).toBe(false);
  expect(api.isPhasegateError(null)).toBe(false);
});
