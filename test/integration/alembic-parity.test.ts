/**
 * The Alembic conformance suite: every graph of test/alembic-parity/graphs.json is asked the same
 * questions Alembic answered (test/alembic-parity/alembic-answers.json, recorded by
 * `npm run record:alembic`): heads, history ranges, and scenarios of upgrade/downgrade commands
 * run in order from an empty database — offline (`--sql`) scripts executed with psql in a real
 * PostgreSQL, online targets through the revision engine the `migrate` workflow plans with. An
 * answer must equal Alembic's (the revisions run, in order, and the version rows left; an error
 * for an error) or carry a reason in test/alembic-parity/differences.json; a reason whose answers
 * have become equal fails too, so the list stays true.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { downgrade, heads, history, stamp, upgrade } from '../../lib/commands';
import { loadRevisions } from '../../lib/commands/project';
import { loadConfig } from '../../lib/config';
import { createTestDatabase, type TestDatabase } from '../helpers';
import { psqlBinary } from '../support/postgres-binaries';

interface GraphFixture {
  revisions: Array<{ id: string; parents: string[]; dependsOn?: string[]; branchLabels?: string[] }>;
  history: string[];
  scenarios: Record<string, string[]>;
}
type Answer = { ran: string[]; rows: string[] } | { error: string; rows?: string[] };
interface Recorded {
  heads: string[];
  history: Record<string, string[] | { error: string }>;
  scenarios: Record<string, Array<{ command: string; ran?: string[]; rows: string[]; error?: string }>>;
}

const here = path.join(__dirname, '..', 'alembic-parity');
const graphs = JSON.parse(readFileSync(path.join(here, 'graphs.json'), 'utf8')) as Record<string, GraphFixture>;
const recorded = JSON.parse(readFileSync(path.join(here, 'alembic-answers.json'), 'utf8')) as { alembic: string; graphs: Record<string, Recorded> };
const differences = JSON.parse(readFileSync(path.join(here, 'differences.json'), 'utf8')) as Record<string, string>;

function projectFor(graph: GraphFixture): { cwd: string; config: ReturnType<typeof loadConfig>; dir: string } {
  const cwd = mkdtempSync(path.join(os.tmpdir(), 'phasegate-parity-'));
  const dir = path.join(cwd, 'migrations', 'versions');
  mkdirSync(dir, { recursive: true });
  for (const r of graph.revisions) {
    const fields = [`id: '${r.id}'`, `parents: ${JSON.stringify(r.parents)}`, `message: '${r.id}'`];
    if (r.dependsOn) fields.push(`dependsOn: ${JSON.stringify(r.dependsOn)}`);
    if (r.branchLabels) fields.push(`branchLabels: ${JSON.stringify(r.branchLabels)}`);
    writeFileSync(path.join(dir, `${r.id}_r.js`), `module.exports = { ${fields.join(', ')}, upgrade() {}, downgrade() {} };`);
  }
  return { cwd, dir, config: loadConfig({ migrations: { directory: 'migrations/versions' } }, {}) };
}

const errorText = (err: unknown): string => (err as Error).message.split('\n')[0];

/** Equal answers: both errors (the wording is each tool's own), or the same revisions run and rows left. */
function same(ours: Answer, theirs: Answer): boolean {
  if ('error' in ours || 'error' in theirs) return 'error' in ours && 'error' in theirs;
  return JSON.stringify(ours) === JSON.stringify(theirs);
}

const results: Array<{ key: string; ours: unknown; alembic: unknown; equal: boolean }> = [];

let psql: string;
beforeAll(() => {
  psql = psqlBinary();
});

describe.each(Object.keys(graphs))('%s', (name) => {
  const graph = graphs[name];
  const answers = recorded.graphs[name];
  const p = projectFor(graph);

  test('heads and history ranges', async () => {
    const ours = (await heads(p)).heads.map((h) => h.id).sort();
    results.push({ key: `${name}/heads`, ours, alembic: answers.heads, equal: JSON.stringify(ours) === JSON.stringify(answers.heads) });
    for (const range of graph.history) {
      let answer: string[] | { error: string };
      try {
        answer = (await history({ ...p, range })).revisions.map((r) => r.id);
      } catch (err) {
        answer = { error: errorText(err) };
      }
      const theirs = answers.history[range];
      const equal = Array.isArray(answer) && Array.isArray(theirs) ? JSON.stringify(answer) === JSON.stringify(theirs) : !Array.isArray(answer) && !Array.isArray(theirs);
      results.push({ key: `${name}/history ${range}`, ours: answer, alembic: theirs, equal });
    }
  });

  test.each(Object.keys(graph.scenarios))('scenario %s', async (scenario) => {
    const db: TestDatabase = await createTestDatabase();
    const loaded = loadRevisions(p.dir);
    let rows: string[] = [];
    const readRows = async () =>
      (await db.query<{ t: string | null }>(`SELECT to_regclass('phasegate_version') AS t`)).rows[0].t
        ? (await db.query<{ version_num: string }>('SELECT version_num FROM phasegate_version ORDER BY 1')).rows.map((r) => r.version_num)
        : [];
    try {
      for (const [i, text] of graph.scenarios[scenario].entries()) {
        const [verb, target] = text.split(' ');
        const direction = verb as 'upgrade' | 'downgrade';
        if (verb === 'stamp') rows = await readRows();
        let answer: Answer;
        if (verb === 'stamp') {
          // stamp writes the version table of a real database (no DDL); nothing is run.
          try {
            await stamp({ cwd: p.cwd, config: loadConfig({ databases: { default: { url: db.url, migrationsDirectory: p.dir } } }, {}), database: 'default', targets: [target] });
            rows = await readRows();
            answer = { ran: [], rows };
          } catch (err) {
            answer = { error: errorText(err), rows };
          }
        } else if (text.endsWith('--sql')) {
          try {
            const result = await (direction === 'upgrade' ? upgrade : downgrade)({ ...p, sql: true, target });
            const file = path.join(p.cwd, `${scenario}-${i}.sql`);
            writeFileSync(file, result.script);
            const run = spawnSync(psql, ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', db.url, '-f', file], { encoding: 'utf8' });
            rows = await readRows();
            answer = run.status === 0 ? { ran: result.steps.map((s) => `${direction} ${s.revision}`), rows } : { error: `psql: ${run.stderr.trim().split('\n')[0]}`, rows };
          } catch (err) {
            answer = { error: errorText(err), rows };
          }
        } else {
          // Online: the revision engine the migrate workflow's plan uses, from the rows so far.
          try {
            const path_ = direction === 'upgrade' ? loaded.graph.upgradePath(rows, target) : loaded.graph.downgradePath(rows, target);
            rows = [...loaded.graph.headsAfter(rows, path_, direction)].sort();
            answer = { ran: path_.map((id) => `${direction} ${id}`), rows };
          } catch (err) {
            answer = { error: errorText(err), rows };
          }
        }
        const theirs = answers.scenarios[scenario][i];
        expect(theirs.command).toBe(text);
        const alembic: Answer = theirs.error !== undefined ? { error: theirs.error, rows: theirs.rows } : { ran: theirs.ran ?? [], rows: theirs.rows };
        results.push({ key: `${name}/${scenario}#${i + 1} ${text}`, ours: answer, alembic, equal: same(answer, alembic) });
      }
    } finally {
      await db.drop();
    }
  });
});

afterAll(() => {
  // Printed once: the whole comparison, for the closing notes and for whoever re-records.
  const differing = results.filter((r) => !r.equal);
  writeFileSync(path.join(os.tmpdir(), 'phasegate-alembic-parity.json'), `${JSON.stringify(differing, null, 1)}\n`);
  process.stdout.write(`alembic parity (Alembic ${recorded.alembic}): ${results.length} answers, ${results.length - differing.length} equal, ${differing.length} documented differences\n`);
});

test('every answer equals Alembic\'s or has a documented reason; no reason is stale', () => {
  // Runs last (jest runs a file's tests in order): `results` holds every answer by now.
  expect(results.length).toBeGreaterThan(60);
  const undocumented = results.filter((r) => !r.equal && !differences[r.key]).map((r) => ({ key: r.key, phasegate: r.ours, alembic: r.alembic }));
  const stale = results.filter((r) => r.equal && differences[r.key]).map((r) => r.key);
  const unknown = Object.keys(differences).filter((key) => !results.some((r) => r.key === key));
  expect({ undocumented, stale, unknown }).toEqual({ undocumented: [], stale: [], unknown: [] });
  for (const reason of Object.values(differences)) expect(reason).toMatch(/^differs: .{20,}/);
});
