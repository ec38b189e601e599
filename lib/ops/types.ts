/**
 * What an op records: plain JSON data (it travels in the plan, through workflow history), never a
 * side effect. The runtime executes it; `--sql` prints it.
 */
import { PhasegateError } from '../errors';
import type { Statement } from '../sql';
import type { LockLevel } from './locks';

export interface OpStatement extends Statement {
  /**
   * A guard for what neither IF [NOT] EXISTS nor a DO block can express: the runtime runs this query
   * first and skips the statement when it returns no rows. Needed for DROP INDEX CONCURRENTLY, which
   * cannot run inside a function or DO block. Offline scripts run it under psql `\if` on the same query.
   */
  onlyIf?: Statement;
  /**
   * Set by the plan on every statement of a CONCURRENTLY op (from the op itself, never guessed from
   * the SQL text): its wait for older transactions blocks nobody, so it runs with lock_timeout 0.
   */
  concurrently?: boolean;
}

export interface RecordedOp {
  kind: string;
  description: string;
  statements: OpStatement[];
  /** True when the statements cannot run inside a transaction (CONCURRENTLY). */
  nonTransactional?: boolean;
  /**
   * The strongest table-level lock its statements take on an existing table (lib/ops/locks.ts),
   * set by `Op` from what the op knows; `op.sql` takes what its author declares, else ACCESS
   * EXCLUSIVE. Maintenance windows decide by it (through the plan step's `lock`).
   */
  lock?: LockLevel;
}

/** A revision called an op with arguments that cannot make valid, safe SQL. Raised while recording. */
export class InvalidOpError extends PhasegateError {
  constructor(op: string, message: string) {
    super('InvalidOp', `op.${op}: ${message}`, { details: { op } });
  }
}
