/**
 * The `migrateFleet` workflow's one activity: which databases the fleet covers, resolved from the
 * worker's configured aliases (the workflow never sees URLs or the config).
 */
import { selectFleetDatabases } from '../lib/fleet';
import type { MigrationDeps } from './migrations';

export interface ResolveFleetInput {
  databases?: string[];
  select?: string;
}

export function createFleetActivities(deps: Pick<MigrationDeps, 'config'>) {
  return {
    async resolveFleet(input: ResolveFleetInput): Promise<string[]> {
      return selectFleetDatabases(Object.keys(deps.config.databases), input);
    },
  };
}
