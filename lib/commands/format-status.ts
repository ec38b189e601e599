/**
 * `phasegate status` as text: state, current revision, the pending gate and how to answer it,
 * lock waits, a failed check's numbers, backfill progress, and the decision log.
 */
import type { StatusResult } from './control';

const seconds = (s: number | null) => (s === null ? '?' : s < 90 ? `${Math.round(s)} s` : s < 5400 ? `${Math.round(s / 60)} min` : `${(s / 3600).toFixed(1)} h`);

export function formatStatus({ workflowId, execution, status }: StatusResult): string {
  const lines = [
    `${workflowId} (${execution.toLowerCase()}): ${status.state}` +
      (status.revision ? ` at ${status.revision}${status.phase ? ` [${status.phase}]` : ''}` : '') +
      ` — ${status.direction} ${status.database} to ${status.target}`,
  ];
  for (const step of status.steps) {
    lines.push(`  ${step.state.padEnd(16)} ${step.revision}  ${step.message}${step.attempts && step.attempts > 1 ? ` (attempt ${step.attempts})` : ''}`);
  }
  if (status.waiting) lines.push(`waiting: ${status.waiting}`);
  if (status.gate) {
    const g = status.gate;
    lines.push(`gate "${g.name}" before ${g.revision}: ${g.prompt}`);
    if (g.heldBy) lines.push(`  on hold: rejected by ${g.heldBy.by}${g.heldBy.reason ? ` (${g.heldBy.reason})` : ''}; an approval still opens it`);
    if (g.approvers) lines.push(`  approvers: ${g.approvers.join(', ')}`);
    if (g.expiresAt) lines.push(`  expires at ${g.expiresAt} (then ${g.onReject === 'hold' ? 'held' : 'rolled back'})`);
    lines.push(`  approve: phasegate approve --database ${status.database} --by <you> [--comment …]`);
    lines.push(`       or: temporal workflow signal --workflow-id ${workflowId} --name approve --input '{"by":"<you>"}'`);
  }
  if (status.check && !status.check.passed) {
    const c = status.check;
    lines.push(`check "${c.name}" failed (attempt ${c.attempts}): ${c.failingCount} row(s), e.g. ${JSON.stringify(c.sample.slice(0, 3))}`);
    lines.push(`  fix the data, then: phasegate retry --database ${status.database}   (or reject to roll back)`);
  }
  if (status.backfill) {
    const b = status.backfill;
    const total = b.estimatedTotal ? ` of ~${b.estimatedTotal}` : '';
    lines.push(
      `backfill ${b.table} (${b.state}): ${b.rowsDone}${total} rows, ${b.rowsPerSecond ? Math.round(b.rowsPerSecond) : '?'} rows/s, ETA ${seconds(b.etaSeconds)}` +
        (b.slowedBy ? `; slowed by ${b.slowedBy}` : ''),
    );
  }
  for (const a of status.approvals) {
    lines.push(`  ${a.at} ${a.decision} by ${a.by || '(nobody)'}${a.gate ? ` for gate ${a.gate}` : ''}: ${a.accepted ? 'accepted' : `ignored — ${a.ignoredReason}`}${a.comment ? ` "${a.comment}"` : ''}`);
  }
  for (const s of status.ignoredSignals) lines.push(`  ${s.at} ${s.signal} ignored — ${s.reason}`);
  if (status.error) lines.push(`error: ${status.error}`);
  return lines.join('\n');
}
