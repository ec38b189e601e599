/**
 * The validation of everything `migrate` accepts from outside (workflows/input.ts) and the state
 * rules of its control verbs (workflows/migrate-states.ts): pure functions, no server.
 */
import { gateMismatch, ignoredReason, logEntry } from '../../workflows/gates';
import { migrateInputProblems, payloadProblem } from '../../workflows/input';
import type { MigrateStatus, PendingGate } from '../../workflows/messages';
import { noopReason, stateProblem } from '../../workflows/migrate-states';

test.each([
  [{ database: 'demo' }, []],
  [{ database: 'demo', target: 'head', direction: 'downgrade', autoApprove: true }, []],
  [{ db: 'demo' }, ['"database" is required: the alias of a database configured on the workers, e.g. {"database":"default"}', 'unknown field(s) "db"']],
  ['demo', ['the input must be a JSON object like {"database":"default","target":"head"}']],
  [null, ['the input must be a JSON object like {"database":"default","target":"head"}']],
  [{ database: 'demo', direction: 'down' }, ['"direction" must be "upgrade" or "downgrade"']],
  [{ database: 'demo', direction: 'sideways', autoApprove: 'false' }, ['"direction" must be "upgrade" or "downgrade"', '"autoApprove" must be true or false (a JSON boolean, not a string)']],
  [{ database: 'postgres://u:p@h/db' }, ['"database" must be an alias (letters, digits, _ . -), never a URL']],
  [{ database: 'demo', target: ['head'] }, ['"target" must be a string: a revision id, "head", "heads", "base", "+N", "-N" or "<label>@head"']],
  [{ database: 'demo', target: ' ' }, ['"target" must not be empty']],
  [{ database: 'demo', target: 'x'.repeat(501) }, ['"target" is longer than 500 characters: give a revision id, "head", "heads", "base", "+N", "-N" or "<label>@head"']],
  [{ database: 'demo', continueAsNewAfterEvents: 500, backfillContinueAsNewAfterCalls: 10 }, []],
  [{ database: 'demo', continueAsNewAfterEvents: 5 }, ['"continueAsNewAfterEvents" must be at least 20 (a new run starts with a few events of its own)']],
  [{ database: 'demo', continueAsNewAfterEvents: '500' }, ['"continueAsNewAfterEvents" must be a number of history events']],
  [{ database: 'demo', continueAsNewAfterEvents: 60_000 }, ['"continueAsNewAfterEvents" must be at most 50000 (Temporal caps a history at 51200 events)']],
  [{ database: 'demo', backfillContinueAsNewAfterCalls: 0.5 }, ['"backfillContinueAsNewAfterCalls" must be a whole number']],
])('migrate input %j → %j', (input, problems) => {
  expect(migrateInputProblems(input).problems).toEqual(problems);
});

test.each([
  ['approve', { by: 'alice' }, null],
  ['approve', { by: 'alice', gate: 'deploy', comment: 'v42' }, null],
  ['approve', 'junk', 'approve input "junk" is not valid: expected an object like {"by":"alice"}'],
  ['approve', { by: '' }, 'approve input {"by":""} is not valid: "by" must name who decides (e.g. {"by":"alice"})'],
  ['approve', { by: 'eve\u0000' }, 'approve input {"by":"eve\\u0000"} is not valid: "by" must not contain a NUL (\\u0000) character'],
  ['approve', { by: 'alice', gat: 'deploy' }, 'approve input {"by":"alice","gat":"deploy"} is not valid: unknown field(s) "gat"'],
  ['retry', {}, 'retry input {} is not valid: "by" is missing: say who decides, e.g. {"by":"alice"}'],
  ['rollback', { by: 'bob', pastGates: 'yes' }, 'rollback input {"by":"bob","pastGates":"yes"} is not valid: "pastGates" must be true or false'],
  ['pause', undefined, null],
  ['resume', {}, null],
  ['throttle', { batchSize: -5 }, 'throttle input {"batchSize":-5} is not valid: batchSize must be at least 10'],
  ['throttle', { batchSize: 'lots' }, 'throttle input {"batchSize":"lots"} is not valid: batchSize must be a number'],
  ['throttle', {}, 'throttle input {} is not valid: nothing to change: give batchSize, delayMs or maxRowsPerSecond'],
  ['throttle', { delayMs: 50, maxRowsPerSecond: 0 }, null],
  ['skipSoak', { by: 'alice', comment: 'flat' }, null],
  ['skipSoak', {}, 'skipSoak input {} is not valid: "by" is missing: say who decides, e.g. {"by":"alice"}'],
] as const)('%s payload %j', (verb, payload, problem) => {
  expect(payloadProblem(verb, payload)).toBe(problem);
});

const status = (state: MigrateStatus['state'], extra: Partial<MigrateStatus> = {}) =>
  ({ state, direction: 'upgrade', control: { paused: false, throttle: {}, version: 0 }, ...extra }) as MigrateStatus;

test.each([
  ['retry', 'failed', null],
  ['retry', 'blocked', null],
  ['retry', 'applying', 'retry re-runs a failed or blocked step; the migration is applying'],
  ['rollback', 'failed', null],
  ['rollback', 'awaiting-approval', 'rollback is offered when the migration is failed or blocked; it is awaiting-approval'],
  ['abandon', 'awaiting-approval', null],
  ['abandon', 'backfilling', 'abandon ends a migration that is failed, blocked, soaking or waiting at a gate; it is backfilling (cancel the workflow to stop it safely)'],
  ['abandon', 'soaking', null],
  ['skipSoak', 'soaking', null],
  ['skipSoak', 'awaiting-approval', 'skipSoak ends a soak period; the migration is awaiting-approval, not soaking'],
  ['pause', 'done', 'the migration is done; nothing is left to pause'],
  ['pause', 'awaiting-approval', null],
  ['resume', 'backfilling', null],
] as const)('%s in state %s', (verb, state, problem) => {
  expect(stateProblem(verb, { status: status(state), backfillAhead: true, appliedCount: 1 })).toBe(problem);
});

test('a second pause, or a resume of a running backfill, fits and is answered as a no-op that says so', () => {
  const paused = status('paused', { control: { paused: true, throttle: {}, version: 1 } });
  expect(stateProblem('pause', { status: paused, backfillAhead: true, appliedCount: 1 })).toBeNull();
  expect(noopReason('pause', paused)).toBe('already paused; send resume to continue');
  expect(noopReason('resume', paused)).toBeNull();
  expect(noopReason('resume', status('backfilling'))).toMatch(/^not paused/);
  expect(noopReason('pause', status('backfilling'))).toBeNull();
});

describe('a decision may name the waiting gate by an unambiguous prefix', () => {
  const gate = { name: 'deploy:accounts.org_id', revision: 'r2' } as PendingGate;
  test.each([
    [undefined, [], null],
    ['deploy:accounts.org_id', ['deploy:accounts.org_id', 'deploy:users.email'], null],
    ['deploy', ['deploy:accounts.org_id'], null],
    ['deploy:acc', ['deploy:accounts.org_id', 'deploy:users.email'], null],
    ['deploy', ['deploy:accounts.org_id', 'deploy:users.email'], 'gate "deploy" is ambiguous: it starts the waiting gate "deploy:accounts.org_id" and "deploy:users.email" later in the plan; give the full name'],
    ['contract', ['deploy:accounts.org_id', 'contract'], 'this approve names gate "contract", but the workflow waits at gate "deploy:accounts.org_id"'],
    ['deploy:accounts.org_id_x', [], 'this approve names gate "deploy:accounts.org_id_x", but the workflow waits at gate "deploy:accounts.org_id"'],
  ] as const)('gate %j among %j', (named, gates, reason) => {
    expect(gateMismatch(named, gate, gates, 'approve')).toBe(reason);
    expect(ignoredReason({ decision: 'approve', by: 'alice', ...(named ? { gate: named } : {}) }, gate, gates)).toBe(reason);
  });
  test('an accepted decision is logged with the full gate name; a decision without "by" reads well', () => {
    expect(logEntry({ decision: 'approve', by: 'alice', gate: 'deploy' }, gate, 'now', null).gate).toBe('deploy:accounts.org_id');
    expect(ignoredReason({ decision: 'approve', by: '' }, gate)).toBe('approve needs "by", the person who decides (e.g. {"by":"alice"})');
  });
});

test('rollback of a downgrade, or with nothing applied, is refused with what to do instead', () => {
  expect(stateProblem('rollback', { status: status('failed', { direction: 'downgrade' }), backfillAhead: false, appliedCount: 1 })).toBe(
    'rollback undoes an upgrade; this migration is a downgrade (use retry or abandon)',
  );
  expect(stateProblem('rollback', { status: status('failed'), backfillAhead: false, appliedCount: 0 })).toBe('this run applied nothing to roll back; use retry or abandon');
  expect(stateProblem('throttle', { status: status('applying'), backfillAhead: false, appliedCount: 0 })).toBe('this migration has no backfill to throttle (state applying)');
});
