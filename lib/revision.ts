/**
 * What a revision file declares. A revision file in `migrations/versions/` default-exports (or
 * exports as `revision`) an object of this shape.
 */
import type { Op } from './ops';

export interface RevisionModule {
  /** Unique id (Alembic-style: 12 hex characters by default). */
  id: string;
  /** The revision this one follows; `null`/absent for a base. Use `parents` for a merge. */
  parent?: string | null;
  parents?: string[];
  message: string;
  /** Names that `<label>@head` resolves through; only on the revision that starts a branch. */
  branchLabels?: string[];
  /** Revisions that must be applied before this one, without being its parent. */
  dependsOn?: string[];
  /** `false` for revisions whose statements cannot run inside a transaction (CONCURRENTLY). */
  transactional?: boolean;
  /** Free-form label of the phase this revision belongs to, shown in status and the UI. */
  phase?: string;
  upgrade(op: Op): void | Promise<void>;
  downgrade(op: Op): void | Promise<void>;
}

/** The graph-relevant part of a revision: what the revision graph works on (no code, no DB). */
export interface RevisionNode {
  id: string;
  parents: string[];
  dependsOn: string[];
  branchLabels: string[];
  message: string;
}
