/** Constraint ops: CHECK, UNIQUE, FOREIGN KEY (each optionally NOT VALID), VALIDATE, drop. */
import { quoteIdent } from '../sql';
import { requireExpression, requireName, requireNames, requireOneOf, tableRef, unlessConstraintExists } from './render';
import { InvalidOpError, type RecordedOp } from './types';

export interface AddCheckOptions {
  /** Skip checking existing rows now (no scan); new and updated rows are checked at once. Validate later. */
  notValid?: boolean;
}

export interface AddUniqueOptions {
  /** A valid unique index (built CONCURRENTLY beforehand) to turn into the constraint; it is renamed to the constraint's name. */
  usingIndex?: string;
}

const REFERENTIAL_ACTIONS = ['NO ACTION', 'RESTRICT', 'CASCADE', 'SET NULL', 'SET DEFAULT'] as const;
export type ReferentialAction = (typeof REFERENTIAL_ACTIONS)[number];

export interface AddForeignKeyOptions {
  notValid?: boolean;
  onDelete?: ReferentialAction;
  onUpdate?: ReferentialAction;
}

// Every ADD CONSTRAINT below is idempotent by name: it runs only when the table has no constraint of
// that name. (A constraint of that name with another definition is left as it is.)

export function addCheck(table: string, name: string, expression: string, options: AddCheckOptions = {}): RecordedOp {
  const t = tableRef('addCheck', 'table', table);
  const constraint = requireName('addCheck', 'constraint name', name, { unqualified: true });
  const check = requireExpression('addCheck', 'expression', expression);
  const ddl = `ALTER TABLE ${t.sql} ADD CONSTRAINT ${quoteIdent(constraint)} CHECK (${check})${options.notValid ? ' NOT VALID' : ''}`;
  return {
    kind: 'addCheck',
    description: `add check ${constraint} on ${t.text}${options.notValid ? ' (not valid)' : ''}`,
    statements: [unlessConstraintExists(t, constraint, ddl)],
  };
}

export function addUnique(table: string, name: string, columns: string[], options: AddUniqueOptions = {}): RecordedOp {
  const t = tableRef('addUnique', 'table', table);
  const constraint = requireName('addUnique', 'constraint name', name, { unqualified: true });
  const keys = requireNames('addUnique', 'columns', columns);
  const body =
    options.usingIndex === undefined
      ? `UNIQUE (${keys.map(quoteIdent).join(', ')})`
      : `UNIQUE USING INDEX ${quoteIdent(requireName('addUnique', 'usingIndex', options.usingIndex, { unqualified: true }))}`;
  const ddl = `ALTER TABLE ${t.sql} ADD CONSTRAINT ${quoteIdent(constraint)} ${body}`;
  return {
    kind: 'addUnique',
    description: `add unique ${constraint} on ${t.text} (${keys.join(', ')})${options.usingIndex === undefined ? '' : ` using index ${options.usingIndex}`}`,
    statements: [unlessConstraintExists(t, constraint, ddl)],
  };
}

export function addForeignKey(
  table: string,
  name: string,
  columns: string[],
  refTable: string,
  refColumns: string[],
  options: AddForeignKeyOptions = {},
): RecordedOp {
  const t = tableRef('addForeignKey', 'table', table);
  const constraint = requireName('addForeignKey', 'constraint name', name, { unqualified: true });
  const keys = requireNames('addForeignKey', 'columns', columns);
  const ref = tableRef('addForeignKey', 'referenced table', refTable);
  const refKeys = requireNames('addForeignKey', 'referenced columns', refColumns);
  if (keys.length !== refKeys.length) {
    throw new InvalidOpError('addForeignKey', `${keys.length} column(s) reference ${refKeys.length} column(s); give as many referenced columns as columns`);
  }
  const clauses = [
    `ALTER TABLE ${t.sql} ADD CONSTRAINT ${quoteIdent(constraint)} FOREIGN KEY (${keys.map(quoteIdent).join(', ')})`,
    `REFERENCES ${ref.sql} (${refKeys.map(quoteIdent).join(', ')})`,
  ];
  if (options.onDelete !== undefined) clauses.push(`ON DELETE ${requireOneOf('addForeignKey', 'onDelete', options.onDelete, REFERENTIAL_ACTIONS)}`);
  if (options.onUpdate !== undefined) clauses.push(`ON UPDATE ${requireOneOf('addForeignKey', 'onUpdate', options.onUpdate, REFERENTIAL_ACTIONS)}`);
  if (options.notValid) clauses.push('NOT VALID');
  return {
    kind: 'addForeignKey',
    description: `add foreign key ${constraint} on ${t.text} (${keys.join(', ')}) → ${ref.text} (${refKeys.join(', ')})${options.notValid ? ' (not valid)' : ''}`,
    statements: [unlessConstraintExists(t, constraint, clauses.join(' '))],
  };
}

export function validateConstraint(table: string, name: string): RecordedOp {
  const t = tableRef('validateConstraint', 'table', table);
  const constraint = requireName('validateConstraint', 'constraint name', name, { unqualified: true });
  // Re-running is safe: VALIDATE on a constraint already marked valid does nothing.
  return {
    kind: 'validateConstraint',
    description: `validate constraint ${constraint} on ${t.text}`,
    statements: [{ sql: `ALTER TABLE ${t.sql} VALIDATE CONSTRAINT ${quoteIdent(constraint)}` }],
  };
}

export function dropConstraint(table: string, name: string): RecordedOp {
  const t = tableRef('dropConstraint', 'table', table);
  const constraint = requireName('dropConstraint', 'constraint name', name, { unqualified: true });
  return {
    kind: 'dropConstraint',
    description: `drop constraint ${constraint} on ${t.text}`,
    statements: [{ sql: `ALTER TABLE ${t.sql} DROP CONSTRAINT IF EXISTS ${quoteIdent(constraint)}` }],
  };
}
