import type { PolicyState } from '../domain/state.js';
import type { Db } from './db.js';

/** Policy state per group (JSON), written after each evaluation. */
export class PolicyStateStore {
  private readonly getStmt;
  private readonly putStmt;

  constructor(db: Db) {
    this.getStmt = db.prepare<[string], { state: string }>('SELECT state FROM policy_state WHERE group_id = ?');
    this.putStmt = db.prepare(`INSERT INTO policy_state (group_id, state, updated_at) VALUES (?, ?, ?)
      ON CONFLICT(group_id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at`);
  }

  get(groupId: string): PolicyState | undefined {
    const r = this.getStmt.get(groupId);
    return r === undefined ? undefined : (JSON.parse(r.state) as PolicyState);
  }

  put(groupId: string, state: PolicyState, now: number): void {
    this.putStmt.run(groupId, JSON.stringify(state), now);
  }
}
