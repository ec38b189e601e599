/**
 * The `phasegate` package: what `import … from 'phasegate'` gives a deploy pipeline, an app's
 * start-up or a test. Every command is the function behind the CLI verb of the same name: one
 * options object in (the project folder, config file or config object, database alias, …), plain
 * JSON-able data out. A failure is a `PhasegateError` whose `type` names the kind (match on
 * `type`, not `instanceof`: see docs/api.md for the list); nothing is printed, nothing exits.
 *
 * ```ts
 * import { upgrade, approve, follow, exitCodeFor } from 'phasegate';
 * const started = await upgrade({ database: 'default', until: 'gate' });
 * ```
 */
export {
  abandon,
  approve,
  autogenerate,
  branches,
  check,
  current,
  downgrade,
  drift,
  exitCodeFor,
  follow,
  heads,
  history,
  init,
  lint,
  merge,
  newPattern,
  pause,
  reject,
  resume,
  retry,
  revision,
  rollback,
  schemaCheck,
  show,
  skipSoak,
  fleetStart,
  fleetStatus,
  fleetResult,
  fleetPause,
  fleetResume,
  fleetApproveWave,
  fleetAbort,
  fleetRetry,
  fleetIdFor,
  stamp,
  status,
  throttle,
  upgrade,
  workflowIdFor,
} from './lib/commands';
export type * from './lib/commands';
export { createWorker, worker, type CreateWorkerOptions, type PhasegateWorkerHandle, type WorkerOptions, type WorkerResult } from './lib/commands/worker';
export { dev, type DevOptions, type DevStack } from './lib/commands/dev';

// Configuration: the file's shape, and validation for a config built in code.
export { CONFIG_FILES, defineConfig, loadConfig, loadConfigFile, type PhasegateConfig, type PhasegateConfigInput } from './lib/config';

// What revision files are written against.
export type { BackfillSpec, CheckSpec, DurationSpec, GateSpec, RevisionModule } from './lib/revision';
export type { Op } from './lib/ops';
export type * from './lib/ops';

// The workflow's messages, as status and the signals carry them.
export type { MigrateInput, MigrateResult, MigrateState, MigrateStatus, PendingGate, StepStatus } from './workflows/messages';

export { ConfigError, PhasegateError, RevisionFileError, RevisionGraphError } from './lib/errors';

/** True when `err` is a phasegate error (of `type`, when given); works across realms, unlike instanceof. */
export function isPhasegateError(err: unknown, type?: string): err is import('./lib/errors').PhasegateError {
  const candidate = err as { type?: unknown; retryable?: unknown } | null;
  return typeof candidate?.type === 'string' && typeof candidate.retryable === 'boolean' && (type === undefined || candidate.type === type);
}

/** The package's version (package.json), as `phasegate --version` prints it. */
export { PHASEGATE_VERSION } from './lib/version';
