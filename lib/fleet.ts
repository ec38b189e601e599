/**
 * Which databases a fleet covers, from the worker's configured aliases (the `resolveFleet`
 * activity; the CLI uses it to preview a selection). Waves are cut in workflows/fleet-input.ts.
 */
import { PhasegateError } from './errors';

/** `tenant_*`, `eu-?`, `[ab]*`: shell-style globs over aliases (`*` any run, `?` one character, `[…]` a class). */
export function globToRegExp(glob: string): RegExp {
  let out = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === '*') out += '.*';
    else if (c === '?') out += '.';
    else if (c === '[') {
      const end = glob.indexOf(']', i + 1);
      if (end < 0) throw new PhasegateError('InvalidSelector', `selector ${JSON.stringify(glob)} opens a [class] it never closes`);
      const body = glob.slice(i + 1, end).replace(/\\/g, '\\\\');
      out += `[${body.startsWith('!') ? `^${body.slice(1)}` : body}]`;
      i = end;
    } else out += c.replace(/[.+^${}()|\\/]/g, '\\$&');
  }
  return new RegExp(`^${out}$`);
}

/**
 * The databases of a fleet: the listed aliases (each must be configured, none twice) or the
 * configured aliases a glob matches, in name order. Throws a non-retryable error naming what is wrong.
 */
export function selectFleetDatabases(configured: string[], input: { databases?: string[]; select?: string }): string[] {
  const known = [...configured].sort();
  if (input.select !== undefined) {
    const re = globToRegExp(input.select);
    const matched = known.filter((alias) => re.test(alias));
    if (matched.length === 0) {
      throw new PhasegateError('NoDatabasesSelected', `selector ${JSON.stringify(input.select)} matches none of the ${known.length} databases configured on the worker (${preview(known)})`, {
        details: { configured: known },
      });
    }
    return matched;
  }
  const listed = input.databases ?? [];
  const unknown = listed.filter((alias) => !known.includes(alias));
  if (unknown.length > 0) {
    throw new PhasegateError('UnknownDatabase', `the worker has no database ${unknown.map((a) => JSON.stringify(a)).join(', ')}; configured: ${preview(known)}`, {
      details: { unknown, configured: known },
    });
  }
  return listed;
}

function preview(aliases: string[]): string {
  if (aliases.length === 0) return 'none';
  return aliases.length <= 10 ? aliases.join(', ') : `${aliases.slice(0, 10).join(', ')}, … (${aliases.length} in all)`;
}
