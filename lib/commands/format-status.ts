/**
 * `phasegate status` as text: state, current revision, the pending gate and how to answer it,
 * lock waits, a failed check's numbers, backfill progress, and the decision log.
 */
import type { BackfillProgress, MigrateState, StepStatus } from '../../workflows/messages';
import type { Direction } from '../plan';
import type { StatusResult } from './control';

/**
 * A step's or migration's state as text. The workflow names a downgrade step's work `applying`
 * (and a retry that finds it done `already-applied`), as for an upgrade; a DBA reading the
 * progress of a downgrade must see it undone, never applied.
 */
export function stateText(state: StepStatus['state'] | MigrateState, direction: Direction | undefined): string {
  if (direction !== 'downgrade') return state;
  switch (state) {
    case 'applying':
      return 'undoing';
    case 'applied':
      return 'undone';
    case 'already-applied':
      return 'already-undone';
    default:
      return state;
  }
}

const seconds = (s: number | null) => (s === null ? '?' : s < 90 ? `${Math.round(s)} s` : s < 5400 ? `${Math.round(s / 60)} min` : `${(s / 3600).toFixed(1)} h`);

/** 950, 12.3k, 4.5M: counts that keep the watch line short. */
export function compactCount(n: number): string {
  const a = Math.abs(n);
  if (a < 10_000) return String(Math.round(n));
  if (a < 1e6) return `${(n / 1e3).toFixed(a < 1e5 ? 1 : 0)}k`;
  if (a < 1e9) return `${(n / 1e6).toFixed(a < 1e8 ? 1 : 0)}M`;
  return `${(n / 1e9).toFixed(1)}G`;
}

/** running, pausing (a pause asked for, the current batch still committing), paused, done, failed. */
export function backfillState(b: BackfillProgress): 'running' | 'pausing' | 'paused' | 'done' | 'failed' {
  if (b.state === 'running' && b.paused) return 'pausing';
  return b.state;
}

/**
 * Seconds left, as of `nowMs`. The workflow measures rowsDone and the rate when a slice call
 * returns (every few seconds) and a query answers with those figures; a reader with a real clock
 * counts the ETA down from when they were measured (`asOfMs`), never below 0.
 */
export function liveEtaSeconds(b: BackfillProgress, nowMs: number = Date.now()): number | null {
  if (b.etaSeconds === null || b.etaSeconds === undefined) return null;
  if (b.state !== 'running' || b.paused || !b.asOfMs) return b.etaSeconds;
  const since = Math.max(0, (nowMs - b.asOfMs) / 1000);
  return Math.max(0, b.etaSeconds - since);
}

/** `ETA …` text: paused while paused (or pausing), done, or the live estimate (`?` until measured). */
export function etaText(b: BackfillProgress, nowMs: number = Date.now()): string {
  const state = backfillState(b);
  if (state === 'paused' || state === 'pausing') return 'paused';
  if (state === 'done') return 'done';
  if (state === 'failed') return '-';
  return seconds(liveEtaSeconds(b, nowMs));
}

const rateText = (b: BackfillProgress): string => {
  if (b.paused || b.state === 'paused') return '0';
  return b.rowsPerSecond === null || b.rowsPerSecond === undefined ? '?' : String(Math.round(b.rowsPerSecond));
};

/** The `backfill …` line of `phasegate status`. */
export function formatBackfillLine(b: BackfillProgress, nowMs: number = Date.now()): string {
  const total = b.estimatedTotal ? ` of ~${b.estimatedTotal}` : '';
  const state = backfillState(b);
  const average = b.averageRowsPerSecond === null || b.averageRowsPerSecond === undefined ? '?' : String(Math.round(b.averageRowsPerSecond));
  const elapsed = b.elapsedSeconds === undefined ? '' : ` in ${seconds(b.elapsedSeconds)}`;
  if (state === 'done') return `backfill ${b.table} (done): ${b.rowsDone} rows${elapsed}, average ${average} rows/s`;
  if (state === 'failed') return `backfill ${b.table} (failed): ${b.rowsDone}${total} rows${elapsed}, average ${average} rows/s`;
  return `backfill ${b.table} (${state}): ${b.rowsDone}${total} rows, ${rateText(b)} rows/s, ETA ${etaText(b, nowMs)}` + (b.slowedBy && !b.paused ? `; slowed by ${b.slowedBy}` : '');
}

/**
 * The progress-bar line of `phasegate status --watch`, at most `columns` wide (80 by default):
 * state, bar, percentage, rows, rate and ETA always fit; the table name and the bar give way.
 *   items running |██████░░░░░░░░░░░░░░| 31% 1250/4000 rows 120 rows/s ETA 23 s
 */
export function formatWatchLine(b: BackfillProgress, options: { columns?: number; nowMs?: number } = {}): string {
  const columns = Math.max(20, options.columns ?? 80);
  const state = backfillState(b);
  const total = Math.max(b.estimatedTotal ?? 0, b.rowsDone);
  const fraction = total > 0 ? Math.min(1, b.rowsDone / total) : state === 'done' ? 1 : 0;
  const percent = `${Math.floor(fraction * 100)}%`;
  const rows = `${compactCount(b.rowsDone)}/${b.estimatedTotal === null ? '?' : compactCount(total)} rows`;
  const rate =
    state === 'done' || state === 'failed'
      ? `avg ${b.averageRowsPerSecond === null || b.averageRowsPerSecond === undefined ? '?' : compactCount(b.averageRowsPerSecond)} rows/s`
      : `${rateText(b) === '?' ? '?' : compactCount(Number(rateText(b)))} rows/s`;
  const eta = `ETA ${etaText(b, options.nowMs ?? Date.now())}`;
  const tail = ` ${percent} ${rows} ${rate} ${eta}`;
  // Table name gets what the bar (10 to 30 cells) leaves; a long name is cut with an ellipsis.
  const fixed = ` ${state} ||`.length + tail.length;
  const nameRoom = columns - fixed - 10;
  if (nameRoom >= 4) {
    const name = b.table.length <= nameRoom ? b.table : `${b.table.slice(0, nameRoom - 1)}…`;
    const barWidth = Math.min(30, columns - fixed - name.length);
    const filled = Math.round(fraction * barWidth);
    return `${name} ${state} |${'█'.repeat(filled)}${'░'.repeat(barWidth - filled)}|${tail}`;
  }
  // A narrow terminal: the name and the bar give way first, then the row counts; rate and ETA stay.
  const narrow = [`${state}${tail}`, `${state} ${percent} ${rate} ${eta}`, `${percent} ${rate} ${eta}`];
  return narrow.find((line) => line.length <= columns) ?? narrow[narrow.length - 1].slice(0, columns);
}

/** What the watch header shows: when it changes (running ↔ paused, a new revision), the header is redrawn. */
export function watchHeaderKey({ execution, status }: StatusResult): string {
  const b = status.backfill;
  return [execution, status.state, status.revision ?? '', b ? `${b.revision}:${backfillState(b)}` : ''].join('|');
}

/** A time left, as status says it: "3 h 12 m", "4 m 05 s", "12 s". */
export function timeLeft(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s >= 3600) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} m`;
  if (s >= 60) return `${Math.floor(s / 60)} m ${String(s % 60).padStart(2, '0')} s`;
  return `${s} s`;
}

export function formatStatus({ workflowId, execution, status }: StatusResult, now = Date.now()): string {
  const lines = [
    `${workflowId} (${execution.toLowerCase()}): ${stateText(status.state, status.direction)}` +
      (status.revision ? ` at ${status.revision}${status.phase ? ` [${status.phase}]` : ''}` : '') +
      ` — ${status.direction} ${status.database} to ${status.target}`,
  ];
  for (const step of status.steps) {
    lines.push(`  ${stateText(step.state, status.direction).padEnd(16)} ${step.revision}  ${step.message}${step.attempts && step.attempts > 1 ? ` (attempt ${step.attempts})` : ''}`);
  }
  if (status.waiting) lines.push(`waiting: ${status.waiting}`);
  if (status.soak) {
    const s = status.soak;
    const opens = s.nextGate ? `gate "${s.nextGate}" opens` : `${s.next} starts`;
    lines.push(`soaking after ${s.revision} until ${s.until}: ${opens} in ${timeLeft(Date.parse(s.until) - now)}`);
    lines.push(`  end it early: phasegate skip-soak --database ${status.database} --by <you> [--comment …]`);
  }
  if (status.window) {
    const w = status.window;
    lines.push(`maintenance window ${w.cron} (${w.timezone}, ${w.duration}) for ${w.revision}: opens at ${w.opensAt} (in ${timeLeft(Date.parse(w.opensAt) - now)}), closes at ${w.closesAt}`);
    lines.push(`  abandon instead: phasegate abandon --database ${status.database} --by <you> [--reason …]`);
  }
  if (status.gate) {
    const g = status.gate;
    lines.push(`gate "${g.name}" before ${g.revision}: ${g.prompt}`);
    if (g.heldBy) lines.push(`  on hold: rejected by ${g.heldBy.by}${g.heldBy.reason ? ` (${g.heldBy.reason})` : ''}; an approval still opens it`);
    if (g.approvers) lines.push(`  approvers: ${g.approvers.join(', ')}`);
    if (g.expiresAt) lines.push(`  expires at ${g.expiresAt} (then ${g.onReject === 'hold' ? 'held' : 'rolled back'})`);
    lines.push(`  approve: phasegate approve --database ${status.database} --by <you> [--comment …]`);
    lines.push(`       or: temporal workflow signal --workflow-id ${workflowId} --name approve --input '{"by":"<you>"}'`);
  }
  if (status.failure) {
    const f = status.failure;
    lines.push(`${status.state} (${f.kind}${f.type ? `, ${f.type}` : ''}) at ${f.revision} since ${f.at}: ${f.message}`);
    lines.push('  nothing was rolled back; the migration waits for one of:');
    for (const option of f.options) {
      const extra = option === 'rollback' ? ' [--past-gates]' : '';
      lines.push(`    phasegate ${option} --workflow-id ${workflowId} --by <you>${extra}`);
    }
  }
  if (status.rollback) {
    const r = status.rollback;
    lines.push(`rollback${r.by ? ` by ${r.by}` : ''}: ${r.reason}; undid ${r.undone.join(', ') || 'nothing'}`);
    for (const k of r.kept) lines.push(`  kept ${k.revision}: ${k.reason}`);
  }
  if (status.backfill) {
    const b = status.backfill;
    lines.push(formatBackfillLine(b));
    if (b.waiting) lines.push(`  ${b.waiting}`);
    if (b.window) lines.push(`  ${backfillWindowLine(b.window, now)}`);
  }
  for (const a of status.approvals) {
    lines.push(`  ${a.at} ${a.decision} by ${a.by || '(nobody)'}${a.gate ? ` for gate ${a.gate}` : ''}: ${a.accepted ? 'accepted' : `ignored — ${a.ignoredReason}`}${a.comment ? ` "${a.comment}"` : ''}`);
  }
  for (const s of status.ignoredSignals) lines.push(`  ${s.at} ${s.signal} ignored — ${s.reason}`);
  for (const e of status.auditErrors ?? []) lines.push(`  audit: ${e}`);
  if (status.error && !status.failure) lines.push(`error: ${status.error}`);
  return lines.join('\n');
}

/** "paced by window 0 2 * * SAT (Europe/Berlin, 2h): open until …, inside 20000 rows/s; outside: run". */
function backfillWindowLine(w: NonNullable<BackfillProgress['window']>, nowMs: number): string {
  const inside = w.insideMaxRowsPerSecond === undefined ? "the backfill's own pace" : w.insideMaxRowsPerSecond === null ? 'no limit' : `${w.insideMaxRowsPerSecond} rows/s`;
  const when =
    w.opensAt === null
      ? 'never opens again'
      : w.open
        ? `open until ${new Date(w.closesAt!).toISOString()}`
        : `closed, opens at ${new Date(w.opensAt).toISOString()} (in ${timeLeft(w.opensAt - nowMs)})`;
  return `paced by window ${w.cron} (${w.timezone}, ${w.duration}): ${when}; inside: ${inside}; outside: ${w.outside === 'wait' ? 'waits' : 'runs at its own pace'}`;
}
