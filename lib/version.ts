/**
 * The package's version, read from its package.json at run time: `lib/` in this repository and
 * `dist/lib/` in the installed package sit one and two levels below it.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

function readVersion(): string {
  for (const candidate of [path.resolve(__dirname, '..', 'package.json'), path.resolve(__dirname, '..', '..', 'package.json')]) {
    if (!existsSync(candidate)) continue;
    const pkg = JSON.parse(readFileSync(candidate, 'utf8')) as { name?: string; version?: string };
    if (pkg.name === 'phasegate' && pkg.version) return pkg.version;
  }
  return '0.0.0-unknown';
}

export const PHASEGATE_VERSION: string = readVersion();
