import { databaseFor, loadConfig } from '../../lib/config';

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
    expect((caught as Error).message).toContain('temporal.config.ts');
  });

  it('says how to fix a database entry whose URL is missing', () => {
    expect(() => loadConfig({ databases: { orders: {} } }, {})).toThrow(/databases\.orders\.url: is not set/);
  });

  it('refuses half a client certificate pair instead of connecting without one', () => {
    expect(() => loadConfig({ temporal: { tls: { clientCertPath: '/etc/t/client.pem' } } }, {})).toThrow(/clientCertPath and clientKeyPath go together/);
    expect(loadConfig({ temporal: { tls: { clientCertPath: '/a', clientKeyPath: '/b' } } }, {}).temporal.tls).toEqual({ clientCertPath: '/a', clientKeyPath: '/b' });
  });

  it('an unknown alias says which variable defines it, or that one with "-" must be in the config file', () => {
    const config = loadConfig({}, {});
    expect(() => databaseFor(config, 'billing')).toThrow(/Set PHASEGATE_DATABASE_URL_BILLING=postgres:\/\/… in the environment/);
    expect(() => databaseFor(config, 'billing-eu')).toThrow(/Add it under databases in temporal.config.ts \(url: process.env.SOME_VARIABLE\); an alias with "-" cannot come from a PHASEGATE_DATABASE_URL_ variable/);
    expect(() => databaseFor(config, 'default')).toThrow(/Set DATABASE_URL=/);
  });
});
