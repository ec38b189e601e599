/**
 * The schema model autogenerate compares: what PostgreSQL's catalogs say about the objects
 * phasegate knows how to change safely, as plain data. `introspect.ts` reads it from a database
 * (the live one, or a shadow database the desired `schema.sql` was loaded into), `diff.ts` turns
 * two models into a list of `SchemaChange`s, and `render.ts` turns those into a revision chain
 * through the safe patterns. Every text field holds PostgreSQL's own rendering (`format_type`,
 * `pg_get_expr`, `pg_get_constraintdef`, `pg_get_indexdef`), so two models compare by string
 * equality and nothing is parsed by hand.
 */

/** A qualified name; `schema` is always set (`public` too). */
export interface QualifiedName {
  schema: string;
  name: string;
}

export interface ColumnModel {
  name: string;
  /** `format_type(atttypid, atttypmod)`: `integer`, `character varying(40)`, `public.mood`, `text[]`. */
  type: string;
  nullable: boolean;
  /** `pg_get_expr(adbin, adrelid)`; null when there is none (identity and generated columns: null). */
  default: string | null;
  identity: 'always' | 'by default' | null;
  /** The expression of a `GENERATED ALWAYS AS (…) STORED` column; null otherwise. */
  generated: string | null;
  /** Set only when it differs from the type's default collation: `"C"`, `"en-x-icu"`. */
  collation: string | null;
}

export type ConstraintKind = 'primary key' | 'unique' | 'check' | 'foreign key';

export interface ConstraintModel {
  name: string;
  kind: ConstraintKind;
  /** `pg_get_constraintdef(oid)`: `CHECK ((qty > 0))`, `FOREIGN KEY (org_id) REFERENCES orgs(id) ON DELETE CASCADE`. */
  definition: string;
  /** The constrained columns, in key order. */
  columns: string[];
  /** False for a constraint added NOT VALID and never validated. */
  validated: boolean;
  /** Foreign keys: the referenced table. */
  references?: QualifiedName & { columns: string[] };
}

export interface IndexModel {
  name: string;
  unique: boolean;
  /** Access method: `btree`, `gin`, `gist`, `hash`, `brin`. */
  method: string;
  /**
   * `pg_get_indexdef(oid)` with the index name and the `ON <schema>.<table>` part replaced by
   * placeholders, so two indexes compare equal when they index the same thing the same way:
   * `CREATE UNIQUE INDEX <name> ON <table> USING btree (lower(email)) WHERE (deleted_at IS NULL)`.
   */
  shape: string;
  /** The full `pg_get_indexdef(oid)`, for rendering. */
  definition: string;
  /** Set when the index belongs to a primary key or unique constraint (it is compared through that constraint). */
  constraint: string | null;
  /** False for an INVALID index (a failed CONCURRENTLY build). */
  valid: boolean;
}

export interface TableModel extends QualifiedName {
  /** In attribute order. */
  columns: ColumnModel[];
  /** Sorted by name. */
  constraints: ConstraintModel[];
  /** Sorted by name. */
  indexes: IndexModel[];
}

export interface EnumModel extends QualifiedName {
  /** In sort order (`enumsortorder`). */
  labels: string[];
}

/** Something the database holds that autogenerate does not compare yet: listed, never ignored silently. */
export interface NotCompared extends QualifiedName {
  /** `view`, `materialized view`, `function`, `trigger`, `sequence`, `domain`, `composite type`, `policy`, `extension`, … */
  kind: string;
}

export interface SchemaModel {
  /** Schemas holding user objects (never pg_catalog, information_schema, pg_toast, phasegate's version schema objects). */
  schemas: string[];
  /** Sorted by schema, name. */
  tables: TableModel[];
  enums: EnumModel[];
  notCompared: NotCompared[];
}

/** Options of the diff. */
export interface DiffOptions {
  /** `accounts.email=accounts.mail` pairs (schema optional: `public` when absent): renames the user asked for. */
  renames?: Array<{ table: QualifiedName; from: string; to: string }>;
}

/**
 * One difference between `from` (the database as it is) and `to` (as it should be), as the step
 * that removes it. The renderer picks the safe pattern per kind; `notSupported` is listed to the
 * user and written nowhere.
 */
export type SchemaChange =
  | { kind: 'createSchema'; schema: string }
  | { kind: 'dropSchema'; schema: string }
  | { kind: 'createEnum'; enum: EnumModel }
  /** New labels only, each with the label it goes after (null: first). Removing or reordering labels is `notSupported`. */
  | { kind: 'addEnumLabels'; enum: QualifiedName; labels: Array<{ label: string; after: string | null }> }
  | { kind: 'dropEnum'; enum: QualifiedName }
  | { kind: 'createTable'; table: TableModel }
  | { kind: 'dropTable'; table: QualifiedName }
  | { kind: 'addColumn'; table: QualifiedName; column: ColumnModel }
  | { kind: 'dropColumn'; table: QualifiedName; column: string }
  | { kind: 'renameColumn'; table: QualifiedName; from: string; to: string }
  | { kind: 'alterColumnType'; table: QualifiedName; column: string; from: string; to: string; collation: string | null }
  | { kind: 'setNotNull'; table: QualifiedName; column: string }
  | { kind: 'dropNotNull'; table: QualifiedName; column: string }
  | { kind: 'setDefault'; table: QualifiedName; column: string; from: string | null; to: string | null }
  | { kind: 'setIdentity'; table: QualifiedName; column: string; from: ColumnModel['identity']; to: ColumnModel['identity'] }
  | { kind: 'addConstraint'; table: QualifiedName; constraint: ConstraintModel; index?: IndexModel }
  | { kind: 'dropConstraint'; table: QualifiedName; constraint: ConstraintModel }
  | { kind: 'createIndex'; table: QualifiedName; index: IndexModel }
  | { kind: 'dropIndex'; table: QualifiedName; index: IndexModel }
  | { kind: 'notSupported'; object: string; reason: string };
