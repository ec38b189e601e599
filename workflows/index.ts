export { migrate } from './migrate';
export { backfill } from './backfill';
export { migrateFleet } from './fleet';
export { throttleBudget } from './throttle-budget';
