/**
 * Maintenance windows without a server: window specs are refused with what to write instead (in a
 * revision file, in the config, in the plan); the next opening and the inside/outside decision,
 * in UTC, in a DST-free zone (Asia/Tokyo) and across a DST change (Europe/Berlin); the lock level
 * of each op, and which plan steps therefore wait for a window; status and Current Details text.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { StatusResult } from '../../lib/commands/control';
import { formatStatus } from '../../lib/commands/format-status';
import { loadConfig } from '../../lib/config';
import { recordOps, type Op } from '../../lib/ops';
import { needsWindow, strongestLock } from '../../lib/ops/locks';
import { buildPlan } from '../../lib/plan';
import { loadRevisionDirectory } from '../../lib/revision-files';
import { planWindow, windowProblems } from '../../lib/window';
import { currentDetails } from '../../workflows/details';
import type { MigrateStatus } from '../../workflows/messages';
import { inWords, windowAt, windowWaiting } from '../../workflows/window';

const HOUR = 3_600_000;
const iso = (ms: number) => new Date(ms).toISOString();

describe('validation', () => {
  test('a bad cron, duration or time zone is named, with what to write instead', () => {
    const problems = windowProblems({ cron: '0 25 * * *', duration: 'a while', timezone: 'Europe/Berln' });
    expect(problems).toEqual([
      expect.stringMatching(/^timezone "Europe\/Berln" is not a time zone .*write an IANA name like 'Europe\/Berlin'/),
      expect.stringMatching(/^cron "0 25 \* \* \*" is not a valid cron expression .*write e\.g\. '0 2 \* \* SAT'/),
      expect.stringMatching(/^duration "a while" is not a duration; write milliseconds or a string like '2h'/),
    ]);
    expect(windowProblems({ cron: '0 2 * *', duration: '2h' })).toEqual([expect.stringContaining('has 4 field(s); write 5: minute hour day-of-month month day-of-week')]);
    expect(windowProblems({ cron: '0 0 31 2 *', duration: '2h' })).toEqual([expect.stringContaining('never fires')]);
    expect(windowProblems({ cron: '0 2 * * SAT', duration: '10 seconds' })).toEqual([expect.stringContaining("shorter than a minute; write at least '1 minute'")]);
    expect(windowProblems({ cron: '0 2 * * SAT', duration: '2h', tz: 'UTC' })).toEqual([expect.stringContaining('unknown field(s) "tz"')]);
    expect(windowProblems('0 2 * * SAT')).toEqual([expect.stringContaining('must be an object like')]);
    expect(windowProblems({ cron: '0 2 * * SAT', duration: '2h', timezone: 'Europe/Berlin' })).toEqual([]);
    expect(planWindow({ cron: ' 0 2 * * SAT ', duration: '2h' }, 'config')).toEqual({ cron: '0 2 * * SAT', timezone: 'UTC', duration: '2h', durationMs: 2 * HOUR, source: 'config' });
  });

  test('the config refuses a bad databases.<alias>.window at load', () => {
    expect(() => loadConfig({ databases: { app: { url: 'postgres://h/db', window: { cron: '0 2 * * SAT', duration: '2h', timezone: 'Mars/Olympus' } } } }, {})).toThrow(
      /databases\.app\.window: timezone "Mars\/Olympus" is not a time zone/,
    );
    expect(loadConfig({ databases: { app: { url: 'postgres://h/db', window: { cron: '0 2 * * SAT', duration: '2h' } } } }, {}).databases.app.window).toEqual({ cron: '0 2 * * SAT', duration: '2h' });
  });

  test('a revision file with a bad window does not load, naming the file and the field', () => {
    const dir = revisions({ r1: "window: { cron: 'every night', duration: '2h' }," });
    expect(() => loadRevisionDirectory(dir)).toThrow(/r1\.js.*window cron "every night" has 2 field\(s\)/s);
  });
});

describe('openings', () => {
  const berlin = { cron: '0 2 * * SAT', timezone: 'Europe/Berlin', durationMs: 2 * HOUR };

  test('UTC: before, inside (from the opening, inclusive) and after (at the close, exclusive)', () => {
    const daily = { cron: '30 1 * * *', timezone: 'UTC', durationMs: HOUR };
    const opens = Date.UTC(2026, 11, 3, 1, 30);
    expect(windowAt(daily, opens - 1)).toEqual({ open: false, opensAt: opens, closesAt: opens + HOUR });
    expect(windowAt(daily, opens)).toEqual({ open: true, opensAt: opens, closesAt: opens + HOUR });
    expect(windowAt(daily, opens + HOUR - 1)).toEqual({ open: true, opensAt: opens, closesAt: opens + HOUR });
    expect(windowAt(daily, opens + HOUR)).toEqual({ open: false, opensAt: opens + 24 * HOUR, closesAt: opens + 25 * HOUR });
  });

  test('a DST-free zone: Asia/Tokyo is UTC+9 all year', () => {
    const tokyo = { cron: '0 2 * * *', timezone: 'Asia/Tokyo', durationMs: HOUR };
    for (const month of [0, 6]) {
      const at = windowAt(tokyo, Date.UTC(2026, month, 10, 12, 0))!;
      expect(at.open).toBe(false);
      expect(iso(at.opensAt)).toBe(iso(Date.UTC(2026, month, 10, 17, 0))); // 02:00 on the 11th in Tokyo
    }
  });

  test('Europe/Berlin: 02:00 on Saturdays is 01:00 UTC in winter and 00:00 UTC in summer', () => {
    const winter = windowAt(berlin, Date.UTC(2026, 11, 3, 12)); // Thursday 3 December 2026
    expect(winter).toEqual({ open: false, opensAt: Date.UTC(2026, 11, 5, 1), closesAt: Date.UTC(2026, 11, 5, 3) });
    expect(windowAt(berlin, Date.UTC(2026, 11, 5, 2, 59))!.open).toBe(true);
    const summer = windowAt(berlin, Date.UTC(2026, 6, 1, 12)); // Wednesday 1 July 2026
    expect(summer).toEqual({ open: false, opensAt: Date.UTC(2026, 6, 4, 0), closesAt: Date.UTC(2026, 6, 4, 2) });
  });

  test('the waiting text says the cron, the zone and the time left', () => {
    const now = Date.UTC(2026, 11, 4, 21, 48);
    const at = windowAt(berlin, now)!;
    expect(windowWaiting(berlin, at.opensAt, now)).toBe('waiting for window 0 2 * * SAT (Europe/Berlin), opens in 3 h 12 m');
    expect(inWords(2 * 86_400_000 + 5 * HOUR)).toBe('2 d 5 h');
    expect(inWords(65_000)).toBe('1 m 05 s');
  });
});

describe('lock levels', () => {
  const lockOf = async (fn: (op: Op) => void) => strongestLock((await recordOps(fn)).map((o) => o.lock));

  test('each op records the lock it takes', async () => {
    expect(await lockOf((op) => op.addColumn('accounts', 'plan', 'text'))).toBe('ACCESS EXCLUSIVE');
    expect(await lockOf((op) => op.setNotNull('accounts', 'plan'))).toBe('ACCESS EXCLUSIVE');
    expect(await lockOf((op) => op.addCheck('accounts', 'plan_nn', 'plan IS NOT NULL', { notValid: true }))).toBe('ACCESS EXCLUSIVE');
    expect(await lockOf((op) => op.createIndex('i', 'accounts', ['plan']))).toBe('SHARE');
    expect(await lockOf((op) => op.createIndex('i', 'accounts', ['plan'], { concurrently: true }))).toBe('SHARE UPDATE EXCLUSIVE');
    expect(await lockOf((op) => op.dropIndex('i', { concurrently: true }))).toBe('SHARE UPDATE EXCLUSIVE');
    expect(await lockOf((op) => op.dropIndex('i'))).toBe('ACCESS EXCLUSIVE');
    expect(await lockOf((op) => op.validateConstraint('accounts', 'plan_nn'))).toBe('SHARE UPDATE EXCLUSIVE');
    expect(await lockOf((op) => op.addForeignKey('accounts', 'fk', ['org_id'], 'orgs', ['id'], { notValid: true }))).toBe('SHARE ROW EXCLUSIVE');
    expect(await lockOf((op) => op.createTrigger('t', 'accounts', { timing: 'BEFORE', events: ['INSERT'], forEach: 'ROW', function: 'f' }))).toBe('SHARE ROW EXCLUSIVE');
    expect(await lockOf((op) => op.createFunction('f', { returns: 'trigger', language: 'plpgsql', body: 'BEGIN RETURN NEW; END' }))).toBe('none');
    expect(await lockOf((op) => op.createTable('orgs', (t) => t.bigInteger('id').primary()))).toBe('none');
    expect(await lockOf((op) => op.createTable('members', (t) => t.bigInteger('org_id').references('id').inTable('orgs')))).toBe('SHARE ROW EXCLUSIVE');
  });

  test('raw SQL counts as ACCESS EXCLUSIVE unless declared; a bad declaration is refused', async () => {
    expect(await lockOf((op) => op.sql('CREATE INDEX CONCURRENTLY i ON accounts (plan)'))).toBe('ACCESS EXCLUSIVE');
    expect(await lockOf((op) => op.sql('ANALYZE accounts', [], { lock: 'SHARE UPDATE EXCLUSIVE' }))).toBe('SHARE UPDATE EXCLUSIVE');
    await expect(recordOps((op) => op.sql('ANALYZE accounts', [], { lock: 'SHARE UPDATE' as never }))).rejects.toThrow(/lock "SHARE UPDATE" is not a table lock mode; write one of/);
  });

  test('from SHARE up a step needs a window', () => {
    expect(['SHARE UPDATE EXCLUSIVE', 'SHARE', 'SHARE ROW EXCLUSIVE', 'EXCLUSIVE', 'ACCESS EXCLUSIVE'].map((l) => needsWindow(l as never))).toEqual([false, true, true, true, true]);
    // A statement without a level (a plan recorded before lock levels) counts as ACCESS EXCLUSIVE.
    expect(strongestLock([undefined, 'SHARE'])).toBe('ACCESS EXCLUSIVE');
  });
});

describe('plan', () => {
  const nightly = { cron: '0 2 * * *', duration: '2h', timezone: 'Europe/Berlin' };

  test('steps record their strongest lock; only SHARE-or-stronger steps with a window wait; the revision wins, false opts out', async () => {
    const dir = revisions({
      r1: `window: ${JSON.stringify(nightly)},`,
      r2: "transactional: false, window: { cron: '0 3 * * *', duration: '1h' },",
      r3: '',
      r4: 'window: false,',
    });
    const plan = await buildPlan({
      database: 'app',
      revisions: loadRevisionDirectory(dir),
      currentHeads: [],
      target: 'head',
      direction: 'upgrade',
      defaultWindow: { cron: '0 4 * * SUN', duration: '3h' },
    });
    expect(plan.steps.map((s) => [s.revision, s.lock, s.window ?? null])).toEqual([
      ['r1', 'ACCESS EXCLUSIVE', { cron: '0 2 * * *', timezone: 'Europe/Berlin', duration: '2h', durationMs: 2 * HOUR, source: 'revision' }],
      ['r2', 'SHARE UPDATE EXCLUSIVE', null],
      ['r3', 'ACCESS EXCLUSIVE', { cron: '0 4 * * SUN', timezone: 'UTC', duration: '3h', durationMs: 3 * HOUR, source: 'config' }],
      ['r4', 'ACCESS EXCLUSIVE', null],
    ]);
    // A rollback never waits for a window.
    expect(plan.steps[0].rollback?.window).toBeUndefined();
  });

  test('backfill.window takes the revision window (else the config default) and never holds the DDL; without one the plan is refused', async () => {
    const fill = "backfill: { table: 'accounts', set: { c_r1: \"'x'\" }, where: 'c_r1 IS NULL', window: { outside: 'wait' } },";
    const plan = await buildPlan({
      database: 'app',
      revisions: loadRevisionDirectory(revisions({ r1: `transactional: false, window: ${JSON.stringify(nightly)}, ${fill}`, r2: fill })),
      currentHeads: [],
      target: 'head',
      direction: 'upgrade',
      defaultWindow: { cron: '0 4 * * SUN', duration: '3h' },
    });
    expect(plan.steps.map((s) => [s.revision, s.window?.source ?? null, s.backfillWindow?.cron ?? null, s.backfillWindow?.source ?? null])).toEqual([
      // r1 builds its index CONCURRENTLY: the DDL does not wait, the backfill is paced by r1's window.
      ['r1', null, '0 2 * * *', 'revision'],
      ['r2', 'config', '0 4 * * SUN', 'config'],
    ]);
    // No window anywhere, or the revision opts out of the config's: refused, naming the file and what to do.
    await expect(buildPlan({ database: 'app', revisions: loadRevisionDirectory(revisions({ r1: fill })), currentHeads: [], target: 'head', direction: 'upgrade' })).rejects.toThrow(
      /r1\.js: backfill\.window paces the backfill by maintenance window, but no window applies to revision r1; give the revision a window/,
    );
    await expect(
      buildPlan({ database: 'app', revisions: loadRevisionDirectory(revisions({ r1: `window: false, ${fill}` })), currentHeads: [], target: 'head', direction: 'upgrade', defaultWindow: nightly }),
    ).rejects.toThrow(/no window applies to revision r1 \(its `window` opts out of the config's\)/);
  });

  test('a bad backfill.window does not load, naming the field', () => {
    const bad = (w: string) => revisions({ r1: `backfill: { table: 'accounts', set: { c_r1: "'x'" }, window: ${w} },` });
    expect(() => loadRevisionDirectory(bad("{ outside: 'later' }"))).toThrow(/backfill\.window\.outside must be 'run' \(at the backfill's own pace\) or 'wait'/);
    expect(() => loadRevisionDirectory(bad('{}'))).toThrow(/backfill\.window needs maxRowsPerSecond \(the pace inside windows\) or outside: 'wait'/);
    expect(() => loadRevisionDirectory(bad('{ maxRowsPerSecond: -5 }'))).toThrow(/backfill\.window\.maxRowsPerSecond/);
    expect(() => loadRevisionDirectory(bad('{ rate: 5 }'))).toThrow(/backfill\.window.*rate/);
  });

  test('without any window nothing changes: no step waits', async () => {
    const plan = await buildPlan({ database: 'app', revisions: loadRevisionDirectory(revisions({ r1: '' })), currentHeads: [], target: 'head', direction: 'upgrade' });
    expect(plan.steps[0].window).toBeUndefined();
  });
});

describe('status', () => {
  const status = {
    state: 'waiting-for-window',
    database: 'app',
    direction: 'upgrade',
    target: 'head',
    revision: 'r1',
    steps: [{ revision: 'r1', message: 'add plan', state: 'waiting-for-window' }],
    approvals: [],
    ignoredSignals: [],
    backfill: null,
    waiting: 'waiting for window 0 2 * * SAT (Europe/Berlin), opens in 3 h 12 m',
    window: { cron: '0 2 * * SAT', timezone: 'Europe/Berlin', duration: '2h', opensAt: '2026-12-05T01:00:00.000Z', closesAt: '2026-12-05T03:00:00.000Z', revision: 'r1' },
  } as unknown as MigrateStatus;

  test('phasegate status shows the window and the time left, counted from now', () => {
    const text = formatStatus({ workflowId: 'migrate-app', execution: 'RUNNING', status } as StatusResult, Date.UTC(2026, 11, 4, 21, 48));
    expect(text).toContain('migrate-app (running): waiting-for-window at r1');
    expect(text).toContain('waiting: waiting for window 0 2 * * SAT (Europe/Berlin), opens in 3 h 12 m');
    expect(text).toContain('maintenance window 0 2 * * SAT (Europe/Berlin, 2h) for r1: opens at 2026-12-05T01:00:00.000Z (in 3 h 12 m), closes at 2026-12-05T03:00:00.000Z');
    expect(text).toContain('abandon instead: phasegate abandon --database app --by <you>');
  });

  test('a backfill waiting for its window: status and Current Details say when it opens', () => {
    const opensAt = Date.UTC(2026, 11, 5, 1);
    const waiting = {
      ...status,
      state: 'backfilling',
      waiting: null,
      window: null,
      backfill: {
        revision: 'r1',
        table: 'accounts',
        state: 'running',
        rowsDone: 0,
        rowsUpdated: 0,
        estimatedTotal: 1000,
        rowsPerSecond: 0,
        etaSeconds: null,
        paused: false,
        batchSize: 1000,
        delayMs: 0,
        maxRowsPerSecond: 100,
        slices: [],
        warnings: [],
        waiting: 'waiting for window 0 2 * * SAT (Europe/Berlin), opens in 3 h 12 m',
        window: { cron: '0 2 * * SAT', timezone: 'Europe/Berlin', duration: '2h', open: false, opensAt, closesAt: opensAt + 2 * HOUR, insideMaxRowsPerSecond: null, outside: 'wait' },
      },
    } as unknown as MigrateStatus;
    const text = formatStatus({ workflowId: 'migrate-app', execution: 'RUNNING', status: waiting } as StatusResult, Date.UTC(2026, 11, 4, 21, 48));
    expect(text).toContain('  waiting for window 0 2 * * SAT (Europe/Berlin), opens in 3 h 12 m');
    expect(text).toContain('  paced by window 0 2 * * SAT (Europe/Berlin, 2h): closed, opens at 2026-12-05T01:00:00.000Z (in 3 h 12 m); inside: no limit; outside: waits');
    const open = { ...waiting, backfill: { ...waiting.backfill!, waiting: null, window: { ...waiting.backfill!.window!, open: true, outside: 'run', insideMaxRowsPerSecond: 20000 } } } as MigrateStatus;
    expect(formatStatus({ workflowId: 'migrate-app', execution: 'RUNNING', status: open } as StatusResult, opensAt + HOUR)).toContain(
      '  paced by window 0 2 * * SAT (Europe/Berlin, 2h): open until 2026-12-05T03:00:00.000Z; inside: 20000 rows/s; outside: runs at its own pace',
    );
    const details = currentDetails(waiting, { workflowId: 'migrate-app', namespace: 'default' });
    expect(details).toContain('**Waiting for the maintenance window** `0 2 * * SAT` (Europe/Berlin, 2h): the backfill walks rows only inside it; it opens at **2026-12-05T01:00:00.000Z**');
    expect(currentDetails(open, { workflowId: 'migrate-app', namespace: 'default' })).not.toContain('Waiting for the maintenance window');
  });

  test("the UI's Current Details say when the window opens and how to abandon", () => {
    const details = currentDetails(status, { workflowId: 'migrate-app', namespace: 'default' });
    expect(details).toContain('**Waiting for the maintenance window** `0 2 * * SAT` (Europe/Berlin, 2h)');
    expect(details).toContain('it opens at **2026-12-05T01:00:00.000Z**');
    expect(details).toContain('--name abandon');
  });
});

/** One revision file per entry (r1 → r2 → …), each adding a column; `extra` is spliced into the module. */
function revisions(extra: Record<string, string>): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'phasegate-window-'));
  let parent: string | null = null;
  for (const [id, fields] of Object.entries(extra)) {
    const concurrent = fields.includes('transactional: false');
    const upgrade = concurrent ? `op.createIndex('accounts_${id}', 'accounts', ['email'], { concurrently: true })` : `op.addColumn('accounts', 'c_${id}', 'text')`;
    const downgrade = concurrent ? `op.dropIndex('accounts_${id}', { concurrently: true })` : `op.dropColumn('accounts', 'c_${id}')`;
    writeFileSync(
      path.join(dir, `${id}.js`),
      `module.exports = { id: '${id}', parent: ${JSON.stringify(parent)}, message: '${id}', ${fields}
        upgrade(op) { ${upgrade}; }, downgrade(op) { ${downgrade}; } };`,
    );
    parent = id;
  }
  return dir;
}
