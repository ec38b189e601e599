/**
 * A Temporal dev server that fault tests may stop and start again: its own `temporal server
 * start-dev` (the CLI global set-up uses, from ensureTemporalCli) on free ports, never the shared
 * one other test files use. Its state lives in a SQLite file (`--db-filename`), so workflows,
 * signals, timers and task queues survive a stop; it starts again on the same ports.
 */
import { Connection } from '@temporalio/client';
import { TypedSearchAttributes } from '@temporalio/common';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../../lib/local/ports';
import { ensureTemporalCli } from '../../lib/local/temporal-cli';
import { searchAttributeKeys } from '../../workflows/search-attributes';

export interface RestartableTemporal {
  /** host:port of the frontend (gRPC); the same after a restart. */
  address: string;
  port: number;
  /** Stops the server (SIGTERM or SIGINT; SIGKILL after 20 s) and resolves once the process is gone. */
  stop(signal?: 'SIGTERM' | 'SIGINT'): Promise<void>;
  /** Starts it again on the same ports and state; resolves once the frontend answers. */
  start(): Promise<void>;
  /** Stops it if it runs and deletes its state. */
  destroy(): Promise<void>;
  /** What the server wrote since it was first started (for failure messages). */
  output(): string;
}

/** Resolves once the frontend answers an RPC (the port opens before the namespace is ready). */
async function untilServing(address: string, timeoutMs: number, exited: () => string | null): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    const gone = exited();
    if (gone) throw new Error(`the Temporal dev server exited while starting (${gone})`);
    try {
      const connection = await Connection.connect({ address, connectTimeout: 1000 });
      try {
        await connection.workflowService.describeNamespace({ namespace: 'default' });
        return;
      } finally {
        await connection.close();
      }
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`the Temporal dev server at ${address} did not answer within ${timeoutMs / 1000} s: ${(last as Error)?.message}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

export async function startRestartableTemporal(): Promise<RestartableTemporal> {
  const root = path.resolve(__dirname, '../..');
  const cli = ensureTemporalCli(root, () => undefined).path;
  const tmpDir = mkdtempSync(path.join(os.tmpdir(), 'phasegate-temporal-'));
  const [port, httpPort, metricsPort] = [await freePort(), await freePort(), await freePort()];
  const address = `127.0.0.1:${port}`;
  // Registered the way TestWorkflowEnvironment.createLocal does for the shared server.
  const searchAttributes = searchAttributeKeys.flatMap((key) => ['--search-attribute', `${key.name}=${TypedSearchAttributes.toMetadataType(key.type)}`]);
  const args = [
    'server',
    'start-dev',
    '--ip',
    '127.0.0.1',
    '--port',
    String(port),
    '--http-port',
    String(httpPort),
    '--metrics-port',
    String(metricsPort),
    '--headless',
    '--db-filename',
    path.join(tmpDir, 'temporal.db'),
    '--log-level',
    'warn',
    ...searchAttributes,
  ];

  let output = '';
  let child: ChildProcess | undefined;
  let exit: Promise<void> = Promise.resolve();
  let exitedWith: string | null = null;

  const start = async () => {
    if (child) return;
    exitedWith = null;
    const proc = spawn(cli, args, { cwd: tmpDir, stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    proc.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    proc.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    exit = new Promise<void>((resolve) =>
      proc.once('exit', (code, signal) => {
        exitedWith = `exit ${code ?? signal}`;
        output += `\n[restartable-temporal] server exited (${exitedWith})\n`;
        if (child === proc) child = undefined;
        resolve();
      }),
    );
    try {
      await untilServing(address, 60_000, () => exitedWith);
    } catch (err) {
      await stop();
      throw new Error(`${(err as Error).message}\nServer output:\n${output.slice(-3000)}`);
    }
  };

  const stop = async (signal: 'SIGTERM' | 'SIGINT' = 'SIGTERM') => {
    const proc = child;
    if (!proc) return;
    proc.kill(signal);
    const killer = setTimeout(() => proc.kill('SIGKILL'), 20_000);
    try {
      await exit;
    } finally {
      clearTimeout(killer);
    }
  };

  try {
    await start();
  } catch (err) {
    rmSync(tmpDir, { recursive: true, force: true });
    throw err;
  }
  return {
    address,
    port,
    stop,
    start,
    async destroy() {
      await stop();
      rmSync(tmpDir, { recursive: true, force: true });
    },
    output: () => output,
  };
}
