import type { Db } from '../store/db.js';
import { EventStore, type ActivityRow, type DecisionRow } from '../store/events.js';
import { GroupStore } from '../store/groups.js';
import { clean, clockTime, formatDecision } from './format.js';

/** One line of the event log: a decision, or a launch/termination. */
export type TimelineEntry = ({ kind: 'decision' } & DecisionRow) | ({ kind: 'activity' } & ActivityRow);

/** One line per event; text from the store is cleaned of control characters (see `clean`). */
export function formatEntry(e: TimelineEntry): string {
  if (e.kind === 'decision') return `${clean(e.groupId)}  decision  ${formatDecision(e)}`;
  const outcome = e.outcome === 'ok' ? 'ok' : `FAILED: ${clean(e.error ?? 'unknown error')}`;
  return `${clean(e.groupId)}  ${clean(e.action).padEnd(8)}  ${clockTime(e.ts)} ${clean(e.instanceId)} (${clean(e.cause)}) ${outcome}`;
}

function merge(decisions: readonly DecisionRow[], activities: readonly ActivityRow[]): TimelineEntry[] {
  const all: TimelineEntry[] = [
    ...decisions.map((d) => ({ kind: 'decision' as const, ...d })),
    ...activities.map((a) => ({ kind: 'activity' as const, ...a })),
  ];
  // Decisions precede the actions they caused when both carry the same millisecond.
  return all.sort((a, b) => a.ts - b.ts || (a.kind === b.kind ? a.id - b.id : a.kind === 'decision' ? -1 : 1));
}

/** The last `limit` events of one group or of all, oldest first. */
export function recentEvents(db: Db, opts: { groupId?: string; limit: number }): TimelineEntry[] {
  const events = new EventStore(db);
  const groups = opts.groupId !== undefined ? [opts.groupId] : new GroupStore(db).list().map((g) => g.id);
  const decisions = groups.flatMap((g) => events.recentDecisions(g, opts.limit));
  const activities = groups.flatMap((g) => events.recentActivities(g, opts.limit));
  return merge(decisions, activities).slice(-opts.limit);
}

/** Reads events as they are appended, from the given high-water marks. */
export class EventFollower {
  private readonly events: EventStore;
  constructor(db: Db, private readonly groupId: string | undefined, private lastDecision: number, private lastActivity: number) {
    this.events = new EventStore(db);
  }

  /** Follow from now on: only events appended after this call. */
  static fromNow(db: Db, groupId: string | undefined): EventFollower {
    const { decision, activity } = new EventStore(db).lastIds();
    return new EventFollower(db, groupId, decision, activity);
  }

  /** True for entries at or before the follower's starting point (printed once, not twice). */
  seen(e: TimelineEntry): boolean {
    return e.id <= (e.kind === 'decision' ? this.lastDecision : this.lastActivity);
  }

  poll(): TimelineEntry[] {
    const d = this.events.decisionsSince(this.lastDecision);
    const a = this.events.activitiesSince(this.lastActivity);
    if (d.length > 0) this.lastDecision = (d.at(-1) as DecisionRow).id;
    if (a.length > 0) this.lastActivity = (a.at(-1) as ActivityRow).id;
    const mine = <T extends { groupId: string }>(rows: T[]) => (this.groupId === undefined ? rows : rows.filter((r) => r.groupId === this.groupId));
    return merge(mine(d), mine(a));
  }
}
