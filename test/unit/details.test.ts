/**
 * The "Current Details" Markdown the Temporal UI shows on a migration's page (workflows/details.ts):
 * it must always say what the workflow waits for and give commands that work as printed.
 */
import { staticSummary } from '../../lib/commands/migrate';
import { currentDetails } from '../../workflows/details';
import { initialStatus, type MigrateStatus } from '../../workflows/messages';

function status(extra: Partial<MigrateStatus>): MigrateStatus {
  return {
    ...initialStatus({ database: 'demo' }),
    revision: '0e0794a280a5',
    phase: 'expand',
    steps: [
      { revision: '56e2fcebc0ca', message: 'add accounts.org_id', state: 'applied' },
      { revision: '0e0794a280a5', message: 'backfill accounts.org_id', state: 'pending' },
    ],
    runs: 1,
    ...extra,
  };
}

const gate = {
  name: 'deploy:accounts.org_id',
  revision: '0e0794a280a5',
  prompt: "Deploy the app that writes org_id, then approve: it's backfilled next.",
  onReject: 'rollback' as const,
  approvers: null,
  since: '2026-12-02T04:00:00.000Z',
  remindAt: null,
  expiresAt: null,
  reminded: false,
  heldBy: null,
};

test('at a gate: the gate, its prompt, and the approve/reject commands three ways', () => {
  const md = currentDetails(status({ state: 'awaiting-approval', gate }), { workflowId: 'migrate-demo', namespace: 'default' });
  expect(md).toContain('**Waiting for your approval** at gate `deploy:accounts.org_id` before revision `0e0794a280a5` (backfill accounts.org_id)');
  expect(md).toContain("> Deploy the app that writes org_id, then approve: it's backfilled next.");
  expect(md).toContain('`npm run phasegate -- approve --database demo --by <you>`');
  expect(md).toContain(`\`temporal workflow signal --workflow-id migrate-demo --name approve --input '{"by":"<you>"}'\``);
  expect(md).toContain('**More Actions → Send a Signal**, name `approve`, input `{"by":"<you>"}`');
  expect(md).toContain('`npm run phasegate -- reject --database demo --by <you> --reason "…"`');
  expect(md).toMatch(/step 2 of 2/);
});

test('a workflow started with another id or in another namespace gets commands that address it', () => {
  const md = currentDetails(status({ state: 'awaiting-approval', gate }), { workflowId: 'ui-start-42', namespace: 'prod' });
  expect(md).toContain('`npm run phasegate -- approve --workflow-id ui-start-42 --by <you>`');
  expect(md).toContain('temporal workflow signal --namespace prod --workflow-id ui-start-42 --name approve');
});

test('a quote in a JSON input stays inside the shell word', () => {
  const md = currentDetails(status({ state: 'failed', failure: { kind: 'revision', revision: 'r', message: 'boom', type: 'X', at: 'now', options: ['retry'] } }), {
    workflowId: "it's",
    namespace: 'default',
  });
  expect(md).toContain(`--workflow-id it's --name retry --input '{"by":"<you>"}'`);
  expect(md).toContain('**Failed** at revision `0e0794a280a5`');
  expect(md).toContain('```\nboom\n```');
});

test('backfilling says how to pause; paused says how to resume and how far it got', () => {
  const backfill = { table: 'accounts', rowsDone: 1200 } as MigrateStatus['backfill'];
  const running = currentDetails(status({ state: 'backfilling', backfill }), { workflowId: 'migrate-demo', namespace: 'default' });
  expect(running).toContain('Backfilling `accounts`');
  expect(running).toContain('--name pause --input \'{}\'');
  const paused = currentDetails(status({ state: 'paused', backfill }), { workflowId: 'migrate-demo', namespace: 'default' });
  expect(paused).toContain('**Backfill paused**');
  expect(paused).toContain('after 1200 rows');
  expect(paused).toContain('`npm run phasegate -- resume --database demo`');
});

test('a wait for the database or a lock is shown in any state', () => {
  const md = currentDetails(status({ state: 'applying', waiting: 'waiting for database: ECONNREFUSED (attempt 3)' }), { workflowId: 'migrate-demo', namespace: 'default' });
  expect(md).toContain('Waiting: waiting for database: ECONNREFUSED (attempt 3)');
});

test('the static summary names direction, database and target', () => {
  expect(staticSummary({ database: 'demo' })).toBe('upgrade demo to head');
  expect(staticSummary({ database: 'demo', direction: 'downgrade', target: 'base' })).toBe('downgrade demo to base');
});

test('a cancelled run (UI "Request Cancellation") says what stays and offers no verb', () => {
  const error = 'cancelled: nothing was rolled back; a later upgrade continues from the version table and the backfill checkpoints';
  const md = currentDetails(status({ state: 'cancelled', error }), { workflowId: 'migrate-demo', namespace: 'default' });
  expect(md).toContain(error);
  expect(md).not.toContain('Send a Signal');
});
