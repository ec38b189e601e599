/**
 * @pg-matrix: its SQL, catalog or server behaviour can differ by PostgreSQL major; `npm run test:pg15` runs it again on 15.
 * The reviewed script is the whole change: for every pattern, the `upgrade --sql` script run by
 * psql (as a DBA runs it: stopped at each gate, run again with `-v approve=<gate>`, run again after
 * a lock timeout) and the `migrate` workflow (gates approved through the approve Update) leave the
 * same schema and the same data, and so do their downgrades — while an app writes to the table
 * throughout on both databases.
 *
 * Both databases are seeded alike and get the same chain (one migrations folder). The app's writes
 * contend with every step (row locks against the backfill's batches, ACCESS EXCLUSIVE against
 * lock_timeout) but leave the data as it was: each write touches a row (`SET col = col`, which
 * fires the sync triggers) or inserts a row and deletes it in the same transaction, checking what
 * the triggers wrote on the way. So whatever the interleaving, both databases must end equal to
 * each other, and to what the pattern promises (`verify`): a difference is the script's or the
 * workflow's, not the app's. Compared: the catalog (introspect + diff: empty both ways), every
 * table's rows as text in key order (column order included), and the version table.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type pg from 'pg';
import { downgrade, newPattern, upgrade } from '../../lib/commands';
import { diffSchemas } from '../../lib/schema/diff';
import { introspect } from '../../lib/schema/introspect';
import { approveUpdate, statusQuery, type MigrateStatus } from '../../workflows/messages';
import { labConfig, sleep, useFaultLab, withWorker, writeMigrations, type LabDatabase, type MigrateHandle } from '../faults/harness';
import { testConfig } from '../helpers';
import { psqlBinary } from '../support/postgres-binaries';

const lab = useFaultLab();
const ROWS = 4000;
const LOCK_TIMEOUT_MS = 300;

/** One app write: a row touch, or a transient row (insert, check, delete) when `insert` is set. */
interface AppVersion {
  touch: string;
  insert?: { sql: (id: number) => string; check?: (row: Record<string, unknown>) => string | null; table: string };
}

interface Case {
  pattern: string;
  args: string[];
  options?: Record<string, unknown>;
  setup: string[];
  /** Tables to compare, each with its key. */
  tables: Array<{ name: string; key: string }>;
  /** App versions; version 1 is deployed at gate `deployAt` (the app moves before the gate opens). */
  app: AppVersion[];
  deployAt?: string;
  /** After the upgrade, each returns one row `{ n }` that must be 0. */
  verify: string[];
  /** Whether the app (its first version) can write throughout the downgrade (not when a column it names comes and goes). */
  writesDuringDowngrade?: boolean;
}

const accounts = [
  'CREATE TABLE accounts (id bigserial PRIMARY KEY, email text NOT NULL, n integer NOT NULL DEFAULT 0)',
  `INSERT INTO accounts (email, n) SELECT 'user' || i || '@example.com', i FROM generate_series(1, ${ROWS}) AS i`,
];
const accountsApp: AppVersion = {
  touch: 'UPDATE accounts SET n = n WHERE id = $1',
  insert: { table: 'accounts', sql: (id) => `INSERT INTO accounts (id, email, n) VALUES (${id}, 'tmp${id}@example.com', 0) RETURNING *` },
};

const cases: Array<[string, Case]> = [
  [
    'add-not-null-column (default + backfill expression)',
    {
      pattern: 'add-not-null-column',
      args: ['accounts', 'org_id', 'bigint'],
      options: { default: '0', backfill: 'id % 7' },
      setup: accounts,
      tables: [{ name: 'accounts', key: 'id' }],
      app: [accountsApp],
      verify: ['SELECT count(*)::int AS n FROM accounts WHERE org_id IS DISTINCT FROM id % 7'],
    },
  ],
  [
    'rename-column (two gates; the app moves to the new name at the deploy gate)',
    {
      pattern: 'rename-column',
      args: ['accounts', 'name', 'full_name'],
      setup: [
        "CREATE TABLE accounts (id bigserial PRIMARY KEY, name text NOT NULL DEFAULT 'anonymous', n integer NOT NULL DEFAULT 0)",
        `INSERT INTO accounts (name, n) SELECT 'name ' || i, i FROM generate_series(1, ${ROWS}) AS i`,
      ],
      tables: [{ name: 'accounts', key: 'id' }],
      app: [
        {
          touch: 'UPDATE accounts SET name = name WHERE id = $1',
          insert: {
            table: 'accounts',
            sql: (id) => `INSERT INTO accounts (id, name) VALUES (${id}, 'old ${id}') RETURNING *`,
            check: (row) => ('full_name' in row && row.full_name !== row.name ? `full_name ${String(row.full_name)} <> name ${String(row.name)}` : null),
          },
        },
        {
          touch: 'UPDATE accounts SET full_name = full_name WHERE id = $1',
          insert: {
            table: 'accounts',
            sql: (id) => `INSERT INTO accounts (id, full_name) VALUES (${id}, 'new ${id}') RETURNING *`,
            check: (row) => ('name' in row && row.full_name !== row.name ? `name ${String(row.name)} <> full_name ${String(row.full_name)}` : null),
          },
        },
      ],
      deployAt: 'deploy:accounts.full_name',
      writesDuringDowngrade: false,
      verify: ["SELECT count(*)::int AS n FROM accounts WHERE full_name IS DISTINCT FROM 'name ' || id"],
    },
  ],
  [
    'change-column-type text → integer',
    {
      pattern: 'change-column-type',
      args: ['items', 'code', 'integer'],
      options: { fromType: 'text', using: 'code::integer', down: 'code::text' },
      setup: [
        "CREATE TABLE items (id bigserial PRIMARY KEY, code text NOT NULL DEFAULT '0', n integer NOT NULL DEFAULT 0)",
        `INSERT INTO items (code, n) SELECT (i * 3)::text, i FROM generate_series(1, ${ROWS}) AS i`,
      ],
      tables: [{ name: 'items', key: 'id' }],
      app: [{ touch: 'UPDATE items SET code = code WHERE id = $1', insert: { table: 'items', sql: (id) => `INSERT INTO items (id, code) VALUES (${id}, '${id}') RETURNING *` } }],
      verify: ['SELECT count(*)::int AS n FROM items WHERE code IS DISTINCT FROM id * 3'],
    },
  ],
  [
    'add-index --unique',
    {
      pattern: 'add-index',
      args: ['accounts', 'email'],
      options: { unique: true },
      setup: accounts,
      tables: [{ name: 'accounts', key: 'id' }],
      app: [accountsApp],
      verify: ["SELECT count(*)::int AS n FROM pg_index WHERE indexrelid = 'accounts_email_idx'::regclass AND NOT (indisvalid AND indisunique)"],
    },
  ],
  [
    'add-unique',
    {
      pattern: 'add-unique',
      args: ['accounts', 'email'],
      setup: accounts,
      tables: [{ name: 'accounts', key: 'id' }],
      app: [accountsApp],
      verify: ["SELECT (1 - count(*))::int AS n FROM pg_constraint WHERE conname = 'accounts_email_key' AND contype = 'u'"],
    },
  ],
  [
    'add-foreign-key --gate',
    {
      pattern: 'add-foreign-key',
      args: ['orders', 'user_id', 'users'],
      options: { gate: true },
      setup: [
        'CREATE TABLE users (id bigint PRIMARY KEY)',
        'INSERT INTO users SELECT i FROM generate_series(1, 500) AS i',
        'CREATE TABLE orders (id bigserial PRIMARY KEY, user_id bigint, total integer NOT NULL DEFAULT 0)',
        `INSERT INTO orders (user_id, total) SELECT 1 + i % 500, i FROM generate_series(1, ${ROWS}) AS i`,
      ],
      tables: [
        { name: 'users', key: 'id' },
        { name: 'orders', key: 'id' },
      ],
      app: [{ touch: 'UPDATE orders SET user_id = user_id WHERE id = $1', insert: { table: 'orders', sql: (id) => `INSERT INTO orders (id, user_id) VALUES (${id}, ${1 + (id % 500)}) RETURNING *` } }],
      verify: ["SELECT (1 - count(*))::int AS n FROM pg_constraint WHERE conname = 'orders_user_id_fkey' AND convalidated"],
    },
  ],
];

/** The app: touches random rows and writes transient rows without pause, on its own session. */
class App {
  writes = 0;
  readonly failures: string[] = [];
  private version = 0;
  private running = false;
  private loop?: Promise<void>;
  private n = 0;

  constructor(
    private readonly db: LabDatabase,
    private readonly versions: AppVersion[],
  ) {}

  async start(): Promise<void> {
    const client: pg.Client = await this.db.session();
    await client.query("SET application_name = 'offline-app'");
    this.running = true;
    this.loop = (async () => {
      try {
        while (this.running) {
          const app = this.versions[this.version];
          const n = this.n++;
          try {
            if (n % 4 === 3 && app.insert) {
              const id = 10_000_000 + n;
              await client.query('BEGIN');
              const { rows } = await client.query(app.insert.sql(id));
              const problem = app.insert.check?.(rows[0]);
              if (problem) this.failures.push(`v${this.version} insert ${id}: ${problem}`);
              await client.query(`DELETE FROM ${app.insert.table} WHERE id = ${id}`);
              await client.query('COMMIT');
            } else {
              await client.query(app.touch, [1 + (n % ROWS)]);
            }
            this.writes++;
          } catch (err) {
            await client.query('ROLLBACK').catch(() => undefined);
            this.failures.push(`v${this.version}: ${(err as Error).message}`);
          }
          await sleep(2);
        }
      } finally {
        await client.end();
      }
    })();
  }

  deploy(version: number): void {
    this.version = version;
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }
}

/** psql on the script, asynchronously (the app writes meanwhile). */
function psql(db: LabDatabase, file: string, approve: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const args = ['-X', '-q', '-v', 'ON_ERROR_STOP=1', ...(approve.length ? ['-v', `approve=${approve.join(',')}`] : []), '-d', db.url, '-f', file];
    const child = spawn(psqlBinary(), args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

/**
 * Runs a script the way a DBA does: until it finishes; at a gate, deploys the app if the gate asks
 * for it, then runs it again with the gate approved; after a lock timeout, runs it again.
 */
async function runScript(db: LabDatabase, file: string, app: App, c: Case): Promise<{ gates: string[]; lockTimeouts: number; runs: number }> {
  const approved: string[] = [];
  let lockTimeouts = 0;
  for (let runs = 1; runs <= 20; runs++) {
    const result = await psql(db, file, approved);
    const gate = /phasegate: stopped at gate (\S+), before revision/.exec(result.stdout)?.[1];
    if (result.status === 0 && !gate) {
      expect(result.stdout).toContain('finished');
      return { gates: approved, lockTimeouts, runs };
    }
    if (result.status === 0 && gate) {
      expect(approved).not.toContain(gate);
      if (gate === c.deployAt) app.deploy(1);
      approved.push(gate);
      continue;
    }
    if (/canceling statement due to lock timeout/.test(result.stderr)) {
      lockTimeouts++;
      continue;
    }
    throw new Error(`psql exited ${result.status}:\n${result.stdout}\n${result.stderr}`);
  }
  throw new Error(`${file}: still not finished after 20 runs`);
}

/** Runs the workflow to its end, deploying the app at its gate and approving each gate once. */
async function runWorkflow(handle: MigrateHandle, app: App, c: Case): Promise<string[]> {
  const approved: string[] = [];
  const deadline = Date.now() + 120_000;
  for (;;) {
    const status: MigrateStatus = await handle.query(statusQuery);
    if (status.state === 'done') {
      // `done` is set before the run writes its last audit rows and gives the lease back: wait for
      // the run to end, or the next migration can find the lease still held (the worker stops next).
      await handle.result();
      return approved;
    }
    if (['failed', 'blocked', 'cancelled', 'abandoned'].includes(status.state)) throw new Error(`migration ${status.state}: ${status.error ?? ''}`);
    if (status.state === 'awaiting-approval' && status.gate && !approved.includes(status.gate.name)) {
      if (status.gate.name === c.deployAt) app.deploy(1);
      await handle.executeUpdate(approveUpdate, { args: [{ by: 'dba@example.com', gate: status.gate.name }] });
      approved.push(status.gate.name);
    }
    if (Date.now() > deadline) throw new Error(`migration still ${status.state} after 120 s`);
    await sleep(100);
  }
}

async function snapshot(db: LabDatabase, c: Case) {
  const client = await db.session();
  try {
    const model = await introspect(client);
    const data: Record<string, string> = {};
    for (const t of c.tables) {
      const { rows } = await client.query<{ rows: number; digest: string }>(
        `SELECT count(*)::int AS rows, md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t.${t.key}), '')) AS digest FROM ${t.name} t`,
      );
      data[t.name] = `${rows[0].rows} rows, md5 ${rows[0].digest}`;
    }
    const ids = async (table: string, order = '') => {
      const exists = (await client.query<{ t: string | null }>('SELECT to_regclass($1)::text AS t', [table])).rows[0].t;
      return exists ? (await client.query<{ v: string }>(`SELECT version_num AS v FROM ${table}${order}`)).rows.map((r) => r.v) : [];
    };
    const version = await ids('phasegate_version', ' ORDER BY 1');
    const pending = await ids('phasegate_version_pending');
    return { model, data, version, pending };
  } finally {
    await client.end();
  }
}

function expectSame(a: Awaited<ReturnType<typeof snapshot>>, b: Awaited<ReturnType<typeof snapshot>>): void {
  expect(diffSchemas(a.model, b.model)).toEqual([]);
  expect(diffSchemas(b.model, a.model)).toEqual([]);
  expect(b.data).toEqual(a.data);
  expect(b.version).toEqual(a.version);
  expect(a.pending).toEqual([]);
  expect(b.pending).toEqual([]);
}

describe('every pattern: the psql script and the migrate workflow leave the same schema and data, with the app writing', () => {
  test.each(cases)('%s', async (_name, c) => {
    const [viaWorkflow, viaScript] = [await lab.database(), await lab.database()];
    for (const db of [viaWorkflow, viaScript]) for (const sql of c.setup) await db.sql(sql);
    const dir = writeMigrations({});
    const settings = { defaults: { lockTimeoutMs: LOCK_TIMEOUT_MS, lockRetry: { maxAttempts: 50, initialDelayMs: 50, maxDelayMs: 300 } } };
    const config = testConfig(labConfig(lab, viaScript, dir, 'offline', settings));
    const generated = await newPattern({ config, database: 'app', pattern: c.pattern, args: c.args, options: c.options });
    const seeded = await snapshot(viaScript, c);

    // The workflow, gates approved as a person would.
    const workflowApp = new App(viaWorkflow, c.app);
    await workflowApp.start();
    let workflowGates: string[] = [];
    try {
      await withWorker(
        lab,
        viaWorkflow,
        dir,
        async (w) => {
          workflowGates = await runWorkflow(await w.start(), workflowApp, c);
        },
        settings,
      );
    } finally {
      await workflowApp.stop();
    }

    // The script, as a DBA runs it.
    const up = await upgrade({ cwd: dir, config, database: 'app', sql: true, target: 'head' });
    if (up.mode !== 'sql') throw new Error('expected a script');
    const upFile = path.join(dir, 'up.sql');
    writeFileSync(upFile, up.script);
    const scriptApp = new App(viaScript, c.app);
    await scriptApp.start();
    let scripted: Awaited<ReturnType<typeof runScript>>;
    try {
      scripted = await runScript(viaScript, upFile, scriptApp, c);
    } finally {
      await scriptApp.stop();
    }

    expect({ workflow: workflowApp.failures, script: scriptApp.failures }).toEqual({ workflow: [], script: [] });
    expect(workflowApp.writes).toBeGreaterThan(0);
    expect(scriptApp.writes).toBeGreaterThan(0);
    expect(scripted.gates).toEqual(workflowGates);
    expect(scripted.gates).toEqual(generated.files.flatMap((f) => (f.gate ? [f.gate.name ?? f.id] : [])));
    const [afterWorkflow, afterScript] = [await snapshot(viaWorkflow, c), await snapshot(viaScript, c)];
    expectSame(afterWorkflow, afterScript);
    expect(afterScript.version).toEqual([generated.files[generated.files.length - 1].id]);
    for (const sql of c.verify) expect({ sql, n: (await viaScript.sql<{ n: number }>(sql))[0].n }).toEqual({ sql, n: 0 });
    // Every approval the script took is in the audit table, with who ran it.
    if (scripted.gates.length > 0) {
      const audit = await viaScript.sql<{ gate: string; decided_by: string }>("SELECT gate, decided_by FROM phasegate_approval WHERE workflow_id = 'psql script' ORDER BY id");
      expect(audit.map((a) => a.gate)).toEqual(scripted.gates);
      expect(audit.every((a) => a.decided_by.length > 0)).toBe(true);
    }

    // Run once more: every step is skipped, nothing changes.
    const again = await psql(viaScript, upFile, scripted.gates);
    expect(again.status).toBe(0);
    expect(again.stdout.match(/already applied; skipped/g)).toHaveLength(generated.files.length);
    expectSame(afterWorkflow, await snapshot(viaScript, c));

    // And back down, both ways, with the app (its last version) still writing.
    const down = await downgrade({ cwd: dir, config, database: 'app', sql: true, target: 'head:base' });
    if (down.mode !== 'sql') throw new Error('expected a script');
    const downFile = path.join(dir, 'down.sql');
    writeFileSync(downFile, down.script);
    const downApps = [new App(viaWorkflow, [c.app[0]]), new App(viaScript, [c.app[0]])];
    // The app that writes during a downgrade is the one that knows the old schema (deployed back first).
    if (c.writesDuringDowngrade !== false) await Promise.all(downApps.map((a) => a.start()));
    try {
      await withWorker(lab, viaWorkflow, dir, async (w) => expect(await (await w.start({ direction: 'downgrade', target: 'base' })).result()).toMatchObject({ outcome: 'done' }), settings);
      await runScript(viaScript, downFile, downApps[1], c);
    } finally {
      await Promise.all(downApps.map((a) => a.stop()));
    }
    expect(downApps.flatMap((a) => a.failures)).toEqual([]);
    const [downWorkflow, downScript] = [await snapshot(viaWorkflow, c), await snapshot(viaScript, c)];
    expectSame(downWorkflow, downScript);
    expect(downScript.version).toEqual([]);
    // The seed's data again (rows as text: a column moved to the end reads differently, so compare by count only there).
    for (const t of c.tables) expect(downScript.data[t.name].split(',')[0]).toBe(seeded.data[t.name].split(',')[0]);
    process.stdout.write(
      `${c.pattern}: script ran ${scripted.runs} time(s) (${scripted.gates.length} gate(s), ${scripted.lockTimeouts} lock timeout(s)); app writes workflow ${workflowApp.writes}, script ${scriptApp.writes}\n`,
    );
  }, 300_000);
});
