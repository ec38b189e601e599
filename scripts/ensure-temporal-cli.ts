/**
 * `npm run setup`: makes sure the Temporal CLI is available (builds it once if needed), and
 * Temporal's time-skipping test server for the window and soak tests (fetched once with mvn).
 */
import path from 'node:path';
import { ensureTemporalCli } from '../lib/local/temporal-cli';
import { ensureTemporalTestServer } from '../lib/local/temporal-test-server';

try {
  ensureTemporalCli(path.resolve(__dirname, '..'), (line) => console.log(line));
  ensureTemporalTestServer((line) => console.log(line));
} catch (err) {
  console.error((err as Error).message);
  process.exit(1);
}
