/**
 * Maintenance-window arithmetic for the workflow: deterministic (it reads only the time it is
 * given, which in a workflow is `Date.now()`, the workflow's clock). croner is pure JavaScript (its
 * time zones use Intl), so it bundles into the workflow sandbox; it never schedules anything here.
 */
import { Cron } from 'croner';
import type { PlannedWindow } from '../lib/window';

export interface WindowOpening {
  /** `nowMs` lies inside [opensAt, closesAt). */
  open: boolean;
  /** The window containing `nowMs` when open, else the next one. */
  opensAt: number;
  closesAt: number;
}

/** Whether a window is open at `nowMs`, and which one (or the next). Null when the cron never fires again. */
export function windowAt(window: Pick<PlannedWindow, 'cron' | 'timezone' | 'durationMs'>, nowMs: number): WindowOpening | null {
  const job = new Cron(window.cron, { paused: true, timezone: window.timezone });
  // The first opening after (now - duration): if it is not later than now, now is inside it.
  const first = job.nextRun(new Date(nowMs - window.durationMs));
  if (!first) return null;
  const opensAt = first.getTime();
  return { open: opensAt <= nowMs, opensAt, closesAt: opensAt + window.durationMs };
}

/** "3 h 12 m", "4 m 05 s", "12 s": as `phasegate status` says a time left. */
export function inWords(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s >= 86_400) return `${Math.floor(s / 86_400)} d ${Math.floor((s % 86_400) / 3600)} h`;
  if (s >= 3600) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} m`;
  if (s >= 60) return `${Math.floor(s / 60)} m ${String(s % 60).padStart(2, '0')} s`;
  return `${s} s`;
}

/** The status line while waiting: "waiting for window 0 2 * * SAT (Europe/Berlin), opens in 3 h 12 m". */
export function windowWaiting(window: Pick<PlannedWindow, 'cron' | 'timezone'>, opensAt: number, nowMs: number): string {
  return `waiting for window ${window.cron} (${window.timezone}), opens in ${inWords(opensAt - nowMs)}`;
}
