/**
 * Connection options for the Temporal client and worker, from the validated config.
 */
import { readFileSync } from 'node:fs';
import type { PhasegateConfig } from './config';

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
