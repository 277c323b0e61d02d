import type { Db } from '../store/db.js';
import { EventStore, type ActivityRow, type DecisionRow } from '../store/events.js';
import { GroupStore, type GroupEventRow } from '../store/groups.js';
import { clean, clockTime, formatDecision } from './format.js';

/** One line of the event log: a decision, a launch/termination, or an operator's change to the group. */
export type TimelineEntry = ({ kind: 'decision' } & DecisionRow) | ({ kind: 'activity' } & ActivityRow)
  | ({ kind: 'change' } & Omit<GroupEventRow, 'kind'> & { change: GroupEventRow['kind'] });

/** One line per event; text from the store is cleaned of control characters (see `clean`). */
export function formatEntry(e: TimelineEntry): string {
  if (e.kind === 'decision') return `${clean(e.groupId)}  decision  ${formatDecision(e)}`;
  if (e.kind === 'change') return `${clean(e.groupId)}  ${clean(e.change).padEnd(8)}  ${clockTime(e.ts)} by ${clean(e.actor)}: ${clean(e.message)}`;
  const outcome = e.outcome === 'ok' ? 'ok' : `FAILED: ${clean(e.error ?? 'unknown error')}`;
  return `${clean(e.groupId)}  ${clean(e.action).padEnd(8)}  ${clockTime(e.ts)} ${clean(e.instanceId)} (${clean(e.cause)}) ${outcome}`;
}

const ORDER = { change: 0, decision: 1, activity: 2 } as const;

function merge(decisions: readonly DecisionRow[], activities: readonly ActivityRow[], changes: readonly GroupEventRow[] = []): TimelineEntry[] {
  const all: TimelineEntry[] = [
    ...changes.map(({ kind, ...c }) => ({ kind: 'change' as const, change: kind, ...c })),
    ...decisions.map((d) => ({ kind: 'decision' as const, ...d })),
    ...activities.map((a) => ({ kind: 'activity' as const, ...a })),
  ];
  // Within one millisecond: the change, then the decision, then the actions it caused.
  return all.sort((a, b) => a.ts - b.ts || (a.kind === b.kind ? a.id - b.id : ORDER[a.kind] - ORDER[b.kind]));
}

/** The last `limit` events of one group or of all, oldest first. */
export function recentEvents(db: Db, opts: { groupId?: string; limit: number }): TimelineEntry[] {
  const events = new EventStore(db);
  const groups = opts.groupId !== undefined ? [opts.groupId] : new GroupStore(db).list().map((g) => g.id);
  const decisions = groups.flatMap((g) => events.recentDecisions(g, opts.limit));
  const activities = groups.flatMap((g) => events.recentActivities(g, opts.limit));
  const store = new GroupStore(db);
  const changes = groups.flatMap((g) => store.events(g, opts.limit));
  return merge(decisions, activities, changes).slice(-opts.limit);
}

/** Reads events as they are appended, from the given high-water marks. */
export class EventFollower {
  private readonly events: EventStore;
  private readonly groups: GroupStore;
  constructor(db: Db, private readonly groupId: string | undefined, private lastDecision: number, private lastActivity: number, private lastChange: number) {
    this.events = new EventStore(db);
    this.groups = new GroupStore(db);
  }

  /** Follow from now on: only events appended after this call. */
  static fromNow(db: Db, groupId: string | undefined): EventFollower {
    const { decision, activity } = new EventStore(db).lastIds();
    const change = new GroupStore(db).lastEventId();
    return new EventFollower(db, groupId, decision, activity, change);
  }

  /** True for entries at or before the follower's starting point (printed once, not twice). */
  seen(e: TimelineEntry): boolean {
    return e.id <= (e.kind === 'decision' ? this.lastDecision : e.kind === 'activity' ? this.lastActivity : this.lastChange);
  }

  poll(): TimelineEntry[] {
    const d = this.events.decisionsSince(this.lastDecision);
    const a = this.events.activitiesSince(this.lastActivity);
    const c = this.groups.eventsSince(this.lastChange, 1_000);
    if (d.length > 0) this.lastDecision = (d.at(-1) as DecisionRow).id;
    if (a.length > 0) this.lastActivity = (a.at(-1) as ActivityRow).id;
    if (c.length > 0) this.lastChange = (c.at(-1) as GroupEventRow).id;
    const mine = <T extends { groupId: string }>(rows: T[]) => (this.groupId === undefined ? rows : rows.filter((r) => r.groupId === this.groupId));
    return merge(mine(d), mine(a), mine(c));
  }
}
