/**
 * What `migrateFleet` accepts from outside, checked with zod inside the workflow (as ./input.ts does
 * for `migrate`): a bad input fails the fleet at once, non-retryably, listing every problem, before
 * any database is touched; a bad control payload is refused (Update) or recorded and ignored (signal).
 */
import { z } from 'zod';
import type { FleetInput, FleetVerb } from './fleet-messages';

const alias = z.string({ error: 'each database must be an alias string' }).regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}$/, { error: 'a database must be an alias (letters, digits, _ . -), never a URL' });
const count = (field: string, min: number, max: number) =>
  z
    .number({ error: `"${field}" must be a number` })
    .int({ error: `"${field}" must be a whole number` })
    .min(min, { error: `"${field}" must be at least ${min}` })
    .max(max, { error: `"${field}" must be at most ${max}` });

const rolloutSchema = z
  .strictObject(
    {
      canary: count('canary', 0, 100_000).optional(),
      waveSize: count('waveSize', 1, 100_000).optional(),
      wavePercent: z.number({ error: '"wavePercent" must be a number' }).gt(0, { error: '"wavePercent" must be above 0' }).max(100, { error: '"wavePercent" must be at most 100' }).optional(),
      maxConcurrent: count('maxConcurrent', 1, 1_000).optional(),
      failureThreshold: count('failureThreshold', 1, 100_000).optional(),
      approval: z.enum(['wave', 'database'], { error: '"approval" must be "wave" (one approveWave per gate and wave) or "database" (each database approved on its own)' }).optional(),
      gateEveryWave: z.boolean({ error: '"gateEveryWave" must be true or false' }).optional(),
    },
    { error: (issue) => (issue.code === 'unrecognized_keys' ? undefined : '"rollout" must be an object like {"canary":1,"waveSize":10,"maxConcurrent":5}') },
  )
  .refine((r) => r.waveSize === undefined || r.wavePercent === undefined, { error: 'give "waveSize" or "wavePercent", not both' });

const fleetInputSchema = z
  .strictObject(
    {
      databases: z.array(alias, { error: '"databases" must be a list of aliases, e.g. ["tenant_1","tenant_2"]' }).min(1, { error: '"databases" must not be empty' }).max(100_000).optional(),
      select: z.string({ error: '"select" must be a glob string such as "tenant_*"' }).min(1, { error: '"select" must not be empty' }).max(200).optional(),
      target: z.string({ error: '"target" must be a string: a revision id, "head", "base", …' }).trim().min(1, { error: '"target" must not be empty' }).max(500).optional(),
      direction: z.enum(['upgrade', 'downgrade'], { error: '"direction" must be "upgrade" or "downgrade"' }).optional(),
      rollout: rolloutSchema.optional(),
      continueAsNewAfterEvents: count('continueAsNewAfterEvents', 50, 50_000).optional(),
      carried: z.record(z.string(), z.unknown()).optional(),
    },
    { error: (issue) => (issue.code === 'unrecognized_keys' ? undefined : 'the input must be a JSON object like {"select":"tenant_*","target":"head","rollout":{"canary":1,"waveSize":10}}') },
  )
  .refine((i) => new Set(i.databases ?? []).size === (i.databases ?? []).length, { error: '"databases" lists an alias more than once' });

export function fleetInputProblems(raw: unknown): { input: FleetInput | null; problems: string[] } {
  const parsed = fleetInputSchema.safeParse(raw);
  // Checked apart from the schema, so it is reported together with any other problem.
  const given = raw && typeof raw === 'object' ? (raw as Record<string, unknown>) : null;
  const which =
    given && given.carried === undefined && (given.databases === undefined) === (given.select === undefined)
      ? ['give the databases: "databases" (a list of aliases) or "select" (a glob such as "tenant_*"), exactly one of them']
      : [];
  if (parsed.success && which.length === 0) return { input: parsed.data as FleetInput, problems: [] };
  return { input: null, problems: [...(parsed.success ? [] : parsed.error.issues.map(describe)), ...which] };
}

const by = z
  .string({ error: (issue) => (issue.input === undefined ? '"by" is missing: say who decides, e.g. {"by":"alice"}' : '"by" must be a string') })
  .max(200, { error: '"by" is longer than 200 characters' })
  .refine((v) => v.trim() !== '' && !v.includes('\u0000'), { error: '"by" must name who decides (e.g. {"by":"alice"})' });
const comment = z.string({ error: '"comment" must be a string' }).max(2000, { error: '"comment" is longer than 2000 characters' }).optional();
const object = (example: string) => ({ error: (issue: { code: string }) => (issue.code === 'unrecognized_keys' ? undefined : `expected an object like ${example}`) });

const controlSchemas: Record<FleetVerb, z.ZodType> = {
  pause: z.strictObject({ by, comment }, object('{"by":"alice"}')),
  resume: z.strictObject({ by, comment }, object('{"by":"alice"}')),
  abort: z.strictObject({ by, comment }, object('{"by":"alice","comment":"…"}')),
  approveWave: z.strictObject({ by, comment, gate: z.string({ error: '"gate" must be a gate name' }).max(200).optional() }, object('{"by":"alice"}')),
  retry: z.strictObject({ by, comment, databases: z.array(alias, { error: '"databases" must be a list of aliases' }).optional() }, object('{"by":"alice"}')),
};

/** Why a fleet control payload is malformed, or null. */
export function fleetPayloadProblem(verb: FleetVerb, raw: unknown): string | null {
  const parsed = controlSchemas[verb].safeParse(raw);
  if (parsed.success) return null;
  return `${verb} input ${JSON.stringify(raw) ?? 'undefined'} is not valid: ${parsed.error.issues.map(describe).join('; ')}`;
}

function describe(issue: z.core.$ZodIssue): string {
  if (issue.code === 'unrecognized_keys') return `unknown field(s) ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
  return issue.path.length > 0 && !issue.message.includes('"') ? `${issue.path.join('.')}: ${issue.message}` : issue.message;
}

/** Cuts `databases` (in rollout order) into waves: the canary first, then waves of `waveSize` or `wavePercent` %. */
export function planWaves(databases: string[], rollout: { canary: number; waveSize?: number; wavePercent?: number }): string[][] {
  const waves: string[][] = [];
  const canary = Math.min(rollout.canary, databases.length);
  if (canary > 0) waves.push(databases.slice(0, canary));
  const rest = databases.slice(canary);
  const size = rollout.waveSize ?? (rollout.wavePercent !== undefined ? Math.max(1, Math.ceil((databases.length * rollout.wavePercent) / 100)) : rest.length);
  for (let i = 0; i < rest.length; i += Math.max(1, size)) waves.push(rest.slice(i, i + Math.max(1, size)));
  return waves;
}
