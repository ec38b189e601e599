/**
 * The statements the expand/contract patterns (rename-column, change-column-type) share: a new
 * column kept in step with the old one by a trigger, and a contract step that moves the old column's
 * DEFAULT and NOT NULL onto the new one before dropping it.
 *
 * Patterns are generated offline, without a database, so what only the catalog knows — the old
 * column's type, default and nullability, and what else depends on it — is read at apply time,
 * inside DO blocks. Each block is one statement in a transactional revision: it happens entirely or
 * not at all.
 */
import { dollarQuote } from '../ops/render';
import { ident, inSchemaOf, literal, type TableName } from './fields';
import { call, commented, type OpCall } from './types';

const attribute = (table: TableName, column: string, alias = ''): string =>
  `${alias}attrelid = ${table.literal}::regclass AND ${alias}attname = ${literal(column)} AND NOT ${alias}attisdropped`;

const doBlock = (declare: string[], body: string[]): string => {
  const lines = ['', ...(declare.length ? ['DECLARE', ...declare.map((d) => `  ${d}`)] : []), 'BEGIN', ...body.map((b) => `  ${b}`), 'END', ''];
  return `DO ${dollarQuote(lines.join('\n'))}`;
};

const raise = (message: string, hint?: string): string =>
  `RAISE EXCEPTION USING MESSAGE = ${message}${hint === undefined ? '' : `, HINT = ${literal(hint)}`};`;

/**
 * Adds `column` with exactly the type of `like` (type modifiers, arrays and domains included), read
 * from the catalog; nullable and without a default, so the ADD is catalog-only. When `like` is NOT
 * NULL and `notNullCheck` is given, a NOT VALID `CHECK (column IS NOT NULL)` of that name goes with it: the sync trigger
 * fills the new column on every write, so new rows pass it, and validating it later lets the
 * contract step set NOT NULL without a scan.
 */
export function addColumnLike(table: TableName, column: string, like: string, notNullCheck?: string): string {
  return doBlock(
    ['like_type text;', 'like_not_null boolean;'],
    [
      `SELECT format_type(atttypid, atttypmod), attnotnull INTO like_type, like_not_null FROM pg_attribute WHERE ${attribute(table, like)};`,
      'IF like_type IS NULL THEN',
      `  ${raise(literal(`column ${like} of ${table.text} does not exist`))}`,
      'END IF;',
      `EXECUTE ${literal(`ALTER TABLE ${table.sql} ADD COLUMN IF NOT EXISTS ${ident(column)} `)} || like_type;`,
      ...(notNullCheck === undefined ? [] : notNullCheckIf('like_not_null', table, column, notNullCheck)),
    ],
  );
}

/**
 * Adds `column` of `type` after checking that `source` has the type `fromType` (the downgrade
 * re-creates `source` with it), plus the NOT VALID NOT NULL check when `source` is NOT NULL.
 */
export function addConvertedColumn(table: TableName, column: string, type: string, source: string, fromType: string, notNullCheck: string): string {
  return doBlock(
    ['source_type regtype;', 'source_not_null boolean;'],
    [
      `SELECT atttypid::regtype, attnotnull INTO source_type, source_not_null FROM pg_attribute WHERE ${attribute(table, source)};`,
      'IF source_type IS NULL THEN',
      `  ${raise(literal(`column ${source} of ${table.text} does not exist`))}`,
      'END IF;',
      `IF source_type <> ${literal(fromType)}::regtype THEN`,
      `  ${raise(
        `${literal(`${table.text}.${source} is `)} || source_type::text || ${literal(`, not ${fromType}`)}`,
        `generate the chain again with --from-type set to the column's current type`,
      )}`,
      'END IF;',
      `EXECUTE ${literal(`ALTER TABLE ${table.sql} ADD COLUMN IF NOT EXISTS ${ident(column)} ${type}`)};`,
      ...notNullCheckIf('source_not_null', table, column, notNullCheck),
    ],
  );
}

function notNullCheckIf(condition: string, table: TableName, column: string, notNullCheck: string): string[] {
  return [
    `IF ${condition} AND NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = ${table.literal}::regclass AND conname = ${literal(notNullCheck)}) THEN`,
    `  EXECUTE ${literal(`ALTER TABLE ${table.sql} ADD CONSTRAINT ${ident(notNullCheck)} CHECK (${ident(column)} IS NOT NULL) NOT VALID`)};`,
    'END IF;',
  ];
}

/** VALIDATE the NOT NULL check when the expand step added one (the old column was NOT NULL); nothing otherwise. */
export function validateIfPresent(table: TableName, notNullCheck: string): string {
  return doBlock(
    [],
    [
      `IF EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = ${table.literal}::regclass AND conname = ${literal(notNullCheck)} AND NOT convalidated) THEN`,
      `  EXECUTE ${literal(`ALTER TABLE ${table.sql} VALIDATE CONSTRAINT ${ident(notNullCheck)}`)};`,
      'END IF;',
    ],
  );
}

/**
 * Stops the contract step when anything but its default still depends on `column` — an index, a
 * constraint, a view, an owned sequence, a trigger on `UPDATE OF` it: DROP COLUMN would drop those
 * silently (or fail halfway), and this pattern copies data, not those objects.
 */
export function refuseDependents(table: TableName, column: string, replacement: string): string {
  return doBlock(
    ['dependents text;'],
    [
      'SELECT string_agg(DISTINCT pg_describe_object(d.classid, d.objid, d.objsubid), \', \') INTO dependents',
      '  FROM pg_depend d JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid',
      ` WHERE d.refclassid = 'pg_class'::regclass AND ${attribute(table, column, 'a.')}`,
      "   AND d.classid <> 'pg_attrdef'::regclass AND d.deptype IN ('n', 'a', 'i');",
      'IF dependents IS NOT NULL THEN',
      `  ${raise(
        `${literal(`${table.text}.${column} is still used by `)} || dependents`,
        `create their equivalents on ${replacement} and drop these in a revision before this one; dropping the column would drop them silently`,
      )}`,
      'END IF;',
    ],
  );
}

/**
 * Moves `from`'s DEFAULT expression to `to` (catalog only). With `castTo` (the columns' types
 * differ), an expression whose type does not fit `to` is moved as `CAST((expr) AS castTo)`.
 */
export function moveDefault(table: TableName, from: string, to: string, castTo?: string): string {
  const setDefault = `${literal(`ALTER TABLE ${table.sql} ALTER COLUMN ${ident(to)} SET DEFAULT `)} || default_expr`;
  const set =
    castTo === undefined
      ? [`  EXECUTE ${setDefault};`]
      : [
          '  BEGIN',
          `    EXECUTE ${setDefault};`,
          '  EXCEPTION WHEN datatype_mismatch THEN',
          `    EXECUTE ${literal(`ALTER TABLE ${table.sql} ALTER COLUMN ${ident(to)} SET DEFAULT CAST((`)} || default_expr || ${literal(`) AS ${castTo})`)};`,
          '  END;',
        ];
  return doBlock(
    ['default_expr text;'],
    [
      `SELECT pg_get_expr(d.adbin, d.adrelid) INTO default_expr FROM pg_attrdef d JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum WHERE ${attribute(table, from, 'a.')};`,
      'IF default_expr IS NOT NULL THEN',
      ...set,
      `  EXECUTE ${literal(`ALTER TABLE ${table.sql} ALTER COLUMN ${ident(from)} DROP DEFAULT`)};`,
      'END IF;',
    ],
  );
}

/** SET NOT NULL on `column` when its validated NOT NULL check exists (no scan: the check proves it, PG12+), then drop the check. */
export function settleNotNull(table: TableName, column: string, notNullCheck: string): string {
  return doBlock(
    [],
    [
      `IF EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = ${table.literal}::regclass AND conname = ${literal(notNullCheck)}) THEN`,
      `  EXECUTE ${literal(`ALTER TABLE ${table.sql} ALTER COLUMN ${ident(column)} SET NOT NULL`)};`,
      `  EXECUTE ${literal(`ALTER TABLE ${table.sql} DROP CONSTRAINT ${ident(notNullCheck)}`)};`,
      'END IF;',
    ],
  );
}

/**
 * The reverse of settleNotNull, for a downgrade: when `carrier` is NOT NULL, `restored` (the old
 * column, refilled) becomes NOT NULL again and `carrier` goes back to a validated check.
 */
export function restoreNotNull(table: TableName, carrier: string, restored: string, notNullCheck: string): string {
  return doBlock(
    [],
    [
      `IF (SELECT attnotnull FROM pg_attribute WHERE ${attribute(table, carrier)}) THEN`,
      `  EXECUTE ${literal(`ALTER TABLE ${table.sql} ALTER COLUMN ${ident(restored)} SET NOT NULL`)};`,
      `  EXECUTE ${literal(`ALTER TABLE ${table.sql} ALTER COLUMN ${ident(carrier)} DROP NOT NULL`)};`,
      `  EXECUTE ${literal(`ALTER TABLE ${table.sql} ADD CONSTRAINT ${ident(notNullCheck)} CHECK (${ident(carrier)} IS NOT NULL)`)};`,
      'END IF;',
    ],
  );
}

/**
 * Trigger body keeping `a` (old name) and `b` (new name) equal whichever one a writer sets, so the
 * app versions before and after the rename can run side by side:
 * - INSERT: a writer that knows only `a` leaves `b` NULL, so `b` takes `a`; otherwise `b` wins
 *   (a writer that knows `b` set it; `a` then holds at most its default).
 * - UPDATE: whichever column the statement changed wins; when neither changed (another column was
 *   updated, or a row the backfill has not reached), `b` takes `a`.
 */
export function twoWaySyncBody(a: string, b: string): string {
  const A = `NEW.${ident(a)}`;
  const B = `NEW.${ident(b)}`;
  return [
    '',
    'BEGIN',
    "  IF TG_OP = 'INSERT' THEN",
    `    IF ${B} IS NULL THEN`,
    `      ${B} := ${A};`,
    '    ELSE',
    `      ${A} := ${B};`,
    '    END IF;',
    `  ELSIF ${B} IS DISTINCT FROM OLD.${ident(b)} THEN`,
    `    ${A} := ${B};`,
    '  ELSE',
    `    ${B} := ${A};`,
    '  END IF;',
    '  RETURN NEW;',
    'END',
    '',
  ].join('\n');
}

/**
 * Trigger body deriving `target` from the row on every INSERT and UPDATE: `expression` is evaluated
 * over the new row's columns (`SELECT NEW.*`), exactly as the backfill evaluates it over the table.
 */
export function deriveBody(target: string, expression: string): string {
  return ['', 'BEGIN', `  NEW.${ident(target)} := (SELECT ${expression} FROM (SELECT NEW.*) AS new_row);`, '  RETURN NEW;', 'END', ''].join('\n');
}

/**
 * The ops that install and remove a row trigger keeping columns in step during expand/contract:
 * its function (`body`, from twoWaySyncBody or deriveBody) and a BEFORE INSERT OR UPDATE trigger.
 */
export function syncTrigger(table: TableName, name: string, body: string): { install: OpCall[]; remove: OpCall[] } {
  const fn = inSchemaOf(table, name);
  return {
    install: [
      commented('No table lock: the function only exists; the trigger uses it.', call('createFunction', fn, { returns: 'trigger', language: 'plpgsql', body })),
      commented(
        'SHARE ROW EXCLUSIVE, brief: writes wait for the catalog change, reads go on.',
        call('createTrigger', name, table.text, { timing: 'BEFORE', events: ['INSERT', 'UPDATE'], forEach: 'ROW', function: fn }),
      ),
    ],
    remove: [
      commented('ACCESS EXCLUSIVE, brief (catalog only).', call('dropTrigger', name, table.text)),
      commented('No table lock.', call('dropFunction', fn, [])),
    ],
  };
}
