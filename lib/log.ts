/**
 * The process logger of the worker and the CLI: pino on stderr (stdout stays the CLI's output).
 *
 * - Level: PHASEGATE_LOG_LEVEL (trace, debug, info, warn, error, silent), else the caller's default.
 * - Format: JSON lines, one object a line with `level`, `time`, `name`, `msg` and fields — what a log
 *   shipper reads. On a terminal (stderr is a TTY) they are pretty-printed by pino-pretty instead,
 *   unless PHASEGATE_LOG_FORMAT=json; PHASEGATE_LOG_FORMAT=pretty forces pretty lines anywhere.
 *
 * Both streams write synchronously, so the lines before a `process.exit` are not lost.
 */
import type { LogLevel as SdkLogLevel, LogMetadata, Logger as SdkLogger } from '@temporalio/common';
import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';

export type LogFormat = 'json' | 'pretty';

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

/** The format for this process: PHASEGATE_LOG_FORMAT if set, else pretty on a TTY and JSON elsewhere. */
export function logFormat(env: NodeJS.ProcessEnv = process.env, stderrIsTTY = process.stderr.isTTY === true): LogFormat {
  const wanted = env.PHASEGATE_LOG_FORMAT?.trim().toLowerCase();
  if (!wanted) return stderrIsTTY ? 'pretty' : 'json';
  if (wanted === 'json' || wanted === 'pretty') return wanted;
  throw new Error(`PHASEGATE_LOG_FORMAT must be json or pretty (got "${env.PHASEGATE_LOG_FORMAT}"); unset it for pretty on a terminal, JSON elsewhere`);
}

function logLevel(env: NodeJS.ProcessEnv, fallback: string): string {
  const level = env.PHASEGATE_LOG_LEVEL?.trim().toLowerCase();
  if (!level) return fallback;
  if (!LEVELS.includes(level)) throw new Error(`PHASEGATE_LOG_LEVEL must be one of ${LEVELS.join(', ')} (got "${env.PHASEGATE_LOG_LEVEL}")`);
  return level;
}

/**
 * A process logger named `name` (the `name` field of every line). `defaultLevel` applies when
 * PHASEGATE_LOG_LEVEL is unset: the worker logs at info, the CLI at warn.
 */
export function createLogger(name: string, opts: { defaultLevel?: string; env?: NodeJS.ProcessEnv; stderrIsTTY?: boolean } = {}): Logger {
  const env = opts.env ?? process.env;
  const level = logLevel(env, opts.defaultLevel ?? 'info');
  const format = logFormat(env, opts.stderrIsTTY ?? process.stderr.isTTY === true);
  const destination =
    format === 'pretty'
      ? pretty({ destination: 2, sync: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' })
      : pino.destination({ dest: 2, sync: true });
  return pino({ name, level }, destination);
}

const SDK_LEVELS = { TRACE: 'trace', DEBUG: 'debug', INFO: 'info', WARN: 'warn', ERROR: 'error' } as const;

/**
 * The Temporal SDK's `Logger` on top of a pino logger, for `Runtime.install({ logger })`: the SDK's
 * own lines (worker lifecycle, core warnings) and the workflow and activity context loggers end up
 * in the same stream, with the SDK's metadata (`sdkComponent`, `workflowId`, …) as fields. Error
 * values are serialized as pino does `err` (type, message, stack); JSON.stringify would print `{}`.
 */
export function sdkLogger(log: Logger): SdkLogger {
  const emit = (level: SdkLogLevel, message: string, meta?: LogMetadata): void => {
    const fields: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(meta ?? {})) fields[key] = value instanceof Error ? pino.stdSerializers.err(value) : value;
    log[SDK_LEVELS[level] ?? 'info'](fields, message);
  };
  return {
    log: emit,
    trace: (message, meta) => emit('TRACE', message, meta),
    debug: (message, meta) => emit('DEBUG', message, meta),
    info: (message, meta) => emit('INFO', message, meta),
    warn: (message, meta) => emit('WARN', message, meta),
    error: (message, meta) => emit('ERROR', message, meta),
  };
}
