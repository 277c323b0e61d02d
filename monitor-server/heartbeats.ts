import * as grpc from '@grpc/grpc-js';
import type { MonitorServerConfig } from '../config/monitor-server.js';
import type { Clock } from '../lib/clock.js';
import type { Heartbeat__Output } from '../lib/proto.js';
import { demandAt } from '../sim/profile.js';
import type { SimLoadStore } from '../store/simload.js';
import { containListener, type ContainContext } from './contain.js';
import { checkHeartbeat } from './heartbeat-validation.js';
import type { IngestQueue } from './ingest.js';
import type { FailureDetector, Transition } from './liveness.js';
import { RateLimiter } from './rate-limit.js';
import type { RefusalReason } from './refusals.js';
import type { GroupView, HeartbeatCall, Session, SessionTable } from './sessions.js';

export type CallStatus = { code: grpc.status; details: string };

/** A stream with this many heartbeats handled and not acked is acked at the next flush (a replay frees the agent's buffer fast). */
export const ACK_BACKLOG = 100;
/** A demand change of this many points (percent of one instance) is a new group view, sent at once. */
const DEMAND_STEP = 1;

/** What the pipeline needs from the server around it. */
export interface PipelineDeps {
  readonly cfg: MonitorServerConfig;
  readonly clock: Clock;
  readonly sessions: SessionTable;
  readonly detector: FailureDetector;
  readonly ingest: IngestQueue;
  readonly simLoad: SimLoadStore;
  readonly contain: ContainContext;
  /** Count a refusal and log it at a bounded rate. */
  refuse(reason: RefusalReason, key: string, now: number, fields: Record<string, unknown>, msg: string): void;
  /** Store a liveness transition. */
  persist(t: Transition | undefined): void;
  /** End a session and its stream; `disconnected`: its instance loses its stream. */
  endSession(s: Session, status: CallStatus, disconnected: boolean): void;
}

/**
 * The heartbeat path: rate limit → validation → liveness → dedup → bounded queue → batched write
 * → acks. Backpressure instead of loss: when the queue is full every stream is paused (HTTP/2
 * flow control stops the senders) until a write drains it. The accepted-seq map only holds seqs
 * that are queued, and a queued row leaves the queue only by being stored, so a heartbeat refused
 * for any reason (rate, size, full queue) is accepted when the agent replays it.
 */
export class HeartbeatPipeline {
  /** Highest seq accepted per instance (queued or stored), to drop replays cheaply. */
  readonly acceptedSeq = new Map<string, number>();
  private readonly limiter: RateLimiter;
  private flushScheduled = false;
  /** True while streams are paused because the queue is full. */
  paused = false;
  /** How often streams were paused. */
  pauses = 0;
  /** Heartbeat messages read from streams, and acks handed to them, since start (/metrics). */
  received = 0;
  acks = 0;
  /**
   * Sessions acked at the next successful write whatever their pacing (see noteHandled): a flush
   * looks at these, the streams whose interval has passed, and the groups whose view changed,
   * never at every session.
   */
  private readonly urgent = new Set<Session>();
  /** Every ack in the order it went out: the interval is the same for all, so this is also the order in which streams fall due. */
  private readonly acked = new AckOrder();
  /** The view each group's streams are being told of; a new object when it changes, so a stream's `lastView` is compared by identity. */
  private readonly views = new Map<string, GroupView>();

  constructor(private readonly d: PipelineDeps) {
    this.limiter = new RateLimiter(d.cfg.maxHeartbeatsPerSec, d.cfg.heartbeatBurst);
  }

  /** A new stream: paused at once if ingest is. */
  attach(call: HeartbeatCall): void {
    if (this.paused) call.pause();
  }

  /** Drop buckets that have refilled (from the sweep). */
  prune(now: number): void {
    this.limiter.prune(now);
  }

  /** One heartbeat read from `session`'s stream; `bytes`: its serialized size, for the per-message limit. */
  onHeartbeat(session: Session, hb: Heartbeat__Output, bytes: number): void {
    this.received++;
    const { cfg, ingest } = this.d;
    if (session.call === undefined) return; // ended by the server; late messages are ignored
    const now = this.d.clock.now();
    const id = session.instanceId;
    if (!this.limiter.take(id, now)) {
      this.d.refuse('rateLimited', id, now, { instanceId: id }, 'heartbeat rate limit exceeded; ending stream');
      this.d.endSession(session, { code: grpc.status.RESOURCE_EXHAUSTED, details: `more than ${cfg.maxHeartbeatsPerSec} heartbeats/s (burst ${cfg.heartbeatBurst}); reconnect and replay` }, true);
      return;
    }
    const accepted = this.acceptedSeq.get(id) ?? 0;
    const v = checkHeartbeat(hb, { now, acceptedSeq: accepted, maxSeqAhead: cfg.maxSeqAhead, bytes, maxBytes: cfg.maxHeartbeatBytes });
    if (!v.ok) {
      // Refused for its content: acked as refused (resending would not make it valid). Refused
      // for its seq: not covered by the ack at all. Neither is a sign of life.
      if (v.seq !== undefined) session.receivedSeq = Math.max(session.receivedSeq, v.seq);
      session.rejected++;
      session.rejectReason = v.problem;
      this.d.refuse(v.reason, id, now, { instanceId: id, reason: v.reason, problem: v.problem }, 'heartbeat refused');
      this.noteHandled(session);
      this.scheduleFlush();
      return;
    }
    // Only a valid heartbeat is a sign of life.
    this.d.persist(this.d.detector.heartbeat(id, now));
    if (v.seq <= accepted) {
      session.receivedSeq = Math.max(session.receivedSeq, v.seq);
      this.noteHandled(session);
      this.scheduleFlush(); // a replay of something stored or queued: ack it again after the write
      return;
    }
    if (!ingest.push({ instanceId: id, seq: v.seq, sampleAt: v.sampleAt, receivedAt: now, cpu: hb.cpu_percent, mem: hb.mem_percent })) {
      // Streams are paused when the queue fills, so this is a message already in flight. Not
      // accepted, not acked: the agent replays it after reconnecting.
      this.d.refuse('queueFull', id, now, { instanceId: id, queued: ingest.length }, 'ingest queue full; ending stream');
      this.d.endSession(session, { code: grpc.status.RESOURCE_EXHAUSTED, details: 'ingest queue full; reconnect and replay' }, true);
      this.scheduleFlush();
      return;
    }
    this.acceptedSeq.set(id, v.seq);
    session.receivedSeq = Math.max(session.receivedSeq, v.seq);
    this.noteHandled(session);
    if (ingest.isFull) this.pauseIngest();
    if (ingest.flushDue) this.scheduleFlush();
  }

  scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(containListener(this.d.contain, 'flush', () => this.flush()));
  }

  /**
   * A stream handled a heartbeat (stored, a duplicate, or refused for its content). It is acked at
   * the next write, not at its paced time, when it has refused heartbeats to report, when its
   * group view changed since its last ack, on its first ack, when its interval passed while it
   * had nothing to ack, or when ACK_BACKLOG heartbeats wait (a replay after a reconnect).
   */
  private noteHandled(s: Session): void {
    if (s.lastAckAt === undefined || s.ackDue === true || s.rejected > 0 || s.receivedSeq - s.ackedSeq >= ACK_BACKLOG
      || (s.lastView !== undefined && s.lastView !== this.views.get(s.groupId))) this.urgent.add(s);
  }

  /**
   * Write the queue, then ack the streams that are due. Every heartbeat reaches `latest` with the
   * write (what the controller reads); acks are paced per stream (MONITOR_ACK_INTERVAL_MS), since
   * an ack is cumulative and the agent keeps what is not acked yet. The work is in proportion to
   * the acks sent, not to the sessions: urgent streams (noteHandled), the streams whose interval
   * has passed (the front of `acked`), and the streams of a group whose view changed.
   */
  flush(): void {
    this.flushScheduled = false;
    const now = this.d.clock.now();
    // The write is synchronous: once it commits, everything each stream has handled is stored, a
    // duplicate of something stored, or refused, so it can be acked.
    const result = this.d.ingest.flush(now);
    if (result === undefined) return; // rows stay queued (streams stay paused if it is full); urgent streams stay urgent
    this.resumeIngest();
    const due = new Set<Session>(this.urgent);
    this.urgent.clear();
    this.acked.takeDue(now, this.d.cfg.ackIntervalMs, (s) => {
      if (this.pending(s)) due.add(s);
      else s.ackDue = true; // nothing to ack now: acked with the next heartbeat it handles
    });
    for (const groupId of this.d.sessions.groups()) {
      const view = this.groupView(groupId, now);
      const told = this.views.get(groupId);
      if (told !== undefined && told.live === view.live && Math.abs(told.demand - view.demand) < DEMAND_STEP) continue;
      this.views.set(groupId, view);
      if (told !== undefined) for (const s of this.d.sessions.inGroup(groupId)) due.add(s); // a stream with nothing to ack hears it with its next one (noteHandled)
    }
    for (const g of this.views.keys()) if (this.d.sessions.inGroup(g).size === 0) this.views.delete(g); // a group with no streams left
    for (const s of due) if (this.pending(s)) this.ack(s, now);
  }

  /** A live stream with something handled and not acked. */
  private pending(s: Session): boolean {
    return s.acks !== undefined && this.d.sessions.has(s) && (s.receivedSeq > s.ackedSeq || s.rejected > 0);
  }

  private ack(s: Session, now: number): void {
    const acks = s.acks;
    if (acks === undefined) return;
    const view = this.views.get(s.groupId) ?? this.groupView(s.groupId, now);
    const changed = s.lastView !== view;
    acks.send({
      persisted_seq: s.receivedSeq, rejected: s.rejected, reject_reason: s.rejectReason,
      ...(changed ? { group: { live_instances: view.live, demand_percent: view.demand, as_of_ms: now } } : {}),
    });
    this.acks++;
    s.lastView = view;
    s.lastAckAt = now;
    s.ackedSeq = s.receivedSeq;
    s.rejected = 0;
    s.rejectReason = '';
    s.ackDue = false;
    this.acked.push(s, now);
  }

  /** Stop reading every stream until a write drains the queue. */
  private pauseIngest(): void {
    if (this.paused) return;
    this.paused = true;
    this.pauses++;
    for (const s of this.d.sessions.values()) s.call?.pause();
    this.d.contain.log.warn('ingest-paused', this.d.clock.now(), { queued: this.d.ingest.length }, 'ingest queue full; pausing heartbeat streams');
    this.scheduleFlush();
  }

  private resumeIngest(): void {
    if (!this.paused) return;
    this.paused = false;
    for (const s of this.d.sessions.values()) s.call?.resume();
  }

  private groupView(groupId: string, now: number): GroupView {
    const load = this.d.simLoad.get(groupId);
    return { live: this.d.detector.liveCount(groupId), demand: load === undefined ? -1 : demandAt(load.profile, now - load.startedAt) };
  }
}

/**
 * Acks in the order they went out, each with its time: a FIFO, since every stream has the same
 * interval, so the front holds the streams that fall due first. A stream acked again has a newer
 * entry further back; its older one is skipped when it reaches the front.
 */
class AckOrder {
  private sessions: Session[] = [];
  private at: number[] = [];
  private head = 0;

  push(s: Session, at: number): void {
    this.sessions.push(s);
    this.at.push(at);
  }

  /**
   * Hand `fn` each stream whose last ack is at least `intervalMs` old at `now` (or in the future:
   * the clock went back), front first, and drop its entry. Only entries present at the call are
   * looked at, so acks sent by `fn`'s caller afterwards wait their interval.
   */
  takeDue(now: number, intervalMs: number, fn: (s: Session) => void): void {
    const end = this.sessions.length;
    while (this.head < end) {
      const at = this.at[this.head] as number;
      if (now - at < intervalMs && at <= now) break;
      const s = this.sessions[this.head] as Session;
      this.head++;
      if (s.lastAckAt === at) fn(s); // else acked again since: a newer entry stands for it
    }
    if (this.head > 1_024 && this.head * 2 > this.sessions.length) {
      this.sessions = this.sessions.slice(this.head);
      this.at = this.at.slice(this.head);
      this.head = 0;
    }
  }
}
