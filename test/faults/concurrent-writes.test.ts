/**
 * @pg-matrix: its SQL, catalog or server behaviour can differ by PostgreSQL major; `npm run test:pg15` runs it again on 15.
 * Fault matrix case 7: the application keeps writing — inserts, updates of the column being
 * changed and of others, deletes — while the expand/contract patterns run through `migrate`, a real
 * batched backfill and real sync triggers: expand (trigger + backfill + check) → app deploy gate →
 * contract. The app uses whatever the pattern's contract allows at each phase: the old column name
 * before the deploy gate, old and new app versions side by side after it, only the new name once
 * the contract gate is approved. Each app instance keeps the state it wrote in memory (it owns its
 * own ids, so two instances never race on a row); at the end the table must equal that state row
 * for row (mismatch count over a full join, and an md5 over every row in key order).
 *
 * test/integration/patterns.test.ts runs the same patterns through the activities with a single
 * UPDATE as the backfill; here the backfill is the engine's (many keyset batches interleaved with
 * the writes) and the gates are approved through the `approve` Update, as a person would.
 */
import { newPattern } from '../../lib/commands';
import { approveUpdate, type MigrateStatus } from '../../workflows/messages';
import { testConfig } from '../helpers';
import { readFileSync, writeFileSync } from 'node:fs';
import { seededRandom, sleep, untilStatus, useFaultLab, versionRows, withWorker, writeMigrations, type LabDatabase, type MigrateHandle } from './harness';

const lab = useFaultLab();

const ROWS = 20_000;
const INSTANCES = 2;

// ── the app ─────────────────────────────────────────────────────────────────────────────────────

/** What the app believes a row holds: the value of the changed column (as text) and `n`. */
interface ExpectedRow {
  value: string;
  n: number;
}

interface Write {
  sql: string;
  params: unknown[];
  /** Applied to the expected state once the statement succeeded on exactly one row. */
  apply(): void;
}

/** One app version: how it writes. `column` is the name it uses for the changed column. */
interface AppVersion {
  column: string;
  /** The text sent for write `k`, and what the table holds for it in the end. */
  value(k: number): { sent: string; stored: string };
  /** What a row inserted without the column holds (its DEFAULT). */
  defaultValue: string;
}

class AppInstance {
  version = 0;
  writes = 0;
  readonly writesByVersion: number[] = [];
  readonly failures: string[] = [];
  private running = false;
  private loop?: Promise<void>;
  private readonly alive: number[] = [];
  private nextId: number;
  private k = 0;

  constructor(
    private readonly db: LabDatabase,
    private readonly table: string,
    private readonly slot: number,
    private readonly versions: AppVersion[],
    private readonly expected: Map<number, ExpectedRow>,
    private readonly random: () => number,
  ) {
    for (const id of expected.keys()) if (id % INSTANCES === slot) this.alive.push(id);
    this.nextId = ROWS + 1 + ((slot - ((ROWS + 1) % INSTANCES) + INSTANCES) % INSTANCES);
  }

  private next(): Write {
    const v = this.versions[this.version];
    const col = `"${v.column}"`;
    const k = this.k++;
    const r = this.random();
    const expected = this.expected;
    if (r < 0.3 || this.alive.length < 10) {
      const id = this.nextId;
      this.nextId += INSTANCES;
      const { sent, stored } = v.value(k);
      return {
        sql: `INSERT INTO ${this.table} (id, ${col}, n) VALUES ($1, $2, $3)`,
        params: [id, sent, k],
        apply: () => {
          expected.set(id, { value: stored, n: k });
          this.alive.push(id);
        },
      };
    }
    if (r < 0.36) {
      const id = this.nextId;
      this.nextId += INSTANCES;
      return {
        sql: `INSERT INTO ${this.table} (id, n) VALUES ($1, $2)`,
        params: [id, k],
        apply: () => {
          expected.set(id, { value: v.defaultValue, n: k });
          this.alive.push(id);
        },
      };
    }
    const index = Math.floor(this.random() * this.alive.length);
    const id = this.alive[index];
    if (r < 0.7) {
      const { sent, stored } = v.value(k);
      return { sql: `UPDATE ${this.table} SET ${col} = $2 WHERE id = $1`, params: [id, sent], apply: () => (expected.get(id)!.value = stored) };
    }
    if (r < 0.85) {
      return { sql: `UPDATE ${this.table} SET n = n + 1 WHERE id = $1`, params: [id], apply: () => expected.get(id)!.n++ };
    }
    return {
      sql: `DELETE FROM ${this.table} WHERE id = $1`,
      params: [id],
      apply: () => {
        expected.delete(id);
        this.alive[index] = this.alive[this.alive.length - 1];
        this.alive.pop();
      },
    };
  }

  async start(): Promise<void> {
    const client = await this.db.session();
    await client.query(`SET application_name = 'app-${this.slot}'`);
    this.running = true;
    this.loop = (async () => {
      try {
        while (this.running) {
          const version = this.version;
          const write = this.next();
          try {
            const { rowCount } = await client.query(write.sql, write.params);
            if (rowCount === 1) write.apply();
            else this.failures.push(`v${version} ${write.sql} ${JSON.stringify(write.params)}: ${rowCount} rows`);
          } catch (err) {
            this.failures.push(`v${version} ${write.sql} ${JSON.stringify(write.params)}: ${(err as Error).message}`);
          }
          this.writes++;
          this.writesByVersion[version] = (this.writesByVersion[version] ?? 0) + 1;
          await sleep(1);
        }
      } finally {
        await client.end().catch(() => undefined);
      }
    })();
  }

  /** Deploys app version `version` on this instance; returns once one of its writes completed. */
  async deploy(version: number): Promise<void> {
    this.version = version;
    const done = this.writesByVersion[version] ?? 0;
    while ((this.writesByVersion[version] ?? 0) <= done) await sleep(5);
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }
}

/** Writes counted per migration state, as the status query saw the states go by. */
function watchStates(handle: MigrateHandle, writes: () => number) {
  const during = new Map<MigrateStatus['state'], number>();
  let running = true;
  let last: { state: MigrateStatus['state']; writes: number } | null = null;
  const loop = (async () => {
    while (running) {
      const status = await handle.query<MigrateStatus>('status').catch(() => null);
      const now = writes();
      if (status) {
        if (last) during.set(last.state, (during.get(last.state) ?? 0) + (now - last.writes));
        last = { state: status.state, writes: now };
      }
      await sleep(100);
    }
  })();
  return {
    during,
    async stop() {
      running = false;
      await loop;
    },
  };
}

// ── the scenario ────────────────────────────────────────────────────────────────────────────────

interface Scenario {
  table: string;
  setup: string[];
  pattern: string;
  args: string[];
  options?: Record<string, unknown>;
  /** Initial expected state of row `id`. */
  initial(id: number): ExpectedRow;
  versions: AppVersion[];
  /** Counts rows whose old and new columns differ (while both exist). */
  outOfSync: string;
  /** At each gate, in order: app versions to deploy per instance before approving. */
  gates: Array<{ name: string; deploy: number[] }>;
  /** The changed column's final name and the text of its value in the final table. */
  finalValue: string;
}

/**
 * Runs the pattern's chain through `migrate` with the app writing throughout, approving each gate
 * by Update after deploying what the gate asks for; then compares the table with the app's state.
 */
async function runScenario(s: Scenario): Promise<void> {
  const seed = Number(process.env.PHASEGATE_FAULT_SEED ?? Date.now() % 2 ** 31);
  const random = seededRandom(seed);
  const db = await lab.database();
  for (const statement of s.setup) await db.sql(statement);
  await db.sql(`ANALYZE ${s.table}`);

  const dir = writeMigrations({});
  const config = testConfig({ databases: { app: { url: db.url, migrationsDirectory: dir } } });
  const generated = await newPattern({ config, database: 'app', pattern: s.pattern, args: s.args, options: s.options });
  // Small fixed batches with a short pause: the backfill takes a few hundred batches, interleaved with the writes.
  const expand = generated.files.find((f) => f.backfill)!;
  const source = readFileSync(expand.file, 'utf8');
  expect(source).toContain('backfill: {');
  writeFileSync(expand.file, source.replace('backfill: {', 'backfill: { batchSize: 100, targetBatchMs: 0, delayMs: 5,'));

  const expected = new Map<number, ExpectedRow>();
  for (let id = 1; id <= ROWS; id++) expected.set(id, s.initial(id));
  const apps = Array.from({ length: INSTANCES }, (_, slot) => new AppInstance(db, s.table, slot, s.versions, expected, random));
  const writes = () => apps.reduce((sum, a) => sum + a.writes, 0);
  const outOfSync: number[] = [];
  const by = 'dba@example.com';

  try {
    for (const app of apps) await app.start();
    await withWorker(
      lab,
      db,
      dir,
      async (w) => {
        const handle = await w.start();
        const states = watchStates(handle, writes);
        try {
          for (const gate of s.gates) {
            await untilStatus(handle, `gate ${gate.name}`, (st) => st.state === 'awaiting-approval' && st.gate?.name === gate.name, 80_000);
            outOfSync.push((await db.sql<{ n: number }>(s.outOfSync))[0].n);
            for (const [slot, version] of gate.deploy.entries()) if (apps[slot].version !== version) await apps[slot].deploy(version);
            const answer = await handle.executeUpdate(approveUpdate, { args: [{ by, gate: gate.name, comment: 'app deployed' }] });
            expect(answer).toMatchObject({ accepted: true, verb: 'approve' });
          }
          const result = await handle.result();
          expect(result).toMatchObject({ outcome: 'done', applied: generated.files.map((f) => f.id) });
          // The app wrote on, through the last step.
          const after = writes();
          while (writes() < after + 20) await sleep(10);
        } finally {
          await states.stop();
        }
        const status = await handle.query<MigrateStatus>('status');
        expect(status.approvals.filter((a) => a.decision === 'approve').map((a) => [a.gate, a.by, a.accepted])).toEqual(
          s.gates.map((g) => [g.name, by, true]),
        );
        const during = Object.fromEntries(states.during);
        console.log(`fault 7 ${s.pattern}: seed ${seed}; writes per state ${JSON.stringify(during)}; backfill ${JSON.stringify(status.backfill && { rowsDone: status.backfill.rowsDone, rowsUpdated: status.backfill.rowsUpdated })}`);
        // The backfill really ran while the app wrote (hundreds of writes in a normal run).
        expect(during.backfilling ?? 0).toBeGreaterThanOrEqual(20);
      },
      { defaults: { lockTimeoutMs: 2_000 } },
    );
  } finally {
    for (const app of apps) await app.stop();
  }

  expect(apps.flatMap((a) => a.failures).slice(0, 10)).toEqual([]);
  expect(outOfSync).toEqual(s.gates.map(() => 0));
  expect(await versionRows(db)).toEqual({ version: [generated.files[generated.files.length - 1].id], pending: [] });

  const ids = [...expected.keys()].sort((a, b) => a - b);
  const [check] = await db.sql<{ rows: number; expected_rows: number; mismatches: number; sample: unknown; actual: string; expected: string }>(
    `WITH e AS (SELECT * FROM unnest($1::bigint[], $2::text[], $3::int[]) AS e(id, value, n)),
          a AS (SELECT id, ${s.finalValue} AS value, n FROM ${s.table})
     SELECT (SELECT count(*) FROM a)::int AS rows,
            (SELECT count(*) FROM e)::int AS expected_rows,
            count(*) FILTER (WHERE a.id IS NULL OR e.id IS NULL OR a.value IS DISTINCT FROM e.value OR a.n IS DISTINCT FROM e.n)::int AS mismatches,
            (json_agg(json_build_object('id', coalesce(a.id, e.id), 'actual', a.value, 'actualN', a.n, 'expected', e.value, 'expectedN', e.n))
               FILTER (WHERE a.id IS NULL OR e.id IS NULL OR a.value IS DISTINCT FROM e.value OR a.n IS DISTINCT FROM e.n))::text AS sample,
            (SELECT md5(string_agg(id || ':' || value || ':' || n, ',' ORDER BY id)) FROM a) AS actual,
            (SELECT md5(string_agg(id || ':' || value || ':' || n, ',' ORDER BY id)) FROM e) AS expected
     FROM a FULL JOIN e ON a.id = e.id`,
    [ids, ids.map((id) => expected.get(id)!.value), ids.map((id) => expected.get(id)!.n)],
  );
  expect({ rows: check.rows, mismatches: check.mismatches, sample: String(check.sample ?? '').slice(0, 600), checksum: check.actual }).toEqual({
    rows: check.expected_rows,
    mismatches: 0,
    sample: '',
    checksum: check.expected,
  });
  console.log(`fault 7 ${s.pattern}: ${check.rows} rows, ${writes()} writes, checksum ${check.actual}`);
}

test('fault 7: rename-column with the app writing through expand, backfill, deploy gate and contract: the table equals the app’s state row for row', async () => {
  await runScenario({
    table: 'accounts',
    setup: [
      "CREATE TABLE accounts (id bigint PRIMARY KEY, name text NOT NULL DEFAULT 'anonymous', n int NOT NULL DEFAULT 0)",
      `INSERT INTO accounts (id, name, n) SELECT g, 'name ' || g, g FROM generate_series(1, ${ROWS}) g`,
    ],
    pattern: 'rename-column',
    args: ['accounts', 'name', 'full_name'],
    initial: (id) => ({ value: `name ${id}`, n: id }),
    versions: [
      // v0: the running app knows only `name`.
      { column: 'name', value: (k) => ({ sent: `old ${k}`, stored: `old ${k}` }), defaultValue: 'anonymous' },
      // v1: the app deployed at the deploy gate reads and writes `full_name`.
      { column: 'full_name', value: (k) => ({ sent: `new ${k}`, stored: `new ${k}` }), defaultValue: 'anonymous' },
    ],
    outOfSync: 'SELECT count(*)::int AS n FROM accounts WHERE full_name IS DISTINCT FROM name',
    gates: [
      // Old and new app versions side by side ("old and new versions can run side by side").
      { name: 'deploy:accounts.full_name', deploy: [0, 1] },
      // No instance uses `name` any more before it is dropped.
      { name: 'contract:accounts.name', deploy: [1, 1] },
    ],
    finalValue: 'full_name',
  });
}, 150_000);

test('fault 7: change-column-type text → integer with the app writing through expand, backfill and the swap gate: the table equals the app’s state row for row', async () => {
  await runScenario({
    table: 'items',
    setup: [
      "CREATE TABLE items (id bigint PRIMARY KEY, code text NOT NULL DEFAULT '0', n int NOT NULL DEFAULT 0)",
      `INSERT INTO items (id, code, n) SELECT g, (g * 3)::text, g FROM generate_series(1, ${ROWS}) g`,
    ],
    pattern: 'change-column-type',
    args: ['items', 'code', 'integer'],
    options: { fromType: 'text', using: 'code::integer', down: 'code::text' },
    initial: (id) => ({ value: String(id * 3), n: id }),
    // One app version, written for both types (codes travel as text parameters, which PostgreSQL
    // reads as the column's type); some codes carry leading zeros, which the conversion drops.
    versions: [{ column: 'code', value: (k) => ({ sent: k % 4 === 0 ? String(k).padStart(7, '0') : String(k), stored: String(k) }), defaultValue: '0' }],
    outOfSync: 'SELECT count(*)::int AS n FROM items WHERE _phasegate_new_code IS DISTINCT FROM code::integer',
    gates: [{ name: 'swap:items.code', deploy: [0, 0] }],
    finalValue: 'code::text',
  });
}, 150_000);
