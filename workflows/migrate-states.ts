/**
 * The `migrate` state machine in one place: its states, and which control verb each state accepts.
 * The same rules answer a signal (recorded and ignored with the reason) and an Update (refused by
 * its validator). README "Failure semantics" is this table in words.
 *
 * | state              | entered when                                   | leaves on                                   |
 * | ------------------ | ---------------------------------------------- | ------------------------------------------- |
 * | planning           | start (after the input is valid, lease held)   | plan computed                               |
 * | awaiting-approval  | a step with a gate is next                     | approve → applying; reject → rolling-back or held; abandon |
 * | applying           | a revision's statements run                    | done → backfilling/checking/next step; SQL error → failed; locks exhausted → blocked |
 * | backfilling/paused | the step's backfill child runs                 | child done → checking; pause/resume; error → failed |
 * | checking           | the step's check runs                          | pass → next step; rows fail or timeout → failed |
 * | soaking            | an applied revision with `soak` holds the next step | the soak ends (timer) or skipSoak → next step's gate; abandon |
 * | waiting-for-window | a step with a SHARE-or-stronger lock and a maintenance window, outside the window (also before a lock retry after the window closed) | the window opens (timer) → applying; abandon |
 * | blocked            | lock_timeout on every attempt                  | retry → applying; rollback; abandon         |
 * | failed             | a permanent error (SQL, check, backfill, rollback step) | retry → same phase again; rollback; abandon |
 * | rolling-back       | reject at a gate, or rollback in failed/blocked | done → rolled-back (ends); error → failed  |
 * | done, rolled-back, abandoned, cancelled | the run ends               | —                                           |
 *
 * Transient database faults never change the state: the phase retries forever while `waiting`
 * says "waiting for database: …". Cancel (UI, CLI) ends the run `cancelled` after the running
 * statement is cancelled and the backfill stops after its batch; nothing is rolled back.
 */
import type { ControlVerb, MigrateState, MigrateStatus } from './messages';

export const TERMINAL_STATES: readonly MigrateState[] = ['done', 'rolled-back', 'abandoned', 'cancelled'];

/** States in which a person's retry/rollback/abandon is awaited. */
export const STOPPED_STATES: readonly MigrateState[] = ['failed', 'blocked'];

export interface ControlContext {
  status: MigrateStatus;
  /** A backfill is running, or a later step of the plan has one (or the plan is not known yet). */
  backfillAhead: boolean;
  /** Steps this run applied that a rollback could undo. */
  appliedCount: number;
}

/** Why `verb` does not fit the current state, or null when it does (gate rules live in gates.ts). */
export function stateProblem(verb: ControlVerb, ctx: ControlContext): string | null {
  const { status } = ctx;
  const state = status.state;
  if (TERMINAL_STATES.includes(state)) return `the migration is ${state}; nothing is left to ${verb}`;
  switch (verb) {
    case 'approve':
    case 'reject':
      return null; // gates.ts decides, knowing the gate
    case 'retry':
      return STOPPED_STATES.includes(state) ? null : `retry re-runs a failed or blocked step; the migration is ${state}`;
    case 'rollback':
      if (!STOPPED_STATES.includes(state)) return `rollback is offered when the migration is failed or blocked; it is ${state}`;
      if (status.direction !== 'upgrade') return 'rollback undoes an upgrade; this migration is a downgrade (use retry or abandon)';
      if (ctx.appliedCount === 0) return 'this run applied nothing to roll back; use retry or abandon';
      return null;
    case 'abandon':
      return STOPPED_STATES.includes(state) || state === 'awaiting-approval' || state === 'soaking' || state === 'waiting-for-window'
        ? null
        : `abandon ends a migration that is failed, blocked, soaking or waiting at a gate; it is ${state} (cancel the workflow to stop it safely)`;
    case 'skipSoak':
      return state === 'soaking' ? null : `skipSoak ends a soak period; the migration is ${state}, not soaking`;
    case 'pause':
      // A second pause (or a resume of a running backfill) is no problem: it is answered as a no-op (noopReason).
      return ctx.backfillAhead ? null : `this migration has no backfill to pause (state ${state})`;
    case 'resume':
      return ctx.backfillAhead ? null : `this migration has no backfill to resume (state ${state})`;
    case 'throttle':
      return ctx.backfillAhead ? null : `this migration has no backfill to throttle (state ${state})`;
  }
}

/** A verb that fits but changes nothing (pause while paused, resume while running): the answer says so. */
export function noopReason(verb: ControlVerb, status: MigrateStatus): string | null {
  if (verb === 'pause' && status.control.paused) return 'already paused; send resume to continue';
  if (verb === 'resume' && !status.control.paused) return 'not paused: the backfill is already running (or starts running)';
  return null;
}
