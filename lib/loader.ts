/**
 * How phasegate loads the user's TypeScript: the config file and the revision files are `require`d
 * by the CLI and by the worker's activities. Under tsx (this repository's scripts) or ts-jest the
 * hook is there already; the installed package runs as plain JavaScript, so the first `.ts` file
 * registers tsx's CommonJS hook (`tsx/cjs/api`, a dependency) for the rest of the process.
 * Plain `.js` / `.cjs` files need no hook and load as they are.
 *
 * tsx only strips types (esbuild): it does not type-check. `npx tsc --noEmit` in the user's
 * project is the type check, as the generated files' comments say.
 */
import Module from 'node:module';

let registered = false;

/**
 * True when `.ts` files already load here (tsx, ts-node, or our own earlier call). Under Jest the
 * test runner's own transform loads them and the hook registered on Node's loader is never used.
 */
function typeScriptLoads(): boolean {
  const extensions = (Module as unknown as { _extensions?: Record<string, unknown> })._extensions;
  return registered || Boolean(extensions?.['.ts']);
}

/** Makes `require(file)` work for `file`: registers the TypeScript hook once when it is a TypeScript file. */
export function prepareToRequire(file: string): void {
  if (!/\.(c|m)?tsx?$/.test(file) || typeScriptLoads()) return;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { register } = require('tsx/cjs/api') as { register: () => () => void };
  register();
  registered = true;
}
