/**
 * Reading revision files from a folder: each `.ts`/`.js` file is one revision module. This layer
 * knows files and nothing of the database. Each loaded revision carries the sha256 of its file, so
 * a file edited after planning is caught before it runs.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { prepareToRequire } from './loader';
import { RevisionFileError } from './errors';
import { windowProblems } from './window';
import type { RevisionModule, RevisionNode } from './revision';

export interface LoadedRevision {
  module: RevisionModule;
  node: RevisionNode;
  file: string;
  hash: string;
}

const revisionShape = z
  .object({
    id: z.string().regex(/^[A-Za-z0-9_]+$/, 'must be letters, digits or _'),
    parent: z.string().nullable().optional(),
    parents: z.array(z.string()).optional(),
    message: z.string(),
    branchLabels: z.array(z.string().regex(/^[A-Za-z0-9_-]+$/)).optional(),
    dependsOn: z.array(z.string()).optional(),
    transactional: z.boolean().optional(),
    phase: z.string().optional(),
    gate: z
      .object({
        name: z.string().min(1).optional(),
        prompt: z.string().min(1),
        onReject: z.enum(['rollback', 'hold']).optional(),
        approvers: z.array(z.string().min(1)).optional(),
        remindAfter: z.union([z.number().positive(), z.string().min(1)]).optional(),
        expireAfter: z.union([z.number().positive(), z.string().min(1)]).optional(),
      })
      .strict()
      .optional(),
    backfill: z
      .object({
        table: z.string().min(1),
        key: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).optional(),
        set: z.record(z.string(), z.string().min(1)).refine((v) => Object.keys(v).length > 0, 'needs at least one column'),
        where: z.string().min(1).optional(),
        batchSize: z.number().int().positive().optional(),
        delayMs: z.number().int().nonnegative().optional(),
        maxRowsPerSecond: z.number().positive().optional(),
        targetBatchMs: z.number().int().nonnegative().optional(),
        parallelism: z.number().int().positive().max(64).optional(),
        sliceCallMs: z.number().int().positive().max(600_000).optional(),
        window: z
          .object({
            maxRowsPerSecond: z.number().positive().nullable().optional(),
            outside: z.enum(['run', 'wait'], { message: "must be 'run' (at the backfill's own pace) or 'wait' (only inside windows)" }).optional(),
          })
          .strict()
          .refine((w) => w.maxRowsPerSecond !== undefined || w.outside !== undefined, "needs maxRowsPerSecond (the pace inside windows) or outside: 'wait'")
          .optional(),
      })
      .strict()
      .optional(),
    check: z.object({ name: z.string().min(1), failingRows: z.string().min(1), timeoutMs: z.number().int().positive().optional() }).strict().optional(),
    soak: z.union([z.number().positive(), z.string().min(1)]).optional(),
    // Checked in full (cron, duration, time zone) when the plan is built: lib/window.ts.
    window: z.unknown().superRefine((value, ctx) => {
      if (value === undefined || value === null || value === false) return;
      for (const problem of windowProblems(value)) ctx.addIssue({ code: 'custom', message: problem });
    }),
    upgrade: z.custom<RevisionModule['upgrade']>((v) => typeof v === 'function', 'must be a function upgrade(op)'),
    downgrade: z.custom<RevisionModule['downgrade']>(
      (v) => typeof v === 'function',
      'must be a function downgrade(op); write one that reverses upgrade, or one that throws with the reason it cannot be reversed',
    ),
  })
  .passthrough();

export function hashFile(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

const isRevisionFile = (name: string) => /\.(ts|js|cjs|mjs)$/.test(name) && !name.endsWith('.d.ts') && !name.startsWith('_');

/** Loads one revision file, fresh from disk (the module cache is bypassed when its content changed). */
export function loadRevisionFile(file: string): LoadedRevision {
  const absolute = path.resolve(file);
  const hash = hashFile(absolute);
  let exported: unknown;
  try {
    if (loadedHashes.get(absolute) !== hash) delete require.cache[require.resolve(absolute)];
    // Revision files are code the user's project compiles on the fly (lib/loader.ts registers tsx when nothing else did).
    prepareToRequire(absolute);
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const mod = require(absolute) as Record<string, unknown>;
    exported = mod.default ?? mod.revision ?? mod;
    loadedHashes.set(absolute, hash);
  } catch (err) {
    throw new RevisionFileError(absolute, `does not load: ${(err as Error).message.split('\n')[0]}. Fix the file (npx tsc --noEmit) and try again`);
  }
  const parsed = revisionShape.safeParse(exported);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(export)'} ${i.message}`);
    throw new RevisionFileError(absolute, `is not a valid revision: ${problems.join('; ')}`);
  }
  const module = parsed.data as unknown as RevisionModule;
  if (module.parent && module.parents) {
    throw new RevisionFileError(absolute, 'declares both parent and parents; use parents for a merge, parent otherwise');
  }
  const parents = module.parents ?? (module.parent ? [module.parent] : []);
  return {
    module,
    file: absolute,
    hash,
    node: {
      id: module.id,
      parents,
      dependsOn: module.dependsOn ?? [],
      branchLabels: module.branchLabels ?? [],
      message: module.message,
    },
  };
}

const loadedHashes = new Map<string, string>();

/** Loads every revision file in a folder, sorted by file name; `configFile` is named when the folder is missing. */
export function loadRevisionDirectory(directory: string, configFile = 'temporal.config.ts'): LoadedRevision[] {
  const absolute = path.resolve(directory);
  let names: string[];
  try {
    if (!statSync(absolute).isDirectory()) throw new Error('not a directory');
    names = readdirSync(absolute);
  } catch {
    throw new RevisionFileError(absolute, `migrations folder not found; run \`phasegate init\` or set migrations.directory in ${configFile}`);
  }
  return names
    .filter(isRevisionFile)
    .sort()
    .map((name) => loadRevisionFile(path.join(absolute, name)));
}
