/**
 * Headless Chromium for the browser tests: Debian's `chromium` package (/usr/bin/chromium),
 * installed with apt-get when missing, driven by playwright-core. Playwright never downloads a
 * browser here: it is only pointed at the system one.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM_PATH = '/usr/bin/chromium';

/** Flags for a loaded, offline CI machine: no sandbox (root), no GPU, nothing phoning home. */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * Returns /usr/bin/chromium, first installing Debian's `chromium` with apt-get when it is missing
 * (as root directly, otherwise through `sudo -n`). Every apt command and its output is printed
 * through `log`; a failed install throws an error that says what to do.
 */
export function ensureChromium(log: (line: string) => void = (line) => console.log(line)): string {
  if (existsSync(CHROMIUM_PATH)) return CHROMIUM_PATH;
  const sudo = os.userInfo().uid === 0 ? [] : ['sudo', '-n'];
  const run = (args: string[]) => {
    const [cmd, ...rest] = [...sudo, ...args];
    log(`$ ${[cmd, ...rest].join(' ')}`);
    const result = spawnSync(cmd, rest, {
      encoding: 'utf8',
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      stdio: ['ignore', 'pipe', 'pipe'],
      maxBuffer: 64 * 1024 * 1024,
      timeout: 15 * 60_000,
    });
    const output = `${result.stdout ?? ''}${result.stderr ?? ''}`.trimEnd();
    if (output) log(output);
    if (result.error) throw result.error;
    if (result.status !== 0) throw new Error(`${[cmd, ...rest].join(' ')} exited with code ${result.status}`);
  };
  log(`${CHROMIUM_PATH} is missing: installing Debian's chromium with apt-get`);
  try {
    try {
      run(['apt-get', 'install', '-y', 'chromium']);
    } catch {
      // A fresh machine may have no package lists yet.
      run(['apt-get', 'update']);
      run(['apt-get', 'install', '-y', 'chromium']);
    }
  } catch (err) {
    throw new Error(
      `could not install Debian's chromium with apt-get (${(err as Error).message}). ` +
        `The browser tests need ${CHROMIUM_PATH}: run \`apt-get update && apt-get install -y chromium\` as root and try again.`,
    );
  }
  if (!existsSync(CHROMIUM_PATH)) throw new Error(`apt-get installed chromium but ${CHROMIUM_PATH} is still missing`);
  return CHROMIUM_PATH;
}

/** The installed Chromium's own version line, e.g. "Chromium 131.0.6778.85 built on Debian …". */
export function chromiumVersion(executablePath = CHROMIUM_PATH): string {
  try {
    return execFileSync(executablePath, ['--version'], { encoding: 'utf8', timeout: 30_000 }).trim();
  } catch (err) {
    return `unknown (${(err as Error).message})`;
  }
}

/** Launches headless Chromium (installing it first when missing). Close the browser when done. */
export async function launchChromium(log?: (line: string) => void): Promise<Browser> {
  const executablePath = ensureChromium(log);
  return chromium.launch({ executablePath, headless: true, args: CHROMIUM_ARGS, timeout: 120_000 });
}
