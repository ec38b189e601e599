/**
 * The Temporal dev server of the local stack (`temporal server start-dev`), with phasegate's
 * search attributes registered and its state in a SQLite file.
 */
import { Connection } from '@temporalio/client';
import { searchAttributeKeys } from '../../workflows/search-attributes';
import { startChild, type Child } from './processes';
import { assertPortFree, waitForPort } from './ports';

export const searchAttributeArgs = (): string[] =>
  searchAttributeKeys.flatMap((key) => ['--search-attribute', `${key.name}=Keyword`]);

export async function startTemporalDevServer(opts: {
  cli: string;
  cwd: string;
  port: number;
  uiPort: number;
  dbFile: string;
  logFile: string;
}): Promise<Child> {
  await assertPortFree(opts.port, 'Temporal frontend', 'PHASEGATE_TEMPORAL_PORT');
  await assertPortFree(opts.uiPort, 'Temporal Web UI', 'PHASEGATE_TEMPORAL_UI_PORT');
  const child = startChild(
    'temporal',
    opts.cli,
    [
      'server', 'start-dev',
      '--ip', '127.0.0.1',
      '--port', String(opts.port),
      '--ui-port', String(opts.uiPort),
      '--db-filename', opts.dbFile,
      '--log-level', 'warn',
      ...searchAttributeArgs(),
    ],
    { cwd: opts.cwd, logFile: opts.logFile },
  );
  const died = child.exited.then((code) => {
    throw new Error(`temporal server exited early (code ${code}); see ${opts.logFile}`);
  });
  await Promise.race([waitForPort(opts.port, 60_000, 'Temporal dev server'), died]);
  // The port opens before the frontend serves; wait until a real RPC answers.
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      const connection = await Connection.connect({ address: `127.0.0.1:${opts.port}` });
      await connection.workflowService.getSystemInfo({});
      await connection.close();
      break;
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`Temporal dev server did not answer: ${(err as Error).message}; see ${opts.logFile}`);
      await new Promise((r) => setTimeout(r, 300));
    }
  }
  died.catch(() => undefined);
  return child;
}
