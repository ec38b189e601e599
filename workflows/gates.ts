/**
 * Approval gates: deciding whether an `approve`/`reject` signal applies to the gate the workflow
 * waits at. Pure functions over plain data, so the rules read in one place and test without a server.
 */
import type { PlanStep } from '../lib/plan';
import type { ApprovalLogEntry, ApproveInput, PendingGate, RejectInput } from './messages';

export type GateSignal = ({ decision: 'approve' } & ApproveInput) | ({ decision: 'reject' } & RejectInput);

/** Why a decision does not apply to the current state, or null when it does. */
export function ignoredReason(signal: GateSignal, gate: PendingGate | null): string | null {
  if (typeof signal.by !== 'string' || signal.by.trim() === '') {
    return `a ${signal.decision} needs "by": who decides (e.g. {"by":"alice"})`;
  }
  if (!gate) {
    // An approval is for the gate in front of the workflow: one sent early is not kept for later,
    // so nobody approves a phase they have not seen the prompt of.
    return `no gate is waiting for a decision; send ${signal.decision} when status shows state "awaiting-approval"`;
  }
  if (signal.gate !== undefined && signal.gate !== gate.name) {
    return `this ${signal.decision} names gate "${signal.gate}", but the workflow waits at gate "${gate.name}"`;
  }
  if (gate.approvers && !gate.approvers.includes(signal.by)) {
    return `"${signal.by}" is not an approver of gate "${gate.name}" (approvers: ${gate.approvers.join(', ')})`;
  }
  return null;
}

export function logEntry(signal: GateSignal, gate: PendingGate | null, at: string, reason: string | null): ApprovalLogEntry {
  return {
    at,
    decision: signal.decision,
    by: typeof signal.by === 'string' ? signal.by : String(signal.by ?? ''),
    gate: signal.gate ?? gate?.name ?? null,
    revision: gate?.revision ?? null,
    comment: (signal.decision === 'approve' ? signal.comment : signal.reason) ?? null,
    accepted: reason === null,
    ignoredReason: reason,
  };
}

/** The approver list in force: the database's list, narrowed by the gate's own when both are set. */
export function effectiveApprovers(step: PlanStep, databaseApprovers: string[] | undefined): string[] | null {
  const own = step.gate?.approvers;
  if (own && databaseApprovers) return own.filter((a) => databaseApprovers.includes(a));
  return own ?? databaseApprovers ?? null;
}
