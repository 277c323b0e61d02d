import { diffDocuments, type FieldChange } from '../domain/diff.js';
import { parsePolicy, type GroupDocument, type PolicyDocument } from '../domain/policy.js';
import type { Db } from './db.js';
import { StoreError } from './errors.js';

/** A manual capacity in force (`autoscaler scale GROUP --desired N [--for 30m]`). */
export interface GroupOverride {
  readonly desired: number;
  /** Epoch ms; null: until cleared. */
  readonly until: number | null;
  readonly by: string;
}

/** A group row as stored: the source of truth for bounds and policy. */
export interface GroupRow {
  readonly id: string;
  readonly minSize: number;
  readonly maxSize: number;
  /** Capacity the controller last decided on. */
  readonly desired: number;
  /** The policy document, defaults filled. */
  readonly policy: PolicyDocument;
  /** +1 at every change of bounds or policy. */
  readonly revision: number;
  readonly paused: boolean;
  /** Decide and record, but never act. */
  readonly dryRun: boolean;
  readonly override: GroupOverride | undefined;
  readonly createdAt: number;
  readonly updatedAt: number;
}

/** An operator's action on a group, with who did it. */
export interface GroupEventRow {
  readonly id: number;
  readonly ts: number;
  readonly groupId: string;
  readonly kind: GroupEventKind;
  readonly actor: string;
  readonly message: string;
  readonly details: Readonly<Record<string, unknown>>;
}
export type GroupEventKind = 'created' | 'applied' | 'policy' | 'pause' | 'resume' | 'scale' | 'dry-run';

interface RawGroup {
  id: string; min_size: number; max_size: number; desired: number; policy: string; paused: number; created_at: number; updated_at: number;
  revision: number; dry_run: number; override_desired: number | null; override_until: number | null; override_by: string | null;
}
/** A `group_events` row as SQLite returns it. */
export interface RawEvent { id: number; ts: number; group_id: string; kind: GroupEventKind; actor: string; message: string; details: string }

function toRow(r: RawGroup): GroupRow {
  const parsed = parsePolicy(JSON.parse(r.policy));
  if (!parsed.ok) throw new StoreError(`group ${r.id}: stored policy is invalid: ${parsed.problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`);
  return {
    id: r.id, minSize: r.min_size, maxSize: r.max_size, desired: r.desired, policy: parsed.value, revision: r.revision,
    paused: r.paused !== 0, dryRun: r.dry_run !== 0,
    override: r.override_desired === null ? undefined : { desired: r.override_desired, until: r.override_until, by: r.override_by ?? '?' },
    createdAt: r.created_at, updatedAt: r.updated_at,
  };
}

const show = (v: unknown) => (v === undefined ? '(none)' : JSON.stringify(v));

export class GroupStore {
  private readonly db: Db;
  private readonly insertStmt;
  private readonly applyStmt;
  private readonly getStmt;
  private readonly listStmt;
  private readonly setDesiredStmt;
  private readonly setPausedStmt;
  private readonly setDryRunStmt;
  private readonly setOverrideStmt;
  private readonly eventStmt;
  private readonly eventsStmt;
  private readonly eventsSinceStmt;
  private readonly lastEventStmt;

  constructor(db: Db) {
    this.db = db;
    this.insertStmt = db.prepare(`INSERT INTO groups (id, min_size, max_size, desired, policy, paused, created_at, updated_at)
      VALUES (@id, @min, @max, @min, @policy, 0, @now, @now) ON CONFLICT(id) DO NOTHING`);
    // Bounds change: the decided capacity is kept, clamped into them.
    this.applyStmt = db.prepare(`UPDATE groups SET min_size = @min, max_size = @max, policy = @policy, updated_at = @now,
      desired = MAX(@min, MIN(@max, desired)), revision = revision + 1 WHERE id = @id`);
    this.getStmt = db.prepare<[string], RawGroup>('SELECT * FROM groups WHERE id = ?');
    this.listStmt = db.prepare<[], RawGroup>('SELECT * FROM groups ORDER BY id');
    this.setDesiredStmt = db.prepare('UPDATE groups SET desired = ?, updated_at = ? WHERE id = ?');
    this.setPausedStmt = db.prepare('UPDATE groups SET paused = ?, updated_at = ? WHERE id = ?');
    this.setDryRunStmt = db.prepare('UPDATE groups SET dry_run = ?, updated_at = ? WHERE id = ?');
    this.setOverrideStmt = db.prepare('UPDATE groups SET override_desired = ?, override_until = ?, override_by = ?, updated_at = ? WHERE id = ?');
    this.eventStmt = db.prepare('INSERT INTO group_events (ts, group_id, kind, actor, message, details) VALUES (?, ?, ?, ?, ?, ?)');
    this.eventsStmt = db.prepare<[string, number], RawEvent>('SELECT * FROM group_events WHERE group_id = ? ORDER BY id DESC LIMIT ?');
    this.eventsSinceStmt = db.prepare<[number, number], RawEvent>('SELECT * FROM group_events WHERE id > ? ORDER BY id LIMIT ?');
    this.lastEventStmt = db.prepare<[], { id: number | null }>('SELECT MAX(id) AS id FROM group_events');
  }

  /**
   * Create the group when it does not exist; an existing one is left as it is (config seeds, the
   * store rules: a restart must not undo an operator's change). Returns whether it was created.
   */
  seed(doc: GroupDocument, actor: string, now: number): boolean {
    return this.db.transaction(() => {
      const created = this.insertStmt.run({ id: doc.id, min: doc.minSize, max: doc.maxSize, policy: JSON.stringify(doc.policy), now }).changes > 0;
      if (created) this.event(doc.id, 'created', actor, `created: min ${doc.minSize} max ${doc.maxSize}`, { document: doc }, now);
      return created;
    })();
  }

  /**
   * Create the group, or change its bounds and policy on purpose (`autoscaler group apply`,
   * `policy set`); the change is recorded as an event with every field old → new.
   */
  apply(doc: GroupDocument, actor: string, now: number): { row: GroupRow; changes: readonly FieldChange[]; created: boolean } {
    return this.db.transaction(() => {
      const before = this.get(doc.id);
      if (before === undefined) {
        this.seed(doc, actor, now);
        return { row: this.get(doc.id) as GroupRow, changes: [], created: true };
      }
      const changes = diffDocuments({ minSize: before.minSize, maxSize: before.maxSize, policy: before.policy }, { minSize: doc.minSize, maxSize: doc.maxSize, policy: doc.policy });
      if (changes.length > 0) {
        this.applyStmt.run({ id: doc.id, min: doc.minSize, max: doc.maxSize, policy: JSON.stringify(doc.policy), now });
        const kind = changes.every((c) => c.path.startsWith('policy.')) ? 'policy' : 'applied';
        const text = changes.map((c) => `${c.path} ${show(c.from)} → ${show(c.to)}`).join(', ');
        this.event(doc.id, kind, actor, `revision ${before.revision + 1}: ${text}`, { revision: before.revision + 1, changes }, now);
      }
      return { row: this.get(doc.id) as GroupRow, changes, created: false };
    })();
  }

  /** Tests and benches: create the group or overwrite it, without an event. */
  upsert(doc: GroupDocument, now: number): GroupRow {
    if (!this.seed(doc, 'test', now)) this.applyStmt.run({ id: doc.id, min: doc.minSize, max: doc.maxSize, policy: JSON.stringify(doc.policy), now });
    return this.get(doc.id) as GroupRow;
  }

  get(id: string): GroupRow | undefined {
    const r = this.getStmt.get(id);
    return r === undefined ? undefined : toRow(r);
  }

  /** Groups whose stored policy no longer parses, as of the last list(): skipped, not fatal to the others. */
  invalid: readonly { readonly id: string; readonly problem: string }[] = [];

  /** Every group whose stored document is valid (see `invalid` for the others). */
  list(): GroupRow[] {
    const out: GroupRow[] = [];
    const invalid: { id: string; problem: string }[] = [];
    for (const r of this.listStmt.all()) {
      try {
        out.push(toRow(r));
      } catch (err) {
        invalid.push({ id: r.id, problem: (err as Error).message });
      }
    }
    this.invalid = invalid;
    return out;
  }

  setDesired(id: string, desired: number, now: number): void {
    this.setDesiredStmt.run(desired, now, id);
  }

  /** Returns false when the group does not exist. Records who paused or resumed it. */
  setPaused(id: string, paused: boolean, now: number, actor = 'unknown', why = ''): boolean {
    return this.db.transaction(() => {
      const ok = this.setPausedStmt.run(paused ? 1 : 0, now, id).changes > 0;
      if (ok) this.event(id, paused ? 'pause' : 'resume', actor, `${paused ? 'paused' : 'resumed'}${why ? `: ${why}` : ''}`, {}, now);
      return ok;
    })();
  }

  setDryRun(id: string, on: boolean, now: number, actor = 'unknown'): boolean {
    return this.db.transaction(() => {
      const ok = this.setDryRunStmt.run(on ? 1 : 0, now, id).changes > 0;
      if (ok) this.event(id, 'dry-run', actor, `dry-run ${on ? 'on: decisions are recorded, nothing is done' : 'off'}`, { on }, now);
      return ok;
    })();
  }

  /** Set (or clear, with undefined) a manual capacity. */
  setOverride(id: string, o: { desired: number; until: number | null } | undefined, now: number, actor = 'unknown'): boolean {
    return this.db.transaction(() => {
      const ok = this.setOverrideStmt.run(o?.desired ?? null, o?.until ?? null, o === undefined ? null : actor, now, id).changes > 0;
      if (ok) {
        const message = o === undefined ? 'manual capacity cleared: the policies decide again'
          : `manual capacity ${o.desired}${o.until === null ? ' until cleared' : ` for ${Math.round((o.until - now) / 1000)}s`}`;
        this.event(id, 'scale', actor, message, { desired: o?.desired ?? null, until: o?.until ?? null }, now);
      }
      return ok;
    })();
  }

  private event(groupId: string, kind: GroupEventKind, actor: string, message: string, details: Record<string, unknown>, now: number): void {
    this.eventStmt.run(now, groupId, kind, actor, message, JSON.stringify(details));
  }

  /** The group's operator events, newest first. */
  events(groupId: string, limit: number): GroupEventRow[] {
    return this.eventsStmt.all(groupId, limit).map(toEvent);
  }

  /** The newest event id (0 when none): where `events --follow` starts. */
  lastEventId(): number {
    return this.lastEventStmt.get()?.id ?? 0;
  }

  /** Every group's events after an id, oldest first (for `events --follow`). */
  eventsSince(afterId: number, limit: number): GroupEventRow[] {
    return this.eventsSinceStmt.all(afterId, limit).map(toEvent);
  }
}

export function toEvent(r: RawEvent): GroupEventRow {
  return { id: r.id, ts: r.ts, groupId: r.group_id, kind: r.kind, actor: r.actor, message: r.message, details: JSON.parse(r.details) as Record<string, unknown> };
}
