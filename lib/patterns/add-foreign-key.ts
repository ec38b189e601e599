/**
 * add-foreign-key: the key is added NOT VALID (new and updated rows are checked at once, nothing is
 * scanned), orphans are looked for, and VALIDATE then checks the existing rows without blocking
 * writes.
 */
import { z } from 'zod';
import { ident, identifier, localName, objectName, tableName, tableOf } from './fields';
import { call, commented, definePattern, type RevisionDraft } from './types';

const ACTIONS = ['NO ACTION', 'RESTRICT', 'CASCADE', 'SET NULL', 'SET DEFAULT'] as const;
const action = z
  .string()
  .transform((s) => s.trim().toUpperCase().replace(/[\s_-]+/g, ' '))
  .pipe(z.enum(ACTIONS, { message: `must be one of ${ACTIONS.join(', ')}` }));

export default definePattern({
  name: 'add-foreign-key',
  summary: 'FOREIGN KEY: ADD … NOT VALID → (optional gate) → VALIDATE',
  arguments: [
    { name: 'table', description: 'referencing table, optionally schema-qualified' },
    { name: 'column', description: 'referencing column' },
    { name: 'refTable', description: 'referenced table' },
    { name: 'refColumn', description: 'referenced column (default id)', optional: true },
  ],
  options: [
    { flags: '--name <constraint>', key: 'name', description: 'constraint name (default <table>_<column>_fkey)' },
    { flags: '--on-delete <action>', key: 'onDelete', description: `ON DELETE action: ${ACTIONS.join(', ')}` },
    { flags: '--gate', key: 'gate', description: 'stop for approval before VALIDATE (e.g. to clean up orphans first)' },
  ],
  input: z
    .object({
      table: tableName,
      column: identifier,
      refTable: tableName,
      refColumn: identifier.optional(),
      name: localName.optional(),
      onDelete: action.optional(),
      gate: z.boolean().optional(),
    })
    .strict(),
  plan({ table: tableText, column, refTable: refText, refColumn = 'id', name, onDelete, gate = false }) {
    const table = tableOf(tableText);
    const ref = tableOf(refText);
    const constraint = name ?? objectName(table.name, column, 'fkey');
    const orphans =
      `SELECT * FROM ${table.sql} AS child WHERE child.${ident(column)} IS NOT NULL` +
      ` AND NOT EXISTS (SELECT 1 FROM ${ref.sql} AS parent WHERE parent.${ident(refColumn)} = child.${ident(column)})`;
    const add: RevisionDraft = {
      message: `foreign key ${constraint}: ${table.text}.${column} → ${ref.text}.${refColumn} (NOT VALID)`,
      phase: 'expand',
      notes: [
        `ADD CONSTRAINT … FOREIGN KEY … NOT VALID takes SHARE ROW EXCLUSIVE on ${table.text} and ${ref.text}: writes wait for a catalog change only (reads go on); existing rows are not checked.`,
        'From commit on, inserts and updates of the column are checked against the referenced table.',
        'Its own revision: VALIDATE in the same transaction would scan while both tables block writes.',
      ],
      upgrade: [
        commented(
          'SHARE ROW EXCLUSIVE on both tables, catalog only (NOT VALID: no scan).',
          call('addForeignKey', table.text, constraint, [column], ref.text, [refColumn], { notValid: true, ...(onDelete === undefined ? {} : { onDelete }) }),
        ),
      ],
      downgrade: [commented('ACCESS EXCLUSIVE on both tables, brief.', call('dropConstraint', table.text, constraint))],
    };
    const validate: RevisionDraft = {
      message: `validate foreign key ${constraint}`,
      phase: 'validate',
      ...(gate
        ? {
            gate: {
              name: `validate:${table.text}.${constraint}`,
              prompt: `Every ${table.text}.${column} must exist in ${ref.text}.${refColumn}: new rows are checked already; fix or delete the old orphans (${orphans}), then approve to validate ${constraint}.`,
            },
          }
        : {}),
      notes: [
        `VALIDATE CONSTRAINT scans ${table.text} under SHARE UPDATE EXCLUSIVE (reads and writes go on) and takes ROW SHARE on ${ref.text}.`,
        `It fails, changing nothing, if an orphan exists; find them with ${orphans}, fix them and run the migration again.`,
      ],
      upgrade: [commented('SHARE UPDATE EXCLUSIVE for the scan; ROW SHARE on the referenced table.', call('validateConstraint', table.text, constraint))],
      downgrade: [],
      emptyDowngrade: 'Nothing to undo: the constraint stays validated until the previous revision drops it.',
    };
    return [add, validate];
  },
});
