import type { PhasegateError } from '../../lib/errors';
import type { RevisionNode } from '../../lib/revision';
import { RevisionGraph } from '../../lib/revision-graph';

// ── helpers ──────────────────────────────────────────────────────────────────────────────────────

function rev(
  id: string,
  parents: string[] = [],
  opts: { dependsOn?: string[]; labels?: string[]; message?: string } = {},
): RevisionNode {
  return { id, parents, dependsOn: opts.dependsOn ?? [], branchLabels: opts.labels ?? [], message: opts.message ?? `${id} message` };
}

/** The error `fn` throws; errors are matched by `type`, never by instanceof (separate realms). */
function errorOf(fn: () => unknown): PhasegateError {
  try {
    fn();
  } catch (err) {
    return err as PhasegateError;
  }
  throw new Error('expected an error, got none');
}

/** Runs a planned path through headsAfter, step by step, as the workflow does: the final version-table rows. */
function run(graph: RevisionGraph, current: string[], target: string, direction: 'upgrade' | 'downgrade'): string[] {
  const path = direction === 'upgrade' ? graph.upgradePath(current, target) : graph.downgradePath(current, target);
  return path.reduce((heads, id) => graph.headsAfter(heads, id, direction), current);
}

const ids = (nodes: RevisionNode[]): string[] => nodes.map((n) => n.id);

// a1 ← a2 ← a3 ← a4
const linearNodes = [rev('a1'), rev('a2', ['a1']), rev('a3', ['a2']), rev('a4', ['a3'])];
const linear = RevisionGraph.build(linearNodes);

// b0 ← l1, b0 ← r1, (l1, r1) ← m1 ← top
const diamondNodes = [rev('b0'), rev('l1', ['b0']), rev('r1', ['b0']), rev('m1', ['l1', 'r1']), rev('top', ['m1'])];
const diamond = RevisionGraph.build(diamondNodes);

// Alembic's branches tutorial: an account line with a shopping-cart branch, and an independent
// networking line whose last revision depends on the account line.
const ACCOUNT = '1975ea83b712';
const COLUMN = 'ae1027a6acf';
const ANOTHER = '55af2cb1c267';
const MORE = '34e094ad6ef1';
const CART = '27c6a30d7c24';
const CART_COLUMN = 'd747a8a8879';
const NET = '3cac04ae8714';
const IP = '109ec7d132bf';
const DNS = '29f859a13ea';
const IP_ACCOUNT = '2a95102259be';
const forestNodes = [
  rev(ACCOUNT),
  rev(COLUMN, [ACCOUNT]),
  rev(ANOTHER, [COLUMN]),
  rev(MORE, [ANOTHER]),
  rev(CART, [ACCOUNT], { labels: ['shoppingcart'] }),
  rev(CART_COLUMN, [CART]),
  rev(NET, [], { labels: ['networking'] }),
  rev(IP, [NET]),
  rev(DNS, [IP]),
  rev(IP_ACCOUNT, [DNS], { dependsOn: [ANOTHER] }),
];
const forest = RevisionGraph.build(forestNodes);
const forestHeads = [IP_ACCOUNT, MORE, CART_COLUMN];

// ── build ────────────────────────────────────────────────────────────────────────────────────────

describe('RevisionGraph.build', () => {
  test('an empty set of revisions is a valid, empty graph', () => {
    const empty = RevisionGraph.build([]);
    expect(empty.heads()).toEqual([]);
    expect(empty.resolve('head')).toEqual([]);
    expect(empty.upgradePath([], 'head')).toEqual([]);
  });

  test('DuplicateRevision names the id and both declarations', () => {
    const err = errorOf(() => RevisionGraph.build([rev('a1', [], { message: 'create accounts' }), rev('a1', [], { message: 'add index' })]));
    expect(err.type).toBe('DuplicateRevision');
    expect(err.message).toContain('a1');
    expect(err.message).toContain('"create accounts"');
    expect(err.message).toContain('"add index"');
    expect(err.message).toMatch(/new id/);
    expect(err.details).toEqual({ revisions: [{ id: 'a1', messages: ['create accounts', 'add index'] }] });
  });

  test('MissingParent names the revision and the missing parent', () => {
    const err = errorOf(() => RevisionGraph.build([rev('a1'), rev('a2', ['a1']), rev('a3', ['gone'])]));
    expect(err.type).toBe('MissingParent');
    expect(err.message).toContain('a3 → gone');
    expect(err.message).toMatch(/restore the\s+missing revision file/i);
    expect(err.details).toEqual({ missing: [{ revision: 'a3', parent: 'gone' }] });
  });

  test('MissingDependency names the revision and the missing dependsOn target', () => {
    const err = errorOf(() => RevisionGraph.build([rev('a1'), rev('b1', [], { dependsOn: ['a1', 'nope'] })]));
    expect(err.type).toBe('MissingDependency');
    expect(err.message).toContain('b1 → nope');
    expect(err.details).toEqual({ missing: [{ revision: 'b1', dependency: 'nope' }] });
  });

  test('CycleDetected lists exactly the revisions of the cycle, in order', () => {
    const err = errorOf(() =>
      RevisionGraph.build([rev('x'), rev('a', ['c']), rev('b', ['a']), rev('c', ['b']), rev('d', ['c'])]),
    );
    expect(err.type).toBe('CycleDetected');
    expect(err.details).toEqual({ cycle: ['a', 'c', 'b'] });
    expect(err.message).toContain('a → c → b → a');
    expect(err.message).toMatch(/fix the parent or dependsOn/);
  });

  test('CycleDetected also follows dependsOn links', () => {
    const err = errorOf(() => RevisionGraph.build([rev('a'), rev('b', ['a'], { dependsOn: ['c'] }), rev('c', ['b'])]));
    expect(err.type).toBe('CycleDetected');
    expect(err.details).toEqual({ cycle: ['b', 'c'] });
  });

  test('a revision that is its own parent is a cycle of one', () => {
    const err = errorOf(() => RevisionGraph.build([rev('a', ['a'])]));
    expect(err.type).toBe('CycleDetected');
    expect(err.details).toEqual({ cycle: ['a'] });
  });

  test('DuplicateBranchLabel: one label on two revisions, or a label that is a revision id', () => {
    const twice = errorOf(() => RevisionGraph.build([rev('a1', [], { labels: ['cart'] }), rev('b1', [], { labels: ['cart'] })]));
    expect(twice.type).toBe('DuplicateBranchLabel');
    expect(twice.message).toContain('"cart" on a1 and b1');
    const asId = errorOf(() => RevisionGraph.build([rev('a1'), rev('b1', [], { labels: ['a1'] })]));
    expect(asId.type).toBe('DuplicateBranchLabel');
  });

  test('reserved words and target syntax are refused as ids and labels', () => {
    expect(errorOf(() => RevisionGraph.build([rev('head')])).type).toBe('InvalidRevisionId');
    expect(errorOf(() => RevisionGraph.build([rev('a-1')])).type).toBe('InvalidRevisionId');
    expect(errorOf(() => RevisionGraph.build([rev('a1', [], { labels: ['base'] })])).type).toBe('InvalidBranchLabel');
    expect(errorOf(() => RevisionGraph.build([rev('a1', [], { labels: ['x@y'] })])).type).toBe('InvalidBranchLabel');
  });

  test('input order does not change any answer', () => {
    const shuffled = RevisionGraph.build([...forestNodes].reverse());
    expect(ids(shuffled.all())).toEqual(ids(forest.all()));
    expect(shuffled.upgradePath([], 'heads')).toEqual(forest.upgradePath([], 'heads'));
    expect(shuffled.downgradePath(forestHeads, 'base')).toEqual(forest.downgradePath(forestHeads, 'base'));
  });

  test('the graph keeps its own copy of the nodes', () => {
    const nodes = [rev('a1'), rev('a2', ['a1'])];
    const graph = RevisionGraph.build(nodes);
    nodes[1].parents.push('zzz');
    expect(graph.get('a2').parents).toEqual(['a1']);
  });
});

// ── structure ────────────────────────────────────────────────────────────────────────────────────

describe('structure', () => {
  test('all() is oldest first, one line at a time, every revision after its parents and dependencies', () => {
    expect(ids(linear.all())).toEqual(['a1', 'a2', 'a3', 'a4']);
    expect(ids(diamond.all())).toEqual(['b0', 'l1', 'r1', 'm1', 'top']);
    const order = ids(forest.all());
    expect(order).toEqual([NET, IP, DNS, ACCOUNT, COLUMN, ANOTHER, IP_ACCOUNT, MORE, CART, CART_COLUMN]);
    for (const node of forest.all()) {
      for (const before of [...node.parents, ...node.dependsOn]) expect(order.indexOf(before)).toBeLessThan(order.indexOf(node.id));
    }
  });

  test('heads, bases, children and branch points', () => {
    expect(forest.heads()).toEqual([IP_ACCOUNT, MORE, CART_COLUMN]);
    expect(forest.bases()).toEqual([ACCOUNT, NET]);
    expect(forest.children(ACCOUNT)).toEqual([CART, COLUMN]);
    expect(forest.children(ANOTHER)).toEqual([MORE]);
    expect(forest.dependents(ANOTHER)).toEqual([IP_ACCOUNT]);
    expect(forest.branchPoints()).toEqual([ACCOUNT]);
    expect(diamond.branchPoints()).toEqual(['b0']);
    expect(diamond.heads()).toEqual(['top']);
  });

  test('a revision that is only a dependency is still a head (Alembic\'s effective head)', () => {
    const graph = RevisionGraph.build([rev('acc1'), rev('acc2', ['acc1']), rev('net1', [], { dependsOn: ['acc2'] })]);
    expect(graph.heads()).toEqual(['acc2', 'net1']);
    expect(graph.upgradePath([], 'net1')).toEqual(['acc1', 'acc2', 'net1']);
  });

  test('ancestors, descendants and isAncestor follow parents and dependsOn', () => {
    expect(forest.ancestors(IP_ACCOUNT)).toEqual([NET, IP, DNS, ACCOUNT, COLUMN, ANOTHER]);
    expect(forest.descendants(ANOTHER)).toEqual([IP_ACCOUNT, MORE]);
    expect(forest.descendants(ACCOUNT)).toEqual([COLUMN, ANOTHER, IP_ACCOUNT, MORE, CART, CART_COLUMN]);
    expect(forest.isAncestor(ANOTHER, IP_ACCOUNT)).toBe(true);
    expect(forest.isAncestor(IP_ACCOUNT, ANOTHER)).toBe(false);
    expect(forest.isAncestor(CART, IP_ACCOUNT)).toBe(false);
    expect(forest.isAncestor(ACCOUNT, ACCOUNT)).toBe(false);
  });

  test('get() of an unknown id says how to list revisions', () => {
    const err = errorOf(() => forest.get('nope'));
    expect(err.type).toBe('UnknownRevision');
    expect(err.message).toContain('phasegate history');
  });
});

// ── resolve ──────────────────────────────────────────────────────────────────────────────────────

describe('resolve', () => {
  test('full ids, labels and the symbolic names', () => {
    expect(forest.resolve(CART)).toEqual([CART]);
    expect(forest.resolve('shoppingcart')).toEqual([CART]);
    expect(forest.resolve('heads')).toEqual(forestHeads);
    expect(forest.resolve('base')).toEqual([]);
    expect(linear.resolve('head')).toEqual(['a4']);
    expect(forest.resolve('current', [COLUMN, DNS])).toEqual([DNS, COLUMN]);
    expect(forest.resolve('  shoppingcart  ')).toEqual([CART]);
  });

  test('a unique prefix of any length resolves to the full id', () => {
    expect(forest.resolve('1975')).toEqual([ACCOUNT]);
    expect(forest.resolve('ae')).toEqual([COLUMN]);
    expect(forest.resolve('d')).toEqual([CART_COLUMN]);
  });

  test('AmbiguousRevision lists every candidate', () => {
    const err = errorOf(() => forest.resolve('2'));
    expect(err.type).toBe('AmbiguousRevision');
    expect(err.details.candidates).toEqual([CART, DNS, IP_ACCOUNT]);
    expect(err.message).toContain('more characters');
  });

  test('UnknownRevision points at heads and history', () => {
    const err = errorOf(() => forest.resolve('ffff'));
    expect(err.type).toBe('UnknownRevision');
    expect(err.message).toContain('phasegate heads');
    expect(err.message).toContain('phasegate history');
    expect(errorOf(() => forest.resolve('nosuch@head')).type).toBe('UnknownRevision');
  });

  test('MultipleHeads for "head" lists the heads and suggests merge, heads or a specific head', () => {
    const err = errorOf(() => forest.resolve('head'));
    expect(err.type).toBe('MultipleHeads');
    expect(err.details.heads).toEqual(forestHeads);
    expect(err.message).toContain('phasegate merge');
    expect(err.message).toContain('"heads"');
    expect(err.message).toContain('@head');
  });

  test('<label>@head, <label>@heads, <rev>@head', () => {
    expect(forest.resolve('shoppingcart@head')).toEqual([CART_COLUMN]);
    expect(forest.resolve('networking@head')).toEqual([IP_ACCOUNT]);
    expect(forest.resolve('ae10@head')).toEqual([MORE]);
    expect(forest.resolve('networking@heads')).toEqual([IP_ACCOUNT]);
    const split = RevisionGraph.build([rev('r1', [], { labels: ['feat'] }), rev('x1', ['r1']), rev('y1', ['r1'])]);
    expect(split.resolve('feat@heads')).toEqual(['x1', 'y1']);
    const err = errorOf(() => split.resolve('feat@head'));
    expect(err.type).toBe('MultipleHeads');
    expect(err.message).toContain('"feat@heads"');
  });

  test('<label>@base is the state just before the branch\'s first revision', () => {
    expect(forest.resolve('networking@base')).toEqual([]);
    expect(forest.resolve('shoppingcart@base')).toEqual([ACCOUNT]);
  });

  test('+N and -N walk from the single current head', () => {
    expect(linear.resolve('+2', [])).toEqual(['a2']);
    expect(linear.resolve('+1', ['a2'])).toEqual(['a3']);
    expect(linear.resolve('-1', ['a2'])).toEqual(['a1']);
    expect(linear.resolve('-2', ['a2'])).toEqual([]);
  });

  test('BelowBase and AboveHead when a walk runs off the line', () => {
    const below = errorOf(() => linear.resolve('-5', ['a3']));
    expect(below.type).toBe('BelowBase');
    expect(below.details.available).toBe(3);
    expect(below.message).toContain('"base"');
    expect(errorOf(() => linear.resolve('-1', [])).type).toBe('BelowBase');
    const above = errorOf(() => linear.resolve('+3', ['a2']));
    expect(above.type).toBe('AboveHead');
    expect(above.message).toContain('"head"');
  });

  test('+N/-N with several current heads is refused unless every head leads to the same revision', () => {
    const err = errorOf(() => forest.resolve('-1', forestHeads));
    expect(err.type).toBe('MultipleHeads');
    expect(err.details.heads).toEqual(forestHeads);
    expect(err.message).toContain('<label>@-1');
    expect(diamond.resolve('+1', ['l1', 'r1'])).toEqual(['m1']);
    expect(errorOf(() => diamond.resolve('-1', ['l1', 'r1'])).type).toBe('MultipleHeads');
  });

  test('a walk does not guess at a fork: AmbiguousWalk', () => {
    expect(errorOf(() => forest.resolve('+1', [])).type).toBe('AmbiguousWalk'); // two bases
    const fork = errorOf(() => forest.resolve(`${ACCOUNT}+1`));
    expect(fork.type).toBe('AmbiguousWalk');
    expect(fork.details.candidates).toEqual([CART, COLUMN]);
    expect(errorOf(() => diamond.resolve('-3', ['top'])).type).toBe('AmbiguousWalk'); // would cross the merge
  });

  test('stepping down from a merge ends on both of its parents', () => {
    expect(diamond.resolve('-1', ['m1'])).toEqual(['l1', 'r1']);
    expect(diamond.resolve('top-2')).toEqual(['l1', 'r1']);
  });

  test('<rev>+N, <rev>-N, head-N and base+N', () => {
    expect(linear.resolve('a1+2')).toEqual(['a3']);
    expect(linear.resolve('a4-3')).toEqual(['a1']);
    expect(linear.resolve('head-1')).toEqual(['a3']);
    expect(linear.resolve('base+1')).toEqual(['a1']);
    expect(linear.resolve('a2+0')).toEqual(['a2']);
    expect(forest.resolve('ae10+1')).toEqual([ANOTHER]);
  });

  test('<label>@+N and <label>@-N walk inside the branch from its applied head', () => {
    expect(forest.resolve('shoppingcart@+1', [ACCOUNT])).toEqual([CART]);
    expect(forest.resolve('shoppingcart@+2', [COLUMN])).toEqual([CART_COLUMN]);
    expect(errorOf(() => forest.resolve('shoppingcart@+3', [ACCOUNT])).type).toBe('AboveHead');
    expect(forest.resolve('shoppingcart@-1', forestHeads)).toEqual([CART]);
    expect(forest.resolve('shoppingcart@-2', forestHeads)).toEqual([ACCOUNT]);
    const below = errorOf(() => forest.resolve('shoppingcart@-3', forestHeads));
    expect(below.type).toBe('BelowBase');
    expect(below.message).toContain('shoppingcart@base');
    expect(forest.resolve('networking@-1', forestHeads)).toEqual([DNS]);
    expect(forest.resolve('shoppingcart@head-1')).toEqual([CART]);
  });

  test('<label>@+N from base steps through the shared revisions below the branch, one per step (as Alembic)', () => {
    expect(forest.upgradePath([], 'shoppingcart@+1')).toEqual([ACCOUNT]);
    expect(forest.upgradePath([], 'shoppingcart@+2')).toEqual([ACCOUNT, CART]);
    expect(forest.upgradePath([ACCOUNT], 'shoppingcart@+1')).toEqual([CART]);
    expect(forest.upgradePath([], 'networking@+2')).toEqual([NET, IP]);
    // Siblings applied beside the branch do not count as steps of it.
    expect(forest.upgradePath([MORE], 'shoppingcart@+1')).toEqual([CART]);
  });

  test('-N right after upgrading a revision with dependsOn walks down that revision, not its dependency', () => {
    const graph = RevisionGraph.build([rev('a1'), rev('a2', ['a1']), rev('b1'), rev('b2', ['b1'], { dependsOn: ['a2'] })]);
    const rows = run(graph, [], 'b2', 'upgrade');
    expect(rows).toEqual(['b2']);
    // A table written in the other form (the dependency's row kept) means the same.
    expect(graph.resolve('-1', ['a2', 'b2'])).toEqual(['b1']);
    expect(graph.resolve('-1', rows)).toEqual(['b1']);
    expect(graph.downgradePath(rows, '-1')).toEqual(['b2']);
    expect(run(graph, rows, '-1', 'downgrade')).toEqual(['a2', 'b1']);
    // Two lines nothing else builds on stay ambiguous; the message names what is applied, not "the database".
    const err = errorOf(() => graph.resolve('-1', ['a2', 'b1']));
    expect(err.type).toBe('MultipleHeads');
    expect(err.message).toContain('2 heads are applied (a2, b1)');
    expect(err.message).not.toContain('database');
  });

  test('InvalidTarget for malformed expressions', () => {
    expect(errorOf(() => linear.resolve('')).type).toBe('InvalidTarget');
    expect(errorOf(() => forest.resolve('shoppingcart@sideways')).type).toBe('InvalidTarget');
    expect(errorOf(() => forest.resolve('@head')).type).toBe('InvalidTarget');
  });

  test('a current head without a revision file is reported', () => {
    const err = errorOf(() => linear.resolve('+1', ['a2', 'lost']));
    expect(err.type).toBe('UnknownAppliedRevision');
    expect(err.message).toContain('phasegate stamp');
  });
});

// ── upgrade ──────────────────────────────────────────────────────────────────────────────────────

describe('upgradePath', () => {
  test('linear: from nothing, from the middle, to a revision, and at the head', () => {
    expect(linear.upgradePath([], 'head')).toEqual(['a1', 'a2', 'a3', 'a4']);
    expect(linear.upgradePath(['a2'], 'head')).toEqual(['a3', 'a4']);
    expect(linear.upgradePath(['a2'], 'a3')).toEqual(['a3']);
    expect(linear.upgradePath(['a2'], '+1')).toEqual(['a3']);
    expect(linear.upgradePath(['a4'], 'head')).toEqual([]);
    expect(linear.upgradePath([], 'base')).toEqual([]);
  });

  test('WrongDirection when the target is below current', () => {
    const err = errorOf(() => linear.upgradePath(['a3'], 'a2'));
    expect(err.type).toBe('WrongDirection');
    expect(err.message).toContain('phasegate downgrade a2');
    expect(errorOf(() => linear.upgradePath(['a3'], 'base')).type).toBe('WrongDirection');
    expect(errorOf(() => linear.upgradePath(['a3'], '-1')).type).toBe('WrongDirection');
    expect(errorOf(() => diamond.upgradePath(['l1'], 'b0')).type).toBe('WrongDirection');
  });

  test('a merge from one applied side applies the other side first', () => {
    expect(diamond.upgradePath(['l1'], 'head')).toEqual(['r1', 'm1', 'top']);
    expect(run(diamond, ['l1'], 'head', 'upgrade')).toEqual(['top']);
  });

  test('a specific revision brings its ancestors and nothing of sibling branches', () => {
    expect(forest.upgradePath([], CART)).toEqual([ACCOUNT, CART]);
    expect(forest.upgradePath([ACCOUNT], 'shoppingcart@head')).toEqual([CART, CART_COLUMN]);
  });

  test('dependsOn pulls in the other line first, but not unrelated branches', () => {
    expect(forest.upgradePath([], 'networking@head')).toEqual([NET, IP, DNS, ACCOUNT, COLUMN, ANOTHER, IP_ACCOUNT]);
    expect(forest.upgradePath([CART_COLUMN], IP_ACCOUNT)).toEqual([NET, IP, DNS, COLUMN, ANOTHER, IP_ACCOUNT]);
  });

  test('heads applies every branch; the version table ends with one row per line head', () => {
    expect(forest.upgradePath([], 'heads')).toEqual(ids(forest.all()));
    expect(run(forest, [], 'heads', 'upgrade')).toEqual(forestHeads);
    expect(run(forest, [MORE], 'shoppingcart@head', 'upgrade')).toEqual([MORE, CART_COLUMN]);
  });

  test('multi-head current: only what is missing is applied', () => {
    expect(forest.upgradePath([DNS, CART], 'heads')).toEqual([COLUMN, ANOTHER, IP_ACCOUNT, MORE, CART_COLUMN]);
  });
});

// ── downgrade ────────────────────────────────────────────────────────────────────────────────────

describe('downgradePath', () => {
  test('linear: to base, to a revision, relative, and already there', () => {
    expect(linear.downgradePath(['a4'], 'base')).toEqual(['a4', 'a3', 'a2', 'a1']);
    expect(linear.downgradePath(['a4'], 'a2')).toEqual(['a4', 'a3']);
    expect(linear.downgradePath(['a4'], '-1')).toEqual(['a4']);
    expect(linear.downgradePath(['a2'], '-2')).toEqual(['a2', 'a1']);
    expect(linear.downgradePath(['a2'], 'a2')).toEqual([]);
    expect(run(linear, ['a4'], 'a2', 'downgrade')).toEqual(['a2']);
    expect(run(linear, ['a4'], 'base', 'downgrade')).toEqual([]);
  });

  test('BelowBase when -N goes past the first revision', () => {
    const err = errorOf(() => linear.downgradePath(['a3'], '-5'));
    expect(err.type).toBe('BelowBase');
    expect(err.message).toMatch(/only 3 revision/);
  });

  test('WrongDirection when the target is not applied yet', () => {
    const err = errorOf(() => linear.downgradePath(['a2'], 'a3'));
    expect(err.type).toBe('WrongDirection');
    expect(err.message).toContain('phasegate upgrade a3');
    expect(errorOf(() => diamond.downgradePath(['l1'], 'm1')).type).toBe('WrongDirection');
  });

  test('downgrading to a branch point removes every branch above it, children first', () => {
    expect(forest.downgradePath(forestHeads, ACCOUNT)).toEqual([CART_COLUMN, CART, MORE, IP_ACCOUNT, ANOTHER, COLUMN]);
    expect(run(forest, forestHeads, ACCOUNT, 'downgrade')).toEqual([ACCOUNT, DNS]);
  });

  test('merges on downgrade: un-merging brings both parents back as rows', () => {
    expect(diamond.downgradePath(['top'], '-2')).toEqual(['top', 'm1']);
    expect(run(diamond, ['top'], '-2', 'downgrade')).toEqual(['l1', 'r1']);
    expect(diamond.downgradePath(['top'], 'l1')).toEqual(['top', 'm1']);
    expect(run(diamond, ['top'], 'l1', 'downgrade')).toEqual(['l1', 'r1']);
    expect(diamond.downgradePath(['top'], 'b0')).toEqual(['top', 'm1', 'r1', 'l1']);
    expect(run(diamond, ['m1'], 'b0', 'downgrade')).toEqual(['b0']);
  });

  test('a revision that depends on a removed one comes down too, and first', () => {
    expect(forest.downgradePath(forestHeads, COLUMN)).toEqual([MORE, IP_ACCOUNT, ANOTHER]);
    expect(run(forest, forestHeads, COLUMN, 'downgrade')).toEqual([DNS, COLUMN, CART_COLUMN]);
  });

  test('downgrading to a dependency keeps what depends on it (Alembic #379)', () => {
    expect(forest.downgradePath(forestHeads, ANOTHER)).toEqual([MORE]);
  });

  test('<label>@base removes only that branch and leaves its dependencies in place', () => {
    expect(forest.downgradePath(forestHeads, 'networking@base')).toEqual([IP_ACCOUNT, DNS, IP, NET]);
    expect(run(forest, forestHeads, 'networking@base', 'downgrade')).toEqual([MORE, CART_COLUMN]);
    expect(forest.downgradePath(forestHeads, 'shoppingcart@base')).toEqual([CART_COLUMN, CART]);
    expect(forest.downgradePath(forestHeads, 'shoppingcart@-2')).toEqual([CART_COLUMN, CART]);
    expect(forest.downgradePath(forestHeads, 'shoppingcart@-1')).toEqual([CART_COLUMN]);
  });

  test('multi-head current: <rev>-N names a revision on one line and leaves the others', () => {
    expect(forest.downgradePath(forestHeads, `${IP_ACCOUNT}-2`)).toEqual([IP_ACCOUNT, DNS]);
    expect(forest.downgradePath(forestHeads, `${NET}-1`)).toEqual([IP_ACCOUNT, DNS, IP, NET]);
  });

  test('base removes everything, dependents before their dependencies', () => {
    const path = forest.downgradePath(forestHeads, 'base');
    expect([...path].sort()).toEqual([...forest.all().map((n) => n.id)].sort());
    expect(path.indexOf(IP_ACCOUNT)).toBeLessThan(path.indexOf(ANOTHER));
    expect(run(forest, forestHeads, 'base', 'downgrade')).toEqual([]);
  });
});

// ── version table ────────────────────────────────────────────────────────────────────────────────

describe('headsAfter', () => {
  test('a linear step replaces the row', () => {
    expect(linear.headsAfter([], 'a1', 'upgrade')).toEqual(['a1']);
    expect(linear.headsAfter(['a1'], 'a2', 'upgrade')).toEqual(['a2']);
    expect(linear.headsAfter(['a2'], 'a2', 'downgrade')).toEqual(['a1']);
    expect(linear.headsAfter(['a1'], 'a1', 'downgrade')).toEqual([]);
    expect(linear.headsAfter([], ['a1', 'a2', 'a3'], 'upgrade')).toEqual(['a3']);
  });

  test('a branch point adds a row and a merge collapses rows', () => {
    expect(diamond.headsAfter(['l1'], 'r1', 'upgrade')).toEqual(['l1', 'r1']);
    expect(diamond.headsAfter(['l1', 'r1'], 'm1', 'upgrade')).toEqual(['m1']);
    expect(diamond.headsAfter(['m1'], 'm1', 'downgrade')).toEqual(['l1', 'r1']);
    expect(diamond.headsAfter(['l1', 'r1'], 'r1', 'downgrade')).toEqual(['l1']);
  });

  test('a dependency has no row while its dependent is applied (Alembic\'s form), and gets it back when the dependent is un-applied', () => {
    expect(forest.headsAfter([DNS, ANOTHER], IP_ACCOUNT, 'upgrade')).toEqual([IP_ACCOUNT]);
    expect(forest.versionHeads([IP_ACCOUNT, ANOTHER])).toEqual([IP_ACCOUNT]);
    expect(forest.appliedRevisions([IP_ACCOUNT])).toEqual([NET, IP, DNS, ACCOUNT, COLUMN, ANOTHER, IP_ACCOUNT]);
    expect(forest.headsAfter([IP_ACCOUNT], IP_ACCOUNT, 'downgrade')).toEqual([DNS, ANOTHER]); // sorted by id
    // A line above the dependency keeps its own row beside the dependent.
    expect(forest.versionHeads([IP_ACCOUNT, MORE])).toEqual([IP_ACCOUNT, MORE]);
  });

  test('OutOfOrder when a step does not fit the applied set', () => {
    const early = errorOf(() => linear.headsAfter(['a1'], 'a3', 'upgrade'));
    expect(early.type).toBe('OutOfOrder');
    expect(early.details.missing).toEqual(['a2']);
    expect(errorOf(() => linear.headsAfter(['a2'], 'a2', 'upgrade')).type).toBe('OutOfOrder');
    const blocked = errorOf(() => linear.headsAfter(['a3'], 'a2', 'downgrade'));
    expect(blocked.type).toBe('OutOfOrder');
    expect(blocked.details.blocking).toEqual(['a3']);
    expect(errorOf(() => linear.headsAfter(['a1'], 'a3', 'downgrade')).type).toBe('OutOfOrder');
    expect(errorOf(() => forest.headsAfter(forestHeads, ANOTHER, 'downgrade')).type).toBe('OutOfOrder');
  });
});

// ── history ──────────────────────────────────────────────────────────────────────────────────────

describe('history', () => {
  test('newest first, with inclusive bounds', () => {
    expect(ids(linear.history())).toEqual(['a4', 'a3', 'a2', 'a1']);
    expect(ids(linear.history({ from: 'a2', to: 'a3' }))).toEqual(['a3', 'a2']);
    expect(ids(linear.history({ from: 'a2' }))).toEqual(['a4', 'a3', 'a2']);
    expect(ids(linear.history({ to: 'a2' }))).toEqual(['a2', 'a1']);
    expect(ids(linear.history({ from: 'current', current: ['a3'] }))).toEqual(['a4', 'a3']);
  });

  test('up to a branch head includes the lines it depends on; from a branch base only the branch', () => {
    expect(ids(forest.history({ to: 'networking@head' }))).toEqual([IP_ACCOUNT, ANOTHER, COLUMN, ACCOUNT, DNS, IP, NET]);
    expect(ids(forest.history({ from: 'networking@base' }))).toEqual([IP_ACCOUNT, DNS, IP, NET]);
    expect(ids(forest.history({ from: 'shoppingcart@base' }))).toEqual([CART_COLUMN, CART]);
  });

  test('RangeNotAncestor when the lower bound is not below the upper one', () => {
    const err = errorOf(() => linear.history({ from: 'a3', to: 'a2' }));
    expect(err.type).toBe('RangeNotAncestor');
    expect(err.message).toContain('swap the bounds');
  });
});
