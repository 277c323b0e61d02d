import type { MinuteSample } from '../domain/state.js';
import type { Db } from './db.js';

/** A group's per-minute history: averages of what the controller observed each evaluation. */
export class MinuteStore {
  private readonly addStmt;
  private readonly rangeStmt;
  private readonly pruneStmt;

  constructor(db: Db) {
    // Each evaluation folds into its minute as a running average.
    this.addStmt = db.prepare(`INSERT INTO group_minutes (group_id, minute, ready, capacity, cpu, mem, samples)
      VALUES (@group, @minute, @ready, @capacity, @cpu, @mem, 1)
      ON CONFLICT(group_id, minute) DO UPDATE SET
        ready = (ready * samples + excluded.ready) / (samples + 1),
        capacity = (capacity * samples + excluded.capacity) / (samples + 1),
        cpu = (cpu * samples + excluded.cpu) / (samples + 1),
        mem = (mem * samples + excluded.mem) / (samples + 1),
        samples = samples + 1`);
    this.rangeStmt = db.prepare<[string, number, number], MinuteSample>(`SELECT minute, ready, capacity, cpu, mem FROM group_minutes
      WHERE group_id = ? AND minute >= ? AND minute < ? ORDER BY minute`);
    this.pruneStmt = db.prepare('DELETE FROM group_minutes WHERE minute < ?');
  }

  /** Fold one observation into its minute. `cpu` and `mem` are sums over ready instances. */
  add(groupId: string, at: number, s: { ready: number; capacity: number; cpu: number; mem: number }): void {
    this.addStmt.run({ group: groupId, minute: at - (at % 60_000), ...s });
  }

  /** Minutes in [from, to), oldest first. */
  range(groupId: string, from: number, to: number): MinuteSample[] {
    return this.rangeStmt.all(groupId, from, to);
  }

  prune(before: number): number {
    return this.pruneStmt.run(before).changes;
  }
}
