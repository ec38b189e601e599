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
    const total = b.estimatedTotal ? ` of ~${b.estimatedTotal}` : '';
    lines.push(
      `backfill ${b.table} (${b.state}): ${b.rowsDone}${total} rows, ${b.rowsPerSecond ? Math.round(b.rowsPerSecond) : '?'} rows/s, ETA ${seconds(b.etaSeconds)}` +
        (b.slowedBy ? `; slowed by ${b.slowedBy}` : ''),
    );
    if (b.waiting) lines.push(`  ${b.waiting}`);
  }
  for (const a of status.approvals) {
    lines.push(`  ${a.at} ${a.decision} by ${a.by || '(nobody)'}${a.gate ? ` for gate ${a.gate}` : ''}: ${a.accepted ? 'accepted' : `ignored — ${a.ignoredReason}`}${a.comment ? ` "${a.comment}"` : ''}`);
  }
  for (const s of status.ignoredSignals) lines.push(`  ${s.at} ${s.signal} ignored — ${s.reason}`);
  for (const e of status.auditErrors ?? []) lines.push(`  audit: ${e}`);
  if (status.error && !status.failure) lines.push(`error: ${status.error}`);
  return lines.join('\n');
}
