/**
 * Autogenerate (Alembic's `revision --autogenerate`, `check`, and drift detection): the desired
 * schema is a SQL file (`schema.file`, default `schema.sql`) that PostgreSQL itself loads into a
 * shadow database; both catalogs are read (lib/schema/introspect.ts), compared (diff.ts) and the
 * differences written as a revision chain through the safe patterns (render.ts).
 *
 * - `autogenerate`: database (or, `--offline`, the chain's head built in a second shadow) → the
 *   schema file, written as revision files on the head. Refuses when the database has revisions
 *   pending, as Alembic does: the chain would be written against a schema that is about to change.
 * - `schemaCheck` (`phasegate check` with a schema file): would autogenerate write anything?
 * - `drift`: the live database against what the revision chain builds (a hand-made change in
 *   production shows up here).
 *
 * Nothing here writes to the target database: it is only read (and, for a scratch shadow, its
 * server gets a throwaway database that is dropped again).
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { databaseFor, databaseUrlSource } from '../config';
import { PhasegateError } from '../errors';
import { buildPlan, type Plan } from '../plan';
import { describeChange, diffSchemas, notComparedOf, parseRename } from '../schema/diff';
import { introspect } from '../schema/introspect';
import type { SchemaChange, SchemaModel } from '../schema/model';
import { renderChanges } from '../schema/render';
import { applyPlanStatements, loadSchemaFile, withShadowDatabase, type ShadowMode } from '../schema/shadow';
import { readHeads } from '../version-table';
import { withDatabase } from './database';
import { DEFAULT_DATABASE } from './version';
import { writeDraftChain, type NewPatternFile } from './new';
import { loadProject, loadRevisions, migrationsDirectory, type Project, type RevisionFilesOptions } from './project';

export interface SchemaSourceOptions extends RevisionFilesOptions {
  /** The desired schema's SQL file; default `schema.file` of the config. */
  schemaFile?: string;
  /** Where the schema file is loaded: default `schema.shadow` of the config. */
  shadow?: ShadowMode;
}

export interface AutogenerateOptions extends SchemaSourceOptions {
  message: string;
  /** `accounts.email=accounts.mail`: renames to write as rename-column instead of a drop and an add. */
  renames?: string[];
  /** Compare the chain's head (built in a shadow database) instead of the live database. */
  offline?: boolean;
  head?: string;
  now?: Date;
}

export interface SchemaComparison {
  database: string;
  /** What was compared with the schema file: `database` (live) or `revisions` (the chain's head, in a shadow). */
  against: 'database' | 'revisions';
  schemaFile: string;
  changes: SchemaChange[];
  /** One line per change (`+ column public.accounts.score integer NOT NULL`). */
  differences: string[];
  /** Changes with no safe step: listed, written nowhere. */
  notSupported: Array<{ object: string; reason: string }>;
  /** Objects either side holds that are not compared yet. */
  notCompared: Array<{ object: string; kind: string }>;
}

export interface AutogenerateResult extends SchemaComparison {
  directory: string;
  files: NewPatternFile[];
  /** What a person must look at before applying (a guessed backfill value, …). */
  review: string[];
}

function schemaSql(project: Project, options: SchemaSourceOptions): { file: string; sql: string } {
  const file = path.resolve(project.cwd, options.schemaFile ?? project.config.schema.file);
  if (!existsSync(file)) {
    throw new PhasegateError(
      'SchemaFileNotFound',
      `no desired schema at ${file}: write the schema as it should be there (CREATE TABLE …, CREATE INDEX …, constraints, types), set schema.file in the config, or pass --schema <file>`,
      { details: { file } },
    );
  }
  return { file, sql: readFileSync(file, 'utf8') };
}

/** Whether the desired schema file exists (`check` compares schemas only when it does, or when asked). */
export function hasSchemaFile(options: SchemaSourceOptions): boolean {
  const project = loadProject(options);
  return existsSync(path.resolve(project.cwd, options.schemaFile ?? project.config.schema.file));
}

/** The scratch shadow lives on the target's server; an alias without a URL can only use an embedded one. */
function targetUrl(project: Project, database: string): { url: string | undefined; urlSource: string } {
  return { url: project.config.databases[database]?.url, urlSource: databaseUrlSource(project.config, database) };
}

/** Introspection leaves phasegate's own tables out; these are the version table's configured names. */
function excluded(project: Project): string[] {
  const { versionTableSchema, versionTable } = project.config.migrations;
  return [`${versionTableSchema}.${versionTable}`, `${versionTableSchema}.${versionTable}_pending`];
}

/** The schema file, loaded into a shadow database and read back. */
export async function desiredSchema(project: Project, database: string, options: SchemaSourceOptions): Promise<{ file: string; model: SchemaModel }> {
  const { file, sql } = schemaSql(project, options);
  const model = await withShadowDatabase(options.shadow ?? project.config.schema.shadow, targetUrl(project, database), async (client) => {
    await loadSchemaFile(client, sql, path.relative(project.cwd, file) || file);
    return introspect(client, { exclude: excluded(project) });
  });
  return { file, model };
}

/** What the revision chain builds from nothing, up to its heads, in a shadow database. */
export async function chainSchema(project: Project, database: string, options: SchemaSourceOptions & { directory: string }): Promise<SchemaModel> {
  const loaded = loadRevisions(options.directory);
  const plan = await buildPlan({ database, revisions: loaded.revisions, currentHeads: [], target: 'heads', direction: 'upgrade' });
  return withShadowDatabase(options.shadow ?? project.config.schema.shadow, targetUrl(project, database), async (client) => {
    await applyPlanStatements(client, plan);
    return introspect(client, { exclude: excluded(project) });
  });
}

/** The live database, refused while revisions are pending (the comparison would be against a moving target). */
async function liveSchema(project: Project, database: string, directory: string, action: string): Promise<SchemaModel> {
  const loaded = loadRevisions(directory);
  return withDatabase(project.config, database, async (client) => {
    const heads = await readHeads(client, project.config);
    const pending = loaded.graph.upgradePath(heads, 'heads');
    if (pending.length > 0) {
      throw new PhasegateError(
        'DatabaseNotUpToDate',
        `database "${database}" is not up to date: ${pending.length} revision(s) are not applied (${pending.slice(0, 5).join(', ')}${pending.length > 5 ? ', …' : ''}). ` +
          `Run \`phasegate upgrade head --database ${database}\` first, or ${action} with --offline (compares the revision chain's head instead of the database)`,
        { details: { database, pending } },
      );
    }
    return introspect(client, { exclude: excluded(project) });
  });
}

function compare(database: string, against: SchemaComparison['against'], schemaFile: string, from: SchemaModel, to: SchemaModel, renames: string[] = []): SchemaComparison {
  const changes = diffSchemas(from, to, { renames: renames.map(parseRename) });
  return {
    database,
    against,
    schemaFile,
    changes,
    differences: changes.filter((c) => c.kind !== 'notSupported').map(describeChange),
    notSupported: changes.flatMap((c) => (c.kind === 'notSupported' ? [{ object: c.object, reason: c.reason }] : [])),
    notCompared: notComparedOf(from, to),
  };
}

/** Reads both sides: the schema file, and the live database or (offline) the chain's head. */
async function comparison(options: SchemaSourceOptions & { offline?: boolean; renames?: string[] }, action: string): Promise<{ project: Project; directory: string; database: string; result: SchemaComparison; from: SchemaModel }> {
  // A bad --rename is refused before any database is touched.
  (options.renames ?? []).forEach(parseRename);
  const project = loadProject(options);
  const database = options.database ?? DEFAULT_DATABASE;
  const directory = migrationsDirectory(project, options.database);
  if (!options.offline) databaseFor(project.config, database);
  const desired = await desiredSchema(project, database, options);
  const from = options.offline ? await chainSchema(project, database, { ...options, directory }) : await liveSchema(project, database, directory, action);
  return { project, directory, database, from, result: compare(database, options.offline ? 'revisions' : 'database', desired.file, from, desired.model, options.renames) };
}

export async function autogenerate(options: AutogenerateOptions): Promise<AutogenerateResult> {
  if (!options.message?.trim()) throw new PhasegateError('MissingMessage', 'autogenerate needs -m "<what the change is>"');
  const { directory, result, from } = await comparison(options, 'autogenerate');
  const rendered = renderChanges(result.changes, { from });
  const notSupported = [...result.notSupported, ...rendered.notSupported.filter((n) => !result.notSupported.some((m) => m.object === n.object && m.reason === n.reason))];
  if (rendered.drafts.length === 0) return { ...result, notSupported, directory, files: [], review: rendered.review };
  const drafts = rendered.drafts.map((d, i) => ({
    ...d,
    message: `${options.message.trim()}: ${d.message}`,
    // The review items go where a reviewer starts reading: the first file of the chain.
    notes: i === 0 && rendered.review.length > 0 ? [...rendered.review.map((r) => `REVIEW: ${r}`), ...d.notes] : d.notes,
  }));
  const { files } = writeDraftChain({
    ...options,
    what: 'autogenerate',
    drafts,
    origin: `phasegate revision --autogenerate (${path.basename(result.schemaFile)} vs ${result.against === 'database' ? `database "${result.database}"` : 'the revision chain'})`,
  });
  return { ...result, notSupported, directory, files, review: rendered.review };
}

export interface SchemaCheckResult extends SchemaComparison {
  upToDate: boolean;
}

/** `phasegate check`'s schema half: would autogenerate write anything (or find something it cannot write)? */
export async function schemaCheck(options: SchemaSourceOptions & { offline?: boolean }): Promise<SchemaCheckResult> {
  const { result } = await comparison(options, 'check');
  return { ...result, upToDate: result.changes.length === 0 };
}

export interface DriftResult {
  database: string;
  /** What the live database has that the chain does not build, or lacks: as the changes that would bring the database back to the chain. */
  changes: SchemaChange[];
  differences: string[];
  notCompared: Array<{ object: string; kind: string }>;
  drifted: boolean;
}

/**
 * The live database against the schema the revision chain builds (up to the revisions the
 * database has applied: a database behind the head is compared with where it is, not where it
 * should get). The changes are written from the database's side: what would bring it back.
 */
export async function drift(options: SchemaSourceOptions): Promise<DriftResult> {
  const project = loadProject(options);
  const database = options.database ?? DEFAULT_DATABASE;
  const directory = migrationsDirectory(project, options.database);
  const loaded = loadRevisions(directory);
  const { live, heads } = await withDatabase(project.config, database, async (client) => {
    const applied = await readHeads(client, project.config);
    return { live: await introspect(client, { exclude: excluded(project) }), heads: applied };
  });
  for (const head of heads) {
    if (!loaded.graph.has(head)) {
      throw new PhasegateError('UnknownAppliedRevision', `database "${database}" has revision ${head} applied, but no revision file declares it; restore the file (or stamp the database) before checking drift`, { details: { revision: head } });
    }
  }
  // The chain up to each applied head in turn (a database may hold several).
  const plans: Plan[] = [];
  let at: string[] = [];
  for (const head of heads) {
    const plan = await buildPlan({ database, revisions: loaded.revisions, currentHeads: at, target: head, direction: 'upgrade' });
    plans.push(plan);
    at = plan.steps.length ? plan.steps[plan.steps.length - 1].headsAfter : at;
  }
  const built = await withShadowDatabase(options.shadow ?? project.config.schema.shadow, targetUrl(project, database), async (client) => {
    for (const plan of plans) await applyPlanStatements(client, plan);
    return introspect(client, { exclude: excluded(project) });
  });
  const changes = diffSchemas(live, built);
  return { database, changes, differences: changes.map(describeChange), notCompared: notComparedOf(live, built), drifted: changes.length > 0 };
}
