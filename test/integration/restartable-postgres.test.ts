/**
 * @pg-matrix: its SQL, catalog or server behaviour can differ by PostgreSQL major; `npm run test:pg15` runs it again on 15.
 * The fault-test harness itself: a PostgreSQL that really goes away and comes back on the same
 * port with the same data, and the errors a client sees meanwhile are the ones phasegate retries.
 */
import pg from 'pg';
import { classifyDatabaseError, toFailure } from '../../activities/failures';
import { startRestartablePostgres, type RestartablePostgres } from '../support/restartable-postgres';

let server: RestartablePostgres;

beforeAll(async () => {
  server = await startRestartablePostgres();
});

afterAll(async () => {
  await server?.destroy();
});

async function query<R extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<R[]> {
  const client = new pg.Client({ connectionString: server.url() });
  await client.connect();
  try {
    return (await client.query<R>(sql, params)).rows;
  } finally {
    await client.end();
  }
}

async function connectError(): Promise<unknown> {
  const client = new pg.Client({ connectionString: server.url() });
  try {
    await client.connect();
  } catch (err) {
    return err;
  }
  await client.end();
  throw new Error(`a connection to port ${server.port} succeeded although the server was stopped`);
}

it('refuses connections while stopped (a transient error) and keeps its rows across a fast stop', async () => {
  await query('CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)');
  await query(`INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 100) AS g`);

  // A session that is mid-statement when the server stops fast is ended with 57P01.
  const held = new pg.Client({ connectionString: server.url() });
  held.on('error', () => undefined);
  await held.connect();
  const sleeping = held.query('SELECT pg_sleep(60)').then(
    () => null,
    (err: unknown) => err,
  );
  while (!(await query(`SELECT 1 FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60)' AND state = 'active'`)).length) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  await server.stop('fast');
  const ended = await sleeping;
  expect(ended).toMatchObject({ code: '57P01' });
  expect(classifyDatabaseError(ended)).toMatchObject({ transient: true, sqlstate: '57P01' });
  await held.end().catch(() => undefined);

  const refused = await connectError();
  expect(refused).toMatchObject({ code: 'ECONNREFUSED' });
  expect(classifyDatabaseError(refused)).toEqual({
    transient: true,
    reason: 'connection refused (ECONNREFUSED)',
    sqlstate: null,
    errno: 'ECONNREFUSED',
  });
  expect(toFailure(refused)).toMatchObject({ type: 'TransientDatabaseError', nonRetryable: false });

  await server.start();
  const rows = await query<{ n: number; last: string }>('SELECT count(*)::int AS n, max(name) AS last FROM items');
  expect(rows).toEqual([{ n: 100, last: 'item 99' }]);
});

it('keeps every committed row across an immediate stop (crash recovery on start)', async () => {
  await query('CREATE TABLE crashed (id int PRIMARY KEY)');
  await query('INSERT INTO crashed SELECT generate_series(1, 1000)');
  await server.stop('immediate');
  expect(await connectError()).toMatchObject({ code: 'ECONNREFUSED' });
  await server.start();
  expect(await query<{ n: number }>('SELECT count(*)::int AS n FROM crashed')).toEqual([{ n: 1000 }]);
});

it('starts again on the same port, and a second stop or start is a no-op', async () => {
  await server.start();
  await server.stop('fast');
  await server.stop('fast');
  await server.start();
  await server.start();
  expect(server.url()).toContain(`:${server.port}/`);
  expect(await query<{ port: string }>('SHOW port')).toEqual([{ port: String(server.port) }]);
});
