import type { RevisionModule } from '../../lib/revision';

/**
 * Adds accounts.org_id as a nullable column: a catalog-only change (ACCESS EXCLUSIVE, held for
 * milliseconds under lock_timeout), no table rewrite.
 */
const revision: RevisionModule = {
  id: '3f1c2a9b7d10',
  parent: null,
  message: 'add accounts.org_id (nullable)',
  phase: 'expand',
  upgrade(op) {
    op.addColumn('accounts', 'org_id', 'bigint');
  },
  downgrade(op) {
    op.dropColumn('accounts', 'org_id');
  },
};

export default revision;
