import type { GroupSpec, TargetTrackingPolicy } from '../controller/policy/types.js';
import type { Db } from './db.js';

/** A group row as stored. */
export interface GroupRow {
  readonly id: string;
  readonly minSize: number;
  readonly maxSize: number;
  /** Capacity the controller last decided on. */
  readonly desired: number;
  readonly policy: TargetTrackingPolicy;
  readonly paused: boolean;
  readonly createdAt: number;
  readonly updatedAt: number;
}

interface RawGroup {
  id: string; min_size: number; max_size: number; desired: number; policy: string; paused: number; created_at: number; updated_at: number;
}

function toRow(r: RawGroup): GroupRow {
  return {
    id: r.id,
    minSize: r.min_size,
    maxSize: r.max_size,
    desired: r.desired,
    policy: JSON.parse(r.policy) as TargetTrackingPolicy,
    paused: r.paused !== 0,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

export class GroupStore {
  private readonly upsertStmt;
  private readonly getStmt;
  private readonly listStmt;
  private readonly setDesiredStmt;
  private readonly setPausedStmt;

  constructor(db: Db) {
    // A restart applies the configured bounds and policy but keeps the decided capacity, clamped.
    this.upsertStmt = db.prepare(`
      INSERT INTO groups (id, min_size, max_size, desired, policy, paused, created_at, updated_at)
      VALUES (@id, @min, @max, @min, @policy, 0, @now, @now)
      ON CONFLICT(id) DO UPDATE SET min_size = @min, max_size = @max, policy = @policy, updated_at = @now,
        desired = MAX(@min, MIN(@max, groups.desired))`);
    this.getStmt = db.prepare<[string], RawGroup>('SELECT * FROM groups WHERE id = ?');
    this.listStmt = db.prepare<[], RawGroup>('SELECT * FROM groups ORDER BY id');
    this.setDesiredStmt = db.prepare('UPDATE groups SET desired = ?, updated_at = ? WHERE id = ?');
    this.setPausedStmt = db.prepare('UPDATE groups SET paused = ?, updated_at = ? WHERE id = ?');
  }

  /** Create the group, or apply new bounds and policy to it. */
  upsert(spec: GroupSpec, now: number): GroupRow {
    this.upsertStmt.run({ id: spec.id, min: spec.minSize, max: spec.maxSize, policy: JSON.stringify(spec.policy), now });
    return this.get(spec.id) as GroupRow;
  }

  get(id: string): GroupRow | undefined {
    const r = this.getStmt.get(id);
    return r === undefined ? undefined : toRow(r);
  }

  list(): GroupRow[] {
    return this.listStmt.all().map(toRow);
  }

  setDesired(id: string, desired: number, now: number): void {
    this.setDesiredStmt.run(desired, now, id);
  }

  /** Returns false when the group does not exist. */
  setPaused(id: string, paused: boolean, now: number): boolean {
    return this.setPausedStmt.run(paused ? 1 : 0, now, id).changes > 0;
  }
}
