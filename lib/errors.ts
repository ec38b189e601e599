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

/** The named database alias is not configured here (worker or CLI). */
export class UnknownDatabaseError extends PhasegateError {
  constructor(alias: string, known: string[]) {
    const variable = alias === 'default' ? 'DATABASE_URL' : `PHASEGATE_DATABASE_URL_${alias.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`;
    super(
      'UnknownDatabase',
      `database "${alias}" is not configured; known aliases: ${known.join(', ') || '(none)'}. ` +
        `Set ${variable}=postgres://… in the environment, or add it under databases in temporal.config.ts`,
      { details: { alias, known } },
    );
  }
}
