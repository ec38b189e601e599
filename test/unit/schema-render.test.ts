/**
 * The autogenerate renderer on hand-built change lists: the safe pattern per kind, a gate before
 * every drop, CONCURRENTLY indexes in non-transactional revisions, NOT VALID before VALIDATE, and
 * unsupported changes returned, never dropped.
 */
import type { ColumnModel, SchemaChange } from '../../lib/schema/model';
import { renderChanges } from '../../lib/schema/render';

const accounts = { schema: 'public', name: 'accounts' };
const column = (over: Partial<ColumnModel>): ColumnModel => ({ name: 'c', type: 'integer', nullable: true, default: null, identity: null, generated: null, collation: null, ...over });
const methods = (calls: Array<{ method: string }>) => calls.map((c) => c.method);

describe('renderChanges', () => {
  it('writes the add-not-null-column chain for a NOT NULL column with a default', () => {
    const { drafts } = renderChanges([{ kind: 'addColumn', table: accounts, column: column({ name: 'score', nullable: false, default: '0' }) }]);
    expect(drafts.map((d) => d.phase)).toEqual(['expand', 'enforce', 'validate', 'contract']);
    expect(drafts[1].upgrade[0]).toMatchObject({ method: 'addCheck', args: ['accounts', 'accounts_score_not_null_check', '"score" IS NOT NULL', { notValid: true }] });
  });

  it('builds a new index CONCURRENTLY in a non-transactional revision, expressions included', () => {
    const index = { name: 'accounts_lower_email_idx', unique: false, method: 'btree', shape: '', definition: 'CREATE INDEX accounts_lower_email_idx ON public.accounts USING btree (lower(email))', constraint: null, valid: true };
    const { drafts } = renderChanges([{ kind: 'createIndex', table: accounts, index }]);
    expect(drafts).toHaveLength(1);
    expect(drafts[0].transactional).toBe(false);
    expect(drafts[0].upgrade[0]).toMatchObject({ method: 'createIndex', args: ['accounts_lower_email_idx', 'accounts', { expression: 'lower(email)' }, { concurrently: true }] });
  });

  it('adds a check NOT VALID, then validates it in its own revision', () => {
    const constraint = { name: 'qty_positive', kind: 'check' as const, definition: 'CHECK ((qty > 0))', columns: ['qty'], validated: true };
    const { drafts } = renderChanges([{ kind: 'addConstraint', table: accounts, constraint }]);
    expect(drafts.map((d) => d.phase)).toEqual(['expand', 'validate']);
    expect(String(drafts[0].upgrade[0].args[0])).toContain('CHECK ((qty > 0)) NOT VALID');
    expect(methods(drafts[1].upgrade)).toEqual(['validateConstraint']);
  });

  it('puts every drop behind a gate and an index drop CONCURRENTLY', () => {
    const index = { name: 'accounts_email_idx', unique: false, method: 'btree', shape: '', definition: 'CREATE INDEX accounts_email_idx ON public.accounts USING btree (email)', constraint: null, valid: true };
    const changes: SchemaChange[] = [
      { kind: 'dropIndex', table: accounts, index },
      { kind: 'dropColumn', table: accounts, column: 'email' },
      { kind: 'dropTable', table: { schema: 'public', name: 'old' } },
    ];
    const { drafts } = renderChanges(changes);
    expect(drafts.every((d) => d.gate !== undefined && d.phase === 'contract')).toBe(true);
    expect(drafts[0]).toMatchObject({ transactional: false, upgrade: [{ method: 'dropIndex', args: ['accounts_email_idx', { concurrently: true }] }] });
  });

  it('refuses a type change through the expand/contract chain while an index or constraint uses the column, naming them', () => {
    const table = (indexes: Array<{ name: string; definition: string }>, constraints: Array<{ name: string; definition: string; columns: string[] }>) => ({
      ...accounts,
      columns: [column({ name: 'id', type: 'bigint', nullable: false }), column({ name: 'counter' }), column({ name: 'counter_total' })],
      constraints: constraints.map((c) => ({ ...c, kind: 'check' as const, validated: true })),
      indexes: indexes.map((i) => ({ ...i, unique: false, method: 'btree', shape: '', constraint: null, valid: true })),
    });
    const change: SchemaChange = { kind: 'alterColumnType', table: accounts, column: 'counter', from: 'integer', to: 'bigint', collation: null };
    const used = table([{ name: 'accounts_counter_idx', definition: 'CREATE INDEX accounts_counter_idx ON public.accounts USING btree (counter)' }], [{ name: 'counter_positive', definition: 'CHECK ((counter > 0))', columns: ['counter'] }]);
    const refused = renderChanges([change], { from: { schemas: ['public'], tables: [used], enums: [], notCompared: [] } });
    expect(refused.drafts).toEqual([]);
    expect(refused.notSupported).toEqual([{ object: 'public.accounts.counter', reason: expect.stringContaining('check counter_positive, index accounts_counter_idx use the column') }]);
    // An index on another column whose name only starts the same does not count.
    const other = table([{ name: 'accounts_total_idx', definition: 'CREATE INDEX accounts_total_idx ON public.accounts USING btree (counter_total)' }], []);
    expect(renderChanges([change], { from: { schemas: ['public'], tables: [other], enums: [], notCompared: [] } }).drafts.length).toBeGreaterThan(1);
  });

  it('returns unsupported changes instead of dropping them', () => {
    const { drafts, notSupported } = renderChanges([
      { kind: 'notSupported', object: 'public.mood', reason: 'removing an enum label' },
      { kind: 'addColumn', table: accounts, column: column({ name: 'g', generated: 'id * 2' }) },
    ]);
    expect(drafts).toEqual([]);
    expect(notSupported.map((n) => n.object)).toEqual(['public.mood', 'public.accounts.g']);
  });
});
