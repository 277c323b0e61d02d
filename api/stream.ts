/**
 * `GET /api/v1/stream`: server-sent events for dashboards and `events --follow` over HTTP.
 * One poller per server (never one per client) reads the store every MONITOR_API_STREAM_MS while
 * anyone listens, and fans out:
 *   decision, activity, change  the event log; the SSE id is the timeline cursor, so a client that
 *                               reconnects with Last-Event-ID (or ?after=) misses nothing
 *   instance                    an instance changed state (launched, running, suspect, dead, …)
 *   sample                      each group's live figures (average CPU, counts, desired, demand,
 *                               each instance's CPU)
 * A client that does not read is dropped once MAX_BUFFERED_BYTES wait for it.
 */
import type { ServerResponse } from 'node:http';
import type { Logger } from '../lib/logger.js';
import type { Db } from '../store/db.js';
import type { StatusReport } from '../store/status.js';
import { TimelineReader, advance, formatCursor, type TimelineCursor, type TimelineEntry } from '../store/timeline.js';
import { AdminError } from './admin.js';

/** A client this far behind is dropped (it reconnects with Last-Event-ID and catches up). */
const MAX_BUFFERED_BYTES = 1024 * 1024;
/** A comment line this often keeps proxies from closing an idle stream. */
const KEEPALIVE_MS = 15_000;
/** Entries read per poll, at most (the rest follow at the next poll). */
const PAGE = 1_000;

interface Subscriber {
  readonly res: ServerResponse;
  readonly group: string | undefined;
  /** The last entry of each kind sent to it. */
  cursor: TimelineCursor;
}

export interface EventHubOptions {
  readonly db: Db;
  readonly pollMs: number;
  readonly maxStreams: number;
  /** The fleet now (the status cache's report). */
  readonly report: () => StatusReport;
  readonly log: Logger;
}

export class EventHub {
  private readonly subs = new Set<Subscriber>();
  private readonly timeline: TimelineReader;
  private cursor: TimelineCursor;
  private timer: NodeJS.Timeout | undefined;
  private keepalive: NodeJS.Timeout | undefined;
  /** Instance id → state at the last poll. */
  private states = new Map<string, string>();

  constructor(private readonly opts: EventHubOptions) {
    this.timeline = new TimelineReader(opts.db);
    this.cursor = this.timeline.head();
  }

  get size(): number {
    return this.subs.size;
  }

  /**
   * Answer `res` with a stream. `after` (Last-Event-ID or ?after=): first the entries after it;
   * otherwise only what happens from now on. Throws a 503 AdminError when too many are open.
   */
  open(res: ServerResponse, q: { group?: string; after?: TimelineCursor }): void {
    if (this.subs.size >= this.opts.maxStreams) throw new AdminError('unavailable', `too many open event streams (${this.opts.maxStreams}, MONITOR_API_MAX_STREAMS); try again later`);
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.write('retry: 2000\n\n');
    const sub: Subscriber = { res, group: q.group, cursor: q.after ?? this.timeline.head() };
    if (q.after !== undefined) {
      // Catch up to the store's head, bounded; what is left comes with the next polls.
      for (let n = 0; n < 5; n++) {
        const page = this.timeline.after(sub.cursor, { groupId: q.group, limit: PAGE });
        for (const e of page.entries) this.sendEntry(sub, e);
        sub.cursor = page.cursor;
        if (page.entries.length < PAGE) break;
      }
    }
    this.subs.add(sub);
    res.on('close', () => {
      this.subs.delete(sub);
      if (this.subs.size === 0) this.stop();
    });
    this.send(sub, 'hello', undefined, { cursor: formatCursor(sub.cursor), pollMs: this.opts.pollMs });
    this.start();
  }

  private start(): void {
    if (this.timer !== undefined) return;
    this.cursor = this.timeline.head();
    this.states = this.snapshotStates(this.opts.report());
    this.timer = setInterval(() => this.poll(), this.opts.pollMs);
    this.keepalive = setInterval(() => {
      for (const s of this.subs) this.write(s, ': keep-alive\n\n');
    }, KEEPALIVE_MS);
  }

  private stop(): void {
    clearInterval(this.timer);
    clearInterval(this.keepalive);
    this.timer = undefined;
    this.keepalive = undefined;
  }

  /** Close every stream (server shutdown). */
  close(): void {
    this.stop();
    for (const s of this.subs) s.res.end();
    this.subs.clear();
  }

  private snapshotStates(r: StatusReport): Map<string, string> {
    const m = new Map<string, string>();
    for (const g of r.groups) for (const i of g.instances) m.set(i.id, i.state);
    return m;
  }

  /** One read of the store for every listener. Exposed for tests (which drive it by hand). */
  poll(): void {
    try {
      const page = this.timeline.after(this.cursor, { limit: PAGE });
      for (const e of page.entries) {
        for (const s of this.subs) if (s.group === undefined || s.group === e.groupId) this.sendEntry(s, e);
      }
      this.cursor = page.cursor;

      const report = this.opts.report();
      const now = report.generatedAt;
      const states = this.snapshotStates(report);
      for (const g of report.groups) {
        for (const i of g.instances) {
          const before = this.states.get(i.id);
          if (before !== i.state) this.broadcast(g.id, 'instance', { ts: now, groupId: g.id, id: i.id, from: before ?? null, to: i.state, reason: i.stateReason ?? null });
        }
        const live = g.counts.pending + g.counts.running + g.counts.suspect;
        this.broadcast(g.id, 'sample', {
          ts: now, groupId: g.id, avgCpu: g.avgCpu, desired: g.desired, live, counts: g.counts, demand: g.demand?.value ?? null, paused: g.paused,
          instances: g.instances.filter((i) => i.state !== 'terminated').map((i) => ({ id: i.id, state: i.state, cpu: i.cpu, mem: i.mem, lastSeenAt: i.lastSeenAt })),
        });
      }
      this.states = states;
    } catch (err) {
      this.opts.log.warn({ err }, 'event stream poll failed');
    }
  }

  private broadcast(group: string, event: string, data: unknown): void {
    for (const s of this.subs) if (s.group === undefined || s.group === group) this.send(s, event, undefined, data);
  }

  private sendEntry(s: Subscriber, e: TimelineEntry): void {
    if (e.id <= s.cursor[e.kind]) return;
    s.cursor = advance(s.cursor, e);
    this.send(s, e.kind, formatCursor(s.cursor), e);
  }

  private send(s: Subscriber, event: string, id: string | undefined, data: unknown): void {
    this.write(s, `${id === undefined ? '' : `id: ${id}\n`}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  private write(s: Subscriber, text: string): void {
    if (s.res.writableLength > MAX_BUFFERED_BYTES) {
      this.opts.log.warn({ buffered: s.res.writableLength }, 'event stream client not reading; dropped');
      this.subs.delete(s);
      s.res.destroy();
      return;
    }
    s.res.write(text);
  }
}
