/**
 * Table-level lock modes (PostgreSQL "Explicit Locking", table-level lock modes), weakest first,
 * and the strongest one each op takes on a table that already exists. `none`: the op locks no
 * existing table (a function, a new table without foreign keys).
 */
import type { RecordedOp } from './types';

export const LOCK_LEVELS = [
  'none',
  'ACCESS SHARE',
  'ROW SHARE',
  'ROW EXCLUSIVE',
  'SHARE UPDATE EXCLUSIVE',
  'SHARE',
  'SHARE ROW EXCLUSIVE',
  'EXCLUSIVE',
  'ACCESS EXCLUSIVE',
] as const;

export type LockLevel = (typeof LOCK_LEVELS)[number];

/** From SHARE up, a lock blocks writes (ACCESS EXCLUSIVE reads too): such steps start only inside a maintenance window. */
export const WINDOW_LOCK: LockLevel = 'SHARE';

export function isLockLevel(value: unknown): value is LockLevel {
  return typeof value === 'string' && (LOCK_LEVELS as readonly string[]).includes(value);
}

export function lockRank(level: LockLevel): number {
  return LOCK_LEVELS.indexOf(level);
}

/** The stronger of two locks; a missing level (a plan recorded before locks) counts as ACCESS EXCLUSIVE. */
export function strongestLock(levels: Array<LockLevel | undefined>): LockLevel {
  let strongest: LockLevel = 'none';
  for (const level of levels) {
    const l = level ?? 'ACCESS EXCLUSIVE';
    if (lockRank(l) > lockRank(strongest)) strongest = l;
  }
  return strongest;
}

export function needsWindow(level: LockLevel): boolean {
  return lockRank(level) >= lockRank(WINDOW_LOCK);
}

/** What each op kind takes, as documented on its method in lib/ops.ts. */
const BY_KIND: Record<string, LockLevel> = {
  dropTable: 'ACCESS EXCLUSIVE',
  renameTable: 'ACCESS EXCLUSIVE',
  addColumn: 'ACCESS EXCLUSIVE',
  dropColumn: 'ACCESS EXCLUSIVE',
  renameColumn: 'ACCESS EXCLUSIVE',
  alterColumn: 'ACCESS EXCLUSIVE',
  setNotNull: 'ACCESS EXCLUSIVE',
  dropNotNull: 'ACCESS EXCLUSIVE',
  addCheck: 'ACCESS EXCLUSIVE',
  addUnique: 'ACCESS EXCLUSIVE',
  dropConstraint: 'ACCESS EXCLUSIVE',
  addForeignKey: 'SHARE ROW EXCLUSIVE',
  validateConstraint: 'SHARE UPDATE EXCLUSIVE',
  createFunction: 'none',
  dropFunction: 'none',
  createTrigger: 'SHARE ROW EXCLUSIVE',
  dropTrigger: 'ACCESS EXCLUSIVE',
};

/**
 * The lock of each statement of a recorded op. CONCURRENTLY index ops take SHARE UPDATE EXCLUSIVE,
 * plain ones SHARE (create) or ACCESS EXCLUSIVE (drop); createTable's foreign keys take SHARE ROW
 * EXCLUSIVE on the tables they reference (the new table itself is nobody's yet); raw SQL takes what
 * its author declared, else ACCESS EXCLUSIVE.
 */
export function statementLocks(op: RecordedOp, declared?: LockLevel): LockLevel[] {
  return op.statements.map((statement) => {
    switch (op.kind) {
      case 'sql':
        return declared ?? 'ACCESS EXCLUSIVE';
      case 'createIndex':
        return op.nonTransactional ? 'SHARE UPDATE EXCLUSIVE' : 'SHARE';
      case 'dropIndex':
        return op.nonTransactional ? 'SHARE UPDATE EXCLUSIVE' : 'ACCESS EXCLUSIVE';
      case 'createTable':
        return /\bforeign key\b/i.test(statement.sql) ? 'SHARE ROW EXCLUSIVE' : 'none';
      default:
        return BY_KIND[op.kind] ?? 'ACCESS EXCLUSIVE';
    }
  });
}
