/**
 * The fleet's pure parts: which databases a selector picks, how a rollout is cut into waves, and the
 * input and control checks that refuse bad JSON before any database is touched.
 */
import { globToRegExp, selectFleetDatabases } from '../../lib/fleet';
import { fleetInputProblems, fleetPayloadProblem, planWaves } from '../../workflows/fleet-input';

const configured = ['tenant_10', 'tenant_2', 'tenant_1', 'eu-1', 'eu-2', 'us-1', 'default'];

test('a glob selects configured aliases in name order; none matched or an unknown alias is an error naming what exists', () => {
  expect(selectFleetDatabases(configured, { select: 'tenant_*' })).toEqual(['tenant_1', 'tenant_10', 'tenant_2']);
  expect(selectFleetDatabases(configured, { select: 'eu-?' })).toEqual(['eu-1', 'eu-2']);
  expect(selectFleetDatabases(configured, { select: '[eu]*-1' })).toEqual(['eu-1', 'us-1']);
  expect(selectFleetDatabases(configured, { select: '[!e]*-1' })).toEqual(['us-1']);
  expect(globToRegExp('a.b*').test('aXb')).toBe(false); // a dot is literal
  expect(() => selectFleetDatabases(configured, { select: 'tenat_*' })).toThrow(/matches none of the 7 databases configured on the worker \(default, eu-1/);
  expect(() => selectFleetDatabases(configured, { select: '[ab' })).toThrow(/never closes/);
  // A list keeps its order: the person chose the rollout order.
  expect(selectFleetDatabases(configured, { databases: ['us-1', 'eu-1'] })).toEqual(['us-1', 'eu-1']);
  expect(() => selectFleetDatabases(configured, { databases: ['us-1', 'us-2'] })).toThrow(/no database "us-2"; configured: default, eu-1/);
});

test('waves: the canary first, then by size or percentage; the last wave takes the rest', () => {
  const dbs = Array.from({ length: 30 }, (_, i) => `d${i}`);
  expect(planWaves(dbs, { canary: 1, waveSize: 10 }).map((w) => w.length)).toEqual([1, 10, 10, 9]);
  expect(planWaves(dbs, { canary: 0, wavePercent: 25 }).map((w) => w.length)).toEqual([8, 8, 8, 6]);
  expect(planWaves(dbs, { canary: 3 }).map((w) => w.length)).toEqual([3, 27]);
  expect(planWaves(dbs.slice(0, 2), { canary: 5, waveSize: 10 })).toEqual([['d0', 'd1']]);
  expect(planWaves(dbs, { canary: 2, waveSize: 10 }).flat()).toEqual(dbs);
});

test('bad fleet input: every problem at once, in words that say what to write', () => {
  expect(fleetInputProblems({ select: 'tenant_*', rollout: { canary: 1, waveSize: 10, maxConcurrent: 5, failureThreshold: 2 } }).problems).toEqual([]);
  const { input, problems } = fleetInputProblems({ rollout: { waveSize: 10, wavePercent: 10, approval: 'each', maxConcurrent: '5' }, databases: ['a', 'a'] });
  expect(input).toBeNull();
  expect(problems).toEqual(
    expect.arrayContaining([
      expect.stringMatching(/"maxConcurrent" must be a number/),
      expect.stringMatching(/"approval" must be "wave"/),
    ]),
  );
  expect(fleetInputProblems({ target: 'head' }).problems).toEqual([expect.stringMatching(/"databases" \(a list of aliases\) or "select".*exactly one/)]);
  expect(fleetInputProblems({ databases: ['postgres://u:p@h/db'] }).problems).toEqual([expect.stringMatching(/never a URL/)]);
  expect(fleetInputProblems({ databases: ['a', 'a'] }).problems).toEqual([expect.stringMatching(/more than once/)]);
  expect(fleetInputProblems({ select: 'x', rollout: { waveSize: 1, wavePercent: 5 } }).problems).toEqual([expect.stringMatching(/not both/)]);
  expect(fleetInputProblems('{"select":"x"}').problems).toEqual([expect.stringMatching(/must be a JSON object/)]);
});

test('fleet control payloads: by is required; unknown fields named', () => {
  expect(fleetPayloadProblem('pause', { by: 'alice' })).toBeNull();
  expect(fleetPayloadProblem('pause', {})).toMatch(/"by" is missing/);
  expect(fleetPayloadProblem('approveWave', { by: 'alice', gat: 'contract' })).toMatch(/unknown field\(s\) "gat"/);
  expect(fleetPayloadProblem('retry', { by: 'alice', databases: 'a,b' })).toMatch(/"databases" must be a list/);
});
