/**
 * Every command `npm start` prints works as printed: the stack runs on non-default ports, so each
 * `temporal …` and `npm run phasegate …` line must carry `--address`, and the printed PATH must
 * hold the CLI under the name `temporal`. The lines are pasted into bash exactly as printed, in the
 * order a newcomer would try them, and the demo migration is driven to its end with them alone.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { repoRoot, startStack, type Stack } from './stack';

const run = promisify(execFile);
let stack: Stack;

beforeAll(async () => {
  stack = await startStack({ rows: 20_000, log: (line) => process.stdout.write(`${line}\n`) });
}, 240_000);
afterAll(() => stack?.stop());

/** The "Next" block of start.ts's output: the PATH folder and the commands, trailing notes removed. */
function printed(output: string): { pathDir: string; commands: string[] } {
  const block = output.slice(output.indexOf('phasegate is up'));
  const pathDir = /export PATH="([^"]+):\$PATH"/.exec(block)?.[1];
  if (!pathDir) throw new Error(`no export PATH line in:\n${block}`);
  const commands = block
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.includes('npm run phasegate') || l.startsWith('temporal '))
    .map((l) => l.slice(l.startsWith('temporal ') ? 0 : l.indexOf('npm run phasegate')).replace(/\s+\(during the backfill.*\)$/, ''));
  return { pathDir, commands };
}

/** PATH as a shell without any temporal binary has it, plus the printed folder first. */
function shellPath(pathDir: string): string {
  const rest = (process.env.PATH ?? '').split(':').filter((d) => d && !existsSync(path.join(d, 'temporal')));
  return [pathDir, ...rest].join(':');
}

async function paste(line: string, pathDir: string, timeoutMs = 60_000): Promise<{ stdout: string; stderr: string }> {
  // A fresh shell: no TEMPORAL_ADDRESS to hide a missing --address.
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: shellPath(pathDir) };
  delete env.TEMPORAL_ADDRESS;
  delete env.TEMPORAL_NAMESPACE;
  return run('bash', ['-c', line], { cwd: repoRoot, timeout: timeoutMs, env });
}

async function demoStatus(pathDir: string, queryLine: string): Promise<{ state: string; backfill?: { rowsDone: number } | null }> {
  const { stdout } = await paste(`${queryLine} -o json`, pathDir);
  const parsed = JSON.parse(stdout) as { queryResult: Array<{ state: string; backfill?: { rowsDone: number } | null }> };
  return parsed.queryResult[0];
}

async function until(what: string, probe: () => Promise<boolean>, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

test('the commands npm start prints on non-default ports work when pasted, and drive the demo to its end', async () => {
  const { pathDir, commands } = printed(stack.output());
  const address = `--address ${stack.temporalAddress}`;
  expect(commands.length).toBeGreaterThanOrEqual(8);
  for (const c of commands) expect(c).toContain(address);
  // The printed folder gives the shell a `temporal`.
  expect((await paste('command -v temporal', pathDir)).stdout.trim()).toBe(path.join(pathDir, 'temporal'));

  const find = (prefix: string) => {
    const line = commands.find((c) => c.startsWith(prefix) || c.includes(prefix));
    if (!line) throw new Error(`no printed command with "${prefix}" in:\n${commands.join('\n')}`);
    return line;
  };
  const query = find('--name status');
  await until('the gate', async () => (await demoStatus(pathDir, query)).state === 'awaiting-approval');

  // status --watch redraws until stopped: it shows the gate within seconds (tsx starts slowly on a busy machine).
  const watch = find('status --database demo --watch');
  const watched = await paste(`timeout 20 ${watch}; true`, pathDir);
  expect(watched.stdout).toContain('awaiting-approval');
  expect(watched.stdout).toContain('gate "deploy:accounts.org_id"');

  const approved = await paste(find('approve --database demo --by you'), pathDir);
  expect(approved.stdout).toContain('migrate-demo: approve accepted');
  await until('the backfill', async () => (await demoStatus(pathDir, query)).state === 'backfilling');
  // The temporal CLI's approve, now that no gate waits, is a signal: accepted by the server, recorded as ignored.
  await paste(find("--name approve --input '{\"by\":\"you\"}'"), pathDir);

  const paused = await paste(find('pause --database demo'), pathDir);
  expect(paused.stdout).toContain('migrate-demo: pause accepted');
  await until('paused', async () => (await demoStatus(pathDir, query)).state === 'paused');
  const rows = (await demoStatus(pathDir, query)).backfill?.rowsDone ?? 0;
  expect(rows).toBeLessThan(20_000);
  await paste(find("--name pause --input '{}'"), pathDir); // a second pause: answered, nothing changes
  await paste(find("--name resume --input '{}'"), pathDir);
  await until('running again', async () => (await demoStatus(pathDir, query)).state !== 'paused');
  const lifted = await paste(find('throttle --database demo --max-rows-per-second 0'), pathDir);
  expect(lifted.stdout).toContain('throttle');
  await until('the demo to finish', async () => (await demoStatus(pathDir, query)).state === 'done', 180_000);
}, 400_000);
