/**
 * change-column-type (expand/contract): ALTER COLUMN … TYPE rewrites the table and its indexes under
 * ACCESS EXCLUSIVE. Instead a new column of the new type is added and derived from the old one by a
 * trigger on every write; the backfill converts existing rows; after a gate the two are swapped in
 * one short transaction (drop the old column, rename the new one to its name), so the app keeps
 * using one column name throughout and sees the new type from the swap on. The new column takes over
 * what still means the same for its type (comment and statistics target; collation, storage and
 * compression when the new type can have them). Identity and generated columns are refused: no
 * trigger can derive a copy of them.
 */
import { z } from 'zod';
import { doIf } from '../ops/render';
import { addColumnOfType, addConvertedColumn, columnPresent, deriveBody, moveDefault, refuseDependents, restoreNotNull, settleNotNull, syncTrigger, validateIfPresent } from './column-sync';
import { ident, identifier, literal, objectName, sqlExpression, sqlType, tableName, tableOf } from './fields';
import { call, commented, definePattern } from './types';

export default definePattern({
  name: 'change-column-type',
  summary: 'change a column type with expand/contract: new column + trigger → backfill → swap (rename) → old one dropped',
  arguments: [
    { name: 'table', description: 'table, optionally schema-qualified' },
    { name: 'column', description: 'the column to change' },
    { name: 'newType', description: 'its new SQL type' },
  ],
  options: [
    {
      flags: '--from-type <type>',
      key: 'fromType',
      description: "the column's current type, with its modifiers (varchar(40), not varchar): the first step checks the type, and the downgrade re-creates the column with exactly this",
      required: true,
    },
    { flags: '--using <expr>', key: 'using', description: 'old value → new, over the row\'s columns (default: a cast of the column)' },
    { flags: '--down <expr>', key: 'down', description: 'new value → old, for the downgrade; the column name means the new value (default: a cast)' },
  ],
  input: z
    .object({
      table: tableName,
      column: identifier,
      newType: sqlType,
      fromType: sqlType,
      using: sqlExpression.optional(),
      down: sqlExpression.optional(),
    })
    .strict(),
  plan({ table: tableText, column, newType, fromType, using, down }) {
    const table = tableOf(tableText);
    const oldType = fromType;
    const col = ident(column);
    const next = objectName('_phasegate_new', column);
    const previous = objectName('_phasegate_old', column);
    const nextCol = ident(next);
    const convert = `CAST((${using ?? col}) AS ${newType})`;
    const convertBack = `CAST((${down ?? col}) AS ${oldType})`;
    const sync = objectName(table.name, column, 'to', newType.replace(/[^A-Za-z0-9]+/g, '_'), 'sync');
    const check = objectName(table.name, next, 'not_null_check');
    const columnText = `${table.text}.${column}`;
    const { install: installSync, remove: removeSync } = syncTrigger(table, sync, deriveBody(next, convert));
    // Which side of the swap (one transaction) the table is on: the shadow column exists only before the swap and after its downgrade.
    const beforeSwap = columnPresent(table, next);
    const beforeSwapBack = `NOT ${beforeSwap}`;
    // Shown when the column is an identity or generated one (the expand step stops before changing anything).
    const hint = `change its type with ALTER TABLE … ALTER COLUMN … TYPE in a revision of its own (it rewrites the table under ACCESS EXCLUSIVE), or make it a plain column first (ALTER COLUMN … DROP IDENTITY or DROP EXPRESSION)`;
    const columnOrder = `Column order changes: PostgreSQL adds a column only at the end, so after the swap ${column} is the last column of ${table.text}, and after the swap's downgrade too. SELECT * and INSERTs without a column list see the columns in a new order: name the columns in the app.`;

    return [
      {
        message: `expand: add ${table.text}.${next} ${newType} derived from ${column}`,
        phase: 'expand',
        notes: [
          `A DO block first checks that ${columnText} is ${oldType}, then ADD COLUMN ${next} ${newType} takes ACCESS EXCLUSIVE on ${table.text} for a catalog change only: nullable, no default.`,
          `${next} takes over ${column}'s comment and statistics target, and its collation, storage and compression only where ${newType} can have them (a collatable type; one that is TOASTed): a collation is copied as it is, so check that it suits ${newType}. Its DEFAULT and NOT NULL move in the swap. The block stops, changing nothing, when ${column} is an identity or generated column: a trigger cannot derive a copy of those.`,
          columnOrder,
          `If ${column} is NOT NULL, a CHECK (${next} IS NOT NULL) NOT VALID comes with it (catalog only): the trigger fills ${next} on every write.`,
          `CREATE TRIGGER takes SHARE ROW EXCLUSIVE, brief. From commit on, every INSERT and UPDATE sets ${next} = ${convert}; the app keeps using ${column} only.`,
          `Backfill: the same conversion for existing rows in key batches (row locks only); the WHERE makes a re-run a no-op. The conversion must be deterministic: the check compares it row by row.`,
        ],
        backfill: { table: table.text, set: { [next]: convert }, where: `${nextCol} IS NULL AND ${col} IS NOT NULL` },
        check: { name: `${table.text}.${next} equals ${convert} in every row`, failingRows: `SELECT * FROM ${table.sql} WHERE ${nextCol} IS DISTINCT FROM ${convert}` },
        upgrade: [
          commented(`ACCESS EXCLUSIVE, catalog only (fails first if ${column} is not ${oldType}).`, call('sql', addConvertedColumn(table, next, newType, column, oldType, check, hint))),
          ...installSync,
        ],
        downgrade: [...removeSync, commented('ACCESS EXCLUSIVE, brief (its NOT NULL check goes with it).', call('dropColumn', table.text, next))],
      },
      {
        message: `validate NOT NULL of ${table.text}.${next} (when ${column} is NOT NULL)`,
        phase: 'validate',
        notes: [
          `VALIDATE CONSTRAINT (only when the expand step added the NOT NULL check) scans ${table.text} under SHARE UPDATE EXCLUSIVE: reads and writes go on.`,
          'Its own revision, so the swap can set NOT NULL without a scan and without holding its stronger lock through one.',
        ],
        upgrade: [commented('SHARE UPDATE EXCLUSIVE for the scan, or nothing when there is no check.', call('sql', validateIfPresent(table, check)))],
        downgrade: [],
        emptyDowngrade: 'Nothing to undo: the check stays validated until the expand step is downgraded.',
      },
      {
        message: `swap: ${columnText} becomes ${newType}`,
        phase: 'contract',
        gate: {
          name: `swap:${columnText}`,
          prompt: `Every row has ${next} = ${convert}. Deploy an app version that works with ${columnText} as ${oldType} and as ${newType}, then approve: the swap makes ${column} the ${newType} column in one short transaction and drops the ${oldType} one.`,
        },
        notes: [
          `All statements take ACCESS EXCLUSIVE on ${table.text} for catalog changes only, in one transaction: drop the trigger, move ${column}'s DEFAULT (cast to ${newType} if needed), SET NOT NULL on ${next} (no scan: the validated check proves it, PG12+), drop ${column}, rename ${next} to ${column}. Queries see the old column before the commit and the new one after.`,
          `It stops, changing nothing, while an index, constraint, view or owned sequence still uses ${column}: DROP COLUMN would remove those silently. Create their equivalents on ${next} in a revision before this one (they follow the rename).`,
          `The downgrade adds a ${oldType} column and fills it with ${convertBack} in one UPDATE under ACCESS EXCLUSIVE (a full rewrite: writes wait for it), because a downgrade has no batched backfill; plan a window for a big table.`,
          `The downgrade's ${oldType} column takes over what the ${newType} one carries (comment, statistics target, and collation, storage and compression where ${oldType} can have them). What ${newType} could not hold, such as a collation, went with the ${oldType} column this step drops: after the downgrade ${column} has ${oldType}'s default there.`,
          columnOrder,
        ],
        // After the swap the column's name belongs to the new column. Run again (a retry that finds the
        // step committed without its version row), a statement that takes that name for the old
        // column would move the new one's default, refuse over its indexes, or drop it: those run
        // only while the shadow column exists, i.e. before the swap.
        upgrade: [
          commented(`Catalog read only: fails while other objects depend on ${column}.`, call('sql', refuseDependents(table, column, next, beforeSwap))),
          ...removeSync,
          commented('ACCESS EXCLUSIVE, catalog only.', call('sql', moveDefault(table, column, next, newType, beforeSwap))),
          commented('ACCESS EXCLUSIVE, catalog only: the validated check proves NOT NULL (PG12+), then goes.', call('sql', settleNotNull(table, next, check))),
          commented(`ACCESS EXCLUSIVE, catalog only. Only before the swap: after it, ${column} is the new column.`, call('sql', doIf(beforeSwap, `ALTER TABLE ${table.sql} DROP COLUMN IF EXISTS ${col}`))),
          commented('ACCESS EXCLUSIVE, catalog only: from commit on, queries naming the column get the new type.', call('renameColumn', table.text, next, column)),
        ],
        // The same the other way: once the shadow column exists again the swap back is done, and adding
        // the old-type column, filling it and renaming the column to the shadow name would start it
        // over (the rename failing on the name taken).
        downgrade: [
          commented(
            `ACCESS EXCLUSIVE, catalog only: the ${oldType} column, empty, with what ${column} carries that ${oldType} can have.`,
            call('sql', addColumnOfType(table, previous, oldType, column, hint, beforeSwapBack)),
          ),
          commented(
            'ACCESS EXCLUSIVE is held already: one full rewrite, writes wait until commit.',
            call('sql', doIf(beforeSwapBack, `EXECUTE ${literal(`UPDATE ${table.sql} SET ${ident(previous)} = ${convertBack}`)}`)),
          ),
          commented('ACCESS EXCLUSIVE, catalog only.', call('sql', doIf(beforeSwapBack, `ALTER TABLE ${table.sql} RENAME COLUMN ${col} TO ${nextCol}`))),
          commented('ACCESS EXCLUSIVE, catalog only.', call('renameColumn', table.text, previous, column)),
          commented('ACCESS EXCLUSIVE, catalog only.', call('sql', moveDefault(table, next, column, oldType))),
          commented(`When ${next} is NOT NULL: ${column} becomes NOT NULL and ${next} gets its validated check back (both scan, under the lock already held).`, call('sql', restoreNotNull(table, next, column, check))),
          ...installSync,
        ],
      },
    ];
  },
});
