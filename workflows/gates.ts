/**
 * Approval gates: deciding whether an `approve`/`reject` signal applies to the gate the workflow
 * waits at. Pure functions over plain data, so the rules read in one place and test without a server.
 */
import type { PlanStep } from '../lib/plan';
import type { ApprovalLogEntry, ApproveInput, PendingGate, RejectInput } from './messages';

export type GateSignal = ({ decision: 'approve' } & ApproveInput) | ({ decision: 'reject' } & RejectInput);

/**
 * Whether the gate a decision names is the one waiting: its full name, or a prefix of it that no
 * other gate of the plan shares ("deploy" for "deploy:accounts.org_id"). Returns why not, or null.
 */
export function gateMismatch(named: string | undefined, gate: PendingGate, otherGates: readonly string[], decision: string): string | null {
  if (named === undefined || named === gate.name) return null;
  if (!gate.name.startsWith(named)) return `this ${decision} names gate "${named}", but the workflow waits at gate "${gate.name}"`;
  const alike = [...new Set(otherGates.filter((g) => g !== gate.name && g.startsWith(named)))];
  if (alike.length === 0) return null;
  return `gate "${named}" is ambiguous: it starts the waiting gate "${gate.name}" and ${alike.map((g) => `"${g}"`).join(', ')} later in the plan; give the full name`;
}

/** Why a decision does not apply to the current state, or null when it does. */
export function ignoredReason(signal: GateSignal, gate: PendingGate | null, otherGates: readonly string[] = []): string | null {
  if (typeof signal.by !== 'string' || signal.by.trim() === '') {
    return `${signal.decision} needs "by", the person who decides (e.g. {"by":"alice"})`;
  }
  if (!gate) {
    // An approval is for the gate in front of the workflow: one sent early is not kept for later,
    // so nobody approves a phase they have not seen the prompt of.
    return `no gate is waiting for a decision; send ${signal.decision} when status shows state "awaiting-approval"`;
  }
  const mismatch = gateMismatch(signal.gate, gate, otherGates, signal.decision);
  if (mismatch) return mismatch;
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
    // An accepted decision names the full gate, also when it was sent with a prefix of it.
    gate: reason === null && gate ? gate.name : (signal.gate ?? gate?.name ?? null),
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
