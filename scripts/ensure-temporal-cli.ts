/** `npm run setup`: makes sure the Temporal CLI is available (builds it once if needed). */
import path from 'node:path';
import { ensureTemporalCli } from '../lib/local/temporal-cli';

try {
  ensureTemporalCli(path.resolve(__dirname, '..'), (line) => console.log(line));
} catch (err) {
  console.error((err as Error).message);
  process.exit(1);
}
