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

/**
 * The environment variable that defines database `alias` (lib/config.ts lowercases the suffix), or
 * null for an alias no variable name can spell (a `-` in it): that one lives in the config file.
 */
export function databaseUrlVariable(alias: string): string | null {
  if (alias === 'default') return 'DATABASE_URL';
  return /^[a-z0-9_]+$/.test(alias) ? `PHASEGATE_DATABASE_URL_${alias.toUpperCase()}` : null;
}

/** How to define database `alias`, in words; `configFile` is the file the config was loaded from. */
export function howToDefineDatabase(alias: string, configFile = 'phasegate.config.ts'): string {
  const variable = databaseUrlVariable(alias);
  return variable
    ? `set ${variable}=postgres://… in the environment, or add it under databases in ${configFile}`
    : `add it under databases in ${configFile} (url: process.env.SOME_VARIABLE); an alias with "${alias.replace(/[a-z0-9_]/g, '')}" cannot come from a PHASEGATE_DATABASE_URL_ variable`;
}

/** The named database alias is not configured here (worker or CLI). */
export class UnknownDatabaseError extends PhasegateError {
  constructor(alias: string, known: string[], configFile?: string) {
    const how = howToDefineDatabase(alias, configFile);
    super(
      'UnknownDatabase',
      `database "${alias}" is not configured; known aliases: ${known.join(', ') || '(none)'}. ` +
        `${how.charAt(0).toUpperCase()}${how.slice(1)}`,
      { details: { alias, known } },
    );
  }
}

/**
 * The alias is configured but its URL is not set (typically `url: process.env.X` with X unset).
 * Only commands that connect raise it: the offline ones (heads, history, --sql, …) never need it.
 */
export class DatabaseUrlMissingError extends PhasegateError {
  constructor(alias: string, configFile = 'temporal.config.ts') {
    const variable = databaseUrlVariable(alias);
    super(
      'DatabaseUrlMissing',
      `database "${alias}" has no URL, and this command connects to it: set databases.${alias}.url in ${configFile} ` +
        '(when it reads `process.env.<NAME>`, set <NAME> in the environment)' +
        (variable ? `, or set ${variable}=postgres://… in the environment` : ''),
      { details: { alias, configFile, ...(variable ? { variable } : {}) } },
    );
  }
}
