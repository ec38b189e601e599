/**
 * phasegate's error hierarchy. Every error carries a stable `type` string: activities turn it into
 * an ApplicationFailure of the same type, and callers match on `type`, never on `instanceof`
 * (Jest and the workflow sandbox are separate realms).
 */
export class PhasegateError extends Error {
  /** Stable machine-readable kind, e.g. `MultipleHeads`. */
  readonly type: string;
  /** Whether retrying the same operation could succeed (lock timeouts, dropped connections). */
  readonly retryable: boolean;
  readonly details: Record<string, unknown>;

  constructor(type: string, message: string, opts: { retryable?: boolean; details?: Record<string, unknown> } = {}) {
    super(message);
    this.name = type;
    this.type = type;
    this.retryable = opts.retryable ?? false;
    this.details = opts.details ?? {};
  }
}

/** Configuration is invalid; the message lists every problem found. */
export class ConfigError extends PhasegateError {
  constructor(message: string, problems: string[]) {
    super('ConfigError', message, { details: { problems } });
  }
}

/** A revision file could not be loaded, or its declaration is malformed. */
export class RevisionFileError extends PhasegateError {
  constructor(file: string, message: string) {
    super('RevisionFileError', `${file}: ${message}`, { details: { file } });
  }
}

/** Errors of the revision graph: cycles, duplicates, missing parents, bad targets. */
export class RevisionGraphError extends PhasegateError {
  constructor(type: string, message: string, details: Record<string, unknown> = {}) {
    super(type, message, { details });
  }
}

/** The named database alias is not configured on this worker. */
export class UnknownDatabaseError extends PhasegateError {
  constructor(alias: string, known: string[]) {
    super(
      'UnknownDatabase',
      `database "${alias}" is not configured on this worker; known aliases: ${known.join(', ') || '(none)'}. ` +
        'Add it under databases in temporal.config.ts or set PHASEGATE_DATABASE_URL_' + alias.toUpperCase().replace(/[^A-Z0-9]/g, '_'),
      { details: { alias, known } },
    );
  }
}
