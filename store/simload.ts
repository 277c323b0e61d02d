import type { DemandProfile } from '../sim/profile.js';
import type { Db } from './db.js';

/** The simulated demand of a group: a profile and when it started. */
export interface SimLoadRow {
  readonly groupId: string;
  readonly profile: DemandProfile;
  readonly startedAt: number;
  readonly updatedAt: number;
}

interface RawSimLoad { group_id: string; profile: string; started_at: number; updated_at: number }

export class SimLoadStore {
  private readonly setStmt;
  private readonly getStmt;
  private readonly clearStmt;

  constructor(db: Db) {
    this.setStmt = db.prepare(`INSERT INTO sim_load (group_id, profile, started_at, updated_at) VALUES (?, ?, ?, ?)
      ON CONFLICT(group_id) DO UPDATE SET profile = excluded.profile, started_at = excluded.started_at, updated_at = excluded.updated_at`);
    this.getStmt = db.prepare<[string], RawSimLoad>('SELECT * FROM sim_load WHERE group_id = ?');
    this.clearStmt = db.prepare('DELETE FROM sim_load WHERE group_id = ?');
  }

  /** Start a profile now (its time axis begins at `now`). */
  set(groupId: string, profile: DemandProfile, now: number): void {
    this.setStmt.run(groupId, JSON.stringify(profile), now, now);
  }

  get(groupId: string): SimLoadRow | undefined {
    const r = this.getStmt.get(groupId);
    return r === undefined ? undefined
      : { groupId: r.group_id, profile: JSON.parse(r.profile) as DemandProfile, startedAt: r.started_at, updatedAt: r.updated_at };
  }

  clear(groupId: string): boolean {
    return this.clearStmt.run(groupId).changes > 0;
  }
}
