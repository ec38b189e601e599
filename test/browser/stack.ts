/**
 * The browser test's own `npm start` stack: scripts/start.ts run as `npm start` runs it, on free
 * ports and a temporary data folder. Stopped with SIGINT like a person's Ctrl-C (start.ts stops its
 * children in order); whatever is still alive afterwards (start.ts killed, a child that did not
 * stop) is killed by pid, so a failed test leaves nothing running.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../../lib/local/ports';

export const repoRoot = path.resolve(__dirname, '../..');

export interface Stack {
  dataDir: string;
  pgPort: number;
  temporalPort: number;
  uiPort: number;
  /** http://localhost:<ui port> */
  uiUrl: string;
  /** host:port of the Temporal frontend. */
  temporalAddress: string;
  /** What start.ts printed so far (stdout and stderr). */
  output(): string;
  /** SIGINT, wait for start.ts to exit, then kill every process of the stack that is left. */
  stop(): Promise<void>;
}

/** A process identity that survives pid reuse: pid plus its start time (field 22 of /proc/pid/stat). */
interface ProcId {
  pid: number;
  start: string;
  cmd: string;
}

function statOf(pid: number): { ppid: number; start: string } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may hold spaces: split after its last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(rest[1]), start: rest[19] };
  } catch {
    return undefined;
  }
}

function cmdlineOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
  } catch {
    return '';
  }
}

/** Every live process: pid → ppid. */
function processTable(): Map<number, number> {
  const table = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = statOf(Number(entry));
    if (stat) table.set(Number(entry), stat.ppid);
  }
  return table;
}

/** The process `root` and all its descendants, plus any process whose command line names `marker`. */
function processesOf(root: number, marker: string): ProcId[] {
  const table = processTable();
  const found = new Set<number>();
  const walk = (pid: number) => {
    if (found.has(pid)) return;
    found.add(pid);
    for (const [child, parent] of table) if (parent === pid) walk(child);
  };
  if (table.has(root)) walk(root);
  // Temporal (--db-filename) and PostgreSQL (-D) name the data folder: found even if orphaned.
  for (const pid of table.keys()) if (pid !== process.pid && cmdlineOf(pid).includes(marker)) walk(pid);
  return [...found].flatMap((pid) => {
    const stat = statOf(pid);
    return stat ? [{ pid, start: stat.start, cmd: cmdlineOf(pid) }] : [];
  });
}

function alive(proc: ProcId): boolean {
  return statOf(proc.pid)?.start === proc.start;
}

function killQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

export interface StartOptions {
  rows: number;
  /** How long to wait for "phasegate is up". */
  timeoutMs?: number;
  /** A folder to copy start.ts's output and the stack's logs into when it stops. */
  logsTo?: string;
  log?: (line: string) => void;
}

export async function startStack(opts: StartOptions): Promise<Stack> {
  const log = opts.log ?? (() => undefined);
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'phasegate-browser-'));
  const ports = new Set<number>();
  while (ports.size < 4) ports.add(await freePort());
  const [pgPort, temporalPort, uiPort, metricsPort] = [...ports];
  const args = [
    '--import', 'tsx', 'scripts/start.ts',
    '--data-dir', dataDir,
    '--pg-port', String(pgPort),
    '--temporal-port', String(temporalPort),
    '--ui-port', String(uiPort),
    '--rows', String(opts.rows),
  ];
  log(`$ node ${args.join(' ')}`);
  // As `npm start` runs it: embedded PostgreSQL, not a DATABASE_URL the caller's shell may have.
  const env = { ...process.env };
  delete env.DATABASE_URL;
  delete env.PHASEGATE_DATA_DIR;
  // The worker serves Prometheus metrics on a fixed port by default; this stack must not collide.
  env.PHASEGATE_METRICS_PORT = String(metricsPort);
  // detached: its own process group, so a signal to it (or its group) reaches nothing of jest's.
  const child: ChildProcess = spawn(process.execPath, args, { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code, signal) => resolve(code ?? (signal ? -1 : null))));
  let exitedYet = false;
  void exited.then(() => (exitedYet = true));

  const known = new Map<string, ProcId>();
  const remember = () => {
    for (const p of processesOf(child.pid!, dataDir)) known.set(`${p.pid}:${p.start}`, p);
  };
  // Last resort if jest itself exits before afterAll ran: kill what we know, synchronously.
  const onExit = () => {
    for (const p of known.values()) if (alive(p)) killQuietly(p.pid, 'SIGKILL');
  };
  process.once('exit', onExit);

  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      remember();
      if (!exitedYet) {
        killQuietly(child.pid!, 'SIGINT');
        const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 60_000).unref());
        if ((await Promise.race([exited, timer])) === 'timeout') log('start.ts did not exit within 60 s of SIGINT: killing it');
      }
      // Helpers that end with their parent (tsx's esbuild service) get a moment to do so.
      remember();
      let left = [...known.values()].filter(alive);
      for (let i = 0; i < 20 && left.length > 0; i++) {
        await new Promise((r) => setTimeout(r, 100));
        left = left.filter(alive);
      }
      for (const p of left) {
        log(`still running after the stop, killing: ${p.pid} ${p.cmd}`);
        killQuietly(p.pid, 'SIGKILL');
      }
      // PostgreSQL runs as another user and may need a moment to release its files.
      for (let i = 0; i < 50 && left.some(alive); i++) await new Promise((r) => setTimeout(r, 100));
      process.removeListener('exit', onExit);
      if (opts.logsTo) {
        mkdirSync(opts.logsTo, { recursive: true });
        writeFileSync(path.join(opts.logsTo, 'start.log'), output);
        for (const name of ['worker.log', 'temporal.log']) {
          if (existsSync(path.join(dataDir, name))) copyFileSync(path.join(dataDir, name), path.join(opts.logsTo, name));
        }
      }
      rmSync(dataDir, { recursive: true, force: true });
    })());

  const timeoutMs = opts.timeoutMs ?? 180_000;
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      remember();
      if (output.includes('phasegate is up')) break;
      if (exitedYet) throw new Error(`scripts/start.ts exited before "phasegate is up". Its output:\n${output}`);
      if (Date.now() > deadline) throw new Error(`no "phasegate is up" from scripts/start.ts within ${timeoutMs / 1000} s. Its output:\n${output}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    remember();
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    dataDir,
    pgPort,
    temporalPort,
    uiPort,
    uiUrl: `http://localhost:${uiPort}`,
    temporalAddress: `127.0.0.1:${temporalPort}`,
    output: () => output,
    stop,
  };
}
