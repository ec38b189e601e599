/**
 * Reads a `SchemaModel` from PostgreSQL's catalogs: the live database, or a shadow database the
 * desired `schema.sql` (or the revision chain) was loaded into. Every text comes from PostgreSQL's
 * own renderers (`format_type`, `pg_get_expr`, `pg_get_constraintdef`, `pg_get_indexdef`) under
 * one fixed `search_path`, so the two sides of a diff compare by string equality.
 *
 * What it leaves out: PostgreSQL's own schemas, objects that belong to an extension, and
 * phasegate's bookkeeping tables (version, pending, lease, approval and backfill progress tables).
 * Whatever else it finds but does not compare is returned in `notCompared`, so the caller can list
 * it; nothing is skipped silently. Read-only: a handful of catalog SELECTs.
 */
import type pg from 'pg';
import type { ColumnModel, ConstraintKind, ConstraintModel, EnumModel, IndexModel, NotCompared, SchemaModel, TableModel } from './model';

export interface IntrospectOptions {
  /** Tables to leave out besides phasegate's own (`schema.name`). */
  exclude?: string[];
}

/** phasegate's bookkeeping tables: `phasegate_version`, `…_pending`, `phasegate_lease`, `phasegate_approval`, `phasegate_backfill_progress`. */
const PHASEGATE_TABLE = /^phasegate_/;

/**
 * The search_path every text is rendered under: `public` only, so a name in public is written bare
 * and every other schema's name is qualified — the same on both sides of a diff.
 */
const SEARCH_PATH = 'public';

/** Namespaces that hold user objects (no catalogs, no temp or toast schemas). */
const USER_NAMESPACE = `n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'`;

/** Not a member of an extension (those come with `CREATE EXTENSION`, not with the schema file). */
const notFromExtension = (classid: string, objid: string) =>
  `NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '${classid}'::regclass AND d.objid = ${objid} AND d.deptype = 'e')`;

const CONSTRAINT_KIND: Record<string, ConstraintKind> = { p: 'primary key', u: 'unique', c: 'check', f: 'foreign key' };

export async function introspect(client: pg.ClientBase, options: IntrospectOptions = {}): Promise<SchemaModel> {
  const exclude = new Set(options.exclude ?? []);
  const rows = async <R extends pg.QueryResultRow>(sql: string): Promise<R[]> => (await client.query<R>(sql)).rows;
  await client.query('BEGIN READ ONLY');
  try {
    await client.query(`SET LOCAL search_path = ${SEARCH_PATH}`);
    const schemas = (
      await rows<{ name: string }>(`SELECT n.nspname AS name FROM pg_namespace n WHERE ${USER_NAMESPACE} AND ${notFromExtension('pg_namespace', 'n.oid')} ORDER BY 1`)
    ).map((r) => r.name);

    const relations = await rows<{ oid: number; schema: string; name: string; kind: string; owned: boolean }>(`
      SELECT c.oid::int AS oid, n.nspname AS schema, c.relname AS name, c.relkind::text AS kind,
             EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0) AS owned
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE ${USER_NAMESPACE} AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND NOT c.relispartition
         AND ${notFromExtension('pg_class', 'c.oid')}
       ORDER BY 2, 3`);
    const notCompared: NotCompared[] = [];
    const tableRows = relations.filter((r) => {
      if (PHASEGATE_TABLE.test(r.name) || exclude.has(`${r.schema}.${r.name}`)) return false;
      if (r.kind === 'r') return true;
      // A serial's or identity's sequence comes with its column; any other sequence is listed.
      if (r.kind === 'S' && r.owned) return false;
      const kind = { p: 'partitioned table', v: 'view', m: 'materialized view', S: 'sequence', f: 'foreign table' }[r.kind] ?? r.kind;
      notCompared.push({ schema: r.schema, name: r.name, kind });
      return false;
    });
    const oids = tableRows.map((r) => r.oid);
    const inTables = oids.length ? `IN (${oids.join(', ')})` : 'IN (NULL)';

    const columns = await rows<{ table: number; name: string; type: string; notnull: boolean; default: string | null; identity: string; generated: string; collation: string | null }>(`
      SELECT a.attrelid::int AS table, a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS notnull,
             pg_get_expr(ad.adbin, ad.adrelid) AS default, a.attidentity::text AS identity, a.attgenerated::text AS generated,
             CASE WHEN a.attcollation <> t.typcollation AND a.attcollation <> 0
                  THEN (SELECT CASE WHEN cn.nspname = 'pg_catalog' THEN quote_ident(co.collname) ELSE quote_ident(cn.nspname) || '.' || quote_ident(co.collname) END
                          FROM pg_collation co JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = a.attcollation) END AS collation
        FROM pg_attribute a
        JOIN pg_type t ON t.oid = a.atttypid
        LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
       WHERE a.attrelid ${inTables} AND a.attnum > 0 AND NOT a.attisdropped
       ORDER BY a.attrelid, a.attnum`);

    const constraints = await rows<{ table: number; name: string; type: string; definition: string; columns: string[]; validated: boolean; refschema: string | null; reftable: string | null; refcolumns: string[] | null }>(`
      SELECT c.conrelid::int AS table, c.conname AS name, c.contype::text AS type, pg_get_constraintdef(c.oid) AS definition,
             ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(n, i) JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i) AS columns,
             c.convalidated AS validated, rn.nspname AS refschema, rc.relname AS reftable,
             CASE WHEN c.contype = 'f' THEN ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY k(n, i) JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.i) END AS refcolumns
        FROM pg_constraint c
        LEFT JOIN pg_class rc ON rc.oid = c.confrelid
        LEFT JOIN pg_namespace rn ON rn.oid = rc.relnamespace
       WHERE c.conrelid ${inTables} AND c.contype IN ('p', 'u', 'c', 'f', 'x', 't')
       ORDER BY c.conrelid, c.conname`);

    const indexes = await rows<{ table: number; name: string; unique: boolean; method: string; definition: string; prefix: string; constraint: string | null; valid: boolean }>(`
      SELECT i.indrelid::int AS table, ic.relname AS name, i.indisunique AS unique, am.amname AS method, pg_get_indexdef(i.indexrelid) AS definition,
             quote_ident(ic.relname) AS prefix,
             (SELECT c.conname FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid AND c.contype IN ('p', 'u', 'x')) AS constraint,
             i.indisvalid AS valid
        FROM pg_index i
        JOIN pg_class ic ON ic.oid = i.indexrelid
        JOIN pg_am am ON am.oid = ic.relam
       WHERE i.indrelid ${inTables}
       ORDER BY i.indrelid, ic.relname`);

    const byTable = <T extends { table: number }>(list: T[]) => {
      const map = new Map<number, T[]>();
      for (const item of list) map.set(item.table, [...(map.get(item.table) ?? []), item]);
      return (oid: number) => map.get(oid) ?? [];
    };
    const columnsOf = byTable(columns);
    const constraintsOf = byTable(constraints);
    const indexesOf = byTable(indexes);

    const tables: TableModel[] = tableRows.map((t) => {
      const tableConstraints: ConstraintModel[] = [];
      for (const c of constraintsOf(t.oid)) {
        const kind = CONSTRAINT_KIND[c.type];
        if (!kind) {
          notCompared.push({ schema: t.schema, name: `${t.name}.${c.name}`, kind: c.type === 'x' ? 'exclusion constraint' : 'constraint trigger' });
          continue;
        }
        tableConstraints.push({
          name: c.name,
          kind,
          definition: c.definition,
          columns: c.columns,
          validated: c.validated,
          ...(kind === 'foreign key' && c.refschema && c.reftable ? { references: { schema: c.refschema, name: c.reftable, columns: c.refcolumns ?? [] } } : {}),
        });
      }
      return {
        schema: t.schema,
        name: t.name,
        columns: columnsOf(t.oid).map(
          (c): ColumnModel => ({
            name: c.name,
            type: c.type,
            nullable: !c.notnull,
            default: c.generated === '' ? c.default : null,
            identity: c.identity === 'a' ? 'always' : c.identity === 'd' ? 'by default' : null,
            generated: c.generated === 's' ? c.default : null,
            collation: c.collation,
          }),
        ),
        constraints: tableConstraints,
        indexes: indexesOf(t.oid).map((i): IndexModel => ({
          name: i.name,
          unique: i.unique,
          method: i.method,
          shape: indexShape(i.definition, i.prefix),
          definition: i.definition,
          constraint: i.constraint,
          valid: i.valid,
        })),
      };
    });

    const enumRows = await rows<{ schema: string; name: string; labels: string[] }>(`
      SELECT n.nspname AS schema, t.typname AS name, ARRAY(SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder) AS labels
        FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
       WHERE t.typtype = 'e' AND ${USER_NAMESPACE} AND ${notFromExtension('pg_type', 't.oid')}
       ORDER BY 1, 2`);
    const enums: EnumModel[] = enumRows.map((e) => ({ schema: e.schema, name: e.name, labels: e.labels }));

    // Everything else a schema file may hold, listed so the user knows it was not compared.
    const others = await rows<NotCompared>(`
      SELECT n.nspname AS schema, t.typname AS name, CASE t.typtype WHEN 'd' THEN 'domain' WHEN 'r' THEN 'range type' ELSE 'composite type' END AS kind
        FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
       WHERE ${USER_NAMESPACE} AND ${notFromExtension('pg_type', 't.oid')}
         AND (t.typtype IN ('d', 'r') OR (t.typtype = 'c' AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c'))
      UNION ALL
      SELECT n.nspname, p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')', CASE p.prokind WHEN 'p' THEN 'procedure' WHEN 'a' THEN 'aggregate' ELSE 'function' END
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
       WHERE ${USER_NAMESPACE} AND ${notFromExtension('pg_proc', 'p.oid')} AND p.proname NOT LIKE 'phasegate\\_%'
      UNION ALL
      SELECT n.nspname, c.relname || '.' || tg.tgname, 'trigger'
        FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE NOT tg.tgisinternal AND ${USER_NAMESPACE} AND c.relname NOT LIKE 'phasegate\\_%'
      UNION ALL
      SELECT n.nspname, c.relname || '.' || pol.polname, 'policy'
        FROM pg_policy pol JOIN pg_class c ON c.oid = pol.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      UNION ALL
      SELECT n.nspname, x.extname, 'extension'
        FROM pg_extension x JOIN pg_namespace n ON n.oid = x.extnamespace
       WHERE x.extname <> 'plpgsql'
      ORDER BY 3, 1, 2`);
    notCompared.push(...others);
    notCompared.sort((a, b) => a.kind.localeCompare(b.kind) || a.schema.localeCompare(b.schema) || a.name.localeCompare(b.name));
    return { schemas, tables, enums, notCompared };
  } finally {
    await client.query('ROLLBACK');
  }
}

/**
 * `pg_get_indexdef` with the index's own name and the table it is on replaced by placeholders:
 * what the index is, independent of what it is called.
 */
export function indexShape(definition: string, quotedName: string): string {
  const head = `INDEX ${quotedName} ON `;
  const at = definition.indexOf(head);
  if (at < 0) return definition;
  const rest = definition.slice(at + head.length);
  const using = rest.indexOf(' USING ');
  return `${definition.slice(0, at)}INDEX <name> ON <table>${using < 0 ? rest : rest.slice(using)}`;
}
