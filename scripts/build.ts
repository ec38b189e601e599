/**
 * `npm run build` (and `prepack`, so `npm pack` always ships a fresh build): compiles the package
 * into dist/ (JavaScript, declarations, source maps; tsconfig.build.json), then bundles the
 * workflow code once into dist/workflow-bundle.js, which an installed worker loads instead of
 * running webpack at every start (workers/worker.ts). The bundle comes from the compiled
 * dist/workflows, so it holds exactly the code the package ships.
 */
import { bundleWorkflowCode } from '@temporalio/worker';
import { spawnSync } from 'node:child_process';
import { chmodSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(__dirname, '..');
const dist = path.join(root, 'dist');

async function main(): Promise<void> {
  const started = Date.now();
  rmSync(dist, { recursive: true, force: true });
  const tsc = spawnSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', path.join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
  if (tsc.status !== 0) throw new Error(`tsc failed (exit ${tsc.status})`);
  chmodSync(path.join(dist, 'scripts', 'phasegate.js'), 0o755);
  const { code } = await bundleWorkflowCode({ workflowsPath: path.join(dist, 'workflows', 'index.js'), logger: quietLogger });
  writeFileSync(path.join(dist, 'workflow-bundle.js'), code);
  console.log(`built dist/ and dist/workflow-bundle.js (${(code.length / 1024).toFixed(0)} KiB) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

const quietLogger = {
  log: () => undefined,
  trace: () => undefined,
  debug: () => undefined,
  info: () => undefined,
  warn: (message: string) => console.warn(message),
  error: (message: string) => console.error(message),
};

main().catch((err: unknown) => {
  console.error(`build: ${(err as Error).message}`);
  process.exit(1);
});
