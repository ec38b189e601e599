/**
 * What the Temporal Web UI shows on a migration's page ("Current Details", Markdown), and the
 * one-line summary a starter puts on it. Pure functions of the status, so the text is the same on
 * replay and is tested without a server. The page is where a person looks first: it always says
 * what the workflow waits for and the exact command (and UI action) that moves it on.
 */
import type { MigrateStatus } from './messages';

export interface DetailsContext {
  workflowId: string;
  namespace: string;
}

/** `--namespace x` when it is not the default one, so printed commands work as printed. */
function namespaceFlag(namespace: string): string {
  return namespace === 'default' ? '' : ` --namespace ${namespace}`;
}

/** A JSON value inside a single-quoted shell word: a `'` in it must not end the word. */
function shellJson(value: unknown): string {
  return `'${JSON.stringify(value).replace(/'/g, `'\\''`)}'`;
}

/** Markdown code span that survives backticks in the text. */
function code(text: string): string {
  const fence = text.includes('`') ? '``' : '`';
  return `${fence}${text}${fence}`;
}

/** How to send `verb` three ways: phasegate's CLI, the temporal CLI, and this page's "Send a Signal". */
function howTo(verb: string, input: Record<string, unknown>, status: MigrateStatus, ctx: DetailsContext, cliFlags = '', cliVerb = verb): string {
  const target = ctx.workflowId === `migrate-${status.database}` ? `--database ${status.database}` : `--workflow-id ${ctx.workflowId}`;
  const who = 'by' in input ? ' --by <you>' : '';
  return [
    `- **${verb}**: ${code(`npm run phasegate -- ${cliVerb} ${target}${who}${cliFlags}`)}`,
    `  - or ${code(`temporal workflow signal${namespaceFlag(ctx.namespace)} --workflow-id ${ctx.workflowId} --name ${verb} --input ${shellJson(input)}`)}`,
    `  - or on this page: **More Actions → Send a Signal**, name ${code(verb)}, input ${code(JSON.stringify(input))}`,
  ].join('\n');
}

function stepLine(status: MigrateStatus): string {
  const step = status.steps.find((s) => s.revision === status.revision);
  return status.revision ? `revision ${code(status.revision)}${step ? ` (${step.message})` : ''}` : 'no revision yet';
}

/** The "Current Details" Markdown for a migration in `status`. */
export function currentDetails(status: MigrateStatus, ctx: DetailsContext): string {
  const done = status.steps.filter((s) => s.state === 'applied' || s.state === 'already-applied' || s.state === 'undone').length;
  // `applying` is named for an upgrade; a downgrade's steps are being undone.
  const state = status.direction === 'downgrade' && status.state === 'applying' ? 'undoing' : status.state;
  const head = `**${status.direction} ${status.database} to ${status.target}** — ${state}, step ${Math.min(done + 1, status.steps.length || 1)} of ${status.steps.length || '?'}`;
  const lines = [head, ''];
  const byInput = { by: '<you>' };
  switch (status.state) {
    case 'planning':
      lines.push('Planning: reading the revision files and the version table.');
      break;
    case 'awaiting-approval': {
      const gate = status.gate;
      if (!gate) break;
      lines.push(`**Waiting for your approval** at gate ${code(gate.name)} before ${stepLine(status)}, since ${gate.since}.`, '');
      lines.push(...gate.prompt.split('\n').map((l) => `> ${l}`), '');
      if (gate.heldBy) lines.push(`On hold: rejected by ${gate.heldBy.by}${gate.heldBy.reason ? ` (${gate.heldBy.reason})` : ''}; an approval still opens it.`, '');
      if (gate.approvers) lines.push(`Approvers: ${gate.approvers.join(', ')}.`, '');
      if (gate.expiresAt) lines.push(`Expires at ${gate.expiresAt} (then ${gate.onReject === 'hold' ? 'held' : 'rolled back'}).`, '');
      lines.push(howTo('approve', byInput, status, ctx));
      lines.push(howTo('reject', { by: '<you>', reason: '…' }, status, ctx, ' --reason "…"'));
      break;
    }
    case 'applying':
      lines.push(`${status.direction === 'downgrade' ? 'Undoing' : 'Applying'} ${stepLine(status)}.`);
      break;
    case 'soaking': {
      const soak = status.soak;
      if (!soak) break;
      lines.push(
        `**Soaking** after ${code(soak.revision)} (applied ${soak.since}) until **${soak.until}**; then ${soak.nextGate ? `gate ${code(soak.nextGate)} opens` : `${code(soak.next)} starts`}.`,
        '',
      );
      lines.push(howTo('skipSoak', byInput, status, ctx, '', 'skip-soak'));
      break;
    }
    case 'waiting-for-window': {
      const w = status.window;
      if (!w) break;
      lines.push(
        `**Waiting for the maintenance window** ${code(w.cron)} (${w.timezone}, ${w.duration}) before ${stepLine(status)}: it opens at **${w.opensAt}** and closes at ${w.closesAt}. ` +
          'The step takes a lock that blocks writes, so it starts only inside a window.',
        '',
      );
      lines.push(howTo('abandon', { by: '<you>', reason: '…' }, status, ctx, ' --reason "…"'));
      break;
    }
    case 'backfilling':
    case 'paused': {
      const b = status.backfill;
      lines.push(
        status.state === 'paused'
          ? `**Backfill paused** for ${stepLine(status)}${b ? ` on ${code(b.table)} after ${b.rowsDone} rows` : ''}; it resumes from its last committed key.`
          : `Backfilling ${b ? code(b.table) : 'rows'} for ${stepLine(status)}. Live progress: the ${code('status')} query (Queries tab), or ${code(`phasegate status --database ${status.database} --watch`)}.`,
        '',
      );
      const w = b?.window;
      if (w && !w.open && w.outside === 'wait' && status.state === 'backfilling') {
        lines.push(
          w.opensAt === null
            ? `**Waiting for the maintenance window** ${code(w.cron)} (${w.timezone}, ${w.duration}), which never opens again: fix the window and retry.`
            : `**Waiting for the maintenance window** ${code(w.cron)} (${w.timezone}, ${w.duration}): the backfill walks rows only inside it; it opens at **${new Date(w.opensAt).toISOString()}**.`,
          '',
        );
      }
      lines.push(status.state === 'paused' ? howTo('resume', {}, status, ctx) : howTo('pause', {}, status, ctx));
      break;
    }
    case 'checking':
      lines.push(`Checking ${stepLine(status)}: its check query runs.`);
      break;
    case 'blocked':
    case 'failed': {
      const f = status.failure;
      lines.push(`**${status.state === 'blocked' ? 'Blocked' : 'Failed'}** at ${stepLine(status)}${f ? ` (${f.kind}${f.type ? `, ${f.type}` : ''})` : ''}. Nothing was rolled back; it waits for a person.`, '');
      if (f) lines.push('```', f.message, '```', '');
      for (const option of f?.options ?? []) lines.push(howTo(option, byInput, status, ctx, option === 'rollback' ? ' [--past-gates]' : ''));
      break;
    }
    case 'rolling-back':
      lines.push(`Rolling back: ${status.rollback?.reason ?? ''}`);
      break;
    case 'done':
      lines.push(`Done: ${status.database} is at ${status.revision ? code(status.revision) : 'its target'}.`);
      break;
    case 'rolled-back':
    case 'abandoned':
    case 'cancelled':
      lines.push(status.error ?? status.state);
      break;
  }
  if (status.waiting && status.state !== 'awaiting-approval') lines.push('', `Waiting: ${status.waiting}`);
  return lines.join('\n');
}
