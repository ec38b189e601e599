/**
 * add-not-null-column: a NOT NULL column on a live table without a rewrite and without a scan under
 * a strong lock. The column arrives nullable; existing rows are backfilled in batches; NOT NULL is
 * proven by a CHECK added NOT VALID and validated without blocking writes, so SET NOT NULL only
 * changes the catalog (PG12+).
 */
import { z } from 'zod';
import { identifier, ident, objectName, sqlExpression, sqlType, tableName, tableOf } from './fields';
import { validateIfPresent } from './column-sync';
import { call, commented, definePattern, type RevisionDraft } from './types';

/** A literal PostgreSQL evaluates once at ADD COLUMN: `0`, `'free'`, `true`, `'{}'::jsonb`. */
export const CONSTANT = /^(?:-?\d+(?:\.\d+)?|'(?:[^']|'')*'|true|false)(?:\s*::\s*[a-z_][a-z0-9_ ]*(?:\(\s*\d+(?:\s*,\s*\d+)?\s*\))?(?:\[\])?)?$/i;

export default definePattern({
  name: 'add-not-null-column',
  summary: 'add a NOT NULL column: nullable add → backfill → CHECK NOT VALID → VALIDATE → SET NOT NULL',
  arguments: [
    { name: 'table', description: 'table, optionally schema-qualified' },
    { name: 'column', description: 'the new column' },
    { name: 'type', description: 'its SQL type, e.g. bigint or "numeric(12,2)"' },
  ],
  options: [
    { flags: '--default <expr>', key: 'default', description: 'DEFAULT for new rows; also the value for existing rows unless --backfill is given' },
    { flags: '--backfill <expr>', key: 'backfill', description: "value for existing rows (may use the row's other columns)" },
  ],
  input: z
    .object({
      table: tableName,
      column: identifier,
      type: sqlType,
      default: sqlExpression.optional(),
      backfill: sqlExpression.optional(),
    })
    .strict()
    .refine((i) => i.default !== undefined || i.backfill !== undefined, {
      message: 'existing rows need a value: give --default <expr>, --backfill <expr>, or both',
      path: ['backfill'],
    }),
  plan({ table: tableText, column, type, default: defaultExpr, backfill }) {
    const table = tableOf(tableText);
    const col = ident(column);
    const check = objectName(table.name, column, 'not_null_check');
    const where = `${col} IS NULL`;
    const columnText = `${table.text}.${column}`;
    const fill = {
      backfill: { table: table.text, set: { [column]: backfill ?? defaultExpr! }, where },
      check: { name: `no NULLs left in ${columnText}`, failingRows: `SELECT * FROM ${table.sql} WHERE ${where}` },
    };
    // A constant default given to ADD COLUMN fills existing rows for free (PG11+), but only when they
    // should get that value: with --backfill they must stay NULL until the backfill sets them.
    const constantDefault = defaultExpr !== undefined && backfill === undefined && CONSTANT.test(defaultExpr);

    const add: RevisionDraft = {
      message: `add ${columnText} ${type}, nullable${defaultExpr === undefined ? '' : ` with default ${defaultExpr}`}`,
      phase: 'expand',
      notes: [
        `ADD COLUMN takes ACCESS EXCLUSIVE on ${table.text} for a catalog change only (milliseconds, under lock_timeout): the column is nullable` +
          (defaultExpr === undefined ? '.' : constantDefault ? ' and its default is a constant, which PG11+ stores without rewriting the table.' : ', and the default is set separately (existing rows stay NULL until the backfill).'),
        ...(defaultExpr !== undefined && !constantDefault
          ? [
              backfill === undefined
                ? `SET DEFAULT ${defaultExpr} may be volatile: given to ADD COLUMN it would rewrite the whole table under that lock. SET DEFAULT alone is catalog-only and applies to new rows; the backfill fills existing ones.`
                : `SET DEFAULT ${defaultExpr} is catalog-only and applies to new rows; existing rows get ${backfill} from the backfill.`,
            ]
          : []),
        ...(defaultExpr === undefined ? [] : [`Backfill: UPDATE in key batches (row locks only, writes go on); the WHERE makes a re-run a no-op.`]),
      ],
      upgrade:
        defaultExpr === undefined
          ? [commented('ACCESS EXCLUSIVE, catalog only: a nullable column without default.', call('addColumn', table.text, column, type))]
          : constantDefault
            ? [commented('ACCESS EXCLUSIVE, catalog only: PG11+ keeps a constant default in the catalog, no rewrite.', call('addColumn', table.text, column, type, { default: defaultExpr }))]
            : [
                commented(
                  backfill === undefined
                    ? 'ACCESS EXCLUSIVE, catalog only: added without the default, which could be volatile (a rewrite).'
                    : 'ACCESS EXCLUSIVE, catalog only: added without the default, so existing rows wait for the backfill.',
                  call('addColumn', table.text, column, type),
                ),
                commented('ACCESS EXCLUSIVE, catalog only: the default applies to rows inserted from now on.', call('alterColumn', table.text, column, { default: defaultExpr })),
              ],
      downgrade: [commented('ACCESS EXCLUSIVE, catalog only.', call('dropColumn', table.text, column))],
      // With a default, every row inserted from here on has a value, so the backfill can run at once.
      ...(defaultExpr === undefined ? {} : fill),
    };

    // Without a default, rows the current app inserts stay NULL: the backfill must wait until the app
    // writes the column, or it would never be finished.
    const backfillAfterDeploy: RevisionDraft = {
      message: `backfill ${columnText}`,
      phase: 'backfill',
      gate: {
        name: `deploy:${columnText}`,
        prompt: `Deploy the app version that writes ${columnText} on every INSERT (nothing else fills it for new rows), then approve: existing rows are backfilled next.`,
      },
      notes: ['No DDL: this revision carries the gate and the backfill. The backfill UPDATEs key batches (row locks only); its WHERE makes a re-run a no-op.'],
      upgrade: [],
      emptyUpgrade: 'Nothing to change in the schema: this step waits for the app deploy, then backfills.',
      downgrade: [],
      emptyDowngrade: 'Nothing to undo: backfilled values stay until the column is dropped.',
      ...fill,
    };

    const enforce: RevisionDraft = {
      message: `forbid new NULLs in ${columnText} (CHECK NOT VALID)`,
      phase: 'enforce',
      ...(defaultExpr === undefined
        ? {}
        : {
            gate: {
              name: `enforce:${columnText}`,
              prompt: `Every row of ${table.text} has ${column} now. Approve to reject writes that leave ${columnText} NULL from here on (new rows get the default ${defaultExpr}).`,
            },
          }),
      notes: [
        `ADD CONSTRAINT … CHECK … NOT VALID takes ACCESS EXCLUSIVE on ${table.text} for a catalog change only: existing rows are not scanned; new and updated rows are checked from now on.`,
        'Its own revision: VALIDATE in the same transaction would scan the table while this lock is held.',
      ],
      upgrade: [commented('ACCESS EXCLUSIVE, catalog only (NOT VALID: no scan).', call('addCheck', table.text, check, `${col} IS NOT NULL`, { notValid: true }))],
      downgrade: [commented('ACCESS EXCLUSIVE, catalog only.', call('dropConstraint', table.text, check))],
    };

    const validate: RevisionDraft = {
      message: `validate ${check}`,
      phase: 'validate',
      notes: [
        `VALIDATE CONSTRAINT scans ${table.text} under SHARE UPDATE EXCLUSIVE: reads and writes go on; only other DDL and VACUUM wait.`,
        'Its own revision, so the scan is committed before SET NOT NULL needs its stronger lock (a lock timeout there does not throw the scan away).',
      ],
      upgrade: [commented('SHARE UPDATE EXCLUSIVE for the scan: reads and writes go on.', call('validateConstraint', table.text, check))],
      downgrade: [],
      emptyDowngrade: 'Nothing to undo: a validated constraint stays as it is (the previous revision drops it).',
    };

    const setNotNull: RevisionDraft = {
      message: `set ${columnText} NOT NULL, drop ${check}`,
      phase: 'contract',
      notes: [
        `SET NOT NULL takes ACCESS EXCLUSIVE on ${table.text}, but the validated CHECK (${column} IS NOT NULL) proves it, so PG12+ skips the scan: catalog only.`,
        'VALIDATE first is a no-op once the previous revision ran; after a downgrade and a new upgrade it validates again under SHARE UPDATE EXCLUSIVE before the stronger lock is taken.',
        'The downgrade puts the NOT VALID check back (catalog only) and drops NOT NULL; the previous revision validates again on the way up.',
      ],
      upgrade: [
        // A plain VALIDATE would fail on a re-run after the drop below committed (a retry of a
        // revision whose version row did not make it): the check is validated only while it exists.
        commented('No-op when already valid (see above), or already dropped.', call('sql', validateIfPresent(table, check))),
        commented('ACCESS EXCLUSIVE, catalog only: the validated check proves no NULLs (PG12+).', call('setNotNull', table.text, column)),
        commented('ACCESS EXCLUSIVE, catalog only: NOT NULL now does its job.', call('dropConstraint', table.text, check)),
      ],
      downgrade: [
        commented('ACCESS EXCLUSIVE, catalog only (NOT VALID: no scan).', call('addCheck', table.text, check, `${col} IS NOT NULL`, { notValid: true })),
        commented('ACCESS EXCLUSIVE, catalog only.', call('dropNotNull', table.text, column)),
      ],
    };

    return defaultExpr === undefined ? [add, backfillAfterDeploy, enforce, validate, setNotNull] : [add, enforce, validate, setNotNull];
  },
});
