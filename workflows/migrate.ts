/**
 * `migrate`: holds the database's migration lease, plans once (the plan is recorded in history, so
 * replays never read files), then walks the steps: gate → apply → backfill → check → stamp. The
 * states and what moves between them are listed in ./migrate-states.ts; this file wires the
 * handlers and runs the loop; ./migration.ts executes steps and rollbacks.
 *
 * Nothing destructive happens by itself: a permanent failure stops in `failed` (retry, rollback,
 * abandon), a lock that never frees waits in `blocked`, a transient fault is waited out, a cancel
 * stops safely without rolling back. Only a person's `reject` or `rollback` undoes steps.
 */
import { ApplicationFailure, setDefaultSignalHandler, setHandler } from '@temporalio/workflow';
import type { SignalDefinition, UpdateDefinition } from '@temporalio/common';
import { migrateInputProblems, payloadProblem } from './input';
import {
  abandonSignal,
  abandonUpdate,
  approveSignal,
  approveUpdate,
  backfillProgressSignal,
  pauseSignal,
  pauseUpdate,
  rejectSignal,
  rejectUpdate,
  resumeSignal,
  resumeUpdate,
  retrySignal,
  retryUpdate,
  rollbackSignal,
  rollbackUpdate,
  skipSoakSignal,
  skipSoakUpdate,
  statusQuery,
  throttleSignal,
  throttleUpdate,
  type BackfillProgress,
  type ControlAnswer,
  type ControlVerb,
  type MigrateCarry,
  type MigrateInput,
  type MigrateResult,
} from './messages';
import { Migration } from './migration';

const CONTROL_VERBS: readonly ControlVerb[] = ['approve', 'reject', 'retry', 'rollback', 'abandon', 'pause', 'resume', 'throttle', 'skipSoak'];

export async function migrate(rawInput: MigrateInput): Promise<MigrateResult> {
  // Before anything else (even a search attribute): a bad input fails the workflow at once.
  const { input, problems } = migrateInputProblems(rawInput);
  if (!input) {
    throw ApplicationFailure.create({
      type: 'InvalidInput',
      nonRetryable: true,
      message:
        `invalid migrate input ${shorten(JSON.stringify(rawInput) ?? 'undefined')}: ${problems.join('; ')}. ` +
        'Expected e.g. {"database":"default","target":"head","direction":"upgrade"}',
      details: [{ problems }],
    });
  }
  const migration = new Migration(input, input.carried as MigrateCarry | undefined);

  // Handlers are set before the first await, so no early signal, update or query is lost.
  setHandler(statusQuery, () => migration.status, { description: 'Where the migration stands: state, step, gate, backfill progress, failure' });
  const register = <A extends unknown[]>(verb: ControlVerb, signal: SignalDefinition<A>, update: UpdateDefinition<ControlAnswer, A>, description: string) => {
    // A signal cannot be refused: one that does not fit is recorded with the reason and ignored.
    setHandler(signal, (...args: A) => void migration.receive(verb, args[0], 'signal'), { description });
    // An Update's validator refuses it before it enters history; the caller gets the reason at once.
    setHandler(update, (...args: A) => migration.receive(verb, args[0], 'update'), {
      description,
      validator: (...args: A) => {
        const problem = payloadProblem(verb, args[0]) ?? migration.problem(verb, args[0]);
        // Non-retryable with a type: the caller (the temporal CLI prints "retryable") sees a refusal, not a fault.
        if (problem && !migration.auditsRefusal(verb, args[0])) throw ApplicationFailure.create({ type: 'ControlRefused', message: problem, nonRetryable: true });
      },
    });
  };
  register('approve', approveSignal, approveUpdate, 'Open the gate the migration waits at: {"by":"alice","gate"?:"…","comment"?:"…"}');
  register('reject', rejectSignal, rejectUpdate, 'Refuse the gate the migration waits at: {"by":"alice","reason"?:"…"}');
  register('retry', retrySignal, retryUpdate, 'In failed or blocked: run the failed step again: {"by":"alice"}');
  register('rollback', rollbackSignal, rollbackUpdate, 'In failed or blocked: undo this run\'s steps since the last approved gate ({"pastGates":true} for all): {"by":"alice"}');
  register('abandon', abandonSignal, abandonUpdate, 'In failed, blocked or at a gate: end the migration, leaving the database as it is: {"by":"alice","reason"?:"…"}');
  register('pause', pauseSignal, pauseUpdate, 'Pause the backfill after its current batch: {}');
  register('resume', resumeSignal, resumeUpdate, 'Resume a paused backfill: {}');
  register('skipSoak', skipSoakSignal, skipSoakUpdate, 'In soaking: end the soak now and open the next step (an approver; audited): {"by":"alice","comment"?:"…"}');
  register('throttle', throttleSignal, throttleUpdate, 'Change the backfill pacing: {"batchSize"?:N,"delayMs"?:N,"maxRowsPerSecond"?:N}');
  // The backfill child's progress reports arrive on the default handler: a named handler would be
  // listed in the UI's "Send a Signal" for operators. Any other unknown name is a typo: recorded.
  setDefaultSignalHandler((name, ...args) => {
    if (name === backfillProgressSignal.name) migration.onBackfillProgress(args[0] as BackfillProgress);
    else migration.onUnknownSignal(name, CONTROL_VERBS);
  });

  return migration.run();
}

/** An echoed input stays readable (and small in history) however big the input was. */
function shorten(text: string, max = 300): string {
  return text.length <= max ? text : `${text.slice(0, max)}… (${text.length} characters)`;
}
