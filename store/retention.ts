import type { Db } from './db.js';

/** Rows one `HistoryRetention.prune` call deleted, per table. */
export interface HistoryPruneResult {
  readonly decisions: number;
  readonly activities: number;
  readonly groupEvents: number;
  /** Closed (done or failed) launch intents; open ones are never deleted. */
  readonly launchIntents: number;
}

/**
 * Retention of the audit trail the controller and operators write (decisions, activities,
 * group_events, closed launch_intents), which nothing else bounds. Each table is deleted from in
 * short chunks: only the `limit` oldest rows by id are looked at, so a call costs the same
 * however long the table is. Ids grow with time; a row younger than `before` among the oldest
 * (a clock stepped back) is kept and ends that table's chunk early.
 */
export class HistoryRetention {
  private readonly decisionsStmt;
  private readonly activitiesStmt;
  private readonly groupEventsStmt;
  private readonly intentsStmt;

  constructor(db: Db) {
    const oldest = (table: string) => db.prepare(`DELETE FROM ${table} WHERE id IN (SELECT id FROM ${table} ORDER BY id LIMIT ?) AND ts < ?`);
    this.decisionsStmt = oldest('decisions');
    this.activitiesStmt = oldest('activities');
    this.groupEventsStmt = oldest('group_events');
    this.intentsStmt = db.prepare(`DELETE FROM launch_intents WHERE rowid IN (SELECT rowid FROM launch_intents ORDER BY rowid LIMIT ?)
      AND status <> 'open' AND closed_at < ?`);
  }

  /**
   * Delete rows older than `before` (Unix epoch ms; an intent by its closing time), looking at
   * most at the `limit` oldest rows of each table. A table whose count is below `limit` is done.
   */
  prune(before: number, limit: number): HistoryPruneResult {
    return {
      decisions: this.decisionsStmt.run(limit, before).changes,
      activities: this.activitiesStmt.run(limit, before).changes,
      groupEvents: this.groupEventsStmt.run(limit, before).changes,
      launchIntents: this.intentsStmt.run(limit, before).changes,
    };
  }
}
