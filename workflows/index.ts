export { migrate } from './migrate';
export { backfill } from './backfill';
