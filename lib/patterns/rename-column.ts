/**
 * rename-column (expand/contract): RENAME COLUMN breaks every running query that uses the old name
 * the moment it commits. Instead the new column is added next to the old one and a trigger keeps
 * the two equal whichever one a writer sets; the backfill copies existing rows; the app moves to
 * the new name; then the old column goes. Its type comes from the catalog (the new column gets
 * exactly the old one's type, with its collation, statistics target, storage, compression and
 * comment), and its DEFAULT and NOT NULL move over at the end. Identity and generated columns are
 * refused: no trigger can keep a copy of them in step.
 */
import { z } from 'zod';
import { addColumnLike, distinctText, moveDefault, refuseDependents, restoreNotNull, settleNotNull, syncTrigger, twoWaySyncBody, validateIfPresent } from './column-sync';
import { ident, identifier, objectName, tableName, tableOf } from './fields';
import { call, commented, definePattern } from './types';

export default definePattern({
  name: 'rename-column',
  summary: 'rename a column with expand/contract: new column + two-way sync trigger → backfill → deploy → drop the old one',
  arguments: [
    { name: 'table', description: 'table, optionally schema-qualified' },
    { name: 'from', description: 'current column name' },
    { name: 'to', description: 'new column name' },
  ],
  options: [],
  input: z
    .object({ table: tableName, from: identifier, to: identifier })
    .strict()
    .refine((i) => i.from !== i.to, { message: 'the new name is the current one', path: ['to'] }),
  plan({ table: tableText, from, to }) {
    const table = tableOf(tableText);
    const [a, b] = [ident(from), ident(to)];
    const sync = objectName(table.name, from, 'to', to, 'sync');
    const check = objectName(table.name, to, 'not_null_check');
    const old = `${table.text}.${from}`;
    const renamed = `${table.text}.${to}`;
    const { install: installSync, remove: removeSync } = syncTrigger(table, sync, twoWaySyncBody(from, to));
    // Shown when the column is an identity or generated one (the expand step stops before changing anything).
    const hint = `rename it with ALTER TABLE … RENAME COLUMN in a revision of its own (catalog only, but statements that use the old name fail from its commit on), or make it a plain column first (ALTER COLUMN … DROP IDENTITY or DROP EXPRESSION)`;
    const columnOrder = `Column order changes: PostgreSQL adds a column only at the end, so after the contract step ${to} is the last column of ${table.text} (and after that step's downgrade, ${from} is). SELECT * and INSERTs without a column list see the columns in a new order: name the columns in the app.`;

    return [
      {
        message: `expand: add ${renamed} kept in sync with ${from}`,
        phase: 'expand',
        notes: [
          `ADD COLUMN (inside a DO block that reads ${from}'s type from the catalog) takes ACCESS EXCLUSIVE on ${table.text} for a catalog change only: nullable, no default.`,
          `${to} gets ${from}'s exact type (type modifiers included), collation, statistics target, storage, compression and comment; its DEFAULT and NOT NULL move in the contract step. The block stops, changing nothing, when ${from} is an identity or generated column: a trigger cannot keep a copy of those in step.`,
          columnOrder,
          `If ${from} is NOT NULL, a CHECK (${to} IS NOT NULL) NOT VALID comes with it (catalog only): the trigger fills ${to} on every write, so new rows pass it.`,
          'CREATE TRIGGER takes SHARE ROW EXCLUSIVE, brief. From commit on, every INSERT and UPDATE keeps both columns equal, whichever one the writer set.',
          `Backfill: UPDATE ${to} = ${from} in key batches (row locks only); the WHERE makes a re-run a no-op.`,
        ],
        backfill: { table: table.text, set: { [to]: a }, where: `${b} IS NULL AND ${a} IS NOT NULL` },
        check: { name: `${renamed} equals ${old} in every row`, failingRows: `SELECT * FROM ${table.sql} WHERE ${distinctText(b, a)}` },
        upgrade: [commented(`ACCESS EXCLUSIVE, catalog only: ${to} with ${from}'s exact type.`, call('sql', addColumnLike(table, to, from, hint, check))), ...installSync],
        downgrade: [...removeSync, commented('ACCESS EXCLUSIVE, brief (its NOT NULL check goes with it).', call('dropColumn', table.text, to))],
      },
      {
        message: `validate NOT NULL of ${renamed} (when ${from} is NOT NULL)`,
        phase: 'deploy',
        gate: {
          name: `deploy:${renamed}`,
          prompt: `${renamed} now equals ${from} in every row, and the trigger keeps both in step. Deploy the app version that reads and writes ${to} instead of ${from} (old and new versions can run side by side), then approve.`,
        },
        notes: [
          `VALIDATE CONSTRAINT (only when the expand step added the NOT NULL check) scans ${table.text} under SHARE UPDATE EXCLUSIVE: reads and writes go on.`,
          'Its own revision, so the contract step can set NOT NULL without a scan and without holding its stronger lock through one.',
        ],
        upgrade: [commented('SHARE UPDATE EXCLUSIVE for the scan, or nothing when there is no check.', call('sql', validateIfPresent(table, check)))],
        downgrade: [],
        emptyDowngrade: 'Nothing to undo: the check stays validated until the expand step is downgraded.',
      },
      {
        message: `contract: drop ${old}`,
        phase: 'contract',
        gate: {
          name: `contract:${old}`,
          prompt: `No running app instance reads or writes ${old} any more. Approve to drop it (its default and NOT NULL move to ${to}); undoing this step rewrites the table under ACCESS EXCLUSIVE.`,
        },
        notes: [
          `All statements take ACCESS EXCLUSIVE on ${table.text} for catalog changes only: drop the trigger, move ${from}'s DEFAULT to ${to}, SET NOT NULL on ${to} (no scan: the validated check proves it, PG12+), drop ${from}.`,
          `It stops, changing nothing, while an index, constraint, view or owned sequence still uses ${from}: DROP COLUMN would remove those silently. Recreate them on ${to} in a revision before this one.`,
          `The downgrade re-adds ${from} with ${to}'s type, collation, statistics target, storage, compression and comment, and copies ${to} into it with one UPDATE under ACCESS EXCLUSIVE (a full rewrite: writes wait for it), because a downgrade has no batched backfill; plan a window for a big table.`,
          columnOrder,
        ],
        upgrade: [
          commented(`Catalog read only: fails while other objects depend on ${from}.`, call('sql', refuseDependents(table, from, to))),
          ...removeSync,
          commented('ACCESS EXCLUSIVE, catalog only.', call('sql', moveDefault(table, from, to))),
          commented('ACCESS EXCLUSIVE, catalog only: the validated check proves NOT NULL (PG12+), then goes.', call('sql', settleNotNull(table, to, check))),
          commented('ACCESS EXCLUSIVE, catalog only.', call('dropColumn', table.text, from)),
        ],
        downgrade: [
          commented(`ACCESS EXCLUSIVE, catalog only: ${from} with ${to}'s type.`, call('sql', addColumnLike(table, from, to, hint))),
          commented('ACCESS EXCLUSIVE is held already: one full rewrite, writes wait until commit.', call('sql', `UPDATE ${table.sql} SET ${a} = ${b}`)),
          commented('ACCESS EXCLUSIVE, catalog only.', call('sql', moveDefault(table, to, from))),
          commented(`When ${to} is NOT NULL: ${from} becomes NOT NULL and ${to} gets its validated check back (both scan, under the lock already held).`, call('sql', restoreNotNull(table, to, from, check))),
          ...installSync,
        ],
      },
    ];
  },
});
