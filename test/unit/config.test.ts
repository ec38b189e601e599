import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { databaseFor, loadConfig, loadConfigFile, migrationsDirectoryFor, requireDatabaseUrls } from '../../lib/config';

describe('loadConfig', () => {
  it('fills defaults: task queue phasegate, 500 ms lock_timeout, migrations/versions', () => {
    const config = loadConfig({}, {});
    expect(config.temporal.taskQueue).toBe('phasegate');
    expect(config.temporal.address).toBe('localhost:7233');
    expect(config.defaults.lockTimeoutMs).toBe(500);
    expect(config.migrations.directory).toBe('migrations/versions');
    expect(config.migrations.versionTable).toBe('phasegate_version');
    expect(config.databases).toEqual({});
  });

  it('takes database URLs from the environment: DATABASE_URL is `default`, PHASEGATE_DATABASE_URL_<ALIAS> adds an alias', () => {
    const config = loadConfig({}, { DATABASE_URL: 'postgres://a/b', PHASEGATE_DATABASE_URL_BILLING: 'postgresql://c/d' });
    expect(config.databases).toEqual({ default: { url: 'postgres://a/b' }, billing: { url: 'postgresql://c/d' } });
  });

  it('lets a config entry without url take the URL of the same alias from the environment', () => {
    const config = loadConfig(
      { databases: { billing: { migrationsDirectory: 'db/billing' } } },
      { PHASEGATE_DATABASE_URL_BILLING: 'postgres://h/billing' },
    );
    expect(config.databases.billing).toEqual({ url: 'postgres://h/billing', migrationsDirectory: 'db/billing' });
  });

  it('rejects unknown keys and bad values, listing every problem in one error', () => {
    let caught: unknown;
    try {
      loadConfig(
        {
          temporal: { adress: 'x' },
          defaults: { lockTimeoutMs: -1, batchSize: 0 },
          databases: { Main: { url: 'mysql://x' } },
          migrations: { versionTable: 'bad name' },
        },
        {},
      );
    } catch (err) {
      caught = err;
    }
    expect(caught).toMatchObject({ type: 'ConfigError' });
    const problems = (caught as { details: { problems: string[] } }).details.problems;
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^temporal: .*adress/),
        expect.stringMatching(/^defaults\.lockTimeoutMs: /),
        expect.stringMatching(/^defaults\.batchSize: /),
        expect.stringMatching(/^databases\.Main/),
        expect.stringMatching(/^migrations\.versionTable: must be a plain SQL identifier/),
      ]),
    );
    // A config built in code names the file `phasegate init` writes.
    expect((caught as Error).message).toContain('phasegate.config.ts');
  });

  it('loads an entry whose URL is unset (`url: process.env.X`, X unset or empty); only connecting to it says how to set it', () => {
    // What `databases: { orders: { url: process.env.ORDERS_URL } }` gives when ORDERS_URL is unset or empty.
    for (const url of [undefined, '']) {
      const config = loadConfig({ databases: { orders: { url, migrationsDirectory: 'db/orders' } } }, {});
      // The offline verbs read only the alias's folder.
      expect(migrationsDirectoryFor(config, 'orders')).toBe('db/orders');
      let caught: unknown;
      try {
        databaseFor(config, 'orders');
      } catch (err) {
        caught = err;
      }
      expect(caught).toMatchObject({ type: 'DatabaseUrlMissing', details: { alias: 'orders', variable: 'PHASEGATE_DATABASE_URL_ORDERS' } });
      expect((caught as Error).message).toContain('database "orders" has no URL');
      expect((caught as Error).message).toContain('set databases.orders.url in phasegate.config.ts');
      expect((caught as Error).message).toContain('or set PHASEGATE_DATABASE_URL_ORDERS=postgres://… in the environment');
      // A worker connects to every database: it refuses to start.
      expect(() => requireDatabaseUrls(config)).toThrow(/database "orders" has no URL/);
    }
    // The environment's variable for the alias fills it; a malformed URL is still refused at load.
    expect(databaseFor(loadConfig({ databases: { orders: { url: '' } } }, { PHASEGATE_DATABASE_URL_ORDERS: 'postgres://h/o' }), 'orders').url).toBe('postgres://h/o');
    expect(() => loadConfig({ databases: { orders: { url: 'mysql://x' } } }, {})).toThrow(/databases\.orders\.url: must be a postgres:\/\//);
  });

  it('messages name the config file actually loaded, not the default name', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'phasegate-config-'));
    const bad = path.join(dir, 'bad.config.js');
    writeFileSync(bad, "module.exports = { temporal: { adress: 'x' } };\n");
    expect(() => loadConfigFile(bad, {}, 'bad.config.js')).toThrow(/^invalid phasegate configuration \(bad\.config\.js\):\n {2}- temporal: /);

    const good = path.join(dir, 'other.config.js');
    writeFileSync(good, 'module.exports = { databases: { prod: { url: process.env.PHASEGATE_TEST_UNSET_URL } } };\n');
    const config = loadConfigFile(good, {}, 'other.config.js');
    expect(() => databaseFor(config, 'prod')).toThrow(/set databases\.prod\.url in other\.config\.js/);
    expect(() => databaseFor(config, 'billing')).toThrow(/or add it under databases in other\.config\.js$/);
    expect(() => databaseFor(config, 'billing-eu')).toThrow(/Add it under databases in other\.config\.js \(url: /);
  });

  it('refuses half a client certificate pair instead of connecting without one', () => {
    expect(() => loadConfig({ temporal: { tls: { clientCertPath: '/etc/t/client.pem' } } }, {})).toThrow(/clientCertPath and clientKeyPath go together/);
    expect(loadConfig({ temporal: { tls: { clientCertPath: '/a', clientKeyPath: '/b' } } }, {}).temporal.tls).toEqual({ clientCertPath: '/a', clientKeyPath: '/b' });
  });

  it('an unknown alias says which variable defines it, or that one with "-" must be in the config file', () => {
    const config = loadConfig({}, {});
    expect(() => databaseFor(config, 'billing')).toThrow(/Set PHASEGATE_DATABASE_URL_BILLING=postgres:\/\/… in the environment/);
    expect(() => databaseFor(config, 'billing-eu')).toThrow(/Add it under databases in phasegate.config.ts \(url: process.env.SOME_VARIABLE\); an alias with "-" cannot come from a PHASEGATE_DATABASE_URL_ variable/);
    expect(() => databaseFor(config, 'default')).toThrow(/Set DATABASE_URL=/);
  });
});
