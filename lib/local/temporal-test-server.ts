/**
 * Temporal's time-skipping test server (the Java `io.temporal:temporal-test-server` from Maven
 * Central), for tests that skip hours of durable timers (maintenance windows, soaks). Order:
 * $PHASEGATE_TEMPORAL_TEST_SERVER (an executable), then the per-user cache
 * (~/.cache/phasegate/temporal-test-server-<version>/), else fetched there with
 * `mvn dependency:copy-dependencies` (needs mvn and Java 11+). The cache folder is filled in a
 * temporary folder next to it and renamed into place, so a reader never sees half of it.
 * `@temporalio/testing` runs the wrapper script as `<wrapper> <port> --enable-time-skipping`.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { cacheDir, isExecutable } from './temporal-cli';

export const TEMPORAL_TEST_SERVER_VERSION = '1.38.0';
const WRAPPER = 'temporal-test-server';

function available(command: string, args: string[], env: NodeJS.ProcessEnv): boolean {
  return spawnSync(command, args, { env, encoding: 'utf8' }).status === 0;
}

export function temporalTestServerDir(env: NodeJS.ProcessEnv = process.env, version = TEMPORAL_TEST_SERVER_VERSION): string {
  return path.join(cacheDir(env), `temporal-test-server-${version}`);
}

export class TemporalTestServerUnavailable extends Error {
  readonly type = 'TemporalTestServerUnavailable';
}

const pom = (version: string) => `<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.phasegate</groupId>
  <artifactId>temporal-test-server-fetch</artifactId>
  <version>0</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>io.temporal</groupId>
      <artifactId>temporal-test-server</artifactId>
      <version>${version}</version>
    </dependency>
  </dependencies>
</project>
`;

// `exec`: the SDK stops the server by killing the process it started; that must be the JVM itself.
const wrapper = `#!/usr/bin/env bash
# Temporal's time-skipping test server, as @temporalio/testing's 'existing-path' executable runs it:
# <this> <port> [--enable-time-skipping]. Written by phasegate (lib/local/temporal-test-server.ts).
dir="$(cd "$(dirname "\${BASH_SOURCE[0]}")" && pwd)"
java_bin="\${JAVA_HOME:+$JAVA_HOME/bin/java}"
exec "\${java_bin:-java}" -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -cp "$dir/lib/*" io.temporal.testserver.TestServer "$@"
`;

/** The wrapper's path: from the environment override, the cache, or fetched now (`say` reports each step). */
export function ensureTemporalTestServer(say: (line: string) => void, env: NodeJS.ProcessEnv = process.env, version = TEMPORAL_TEST_SERVER_VERSION): string {
  const override = env.PHASEGATE_TEMPORAL_TEST_SERVER;
  if (override) {
    if (!isExecutable(override)) throw new TemporalTestServerUnavailable(`PHASEGATE_TEMPORAL_TEST_SERVER=${override} is not an executable file`);
    say(`temporal test server: ${override} (from PHASEGATE_TEMPORAL_TEST_SERVER)`);
    return override;
  }
  const dir = temporalTestServerDir(env, version);
  const cached = path.join(dir, WRAPPER);
  if (isExecutable(cached)) {
    say(`temporal test server: ${cached} (cached)`);
    return cached;
  }
  const missing = [['mvn', ['-v']], ['java', ['-version']]].filter(([command, args]) => !available(command as string, args as string[], env)).map(([c]) => c);
  if (missing.length) {
    throw new TemporalTestServerUnavailable(
      `Temporal's time-skipping test server is not in ${dir}, and ${missing.join(' and ')} ${missing.length > 1 ? 'are' : 'is'} not installed to fetch it. Either:\n` +
        '  1. install Java 11+ and Maven, then run `npm run setup` (fetches io.temporal:temporal-test-server from Maven Central);\n' +
        '  2. or set PHASEGATE_TEMPORAL_TEST_SERVER to an executable that runs `io.temporal.testserver.TestServer "$@"`.',
    );
  }
  mkdirSync(path.dirname(dir), { recursive: true });
  const partial = mkdtempSync(`${dir}.partial-`);
  try {
    writeFileSync(path.join(partial, 'pom.xml'), pom(version));
    say(`fetching io.temporal:temporal-test-server:${version} and its dependencies from Maven Central into ${dir} (mvn dependency:copy-dependencies)…`);
    const result = spawnSync(
      'mvn',
      ['-q', '-B', '-Dstyle.color=never', '-f', path.join(partial, 'pom.xml'), 'dependency:copy-dependencies', '-DincludeScope=runtime', `-DoutputDirectory=${path.join(partial, 'lib')}`],
      { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
    );
    if (result.status !== 0) {
      const output = `${result.stdout ?? ''}${result.stderr ?? ''}`.trim().split('\n').slice(-5).join('\n  ');
      throw new TemporalTestServerUnavailable(`mvn could not fetch io.temporal:temporal-test-server:${version} (exit ${result.status}):\n  ${output}`);
    }
    writeFileSync(path.join(partial, WRAPPER), wrapper);
    chmodSync(path.join(partial, WRAPPER), 0o755);
    try {
      renameSync(partial, dir);
    } catch (err) {
      // Another process put it in place first: use theirs.
      if (!existsSync(cached)) throw err;
    }
  } finally {
    rmSync(partial, { recursive: true, force: true });
  }
  say(`temporal test server: ${cached} (fetched)`);
  return cached;
}
