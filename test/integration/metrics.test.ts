/**
 * The worker process's logs and metrics (lib/log.ts, lib/metrics.ts, docs/ops.md "Logs and
 * metrics"): a real `workers/main.ts` process serves Prometheus metrics on PHASEGATE_METRICS_PORT,
 * and a migration with a gate, a backfill and a DDL step held up by another session's lock moves
 * phasegate's own series on it next to the SDK's. Its stderr, not a TTY here, is JSON lines.
 */
import net from 'node:net';
import { approveSignal } from '../../workflows/messages';
import { freePort } from '../../lib/local/ports';
import { eventually, untilState, useFaultLab, workerProcesses, writeMigrations, type LabDatabase } from '../faults/harness';

const lab = useFaultLab();

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of a Prometheus text exposition (comments skipped). */
function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return samples;
}

function metricsClient(port: number) {
  const url = `http://127.0.0.1:${port}/metrics`;
  const scrape = async (): Promise<{ text: string; samples: Sample[] }> => {
    const response = await fetch(url);
    expect(response.status).toBe(200);
    const text = await response.text();
    return { text, samples: parseExposition(text) };
  };
  /** The one sample of `name` whose labels include `labels` (undefined when there is none). */
  const value = async (name: string, labels: Record<string, string>): Promise<number | undefined> => {
    const matching = (await scrape()).samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
    if (matching.length > 1) throw new Error(`${name} ${JSON.stringify(labels)}: ${matching.length} series, expected one`);
    return matching[0]?.value;
  };
  return { url, scrape, value };
}

async function count(db: LabDatabase, sql: string): Promise<number> {
  return (await db.sql<{ n: number }>(sql))[0].n;
}

test('worker process: SDK and phasegate metrics on PHASEGATE_METRICS_PORT (gate gauge, backfill rows, lock timeouts), JSON log lines', async () => {
  const ROWS = 1_234;
  const LOCK_TIMEOUT_MS = 200;
  const db = await lab.database();
  await db.sql('CREATE TABLE accounts (id bigint PRIMARY KEY, email text)');
  await db.sql(`INSERT INTO accounts SELECT g, 'u' || g || '@example.com' FROM generate_series(1, $1::int) g`, [ROWS]);
  await db.sql('ANALYZE accounts');
  await db.sql('CREATE TABLE orgs (id bigint PRIMARY KEY)');
  const dir = writeMigrations({
    'm1.js': `module.exports = { id: 'm1', parent: null, message: 'add org_id and backfill it',
      gate: { name: 'deploy', prompt: 'deploy the app that writes org_id' },
      upgrade(op) { op.addColumn('accounts', 'org_id', 'bigint'); },
      downgrade(op) { op.dropColumn('accounts', 'org_id'); },
      backfill: { table: 'accounts', set: { org_id: 'id % 7' }, where: 'org_id IS NULL', batchSize: 100, maxRowsPerSecond: 300 } };`,
    'm2.js': `module.exports = { id: 'm2', parent: 'm1', message: 'add orgs.note',
      upgrade(op) { op.addColumn('orgs', 'note', 'text'); },
      downgrade(op) { op.dropColumn('orgs', 'note'); } };`,
  });
  const port = await freePort();
  const metrics = metricsClient(port);
  const procs = workerProcesses(
    lab,
    db,
    dir,
    { defaults: { lockTimeoutMs: LOCK_TIMEOUT_MS, lockRetry: { maxAttempts: 100, initialDelayMs: 100, maxDelayMs: 300 } } },
    { PHASEGATE_METRICS_PORT: String(port), PHASEGATE_LOG_LEVEL: 'info' },
  );
  const worker = procs.spawn();
  const blocker = await db.session();
  const gate = { name: 'phasegate_gates_waiting', labels: { database: 'app' } };
  const lockTimeouts = { name: 'phasegate_lock_timeouts', labels: { database: 'app', revision: 'm2' } };
  try {
    await eventually('the worker to poll', async () => /"state":"RUNNING"/.test(worker.output()), 150_000);
    // Before any migration: the SDK's own series (prefix temporal_), none of phasegate's yet.
    const idle = await metrics.scrape();
    for (const name of ['temporal_worker_start', 'temporal_num_pollers', 'temporal_worker_task_slots_available']) {
      expect(idle.samples.some((s) => s.name === name)).toBe(true);
    }
    expect(idle.text).not.toMatch(/^phasegate_/m);

    const handle = await procs.start();
    await untilState(handle, 'awaiting-approval');
    // The gauge moves after the workflow task that reached the gate completes.
    await eventually('phasegate_gates_waiting 1', async () => (await metrics.value(gate.name, gate.labels)) === 1, 10_000);
    const atGate = (await metrics.scrape()).samples.find((s) => s.name === gate.name)!;
    // The TypeScript SDK adds its tags to custom metrics in camelCase (its own series say task_queue).
    expect(atGate.labels).toEqual({ database: 'app', workflowType: 'migrate', taskQueue: procs.taskQueue, namespace: 'default' });

    // Hold a lock on orgs from another session (ACCESS SHARE until ROLLBACK): m2's ADD COLUMN
    // (ACCESS EXCLUSIVE) gives up after lock_timeout on every attempt while it is held.
    await blocker.query('BEGIN');
    await blocker.query('SELECT count(*) FROM orgs');
    await handle.signal(approveSignal, { by: 'metrics-test' });
    // Throttled to 300 rows/s: the slice runs for seconds, and its rate shows while it does.
    const rate = { name: 'phasegate_backfill_rows_per_second', labels: { database: 'app', table: 'accounts' } };
    const running = await eventually('phasegate_backfill_rows_per_second above 0', async () => metrics.value(rate.name, rate.labels), 20_000);
    console.info(`metrics test: phasegate_backfill_rows_per_second ${running} while the slice ran (throttled to 300)`);
    expect(running).toBeGreaterThan(0);
    expect(running).toBeLessThan(600);
    await eventually('phasegate_lock_timeouts of m2 to reach 2', async () => ((await metrics.value(lockTimeouts.name, lockTimeouts.labels)) ?? 0) >= 2, 60_000);

    // m1's backfill finished before m2 started: every row written once, counted once; the gate is passed.
    expect(await count(db, 'SELECT count(*)::int AS n FROM accounts WHERE org_id IS NOT NULL')).toBe(ROWS);
    expect(await metrics.value('phasegate_backfill_rows', { database: 'app', table: 'accounts' })).toBe(ROWS);
    expect(await metrics.value(gate.name, gate.labels)).toBe(0);
    // No slice runs any more, so the rate gauge is back at 0 (it was set while the slices ran).
    expect(await metrics.value(rate.name, rate.labels)).toBe(0);
    const { text, samples } = await metrics.scrape();
    console.info(`metrics test: phasegate's series after the backfill\n${text.split('\n').filter((l) => l.startsWith('phasegate_')).join('\n')}`);
    expect(samples.find((s) => s.name === 'phasegate_backfill_rows')!.labels).toEqual({
      database: 'app',
      table: 'accounts',
      activityType: 'backfillSlice',
      taskQueue: procs.taskQueue,
      namespace: 'default',
    });
    expect(samples.find((s) => s.name === lockTimeouts.name)!.labels).toEqual({
      database: 'app',
      revision: 'm2',
      activityType: 'applyRevision',
      taskQueue: procs.taskQueue,
      namespace: 'default',
    });
    // The SDK's activity and workflow series count what ran.
    expect(samples.some((s) => s.name === 'temporal_activity_execution_latency_count' && s.labels.activity_type === 'backfillSlice' && s.value > 0)).toBe(true);
    expect(samples.some((s) => s.name === 'temporal_workflow_task_execution_latency_count' && s.labels.workflow_type === 'migrate' && s.value > 0)).toBe(true);

    const before = (await metrics.value(lockTimeouts.name, lockTimeouts.labels))!;
    await blocker.query('ROLLBACK');
    expect((await handle.result()).outcome).toBe('done');
    // Each counted timeout was an attempt the workflow saw; at most the one in flight at ROLLBACK adds to it.
    const after = (await metrics.value(lockTimeouts.name, lockTimeouts.labels))!;
    expect(after).toBeGreaterThanOrEqual(before);
    expect(after).toBeLessThanOrEqual(before + 1);
    expect(await metrics.value(gate.name, gate.labels)).toBe(0);
  } catch (err) {
    throw new Error(`${(err as Error).message}\n--- metrics\n${await fetch(metrics.url).then((r) => r.text(), () => '(unreachable)')}\n${procs.output().slice(-20_000)}`);
  } finally {
    await blocker.query('ROLLBACK').catch(() => undefined);
    await blocker.end();
    await procs.stopAll();
  }

  // stderr is a pipe here, not a TTY: every line is a JSON object with name, level and msg — the
  // worker's own lines and the SDK's (sdkComponent), the workflow's and activities' included.
  const lines = worker
    .output()
    .split('\n')
    .filter((l) => l.trim() !== '');
  const records = lines.map((line) => {
    try {
      return JSON.parse(line) as { name?: unknown; level?: unknown; msg?: unknown; sdkComponent?: unknown };
    } catch {
      throw new Error(`not a JSON log line: ${line}`);
    }
  });
  for (const r of records) {
    expect(r).toMatchObject({ name: 'worker', level: expect.any(Number), msg: expect.any(String) });
  }
  expect(records.map((r) => r.msg)).toEqual(expect.arrayContaining(['phasegate worker started', 'Worker state changed']));
  expect(records.some((r) => r.sdkComponent === 'worker')).toBe(true);
  expect(records.some((r) => r.level === 40 && typeof r.msg === 'string' && r.msg.startsWith('lock_timeout: '))).toBe(true);
});

test('worker process: a metrics port already taken stops the worker at start, saying what to change', async () => {
  const db = await lab.database();
  const taken = net.createServer();
  const port = await new Promise<number>((resolve) => taken.listen(0, '127.0.0.1', () => resolve((taken.address() as net.AddressInfo).port)));
  const procs = workerProcesses(lab, db, writeMigrations({}), {}, { PHASEGATE_METRICS_PORT: String(port) });
  try {
    const worker = procs.spawn();
    await eventually('the worker to refuse the port', async () => worker.output().includes('phasegate worker: cannot serve metrics'), 30_000);
    expect(worker.output()).toContain(`phasegate worker: cannot serve metrics on 127.0.0.1:${port} (`);
    expect(worker.output()).toContain('set PHASEGATE_METRICS_PORT to a free port, or to off');
  } finally {
    await procs.stopAll();
    taken.close();
  }
});
