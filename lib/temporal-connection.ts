/**
 * Connection options for the Temporal client and worker, from the validated config — and the
 * CLI's overrides of it: `--address`, `--namespace`, and `--profile` (a profile of Temporal's own
 * client config file, ~/.config/temporalio/temporal.toml, shared with the `temporal` CLI).
 */
import { loadClientConfigProfile } from '@temporalio/envconfig';
import { readFileSync } from 'node:fs';
import type { PhasegateConfig } from './config';
import { PhasegateError } from './errors';

export interface TemporalOverrides {
  address?: string;
  namespace?: string;
  /** A profile of Temporal's client config file (TEMPORAL_CONFIG_FILE, or the default path). */
  profile?: string;
}

/**
 * The config with the overrides applied: a profile first (its address, namespace, API key, TLS),
 * then --address / --namespace, which win over everything.
 */
export function withTemporalOverrides(config: PhasegateConfig, overrides: TemporalOverrides | undefined): PhasegateConfig {
  if (!overrides || (!overrides.address && !overrides.namespace && !overrides.profile)) return config;
  const temporal = { ...config.temporal };
  if (overrides.profile) {
    let profile;
    try {
      profile = loadClientConfigProfile({ profile: overrides.profile, configFileStrict: true });
    } catch (err) {
      throw new PhasegateError('TemporalProfile', `cannot load Temporal profile "${overrides.profile}": ${(err as Error).message}. Create it with \`temporal config set --profile ${overrides.profile} --prop address --value host:port\``);
    }
    if (profile.address) temporal.address = profile.address;
    if (profile.namespace) temporal.namespace = profile.namespace;
    if (profile.apiKey) temporal.apiKey = profile.apiKey;
    const tls = profile.tls;
    if (tls && !tls.disabled) {
      const pathOf = (source: unknown) => (source && typeof source === 'object' && 'path' in source ? String((source as { path: string }).path) : undefined);
      const paths = { serverNameOverride: tls.serverName, serverRootCACertPath: pathOf(tls.serverCACert), clientCertPath: pathOf(tls.clientCert), clientKeyPath: pathOf(tls.clientKey) };
      const given = Object.fromEntries(Object.entries(paths).filter(([, v]) => v !== undefined));
      temporal.tls = Object.keys(given).length ? given : true;
    } else if (profile.apiKey && !tls) {
      temporal.tls = true; // an API key goes with TLS unless the profile turns it off
    }
  }
  if (overrides.address) temporal.address = overrides.address;
  if (overrides.namespace) temporal.namespace = overrides.namespace;
  return { ...config, temporal };
}

export interface TemporalConnectionOptions {
  address: string;
  tls?: boolean | { serverNameOverride?: string; serverRootCACertificate?: Buffer; clientCertPair?: { crt: Buffer; key: Buffer } };
  apiKey?: string;
}

export function temporalConnectionOptions(config: PhasegateConfig): TemporalConnectionOptions {
  const { address, tls, apiKey } = config.temporal;
  const options: TemporalConnectionOptions = { address };
  if (apiKey) options.apiKey = apiKey;
  if (tls === true || tls === false) options.tls = tls;
  else if (tls) {
    options.tls = {
      ...(tls.serverNameOverride ? { serverNameOverride: tls.serverNameOverride } : {}),
      ...(tls.serverRootCACertPath ? { serverRootCACertificate: readFileSync(tls.serverRootCACertPath) } : {}),
      ...(tls.clientCertPath && tls.clientKeyPath
        ? { clientCertPair: { crt: readFileSync(tls.clientCertPath), key: readFileSync(tls.clientKeyPath) } }
        : {}),
    };
  }
  return options;
}
