/**
 * lib/log.ts and lib/metrics.ts without any server: which log format and level a process picks,
 * the SDK logger adapter, the metrics endpoint from the environment, and the CLI's own log lines
 * (stderr only, JSON off a TTY, silent at the default level) around an offline command.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { logFormat, sdkLogger } from '../../lib/log';
import { metricsEndpoint } from '../../lib/metrics';

test('log format: pretty on a TTY, JSON elsewhere; PHASEGATE_LOG_FORMAT=json|pretty decides; anything else is refused', () => {
  expect(logFormat({}, true)).toBe('pretty');
  expect(logFormat({}, false)).toBe('json');
  expect(logFormat({ PHASEGATE_LOG_FORMAT: 'json' }, true)).toBe('json');
  expect(logFormat({ PHASEGATE_LOG_FORMAT: 'pretty' }, false)).toBe('pretty');
  expect(logFormat({ PHASEGATE_LOG_FORMAT: '' }, false)).toBe('json');
  expect(() => logFormat({ PHASEGATE_LOG_FORMAT: 'xml' }, false)).toThrow('PHASEGATE_LOG_FORMAT must be json or pretty (got "xml")');
});

test('sdkLogger: the SDK levels map onto pino levels, metadata becomes fields, an Error is serialized', () => {
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({ name: 'worker', level: 'trace' }, { write: (line: string) => lines.push(JSON.parse(line)) });
  const sdk = sdkLogger(log);
  sdk.trace('t');
  sdk.debug('d');
  sdk.info('Worker state changed', { sdkComponent: 'worker', state: 'RUNNING', [Symbol('ts')]: 1n });
  sdk.warn('w');
  sdk.log('ERROR', 'Activity failed', { error: new TypeError('boom') });
  expect(lines.map((l) => [l.level, l.msg])).toEqual([
    [10, 't'],
    [20, 'd'],
    [30, 'Worker state changed'],
    [40, 'w'],
    [50, 'Activity failed'],
  ]);
  expect(lines[2]).toMatchObject({ name: 'worker', sdkComponent: 'worker', state: 'RUNNING' });
  expect(lines[4].error).toMatchObject({ type: 'TypeError', message: 'boom', stack: expect.stringContaining('TypeError: boom') });
});

test('metrics endpoint: 127.0.0.1:9464 by default, PHASEGATE_METRICS_HOST/PORT override it, 0 or off turns it off, a bad port is refused', () => {
  expect(metricsEndpoint({})).toEqual({ host: '127.0.0.1', port: 9464, bindAddress: '127.0.0.1:9464', url: 'http://127.0.0.1:9464/metrics' });
  expect(metricsEndpoint({ PHASEGATE_METRICS_PORT: '9100', PHASEGATE_METRICS_HOST: '0.0.0.0' })).toMatchObject({ bindAddress: '0.0.0.0:9100' });
  expect(metricsEndpoint({ PHASEGATE_METRICS_HOST: '::1' })).toMatchObject({ bindAddress: '[::1]:9464', url: 'http://[::1]:9464/metrics' });
  expect(metricsEndpoint({ PHASEGATE_METRICS_PORT: '0' })).toBeNull();
  expect(metricsEndpoint({ PHASEGATE_METRICS_PORT: 'off' })).toBeNull();
  expect(metricsEndpoint({ PHASEGATE_METRICS_PORT: 'OFF' })).toBeNull();
  for (const bad of ['http', '70000', '-1', '9464.5']) {
    expect(() => metricsEndpoint({ PHASEGATE_METRICS_PORT: bad })).toThrow(`PHASEGATE_METRICS_PORT must be a TCP port (1-65535), or 0/off to serve no metrics (got "${bad}")`);
  }
});

const root = path.resolve(__dirname, '../..');

function cli(cwd: string, args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  const base = { ...process.env };
  delete base.PHASEGATE_LOG_LEVEL;
  delete base.PHASEGATE_LOG_FORMAT;
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', require.resolve('tsx'), path.join(root, 'scripts/phasegate.ts'), ...args],
      { cwd, env: { ...base, ...env }, timeout: 60_000 },
      (error, stdout, stderr) => resolve({ code: error ? Number((error as { code?: unknown }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

test('CLI log: silent at the default level; at debug, JSON lines on stderr (start, done, failed) and stdout unchanged', async () => {
  const cwd = mkdtempSync(path.join(os.tmpdir(), 'phasegate-cli-log-'));
  expect((await cli(cwd, ['init'], {})).code).toBe(0);

  const quiet = await cli(cwd, ['heads', '--json'], {});
  expect(quiet).toMatchObject({ code: 0, stderr: '' });
  const loud = await cli(cwd, ['heads', '--json'], { PHASEGATE_LOG_LEVEL: 'debug' });
  expect(loud.code).toBe(0);
  expect(loud.stdout).toBe(quiet.stdout);
  const lines = loud.stderr.trim().split('\n').map((l) => JSON.parse(l));
  expect(lines).toEqual([
    expect.objectContaining({ name: 'cli', level: 20, msg: 'command started', command: 'heads', argv: ['heads', '--json'] }),
    expect.objectContaining({ name: 'cli', level: 30, msg: 'command done', command: 'heads', exitCode: 0, ms: expect.any(Number) }),
  ]);

  const failed = await cli(cwd, ['show', 'nope'], { PHASEGATE_LOG_LEVEL: 'info' });
  expect(failed.code).toBe(1);
  const [logLine, message] = failed.stderr.trim().split('\n');
  expect(JSON.parse(logLine)).toMatchObject({ name: 'cli', level: 30, msg: 'command failed', command: 'show', err: { message: expect.stringContaining('"nope"') } });
  expect(message).toMatch(/^phasegate: "nope" matches no revision/);
});
