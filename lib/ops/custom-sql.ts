/** `op.sql`: the escape hatch. */
import { InvalidOpError, type RecordedOp } from './types';

export function sql(text: string, params: unknown[] = []): RecordedOp {
  if (typeof text !== 'string' || text.trim() === '') throw new InvalidOpError('sql', 'the SQL text must be a non-empty string');
  if (!Array.isArray(params)) throw new InvalidOpError('sql', 'params must be an array of $n values');
  return { kind: 'sql', description: 'custom SQL', statements: [{ sql: text, params }] };
}
