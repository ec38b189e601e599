/**
 * What `migrate` accepts from outside: its input and every control payload, checked with zod inside
 * the workflow (zod is pure and deterministic, so it runs in the sandbox). Bad input fails the
 * workflow at once, non-retryably, listing every problem; a bad signal is recorded and ignored; a
 * bad Update is refused by its validator before it enters history. One schema per payload, so the
 * three paths can never disagree.
 */
import { z } from 'zod';
import type { ControlVerb, MigrateInput } from './messages';

/** PostgreSQL cannot store NUL in text; a value with one would fail at the audit insert, later. */
const text = (what: string, max: number, missing = `${what} is missing`) =>
  z
    .string({ error: (issue) => (issue.input === undefined ? missing : `${what} must be a string`) })
    .max(max, { error: `${what} is longer than ${max} characters` })
    .refine((v) => !v.includes('\u0000'), { error: `${what} must not contain a NUL (\\u0000) character` });

const by = text('"by"', 200, '"by" is missing: say who decides, e.g. {"by":"alice"}').refine((v) => v.trim() !== '', { error: '"by" must name who decides (e.g. {"by":"alice"})' });

const migrateInputSchema = z.strictObject(
  {
    database: z
      .string({ error: '"database" is required: the alias of a database configured on the workers, e.g. {"database":"default"}' })
      .regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}$/, { error: '"database" must be an alias (letters, digits, _ . -), never a URL' }),
    target: z
      .string({ error: '"target" must be a string: a revision id, "head", "heads", "base", "+N", "-N" or "<label>@head"' })
      .trim()
      .min(1, { error: '"target" must not be empty' })
      .max(500, { error: '"target" is longer than 500 characters: give a revision id, "head", "heads", "base", "+N", "-N" or "<label>@head"' })
      .optional(),
    direction: z.enum(['upgrade', 'downgrade'], { error: '"direction" must be "upgrade" or "downgrade"' }).optional(),
    autoApprove: z.boolean({ error: '"autoApprove" must be true or false (a JSON boolean, not a string)' }).optional(),
    continueAsNewAfterEvents: z
      .number({ error: '"continueAsNewAfterEvents" must be a number of history events' })
      .int({ error: '"continueAsNewAfterEvents" must be a whole number' })
      .min(20, { error: '"continueAsNewAfterEvents" must be at least 20 (a new run starts with a few events of its own)' })
      .max(50_000, { error: '"continueAsNewAfterEvents" must be at most 50000 (Temporal caps a history at 51200 events)' })
      .optional(),
    backfillContinueAsNewAfterCalls: z
      .number({ error: '"backfillContinueAsNewAfterCalls" must be a number of slice calls' })
      .int({ error: '"backfillContinueAsNewAfterCalls" must be a whole number' })
      .min(1, { error: '"backfillContinueAsNewAfterCalls" must be at least 1' })
      .max(100_000, { error: '"backfillContinueAsNewAfterCalls" must be at most 100000' })
      .optional(),
    fleet: z
      .string({ error: '"fleet" must be the workflow id of the migrateFleet that started this migration (leave it out otherwise)' })
      .min(1, { error: '"fleet" must not be empty' })
      .max(255, { error: '"fleet" is longer than 255 characters' })
      .optional(),
    carried: z.record(z.string(), z.unknown()).optional(),
  },
  { error: (issue) => (issue.code === 'unrecognized_keys' ? undefined : 'the input must be a JSON object like {"database":"default","target":"head"}') },
);

/** The problems of a raw `migrate` input, one line each (empty when it is fine). */
export function migrateInputProblems(raw: unknown): { input: MigrateInput | null; problems: string[] } {
  const parsed = migrateInputSchema.safeParse(raw);
  if (parsed.success) return { input: parsed.data as MigrateInput, problems: [] };
  return { input: null, problems: parsed.error.issues.map(describeIssue) };
}

const throttleSchema = z
  .strictObject(
    {
      batchSize: z
        .number({ error: 'batchSize must be a number' })
        .int({ error: 'batchSize must be a whole number' })
        .min(10, { error: 'batchSize must be at least 10' })
        .max(1_000_000, { error: 'batchSize must be at most 1000000' })
        .optional(),
      delayMs: z
        .number({ error: 'delayMs must be a number of milliseconds' })
        .int({ error: 'delayMs must be a whole number of milliseconds' })
        .min(0, { error: 'delayMs must be ≥ 0' })
        .max(600_000, { error: 'delayMs must be at most 600000 (10 minutes)' })
        .optional(),
      maxRowsPerSecond: z.number({ error: 'maxRowsPerSecond must be a number' }).min(0, { error: 'maxRowsPerSecond must be ≥ 0 (0 lifts the limit)' }).optional(),
      by: by.optional(),
    },
    { error: (issue) => (issue.code === 'unrecognized_keys' ? undefined : 'expected an object {batchSize?, delayMs?, maxRowsPerSecond?}') },
  )
  .refine((t) => t.batchSize !== undefined || t.delayMs !== undefined || t.maxRowsPerSecond !== undefined, {
    error: 'nothing to change: give batchSize, delayMs or maxRowsPerSecond',
  });

const objectError = (example: string) => ({
  error: (issue: { code: string }) => (issue.code === 'unrecognized_keys' ? undefined : `expected an object like ${example}`),
});

const controlSchemas: Record<ControlVerb, z.ZodType> = {
  approve: z.strictObject({ by, gate: text('"gate"', 200).optional(), comment: text('"comment"', 2000).optional() }, objectError('{"by":"alice"}')),
  reject: z.strictObject({ by, gate: text('"gate"', 200).optional(), reason: text('"reason"', 2000).optional() }, objectError('{"by":"alice","reason":"…"}')),
  retry: z.strictObject({ by, comment: text('"comment"', 2000).optional() }, objectError('{"by":"alice"}')),
  rollback: z.strictObject(
    { by, pastGates: z.boolean({ error: '"pastGates" must be true or false' }).optional(), reason: text('"reason"', 2000).optional() },
    objectError('{"by":"alice"}'),
  ),
  abandon: z.strictObject({ by, reason: text('"reason"', 2000).optional() }, objectError('{"by":"alice","reason":"…"}')),
  // pause/resume take no fields; an empty input (the UI sends none) is fine.
  pause: z.strictObject({ by: by.optional() }, objectError('{}')),
  resume: z.strictObject({ by: by.optional() }, objectError('{}')),
  throttle: throttleSchema,
  skipSoak: z.strictObject({ by, comment: text('"comment"', 2000).optional() }, objectError('{"by":"alice"}')),
};

/** Why a control payload is malformed (all problems in one sentence), or null when it is fine. */
export function payloadProblem(verb: ControlVerb, raw: unknown): string | null {
  const value = raw === undefined || raw === null ? (verb === 'pause' || verb === 'resume' ? {} : raw) : raw;
  const parsed = controlSchemas[verb].safeParse(value);
  if (parsed.success) return null;
  return `${verb} input ${JSON.stringify(raw) ?? 'undefined'} is not valid: ${parsed.error.issues.map(describeIssue).join('; ')}`;
}

function describeIssue(issue: z.core.$ZodIssue): string {
  if (issue.code === 'unrecognized_keys') return `unknown field(s) ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
  return issue.message;
}
