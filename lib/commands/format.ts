/**
 * Text output of the commands, in Alembic's shapes (`<parent> -> <rev> (head), message`), so the
 * CLI stays a thin wrapper and the text can be tested without running it. Pure.
 */
import path from 'node:path';
import type { AutogenerateResult, DriftResult, SchemaCheckResult, SchemaComparison } from './autogenerate';
import type { BranchesResult, HeadsResult, HistoryResult } from './history';
import type { FollowResult, MigrateEvent, OfflineMigrateResult, OnlineMigrateResult } from './migrate';
import type { NewRevisionResult } from './revision';
import type { RevisionSummary } from './project';
import type { ShowResult } from './show';
import type { CheckResult, CurrentResult, StampResult } from './version';
import type { InitResult } from './init';
import type { DevStack } from './dev';
import type { LintFinding, LintResult } from './lint';
import { stateText } from './format-status';

/** `abc123 (label) (head) (branchpoint)`. */
export function decorated(revision: RevisionSummary & { isCurrent?: boolean }): string {
  const parts = [revision.id];
  if (revision.branchNames.length) parts.push(`(${revision.branchNames.join(', ')})`);
  if (revision.isHead) parts.push('(head)');
  if (revision.isBranchPoint) parts.push('(branchpoint)');
  if (revision.isMerge) parts.push('(mergepoint)');
  if (revision.isCurrent) parts.push('(current)');
  return parts.join(' ');
}

const parentsText = (revision: RevisionSummary): string => (revision.parents.length ? revision.parents.join(', ') : '<base>');

/** One line: `<parents> -> <rev> (flags), message`. */
export function historyLine(revision: RevisionSummary & { isCurrent?: boolean }): string {
  return `${parentsText(revision)} -> ${decorated(revision)}, ${revision.message}`;
}

/** Alembic's verbose block: Rev, Parent, Branches into, Path, then the message indented. */
export function verboseBlock(revision: RevisionSummary & { isCurrent?: boolean }, directory: string): string {
  const lines = [`Rev: ${decorated(revision)}`, `${revision.isMerge ? 'Merges' : 'Parent'}: ${parentsText(revision)}`];
  if (revision.dependsOn.length) lines.push(`Also depends on: ${revision.dependsOn.join(', ')}`);
  if (revision.isBranchPoint) lines.push(`Branches into: ${revision.children.join(', ')}`);
  if (revision.branchLabels.length) lines.push(`Branch names: ${revision.branchLabels.join(', ')}`);
  if (!revision.transactional) lines.push('Transactional: no');
  if (revision.phase) lines.push(`Phase: ${revision.phase}`);
  lines.push(`Path: ${path.join(directory, revision.file)}`, '');
  for (const line of revision.message.split('\n')) lines.push(`    ${line}`);
  return lines.join('\n');
}

export function formatHeads(result: HeadsResult, verbose = false): string {
  if (result.heads.length === 0) return `no revisions in ${result.directory}`;
  return verbose ? result.heads.map((h) => verboseBlock(h, result.directory)).join('\n\n') : result.heads.map(decorated).join('\n');
}

export function formatBranches(result: BranchesResult): string {
  if (result.branchPoints.length === 0) return 'no branch points';
  return result.branchPoints
    .map((point) => {
      const indent = ' '.repeat(point.id.length + 1);
      return [`${decorated(point)}, ${point.message}`, ...point.branchesInto.map((c) => `${indent}-> ${decorated(c)}, ${c.message}`)].join('\n');
    })
    .join('\n');
}

export function formatHistory(result: HistoryResult, verbose = false): string {
  if (result.revisions.length === 0) return 'no revisions in this range';
  return verbose
    ? result.revisions.map((r) => verboseBlock(r, result.directory)).join('\n\n')
    : result.revisions.map(historyLine).join('\n');
}

export function formatCurrent(result: CurrentResult): string {
  if (result.heads.length === 0) return `database "${result.database}": nothing applied (base)`;
  return result.heads
    .map((h) => (h.revision ? `${decorated(h.revision)}, ${h.revision.message}` : `${h.id} (no revision file declares it)`))
    .join('\n');
}

export function formatShow(result: ShowResult): string {
  const lines = [verboseBlock(result, path.dirname(result.path)), '', `Hash: sha256:${result.hash}`];
  for (const direction of ['upgrade', 'downgrade'] as const) {
    const rendered = result[direction];
    lines.push('', `-- ${direction}${result.transactional ? '' : ' (non-transactional)'}`);
    if (rendered.error) lines.push(`-- throws: ${rendered.error}`);
    else if (rendered.sql.length === 0) lines.push('-- (no statements)');
    else lines.push(...rendered.sql);
  }
  for (const problem of result.problems) lines.push('', `-- problem: ${problem}`);
  return lines.join('\n');
}

export function formatNewRevision(result: NewRevisionResult): string {
  const parents = result.parents.length ? result.parents.join(', ') : 'base';
  return `created ${result.id} (${result.parents.length > 1 ? 'merge of' : 'on'} ${parents}): ${result.file}`;
}

export function formatInit(result: InitResult): string {
  const lines = result.created.map((file) => `created ${file}`);
  if (result.config === 'kept') lines.push(`kept ${result.configFile} (already there)`);
  lines.push('next: phasegate revision -m "first change"');
  return lines.join('\n');
}

export function formatCheck(result: CheckResult): string {
  if (result.upToDate) return `database "${result.database}" is up to date (${result.current.join(', ') || 'base'})`;
  return (
    `${result.pending.length} revision(s) pending on database "${result.database}": ` +
    `${result.pending.map((r) => `${r.id} (${r.message})`).join(', ')}; run phasegate upgrade`
  );
}

export function formatStamp(result: StampResult): string {
  const before = result.before.join(', ') || 'base';
  const after = result.after.join(', ') || 'base';
  return result.changed ? `stamped database "${result.database}": ${before} -> ${after}` : `database "${result.database}" already at ${after}; nothing written`;
}

export function formatOnlineResult(result: OnlineMigrateResult): string {
  const verb = result.direction === 'upgrade' ? 'upgraded' : 'downgraded';
  switch (result.outcome) {
    case 'nothing-to-do':
      return `database "${result.database}" is already at ${result.headsBefore.join(', ') || 'base'}; nothing to ${result.direction}`;
    case 'started':
      return `started workflow ${result.workflowId} (${result.planned.length} revision(s)); follow it with phasegate status`;
    case 'done':
      return `${verb} database "${result.database}" to ${result.headsAfter.join(', ') || 'base'}: ${result.applied.join(', ')} (workflow ${result.workflowId})`;
    case 'rolled-back':
      return `rolled back database "${result.database}" to ${result.headsAfter.join(', ') || 'base'}: undid ${result.rolledBack.join(', ') || 'nothing'} (workflow ${result.workflowId})`;
    case 'abandoned':
      return `abandoned the migration of database "${result.database}", left at ${result.headsAfter.join(', ') || 'base'} (workflow ${result.workflowId})`;
    case 'awaiting-approval':
      return formatGateStop(result);
  }
}

/** `--until gate` stopped at a gate: what it waits for and the command that opens it. */
export function formatGateStop(result: Pick<OnlineMigrateResult, 'database' | 'workflowId' | 'applied' | 'gate'>): string {
  const gate = result.gate;
  const applied = result.applied.length ? `applied ${result.applied.join(', ')}; ` : '';
  if (!gate) return `${applied}the migration of database "${result.database}" waits at a gate (workflow ${result.workflowId})`;
  return (
    `${applied}the migration of database "${result.database}" waits at gate "${gate.name}" (revision ${gate.revision}, workflow ${result.workflowId}): ${gate.prompt}\n` +
    `open it with: phasegate approve --database ${result.database} --gate '${gate.name}' --by <you>; then follow it with: phasegate follow --database ${result.database}`
  );
}

/** `phasegate follow`: how the followed migration ended (or which gate it stopped at). */
export function formatFollowResult(result: FollowResult): string {
  if (result.outcome === 'awaiting-approval') return formatGateStop(result);
  const heads = (result.headsAfter ?? []).join(', ') || 'base';
  if (result.outcome === 'rolled-back') return `rolled back database "${result.database}" to ${heads}: undid ${result.rolledBack.join(', ') || 'nothing'} (workflow ${result.workflowId})`;
  if (result.outcome === 'abandoned') return `abandoned the migration of database "${result.database}", left at ${heads} (workflow ${result.workflowId})`;
  const verb = result.direction === 'upgrade' ? 'upgraded' : 'downgraded';
  return `${verb} database "${result.database}" to ${heads}: ${result.applied.join(', ') || 'nothing left to run'} (workflow ${result.workflowId})`;
}

export function formatOfflineResult(result: OfflineMigrateResult): string {
  return result.script;
}

/** One line per progress event, for stderr. */
export function formatEvent(event: MigrateEvent): string | null {
  switch (event.type) {
    case 'started':
      return `started workflow ${event.workflowId}: ${event.steps.map((s) => s.revision).join(', ')}`;
    case 'step': {
      const took = event.step.durationMs !== undefined ? ` (${event.step.durationMs} ms)` : '';
      const message = event.step.message ? ` ${event.step.message}` : '';
      return `${stateText(event.step.state, event.direction)} ${event.step.revision}${message}${took}`;
    }
    case 'state':
      if (event.state === 'awaiting-approval') return `waiting for approval before ${event.revision ?? 'the next step'} (phasegate approve)`;
      if (event.waiting) return `waiting: ${event.waiting}`;
      if (event.state === 'paused') return 'paused (phasegate resume)';
      if (event.state === 'waiting-for-window') return `waiting for a maintenance window before ${event.revision ?? 'the next step'} (phasegate status shows when it opens)`;
      if (event.state === 'soaking') return `soaking after ${event.revision ?? 'the last step'} (phasegate status; phasegate skip-soak ends it early)`;
      return null;
    case 'warning':
      return `warning: ${event.message}`;
  }
}

/** The lists every schema comparison ends with: what has no safe step, and what is not compared. */
function comparisonNotes(result: Pick<SchemaComparison, 'notSupported' | 'notCompared'>): string[] {
  const lines: string[] = [];
  if (result.notSupported.length > 0) {
    lines.push(`not written (no safe step; do these by hand): ${result.notSupported.length}`);
    for (const n of result.notSupported) lines.push(`  ! ${n.object}: ${n.reason}`);
  }
  if (result.notCompared.length > 0) {
    lines.push(`not compared (autogenerate does not read these yet; check them yourself): ${result.notCompared.length}`);
    for (const n of result.notCompared) lines.push(`  ? ${n.kind} ${n.object}`);
  }
  return lines;
}

const against = (r: SchemaComparison) => (r.against === 'database' ? `database "${r.database}"` : 'the revision chain (built in a shadow database)');

export function formatAutogenerate(result: AutogenerateResult): string {
  const lines: string[] = [];
  if (result.files.length === 0) {
    lines.push(`no changes: ${against(result)} matches ${result.schemaFile}${result.notSupported.length ? ' except what is listed below' : ''}; nothing written`);
  } else {
    lines.push(`${result.differences.length} difference(s) between ${against(result)} and ${result.schemaFile}:`, ...result.differences.map((d) => `  ${d}`));
    lines.push(`wrote ${result.files.length} revision(s) in ${result.directory}:`);
    for (const f of result.files) {
      const hooks = [f.transactional ? '' : 'non-transactional', f.gate ? `gate "${f.gate.name ?? f.id}"` : '', f.backfill ? 'backfill' : '', f.check ? 'check' : ''].filter(Boolean);
      lines.push(`  ${f.id} [${f.phase}] ${f.message}${hooks.length ? ` — ${hooks.join('; ')}` : ''}`);
    }
    if (result.review.length > 0) lines.push('review before applying:', ...result.review.map((r) => `  * ${r}`));
  }
  return [...lines, ...comparisonNotes(result)].join('\n');
}

export function formatSchemaCheck(result: SchemaCheckResult): string {
  if (result.upToDate) return [`${against(result)} matches ${result.schemaFile}: autogenerate would write nothing`, ...comparisonNotes(result)].join('\n');
  return [
    `${against(result)} differs from ${result.schemaFile} (${result.changes.length} difference(s)); run phasegate revision --autogenerate -m "…"${result.notSupported.length ? ' (and do the "!" ones by hand)' : ''}:`,
    ...result.differences.map((d) => `  ${d}`),
    ...comparisonNotes(result),
  ].join('\n');
}

export function formatDrift(result: DriftResult): string {
  const notes = result.notCompared.length ? [`not compared: ${result.notCompared.map((n) => `${n.kind} ${n.object}`).join(', ')}`] : [];
  if (!result.drifted) return [`database "${result.database}" matches what its applied revisions build: no drift`, ...notes].join('\n');
  return [
    `database "${result.database}" has drifted from its revisions (${result.changes.length} difference(s)); each line is what would bring the database back to what the revisions build:`,
    ...result.differences.map((d) => `  ${d}`),
    'Someone changed the schema outside phasegate: write the change as a revision (and stamp it), or undo it.',
    ...notes,
  ].join('\n');
}

/** One finding: `upgrade line 12 (revision ab12): error: not-null-without-check [phasegate]: …`, then its help indented. */
export function lintLine(f: LintFinding): string {
  const where = f.line > 0 ? `${f.script} line ${f.line}` : f.script;
  const head = `${where}${f.revision ? ` (revision ${f.revision})` : ''}: ${f.level}: ${f.rule}${f.source === 'phasegate' ? ' [phasegate]' : ''}: ${f.message}`;
  return f.help ? `${head}\n    ${f.help}` : head;
}

/** `phasegate lint`: the findings, a count line, then what was accepted and why. */
export function formatLint(result: LintResult): string {
  const scripts = result.downgradeRange ? `${result.range} (upgrade) and ${result.downgradeRange} (downgrade)` : result.range;
  const lines = result.findings.length === 0 ? [`lint: nothing to report on ${scripts}`] : [...result.findings.map(lintLine), `${result.errors} error(s), ${result.warnings} warning(s) on ${scripts}`];
  if (result.behindGate.length) {
    lines.push(`accepted, behind a gate (a person approves each before it runs): ${result.behindGate.length}`, ...result.behindGate.map((f) => `  ${lintLine(f)}`));
  }
  if (result.undoing.length) {
    lines.push(`accepted, in the downgrade (drops and old column types: it restores what was there before, and runs only when a person asks): ${result.undoing.length}`);
  }
  if (result.measured) {
    const tables = Object.entries(result.measured.tables).map(([t, m]) => `${t} ${(m.bytes / 1024 / 1024).toFixed(1)} MB, ≈ ${m.rows} rows`);
    lines.push(`table sizes from database "${result.measured.database}": ${tables.length ? tables.join('; ') : 'none of the tables exists yet'}`);
  } else if (result.measureError) {
    lines.push(`table sizes not measured: ${result.measureError}`);
  }
  return lines.join('\n');
}

/** `phasegate dev`: where the stack is and how another terminal uses it. */
export function formatDev(stack: DevStack): string {
  return [
    'phasegate dev: Temporal and PostgreSQL are up',
    `  Temporal          ${stack.temporalAddress} (Web UI ${stack.uiUrl})`,
    `  PostgreSQL        ${stack.databaseUrl}`,
    `  state and logs    ${stack.dataDir}`,
    '',
    'In another terminal, in this folder:',
    `  export TEMPORAL_ADDRESS=${stack.env.TEMPORAL_ADDRESS} DATABASE_URL=${stack.env.DATABASE_URL}`,
    '  npx phasegate worker            (serves this project\'s revisions)',
    '  npx phasegate upgrade head',
    '',
    'Ctrl-C stops Temporal and PostgreSQL; their state is kept for the next start.',
  ].join('\n');
}
