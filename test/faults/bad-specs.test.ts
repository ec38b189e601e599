/**
 * Fault matrix case 16: bad revision specs and bad workflow input are refused before any DDL, at
 * plan time (or before the workflow even starts), with a message that says what to do — and the
 * schema and version table are exactly as they were. Identifiers with quotes, semicolons and
 * unicode go through every kind of step quoted, never injected.
 *
 * Related, not repeated: test/integration/apply-revision.test.ts (a backfill table without a key
 * is refused by the plan activity), test/integration/backfill-activity.test.ts (set/where that do
 * not compile fail at prepare), test/workflow/failure-semantics.test.ts ("bad input … fails at
 * once"), test/unit/migrate-input.test.ts.
 */
import type { WorkflowHandle } from '@temporalio/client';
import { upgrade } from '../../lib/commands';
import { statusQuery } from '../../workflows/messages';
import { testConfig } from '../helpers';
import { accountsTable, labConfig, uniqueId, untilState, useFaultLab, versionRows, withWorker, writeMigrations, type LabDatabase, type LabSettings, type MigrateHandle } from './harness';

const lab = useFaultLab();

/** Every message of an error and its causes, top to bottom, plus the innermost failure's type. */
async function failureOf(handle: WorkflowHandle): Promise<{ text: string; type: string | undefined; details: unknown }> {
  try {
    await handle.result();
  } catch (err) {
    const messages: string[] = [];
    let e = err as { message?: string; cause?: unknown; type?: string; details?: unknown } | undefined;
    let type: string | undefined;
    let details: unknown;
    while (e) {
      if (e.message) messages.push(e.message);
      if (e.type) type = e.type;
      if (e.details) details = e.details;
      e = e.cause as typeof e;
    }
    return { text: messages.join(' | '), type, details };
  }
  throw new Error('the workflow did not fail');
}

interface Snapshot {
  columns: unknown[];
  indexes: unknown[];
  version: { version: string[]; pending: string[] };
}

/** The public schema's columns and indexes, and the version table: what "nothing changed" compares. */
async function snapshot(db: LabDatabase): Promise<Snapshot> {
  return {
    columns: await db.sql(
      `SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns WHERE table_schema = 'public' AND table_name NOT LIKE 'phasegate%' ORDER BY 1, 2`,
    ),
    indexes: await db.sql(`SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename NOT LIKE 'phasegate%' ORDER BY 1`),
    version: await versionRows(db),
  };
}

const rev = (id: string, parent: string | null, body: string) => `module.exports = { id: '${id}', parent: ${parent ? `'${parent}'` : 'null'}, message: '${id}', ${body} };`;
/** A good first step: if the plan were not checked whole, it would be applied before the bad one fails. */
const goodFirst = rev('r1', null, `upgrade(op) { op.addColumn('accounts', 'note', 'text'); }, downgrade(op) { op.dropColumn('accounts', 'note'); }`);

/** Runs a migration of `files` that must be refused at plan time; returns the failure. */
async function refusedAtPlan(files: Record<string, string>, setup?: (db: LabDatabase) => Promise<void>, settings?: LabSettings) {
  const db = await lab.database();
  await accountsTable(db, 20);
  if (setup) await setup(db);
  const before = await snapshot(db);
  const dir = writeMigrations(files);
  const outcome = await withWorker(lab, db, dir, async (w) => {
    const handle = await w.start();
    const failure = await failureOf(handle);
    const status = await handle.query(statusQuery);
    return { failure, status };
  }, settings);
  // Refused while planning: no step ever started, nothing changed.
  expect(outcome.status.state).toBe('failed');
  expect(outcome.status.steps).toEqual([]);
  expect(outcome.status.error).toBe(outcome.failure.text.split(' | ').pop());
  expect(await snapshot(db)).toEqual(before);
  return outcome.failure;
}

test('fault 16: an unknown table or column in an op is refused at plan time, naming it, before the plan’s good steps run', async () => {
  const unknownTable = await refusedAtPlan({
    'r1.js': goodFirst,
    'r2.js': rev('r2', 'r1', `upgrade(op) { op.addColumn('acounts', 'org_id', 'bigint'); }, downgrade(op) { op.dropColumn('acounts', 'org_id'); }`),
  });
  expect(unknownTable.type).toBe('UnknownTable');
  expect(unknownTable.text).toContain(
    'r2.js (revision r2): op.addColumn names table "acounts", which does not exist in database "app" and which no earlier step of this migration creates. ' +
      'Fix the name in the revision file',
  );
  expect(unknownTable.text).toContain('nothing was changed');

  const unknownColumn = await refusedAtPlan({
    'r1.js': goodFirst,
    'r2.js': rev(
      'r2',
      'r1',
      `transactional: false, upgrade(op) { op.createIndex('accounts_emial_idx', 'accounts', ['emial'], { concurrently: true }); },
       downgrade(op) { op.dropIndex('accounts_emial_idx', { concurrently: true }); }`,
    ),
  });
  expect(unknownColumn.type).toBe('UnknownColumn');
  expect(unknownColumn.text).toContain('op.createIndex names column "emial" of table "accounts", which does not exist in database "app"');

  // A column the plan itself adds earlier is known; one it never adds is not (backfill.set).
  const backfillColumn = await refusedAtPlan({
    'r1.js': goodFirst,
    'r2.js': rev('r2', 'r1', `upgrade(op) {}, downgrade(op) {}, backfill: { table: 'accounts', set: { note: "'x'", nte: "'y'" }, where: 'note IS NULL' }`),
  });
  expect(backfillColumn.text).toContain('backfill.set names column "nte" of table "accounts"');
}, 60_000);

test('fault 16: a gate whose approvers share nobody with the database\'s approvers is refused at plan time (nobody could open it)', async () => {
  const refused = await refusedAtPlan(
    {
      'r1.js': goodFirst,
      'r2.js': rev('r2', 'r1', `gate: { name: 'deploy', prompt: 'p', approvers: ['mallory'] }, upgrade(op) {}, downgrade(op) {}`),
    },
    undefined,
    { database: { approvers: ['alice', 'bob'] } },
  );
  expect(refused.type).toBe('NoApprover');
  expect(refused.text).toContain(
    'gate "deploy" of revision r2 names approvers mallory, none of whom may approve on database "app" (databases.app.approvers: alice, bob); nobody could open it',
  );
}, 60_000);

test('fault 16: identifiers over 63 bytes (ops, knex columns, backfill names) are refused at plan time instead of truncated', async () => {
  const long = 'größe_'.repeat(9); // 54 characters, 72 bytes: PostgreSQL would cut it at 63 bytes
  expect(Buffer.byteLength(long)).toBeGreaterThan(63);
  expect(long.length).toBeLessThan(63);

  const op = await refusedAtPlan({
    'r1.js': goodFirst,
    'r2.js': rev('r2', 'r1', `upgrade(op) { op.addColumn('accounts', ${JSON.stringify(long)}, 'text'); }, downgrade(op) {}`),
  });
  expect(op.type).toBe('InvalidOp');
  expect(op.text).toContain(`op.addColumn: column "${long}" is longer than 63 bytes; PostgreSQL would truncate it, so pick a shorter name`);

  const knex = await refusedAtPlan({
    'r1.js': goodFirst,
    'r2.js': rev('r2', 'r1', `upgrade(op) { op.createTable('widgets', (t) => { t.bigIncrements('id'); t.text(${JSON.stringify(long)}); }); }, downgrade(op) { op.dropTable('widgets'); }`),
  });
  expect(knex.type).toBe('InvalidOp');
  expect(knex.text).toContain(`op.createTable: widgets: name "${long}" is longer than 63 bytes; PostgreSQL would truncate it, so pick a shorter name`);

  const backfill = await refusedAtPlan({
    'r1.js': goodFirst,
    'r2.js': rev('r2', 'r1', `upgrade(op) {}, downgrade(op) {}, backfill: { table: 'accounts', set: { ${JSON.stringify(long)}: "'x'" } }`),
  });
  expect(backfill.type).toBe('InvalidRevision');
  expect(backfill.text).toContain(`r2.js: backfill.set name "${long}" is longer than 63 bytes; PostgreSQL would truncate it`);
}, 60_000);

test('fault 16: a backfill whose set does not compile, or a table without a usable key, is refused at plan time', async () => {
  // Syntax error, in the same step that adds the column (the EXPLAIN cannot see the column yet).
  const syntax = await refusedAtPlan({
    'r1.js': rev(
      'r1',
      null,
      `upgrade(op) { op.addColumn('accounts', 'org_id', 'bigint'); }, downgrade(op) { op.dropColumn('accounts', 'org_id'); },
       backfill: { table: 'accounts', set: { org_id: 'id % 7 +' }, where: 'org_id IS NULL' }`,
    ),
  });
  expect(syntax.type).toBe('InvalidBackfillSpec');
  expect(syntax.text).toContain('r1.js (revision r1): its backfill of accounts does not compile: syntax error');
  expect(syntax.text).toContain(`Fix the revision's backfill (set: {"org_id":"id % 7 +"}, where: "org_id IS NULL")`);

  // On columns that exist: any error (here an unknown function) is certain.
  const unknownFunction = await refusedAtPlan({
    'r1.js': goodFirst,
    'r2.js': rev('r2', 'r1', `upgrade(op) {}, downgrade(op) {}, backfill: { table: 'accounts', set: { email: 'no_such_function(email)' }, where: 'email IS NULL' }`),
  });
  expect(unknownFunction.text).toContain('its backfill of accounts does not compile: function no_such_function(text) does not exist (SQLSTATE 42883)');

  // No primary key or unique NOT NULL column to walk (refused by the plan activity's key check).
  const noKey = await refusedAtPlan(
    {
      'r1.js': rev('r1', null, `upgrade(op) { op.addColumn('events', 'kind', 'text'); }, downgrade(op) { op.dropColumn('events', 'kind'); }`),
      'r2.js': rev('r2', 'r1', `upgrade(op) {}, downgrade(op) {}, backfill: { table: 'events', set: { kind: "'x'" }, where: 'kind IS NULL' }`),
    },
    async (db) => {
      await db.sql('CREATE TABLE events (at timestamptz, payload text)');
    },
  );
  expect(noKey.type).toBe('BackfillKeyMissing');
  expect(noKey.text).toMatch(/revision r2: .*events/);
  expect(noKey.text).toMatch(/primary key|unique/i);
}, 60_000);

test('fault 16: a table and columns named with quotes, semicolons and unicode are created, migrated and dropped exactly, nothing injected', async () => {
  const db = await lab.database();
  await db.sql('CREATE TABLE x (id int)');
  await db.sql('INSERT INTO x VALUES (1)');
  const T = 'we"ird; drop table x--';
  const C = 'cöl"; drop table x; --';
  const I = 'we"ird_idx; drop table x--';
  const js = JSON.stringify;
  const dir = writeMigrations({
    'w1.js': rev('w1', null, `upgrade(op) { op.createTable(${js(T)}, (t) => { t.bigIncrements('id'); t.text('größe'); }); }, downgrade(op) { op.dropTable(${js(T)}); }`),
    'w2.js': rev(
      'w2',
      'w1',
      `transactional: false,
       upgrade(op) { op.addColumn(${js(T)}, ${js(C)}, 'text'); op.createIndex(${js(I)}, ${js(T)}, ['größe'], { concurrently: true }); },
       downgrade(op) { op.dropIndex(${js(I)}, { concurrently: true }); op.dropColumn(${js(T)}, ${js(C)}); }`,
    ),
    'w3.js': rev(
      'w3',
      'w2',
      `upgrade(op) {}, downgrade(op) {},
       backfill: { table: ${js(T)}, set: { ${js(C)}: 'upper("größe")' }, where: ${js(`"${C.replace(/"/g, '""')}" IS NULL`)}, batchSize: 10 }`,
    ),
    'w4.js': rev('w4', 'w3', `upgrade(op) { op.renameColumn(${js(T)}, 'größe', 'größe"alt'); }, downgrade(op) { op.renameColumn(${js(T)}, 'größe"alt', 'größe'); }`),
  });
  const weird = () => db.sql<{ t: string | null }>('SELECT to_regclass($1)::text AS t', [`"${T.replace(/"/g, '""')}"`]);
  const canary = async () => expect(await db.sql('SELECT id FROM x')).toEqual([{ id: 1 }]);

  await withWorker(lab, db, dir, async (w) => {
    const run = async (input: Record<string, unknown>) => {
      const handle: MigrateHandle = await w.start(input, uniqueId('migrate-weird'));
      const result = await handle.result();
      await untilState(handle, result.outcome === 'done' ? 'done' : result.outcome);
      return result;
    };
    expect((await run({ target: 'w1' })).outcome).toBe('done');
    await canary();
    await db.sql(`INSERT INTO "${T.replace(/"/g, '""')}" ("größe") SELECT 'g' || g FROM generate_series(1, 25) g`);

    expect((await run({})).outcome).toBe('done');
    await canary();
    const table = `"${T.replace(/"/g, '""')}"`;
    expect((await db.sql<{ column_name: string }>(`SELECT column_name FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position`, [T])).map((r) => r.column_name)).toEqual([
      'id',
      'größe"alt',
      C,
    ]);
    expect(await db.sql(`SELECT i.indisvalid AS valid, pg_get_indexdef(i.indexrelid) AS def FROM pg_index i WHERE i.indexrelid = to_regclass($1)`, [`"${I.replace(/"/g, '""')}"`])).toEqual([
      { valid: true, def: `CREATE INDEX "${I.replace(/"/g, '""')}" ON public."${T.replace(/"/g, '""')}" USING btree ("größe""alt")` },
    ]);
    const wrong = await db.sql(`SELECT count(*)::int AS n FROM ${table} WHERE "${C.replace(/"/g, '""')}" IS DISTINCT FROM upper("größe""alt")`);
    expect(wrong).toEqual([{ n: 0 }]);
    expect(await versionRows(db)).toEqual({ version: ['w4'], pending: [] });

    expect((await run({ direction: 'downgrade', target: 'base' })).outcome).toBe('done');
    await canary();
    expect(await weird()).toEqual([{ t: null }]);
    expect(await versionRows(db)).toEqual({ version: [], pending: [] });
  });
}, 60_000);

test('fault 16: a 2 MB migrate input is refused by the server before the workflow starts; a big one under the limit gets a short InvalidInput', async () => {
  const db = await lab.database();
  await accountsTable(db, 5);
  const dir = writeMigrations({ 'r1.js': goodFirst });
  const before = await snapshot(db);
  await withWorker(lab, db, dir, async (w) => {
    const huge = 'x'.repeat(2_200_000);
    const workflowId = uniqueId('migrate-huge');
    const refused = await w.start({ target: huge }, workflowId).then(
      () => null,
      (err: Error) => err,
    );
    // The server's own words (its blob size limit, 2 MB by default), before any workflow code runs.
    expect(refused).toMatchObject({ name: 'ServiceError', message: 'Failed to start Workflow' });
    expect((refused as { cause?: Error }).cause?.message).toBe('3 INVALID_ARGUMENT: Blob data size exceeds limit.');
    // Nothing was started under that id.
    await expect(lab.env.client.workflow.getHandle(workflowId).describe()).rejects.toMatchObject({ name: 'WorkflowNotFoundError' });

    // Under the limit: refused at once by the input check, and the message stays short (it does not echo a megabyte).
    const big = await w.start({ target: 'y'.repeat(1_000_000) });
    const failure = await failureOf(big);
    expect(failure.type).toBe('InvalidInput');
    expect(failure.text).toContain('"target" is longer than');
    expect(failure.text.length).toBeLessThan(4_000);

    // `phasegate upgrade` says it first, in a sentence, without echoing the blob or starting anything.
    const config = testConfig(labConfig(lab, db, dir, w.taskQueue));
    const cli = await upgrade({ config, database: 'app', target: huge, client: lab.env.client }).then(
      () => null,
      (err: Error) => err,
    );
    expect(cli).toMatchObject({
      type: 'InvalidTarget',
      message: 'the target is 2200000 characters long; give a revision id, head, heads, base, +N, -N or <label>@head (at most 500 characters)',
    });
  });
  expect(await snapshot(db)).toEqual(before);
}, 60_000);

test('fault 16: raw JSON from the UI that is not a migrate input (a string, an array, {"database": 5}) fails with InvalidInput listing the problems', async () => {
  const db = await lab.database();
  await accountsTable(db, 5);
  const dir = writeMigrations({ 'r1.js': goodFirst });
  const before = await snapshot(db);
  // What the UI hands on after parsing the text box (trailing junk it refuses itself).
  const cases: Array<[unknown, string[]]> = [
    ['app', ['the input must be a JSON object like {"database":"default","target":"head"}']],
    [['app'], ['the input must be a JSON object like {"database":"default","target":"head"}']],
    [{ database: 5 }, ['"database" is required: the alias of a database configured on the workers, e.g. {"database":"default"}']],
    [{ database: 'app', direction: 'sideways', junk: true }, ['unknown field(s) "junk"', '"direction" must be "upgrade" or "downgrade"']],
  ];
  await withWorker(lab, db, dir, async (w) => {
    for (const [raw, problems] of cases) {
      const handle = await lab.env.client.workflow.start('migrate', { workflowId: uniqueId('migrate-ui'), taskQueue: w.taskQueue, args: [raw] });
      const failure = await failureOf(handle);
      expect(failure.type).toBe('InvalidInput');
      expect((failure.details as Array<{ problems: string[] }>)[0].problems.sort()).toEqual([...problems].sort());
      expect(failure.text).toContain('Expected e.g. {"database":"default","target":"head","direction":"upgrade"}');
    }
  });
  expect(await snapshot(db)).toEqual(before);
}, 60_000);
