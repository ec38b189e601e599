/**
 * Fault matrix case 6: validating a NOT VALID constraint over rows that break it. VALIDATE fails,
 * changing nothing: the migration stops in `failed` with how many rows fail and which (PostgreSQL
 * itself names at most one), the constraint stays NOT VALID, the version table stays exact; the
 * data is fixed and a person sends `retry`, which validates and finishes. One case each for the
 * add-not-null-column pattern (its CHECK … IS NOT NULL), a hand-written CHECK, and the
 * add-foreign-key pattern.
 */
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { newPattern } from '../../lib/commands';
import { approveSignal, retrySignal, retryUpdate, type MigrateStatus } from '../../workflows/messages';
import { testConfig } from '../helpers';
import { accountsTable, untilState, useFaultLab, versionRows, withWorker, writeMigrations, type LabDatabase, type MigrateHandle } from './harness';

const lab = useFaultLab();

/** The chain a pattern generates, in a fresh migrations folder, as `phasegate new` writes it. */
async function generate(db: LabDatabase, pattern: string, args: string[], options: Record<string, unknown> = {}) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'phasegate-validation-'));
  const config = testConfig({ databases: { app: { url: db.url, migrationsDirectory: dir } } });
  const generated = await newPattern({ config, database: 'app', pattern, args, options });
  return { dir, ids: generated.files.map((f) => f.id) };
}

async function convalidated(db: LabDatabase, constraint: string): Promise<boolean | null> {
  const rows = await db.sql<{ v: boolean }>('SELECT convalidated AS v FROM pg_constraint WHERE conname = $1', [constraint]);
  return rows.length === 0 ? null : rows[0].v;
}

/** Waits for `failed` and checks what every validation failure must say. */
async function expectValidationFailure(handle: MigrateHandle, revision: string): Promise<NonNullable<MigrateStatus['failure']>> {
  const failed = await untilState(handle, 'failed');
  expect(failed.failure).toMatchObject({ kind: 'revision', revision, type: 'SqlError', options: ['retry', 'rollback', 'abandon'] });
  // It waits for a person: the workflow is still running, nothing was rolled back.
  expect((await handle.describe()).status.name).toBe('RUNNING');
  return failed.failure!;
}

test('fault 6: add-not-null-column: VALIDATE of its NOT NULL check over NULL rows fails with the count and keys, stays NOT VALID; fixed + retry finishes', async () => {
  const db = await lab.database();
  await accountsTable(db, 40);
  const { dir, ids } = await generate(db, 'add-not-null-column', ['accounts', 'org_id', 'bigint'], { default: '0' });
  expect(ids).toHaveLength(4); // add (+backfill, check) → enforce (gate) → validate → set NOT NULL
  const [add, enforce, validate, setNotNull] = ids;
  const check = 'accounts_org_id_not_null_check';

  await withWorker(lab, db, dir, async (w) => {
    const handle = await w.start();
    await untilState(handle, 'awaiting-approval');
    expect(await versionRows(db)).toEqual({ version: [add], pending: [] });
    // While the gate waits, the old app version writes NULLs explicitly (the default does not stop it).
    await db.sql('UPDATE accounts SET org_id = NULL WHERE id IN (3, 17, 29)');
    await handle.signal(approveSignal, { by: 'alice' });

    const failure = await expectValidationFailure(handle, validate);
    expect(failure.message).toContain(`check constraint "${check}" of relation "accounts" is violated by some row`);
    expect(failure.message).toContain(`3 rows of public.accounts violate constraint "${check}"; keys: `);
    for (const id of [3, 17, 29]) expect(failure.message).toContain(`(id)=(${id})`);
    // The check is there, catalog-only, and still NOT VALID; the version table names the enforce step.
    expect(await convalidated(db, check)).toBe(false);
    expect(await versionRows(db)).toEqual({ version: [enforce], pending: [] });
    // New NULLs are refused already (NOT VALID checks new and updated rows).
    await expect(db.sql('UPDATE accounts SET org_id = NULL WHERE id = 1')).rejects.toThrow(/violates check constraint/);

    await db.sql('UPDATE accounts SET org_id = 0 WHERE org_id IS NULL');
    await handle.signal(retrySignal, { by: 'alice' });
    expect(await handle.result()).toMatchObject({ outcome: 'done' });
  });
  expect(await versionRows(db)).toEqual({ version: [setNotNull], pending: [] });
  const [column] = await db.sql<{ attnotnull: boolean }>(`SELECT attnotnull FROM pg_attribute WHERE attrelid = 'accounts'::regclass AND attname = 'org_id'`);
  expect(column.attnotnull).toBe(true);
  // The validated check proved NOT NULL and went: no constraint of that name is left.
  expect(await convalidated(db, check)).toBeNull();
});

test('fault 6: a CHECK added NOT VALID: VALIDATE over bad rows fails with the count and sample keys (capped sample), stays NOT VALID; fixed + retry (Update) validates', async () => {
  const db = await lab.database();
  await accountsTable(db, 60);
  // 12 bad rows: more than the 10 keys shown, so the count is counted separately.
  const bad = [2, 5, 8, 11, 14, 20, 26, 31, 37, 44, 50, 57];
  await db.sql(`UPDATE accounts SET email = 'nobody' WHERE id = ANY($1::bigint[])`, [bad]);
  const rev = (id: string, parent: string | null, body: string) =>
    `module.exports = { id: '${id}', parent: ${parent ? `'${parent}'` : 'null'}, message: '${id}', ${body} };`;
  const dir = writeMigrations({
    'c001.js': rev(
      'c001',
      null,
      `upgrade(op) { op.addCheck('accounts', 'accounts_email_at', "email LIKE '%@%'", { notValid: true }); }, downgrade(op) { op.dropConstraint('accounts', 'accounts_email_at'); }`,
    ),
    'c002.js': rev('c002', 'c001', `upgrade(op) { op.validateConstraint('accounts', 'accounts_email_at'); }, downgrade() {}`),
  });

  await withWorker(lab, db, dir, async (w) => {
    const handle = await w.start();
    const failure = await expectValidationFailure(handle, 'c002');
    expect(failure.message).toContain('12 rows of public.accounts violate constraint "accounts_email_at"; first 10 keys: ');
    const keys = [...failure.message.matchAll(/\(id\)=\((\d+)\)/g)].map((m) => Number(m[1]));
    expect(keys).toHaveLength(10);
    for (const k of keys) expect(bad).toContain(k);
    expect(await convalidated(db, 'accounts_email_at')).toBe(false);
    expect(await versionRows(db)).toEqual({ version: ['c001'], pending: [] });

    // Retry before the data is fixed: the same failure again, nothing moves.
    await handle.executeUpdate(retryUpdate, { args: [{ by: 'alice' }] });
    const again = await untilState(handle, 'failed');
    expect(again.failure!.message).toContain('12 rows of public.accounts violate');
    expect(again.failure!.at).not.toBe(failure.at);

    await db.sql(`UPDATE accounts SET email = 'u' || id || '@fixed.example' WHERE email NOT LIKE '%@%'`);
    const answer = await handle.executeUpdate(retryUpdate, { args: [{ by: 'alice' }] });
    expect(answer).toMatchObject({ accepted: true, verb: 'retry' });
    expect(await handle.result()).toMatchObject({ outcome: 'done', applied: ['c001', 'c002'] });
  });
  expect(await convalidated(db, 'accounts_email_at')).toBe(true);
  expect(await versionRows(db)).toEqual({ version: ['c002'], pending: [] });
});

test('fault 6: add-foreign-key: VALIDATE over orphan rows fails with the count and keys, stays NOT VALID; orphans fixed + retry validates', async () => {
  const db = await lab.database();
  await accountsTable(db, 20);
  await db.sql('CREATE TABLE orders (id bigint PRIMARY KEY, account_id bigint)');
  // Orders 4 and 9 point at accounts that do not exist; order 6 has no account (NULL passes a foreign key).
  await db.sql(`INSERT INTO orders SELECT g, CASE g WHEN 4 THEN 1004 WHEN 9 THEN 1009 WHEN 6 THEN NULL ELSE g END FROM generate_series(1, 12) g`);
  const { dir, ids } = await generate(db, 'add-foreign-key', ['orders', 'account_id', 'accounts']);
  expect(ids).toHaveLength(2);
  const [add, validate] = ids;
  const fk = 'orders_account_id_fkey';

  await withWorker(lab, db, dir, async (w) => {
    const handle = await w.start();
    const failure = await expectValidationFailure(handle, validate);
    expect(failure.message).toMatch(/Key \(account_id\)=\(100[49]\) is not present in table "accounts"/);
    expect(failure.message).toContain(`2 rows of public.orders violate constraint "${fk}"; keys: `);
    expect(failure.message).toContain('(id)=(4)');
    expect(failure.message).toContain('(id)=(9)');
    expect(failure.message).not.toContain('(id)=(6)');
    expect(await convalidated(db, fk)).toBe(false);
    expect(await versionRows(db)).toEqual({ version: [add], pending: [] });

    await db.sql('INSERT INTO accounts VALUES (1004, $1), (1009, $2)', ['a1004@example.com', 'a1009@example.com']);
    await handle.signal(retrySignal, { by: 'alice' });
    expect(await handle.result()).toMatchObject({ outcome: 'done', applied: [add, validate] });
  });
  expect(await convalidated(db, fk)).toBe(true);
  expect(await versionRows(db)).toEqual({ version: [validate], pending: [] });
});
