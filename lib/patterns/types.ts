/**
 * What a pattern is: a named generator that turns validated arguments into a chain of revision
 * drafts — plain data (ops as method name + arguments, gate, backfill, check, the locks each step
 * takes) that `lib/patterns/source.ts` writes out as ordinary revision files. A pattern never
 * touches a database or the file system. Adding one is one file in `lib/patterns/` and one line in
 * `lib/patterns/index.ts`.
 */
import type { z } from 'zod';
import { PhasegateError } from '../errors';
import type { Op } from '../ops';
import type { BackfillSpec, CheckSpec, GateSpec } from '../revision';

/** The Op methods a draft may call: every public method of `Op` (data in, nothing returned). */
export type OpMethod = {
  [K in keyof Op]: Op[K] extends (...args: never[]) => void ? K : never;
}[keyof Op];

/** One op call as data: rendered into the file as `op.<method>(<args>);`, and recorded to validate it. */
export interface OpCall {
  method: OpMethod;
  args: unknown[];
  /** Written above the call: which lock it takes and why that is safe here. */
  comment?: string[];
}

/** `call('addColumn', 'accounts', 'org_id', 'bigint')`, type-checked against the Op method. */
export function call<K extends OpMethod>(method: K, ...args: Parameters<Op[K]>): OpCall {
  return { method, args };
}

/** `call(...)` with a comment line (or lines) written above it. */
export function commented(comment: string | string[], opCall: OpCall): OpCall {
  return { ...opCall, comment: Array.isArray(comment) ? comment : [comment] };
}

/** One revision of a pattern's chain, before it has an id or a parent. */
export interface RevisionDraft {
  /** The revision's message (also the file name's slug). */
  message: string;
  phase: string;
  /** `false` for CONCURRENTLY steps; default true. */
  transactional?: boolean;
  gate?: GateSpec;
  backfill?: BackfillSpec;
  check?: CheckSpec;
  /** Header paragraph: what the step does to locks and why it is safe (one line each). */
  notes: string[];
  upgrade: OpCall[];
  downgrade: OpCall[];
  /** Written in an empty upgrade/downgrade body: why there is nothing to do. */
  emptyUpgrade?: string;
  emptyDowngrade?: string;
}

export interface PatternArgument {
  /** Key in the validated input; `<name>` or `<name...>` in usage. */
  name: string;
  description: string;
  /** Takes the remaining positional arguments (last only). */
  variadic?: boolean;
  /** May be left out (last only). */
  optional?: boolean;
}

export interface PatternOption {
  /** Commander flags: `--default <expr>`, `--unique`. */
  flags: string;
  /** Key in the validated input (commander's camelCase of the long flag). */
  key: string;
  description: string;
  /** Must be given; `build` says so, with the description, before validating the rest. */
  required?: boolean;
}

/** A pattern as its file declares it: typed input `I`, validated by `input`. */
export interface PatternDefinition<I> {
  name: string;
  /** One line for `phasegate new --help`. */
  summary: string;
  arguments: PatternArgument[];
  options: PatternOption[];
  /** Validates `{ ...arguments by name, ...options by key }`; unknown keys are an error. */
  input: z.ZodType<I>;
  /** The chain, first revision first. */
  plan(input: I): RevisionDraft[];
}

/** A registered pattern: the definition with its input type hidden behind `build`. */
export interface Pattern {
  name: string;
  summary: string;
  arguments: PatternArgument[];
  options: PatternOption[];
  /** Validates raw arguments and options, then plans; throws InvalidPatternArguments. */
  build(args: readonly string[], options: Record<string, unknown>): RevisionDraft[];
}

/** Usage line: `add-index <table> <columns...> [--unique] [--name <index>]`. */
export function usage(pattern: Pick<Pattern, 'name' | 'arguments' | 'options'>): string {
  const args = pattern.arguments.map((a) => {
    const inner = `${a.name}${a.variadic ? '...' : ''}`;
    return a.optional ? `[${inner}]` : `<${inner}>`;
  });
  const options = pattern.options.map((o) => (o.required ? o.flags : `[${o.flags}]`));
  return ['phasegate new', pattern.name, ...args, ...options].join(' ');
}

export class InvalidPatternArgumentsError extends PhasegateError {
  constructor(pattern: Pick<Pattern, 'name' | 'arguments' | 'options'>, problems: string[]) {
    super('InvalidPatternArguments', `${pattern.name}: ${problems.join('; ')}. Usage: ${usage(pattern)}`, {
      details: { pattern: pattern.name, problems },
    });
  }
}

/** Positional arguments by name, as the pattern declares them. */
function namedArguments(pattern: Pick<Pattern, 'name' | 'arguments' | 'options'>, args: readonly string[]): Record<string, unknown> {
  const named: Record<string, unknown> = {};
  const problems: string[] = [];
  pattern.arguments.forEach((a, i) => {
    if (a.variadic) {
      const rest = args.slice(i);
      if (rest.length === 0 && !a.optional) problems.push(`missing <${a.name}...>`);
      named[a.name] = rest;
    } else if (i < args.length) {
      named[a.name] = args[i];
    } else if (!a.optional) {
      problems.push(`missing <${a.name}>`);
    }
  });
  const takes = pattern.arguments.some((a) => a.variadic) ? Infinity : pattern.arguments.length;
  if (args.length > takes) problems.push(`too many arguments (${args.slice(takes).join(' ')})`);
  if (problems.length) throw new InvalidPatternArgumentsError(pattern, problems);
  return named;
}

export function definePattern<I>(definition: PatternDefinition<I>): Pattern {
  return {
    name: definition.name,
    summary: definition.summary,
    arguments: definition.arguments,
    options: definition.options,
    build(args, options) {
      const known = new Set(definition.options.map((o) => o.key));
      const unknown = Object.keys(options).filter((k) => options[k] !== undefined && !known.has(k));
      if (unknown.length) throw new InvalidPatternArgumentsError(definition, [`unknown option(s) ${unknown.join(', ')}`]);
      const missing = definition.options.filter((o) => o.required && options[o.key] === undefined);
      if (missing.length) throw new InvalidPatternArgumentsError(definition, missing.map((o) => `${o.flags} is required: ${o.description}`));
      const defined = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
      const parsed = definition.input.safeParse({ ...namedArguments(definition, args), ...defined });
      if (!parsed.success) {
        const optionFlag = new Map(definition.options.map((o) => [o.key, o.flags.split(/[ ,]/)[0]]));
        throw new InvalidPatternArgumentsError(
          definition,
          parsed.error.issues.map((issue) => {
            const key = String(issue.path[0] ?? '');
            const where = optionFlag.get(key) ?? (key ? `<${key}>` : 'arguments');
            return `${where}${issue.path.length > 1 ? `[${issue.path.slice(1).join('.')}]` : ''}: ${issue.message}`;
          }),
        );
      }
      return definition.plan(parsed.data);
    },
  };
}
