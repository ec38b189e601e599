/**
 * Finding or building the `temporal` CLI (its dev server is phasegate's local Temporal).
 * Order: PATH, $TEMPORAL_CLI, .tools/bin/temporal, the per-user cache, then `go install` into
 * .tools/bin (and a copy into the cache so fresh clones on this machine skip the build).
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants, copyFileSync, mkdirSync, renameSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** v1.5.1 is the newest tag `go install` accepts (later tags carry a `replace` directive). */
export const TEMPORAL_CLI_TAGS = ['v1.5.1', 'v1.5.0', 'v1.4.1'];
const MODULE = 'github.com/temporalio/cli/cmd/temporal';

export interface FoundCli {
  path: string;
  source: 'PATH' | 'TEMPORAL_CLI' | '.tools/bin' | 'cache' | 'built';
}

export function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'phasegate');
}

function onPath(env: NodeJS.ProcessEnv): string | undefined {
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    if (dir && isExecutable(path.join(dir, 'temporal'))) return path.join(dir, 'temporal');
  }
  return undefined;
}

export function findTemporalCli(root: string, env: NodeJS.ProcessEnv = process.env): FoundCli | undefined {
  const fromPath = onPath(env);
  if (fromPath) return { path: fromPath, source: 'PATH' };
  if (env.TEMPORAL_CLI) {
    if (!isExecutable(env.TEMPORAL_CLI)) throw new Error(`TEMPORAL_CLI=${env.TEMPORAL_CLI} is not an executable file`);
    return { path: env.TEMPORAL_CLI, source: 'TEMPORAL_CLI' };
  }
  const local = path.join(root, '.tools', 'bin', 'temporal');
  if (isExecutable(local)) return { path: local, source: '.tools/bin' };
  for (const tag of TEMPORAL_CLI_TAGS) {
    const cached = path.join(cacheDir(env), `temporal-${tag}`);
    if (isExecutable(cached)) {
      copyInto(cached, local);
      return { path: local, source: 'cache' };
    }
  }
  return undefined;
}

function copyInto(from: string, to: string): void {
  mkdirSync(path.dirname(to), { recursive: true });
  const partial = `${to}.partial-${process.pid}`;
  copyFileSync(from, partial);
  renameSync(partial, to); // atomic: a concurrent reader never sees half a binary
}

function goAvailable(env: NodeJS.ProcessEnv): boolean {
  const result = spawnSync('go', ['version'], { env, encoding: 'utf8' });
  return result.status === 0;
}

export class TemporalCliUnavailable extends Error {
  readonly type = 'TemporalCliUnavailable';
}

/** Finds the CLI or builds it; `say` reports each step (building takes minutes the first time). */
export function ensureTemporalCli(root: string, say: (line: string) => void, env: NodeJS.ProcessEnv = process.env): FoundCli {
  const found = findTemporalCli(root, env);
  if (found) {
    say(`temporal CLI: ${found.path} (from ${found.source})`);
    return found;
  }
  if (!goAvailable(env)) {
    throw new TemporalCliUnavailable(
      'The Temporal CLI was not found and Go is not installed to build it. Provide it in one of three ways:\n' +
        '  1. put a `temporal` binary on PATH;\n' +
        '  2. set TEMPORAL_CLI=/path/to/temporal;\n' +
        `  3. install Go >= 1.25 and run \`npm run setup\` (builds ${MODULE}@${TEMPORAL_CLI_TAGS[0]} into .tools/bin).`,
    );
  }
  const binDir = path.join(root, '.tools', 'bin');
  mkdirSync(binDir, { recursive: true });
  const errors: string[] = [];
  for (const tag of TEMPORAL_CLI_TAGS) {
    say(`building ${MODULE}@${tag} with go install into ${binDir} (the first build takes several minutes)…`);
    const result = spawnSync('go', ['install', `${MODULE}@${tag}`], {
      env: { ...env, GOBIN: binDir },
      stdio: ['ignore', 'inherit', 'pipe'],
      encoding: 'utf8',
    });
    const built = path.join(binDir, 'temporal');
    if (result.status === 0 && isExecutable(built)) {
      const cached = path.join(cacheDir(env), `temporal-${tag}`);
      try {
        copyInto(built, cached);
        say(`cached a copy at ${cached}`);
      } catch (err) {
        say(`could not cache the binary at ${cached}: ${(err as Error).message} (continuing)`);
      }
      return { path: built, source: 'built' };
    }
    errors.push(`${tag}: ${(result.stderr ?? '').trim().split('\n').slice(-3).join(' | ')}`);
  }
  throw new TemporalCliUnavailable(`go install failed for every tag tried:\n  ${errors.join('\n  ')}`);
}
