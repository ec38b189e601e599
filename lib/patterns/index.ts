/**
 * The pattern registry: `phasegate new <pattern>` and `newPattern()` know exactly these. Adding a
 * pattern is one file in this folder and one line here.
 */
import { PhasegateError } from '../errors';
import type { Pattern } from './types';

// One line per pattern, in the order `phasegate new --help` lists them. `require` keeps each
// registration to that one line (an import would need a second one).
/* eslint-disable @typescript-eslint/no-require-imports */
export const patterns: readonly Pattern[] = [
  require('./add-not-null-column').default,
  require('./rename-column').default,
  require('./add-index').default,
  require('./add-foreign-key').default,
  require('./change-column-type').default,
  require('./add-unique').default,
];
/* eslint-enable @typescript-eslint/no-require-imports */

export function findPattern(name: string): Pattern {
  const pattern = patterns.find((p) => p.name === name);
  if (!pattern) {
    throw new PhasegateError('UnknownPattern', `unknown pattern "${name}"; known patterns: ${patterns.map((p) => p.name).join(', ')} (phasegate new --help)`, {
      details: { pattern: name, known: patterns.map((p) => p.name) },
    });
  }
  return pattern;
}

export { usage, type Pattern, type RevisionDraft } from './types';
