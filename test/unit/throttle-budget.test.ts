/** The share arithmetic of a server's throttle budget, setBudget validation, and the servers config. */
import { ConfigError } from '../../lib/errors';
import { loadConfig } from '../../lib/config';
import { budgetWorkflowId as activityBudgetId } from '../../activities/budget';
import { budgetWorkflowId, divideBudget, effectiveRate, noticeFor, setBudgetProblem, waitingForSlot } from '../../workflows/budget-shares';

test('the budget is divided equally among the running backfills, rounded down; the rest wait FIFO', () => {
  expect(divideBudget({ maxRowsPerSecond: 30000, maxConcurrentBackfills: null }, ['a', 'b', 'c'])).toEqual({ running: ['a', 'b', 'c'], waiting: [], share: 10000 });
  expect(divideBudget({ maxRowsPerSecond: 1000, maxConcurrentBackfills: 2 }, ['a', 'b', 'c', 'd'])).toEqual({ running: ['a', 'b'], waiting: ['c', 'd'], share: 500 });
  expect(divideBudget({ maxRowsPerSecond: 100, maxConcurrentBackfills: null }, ['a', 'b', 'c']).share).toBe(33);
  expect(divideBudget({ maxRowsPerSecond: null, maxConcurrentBackfills: 1 }, ['a', 'b']).share).toBeNull();
  const d = divideBudget({ maxRowsPerSecond: 900, maxConcurrentBackfills: 1 }, ['a', 'b', 'c']);
  expect(noticeFor('main', { maxRowsPerSecond: 900, maxConcurrentBackfills: 1 }, d, 'c')).toMatchObject({ admitted: false, maxRowsPerSecond: null, running: 1, ahead: 1 });
  expect(noticeFor('main', { maxRowsPerSecond: 900, maxConcurrentBackfills: 1 }, d, 'a')).toMatchObject({ admitted: true, maxRowsPerSecond: 900, ahead: 0 });
  expect(waitingForSlot({ server: 'main', running: 2, ahead: 1 })).toBe('waiting for a backfill slot on server main (2 running, 1 ahead)');
});

test('the effective rate is the lower of the own limit and the share', () => {
  expect(effectiveRate(500, 1000)).toBe(500);
  expect(effectiveRate(null, 1000)).toBe(1000);
  expect(effectiveRate(2000, null)).toBe(2000);
  expect(effectiveRate(null, null)).toBeNull();
});

test('setBudget payloads are checked with a clear reason', () => {
  expect(setBudgetProblem({ maxRowsPerSecond: 5000, by: 'ops' })).toBeNull();
  expect(setBudgetProblem({ maxConcurrentBackfills: null, by: 'ops' })).toBeNull();
  expect(setBudgetProblem({ maxRowsPerSecond: 0, by: 'ops' })).toMatch(/maxRowsPerSecond must be a number from 1/);
  expect(setBudgetProblem({ maxConcurrentBackfills: 1.5, by: 'ops' })).toMatch(/maxConcurrentBackfills must be a whole number/);
  expect(setBudgetProblem({ maxRowsPerSecond: 10 })).toMatch(/by must name/);
  expect(setBudgetProblem({ rate: 10, by: 'ops' })).toMatch(/unknown field\(s\) rate/);
  expect(setBudgetProblem({ by: 'ops' })).toMatch(/nothing to change/);
});

test('config: databases name a configured server; an unknown one is named with the known ones', () => {
  const config = loadConfig({ servers: { main: { maxRowsPerSecond: 30000, maxConcurrentBackfills: 2 } }, databases: { app: { server: 'main' } } }, {});
  expect(config.servers.main).toEqual({ maxRowsPerSecond: 30000, maxConcurrentBackfills: 2 });
  expect(config.databases.app.server).toBe('main');
  let error: unknown;
  try {
    loadConfig({ servers: { main: {}, replica: {} }, databases: { app: { server: 'mian' } } }, {});
  } catch (err) {
    error = err;
  }
  expect(error).toBeInstanceOf(ConfigError);
  expect((error as Error).message).toContain('databases.app.server: unknown server "mian"; known servers: main, replica');
  expect(() => loadConfig({ servers: { main: { maxConcurrentBackfills: 0 } } }, {})).toThrow(/servers\.main\.maxConcurrentBackfills/);
});

test('activities and workflows name the budget workflow alike', () => {
  expect(activityBudgetId('main')).toBe(budgetWorkflowId('main'));
});
