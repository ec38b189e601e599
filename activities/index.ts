/**
 * All activities, built from their dependencies (no module globals): the worker hands in real
 * pools and a logger; tests may hand in their own.
 */
import { createAuditActivities } from './audit';
import { createCheckActivities } from './checks';
import { withFailureMapping } from './failures';
import { createMigrationActivities, type MigrationDeps } from './migrations';
import { createBackfillActivities } from './backfill';
import { createLeaseActivities } from './lease';
import { createBudgetActivities } from './budget';
import { createFleetActivities } from './fleet';

export type ActivityDeps = MigrationDeps;

export function createActivities(deps: ActivityDeps) {
  return withFailureMapping({
    ...createMigrationActivities(deps),
    ...createBackfillActivities(deps),
    ...createAuditActivities(deps),
    ...createCheckActivities(deps),
    ...createLeaseActivities(deps),
    ...createBudgetActivities(deps),
    ...createFleetActivities(deps),
  });
}

export type Activities = ReturnType<typeof createActivities>;
export type { ApplyRevisionInput, ApplyRevisionResult, PlanMigrationInput, StampRevisionInput } from './migrations';
export type { GateDecision } from './audit';
export type { CheckResult, RunCheckInput } from './checks';
