/**
 * The backfill lines of `phasegate status` and `status --watch`: ETA paused while paused, the
 * average once done, an ETA counted down from when it was measured, an 80-column watch line with
 * rate and ETA always visible, and a header that is redrawn when running turns paused.
 */
import type { StatusResult } from '../../lib/commands/control';
import { formatEvent } from '../../lib/commands/format';
import { compactCount, etaText, formatBackfillLine, formatStatus, formatWatchLine, liveEtaSeconds, timeLeft, watchHeaderKey } from '../../lib/commands/format-status';
import { currentDetails } from '../../workflows/details';
import { initialStatus, type BackfillProgress, type MigrateStatus } from '../../workflows/messages';

const NOW = Date.UTC(2026, 0, 1, 12, 0, 0);

function progress(over: Partial<BackfillProgress> = {}): BackfillProgress {
  return {
    revision: 'b1',
    table: 'accounts',
    state: 'running',
    rowsDone: 1250,
    rowsUpdated: 1250,
    estimatedTotal: 4000,
    rowsPerSecond: 120,
    etaSeconds: 23,
    slowedBy: null,
    batchSize: 100,
    delayMs: 0,
    maxRowsPerSecond: null,
    slices: [],
    paused: false,
    asOfMs: NOW,
    elapsedSeconds: 10,
    averageRowsPerSecond: 125,
    ...over,
  };
}

const pausedProgress = () => progress({ state: 'paused', paused: true, rowsPerSecond: 0, etaSeconds: null });
const doneProgress = () => progress({ state: 'done', rowsDone: 4000, rowsUpdated: 4000, rowsPerSecond: null, etaSeconds: null, elapsedSeconds: 32, averageRowsPerSecond: 125 });

function statusResult(backfill: BackfillProgress | null, state: MigrateStatus['state'] = 'backfilling'): StatusResult {
  return {
    workflowId: 'migrate-app',
    execution: 'RUNNING',
    status: { state, database: 'app', direction: 'upgrade', target: 'head', revision: 'b1', steps: [], approvals: [], ignoredSignals: [], backfill } as unknown as MigrateStatus,
  };
}

describe('status line', () => {
  test('running: rows, the rate and the ETA', () => {
    expect(formatBackfillLine(progress(), NOW)).toBe('backfill accounts (running): 1250 of ~4000 rows, 120 rows/s, ETA 23 s');
  });

  test('paused: 0 rows/s and ETA paused, whatever rate was last measured', () => {
    expect(formatBackfillLine(pausedProgress(), NOW)).toBe('backfill accounts (paused): 1250 of ~4000 rows, 0 rows/s, ETA paused');
    // An older workflow that still reports its last rate while paused.
    expect(formatBackfillLine(progress({ state: 'paused', rowsPerSecond: 120, etaSeconds: 23 }), NOW)).toContain('0 rows/s, ETA paused');
    // Asked to pause, the current batch still committing.
    expect(formatBackfillLine(progress({ paused: true, rowsPerSecond: 0, etaSeconds: null }), NOW)).toBe('backfill accounts (pausing): 1250 of ~4000 rows, 0 rows/s, ETA paused');
  });

  test('done: the average rate over the active time, no ETA', () => {
    expect(formatBackfillLine(doneProgress(), NOW)).toBe('backfill accounts (done): 4000 rows in 32 s, average 125 rows/s');
    expect(formatStatus(statusResult(doneProgress(), 'done'))).toContain('backfill accounts (done): 4000 rows in 32 s, average 125 rows/s');
  });

  test('not measured yet: ? rather than a number', () => {
    expect(formatBackfillLine(progress({ rowsPerSecond: null, etaSeconds: null }), NOW)).toContain('? rows/s, ETA ?');
  });

  test('formatStatus prints the backfill line', () => {
    expect(formatStatus(statusResult(pausedProgress(), 'paused'))).toContain('backfill accounts (paused): 1250 of ~4000 rows, 0 rows/s, ETA paused');
  });
});

describe('ETA between measurements', () => {
  test('counts down from when the workflow measured it, never below 0', () => {
    const b = progress({ etaSeconds: 23, asOfMs: NOW });
    expect(liveEtaSeconds(b, NOW)).toBe(23);
    expect(liveEtaSeconds(b, NOW + 5000)).toBe(18);
    expect(liveEtaSeconds(b, NOW + 60_000)).toBe(0);
    expect(etaText(b, NOW + 5000)).toBe('18 s');
  });

  test('a paused backfill does not count down', () => {
    expect(etaText(pausedProgress(), NOW + 5000)).toBe('paused');
  });

  test('without asOfMs (an older workflow) the ETA is shown as given', () => {
    expect(liveEtaSeconds(progress({ asOfMs: undefined }), NOW + 5000)).toBe(23);
  });
});

describe('watch line', () => {
  const variants: Array<[string, BackfillProgress]> = [
    ['running', progress()],
    ['paused', pausedProgress()],
    ['pausing', progress({ paused: true, rowsPerSecond: 0, etaSeconds: null })],
    ['done', doneProgress()],
    ['failed', progress({ state: 'failed', rowsPerSecond: null, etaSeconds: null, error: 'boom' })],
    ['unmeasured', progress({ rowsPerSecond: null, etaSeconds: null, estimatedTotal: null })],
    ['huge', progress({ rowsDone: 987_654_321, estimatedTotal: 1_234_567_890, rowsPerSecond: 123_456, etaSeconds: 2_000_000 })],
    ['long table name', progress({ table: 'customer_subscription_invoice_line_items_archive_2025', rowsPerSecond: 99_999, etaSeconds: 5000 })],
    ['slow and long', progress({ table: 'a'.repeat(200), rowsDone: 99_999, estimatedTotal: 99_999_999, rowsPerSecond: 1, etaSeconds: 99_900_000 })],
  ];

  test.each(variants)('%s: fits 80 columns with the rate and the ETA visible', (_name, b) => {
    const line = formatWatchLine(b, { columns: 80, nowMs: NOW });
    expect(line.length).toBeLessThanOrEqual(80);
    expect(line).toMatch(/ (avg )?[\d.?]+[kMG]? rows\/s ETA (paused|done|-|\?|[\d.]+ (s|min|h))$/);
  });

  test.each([40, 60, 100, 120])('fits %i columns too', (columns) => {
    for (const [, b] of variants) {
      const line = formatWatchLine(b, { columns, nowMs: NOW });
      expect(line.length).toBeLessThanOrEqual(columns);
      expect(line).toContain(' rows/s ETA ');
    }
  });

  test('running: state, bar, percentage, rows, rate, ETA', () => {
    expect(formatWatchLine(progress(), { columns: 80, nowMs: NOW })).toMatch(/^accounts running \|█+░+\| 31% 1250\/4000 rows 120 rows\/s ETA 23 s$/);
  });

  test('paused: the bar line says paused, 0 rows/s, ETA paused', () => {
    const line = formatWatchLine(pausedProgress(), { columns: 80, nowMs: NOW });
    expect(line).toMatch(/^accounts paused \|/);
    expect(line).toMatch(/ 0 rows\/s ETA paused$/);
  });

  test('the ETA counts down between two redraws a second apart', () => {
    const b = progress();
    expect(formatWatchLine(b, { nowMs: NOW + 1000 })).toMatch(/ETA 22 s$/);
    expect(formatWatchLine(b, { nowMs: NOW + 2000 })).toMatch(/ETA 21 s$/);
  });

  test('done: the average rate', () => {
    expect(formatWatchLine(doneProgress(), { nowMs: NOW })).toMatch(/100% 4000\/4000 rows avg 125 rows\/s ETA done$/);
  });

  test('compact counts', () => {
    expect([950, 9999, 12_345, 123_456, 4_500_000, 123_456_789, 2_000_000_000].map(compactCount)).toEqual(['950', '9999', '12.3k', '123k', '4.5M', '123M', '2.0G']);
  });
});

describe('watch header', () => {
  test('changes when the backfill goes from running to paused and back, not with every row', () => {
    const running = watchHeaderKey(statusResult(progress()));
    expect(watchHeaderKey(statusResult(progress({ rowsDone: 1300, rowsPerSecond: 130 })))).toBe(running);
    const paused = watchHeaderKey(statusResult(pausedProgress(), 'paused'));
    expect(paused).not.toBe(running);
    // The backfill says paused before the parent does: the header follows the backfill.
    expect(watchHeaderKey(statusResult(pausedProgress(), 'backfilling'))).not.toBe(running);
    expect(watchHeaderKey(statusResult(progress()))).toBe(running);
  });

  test('the redrawn header says paused', () => {
    expect(formatStatus(statusResult(pausedProgress(), 'paused'))).toMatch(/paused/);
  });
});

describe('a downgrade says undone, never applied', () => {
  // The workflow's states are named for an upgrade: a downgrade step is `applying` while it runs,
  // and `already-applied` when a retry finds it done already.
  const downgrading: MigrateStatus = {
    ...initialStatus({ database: 'app', target: '-2', direction: 'downgrade' }),
    state: 'applying',
    revision: 'b1',
    steps: [
      { revision: 'b2', message: 'drop orgs', state: 'already-applied' },
      { revision: 'b1', message: 'drop accounts.plan', state: 'applying' },
    ],
  };

  test('phasegate status: the header and each step', () => {
    const text = formatStatus({ workflowId: 'migrate-app', execution: 'RUNNING', status: downgrading });
    expect(text.split('\n').slice(0, 3)).toEqual([
      'migrate-app (running): undoing at b1 — downgrade app to -2',
      '  already-undone   b2  drop orgs',
      '  undoing          b1  drop accounts.plan',
    ]);
    expect(text).not.toMatch(/appl/);
  });

  test('the progress lines of phasegate downgrade', () => {
    expect(formatEvent({ type: 'step', direction: 'downgrade', step: { revision: 'b2', message: 'drop orgs', state: 'already-applied' } })).toBe('already-undone b2 drop orgs');
    expect(formatEvent({ type: 'step', direction: 'downgrade', step: { revision: 'b1', message: 'drop accounts.plan', state: 'undone', durationMs: 12 } })).toBe('undone b1 drop accounts.plan (12 ms)');
    // An upgrade keeps its words.
    expect(formatEvent({ type: 'step', direction: 'upgrade', step: { revision: 'b1', message: 'add', state: 'already-applied' } })).toBe('already-applied b1 add');
  });

  test("the Temporal UI's Current Details", () => {
    const md = currentDetails(downgrading, { workflowId: 'migrate-app', namespace: 'default' });
    expect(md).toContain('**downgrade app to -2** — undoing, step');
    expect(md).toContain('Undoing revision `b1` (drop accounts.plan).');
    expect(md).not.toMatch(/[Aa]ppl/);
  });
});

describe('soaking', () => {
  const soakStatus = (): StatusResult => {
    const status: MigrateStatus = {
      ...initialStatus({ database: 'app' }),
      state: 'soaking',
      revision: 'r2',
      soak: { revision: 'r1', since: '2026-12-03T10:00:00.000Z', until: '2026-12-04T10:00:00.000Z', next: 'r2', nextGate: 'contract' },
    };
    return { workflowId: 'migrate-app', execution: 'RUNNING', status };
  };

  test('status says until when, what opens then, the time left, and how to end it early', () => {
    const text = formatStatus(soakStatus(), Date.parse('2026-12-04T06:47:30.000Z'));
    expect(text).toContain('soaking after r1 until 2026-12-04T10:00:00.000Z: gate "contract" opens in 3 h 12 m');
    expect(text).toContain('end it early: phasegate skip-soak --database app --by <you>');
  });

  test('the UI details name the soak and the skipSoak signal', () => {
    const details = currentDetails(soakStatus().status, { workflowId: 'migrate-app', namespace: 'default' });
    expect(details).toContain('**Soaking** after `r1`');
    expect(details).toContain('phasegate -- skip-soak --database app --by <you>');
    expect(details).toContain('--name skipSoak');
  });

  test('timeLeft reads as hours and minutes, minutes and seconds, or seconds', () => {
    expect(timeLeft(3 * 3600_000 + 12 * 60_000 + 5000)).toBe('3 h 12 m');
    expect(timeLeft(4 * 60_000 + 5000)).toBe('4 m 05 s');
    expect(timeLeft(12_000)).toBe('12 s');
    expect(timeLeft(-5)).toBe('0 s');
  });
});
