/**
 * The demo database of `npm start`: an `accounts` table with N rows, made once and kept.
 */
import pg from 'pg';

export async function ensureDemoTable(url: string, rows: number): Promise<{ created: boolean; rows: number }> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const exists = await client.query(`SELECT to_regclass('public.accounts') AS t`);
    if (exists.rows[0].t) {
      const { rows: est } = await client.query<{ n: string }>(`SELECT count(*)::bigint AS n FROM accounts`);
      return { created: false, rows: Number(est[0].n) };
    }
    await client.query('BEGIN');
    await client.query(`
      CREATE TABLE accounts (
        id         bigint PRIMARY KEY,
        email      text NOT NULL,
        plan       text NOT NULL DEFAULT 'free',
        created_at timestamptz NOT NULL DEFAULT now()
      )`);
    await client.query(
      `INSERT INTO accounts (id, email, plan, created_at)
       SELECT g, 'user' || g || '@example.com', (ARRAY['free','team','enterprise'])[1 + g % 3],
              now() - make_interval(secs => g)
       FROM generate_series(1, $1::bigint) AS g`,
      [rows],
    );
    await client.query('COMMIT');
    await client.query('ANALYZE accounts');
    return { created: true, rows };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    await client.end();
  }
}
