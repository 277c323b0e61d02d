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
import type { HeartbeatCall, Session, SessionTable } from './sessions.js';

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
  /** Sessions with something handled but not yet acked: what a flush looks at (not every session). */
  private readonly unacked = new Set<Session>();

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
    this.unacked.add(session);
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
      this.scheduleFlush();
      return;
    }
    // Only a valid heartbeat is a sign of life.
    this.d.persist(this.d.detector.heartbeat(id, now));
    if (v.seq <= accepted) {
      session.receivedSeq = Math.max(session.receivedSeq, v.seq);
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
    if (ingest.isFull) this.pauseIngest();
    if (ingest.flushDue) this.scheduleFlush();
  }

  scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(containListener(this.d.contain, 'flush', () => this.flush()));
  }

  /**
   * Write the queue, then ack the sessions that are due. Every heartbeat reaches `latest` with the
   * write (what the controller reads); acks are paced per stream (MONITOR_ACK_INTERVAL_MS), since
   * an ack is cumulative and the agent keeps what is not acked yet. A stream is acked at once
   * when it has refused heartbeats to report, when its group view changed (live instances,
   * demand), on its first ack, or when ACK_BACKLOG heartbeats wait (a replay after a reconnect).
   */
  flush(): void {
    this.flushScheduled = false;
    const now = this.d.clock.now();
    // Snapshot what each stream has handled so far: after a successful write all of it is
    // stored, a duplicate of something stored, or refused, so it can be acked.
    const snapshot = new Map<Session, number>();
    for (const s of this.unacked) {
      if (s.acks === undefined || !this.d.sessions.has(s)) this.unacked.delete(s);
      else if (s.receivedSeq > s.ackedSeq || s.rejected > 0) snapshot.set(s, s.receivedSeq);
      else this.unacked.delete(s);
    }
    const result = this.d.ingest.flush(now);
    if (result === undefined) return; // rows stay queued (streams stay paused if it is full)
    this.resumeIngest();
    if (snapshot.size === 0) return;
    const views = new Map<string, { live: number; demand: number }>();
    const interval = this.d.cfg.ackIntervalMs;
    for (const [s, seq] of snapshot) {
      if (s.acks === undefined) continue;
      let view = views.get(s.groupId);
      if (view === undefined) {
        view = this.groupView(s.groupId, now);
        views.set(s.groupId, view);
      }
      const changed = s.lastView === undefined || s.lastView.live !== view.live || Math.abs(s.lastView.demand - view.demand) >= DEMAND_STEP;
      const due = s.lastAckAt === undefined || now - s.lastAckAt >= interval || now < s.lastAckAt || s.rejected > 0 || changed || seq - s.ackedSeq >= ACK_BACKLOG;
      if (!due) continue;
      s.acks.send({
        persisted_seq: seq, rejected: s.rejected, reject_reason: s.rejectReason,
        ...(changed ? { group: { live_instances: view.live, demand_percent: view.demand, as_of_ms: now } } : {}),
      });
      this.acks++;
      if (changed) s.lastView = view;
      s.lastAckAt = now;
      s.ackedSeq = seq;
      s.rejected = 0;
      s.rejectReason = '';
      // Handled since the snapshot (during the write) waits for the next flush.
      if (s.receivedSeq <= seq) this.unacked.delete(s);
    }
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

  private groupView(groupId: string, now: number): { live: number; demand: number } {
    const load = this.d.simLoad.get(groupId);
    return { live: this.d.detector.liveCount(groupId), demand: load === undefined ? -1 : demandAt(load.profile, now - load.startedAt) };
  }
}
