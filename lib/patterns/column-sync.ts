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

/** A DO block; with `onlyIf` (a boolean SQL condition) it does nothing unless the condition holds. */
const doBlock = (declare: string[], body: string[], onlyIf?: string): string => {
  const guard = onlyIf === undefined ? [] : [`IF NOT (${onlyIf}) THEN`, '  RETURN;', 'END IF;'];
  const lines = ['', ...(declare.length ? ['DECLARE', ...declare.map((d) => `  ${d}`)] : []), 'BEGIN', ...[...guard, ...body].map((b) => `  ${b}`), 'END', ''];
  return `DO ${dollarQuote(lines.join('\n'))}`;
};

/**
 * `EXISTS (…)`: `column` is a column of `table`. The guard of the change-column-type swap's
 * statements: the swap and its downgrade hand one column name from one column to another, so a
 * statement that names it must know which side of the swap it runs on when the step runs again.
 */
export const columnPresent = (table: TableName, column: string): string => `EXISTS (SELECT 1 FROM pg_attribute WHERE ${attribute(table, column)})`;

const raise = (message: string, hint?: string): string =>
  `RAISE EXCEPTION USING MESSAGE = ${message}${hint === undefined ? '' : `, HINT = ${literal(hint)}`};`;

/**
 * What a column carries besides its type and data, read from the catalog as columns of one row over
 * `a` (the column's pg_attribute row) and `t` (its type's pg_type row); `target` is the SQL of the
 * new column's type oid, so an attribute the new type cannot have is left out (a collation on an
 * integer, EXTERNAL storage on a type that is never TOASTed). Each is NULL when the column has the
 * type's default, so nothing is set for it.
 */
const carriedAttributes = (target: string): string[] => [
  // Written as COLLATE in ADD COLUMN: only when it differs from the type's own (pg_dump's rule), so
  // "default" is never spelled out.
  `(SELECT format('%I.%I', n.nspname, c.collname) FROM pg_collation c JOIN pg_namespace n ON n.oid = c.collnamespace WHERE c.oid = a.attcollation AND a.attcollation <> t.typcollation AND (SELECT typcollation FROM pg_type WHERE oid = ${target}) <> 0) AS collation`,
  // attstattarget is -1 for the default up to PG 16 and NULL from PG 17, and int4 on PG 15 but int2
  // on 17: COALESCE and the cast read both the same way. 0 is a real setting (no statistics).
  'NULLIF(COALESCE(a.attstattarget, -1)::integer, -1) AS statistics',
  `CASE WHEN a.attstorage <> t.typstorage AND (SELECT typstorage FROM pg_type WHERE oid = ${target}) <> 'p' THEN CASE a.attstorage WHEN 'p' THEN 'PLAIN' WHEN 'e' THEN 'EXTERNAL' WHEN 'm' THEN 'MAIN' WHEN 'x' THEN 'EXTENDED' END END AS storage`,
  // '' (no byte) is the server's default_toast_compression.
  `CASE WHEN (SELECT typstorage FROM pg_type WHERE oid = ${target}) <> 'p' THEN CASE a.attcompression WHEN 'p' THEN 'pglz' WHEN 'l' THEN 'lz4' END END AS compression`,
  'col_description(a.attrelid, a.attnum) AS comment',
  // A trigger cannot keep a second column in step with these: an identity column takes its values
  // from a sequence the new column would not own, and a BEFORE trigger runs before generated columns
  // are computed (nor may it write one). So the pattern refuses them before changing anything.
  "CASE WHEN a.attidentity <> '' THEN 'an identity column (GENERATED ' || CASE a.attidentity WHEN 'a' THEN 'ALWAYS' ELSE 'BY DEFAULT' END || ' AS IDENTITY)'" +
    " WHEN a.attgenerated <> '' THEN 'a generated column (GENERATED ALWAYS AS (' || (SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d WHERE d.adrelid = a.attrelid AND d.adnum = a.attnum) || ')' || CASE a.attgenerated WHEN 's' THEN ' STORED' WHEN 'v' THEN ' VIRTUAL' ELSE '' END || ')' END AS unsyncable",
];

/**
 * The DO block adding `column` with what `source` carries: it reads `source` (`src`), stops when
 * `source` is missing or cannot be kept in step by a trigger (`hint` says what to do instead), runs
 * `checks`, adds the column (`add`: the ADD COLUMN statement up to its type, as a SQL text
 * expression), then sets each carried attribute that is not the default, all catalog only. `after`
 * runs last (the NOT NULL check).
 */
function addColumnFrom(
  table: TableName,
  column: string,
  source: string,
  opts: { select: string[]; target: string; add: string; hint: string; checks?: string[]; after?: string[]; onlyIf?: string },
): string {
  const alter = (clause: string) => `${literal(`ALTER TABLE ${table.sql} ALTER COLUMN ${ident(column)} ${clause} `)}`;
  return doBlock(
    ['src record;'],
    [
      ...[...opts.select, ...carriedAttributes(opts.target)].map((column, i, all) => `${i === 0 ? 'SELECT ' : '       '}${column}${i < all.length - 1 ? ',' : ''}`),
      `  INTO src FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid WHERE ${attribute(table, source, 'a.')};`,
      'IF NOT FOUND THEN',
      `  ${raise(literal(`column ${source} of ${table.text} does not exist`))}`,
      'END IF;',
      'IF src.unsyncable IS NOT NULL THEN',
      `  ${raise(`${literal(`${table.text}.${source} is `)} || src.unsyncable || ${literal(': a trigger cannot keep another column in step with it')}`, opts.hint)}`,
      'END IF;',
      ...(opts.checks ?? []),
      `EXECUTE ${opts.add} || coalesce(' COLLATE ' || src.collation, '');`,
      'IF src.statistics IS NOT NULL THEN',
      `  EXECUTE ${alter('SET STATISTICS')} || src.statistics;`,
      'END IF;',
      'IF src.storage IS NOT NULL THEN',
      `  EXECUTE ${alter('SET STORAGE')} || src.storage;`,
      'END IF;',
      'IF src.compression IS NOT NULL THEN',
      `  EXECUTE ${alter('SET COMPRESSION')} || src.compression;`,
      'END IF;',
      'IF src.comment IS NOT NULL THEN',
      `  EXECUTE ${literal(`COMMENT ON COLUMN ${table.sql}.${ident(column)} IS `)} || quote_literal(src.comment);`,
      'END IF;',
      ...(opts.after ?? []),
    ],
    opts.onlyIf,
  );
}

/**
 * Adds `column` with exactly the type of `like` (type modifiers, arrays and domains included), read
 * from the catalog, and what else `like` carries: collation, statistics target, storage,
 * compression, comment. Nullable and without a default, so the ADD is catalog-only (the default
 * moves in the contract step). When `like` is NOT NULL and `notNullCheck` is given, a NOT VALID
 * `CHECK (column IS NOT NULL)` of that name goes with it: the sync trigger fills the new column on
 * every write, so new rows pass it, and validating it later lets the contract step set NOT NULL
 * without a scan. An identity or generated `like` is refused, with `hint`.
 */
export function addColumnLike(table: TableName, column: string, like: string, hint: string, notNullCheck?: string): string {
  return addColumnFrom(table, column, like, {
    select: ['format_type(a.atttypid, a.atttypmod) AS type', 'a.attnotnull AS not_null'],
    target: 'a.atttypid',
    add: `${literal(`ALTER TABLE ${table.sql} ADD COLUMN IF NOT EXISTS ${ident(column)} `)} || src.type`,
    hint,
    after: notNullCheck === undefined ? [] : notNullCheckIf('src.not_null', table, column, notNullCheck),
  });
}

/**
 * Adds `column` of `type` after checking that `source` has the type `fromType` (the downgrade
 * re-creates `source` with it), plus the NOT VALID NOT NULL check when `source` is NOT NULL. Of
 * what `source` carries, the new type keeps only what still means the same: comment and statistics
 * target always; collation, storage and compression when `type` can have them.
 */
export function addConvertedColumn(table: TableName, column: string, type: string, source: string, fromType: string, notNullCheck: string, hint: string): string {
  return addColumnFrom(table, column, source, {
    select: ['a.atttypid::regtype AS type_oid', 'a.attnotnull AS not_null'],
    target: `${literal(type)}::regtype`,
    add: literal(`ALTER TABLE ${table.sql} ADD COLUMN IF NOT EXISTS ${ident(column)} ${type}`),
    hint,
    checks: [
      `IF src.type_oid <> ${literal(fromType)}::regtype THEN`,
      `  ${raise(
        `${literal(`${table.text}.${source} is `)} || src.type_oid::text || ${literal(`, not ${fromType}`)}`,
        `generate the chain again with --from-type set to the column's current type`,
      )}`,
      'END IF;',
    ],
    after: notNullCheckIf('src.not_null', table, column, notNullCheck),
  });
}

/**
 * Adds `column` of `type` with what `source` (a column of another type) carries that `type` can have
 * (as addConvertedColumn), for the downgrade that re-creates a column of its old type; only while
 * `onlyIf` holds, when given.
 */
export function addColumnOfType(table: TableName, column: string, type: string, source: string, hint: string, onlyIf?: string): string {
  return addColumnFrom(table, column, source, {
    select: [],
    target: `${literal(type)}::regtype`,
    add: literal(`ALTER TABLE ${table.sql} ADD COLUMN IF NOT EXISTS ${ident(column)} ${type}`),
    hint,
    onlyIf,
  });
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
 * silently (or fail halfway), and this pattern copies data, not those objects. Only while `onlyIf`
 * holds, when given (after a swap, `column` names the new column, whose dependents stay).
 */
export function refuseDependents(table: TableName, column: string, replacement: string, onlyIf?: string): string {
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
    onlyIf,
  );
}

/**
 * Moves `from`'s DEFAULT expression to `to` (catalog only). With `castTo` (the columns' types
 * differ), an expression whose type does not fit `to` is moved as `CAST((expr) AS castTo)`. Only
 * while `onlyIf` holds, when given.
 */
export function moveDefault(table: TableName, from: string, to: string, castTo?: string, onlyIf?: string): string {
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
    onlyIf,
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
 * `x IS DISTINCT FROM y` over the values' text in the "C" collation: true when the two print
 * differently, whatever the columns' collation (see twoWaySyncBody) or type.
 */
export const distinctText = (x: string, y: string): string => `(${x})::text COLLATE "C" IS DISTINCT FROM (${y})::text COLLATE "C"`;

/**
 * Trigger body keeping `a` (old name) and `b` (new name) equal whichever one a writer sets, so the
 * app versions before and after the rename can run side by side:
 * - INSERT: a writer that knows only `a` leaves `b` NULL, so `b` takes `a`; otherwise `b` wins
 *   (a writer that knows `b` set it; `a` then holds at most its default).
 * - UPDATE: whichever column the statement changed wins; when neither changed (another column was
 *   updated, or a row the backfill has not reached), `b` takes `a`.
 * "Changed" compares the values' text in the "C" collation (distinctText): the new column has the old
 * one's collation, and under a nondeterministic one (case-insensitive ICU) `=` would call an update
 * from 'Foo' to 'foo' no change and undo it; the text form also works for types without `=` (json).
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
    `  ELSIF ${distinctText(B, `OLD.${ident(b)}`)} THEN`,
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
