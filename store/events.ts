import type { DecisionReason, ScalingDecision } from '../domain/decision.js';
import type { Db } from './db.js';

/** A recorded decision: what the controller decided for a group, and why. */
export interface DecisionRow {
  readonly id: number;
  readonly ts: number;
  readonly groupId: string;
  readonly from: number;
  readonly to: number;
  readonly reason: DecisionReason;
  readonly message: string;
  readonly details: Readonly<Record<string, unknown>>;
}

/** What the controller did to an instance (or a cloud-owned group's count). */
export type ActivityAction = 'launch' | 'terminate' | 'adopt' | 'set-desired';

/** A launch or termination the controller carried out (or tried to). */
export interface ActivityRow {
  readonly id: number;
  readonly ts: number;
  readonly groupId: string;
  readonly instanceId: string;
  readonly action: ActivityAction;
  readonly cause: string;
  readonly outcome: 'ok' | 'failed';
  readonly error: string | null;
}

/** A `decisions` row as SQLite returns it. */
export interface RawDecision { id: number; ts: number; group_id: string; from_count: number; to_count: number; reason: DecisionReason; message: string; details: string }
/** An `activities` row as SQLite returns it. */
export interface RawActivity { id: number; ts: number; group_id: string; instance_id: string; action: ActivityAction; cause: string; outcome: 'ok' | 'failed'; error: string | null }

export const toDecision = (r: RawDecision): DecisionRow => ({
  id: r.id, ts: r.ts, groupId: r.group_id, from: r.from_count, to: r.to_count, reason: r.reason, message: r.message,
  details: JSON.parse(r.details) as Record<string, unknown>,
});
export const toActivity = (r: RawActivity): ActivityRow => ({
  id: r.id, ts: r.ts, groupId: r.group_id, instanceId: r.instance_id, action: r.action, cause: r.cause, outcome: r.outcome, error: r.error,
});

export class EventStore {
  private readonly insertDecisionStmt;
  private readonly recentDecisionsStmt;
  private readonly decisionsSinceStmt;
  private readonly insertActivityStmt;
  private readonly recentActivitiesStmt;
  private readonly activitiesSinceStmt;
  private readonly lastIdsStmt;

  constructor(db: Db) {
    this.insertDecisionStmt = db.prepare(`INSERT INTO decisions (ts, group_id, from_count, to_count, reason, message, details)
      VALUES (?, ?, ?, ?, ?, ?, ?)`);
    this.recentDecisionsStmt = db.prepare<[string, number], RawDecision>('SELECT * FROM decisions WHERE group_id = ? ORDER BY id DESC LIMIT ?');
    this.decisionsSinceStmt = db.prepare<[number, number], RawDecision>('SELECT * FROM decisions WHERE id > ? ORDER BY id LIMIT ?');
    this.insertActivityStmt = db.prepare(`INSERT INTO activities (ts, group_id, instance_id, action, cause, outcome, error)
      VALUES (?, ?, ?, ?, ?, ?, ?)`);
    this.recentActivitiesStmt = db.prepare<[string, number], RawActivity>('SELECT * FROM activities WHERE group_id = ? ORDER BY id DESC LIMIT ?');
    this.activitiesSinceStmt = db.prepare<[number, number], RawActivity>('SELECT * FROM activities WHERE id > ? ORDER BY id LIMIT ?');
    this.lastIdsStmt = db.prepare<[], { decision: number | null; activity: number | null }>(
      'SELECT (SELECT MAX(id) FROM decisions) AS decision, (SELECT MAX(id) AS a FROM activities) AS activity');
  }

  recordDecision(groupId: string, d: ScalingDecision, now: number): number {
    const details = { trail: d.trail, ...d.details };
    return Number(this.insertDecisionStmt.run(now, groupId, d.current, d.desired, d.reason, d.message, JSON.stringify(details)).lastInsertRowid);
  }

  /** Newest first. */
  recentDecisions(groupId: string, limit: number): DecisionRow[] {
    return this.recentDecisionsStmt.all(groupId, limit).map(toDecision);
  }

  /** Oldest first, for followers (`events --follow`, the demo's log). */
  decisionsSince(afterId: number, limit = 1000): DecisionRow[] {
    return this.decisionsSinceStmt.all(afterId, limit).map(toDecision);
  }

  recordActivity(a: Omit<ActivityRow, 'id'>): void {
    this.insertActivityStmt.run(a.ts, a.groupId, a.instanceId, a.action, a.cause, a.outcome, a.error);
  }

  recentActivities(groupId: string, limit: number): ActivityRow[] {
    return this.recentActivitiesStmt.all(groupId, limit).map(toActivity);
  }

  activitiesSince(afterId: number, limit = 1000): ActivityRow[] {
    return this.activitiesSinceStmt.all(afterId, limit).map(toActivity);
  }

  /** Highest ids so far (0 when empty), to follow from now on. */
  lastIds(): { decision: number; activity: number } {
    const r = this.lastIdsStmt.get();
    return { decision: r?.decision ?? 0, activity: r?.activity ?? 0 };
  }
}
