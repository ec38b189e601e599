/**
 * The file commands on temporary project folders: init, revision, merge, heads, branches, history,
 * show, and `upgrade/downgrade --sql`. No database, no Temporal: every case here either only reads
 * files or must fail before it would connect to anything.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { branches, check, current, downgrade, heads, history, init, merge, newPattern, revision, show, stamp, upgrade } from '../../lib/commands';
import { formatBranches, formatHeads, formatHistory, formatShow } from '../../lib/commands/format';
import { loadConfig, type PhasegateConfig } from '../../lib/config';
import type { PhasegateError } from '../../lib/errors';
import { loadRevisionFile } from '../../lib/revision-files';
import { slugify } from '../../lib/revision-template';

/** A project folder whose config names its migrations folder; `files` are written into that folder. */
function project(files: Record<string, string> = {}): { cwd: string; dir: string; config: PhasegateConfig } {
  const cwd = mkdtempSync(path.join(os.tmpdir(), 'phasegate-cli-'));
  const dir = path.join(cwd, 'migrations', 'versions');
  mkdirSync(dir, { recursive: true });
  for (const [name, content] of Object.entries(files)) writeFileSync(path.join(dir, name), content);
  return { cwd, dir, config: loadConfig({ migrations: { directory: 'migrations/versions' } }, {}) };
}

/** A CommonJS revision file (loads without a compiler, like the other tests' fixtures). */
function rev(id: string, parent: string | string[] | null, body: { up?: string; down?: string; extra?: string } = {}): string {
  const link = Array.isArray(parent) ? `parents: ${JSON.stringify(parent)}` : `parent: ${JSON.stringify(parent)}`;
  return `module.exports = {
    id: '${id}', ${link}, message: 'msg ${id}', ${body.extra ?? ''}
    upgrade(op) { ${body.up ?? ''} },
    downgrade(op) { ${body.down ?? ''} },
  };`;
}

async function failure(promise: Promise<unknown>): Promise<PhasegateError> {
  try {
    await promise;
  } catch (err) {
    return err as PhasegateError;
  }
  throw new Error('expected the command to fail');
}

const linear = {
  'a1_first.js': rev('a1', null, { up: "op.addColumn('accounts', 'plan', 'text');", down: "op.dropColumn('accounts', 'plan');" }),
  'a2_second.js': rev('a2', 'a1', { up: "op.sql('UPDATE accounts SET plan = $1', ['free']);", down: "op.sql('UPDATE accounts SET plan = NULL');" }),
};

describe('init', () => {
  test('creates the config and a migrations folder with a guide, then refuses to run again', async () => {
    const cwd = mkdtempSync(path.join(os.tmpdir(), 'phasegate-init-'));
    const result = await init({ cwd });
    expect(result.config).toBe('created');
    expect(result.created.sort()).toEqual([path.join(cwd, 'migrations/versions/README.md'), path.join(cwd, 'phasegate.config.ts')].sort());
    const configText = readFileSync(path.join(cwd, 'phasegate.config.ts'), 'utf8');
    expect(configText).toContain("directory: 'migrations/versions'");
    expect(configText).toMatch(/^import type \{ PhasegateConfigInput \} from '/m);

    // The new project works: the config loads and the (empty) folder has no heads.
    expect((await heads({ cwd })).heads).toEqual([]);

    const again = await failure(init({ cwd }));
    expect(again.type).toBe('AlreadyInitialized');
    expect(again.message).toContain(path.join(cwd, 'migrations/versions'));
    expect(readFileSync(path.join(cwd, 'phasegate.config.ts'), 'utf8')).toBe(configText);
  });

  test('keeps an existing config and uses its migrations folder', async () => {
    const cwd = mkdtempSync(path.join(os.tmpdir(), 'phasegate-init-'));
    const config = "module.exports = { migrations: { directory: 'db/revisions' } };\n";
    writeFileSync(path.join(cwd, 'temporal.config.ts'), config);
    const result = await init({ cwd });
    expect(result.config).toBe('kept');
    expect(result.directory).toBe(path.join(cwd, 'db/revisions'));
    expect(existsSync(path.join(cwd, 'db/revisions/README.md'))).toBe(true);
    expect(readFileSync(path.join(cwd, 'temporal.config.ts'), 'utf8')).toBe(config);
  });

  test('finds phasegate.config.ts before temporal.config.ts, and a temporal.config.ts alone', async () => {
    const cwd = mkdtempSync(path.join(os.tmpdir(), 'phasegate-config-'));
    writeFileSync(path.join(cwd, 'temporal.config.ts'), "module.exports = { migrations: { directory: 'old' } };\n");
    // init keeps the project's existing config rather than adding a second one
    expect((await init({ cwd })).configFile).toBe(path.join(cwd, 'temporal.config.ts'));
    expect(existsSync(path.join(cwd, 'phasegate.config.ts'))).toBe(false);
    writeFileSync(path.join(cwd, 'phasegate.config.ts'), "module.exports = { migrations: { directory: 'new' } };\n");
    mkdirSync(path.join(cwd, 'new'));
    expect((await heads({ cwd })).directory).toBe(path.join(cwd, 'new'));
  });

  test('commands in a folder without config say to run init', async () => {
    const cwd = mkdtempSync(path.join(os.tmpdir(), 'phasegate-empty-'));
    const error = await failure(heads({ cwd }));
    expect(error.type).toBe('ConfigNotFound');
    expect(error.message).toContain('phasegate init');
  });
});

describe('revision', () => {
  test('writes <id>_<slug>.ts on top of the only head, with typed stubs and a reminder to state the lock', async () => {
    const p = project();
    const first = await revision({ ...p, message: 'Add accounts.plan (nullable)' });
    expect(first.id).toMatch(/^[0-9a-f]{12}$/);
    expect(first.parents).toEqual([]);
    expect(path.basename(first.file)).toBe(`${first.id}_add_accounts_plan_nullable.ts`);

    const second = await revision({ ...p, message: 'backfill plan' });
    expect(second.parents).toEqual([first.id]);
    const text = readFileSync(second.file, 'utf8');
    expect(text).toContain("import type { RevisionModule } from '");
    expect(text).toContain('const revision: RevisionModule = {');
    expect(text).toContain(`parent: '${first.id}',`);
    expect(text).toMatch(/upgrade\(op\) \{/);
    expect(text).toMatch(/downgrade\(op\) \{/);
    expect(text).toMatch(/Locks: say which lock each statement takes/);

    // The generated file is a valid revision as written.
    const loaded = loadRevisionFile(second.file);
    expect(loaded.node).toEqual({ id: second.id, parents: [first.id], dependsOn: [], branchLabels: [], message: 'backfill plan' });
    expect(loaded.module.transactional).toBeUndefined();
    expect((await heads(p)).heads.map((h) => h.id)).toEqual([second.id]);
  });

  test('--non-transactional, --branch-label and --depends-on (a prefix) end up in the file', async () => {
    const p = project(linear);
    const created = await revision({ ...p, message: 'index plan', nonTransactional: true, head: 'base', branchLabel: 'search', dependsOn: ['a1'] });
    const loaded = loadRevisionFile(created.file);
    expect(loaded.module.transactional).toBe(false);
    expect(loaded.node).toMatchObject({ parents: [], branchLabels: ['search'], dependsOn: ['a1'] });
    expect(readFileSync(created.file, 'utf8')).toContain('Non-transactional: each statement runs on its own');
  });

  test('with several heads it refuses without --head and lists them; --head picks one', async () => {
    const p = project({ ...linear, 'b1_side.js': rev('b1', 'a1') });
    const error = await failure(revision({ ...p, message: 'next' }));
    expect(error.type).toBe('MultipleHeads');
    expect(error.message).toContain('a2, b1');
    expect(error.message).toContain('--head');
    expect(error.message).toContain('phasegate merge');
    expect(readdirSync(p.dir)).toHaveLength(3);

    const created = await revision({ ...p, message: 'next', head: 'b1' });
    expect(created.parents).toEqual(['b1']);
  });

  test('refuses a --head that is not a head, and a duplicate branch label, writing nothing', async () => {
    const p = project({ ...linear, 'b1_side.js': rev('b1', null, { extra: "branchLabels: ['side']," }) });
    const notHead = await failure(revision({ ...p, message: 'x', head: 'a1' }));
    expect(notHead.type).toBe('NotAHead');
    expect(notHead.message).toContain('a1');

    const label = await failure(revision({ ...p, message: 'x', head: 'a2', branchLabel: 'side' }));
    expect(label.type).toBe('DuplicateBranchLabel');
    // The real conflict (b1 owns "side") and the fix; never the id the new file would have had.
    expect(label.message).toBe(
      '--branch-label side already names the branch of revision b1; nothing was written. Pick a label no other branch uses ' +
        '(`phasegate branches` and `phasegate heads` list them), or leave --branch-label out and target the branch by its existing label',
    );
    expect(readdirSync(p.dir).sort()).toEqual(['a1_first.js', 'a2_second.js', 'b1_side.js']);

    const noMessage = await failure(revision({ ...p, message: '  ', head: 'a2' }));
    expect(noMessage.type).toBe('MissingMessage');
  });

  test('--depends-on <label> is written as the label (as Alembic writes it) and means the labelled revision', async () => {
    const p = project({ ...linear, 'b1_side.js': rev('b1', null, { extra: "branchLabels: ['side']," }) });
    const created = await revision({ ...p, message: 'needs side', head: 'a2', dependsOn: ['side'] });
    expect(created.dependsOn).toEqual(['side']);
    expect(readFileSync(created.file, 'utf8')).toMatch(/dependsOn: \[['"]side['"]\]/);
    const plan = await upgrade({ ...p, sql: true, target: created.id });
    expect(plan.steps.map((s) => s.revision)).toEqual(['a1', 'a2', 'b1', created.id]);
  });

  test('slugs are lowercase words joined by _, cut near 40 characters', () => {
    expect(slugify('Add NOT NULL to accounts.org_id — phase 3!')).toBe('add_not_null_to_accounts_org_id_phase_3');
    expect(slugify('a'.repeat(60))).toHaveLength(40);
    expect(slugify('???')).toBe('revision');
  });
});

describe('merge', () => {
  test('joins the heads into one merge revision with empty stubs', async () => {
    const p = project({ ...linear, 'b1_side.js': rev('b1', 'a1') });
    const created = await merge({ ...p, message: 'merge side', revisions: ['heads'] });
    expect(created.parents).toEqual(['a2', 'b1']);
    const loaded = loadRevisionFile(created.file);
    expect(loaded.node.parents).toEqual(['a2', 'b1']);
    expect(readFileSync(created.file, 'utf8')).toContain("parents: ['a2', 'b1'],");
    expect((await heads(p)).heads.map((h) => h.id)).toEqual([created.id]);
  });

  test('needs two separate lines', async () => {
    const p = project(linear);
    expect((await failure(merge({ ...p, message: 'm', revisions: ['a2'] }))).type).toBe('NothingToMerge');
    const redundant = await failure(merge({ ...p, message: 'm', revisions: ['a1', 'a2'] }));
    expect(redundant.type).toBe('RedundantMerge');
    expect(redundant.message).toContain('a1 is already an ancestor of a2');
  });
});

describe('heads, branches, history', () => {
  const forest = {
    ...linear,
    'b1_cart.js': rev('b1', 'a1', { extra: "branchLabels: ['cart']," }),
    'c1_net.js': rev('c1', null),
  };

  test('heads lists every head with its labels, in text and as data', async () => {
    const p = project(forest);
    const result = await heads(p);
    expect(result.heads.map((h) => [h.id, h.branchLabels])).toEqual([
      ['a2', []],
      ['b1', ['cart']],
      ['c1', []],
    ]);
    expect(formatHeads(result)).toBe('a2 (head)\nb1 (cart) (head)\nc1 (head)');
    const verbose = formatHeads(result, true);
    expect(verbose).toContain('Rev: b1 (cart) (head)\nParent: a1\nBranch names: cart\nPath: ');
    expect(verbose).toContain('b1_cart.js\n\n    msg b1');
  });

  test('a label shows on its whole branch: the labelled revision, its descendants and its ancestors up to the branch point', async () => {
    const p = project({ 'x1_root.js': rev('x1', null), 'x2_mid.js': rev('x2', 'x1'), 'x3_top.js': rev('x3', 'x2', { extra: "branchLabels: ['xl']," }), 'x4_after.js': rev('x4', 'x3') });
    const lines = formatHistory(await history(p)).split('\n');
    expect(lines).toEqual([
      'x3 -> x4 (xl) (head), msg x4',
      'x2 -> x3 (xl), msg x3',
      'x1 -> x2 (xl), msg x2',
      '<base> -> x1 (xl), msg x1',
    ]);
    // The file's own declaration is unchanged.
    expect((await heads(p)).heads[0]).toMatchObject({ id: 'x4', branchLabels: [], branchNames: ['xl'] });
  });

  test('branches shows each branch point and what it splits into', async () => {
    const p = project(forest);
    expect(formatBranches(await branches(p))).toBe(
      ['a1 (branchpoint), msg a1', '   -> a2 (head), msg a2', '   -> b1 (cart) (head), msg b1'].join('\n'),
    );
  });

  test('history lists newest first, Alembic style, and honours -r start:end', async () => {
    const p = project(forest);
    expect(formatHistory(await history(p))).toBe(
      [
        '<base> -> c1 (head), msg c1',
        'a1 -> b1 (cart) (head), msg b1',
        'a1 -> a2 (head), msg a2',
        '<base> -> a1 (branchpoint), msg a1',
      ].join('\n'),
    );
    const ranged = await history({ ...p, range: 'a1:a2' });
    expect(ranged.revisions.map((r) => r.id)).toEqual(['a2', 'a1']);
    expect((await history({ ...p, range: 'cart@head:' })).revisions.map((r) => r.id)).toEqual(['b1']);
    expect(formatHistory(await history({ ...p, range: ':a1' }), true)).toContain('Rev: a1 (branchpoint)\nParent: <base>\nBranches into: a2, b1\n');
  });

  test('history refuses a malformed range and one that needs a database without --database', async () => {
    const p = project(forest);
    expect((await failure(history({ ...p, range: 'a1' }))).type).toBe('InvalidRange');
    const needsDb = await failure(history({ ...p, range: 'current:' }));
    expect(needsDb.type).toBe('DatabaseRequired');
    expect(needsDb.message).toContain('--database');
  });
});

describe('show', () => {
  test('shows parents, file, hash and the SQL of both directions', async () => {
    const p = project(linear);
    const result = await show({ ...p, revision: 'a2' });
    expect(result).toMatchObject({ id: 'a2', parents: ['a1'], file: 'a2_second.js', isHead: true, problems: [] });
    expect(result.hash).toBe(createHash('sha256').update(readFileSync(path.join(p.dir, 'a2_second.js'))).digest('hex'));
    expect(result.upgrade.sql).toEqual(["UPDATE accounts SET plan = 'free';"]);
    expect(result.downgrade.sql).toEqual(['UPDATE accounts SET plan = NULL;']);
    const text = formatShow(result);
    expect(text).toContain('Rev: a2 (head)\nParent: a1\n');
    expect(text).toContain(`Hash: sha256:${result.hash}`);
    expect(text).toContain("-- upgrade\nUPDATE accounts SET plan = 'free';\n\n-- downgrade\nUPDATE accounts SET plan = NULL;");
  });

  test('names the problem of a CONCURRENTLY op in a transactional revision, and a downgrade that throws', async () => {
    const p = project({
      'i1_index.js': rev('i1', null, {
        up: "op.createIndex('accounts_plan_idx', 'accounts', ['plan'], { concurrently: true });",
        down: "throw new Error('cannot be reversed: data was merged');",
      }),
    });
    const result = await show({ ...p, revision: 'head' });
    expect(result.problems).toEqual([expect.stringContaining('add `transactional: false` to i1_index.js')]);
    expect(result.downgrade.error).toBe('cannot be reversed: data was merged');
    expect(formatShow(result)).toContain('-- throws: cannot be reversed: data was merged');
  });

  test('unknown and ambiguous names say what to do', async () => {
    const p = project({ ...linear, 'a3_third.js': rev('a3', 'a2') });
    const unknown = await failure(show({ ...p, revision: 'zz' }));
    expect(unknown.type).toBe('UnknownRevision');
    expect(unknown.message).toContain('phasegate history');
    const ambiguous = await failure(show({ ...p, revision: 'a' }));
    expect(ambiguous.type).toBe('AmbiguousRevision');
    expect(ambiguous.message).toContain('a1, a2, a3');
  });
});

describe('bad revision folders fail with the file or revision named', () => {
  test.each([
    ['a cycle', { 'x1_a.js': rev('x1', 'x2'), 'x2_b.js': rev('x2', 'x1') }, 'CycleDetected', ['x1 → x2 → x1', 'x1_a.js, x2_b.js']],
    ['a duplicate id', { 'd1_a.js': rev('d1', null), 'd1_b.js': rev('d1', null) }, 'DuplicateRevision', ['d1', 'd1_a.js, d1_b.js']],
    ['a missing parent', { 'm1_a.js': rev('m1', 'gone') }, 'MissingParent', ['m1 → gone', 'm1_a.js']],
    ['a file that does not compile', { 'e1_a.js': 'module.exports = {' }, 'RevisionFileError', ['e1_a.js', 'does not load']],
    [
      'a revision without downgrade',
      { 'n1_a.js': "module.exports = { id: 'n1', parent: null, message: 'm', upgrade() {} };" },
      'RevisionFileError',
      ['n1_a.js', 'downgrade'],
    ],
  ])('%s', async (_name, files, type, fragments) => {
    const p = project(files);
    const error = await failure(heads(p));
    expect(error.type).toBe(type);
    for (const fragment of fragments) expect(error.message).toContain(fragment);
  });
});

describe('upgrade / downgrade --sql (offline) and checks before going online', () => {
  test('upgrade --sql renders from base by default and from a given start with from:to', async () => {
    const p = project(linear);
    const all = await upgrade({ ...p, sql: true });
    expect(all.mode).toBe('sql');
    expect(all.from).toEqual([]);
    expect(all.steps.map((s) => s.revision)).toEqual(['a1', 'a2']);
    expect(all.script).toContain('-- phasegate upgrade base:head for database "default"');
    const tail = await upgrade({ ...p, sql: true, target: 'a1:head' });
    expect(tail.steps.map((s) => s.revision)).toEqual(['a2']);
    expect(tail.script).not.toContain('ADD COLUMN');
  });

  test('downgrade --sql needs from:to and walks relative targets from the start it is given', async () => {
    const p = project(linear);
    const missing = await failure(downgrade({ ...p, sql: true, target: 'a1' }));
    expect(missing.type).toBe('InvalidRange');
    expect(missing.message).toContain('<from>:<to>');
    const oneDown = await downgrade({ ...p, sql: true, target: 'head:-1' });
    expect(oneDown.steps.map((s) => s.revision)).toEqual(['a2']);
    expect(oneDown.script).toContain(`DELETE FROM "public"."phasegate_version" WHERE version_num = ANY (ARRAY['a2']::text[]);`);
    const below = await failure(downgrade({ ...p, sql: true, target: 'head:-3' }));
    expect(below.type).toBe('BelowBase');
  });

  test('downgrade X:Y --sql with Y not below X is refused (as Alembic refuses), not an empty script', async () => {
    const p = project({ ...linear, 'b1_side.js': rev('b1', null), 'b2_dep.js': rev('b2', 'b1', { extra: "dependsOn: ['a2']," }) });
    // a2 is a dependency of b2, not below it on its line: nothing would be un-applied.
    const sideways = await failure(downgrade({ ...p, sql: true, target: 'b2:a2' }));
    expect(sideways.type).toBe('WrongDirection');
    expect(sideways.message).toContain('"a2" is not below "b2"');
    const up = await failure(downgrade({ ...p, sql: true, target: 'a1:a2' }));
    expect(up.type).toBe('WrongDirection');
    expect((await downgrade({ ...p, sql: true, target: 'b2:b1' })).steps.map((s) => s.revision)).toEqual(['b2']);
  });

  test('the plan is checked as a whole: CONCURRENTLY in a transactional revision fails naming the file', async () => {
    const p = project({ ...linear, 'a3_index.js': rev('a3', 'a2', { up: "op.createIndex('i', 'accounts', ['plan'], { concurrently: true });" }) });
    const error = await failure(upgrade({ ...p, sql: true }));
    expect(error.type).toBe('ConcurrentlyInTransaction');
    expect(error.message).toContain('a3_index.js');
    expect(error.message).toContain('transactional: false');
  });

  test('several heads and target head: the error lists them and suggests merge or heads', async () => {
    const p = project({ ...linear, 'b1_side.js': rev('b1', 'a1') });
    const error = await failure(upgrade({ ...p, sql: true }));
    expect(error.type).toBe('MultipleHeads');
    expect(error.message).toContain('a2, b1');
    expect(error.message).toContain('phasegate merge');
    expect(error.message).toContain('"heads"');
  });

  test('online upgrade of an unknown alias fails before connecting to anything', async () => {
    const p = project(linear);
    const error = await failure(upgrade({ ...p, database: 'nope' }));
    expect(error.type).toBe('UnknownDatabase');
    expect(error.message).toContain('"nope"');
    const noTarget = await failure(downgrade({ ...p }));
    expect(noTarget.type).toBe('MissingTarget');
  });
});

describe('an alias whose URL is unset (`url: process.env.PROD_URL`, PROD_URL unset)', () => {
  /** The project of `project()`, with alias `prod` configured as a config file without its variable would give it. */
  function unsetUrlProject() {
    const p = project(linear);
    return { ...p, config: loadConfig({ migrations: { directory: 'migrations/versions' }, databases: { prod: { url: undefined } } }, {}) };
  }

  test('the offline verbs work: heads, history, show, upgrade/downgrade --sql, revision, new', async () => {
    const p = unsetUrlProject();
    const database = 'prod';
    expect((await heads({ ...p, database })).heads.map((h) => h.id)).toEqual(['a2']);
    expect((await history({ ...p, database })).revisions.map((r) => r.id)).toEqual(['a2', 'a1']);
    expect((await show({ ...p, database, revision: 'a1' })).id).toBe('a1');
    expect((await upgrade({ ...p, database, sql: true })).script).toContain('for database "prod"');
    expect((await downgrade({ ...p, database, sql: true, target: 'head:-1' })).steps.map((s) => s.revision)).toEqual(['a2']);
    const created = await revision({ ...p, database, message: 'third' });
    expect(created.parents).toEqual(['a2']);
    const chain = await newPattern({ ...p, database, pattern: 'add-index', args: ['accounts', 'plan'] });
    expect(chain.files.length).toBeGreaterThan(0);
  });

  test('the verbs that connect fail before connecting, naming the alias, the config key and the variable', async () => {
    const p = unsetUrlProject();
    const database = 'prod';
    for (const run of [
      () => upgrade({ ...p, database }),
      () => downgrade({ ...p, database, target: '-1' }),
      () => current({ ...p, database }),
      () => check({ ...p, database }),
      () => stamp({ ...p, database, targets: ['head'] }),
      () => history({ ...p, database, indicateCurrent: true }),
    ]) {
      const error = await failure(run());
      expect(error.type).toBe('DatabaseUrlMissing');
      expect(error.message).toContain('database "prod" has no URL');
      expect(error.message).toContain('databases.prod.url in phasegate.config.ts');
      expect(error.message).toContain('PHASEGATE_DATABASE_URL_PROD=');
    }
  });
});

describe('messages name the config file actually loaded (--config), not temporal.config.ts', () => {
  function otherConfigProject(config: string): { cwd: string } {
    const { cwd } = project(linear);
    writeFileSync(path.join(cwd, 'other.config.js'), config);
    return { cwd };
  }

  test('an unknown alias, an alias without URL, a missing migrations folder, an invalid config', async () => {
    const p = { ...otherConfigProject("module.exports = { migrations: { directory: 'migrations/versions' }, databases: { prod: {} } };\n"), configFile: 'other.config.js' };
    const unknown = await failure(heads({ ...p, database: 'nope' }));
    expect(unknown.type).toBe('UnknownDatabase');
    expect(unknown.message).toContain('add it under databases in other.config.js');
    expect(unknown.message).not.toContain('temporal.config.ts');

    const noUrl = await failure(upgrade({ ...p, database: 'prod' }));
    expect(noUrl.type).toBe('DatabaseUrlMissing');
    expect(noUrl.message).toContain('databases.prod.url in other.config.js');

    const folderless = { ...otherConfigProject("module.exports = { migrations: { directory: 'db/none' } };\n"), configFile: 'other.config.js' };
    const missing = await failure(heads(folderless));
    expect(missing.type).toBe('MigrationsFolderNotFound');
    expect(missing.message).toContain('set migrations.directory in other.config.js');
    expect(missing.message).not.toContain('temporal.config.ts');

    const invalid = { ...otherConfigProject("module.exports = { migrations: { directry: 'x' } };\n"), configFile: 'other.config.js' };
    const bad = await failure(heads(invalid));
    expect(bad.type).toBe('ConfigError');
    expect(bad.message).toMatch(/^invalid phasegate configuration \(other\.config\.js\)/);
  });
});
