/**
 * The revision graph: every revision linked by its parents and `dependsOn`, and the questions a
 * migration asks of it — which heads exist, what a target such as `head`, `ae10+2` or
 * `cart@head` means, which revisions an upgrade or downgrade runs and in what order, and which
 * rows the version table holds afterwards. Pure: no files, no database, no clock.
 *
 * Vocabulary (Alembic's):
 * - Parent edges form the tree. A base has no parents, a merge has two or more, a branch point has
 *   two or more children. A head is a revision that no other revision names as a parent.
 * - `dependsOn` edges only order work: the dependency is applied first, yet the two lines stay
 *   independent (no merge). A revision that is only ever a dependency is still a head (Alembic's
 *   "effective head").
 * - "current" is the set of revisions in the version table. Every method accepts any set whose
 *   ancestors (through parents and `dependsOn`) are exactly what is applied; `versionHeads` and
 *   `headsAfter` return the canonical form: the applied revisions with no applied child.
 *
 * Every list is deterministic: ties are broken by revision id, so a plan is reproducible.
 */
import { RevisionGraphError } from './errors';
import type { RevisionNode } from './revision';

/** The `type` of every RevisionGraphError this module throws. */
export type RevisionGraphErrorType =
  | 'InvalidRevisionId'
  | 'DuplicateRevision'
  | 'MissingParent'
  | 'MissingDependency'
  | 'InvalidBranchLabel'
  | 'DuplicateBranchLabel'
  | 'CycleDetected'
  | 'InvalidTarget'
  | 'UnknownRevision'
  | 'AmbiguousRevision'
  | 'MultipleHeads'
  | 'AmbiguousWalk'
  | 'AboveHead'
  | 'BelowBase'
  | 'UnknownAppliedRevision'
  | 'WrongDirection'
  | 'OutOfOrder'
  | 'RangeNotAncestor';

export type MigrationDirection = 'upgrade' | 'downgrade';

/** Bounds of `history`, inclusive, like `alembic history -r from:to`. */
export interface HistoryRange {
  /** Lower bound; absent = from the bases. */
  from?: string;
  /** Upper bound; absent = up to every head. */
  to?: string;
  /** The version table's heads, for `current`, `+N` and `<label>@-N` in the bounds. */
  current?: readonly string[];
}

/** Words with a fixed meaning in a target; no revision id or branch label may be one of them. */
const RESERVED = new Set(['head', 'heads', 'base', 'current']);
/** Characters that take part in target syntax (Alembic forbids the same ones in revision ids). */
const ILLEGAL_IN_ID = /[@+\-:\s]/;
/** Labels may contain `-` (revision files allow it); exact label matches are tried before `x-N`. */
const ILLEGAL_IN_LABEL = /[@+:\s]/;
const RELATIVE = /^([+-])(\d+)$/;
const STEPPED = /^(.+?)([+-])(\d+)$/;
const HEAD_STEPPED = /^head([+-])(\d+)$/;

type Sign = '+' | '-';

/** What a target expression means. */
interface ResolvedTarget {
  /** The revisions that are the heads once the target is reached ([] = base). */
  heads: string[];
  /**
   * Set when the target lies below these roots (`base`, `<x>@base`, walking off a base): a
   * downgrade removes the roots and everything above them, and nothing outside. `null` otherwise:
   * a downgrade removes what lies above `heads`.
   */
  below: string[] | null;
}

/** A branch named in `<name>@…`: its first revision and every revision that belongs to it. */
interface Branch {
  name: string;
  root: string;
  members: Set<string>;
  /**
   * The members and everything below the root: what `<name>@+N` steps through. Why: Alembic counts
   * a branch's walk up from what is applied, so from base `<name>@+1` is the first revision on the
   * way to the branch (a shared base below the branch point), not the branch's own first revision.
   */
  lineage: Set<string>;
}

function fail(type: RevisionGraphErrorType, message: string, details: Record<string, unknown>): never {
  throw new RevisionGraphError(type, message, details);
}

const byId = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
const sortedUnique = (ids: Iterable<string>): string[] => [...new Set(ids)].sort(byId);
const list = (ids: readonly string[]): string => ids.join(', ');
const at = (id: string): ResolvedTarget => ({ heads: [id], below: null });

export class RevisionGraph {
  private readonly nodes: Map<string, RevisionNode>;
  private readonly labelOwner: Map<string, string>;
  private readonly ids: string[];
  /** Distinct parents, sorted. */
  private readonly parentIds = new Map<string, string[]>();
  /** Distinct parents and dependencies, sorted: what must be applied first. */
  private readonly prerequisiteIds = new Map<string, string[]>();
  /** Revisions naming this one as a parent, sorted. */
  private readonly childIds = new Map<string, string[]>();
  /** Revisions naming this one as a parent or dependency, sorted: what must be un-applied first. */
  private readonly successorIds = new Map<string, string[]>();
  private readonly headIds: string[];
  private readonly baseIds: string[];
  private readonly topological: string[];
  /** Each branch label's members, built on the first `branchNamesOf` (history and heads ask per revision). */
  private labelMembers?: Map<string, Set<string>>;

  private constructor(nodes: Map<string, RevisionNode>, labelOwner: Map<string, string>) {
    this.nodes = nodes;
    this.labelOwner = labelOwner;
    this.ids = [...nodes.keys()].sort(byId);
    for (const id of this.ids) {
      this.childIds.set(id, []);
      this.successorIds.set(id, []);
    }
    for (const id of this.ids) {
      const node = this.node(id);
      const parents = sortedUnique(node.parents);
      const prerequisites = sortedUnique([...node.parents, ...node.dependsOn]);
      this.parentIds.set(id, parents);
      this.prerequisiteIds.set(id, prerequisites);
      for (const parent of parents) this.listOf(this.childIds, parent).push(id);
      for (const prerequisite of prerequisites) this.listOf(this.successorIds, prerequisite).push(id);
    }
    this.assertAcyclic();
    this.headIds = this.ids.filter((id) => this.childList(id).length === 0);
    this.baseIds = this.ids.filter((id) => this.parentList(id).length === 0);
    this.topological = this.orderUpward(new Set(this.ids));
  }

  /**
   * Checks the revisions and links them. Throws a RevisionGraphError whose `type` says what is
   * wrong: InvalidRevisionId, DuplicateRevision, MissingParent, MissingDependency,
   * InvalidBranchLabel, DuplicateBranchLabel or CycleDetected. Every offender of that kind is named.
   */
  static build(nodes: readonly RevisionNode[]): RevisionGraph {
    const invalid = nodes.map((n) => n.id).filter((id) => id === '' || ILLEGAL_IN_ID.test(id) || RESERVED.has(id));
    if (invalid.length > 0) {
      fail(
        'InvalidRevisionId',
        `invalid revision id(s): ${list(invalid.map((id) => JSON.stringify(id)))}. A revision id must be non-empty, ` +
          `must not be ${[...RESERVED].join('/')} and must not contain @ + - : or spaces; rename the revision (letters, digits and _)`,
        { ids: invalid },
      );
    }

    const byIdMap = new Map<string, RevisionNode>();
    const duplicates: Array<{ id: string; messages: string[] }> = [];
    for (const node of nodes) {
      const seen = byIdMap.get(node.id);
      if (!seen) {
        byIdMap.set(node.id, { ...node, parents: [...node.parents], dependsOn: [...node.dependsOn], branchLabels: [...node.branchLabels] });
        continue;
      }
      const entry = duplicates.find((d) => d.id === node.id);
      if (entry) entry.messages.push(node.message);
      else duplicates.push({ id: node.id, messages: [seen.message, node.message] });
    }
    if (duplicates.length > 0) {
      duplicates.sort((a, b) => byId(a.id, b.id));
      const described = duplicates.map((d) => `${d.id} (${d.messages.map((m) => JSON.stringify(m)).join(' and ')})`);
      fail(
        'DuplicateRevision',
        `revision id declared more than once: ${list(described)}. Each revision needs its own id: give one of the ` +
          'copies a new id (and point its children at it), or delete the copy',
        { revisions: duplicates },
      );
    }

    const ids = [...byIdMap.keys()].sort(byId);
    const badLabels: Array<{ revision: string; label: string }> = [];
    const clashes: Array<{ label: string; revisions: string[] }> = [];
    const labelOwner = new Map<string, string>();
    for (const id of ids) {
      for (const label of sortedUnique((byIdMap.get(id) as RevisionNode).branchLabels)) {
        if (label === '' || ILLEGAL_IN_LABEL.test(label) || RESERVED.has(label)) {
          badLabels.push({ revision: id, label });
          continue;
        }
        const owner = labelOwner.get(label) ?? (byIdMap.has(label) ? label : undefined);
        if (owner === undefined) labelOwner.set(label, id);
        else clashes.push({ label, revisions: [owner, id] });
      }
    }
    if (badLabels.length > 0) {
      fail(
        'InvalidBranchLabel',
        `invalid branch label(s): ${list(badLabels.map((b) => `${JSON.stringify(b.label)} on ${b.revision}`))}. A label ` +
          `must not be ${[...RESERVED].join('/')} and must not contain @ + : or spaces; rename it`,
        { labels: badLabels },
      );
    }
    if (clashes.length > 0) {
      fail(
        'DuplicateBranchLabel',
        `branch label used more than once: ${list(clashes.map((c) => `"${c.label}" on ${c.revisions.join(' and ')}`))}. ` +
          'A label names one branch and may not equal a revision id; rename one of them',
        { labels: clashes },
      );
    }

    const missingParents: Array<{ revision: string; parent: string }> = [];
    const missingDependencies: Array<{ revision: string; dependency: string }> = [];
    for (const id of ids) {
      const node = byIdMap.get(id) as RevisionNode;
      for (const parent of sortedUnique(node.parents)) if (!byIdMap.has(parent)) missingParents.push({ revision: id, parent });
      for (const dependency of sortedUnique(node.dependsOn)) {
        if (!byIdMap.has(dependency) && !labelOwner.has(dependency)) missingDependencies.push({ revision: id, dependency });
      }
    }
    if (missingParents.length > 0) {
      fail(
        'MissingParent',
        `parent revision not found: ${list(missingParents.map((m) => `${m.revision} → ${m.parent}`))}. Restore the ` +
          'missing revision file, or point the parent at an existing revision (`phasegate history` lists them)',
        { missing: missingParents },
      );
    }
    if (missingDependencies.length > 0) {
      fail(
        'MissingDependency',
        `dependsOn revision not found: ${list(missingDependencies.map((m) => `${m.revision} → ${m.dependency}`))}. ` +
          'dependsOn must name existing revision ids or branch labels: restore the missing file or fix the id (`phasegate history` lists them)',
        { missing: missingDependencies },
      );
    }

    /**
     * Why labels: Alembic accepts a branch label in depends_on (and `revision --depends-on <label>`
     * writes the label), meaning the revision that carries it. The graph stores the revision id.
     */
    for (const node of byIdMap.values()) {
      node.dependsOn = node.dependsOn.map((d) => (byIdMap.has(d) ? d : (labelOwner.get(d) ?? d)));
    }

    return new RevisionGraph(byIdMap, labelOwner);
  }

  // ── lookups ──────────────────────────────────────────────────────────────────────────────────

  has(id: string): boolean {
    return this.nodes.has(id);
  }

  /** The revision with exactly this id (no prefixes, no labels; see `resolve` for those). */
  get(id: string): RevisionNode {
    const node = this.nodes.get(id);
    if (!node) {
      fail('UnknownRevision', `no revision has id "${id}"; run \`phasegate history\` to list the revisions`, { revision: id });
    }
    return node;
  }

  /** Every revision, oldest first: each after its parents and dependencies. */
  all(): RevisionNode[] {
    return this.topological.map((id) => this.node(id));
  }

  /**
   * The branch labels that name a branch `id` belongs to, sorted: its own, and those of the
   * revisions whose branch it is part of (Alembic shows a label on the whole branch: the labelled
   * revision, its descendants, and its ancestors back to the branch point).
   */
  branchNamesOf(id: string): string[] {
    this.get(id);
    this.labelMembers ??= new Map([...this.labelOwner.keys()].map((label) => [label, this.branch(label, label).members]));
    return [...this.labelMembers].filter(([, members]) => members.has(id)).map(([label]) => label).sort(byId);
  }

  /** Whether `name` is a branch label (not a revision id). */
  isBranchLabel(name: string): boolean {
    return this.labelOwner.has(name) && !this.nodes.has(name);
  }

  /** Revisions no other revision names as a parent, sorted by id (dependency-only targets included). */
  heads(): string[] {
    return [...this.headIds];
  }

  /** Revisions without parents, sorted by id. */
  bases(): string[] {
    return [...this.baseIds];
  }

  /** Revisions that name `id` as a parent, sorted by id. */
  children(id: string): string[] {
    this.get(id);
    return [...this.childList(id)];
  }

  /** Revisions that name `id` in `dependsOn`, sorted by id. */
  dependents(id: string): string[] {
    this.get(id);
    return this.successorList(id).filter((s) => !this.parentList(s).includes(id));
  }

  /** Revisions with two or more children, sorted by id. */
  branchPoints(): string[] {
    return this.ids.filter((id) => this.childList(id).length >= 2);
  }

  /** Revisions that must be applied before `id` (through parents and dependsOn), oldest first. */
  ancestors(id: string): string[] {
    this.get(id);
    const found = this.closure([id], (x) => this.prerequisiteList(x));
    found.delete(id);
    return this.topological.filter((x) => found.has(x));
  }

  /** Revisions that build on `id` (through parents and dependsOn), oldest first. */
  descendants(id: string): string[] {
    this.get(id);
    const found = this.closure([id], (x) => this.successorList(x));
    found.delete(id);
    return this.topological.filter((x) => found.has(x));
  }

  /** Whether `ancestor` must be applied before `descendant` (strictly: a revision is not its own ancestor). */
  isAncestor(ancestor: string, descendant: string): boolean {
    this.get(ancestor);
    return this.ancestors(descendant).includes(ancestor);
  }

  // ── the version table ────────────────────────────────────────────────────────────────────────

  /** Every revision that `current` implies is applied, oldest first. */
  appliedRevisions(current: readonly string[]): string[] {
    const applied = this.appliedSet(current);
    return this.topological.filter((id) => applied.has(id));
  }

  /** The canonical version-table rows for `current`: applied revisions nothing applied builds on (as parent or dependency). */
  versionHeads(current: readonly string[]): string[] {
    return this.topsBySuccessor(this.appliedSet(current));
  }

  /**
   * The version table's rows after applying (`upgrade`) or un-applying (`downgrade`) `revisions`,
   * in order, starting from `current`. A merge collapses the rows of its parents into one; a branch
   * point gains a row per applied child; un-applying a merge brings its parents' rows back.
   *
   * Why a dependency has no row of its own while a dependent is applied: that is Alembic's form
   * (the dependency is implied), so a table phasegate wrote is one Alembic can continue from, and
   * back. Un-applying the dependent brings the dependency's row back. Either form is accepted as
   * `current`, since the applied set is computed from the rows' ancestors.
   *
   * Throws OutOfOrder when a step does not fit: applying a revision before its parents and
   * dependencies, or twice; un-applying one that is not applied or that applied revisions build on.
   */
  headsAfter(current: readonly string[], revisions: string | readonly string[], direction: MigrationDirection): string[] {
    const applied = this.appliedSet(current);
    for (const id of typeof revisions === 'string' ? [revisions] : revisions) {
      this.get(id);
      if (direction === 'upgrade') {
        if (applied.has(id)) {
          fail('OutOfOrder', `cannot apply ${id}: it is already applied; re-plan from the version table`, { revision: id, direction });
        }
        const missing = this.prerequisiteList(id).filter((p) => !applied.has(p));
        if (missing.length > 0) {
          fail('OutOfOrder', `cannot apply ${id} before ${list(missing)}; apply those first (upgradePath orders them)`, {
            revision: id,
            direction,
            missing,
          });
        }
        applied.add(id);
      } else {
        if (!applied.has(id)) {
          fail('OutOfOrder', `cannot un-apply ${id}: it is not applied; re-plan from the version table`, { revision: id, direction });
        }
        const blocking = this.successorList(id).filter((s) => applied.has(s));
        if (blocking.length > 0) {
          fail('OutOfOrder', `cannot un-apply ${id} while ${list(blocking)} still build on it; un-apply those first`, {
            revision: id,
            direction,
            blocking,
          });
        }
        applied.delete(id);
      }
    }
    return this.topsBySuccessor(applied);
  }

  // ── targets ──────────────────────────────────────────────────────────────────────────────────

  /**
   * The revisions that are the heads once `target` is reached, sorted by id; [] means base.
   * `current` is the version table's heads, used by `current`, `+N`, `-N` and `<x>@±N`.
   *
   * Forms (as in Alembic):
   * - `head` (the only head), `heads` (all), `base` ([]), `current`
   * - a full revision id, a branch label (the revision carrying it), or a unique id prefix
   * - `<x>@head`, `<x>@heads`, `<x>@base` where `<x>` is a branch label or a revision (id or prefix)
   * - `+N`, `-N` from current; `<rev>+N`, `<rev>-N`, `head-N`, `<x>@+N`, `<x>@-N`, `<x>@head-N`
   *
   * A walk follows parent links one revision per step and refuses to guess at a fork
   * (AmbiguousWalk); it may end on a merge's parents when stepping down from the merge.
   */
  resolve(target: string, current: readonly string[] = []): string[] {
    return this.resolveTarget(target, current).heads;
  }

  /**
   * The revisions to apply, in order, to go from `current` to `target`: each after its parents and
   * dependencies, unapplied dependencies included, applied ones never repeated. Lines are applied
   * one after another (depth first), ties broken by id. Throws WrongDirection when the target lies
   * below what is applied.
   */
  upgradePath(current: readonly string[], target: string): string[] {
    const applied = this.appliedSet(current);
    const resolved = this.resolveTarget(target, current);
    const belowCurrent = [
      ...(resolved.below ?? []).filter((id) => applied.has(id)),
      ...resolved.heads.filter((id) => applied.has(id) && this.childList(id).some((c) => applied.has(c))),
    ];
    if (belowCurrent.length > 0) {
      fail(
        'WrongDirection',
        `"${target}" is below what is applied (${list(this.topsOf(applied))}): reaching it would un-apply revisions above ` +
          `${list(sortedUnique(belowCurrent))}. Run \`phasegate downgrade ${target}\` instead`,
        { target, current: this.topsOf(applied), below: sortedUnique(belowCurrent) },
      );
    }
    const needed = this.closure(resolved.heads, (x) => this.prerequisiteList(x));
    for (const id of applied) needed.delete(id);
    return this.orderUpward(needed);
  }

  /**
   * The revisions to un-apply, in order (every revision before its parents and dependencies), to
   * go from `current` down to `target`. Downgrading to a revision removes what builds on it and
   * keeps unrelated lines; a revision that only depends on it through `dependsOn` is removed too
   * (it could not run without it). Throws WrongDirection when the target is not applied yet, and
   * BelowBase when a relative target walks past the base.
   */
  downgradePath(current: readonly string[], target: string): string[] {
    const applied = this.appliedSet(current);
    const resolved = this.resolveTarget(target, current);
    let seeds: Set<string>;
    if (resolved.below) {
      seeds = this.closure(resolved.below, (x) => this.childList(x));
    } else {
      const notApplied = resolved.heads.filter((id) => !applied.has(id));
      if (notApplied.length > 0) {
        fail(
          'WrongDirection',
          `"${target}" is above what is applied (${list(this.topsOf(applied)) || 'nothing'}): ${list(notApplied)} ` +
            `${notApplied.length === 1 ? 'is' : 'are'} not applied. Run \`phasegate upgrade ${target}\` instead`,
          { target, current: this.topsOf(applied), notApplied },
        );
      }
      const kept = this.closure(resolved.heads, (x) => this.prerequisiteList(x));
      seeds = this.closure(resolved.heads, (x) => this.childList(x));
      for (const id of kept) seeds.delete(id);
    }
    const removed = this.closure(
      [...seeds].filter((id) => applied.has(id)),
      (x) => this.successorList(x).filter((s) => applied.has(s)),
    );
    return this.orderUpward(removed).reverse();
  }

  /**
   * Revisions newest first, like `alembic history -r from:to`: descendants of `from` (inclusive)
   * that are ancestors of `to` (inclusive, dependencies included).
   */
  history(range: HistoryRange = {}): RevisionNode[] {
    const current = range.current ?? [];
    const members = new Set(this.ids);
    let lowerRoots: string[] = [];
    if (range.from !== undefined) {
      const lower = this.resolveTarget(range.from, current);
      lowerRoots = lower.below ?? lower.heads;
      const above = this.closure(lowerRoots, (x) => this.successorList(x));
      for (const id of members) if (!above.has(id)) members.delete(id);
    }
    if (range.to !== undefined) {
      const upper = this.closure(this.resolveTarget(range.to, current).heads, (x) => this.prerequisiteList(x));
      if (range.from !== undefined && lowerRoots.length > 0 && !lowerRoots.some((id) => upper.has(id))) {
        fail(
          'RangeNotAncestor',
          `"${range.from}" is not an ancestor of "${range.to}", so the range ${range.from}:${range.to} is empty; swap the bounds or pick revisions on one line`,
          { from: range.from, to: range.to },
        );
      }
      for (const id of members) if (!upper.has(id)) members.delete(id);
    }
    return this.orderUpward(members)
      .reverse()
      .map((id) => this.node(id));
  }

  // ── target resolution ────────────────────────────────────────────────────────────────────────

  private resolveTarget(expression: string, current: readonly string[]): ResolvedTarget {
    const target = expression.trim();
    if (target === '') {
      fail('InvalidTarget', 'the target is empty; use a revision id, a branch label, head, heads, base, +N or -N', { target: expression });
    }
    switch (target) {
      case 'head':
        return this.onlyHead(target, this.headIds, null);
      case 'heads':
        return { heads: [...this.headIds], below: null };
      case 'base':
        return { heads: [], below: [...this.baseIds] };
      case 'current':
        return { heads: this.versionHeads(current), below: null };
    }
    if (this.nodes.has(target)) return at(target);
    const labelled = this.labelOwner.get(target);
    if (labelled !== undefined) return at(labelled);

    const relative = RELATIVE.exec(target);
    if (relative) return this.walkFromCurrent(target, relative[1] as Sign, Number(relative[2]), current);
    const atSign = target.indexOf('@');
    if (atSign >= 0) return this.resolveInBranch(target, target.slice(0, atSign), target.slice(atSign + 1), current);
    const stepped = STEPPED.exec(target);
    if (stepped) return this.walkFromTarget(target, stepped[1], stepped[2] as Sign, Number(stepped[3]), current);
    return at(this.matchRevision(target, target));
  }

  private onlyHead(expression: string, heads: string[], branch: string | null): ResolvedTarget {
    if (heads.length > 1) {
      const where = branch === null ? `there are ${heads.length} heads` : `branch ${branch} has ${heads.length} heads`;
      const all = branch === null ? '"heads"' : `"${branch}@heads"`;
      fail(
        'MultipleHeads',
        `"${expression}" is ambiguous: ${where} (${list(heads)}). Run \`phasegate merge\` to join them, target ${all} to ` +
          'move every one of them, or name one head (a revision id or "<label>@head")',
        { target: expression, heads },
      );
    }
    return { heads: [...heads], below: null };
  }

  /**
   * A full id or a unique id prefix.
   * Why any length: Alembic wants 4+ characters for a prefix; phasegate's ids may be short and
   * hand-written, and an ambiguous prefix is an error anyway, so nothing is guessed.
   */
  private matchRevision(text: string, expression: string): string {
    if (this.nodes.has(text)) return text;
    const candidates = this.ids.filter((id) => id.startsWith(text));
    if (candidates.length === 1) return candidates[0];
    if (candidates.length > 1) {
      fail(
        'AmbiguousRevision',
        `"${text}" is the start of ${candidates.length} revision ids (${list(candidates)}); type more characters of the one you mean`,
        { target: expression, prefix: text, candidates },
      );
    }
    fail(
      'UnknownRevision',
      `"${expression}" matches no revision id, id prefix or branch label; run \`phasegate heads\` or \`phasegate history\` to see the revisions`,
      { target: expression },
    );
  }

  /** `<x>@head`, `<x>@heads`, `<x>@base`, `<x>@+N`, `<x>@-N`, `<x>@head±N`. */
  private resolveInBranch(expression: string, name: string, rest: string, current: readonly string[]): ResolvedTarget {
    if (name === '') {
      fail('InvalidTarget', `"${expression}" names no branch before "@"; write <label>@head, <label>@base or <label>@+N`, { target: expression });
    }
    const branch = this.branch(name, expression);
    if (rest === 'head' || rest === 'heads') {
      const heads = this.headIds.filter((id) => branch.members.has(id));
      return rest === 'heads' ? { heads, below: null } : this.onlyHead(expression, heads, name);
    }
    if (rest === 'base') {
      /**
       * Why the branch's own first revision: Alembic's `<label>@base` is the shared base below the
       * branch point, so downgrading to it also removes sibling branches. Here it removes only this
       * branch — the safer reading for a production database.
       */
      return { heads: this.parentList(branch.root), below: [branch.root] };
    }
    const relative = RELATIVE.exec(rest);
    if (relative) {
      const sign = relative[1] as Sign;
      const start = this.positionIn(branch, sign === '+' ? branch.lineage : branch.members, current, expression);
      return this.walk(expression, start, sign, Number(relative[2]), branch);
    }
    const fromHead = HEAD_STEPPED.exec(rest);
    if (fromHead) return this.walkFromTarget(expression, `${name}@head`, fromHead[1] as Sign, Number(fromHead[2]), current);
    return fail(
      'InvalidTarget',
      `"${expression}": after "@" write head, heads, base, +N, -N or head-N (e.g. "${name}@head")`,
      { target: expression },
    );
  }

  /**
   * A label names the branch it starts (Alembic: the labelled revision, its descendants, and its
   * ancestors back to the nearest branch point or merge). A revision id names its branch the same way.
   */
  private branch(name: string, expression: string): Branch {
    const start = this.labelOwner.get(name) ?? this.matchRevision(name, expression);
    let root = start;
    for (;;) {
      const parents = this.parentList(root);
      if (parents.length !== 1) break;
      const parent = parents[0];
      if (this.childList(parent).length !== 1 || this.parentList(parent).length > 1) break;
      root = parent;
    }
    const members = this.closure([start], (x) => this.childList(x));
    for (let id = start; id !== root; id = this.parentList(id)[0]) members.add(id);
    members.add(root);
    const lineage = this.closure([root], (x) => this.parentList(x));
    for (const id of members) lineage.add(id);
    return { name, root, members, lineage };
  }

  /** The highest applied revision of `branch` among `within` (its members or its lineage; null: none is applied). */
  private positionIn(branch: Branch, within: Set<string>, current: readonly string[], expression: string): string | null {
    const applied = this.appliedSet(current);
    const inBranch = new Set([...within].filter((id) => applied.has(id)));
    const tops = this.topsOf(inBranch);
    if (tops.length > 1) {
      fail(
        'MultipleHeads',
        `"${expression}" is ambiguous: branch ${branch.name} has ${tops.length} applied heads (${list(tops)}); walk from one of them, e.g. "${tops[0]}${expression.slice(expression.indexOf('@') + 1)}"`,
        { target: expression, heads: tops },
      );
    }
    return tops[0] ?? null;
  }

  /** `+N` / `-N`: from the single current head. */
  private walkFromCurrent(expression: string, sign: Sign, steps: number, current: readonly string[]): ResolvedTarget {
    const heads = this.versionHeads(current);
    // A dependency is not a head while an applied revision depends on it, so `-1` right after
    // upgrading a revision with dependsOn walks down that revision, as in Alembic.
    if (heads.length <= 1) return this.walk(expression, heads[0] ?? null, sign, steps, null);
    if (sign === '-') return this.ambiguousFromCurrent(expression, heads);
    /** Why: from several heads `+N` is still clear when every head leads to the same revision (e.g. their merge). */
    const ends = heads.map((head) => {
      try {
        return this.walk(expression, head, sign, steps, null).heads;
      } catch {
        return null;
      }
    });
    const first = ends[0];
    if (first && first.length === 1 && ends.every((end) => end !== null && end.length === 1 && end[0] === first[0])) {
      return at(first[0]);
    }
    return this.ambiguousFromCurrent(expression, heads);
  }

  /** `current` (the version table, or an offline script's starting point) has several heads to walk from. */
  private ambiguousFromCurrent(expression: string, heads: string[]): never {
    return fail(
      'MultipleHeads',
      `"${expression}" is ambiguous: ${heads.length} heads are applied (${list(heads)}). Say which line to move: ` +
        `"<label>@${expression}" or "<revision>${expression}" (e.g. "${heads[0]}${expression}")`,
      { target: expression, heads },
    );
  }

  /** `<ref>+N` / `<ref>-N` where `<ref>` is any target naming one revision (or base). */
  private walkFromTarget(expression: string, ref: string, sign: Sign, steps: number, current: readonly string[]): ResolvedTarget {
    const from = this.resolveTarget(ref, current).heads;
    if (from.length > 1) {
      fail(
        'MultipleHeads',
        `"${expression}" is ambiguous: "${ref}" is ${from.length} revisions (${list(from)}); walk from one of them, e.g. "${from[0]}${sign}${steps}"`,
        { target: expression, heads: from },
      );
    }
    return this.walk(expression, from[0] ?? null, sign, steps, null);
  }

  /**
   * Walks `steps` revisions up (children) or down (parents) from `start`; `null` is below the bases
   * (or below the branch's root). Inside a branch, only its members are stepped on.
   */
  private walk(expression: string, start: string | null, sign: Sign, steps: number, branch: Branch | null): ResolvedTarget {
    const where = branch ? ` of branch ${branch.name}` : '';
    const baseState = (): ResolvedTarget =>
      branch ? { heads: this.parentList(branch.root), below: [branch.root] } : { heads: [], below: [...this.baseIds] };

    if (sign === '+') {
      let position = start;
      for (let step = 0; step < steps; step++) {
        const next =
          position === null
            ? this.baseIds.filter((b) => !branch || branch.lineage.has(b))
            : this.childList(position).filter((c) => !branch || branch.lineage.has(c));
        if (next.length === 0) {
          fail(
            'AboveHead',
            `"${expression}" goes past the head${where}: ${position ?? 'base'} is a head and ${steps - step} step(s) remain. ` +
              `Target "${branch ? `${branch.name}@head` : 'head'}" to go all the way up`,
            { target: expression, from: start, stepsTaken: step },
          );
        }
        if (next.length > 1) {
          fail(
            'AmbiguousWalk',
            `"${expression}" is ambiguous: after ${position ?? 'base'} the revisions branch into ${list(next)}. ` +
              'Name the branch ("<label>@+N") or walk from one of them ("<revision>+N")',
            { target: expression, at: position, candidates: next },
          );
        }
        position = next[0];
      }
      return position === null ? baseState() : at(position);
    }

    if (start === null) {
      if (steps === 0) return baseState();
      fail(
        'BelowBase',
        `"${expression}" goes below base: nothing${where} is applied, so there is nothing to un-apply`,
        { target: expression, available: 0 },
      );
    }
    let position = start;
    for (let step = 0; step < steps; step++) {
      const parents = this.parentList(position).filter((p) => !branch || branch.members.has(p));
      const last = step === steps - 1;
      if (parents.length === 0) {
        if (last) return branch ? baseState() : { heads: [], below: [position] };
        fail(
          'BelowBase',
          `"${expression}" goes below base: ${start} is only ${step + 1} revision(s) above base${where}. ` +
            `Target "${branch ? `${branch.name}@base` : 'base'}" to un-apply all of it`,
          { target: expression, from: start, available: step + 1 },
        );
      }
      if (parents.length > 1) {
        if (last) return { heads: parents, below: null };
        fail(
          'AmbiguousWalk',
          `"${expression}" is ambiguous: ${position} is a merge of ${list(parents)}, and the walk cannot choose a side. ` +
            'Walk from one of them ("<revision>-N") or name the branch ("<label>@-N")',
          { target: expression, at: position, candidates: parents },
        );
      }
      position = parents[0];
    }
    return at(position);
  }

  // ── graph helpers ────────────────────────────────────────────────────────────────────────────

  private node(id: string): RevisionNode {
    return this.nodes.get(id) as RevisionNode;
  }

  private listOf(map: Map<string, string[]>, id: string): string[] {
    return map.get(id) ?? [];
  }

  private parentList(id: string): string[] {
    return this.listOf(this.parentIds, id);
  }

  private childList(id: string): string[] {
    return this.listOf(this.childIds, id);
  }

  private prerequisiteList(id: string): string[] {
    return this.listOf(this.prerequisiteIds, id);
  }

  private successorList(id: string): string[] {
    return this.listOf(this.successorIds, id);
  }

  /** `start` and everything reachable from it through `next`. */
  private closure(start: Iterable<string>, next: (id: string) => readonly string[]): Set<string> {
    const found = new Set<string>();
    const todo = [...start];
    while (todo.length > 0) {
      const id = todo.pop() as string;
      if (found.has(id)) continue;
      found.add(id);
      todo.push(...next(id));
    }
    return found;
  }

  /** What `current` says is applied: the listed revisions and everything they build on. */
  private appliedSet(current: readonly string[]): Set<string> {
    const unknown = current.filter((id) => !this.nodes.has(id));
    if (unknown.length > 0) {
      fail(
        'UnknownAppliedRevision',
        `the version table lists ${list(unknown)}, but no revision file declares ${unknown.length === 1 ? 'it' : 'them'}; ` +
          'restore the missing file, or run `phasegate stamp` to record where the database really is',
        { revisions: unknown },
      );
    }
    return this.closure(current, (x) => this.prerequisiteList(x));
  }

  /** Members of `set` that no other member names as a parent or in dependsOn, sorted by id. */
  private topsBySuccessor(set: Set<string>): string[] {
    return [...set].filter((id) => !this.successorList(id).some((s) => set.has(s))).sort(byId);
  }

  /** Members of `set` that no other member names as a parent, sorted by id. */
  private topsOf(set: Set<string>): string[] {
    return [...set].filter((id) => !this.childList(id).some((c) => set.has(c))).sort(byId);
  }

  /**
   * `members` in apply order: every revision after its parents and dependencies. Depth first from
   * the members' tops (by id), visiting prerequisites by id, so one line is finished before the next.
   */
  private orderUpward(members: Set<string>): string[] {
    const tops = [...members].filter((id) => !this.successorList(id).some((s) => members.has(s))).sort(byId);
    const order: string[] = [];
    const visited = new Set<string>();
    for (const root of [...tops, ...[...members].sort(byId)]) {
      if (visited.has(root)) continue;
      visited.add(root);
      const stack: Array<{ id: string; next: number }> = [{ id: root, next: 0 }];
      while (stack.length > 0) {
        const frame = stack[stack.length - 1];
        const prerequisites = this.prerequisiteList(frame.id);
        if (frame.next < prerequisites.length) {
          const prerequisite = prerequisites[frame.next++];
          if (!visited.has(prerequisite)) {
            visited.add(prerequisite);
            stack.push({ id: prerequisite, next: 0 });
          }
          continue;
        }
        stack.pop();
        if (members.has(frame.id)) order.push(frame.id);
      }
    }
    return order;
  }

  /** Throws CycleDetected naming one cycle, in order, when a revision (indirectly) builds on itself. */
  private assertAcyclic(): void {
    const waiting = new Map(this.ids.map((id) => [id, this.prerequisiteList(id).length]));
    const ready = this.ids.filter((id) => waiting.get(id) === 0);
    while (ready.length > 0) {
      const id = ready.pop() as string;
      waiting.delete(id);
      for (const successor of this.successorList(id)) {
        const left = (waiting.get(successor) ?? 0) - 1;
        waiting.set(successor, left);
        if (left === 0) ready.push(successor);
      }
    }
    if (waiting.size === 0) return;

    // Every revision left over waits on another left-over one, so following those links loops.
    const path: string[] = [];
    const index = new Map<string, number>();
    let id = [...waiting.keys()].sort(byId)[0];
    while (!index.has(id)) {
      index.set(id, path.length);
      path.push(id);
      id = this.prerequisiteList(id).filter((p) => waiting.has(p))[0];
    }
    const loop = path.slice(index.get(id));
    const smallest = loop.indexOf([...loop].sort(byId)[0]);
    const cycle = [...loop.slice(smallest), ...loop.slice(0, smallest)];
    fail(
      'CycleDetected',
      `revisions form a cycle: ${[...cycle, cycle[0]].join(' → ')} (each names the next as a parent or in dependsOn). ` +
        'A revision cannot build on itself; fix the parent or dependsOn of one of them',
      { cycle },
    );
  }
}
