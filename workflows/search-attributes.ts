/**
 * Custom search attributes, upserted on every transition so the Temporal UI's workflow list can be
 * filtered (e.g. `PhasegateState="awaiting-approval"`). The dev server registers them at start.
 */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const PhasegateDatabase = defineSearchAttributeKey('PhasegateDatabase', SearchAttributeType.KEYWORD);
export const PhasegatePhase = defineSearchAttributeKey('PhasegatePhase', SearchAttributeType.KEYWORD);
export const PhasegateState = defineSearchAttributeKey('PhasegateState', SearchAttributeType.KEYWORD);
/** On a `migrateFleet` and on every migration it started: the fleet's workflow id (`PhasegateFleet="fleet-tenants"`). */
export const PhasegateFleet = defineSearchAttributeKey('PhasegateFleet', SearchAttributeType.KEYWORD);

export const searchAttributeKeys = [PhasegateDatabase, PhasegatePhase, PhasegateState, PhasegateFleet];
