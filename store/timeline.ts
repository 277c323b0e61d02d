/**
 * The event log as one timeline: decisions, launches / terminations (activities) and operators'
 * changes (group events), merged by time. Three tables, three id sequences: a position in the
 * timeline is a cursor holding the last id seen of each, so a reader pages forward (and an event
 * stream resumes) without losing or repeating an entry, whatever the mix of kinds.
 */
import type { Db } from './db.js';
import { toActivity, toDecision, type ActivityRow, type DecisionRow, type RawActivity, type RawDecision } from './events.js';
import { toEvent as toChange, type GroupEventRow, type RawEvent as RawChange } from './groups.js';

/** One entry of the event log. */
export type TimelineEntry = ({ kind: 'decision' } & DecisionRow) | ({ kind: 'activity' } & ActivityRow)
  | ({ kind: 'change' } & Omit<GroupEventRow, 'kind'> & { change: GroupEventRow['kind'] });

/** The last id of each kind a reader has seen (0: none). */
export interface TimelineCursor {
  readonly decision: number;
  readonly activity: number;
  readonly change: number;
}

export const START_CURSOR: TimelineCursor = Object.freeze({ decision: 0, activity: 0, change: 0 });

/** `D.A.C`: the three ids, for URLs and SSE ids. */
export function formatCursor(c: TimelineCursor): string {
  return `${c.decision}.${c.activity}.${c.change}`;
}

/** The inverse of formatCursor; undefined when `text` is not three whole numbers joined by dots. */
export function parseCursor(text: string): TimelineCursor | undefined {
  const m = /^(\d{1,15})\.(\d{1,15})\.(\d{1,15})$/.exec(text);
  if (m === null) return undefined;
  return { decision: Number(m[1]), activity: Number(m[2]), change: Number(m[3]) };
}

/** The cursor just after `e`, from the cursor before it. */
export function advance(c: TimelineCursor, e: TimelineEntry): TimelineCursor {
  return { ...c, [e.kind]: Math.max(c[e.kind], e.id) };
}

const ORDER = { change: 0, decision: 1, activity: 2 } as const;

/** Oldest first; within one millisecond: the change, then the decision, then the actions it caused. */
export function mergeTimeline(decisions: readonly DecisionRow[], activities: readonly ActivityRow[], changes: readonly GroupEventRow[]): TimelineEntry[] {
  const all: TimelineEntry[] = [
    ...changes.map(({ kind, ...c }) => ({ kind: 'change' as const, change: kind, ...c })),
    ...decisions.map((d) => ({ kind: 'decision' as const, ...d })),
    ...activities.map((a) => ({ kind: 'activity' as const, ...a })),
  ];
  return all.sort((a, b) => a.ts - b.ts || (a.kind === b.kind ? a.id - b.id : ORDER[a.kind] - ORDER[b.kind]));
}

/** A page of the timeline and the cursor to read on from (the last entry returned, or the one given). */
export interface TimelinePage {
  readonly entries: readonly TimelineEntry[];
  readonly cursor: TimelineCursor;
}

/** Largest page; more is asked for by paging on. */
export const MAX_TIMELINE_PAGE = 1_000;

const TABLES = { decision: 'decisions', activity: 'activities', change: 'group_events' } as const;

/** Reads the event log; every query is bounded by `limit`. */
export class TimelineReader {
  private readonly stmts;

  constructor(db: Db) {
    const prep = <R>(table: string, where: string, order: 'ASC' | 'DESC') =>
      db.prepare<{ id: number; ts: number; group: string | null; limit: number }, R>(
        `SELECT * FROM ${table} WHERE ${where} AND (@group IS NULL OR group_id = @group) ORDER BY id ${order} LIMIT @limit`);
    const each = (where: string, order: 'ASC' | 'DESC') => ({
      decision: prep<RawDecision>(TABLES.decision, where, order),
      activity: prep<RawActivity>(TABLES.activity, where, order),
      change: prep<RawChange>(TABLES.change, where, order),
    });
    this.stmts = { after: each('id > @id', 'ASC'), since: each('ts >= @ts', 'ASC'), latest: each('1 = 1', 'DESC'), last: db.prepare<[], { d: number | null; a: number | null; c: number | null }>(
      'SELECT (SELECT MAX(id) FROM decisions) AS d, (SELECT MAX(id) FROM activities) AS a, (SELECT MAX(id) FROM group_events) AS c') };
  }

  /** Where "from now on" starts: the newest id of each kind. */
  head(): TimelineCursor {
    const r = this.stmts.last.get();
    return { decision: r?.d ?? 0, activity: r?.a ?? 0, change: r?.c ?? 0 };
  }

  /** Entries after `cursor`, oldest first, at most `limit`. */
  after(cursor: TimelineCursor, opts: { groupId?: string; limit: number }): TimelinePage {
    const q = this.stmts.after;
    const args = (id: number) => ({ id, ts: 0, group: opts.groupId ?? null, limit: opts.limit });
    return this.page(cursor, opts.limit,
      q.decision.all(args(cursor.decision)).map(toDecision), q.activity.all(args(cursor.activity)).map(toActivity), q.change.all(args(cursor.change)).map(toChange));
  }

  /** Entries at or after `ts` (epoch ms), oldest first, at most `limit`. */
  since(ts: number, opts: { groupId?: string; limit: number }): TimelinePage {
    const q = this.stmts.since;
    const args = { id: 0, ts, group: opts.groupId ?? null, limit: opts.limit };
    const d = q.decision.all(args).map(toDecision);
    const a = q.activity.all(args).map(toActivity);
    const c = q.change.all(args).map(toChange);
    // A kind starts just before its first row at or after `ts`; with none, at its newest row.
    const head = this.head();
    const base = (rows: readonly { id: number }[], newest: number) => (rows[0] === undefined ? newest : rows[0].id - 1);
    return this.page({ decision: base(d, head.decision), activity: base(a, head.activity), change: base(c, head.change) }, opts.limit, d, a, c);
  }

  /** The newest `limit` entries, oldest first; the cursor is where a follower goes on from. */
  latest(opts: { groupId?: string; limit: number }): TimelinePage {
    const q = this.stmts.latest;
    const args = { id: 0, ts: 0, group: opts.groupId ?? null, limit: opts.limit };
    const entries = mergeTimeline(q.decision.all(args).map(toDecision), q.activity.all(args).map(toActivity), q.change.all(args).map(toChange)).slice(-opts.limit);
    // Everything up to the newest row is behind the reader, entries shown or not.
    return { entries, cursor: this.head() };
  }

  /**
   * Each kind's rows come sorted by id (so by time); the first `limit` of their merge is a prefix
   * of each, so the cursor is the last id taken of each kind and nothing is skipped.
   */
  private page(from: TimelineCursor, limit: number, d: DecisionRow[], a: ActivityRow[], c: GroupEventRow[]): TimelinePage {
    const entries = mergeTimeline(d, a, c).slice(0, limit);
    let cursor = from;
    for (const e of entries) cursor = advance(cursor, e);
    return { entries, cursor };
  }
}
