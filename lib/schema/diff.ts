/**
 * Autogenerate's comparison: two `SchemaModel`s (the database as it is, and as it should be) in,
 * the `SchemaChange`s that take the first to the second out, in an order each step can follow the
 * last: schemas and types first, then new tables, then per existing table renames, new columns,
 * type, default, identity and nullability changes, then new constraints (unique before the foreign
 * keys that may need them) and indexes; every drop last (foreign keys first, schemas last), each
 * of which the renderer puts behind a gate.
 *
 * Renames are never guessed: a column that is gone and a column that is new are a drop and an add
 * unless `options.renames` names the pair. What cannot be compared or changed safely is returned as
 * `notSupported` with the reason, never left out. Column order is not compared (PostgreSQL cannot
 * reorder columns). Pure.
 */
import { PhasegateError } from '../errors';
import type { ColumnModel, ConstraintModel, DiffOptions, EnumModel, IndexModel, QualifiedName, SchemaChange, SchemaModel, TableModel } from './model';

const key = (q: QualifiedName): string => `${q.schema}.${q.name}`;
const byKey = <T extends QualifiedName>(list: readonly T[]): Map<string, T> => new Map(list.map((item) => [key(item), item]));
const nameOf = (q: QualifiedName): QualifiedName => ({ schema: q.schema, name: q.name });

/** A constraint's definition without `NOT VALID`: what it enforces once validated. */
const enforced = (c: ConstraintModel): string => c.definition.replace(/\s+NOT VALID$/, '');

/** `accounts.email=accounts.mail` or `app.accounts.email=app.accounts.mail`: one rename the user asked for. */
export function parseRename(text: string): { table: QualifiedName; from: string; to: string } {
  const bad = (why: string) =>
    new PhasegateError('InvalidRename', `--rename ${text}: ${why}; write it as <table>.<old column>=<table>.<new column> (e.g. accounts.email=accounts.mail, or app.accounts.email=app.accounts.mail)`, {
      details: { rename: text },
    });
  const sides = text.split('=');
  if (sides.length !== 2) throw bad('it needs exactly one "="');
  const parts = sides.map((s) => s.trim().split('.'));
  if (parts.some((p) => p.length < 2 || p.length > 3 || p.some((x) => x === ''))) throw bad('each side is [schema.]table.column');
  const table = (p: string[]): QualifiedName => (p.length === 3 ? { schema: p[0], name: p[1] } : { schema: 'public', name: p[0] });
  const [left, right] = parts.map(table);
  if (key(left) !== key(right)) throw bad(`a rename stays in one table (${key(left)} vs ${key(right)}); moving a column to another table is a drop and an add`);
  return { table: left, from: parts[0][parts[0].length - 1], to: parts[1][parts[1].length - 1] };
}

/** The renames that apply to `table`, checked against both models: a wrong name is refused before anything is written. */
function renamesFor(from: TableModel, to: TableModel, renames: NonNullable<DiffOptions['renames']>): Map<string, string> {
  const result = new Map<string, string>();
  const targets = new Set<string>();
  for (const r of renames.filter((x) => key(x.table) === key(from))) {
    const problem = result.has(r.from)
      ? `${r.from} is renamed twice`
      : targets.has(r.to)
        ? `two columns are renamed to ${r.to}`
        : !from.columns.some((c) => c.name === r.from)
      ? `${key(from)} has no column ${r.from} now`
      : !to.columns.some((c) => c.name === r.to)
        ? `the desired schema has no column ${r.to} in ${key(to)}`
        : to.columns.some((c) => c.name === r.from)
          ? `${r.from} is still in the desired schema, so it is not renamed`
          : from.columns.some((c) => c.name === r.to)
            ? `${key(from)} has a column ${r.to} already`
            : null;
    if (problem) {
      throw new PhasegateError('InvalidRename', `--rename ${key(r.table)}.${r.from}=${key(r.table)}.${r.to}: ${problem}; check the names against the database and the schema file`, { details: { rename: r } });
    }
    result.set(r.from, r.to);
    targets.add(r.to);
  }
  return result;
}

interface Collected {
  early: SchemaChange[];
  tables: SchemaChange[];
  columns: SchemaChange[];
  /** The old version of a constraint or index that changes but keeps its name: it must go before the new one is added. */
  replaced: SchemaChange[];
  uniques: SchemaChange[];
  checks: SchemaChange[];
  foreignKeys: SchemaChange[];
  indexes: SchemaChange[];
  dropForeignKeys: SchemaChange[];
  drops: SchemaChange[];
  dropColumns: SchemaChange[];
  dropTables: SchemaChange[];
  late: SchemaChange[];
  notSupported: SchemaChange[];
}

function diffColumn(table: QualifiedName, was: ColumnModel, now: ColumnModel, out: Collected): void {
  const where = `${key(table)}.${now.name}`;
  if (was.generated !== now.generated) {
    out.notSupported.push({ kind: 'notSupported', object: where, reason: `its generation expression changes (${was.generated ?? 'none'} → ${now.generated ?? 'none'}): that rewrites the table; write it by hand` });
    return;
  }
  if (was.type !== now.type) {
    out.columns.push({ kind: 'alterColumnType', table, column: now.name, from: was.type, to: now.type, collation: now.collation });
  } else if (was.collation !== now.collation) {
    out.notSupported.push({
      kind: 'notSupported',
      object: where,
      reason: `its collation changes (${was.collation ?? 'default'} → ${now.collation ?? 'default'}): ALTER COLUMN … COLLATE rebuilds its indexes under ACCESS EXCLUSIVE; use change-column-type by hand or a maintenance window`,
    });
  }
  if (was.default !== now.default && now.identity === null && was.identity === null) {
    out.columns.push({ kind: 'setDefault', table, column: now.name, from: was.default, to: now.default });
  }
  if (was.nullable && !now.nullable) out.columns.push({ kind: 'setNotNull', table, column: now.name });
  if (!was.nullable && now.nullable) out.columns.push({ kind: 'dropNotNull', table, column: now.name });
  if (was.identity !== now.identity) {
    if (was.identity === null && was.default !== null) out.columns.push({ kind: 'setDefault', table, column: now.name, from: was.default, to: null });
    out.columns.push({ kind: 'setIdentity', table, column: now.name, from: was.identity, to: now.identity });
    if (now.identity === null && now.default !== null) out.columns.push({ kind: 'setDefault', table, column: now.name, from: null, to: now.default });
  }
}

function addConstraint(table: QualifiedName, constraint: ConstraintModel, indexes: IndexModel[], out: Collected): void {
  const change: SchemaChange = { kind: 'addConstraint', table, constraint, ...(indexes.some((i) => i.constraint === constraint.name) ? { index: indexes.find((i) => i.constraint === constraint.name)! } : {}) };
  if (constraint.kind === 'foreign key') out.foreignKeys.push(change);
  else if (constraint.kind === 'check') out.checks.push(change);
  else out.uniques.push(change);
}

function diffTable(was: TableModel, now: TableModel, options: DiffOptions, out: Collected): void {
  const table = nameOf(now);
  const renames = renamesFor(was, now, options.renames ?? []);
  const renamedTo = new Map([...renames].map(([a, b]) => [b, a]));
  for (const [fromName, toName] of renames) out.columns.push({ kind: 'renameColumn', table, from: fromName, to: toName });

  const wasColumns = new Map(was.columns.map((c) => [c.name, c]));
  for (const column of now.columns) {
    const before = wasColumns.get(renamedTo.get(column.name) ?? column.name);
    if (!before) out.columns.push({ kind: 'addColumn', table, column });
    else diffColumn(table, { ...before, name: column.name }, column, out);
  }
  const kept = new Set(now.columns.map((c) => renamedTo.get(c.name) ?? c.name));
  for (const column of was.columns) if (!kept.has(column.name)) out.dropColumns.push({ kind: 'dropColumn', table, column: column.name });

  // Constraints by name: a changed definition is a drop and an add (under the same name).
  const wasConstraints = new Map(was.constraints.map((c) => [c.name, c]));
  const nowConstraints = new Map(now.constraints.map((c) => [c.name, c]));
  for (const c of now.constraints) {
    const before = wasConstraints.get(c.name);
    if (before && before.kind === c.kind && enforced(before) === enforced(c)) {
      if (!before.validated && c.validated) {
        out.notSupported.push({ kind: 'notSupported', object: `${key(table)}.${c.name}`, reason: `it exists NOT VALID: run ALTER TABLE ${key(table)} VALIDATE CONSTRAINT ${c.name} (SHARE UPDATE EXCLUSIVE; reads and writes go on), or let the migration that added it finish` });
      }
      continue;
    }
    if (before) out.replaced.push({ kind: 'dropConstraint', table, constraint: before });
    addConstraint(table, c, now.indexes, out);
  }
  for (const c of was.constraints) {
    if (!nowConstraints.has(c.name)) (c.kind === 'foreign key' ? out.dropForeignKeys : out.drops).push({ kind: 'dropConstraint', table, constraint: c });
  }

  // Indexes of their own (a primary key's or unique constraint's index goes with its constraint).
  const own = (list: IndexModel[]) => new Map(list.filter((i) => i.constraint === null).map((i) => [i.name, i]));
  const wasIndexes = own(was.indexes);
  const nowIndexes = own(now.indexes);
  for (const index of nowIndexes.values()) {
    const before = wasIndexes.get(index.name);
    // An INVALID leftover of a failed build is built again (the op drops it first).
    if (before && before.shape === index.shape && before.valid) continue;
    // Same name, new definition: the old one goes first (CREATE INDEX IF NOT EXISTS would keep it).
    if (before && before.shape !== index.shape) out.replaced.push({ kind: 'dropIndex', table, index: before });
    out.indexes.push({ kind: 'createIndex', table, index });
  }
  for (const index of wasIndexes.values()) if (!nowIndexes.has(index.name)) out.drops.push({ kind: 'dropIndex', table, index });
}

function diffEnum(was: EnumModel, now: EnumModel, out: Collected): void {
  if (was.labels.join('\u0000') === now.labels.join('\u0000')) return;
  // Only additions keep the existing labels' order: PostgreSQL can add a label, never remove or move one.
  const existing = now.labels.filter((l) => was.labels.includes(l));
  if (existing.length !== was.labels.length || existing.some((l, i) => l !== was.labels[i])) {
    out.notSupported.push({
      kind: 'notSupported',
      object: key(now),
      reason: `its labels change from (${was.labels.join(', ')}) to (${now.labels.join(', ')}): PostgreSQL cannot remove or reorder enum labels; create a new type and move the columns to it (change-column-type), by hand`,
    });
    return;
  }
  const labels = now.labels.flatMap((label, i) => (was.labels.includes(label) ? [] : [{ label, after: i === 0 ? null : now.labels[i - 1] }]));
  out.early.push({ kind: 'addEnumLabels', enum: nameOf(now), labels });
}

/** The changes that take `from` to `to`, in apply order. */
export function diffSchemas(from: SchemaModel, to: SchemaModel, options: DiffOptions = {}): SchemaChange[] {
  const out: Collected = { early: [], tables: [], columns: [], replaced: [], uniques: [], checks: [], foreignKeys: [], indexes: [], dropForeignKeys: [], drops: [], dropColumns: [], dropTables: [], late: [], notSupported: [] };
  const fromSchemas = new Set(from.schemas);
  const toSchemas = new Set(to.schemas);
  for (const schema of to.schemas) if (!fromSchemas.has(schema)) out.early.push({ kind: 'createSchema', schema });

  const fromEnums = byKey(from.enums);
  const toEnums = byKey(to.enums);
  for (const e of to.enums) {
    const before = fromEnums.get(key(e));
    if (before) diffEnum(before, e, out);
    else out.early.push({ kind: 'createEnum', enum: e });
  }

  const fromTables = byKey(from.tables);
  const toTables = byKey(to.tables);
  for (const rename of options.renames ?? []) {
    if (!fromTables.has(key(rename.table)) || !toTables.has(key(rename.table))) {
      throw new PhasegateError('InvalidRename', `--rename ${key(rename.table)}.${rename.from}=${key(rename.table)}.${rename.to}: table ${key(rename.table)} is not in both the database and the schema file`, { details: { rename } });
    }
  }
  for (const table of to.tables) {
    const before = fromTables.get(key(table));
    if (before) diffTable(before, table, options, out);
    else out.tables.push({ kind: 'createTable', table });
  }
  for (const table of from.tables) {
    if (toTables.has(key(table))) continue;
    // Keys out of a dropped table go with it; keys from kept tables into it are dropped (above) first.
    out.dropTables.push({ kind: 'dropTable', table: nameOf(table) });
  }
  for (const e of from.enums) if (!toEnums.has(key(e))) out.late.push({ kind: 'dropEnum', enum: nameOf(e) });
  for (const schema of from.schemas) if (!toSchemas.has(schema) && schema !== 'public') out.late.push({ kind: 'dropSchema', schema });

  return [
    ...out.notSupported,
    ...out.early,
    ...out.tables,
    ...out.columns,
    ...out.replaced,
    ...out.uniques,
    ...out.checks,
    ...out.foreignKeys,
    ...out.indexes,
    ...out.dropForeignKeys,
    ...out.drops,
    ...out.dropColumns,
    ...out.dropTables,
    ...out.late,
  ];
}

/** Objects either side holds that the diff does not compare, once each: listed to the user. */
export function notComparedOf(...models: SchemaModel[]): Array<{ object: string; kind: string }> {
  const seen = new Map<string, { object: string; kind: string }>();
  for (const m of models) for (const n of m.notCompared) seen.set(`${n.kind} ${key(n)}`, { object: key(n), kind: n.kind });
  return [...seen.values()];
}

/** One line per change, for `check`, `drift` and the autogenerate summary. */
export function describeChange(change: SchemaChange): string {
  switch (change.kind) {
    case 'createSchema':
      return `+ schema ${change.schema}`;
    case 'dropSchema':
      return `- schema ${change.schema}`;
    case 'createEnum':
      return `+ enum ${key(change.enum)} (${change.enum.labels.join(', ')})`;
    case 'addEnumLabels':
      return `~ enum ${key(change.enum)}: add ${change.labels.map((l) => l.label).join(', ')}`;
    case 'dropEnum':
      return `- enum ${key(change.enum)}`;
    case 'createTable':
      return `+ table ${key(change.table)}`;
    case 'dropTable':
      return `- table ${key(change.table)}`;
    case 'addColumn':
      return `+ column ${key(change.table)}.${change.column.name} ${change.column.type}${change.column.nullable ? '' : ' NOT NULL'}${change.column.default === null ? '' : ` DEFAULT ${change.column.default}`}`;
    case 'dropColumn':
      return `- column ${key(change.table)}.${change.column}`;
    case 'renameColumn':
      return `~ column ${key(change.table)}.${change.from} renamed to ${change.to}`;
    case 'alterColumnType':
      return `~ column ${key(change.table)}.${change.column}: type ${change.from} → ${change.to}`;
    case 'setNotNull':
      return `~ column ${key(change.table)}.${change.column}: NOT NULL`;
    case 'dropNotNull':
      return `~ column ${key(change.table)}.${change.column}: nullable`;
    case 'setDefault':
      return `~ column ${key(change.table)}.${change.column}: default ${change.from ?? 'none'} → ${change.to ?? 'none'}`;
    case 'setIdentity':
      return `~ column ${key(change.table)}.${change.column}: identity ${change.from ?? 'none'} → ${change.to ?? 'none'}`;
    case 'addConstraint':
      return `+ ${change.constraint.kind} ${key(change.table)}.${change.constraint.name}: ${enforced(change.constraint)}`;
    case 'dropConstraint':
      return `- ${change.constraint.kind} ${key(change.table)}.${change.constraint.name}: ${enforced(change.constraint)}`;
    case 'createIndex':
      return `+ index ${key(change.table)}.${change.index.name}: ${change.index.definition}`;
    case 'dropIndex':
      return `- index ${key(change.table)}.${change.index.name}`;
    case 'notSupported':
      return `! ${change.object}: ${change.reason}`;
  }
}
