/**
 * @pg-matrix: its SQL, catalog or server behaviour can differ by PostgreSQL major; `npm run test:pg15` runs it again on 15.
 * Autogenerate's corpus: every (from, to) pair in test/fixtures/schema-pairs/, end to end against a
 * real PostgreSQL and the real `migrate` workflow.
 *
 * Per pair: a database is built from `from.sql` and given rows; `autogenerate` writes the chain that
 * takes it to `to.sql` (loaded in a scratch shadow database on the same server); the chain must pass
 * `phasegate lint`; a worker applies it through the `migrate` workflow, every gate approved through
 * the approve Update as a person would, while an app session writes to every table the pair keeps
 * without pause. Afterwards the schema check against `to.sql` must be empty (the catalogs are
 * identical), not one write may have failed, and no write may have waited longer than lock_timeout
 * plus scheduling slack. A pair whose `expect.json` lists changes with no safe step must report
 * exactly those, and nothing else may differ.
 *
 * lint: squawk's rules about which types a schema should choose (prefer-bigint-over-int, …) judge
 * the pair's `to.sql`, not the migration, and are left out; everything about locks, rewrites and
 * re-runs applies.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { autogenerate, lint, schemaCheck } from '../../lib/commands';
import { introspect } from '../../lib/schema/introspect';
import { quoteIdent } from '../../lib/sql';
import { approveUpdate, statusQuery, type MigrateStatus } from '../../workflows/messages';
import { labConfig, sleep, useFaultLab, withWorker, writeMigrations, type LabDatabase } from '../faults/harness';
import { testConfig } from '../helpers';

const lab = useFaultLab();

/** Per pair: what was written and what the app saw; written to the temp folder for the figures in docs/cli.md. */
const figures: Array<{ pair: string; revisions: number; gates: number; writes: number; maxWaitMs: number }> = [];
afterAll(() => {
  const file = path.join(os.tmpdir(), 'phasegate-schema-corpus.json');
  writeFileSync(file, `${JSON.stringify(figures, null, 2)}\n`);
  const waits = figures.map((f) => f.maxWaitMs);
  process.stdout.write(`schema corpus: ${figures.length} pairs applied, ${figures.reduce((n, f) => n + f.revisions, 0)} revisions, ${figures.reduce((n, f) => n + f.writes, 0)} app writes, longest write ${Math.max(0, ...waits)} ms (${file})\n`);
});

const PAIRS = path.join(__dirname, '..', 'fixtures', 'schema-pairs');
const pairs = readdirSync(PAIRS)
  .filter((d) => existsSync(path.join(PAIRS, d, 'from.sql')) && existsSync(path.join(PAIRS, d, 'to.sql')))
  .sort();

const ROWS = 2000;
const LOCK_TIMEOUT_MS = 200;
/** A write may queue behind a DDL statement for at most lock_timeout; the rest is a busy 2-core machine. */
const WRITE_WAIT_BOUND_MS = LOCK_TIMEOUT_MS + 800;
const STYLE_RULES = ['prefer-bigint-over-int', 'prefer-bigint-over-smallint', 'prefer-identity', 'prefer-text-field', 'prefer-timestamptz'];

/** A pair's `expect.json` (all optional). */
interface Expectation {
  /** `--rename` arguments to generate with. */
  renames?: string[];
  /** The kinds of the diff's changes, in order (renames are never guessed: without `renames` a rename is an add and a drop). */
  kinds?: string[];
  /** Objects the diff reports as having no safe step (written nowhere). */
  notSupported?: string[];
  /** `<kind> <schema.name>` entries that must be listed as not compared. */
  notCompared?: string[];
  /** Queries run after the migration, each returning one row `{ n }`: the data the chain must keep. */
  verify?: Array<{ sql: string; n: number }>;
}

/** Rows for every table whose other columns accept them (id only); a pair's from.sql may insert its own. */
async function seed(db: LabDatabase): Promise<void> {
  const client = await db.session();
  try {
    const model = await introspect(client);
    for (const table of model.tables) {
      if (!table.columns.some((c) => c.name === 'id')) continue;
      const name = `${quoteIdent(table.schema)}.${quoteIdent(table.name)}`;
      const [{ n }] = (await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${name}`)).rows;
      if (n > 0) continue;
      await client.query(`INSERT INTO ${name} (id) SELECT g FROM generate_series(1, ${ROWS}) g`).catch(() => undefined);
    }
  } finally {
    await client.end();
  }
}

/** The app: on its own session, updates a random row of every kept table, one after the other, timing each write. */
class App {
  writes = 0;
  maxWaitMs = 0;
  readonly failures: string[] = [];
  private running = true;
  private loop?: Promise<void>;

  constructor(private readonly tables: string[]) {}

  async start(db: LabDatabase): Promise<void> {
    const client = await db.session();
    await client.query("SET application_name = 'corpus-app'");
    this.loop = (async () => {
      try {
        while (this.running && this.tables.length > 0) {
          for (const table of this.tables) {
            const started = Date.now();
            try {
              await client.query(`UPDATE ${table} SET id = id WHERE id = $1`, [1 + Math.floor(Math.random() * ROWS)]);
              this.writes++;
            } catch (err) {
              this.failures.push(`${table}: ${(err as Error).message}`);
            }
            this.maxWaitMs = Math.max(this.maxWaitMs, Date.now() - started);
          }
          await sleep(2);
        }
      } finally {
        await client.end();
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }
}

/** Runs the migration to its end, approving each gate once as it is reached; fails on failed or blocked. */
async function runApproving(handle: Awaited<ReturnType<Parameters<Parameters<typeof withWorker>[3]>[0]['start']>>): Promise<string[]> {
  const approved: string[] = [];
  const deadline = Date.now() + 150_000;
  for (;;) {
    const status: MigrateStatus = await handle.query(statusQuery);
    if (status.state === 'done') {
      // `done` comes before the run's last audit rows and lease release: wait for the run to end.
      await handle.result();
      return approved;
    }
    if (status.state === 'failed' || status.state === 'blocked' || status.state === 'cancelled' || status.state === 'abandoned') {
      throw new Error(`migration ${status.state}: ${status.error ?? JSON.stringify(status).slice(0, 1500)}`);
    }
    if (status.state === 'awaiting-approval' && status.gate && !approved.includes(status.gate.name)) {
      await handle.executeUpdate(approveUpdate, { args: [{ by: 'corpus@example.com', gate: status.gate.name, comment: 'app deployed' }] });
      approved.push(status.gate.name);
    }
    if (Date.now() > deadline) throw new Error(`migration still ${status.state} after 150 s`);
    await sleep(100);
  }
}

describe('the corpus harness', () => {
  it("fails a chain that holds a lock longer than lock_timeout: the app's longest write shows it", async () => {
    // The bound below is what every pair is held to; this proves the app would notice a step that
    // holds ACCESS EXCLUSIVE past it (a rewrite, a plain CREATE INDEX on a big table), here for 1.5 s.
    const db = await lab.database();
    await db.sql('CREATE TABLE accounts (id bigint PRIMARY KEY, note text)');
    await seed(db);
    const dir = writeMigrations({
      'aaa111_hold.js': `module.exports = { id: 'aaa111', parent: null, message: 'holds its lock',
        upgrade(op) { op.sql('LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE'); op.sql('SELECT pg_sleep(1.5)'); },
        downgrade() {} };`,
    });
    const app = new App(['"public"."accounts"']);
    await app.start(db);
    try {
      await withWorker(lab, db, dir, async (w) => expect(await (await w.start()).result()).toMatchObject({ outcome: 'done' }), { defaults: { lockTimeoutMs: LOCK_TIMEOUT_MS } });
    } finally {
      await app.stop();
    }
    expect(app.failures).toEqual([]);
    expect(app.maxWaitMs).toBeGreaterThan(WRITE_WAIT_BOUND_MS);
  }, 60_000);
});

describe('autogenerate corpus: each generated chain, applied by the migrate workflow, leaves the catalog of to.sql', () => {
  it('has at least 30 pairs', () => {
    expect(pairs.length).toBeGreaterThanOrEqual(30);
  });

  it.each(pairs)('%s', async (pair) => {
    const fromSql = readFileSync(path.join(PAIRS, pair, 'from.sql'), 'utf8');
    const toFile = path.join(PAIRS, pair, 'to.sql');
    const expectFile = path.join(PAIRS, pair, 'expect.json');
    const expectation: Expectation = existsSync(expectFile) ? JSON.parse(readFileSync(expectFile, 'utf8')) : {};

    const db = await lab.database();
    await db.sql(fromSql);
    await seed(db);
    const dir = mkdtempSync(path.join(os.tmpdir(), `phasegate-corpus-${pair.slice(0, 2)}-`));
    const settings = { defaults: { lockTimeoutMs: LOCK_TIMEOUT_MS, lockRetry: { maxAttempts: 50, initialDelayMs: 50, maxDelayMs: 200 } } };
    const config = testConfig(labConfig(lab, db, dir, 'corpus', settings));
    const common = { config, cwd: dir, database: 'app', schemaFile: toFile, shadow: 'scratch' as const };

    const generated = await autogenerate({ ...common, message: pair, renames: expectation.renames ?? [] });
    if (expectation.kinds) expect(generated.changes.map((c) => c.kind)).toEqual(expectation.kinds);
    for (const entry of expectation.notCompared ?? []) expect(generated.notCompared.map((n) => `${n.kind} ${n.object}`)).toContain(entry);
    expect(generated.notSupported.map((n) => n.object).sort()).toEqual([...(expectation.notSupported ?? [])].sort());
    const reportedOnly = (expectation.notSupported ?? []).length;
    if (generated.files.length === 0) {
      // Nothing to write: the schemas were equal already, or everything left needs a person.
      expect(generated.changes).toHaveLength(reportedOnly);
      return;
    }

    const linted = await lint({ config, cwd: dir, database: 'app', exclude: STYLE_RULES });
    // Errors only: a type change's or rename's downgrade rewrites the table under ACCESS EXCLUSIVE by design, a warning.
    expect(linted.findings.filter((f) => f.level === 'error')).toEqual([]);

    const from = await (async () => {
      const client = await db.session();
      try {
        return await introspect(client);
      } finally {
        await client.end();
      }
    })();
    const dropped = new Set(generated.changes.flatMap((c) => (c.kind === 'dropTable' ? [`${c.table.schema}.${c.table.name}`] : [])));
    const kept = from.tables
      .filter((t) => t.columns.some((c) => c.name === 'id') && !dropped.has(`${t.schema}.${t.name}`))
      .map((t) => `${quoteIdent(t.schema)}.${quoteIdent(t.name)}`);
    const app = new App(kept);
    await app.start(db);
    let gates: string[] = [];
    try {
      await withWorker(
        lab,
        db,
        dir,
        async (w) => {
          const handle = await w.start();
          gates = await runApproving(handle);
          const result = await handle.result();
          expect(result).toMatchObject({ outcome: 'done', applied: generated.files.map((f) => f.id) });
        },
        settings,
      );
    } finally {
      await app.stop();
    }
    figures.push({ pair, revisions: generated.files.length, gates: gates.length, writes: app.writes, maxWaitMs: app.maxWaitMs });
    expect(gates).toEqual(generated.files.flatMap((f) => (f.gate ? [f.gate.name ?? f.id] : [])));
    expect(app.failures).toEqual([]);
    if (kept.length > 0) expect(app.writes).toBeGreaterThan(0);
    expect(app.maxWaitMs).toBeLessThanOrEqual(WRITE_WAIT_BOUND_MS);

    for (const check of expectation.verify ?? []) expect((await db.sql<{ n: number }>(check.sql))[0].n).toBe(check.n);
    const after = await schemaCheck(common);
    expect(after.differences).toEqual([]);
    expect(after.notSupported.map((n) => n.object).sort()).toEqual([...(expectation.notSupported ?? [])].sort());
  }, 240_000);
});
