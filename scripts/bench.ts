/**
 * `npm run bench`: benchmarks print their figures here. The backfill benchmark (rows/s against a
 * single UPDATE, app latency during the backfill) arrives with the backfill engine.
 */
console.log('no benchmarks yet: the backfill benchmark comes with the backfill engine (issue 5)');
