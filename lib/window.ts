/**
 * Maintenance windows: when steps that take a lock from SHARE up (lib/ops/locks.ts) may start.
 * A revision's `window`, or `databases.<alias>.window` in the config, says
 * `{ cron: '0 2 * * SAT', duration: '2h', timezone: 'Europe/Berlin' }`: a window opens at each cron
 * time (in `timezone`, default UTC) and stays open for `duration`. Validated here, before anything
 * runs; the plan records the result, and the workflow computes openings (workflows/window.ts).
 */
import { Cron } from 'croner';
import type { Duration } from '@temporalio/common';
import { msToNumber } from '@temporalio/common/lib/time';
import type { DurationSpec } from './revision';

export interface WindowSpec {
  /** Standard 5-field cron (minute hour day-of-month month day-of-week), e.g. `0 2 * * SAT`. */
  cron: string;
  /** How long each window stays open: milliseconds or a string like '2h', '90 minutes'. */
  duration: DurationSpec;
  /** IANA time zone the cron is read in (default `UTC`), e.g. `Europe/Berlin`. */
  timezone?: string;
}

/** A window as the plan records it (plain JSON, in workflow history). */
export interface PlannedWindow {
  cron: string;
  timezone: string;
  /** As written, for status. */
  duration: string;
  durationMs: number;
  /** Where it came from: the revision's `window`, or the database's default in the config. */
  source: 'revision' | 'config';
}

export const DEFAULT_WINDOW_TIMEZONE = 'UTC';

/** Every problem with a window spec, each saying what to write instead; empty when it is valid. */
export function windowProblems(spec: unknown): string[] {
  if (spec === null || typeof spec !== 'object' || Array.isArray(spec)) {
    return [`must be an object like { cron: '0 2 * * SAT', duration: '2h', timezone: 'Europe/Berlin' } (or null/false in a revision to opt out)`];
  }
  const { cron, duration, timezone, ...rest } = spec as Record<string, unknown>;
  const problems: string[] = [];
  const unknown = Object.keys(rest);
  if (unknown.length) problems.push(`unknown field(s) ${unknown.map((k) => `"${k}"`).join(', ')}; a window has cron, duration and timezone`);
  let zoneOk = true;
  if (timezone !== undefined) {
    if (typeof timezone !== 'string' || !isTimeZone(timezone)) {
      zoneOk = false;
      problems.push(`timezone ${JSON.stringify(timezone)} is not a time zone this Node.js knows; write an IANA name like 'Europe/Berlin', 'America/New_York' or 'UTC'`);
    }
  }
  if (typeof cron !== 'string' || cron.trim() === '') {
    problems.push(`cron must be a cron expression like '0 2 * * SAT' (minute hour day-of-month month day-of-week)`);
  } else {
    const fields = cron.trim().split(/\s+/).length;
    if (fields !== 5) {
      problems.push(`cron ${JSON.stringify(cron)} has ${fields} field(s); write 5: minute hour day-of-month month day-of-week, e.g. '0 2 * * SAT'`);
    } else {
      try {
        const job = new Cron(cron, { paused: true, ...(zoneOk && typeof timezone === 'string' ? { timezone } : {}) });
        if (job.nextRun() === null) problems.push(`cron ${JSON.stringify(cron)} never fires; check its day-of-month and month`);
      } catch (err) {
        problems.push(`cron ${JSON.stringify(cron)} is not a valid cron expression (${(err as Error).message}); write e.g. '0 2 * * SAT' (Saturdays 02:00) or '30 1 * * 1-5' (weekdays 01:30)`);
      }
    }
  }
  const ms = durationToMs(duration);
  if (ms === undefined) problems.push(`duration ${JSON.stringify(duration)} is not a duration; write milliseconds or a string like '2h' or '90 minutes'`);
  else if (ms < 60_000) problems.push(`duration ${JSON.stringify(duration)} is shorter than a minute; write at least '1 minute'`);
  return problems;
}

/** The window as the plan records it; throws an Error naming every problem (the caller adds where). */
export function planWindow(spec: WindowSpec, source: PlannedWindow['source']): PlannedWindow {
  const problems = windowProblems(spec);
  if (problems.length) throw new Error(problems.join('; '));
  return {
    cron: spec.cron.trim(),
    timezone: spec.timezone ?? DEFAULT_WINDOW_TIMEZONE,
    duration: String(spec.duration),
    durationMs: durationToMs(spec.duration)!,
    source,
  };
}

function durationToMs(value: unknown): number | undefined {
  if (typeof value !== 'number' && typeof value !== 'string') return undefined;
  try {
    const ms = msToNumber(value as Duration);
    return Number.isFinite(ms) && ms > 0 ? ms : undefined;
  } catch {
    return undefined;
  }
}

function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}
