/**
 * The worker process's Temporal Runtime: its logs go to pino, its metrics to a Prometheus endpoint.
 *
 * The Runtime is process-wide and created on first use, so `installWorkerRuntime` runs once, before
 * any NativeConnection or Worker (workers/main.ts). In-process test workers never call it: they get
 * the SDK's default Runtime, no endpoint, and metric calls that go nowhere.
 *
 * The endpoint: http://PHASEGATE_METRICS_HOST:PHASEGATE_METRICS_PORT/metrics, default
 * 127.0.0.1:9464 (Prometheus' range for exporters; loopback, so only a local agent or a sidecar
 * scrapes it unless the host says otherwise). PHASEGATE_METRICS_PORT=0 or off turns it off. Each
 * worker process on a host needs a port of its own: a taken port stops the worker at start.
 *
 * It serves the SDK's own metrics (`temporal_*`: task polls, activity and workflow latencies,
 * failures) and phasegate's (`phasegate_*`, emitted through the SDK meter from activities/metrics.ts
 * and workflows/metrics.ts); docs/ops.md "Logs and metrics" lists them.
 */
import { Runtime } from '@temporalio/worker';
import type { Logger } from 'pino';
import { sdkLogger } from './log';

export const DEFAULT_METRICS_PORT = 9464;
export const DEFAULT_METRICS_HOST = '127.0.0.1';

export interface MetricsEndpoint {
  host: string;
  port: number;
  /** host:port as the exporter binds it (an IPv6 host in brackets). */
  bindAddress: string;
  url: string;
}

/** Where to serve metrics, from PHASEGATE_METRICS_PORT / PHASEGATE_METRICS_HOST; null when turned off. */
export function metricsEndpoint(env: NodeJS.ProcessEnv = process.env): MetricsEndpoint | null {
  const rawPort = env.PHASEGATE_METRICS_PORT?.trim() || String(DEFAULT_METRICS_PORT);
  if (rawPort === '0' || rawPort.toLowerCase() === 'off') return null;
  const port = Number(rawPort);
  if (!/^\d+$/.test(rawPort) || port < 1 || port > 65535) {
    throw new Error(`PHASEGATE_METRICS_PORT must be a TCP port (1-65535), or 0/off to serve no metrics (got "${env.PHASEGATE_METRICS_PORT}")`);
  }
  const host = env.PHASEGATE_METRICS_HOST?.trim() || DEFAULT_METRICS_HOST;
  const hostPart = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  const bindAddress = `${hostPart}:${port}`;
  return { host, port, bindAddress, url: `http://${bindAddress}/metrics` };
}

/**
 * Installs the process's Runtime: SDK and core log lines into `log`, metrics on the endpoint.
 * Throws, saying what to change, when the endpoint's port cannot be bound.
 */
export function installWorkerRuntime(log: Logger, env: NodeJS.ProcessEnv = process.env): { metrics: MetricsEndpoint | null } {
  const metrics = metricsEndpoint(env);
  try {
    Runtime.install({
      logger: sdkLogger(log),
      telemetryOptions: {
        // Core (Rust) lines are forwarded into the same logger instead of its own console format;
        // below WARN they are chatter about polls and connections.
        logging: { filter: { core: 'WARN', other: 'ERROR' }, forward: {} },
        ...(metrics ? { metrics: { prometheus: { bindAddress: metrics.bindAddress } } } : {}),
      },
    });
  } catch (err) {
    const message = (err as Error).message;
    if (metrics && /prometheus|address/i.test(message)) {
      throw new Error(`cannot serve metrics on ${metrics.bindAddress} (${message}); set PHASEGATE_METRICS_PORT to a free port, or to off`);
    }
    throw err;
  }
  return { metrics };
}
