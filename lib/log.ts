import pino from 'pino';

/** The process logger: JSON lines on stderr, level from PHASEGATE_LOG_LEVEL (default info). */
export function createLogger(name: string) {
  return pino({ name, level: process.env.PHASEGATE_LOG_LEVEL ?? 'info' }, pino.destination(2));
}
