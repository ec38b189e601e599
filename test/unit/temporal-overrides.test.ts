/**
 * The phasegate CLI's --address / --namespace / --profile (lib/temporal-connection.ts): a profile
 * of Temporal's own client config file fills the connection, explicit flags win over it.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../lib/config';
import { withTemporalOverrides } from '../../lib/temporal-connection';

const base = loadConfig({ temporal: { address: 'localhost:7233', namespace: 'default' } }, {});
let saved: NodeJS.ProcessEnv;
beforeEach(() => {
  saved = { ...process.env };
  for (const k of Object.keys(process.env)) if (k.startsWith('TEMPORAL_')) delete process.env[k];
});
afterEach(() => {
  process.env = saved;
});

function profileFile(toml: string): string {
  const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'pg-profile-')), 'temporal.toml');
  writeFileSync(file, toml);
  return file;
}

test('no overrides: the config as it is', () => {
  expect(withTemporalOverrides(base, {})).toBe(base);
  expect(withTemporalOverrides(base, undefined)).toBe(base);
});

test('--address and --namespace replace the config values', () => {
  const c = withTemporalOverrides(base, { address: '10.0.0.5:7233', namespace: 'prod' });
  expect(c.temporal).toMatchObject({ address: '10.0.0.5:7233', namespace: 'prod' });
  expect(base.temporal.address).toBe('localhost:7233');
});

test('a profile gives address, namespace and an API key (with TLS); --namespace still wins', () => {
  process.env.TEMPORAL_CONFIG_FILE = profileFile(
    ['[profile.cloud]', 'address = "ns.acct.tmprl.cloud:7233"', 'namespace = "ns.acct"', 'api_key = "secret-key"', ''].join('\n'),
  );
  const c = withTemporalOverrides(base, { profile: 'cloud' });
  expect(c.temporal).toMatchObject({ address: 'ns.acct.tmprl.cloud:7233', namespace: 'ns.acct', apiKey: 'secret-key', tls: true });
  expect(withTemporalOverrides(base, { profile: 'cloud', namespace: 'other' }).temporal.namespace).toBe('other');
});

test('a profile with mTLS paths becomes the config tls block', () => {
  process.env.TEMPORAL_CONFIG_FILE = profileFile(
    ['[profile.selfhosted]', 'address = "temporal.internal:7233"', '[profile.selfhosted.tls]', 'server_name = "temporal.internal"', 'client_cert_path = "/etc/t/client.pem"', 'client_key_path = "/etc/t/client.key"', ''].join('\n'),
  );
  expect(withTemporalOverrides(base, { profile: 'selfhosted' }).temporal.tls).toEqual({
    serverNameOverride: 'temporal.internal',
    clientCertPath: '/etc/t/client.pem',
    clientKeyPath: '/etc/t/client.key',
  });
});

test('a profile that does not exist is an error that says how to create it', () => {
  process.env.TEMPORAL_CONFIG_FILE = profileFile('[profile.default]\naddress = "x:1"\n');
  expect(() => withTemporalOverrides(base, { profile: 'nope' })).toThrow(/cannot load Temporal profile "nope": .*temporal config set --profile nope/);
});
