import { rmSync } from 'node:fs';

export default async function globalTeardown(): Promise<void> {
  const services = globalThis.__phasegateServices;
  if (!services) return;
  await services.temporal.teardown();
  await services.postgres.stop();
  if (services.tmpDir) rmSync(services.tmpDir, { recursive: true, force: true });
}
