/**
 * phasegate's command layer: one async function per CLI verb, each taking one options object and
 * returning plain data. `scripts/phasegate.ts` only parses arguments and prints what these return.
 * `worker` lives in `./worker` and is not re-exported: it loads the Temporal worker's native runtime,
 * which the other commands do not need.
 */
export { init, type InitOptions, type InitResult } from './init';
export { formatNewPattern, newPattern, type NewPatternFile, type NewPatternOptions, type NewPatternResult } from './new';
export { merge, revision, type MergeOptions, type NewRevisionResult, type RevisionOptions } from './revision';
export { branches, heads, history, type BranchesResult, type HeadsResult, type HistoryOptions, type HistoryResult } from './history';
export { show, type ShowOptions, type ShowResult } from './show';
export { check, current, stamp, type CheckResult, type CurrentResult, type DatabaseOptions, type StampOptions, type StampResult } from './version';
export {
  downgrade,
  exitCodeFor,
  follow,
  upgrade,
  workflowIdFor,
  type FollowOptions,
  type FollowResult,
  type MigrateCommandOptions,
  type MigrateCommandResult,
  type MigrateEvent,
  type OfflineMigrateResult,
  type OnlineMigrateResult,
} from './migrate';
export type { ProjectOptions, RevisionFilesOptions, RevisionSummary } from './project';
export { abandon, approve, pause, reject, resume, retry, rollback, skipSoak, status, throttle, type ControlOptions, type SignalResult, type StatusResult } from './control';
export { autogenerate, drift, hasSchemaFile, schemaCheck, type AutogenerateOptions, type AutogenerateResult, type DriftResult, type SchemaCheckResult } from './autogenerate';
export {
  fleetAbort,
  fleetApproveWave,
  fleetIdFor,
  fleetPause,
  fleetResult,
  fleetResume,
  fleetRetry,
  fleetStart,
  fleetStatus,
  formatFleetStatus,
  type FleetControlResult,
  type FleetOptions,
  type FleetStartOptions,
  type FleetStartResult,
  type FleetStatusResult,
} from './fleet';
export { lint, runSquawk, type LintFinding, type LintOptions, type LintResult } from './lint';
