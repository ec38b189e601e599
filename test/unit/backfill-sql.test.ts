/**
 * The backfill's SQL, asserted as text (no database): keyset batches for single and composite
 * keys, identifier quoting, parameters in order; spec normalisation; key choice; pacing arithmetic.
 * test/integration/backfill-activity.test.ts runs the same statements against PostgreSQL.
 */
import {
  batchStatements,
  checkpointStatement,
  chooseBackfillKey,
  integerBoundariesStatement,
  nextBatchSize,
  normalizeBackfillSpec,
  rateLimitDelayMs,
  requestStopStatement,
  sampledBoundariesStatement,
  slicesFromBoundaries,
  type BackfillPacing,
  type KeyCandidate,
} from '../../lib/backfill';

describe('batchStatements', () => {
  const accounts = { table: 'accounts', key: ['id'], set: [['org_id', 'id % 10']] as Array<[string, string]>, where: 'org_id IS NULL' };

  it('single integer key from the first row: finds the end limit rows ahead, or the last key', () => {
    const sql = batchStatements({ ...accounts, lower: null, upper: null, limit: 500 });
    expect(sql.findEnd).toEqual({
      sql: `(SELECT ARRAY["id"::text] AS end_key, true AS is_full FROM "accounts" ORDER BY "id" OFFSET $1::bigint - 1 LIMIT 1)
UNION ALL
(SELECT ARRAY["id"::text], false FROM "accounts" ORDER BY "id" DESC LIMIT 1)
LIMIT 1`,
      params: [500],
    });
    expect(sql.update(['500'])).toEqual({ sql: `UPDATE "accounts" SET "org_id" = (id % 10)\nWHERE "id" <= $1\n  AND (org_id IS NULL)`, params: ['500'] });
    expect(sql.count(['420'])).toEqual({ sql: `SELECT count(*)::float8 AS n FROM "accounts" WHERE "id" <= $1`, params: ['420'] });
  });

  it('resumes after the last key (exclusive) and stops before the slice end', () => {
    const sql = batchStatements({ ...accounts, where: null, lower: { values: ['41'], inclusive: false }, upper: ['100'], limit: 10 });
    expect(sql.findEnd.sql).toContain(`FROM "accounts" WHERE "id" > $1 AND "id" < $2 ORDER BY "id" OFFSET $3::bigint - 1 LIMIT 1)`);
    expect(sql.findEnd.sql).toContain(`FROM "accounts" WHERE "id" > $1 AND "id" < $2 ORDER BY "id" DESC LIMIT 1)`);
    expect(sql.findEnd.params).toEqual(['41', '100', 10]);
    // The UPDATE covers exactly (last key, end of this batch]; without `where` nothing else filters it.
    expect(sql.update(['51'])).toEqual({ sql: `UPDATE "accounts" SET "org_id" = (id % 10)\nWHERE "id" > $1\n  AND "id" <= $2`, params: ['41', '51'] });
  });

  it('starts a slice at its first key inclusively', () => {
    const sql = batchStatements({ ...accounts, lower: { values: ['50'], inclusive: true }, upper: null, limit: 10 });
    expect(sql.findEnd.sql).toContain(`WHERE "id" >= $1 ORDER BY "id" OFFSET $2::bigint - 1`);
    expect(sql.update(['59']).sql).toContain(`WHERE "id" >= $1\n  AND "id" <= $2`);
  });

  it('composite keys compare as rows, in key order, and come back as text', () => {
    const sql = batchStatements({
      table: 'app.line_items',
      key: ['order_id', 'line_no'],
      set: [['total', 'qty * price'], ['currency', `'EUR'`]],
      where: 'total IS NULL',
      lower: { values: ['7', '3'], inclusive: false },
      upper: ['9', '1'],
      limit: 100,
    });
    expect(sql.findEnd.sql).toBe(`(SELECT ARRAY["order_id"::text, "line_no"::text] AS end_key, true AS is_full FROM "app"."line_items" WHERE ("order_id", "line_no") > ($1, $2) AND ("order_id", "line_no") < ($3, $4) ORDER BY "order_id", "line_no" OFFSET $5::bigint - 1 LIMIT 1)
UNION ALL
(SELECT ARRAY["order_id"::text, "line_no"::text], false FROM "app"."line_items" WHERE ("order_id", "line_no") > ($1, $2) AND ("order_id", "line_no") < ($3, $4) ORDER BY "order_id" DESC, "line_no" DESC LIMIT 1)
LIMIT 1`);
    expect(sql.findEnd.params).toEqual(['7', '3', '9', '1', 100]);
    expect(sql.update(['8', '12'])).toEqual({
      sql: `UPDATE "app"."line_items" SET "total" = (qty * price), "currency" = ('EUR')\nWHERE ("order_id", "line_no") > ($1, $2)\n  AND ("order_id", "line_no") <= ($3, $4)\n  AND (total IS NULL)`,
      params: ['7', '3', '8', '12'],
    });
  });

  it('quotes hostile identifiers and never inlines key values', () => {
    const sql = batchStatements({
      table: 'we"ird.Ta ble',
      key: ['i"d'],
      set: [['Col"1', '2']],
      where: null,
      lower: { values: [`'); DROP TABLE x; --`], inclusive: false },
      upper: null,
      limit: 5,
    });
    expect(sql.findEnd.sql).toContain(`FROM "we""ird"."Ta ble" WHERE "i""d" > $1`);
    expect(sql.findEnd.sql).not.toContain('DROP TABLE');
    expect(sql.findEnd.params?.[0]).toBe(`'); DROP TABLE x; --`);
    expect(sql.update(['x']).sql).toBe(`UPDATE "we""ird"."Ta ble" SET "Col""1" = (2)\nWHERE "i""d" > $1\n  AND "i""d" <= $2`);
  });

  it('moves the checkpoint in the same transaction and reads back the stop epoch', () => {
    expect(checkpointStatement('ops"x', { backfillId: 'b1', slice: 2, lastKey: ['9'], scanned: 100, updated: 97, done: false })).toEqual({
      sql: `UPDATE "ops""x"."phasegate_backfill_progress" SET
  last_key = COALESCE($3::text[], last_key), rows_done = rows_done + $4, rows_updated = rows_updated + $5, done = $6, updated_at = now()
WHERE backfill_id = $1 AND slice = $2
RETURNING last_key, rows_done::float8 AS rows_done, rows_updated::float8 AS rows_updated, done, stop_epoch`,
      params: ['b1', 2, ['9'], 100, 97, false],
    });
  });
});

describe('slice boundaries', () => {
  it('integer keys: equal ranges between min and max in numeric', () => {
    const st = integerBoundariesStatement('accounts', 'id', 4);
    expect(st.sql).toContain('SELECT min("id")::numeric AS lo, max("id")::numeric AS hi FROM "accounts"');
    expect(st.sql).toContain('generate_series(1, $1::int - 1)');
    expect(st.params).toEqual([4]);
  });

  it('other keys: first key of each tile of a block sample', () => {
    const st = sampledBoundariesStatement('app.users', ['tenant', 'id'], 3);
    expect(st.sql).toContain('ntile($1::int) OVER (ORDER BY "tenant", "id")');
    expect(st.sql).toContain('FROM "app"."users" TABLESAMPLE SYSTEM');
    expect(st.params).toEqual([3, '"app"."users"']);
  });

  it('boundaries become contiguous half-open ranges', () => {
    expect(slicesFromBoundaries([])).toEqual([{ from: null, to: null }]);
    expect(slicesFromBoundaries([['10'], ['20']])).toEqual([
      { from: null, to: ['10'] },
      { from: ['10'], to: ['20'] },
      { from: ['20'], to: null },
    ]);
  });

  it('a stop request only ever raises the epoch', () => {
    expect(requestStopStatement('public', 'b1', 3)).toEqual({
      sql: 'UPDATE "public"."phasegate_backfill_progress" SET stop_epoch = $2 WHERE backfill_id = $1 AND stop_epoch < $2',
      params: ['b1', 3],
    });
  });
});

describe('normalizeBackfillSpec', () => {
  it('fills defaults and keeps set in declaration order', () => {
    const { spec, warnings } = normalizeBackfillSpec({ table: 'accounts', set: { org_id: '1', plan: `'free'` }, where: 'org_id IS NULL' }, { batchSize: 500 });
    expect(spec).toEqual({
      table: 'accounts',
      key: null,
      set: [['org_id', '1'], ['plan', `'free'`]],
      where: 'org_id IS NULL',
      parallelism: 1,
      pacing: { batchSize: 500, maxBatchSize: 100_000, delayMs: 0, maxRowsPerSecond: null, targetBatchMs: 100 },
    });
    expect(warnings).toEqual([]);
  });

  it('warns when there is no where', () => {
    const { warnings } = normalizeBackfillSpec({ table: 'accounts', set: { org_id: '1' } });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/no `where`.*re-run is a no-op/);
  });

  it.each([
    [{ table: '', set: { a: '1' } }, /backfill.table/],
    [{ table: 't', set: {} }, /backfill.set needs at least one column/],
    [{ table: 't', key: [], set: { a: '1' } }, /backfill.key/],
    [{ table: 't', key: 'id', set: { id: 'id + 1' } }, /must not change key column/],
    [{ table: 't', set: { a: '1' }, batchSize: 0 }, /batchSize must be a whole number/],
    [{ table: 't', set: { a: '1' }, parallelism: 65 }, /parallelism must be a whole number from 1 to 64/],
    [{ table: 't', set: { a: '1' }, maxRowsPerSecond: -1 }, /maxRowsPerSecond must be a positive number/],
  ])('rejects %j', (spec, message) => {
    expect(() => normalizeBackfillSpec(spec as never)).toThrow(message);
  });
});

describe('chooseBackfillKey', () => {
  const pk: KeyCandidate = { index_name: 'accounts_pkey', is_primary: true, columns: ['id'], types: ['bigint'], not_null: true };
  const email: KeyCandidate = { index_name: 'accounts_email_key', is_primary: false, columns: ['email'], types: ['text'], not_null: true };

  it('prefers the primary key', () => {
    expect(chooseBackfillKey('accounts', null, [pk, email])).toEqual({ columns: ['id'], kinds: ['integer'], source: 'primary key accounts_pkey (id)' });
  });

  it('falls back to a unique NOT NULL index', () => {
    expect(chooseBackfillKey('accounts', null, [{ ...email, columns: ['nick'], not_null: false }, email]).columns).toEqual(['email']);
  });

  it('accepts named columns covered by a unique index in that order', () => {
    const composite: KeyCandidate = { index_name: 'li_pkey', is_primary: true, columns: ['order_id', 'line_no'], types: ['uuid', 'integer'], not_null: true };
    expect(chooseBackfillKey('li', ['order_id', 'line_no'], [composite]).kinds).toEqual(['uuid', 'integer']);
    expect(() => chooseBackfillKey('li', ['line_no', 'order_id'], [composite])).toThrow(/not covered by a primary key or a valid unique index/);
  });

  it('explains a table with no usable key', () => {
    expect(() => chooseBackfillKey('events', null, [])).toThrow(/no primary key and no unique index on NOT NULL columns/);
    expect(() => chooseBackfillKey('events', null, [{ ...email, not_null: false }])).toThrow(expect.objectContaining({ type: 'BackfillKeyMissing' }));
  });

  it('refuses key types it cannot walk exactly', () => {
    expect(() => chooseBackfillKey('t', null, [{ ...pk, types: ['timestamp with time zone'] }])).toThrow(
      expect.objectContaining({ type: 'BackfillKeyUnsupported' }),
    );
  });
});

describe('pacing', () => {
  const pacing: BackfillPacing = { batchSize: 1000, maxBatchSize: 100_000, delayMs: 0, maxRowsPerSecond: null, targetBatchMs: 200 };

  it('moves the batch size toward the target duration, at most ×4 up or ÷2 down per batch', () => {
    expect(nextBatchSize(1000, 1000, 100, pacing)).toBe(2000);
    expect(nextBatchSize(1000, 1000, 10, pacing)).toBe(4000);
    expect(nextBatchSize(1000, 1000, 250, pacing)).toBe(800);
    expect(nextBatchSize(1000, 1000, 5000, pacing)).toBe(500);
    expect(nextBatchSize(80_000, 80_000, 50, pacing)).toBe(100_000);
  });

  it('ignores a short final batch and honours a fixed size', () => {
    expect(nextBatchSize(1000, 10, 1, pacing)).toBe(1000);
    expect(nextBatchSize(1000, 1000, 1, { ...pacing, targetBatchMs: 0 })).toBe(1000);
    // After contention held it lower, a fixed size comes back to the configured one.
    expect(nextBatchSize(250, 250, 1, { ...pacing, targetBatchMs: 0 })).toBe(1000);
  });

  it('waits long enough to stay under maxRowsPerSecond', () => {
    expect(rateLimitDelayMs(500, 100, 1000)).toBe(400);
    expect(rateLimitDelayMs(500, 600, 1000)).toBe(0);
    expect(rateLimitDelayMs(500, 100, null)).toBe(0);
  });
});
