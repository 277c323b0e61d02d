import * as grpc from '@grpc/grpc-js';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { MonitorServerConfig } from '../config/monitor-server.js';
import { ID_PATTERN } from '../config/shared.js';
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import {
  SESSION_METADATA_KEY,
  monitorProto,
  type Heartbeat__Output,
  type HeartbeatAck,
  type MonitorHandlers,
} from '../lib/proto.js';
import { version } from '../lib/version.js';
import { demandAt } from '../sim/profile.js';
import { ComponentStore } from '../store/components.js';
import type { Db } from '../store/db.js';
import { InstanceStore } from '../store/instances.js';
import { SimLoadStore } from '../store/simload.js';
import { TelemetryStore } from '../store/telemetry.js';
import { startHttp, type HttpHandle } from './http.js';
import { IngestQueue } from './ingest.js';
import { FailureDetector, type Transition } from './liveness.js';

/** Samples stamped further than this from server time are refused (clock far off, or garbage). */
export const MAX_CLOCK_SKEW_MS = 5 * 60_000;
/** How often the monitor server writes its own heartbeat to the store. */
export const COMPONENT_BEAT_MS = 1_000;
/** Old raw samples are pruned every PRUNE_EVERY_MS in chunks, within a time budget per run. */
export const PRUNE_EVERY_MS = 5_000;
export const PRUNE_CHUNK = 5_000;
export const PRUNE_BUDGET_MS = 50;

type HeartbeatCall = grpc.ServerDuplexStream<Heartbeat__Output, HeartbeatAck>;

interface Session {
  readonly id: string;
  readonly instanceId: string;
  readonly groupId: string;
  call: HeartbeatCall | undefined;
  /** Highest seq handled (queued, duplicate or refused) since the last ack. */
  receivedSeq: number;
  ackedSeq: number;
  rejected: number;
  rejectReason: string;
}

export interface MonitorServerHandle {
  readonly grpcPort: number;
  readonly httpPort: number;
  /** Flush, close streams, stop listening. */
  close(): Promise<void>;
}

/**
 * MonitorS: accepts agent registrations and heartbeat streams, writes samples in batches, runs the
 * failure detector and persists its transitions. It never calls agents or the controller.
 */
export class MonitorServer {
  private readonly log: Logger;
  private readonly instances: InstanceStore;
  private readonly components: ComponentStore;
  private readonly simLoad: SimLoadStore;
  private readonly telemetry: TelemetryStore;
  private readonly ingest: IngestQueue;
  private readonly detector: FailureDetector;
  private readonly sessions = new Map<string, Session>();
  private readonly sessionByInstance = new Map<string, string>();
  /** Highest seq accepted per instance (queued or stored), to drop replays cheaply. */
  private readonly acceptedSeq = new Map<string, number>();
  private readonly timers: NodeJS.Timeout[] = [];
  private flushScheduled = false;
  private readonly startedAt: number;
  private grpcServer: grpc.Server | undefined;
  private http: HttpHandle | undefined;
  private info: Record<string, unknown> = {};

  constructor(
    private readonly cfg: MonitorServerConfig,
    private readonly db: Db,
    private readonly clock: Clock,
    rootLog: Logger,
  ) {
    this.log = rootLog.child({ component: 'monitor' });
    this.instances = new InstanceStore(db);
    this.components = new ComponentStore(db);
    this.simLoad = new SimLoadStore(db);
    this.telemetry = new TelemetryStore(db);
    this.ingest = new IngestQueue(this.telemetry, rootLog.child({ component: 'ingest' }), { flushMaxRows: cfg.flushMaxRows });
    this.detector = new FailureDetector(cfg);
    this.startedAt = clock.now();
  }

  async start(): Promise<MonitorServerHandle> {
    this.seedDetector();
    const server = new grpc.Server({
      'grpc.max_receive_message_length': this.cfg.maxMessageBytes,
      'grpc.max_send_message_length': this.cfg.maxMessageBytes,
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
      'grpc.http2.min_ping_interval_without_data_ms': 5_000,
      'grpc.keepalive_permit_without_calls': 1,
    });
    server.addService(monitorProto().monitor.v1.Monitor.service, this.handlers());
    const grpcPort = await new Promise<number>((resolve, reject) => {
      server.bindAsync(`${this.cfg.grpcHost}:${this.cfg.grpcPort}`, grpc.ServerCredentials.createInsecure(), (err, port) =>
        err ? reject(new Error(`cannot listen for gRPC on ${this.cfg.grpcHost}:${this.cfg.grpcPort}: ${err.message}`, { cause: err })) : resolve(port));
    });
    this.grpcServer = server;
    try {
      this.http = await startHttp({ host: this.cfg.httpHost, port: this.cfg.httpPort, db: this.db, clock: this.clock, health: () => this.health(), log: this.log.child({ component: 'http' }) });
    } catch (err) {
      server.forceShutdown();
      throw err;
    }
    const grpcAddress = `${this.cfg.grpcHost}:${grpcPort}`;
    const httpAddress = `${this.cfg.httpHost}:${this.http.port}`;
    this.info = { grpcAddress, httpAddress, version: version() };
    this.beat();

    const sweepEvery = Math.max(10, Math.min(250, Math.floor(this.cfg.heartbeatIntervalMs / 4)));
    this.timers.push(setInterval(() => this.flush(), this.cfg.flushIntervalMs));
    this.timers.push(setInterval(() => this.sweep(), sweepEvery));
    this.timers.push(setInterval(() => this.beat(), COMPONENT_BEAT_MS));
    this.timers.push(setInterval(() => this.prune(), PRUNE_EVERY_MS));
    for (const t of this.timers) t.unref();
    this.log.info({ grpcAddress, httpAddress, heartbeatIntervalMs: this.cfg.heartbeatIntervalMs, suspectAfterMs: this.cfg.suspectAfterMs, deadAfterMs: this.cfg.deadAfterMs }, 'monitor server listening');
    return { grpcPort, httpPort: this.http.port, close: () => this.close() };
  }

  /**
   * Watch every instance the store says is live. They have no stream yet (suspect at the first
   * sweep), and silence counts only after the startup grace: agents need time to reconnect.
   */
  private seedDetector(): void {
    const now = this.clock.now();
    for (const i of this.instances.listWatched()) {
      const state = i.state as 'running' | 'suspect' | 'dead';
      const seen = state === 'dead' ? (i.lastSeenAt ?? now) : Math.max(i.lastSeenAt ?? 0, now + this.cfg.startupGraceMs);
      this.detector.watch(i.id, i.groupId, seen, state, false);
      if (i.seq > 0) this.acceptedSeq.set(i.id, i.seq);
    }
  }

  private handlers(): MonitorHandlers {
    return {
      Register: (call, callback) => {
        const r = call.request;
        const problems: string[] = [];
        if (!ID_PATTERN.test(r.instance_id)) problems.push('instance_id must be 1-63 letters, digits, ".", "_" or "-"');
        if (!ID_PATTERN.test(r.group_id)) problems.push('group_id must be 1-63 letters, digits, ".", "_" or "-"');
        if (r.address.length > 255) problems.push('address must be at most 255 characters');
        if (r.agent_version.length > 64) problems.push('agent_version must be at most 64 characters');
        if (problems.length > 0) {
          callback({ code: grpc.status.INVALID_ARGUMENT, details: problems.join('; ') });
          return;
        }
        // Make the stored sequence current before telling the agent where to resume.
        this.flush();
        const now = this.clock.now();
        let outcome;
        try {
          outcome = this.instances.register({ id: r.instance_id, groupId: r.group_id, address: r.address, agentVersion: r.agent_version }, now);
        } catch (err) {
          this.log.error({ err, instanceId: r.instance_id }, 'register failed');
          callback({ code: grpc.status.UNAVAILABLE, details: 'store unavailable; retry' });
          return;
        }
        if (!outcome.ok) {
          const code = outcome.code === 'UnknownGroup' ? grpc.status.NOT_FOUND : grpc.status.FAILED_PRECONDITION;
          this.log.warn({ instanceId: r.instance_id, groupId: r.group_id, code: outcome.code }, 'registration refused');
          callback({ code, details: outcome.message });
          return;
        }
        const previous = this.sessionByInstance.get(r.instance_id);
        if (previous !== undefined) this.endSession(previous, { code: grpc.status.ABORTED, details: 'superseded by a newer registration' });
        const session: Session = {
          id: randomUUID(), instanceId: r.instance_id, groupId: r.group_id, call: undefined,
          receivedSeq: outcome.lastSeq, ackedSeq: outcome.lastSeq, rejected: 0, rejectReason: '',
        };
        this.sessions.set(session.id, session);
        this.sessionByInstance.set(r.instance_id, session.id);
        this.acceptedSeq.set(r.instance_id, Math.max(this.acceptedSeq.get(r.instance_id) ?? 0, outcome.lastSeq));
        this.detector.watch(r.instance_id, r.group_id, now, 'running', true);
        this.log.info({ instanceId: r.instance_id, groupId: r.group_id, address: r.address, agentVersion: r.agent_version, known: outcome.known, lastSeq: outcome.lastSeq }, 'agent registered');
        callback(null, { session_id: session.id, heartbeat_interval_ms: this.cfg.heartbeatIntervalMs, last_seq: outcome.lastSeq });
      },

      Heartbeats: (call) => {
        const sessionId = String(call.metadata.get(SESSION_METADATA_KEY)[0] ?? '');
        const session = this.sessions.get(sessionId);
        if (session === undefined) {
          call.emit('error', { code: grpc.status.FAILED_PRECONDITION, details: 'unknown session; register again' });
          return;
        }
        if (session.call !== undefined) {
          call.emit('error', { code: grpc.status.ALREADY_EXISTS, details: 'this session already has a heartbeat stream' });
          return;
        }
        session.call = call;
        call.on('data', (hb: Heartbeat__Output) => this.onHeartbeat(session, hb));
        call.on('end', () => call.end());
        const closed = () => {
          if (session.call !== call) return;
          session.call = undefined;
          if (this.sessions.get(session.id) === session) {
            this.sessions.delete(session.id);
            if (this.sessionByInstance.get(session.instanceId) === session.id) {
              this.sessionByInstance.delete(session.instanceId);
              this.persist(this.detector.disconnected(session.instanceId));
            }
          }
        };
        call.on('cancelled', closed);
        call.on('close', closed);
        call.on('error', closed);
      },

      Deregister: (call, callback) => {
        const r = call.request;
        const session = this.sessions.get(r.session_id);
        if (session === undefined || session.instanceId !== r.instance_id) {
          callback({ code: grpc.status.NOT_FOUND, details: 'no such session for this instance' });
          return;
        }
        this.flush();
        const reason = `deregistered${r.reason ? `: ${r.reason.slice(0, 200)}` : ''}`;
        try {
          this.instances.setLiveness(session.instanceId, 'dead', reason, this.clock.now());
        } catch (err) {
          this.log.error({ err, instanceId: session.instanceId }, 'deregister failed');
          callback({ code: grpc.status.UNAVAILABLE, details: 'store unavailable; retry' });
          return;
        }
        this.sessions.delete(session.id);
        this.sessionByInstance.delete(session.instanceId);
        this.detector.forget(session.instanceId);
        this.log.info({ instanceId: session.instanceId, groupId: session.groupId, reason: r.reason }, 'agent deregistered');
        callback(null, {});
        session.call?.end();
      },
    };
  }

  private onHeartbeat(session: Session, hb: Heartbeat__Output): void {
    const now = this.clock.now();
    this.persist(this.detector.heartbeat(session.instanceId, now));
    const seq = Number(hb.seq);
    const sampleAt = Number(hb.sample_time_ms);
    const problem = !Number.isSafeInteger(seq) || seq < 1 ? `seq must be a positive integer (got ${hb.seq})`
      : !(hb.cpu_percent >= 0 && hb.cpu_percent <= 100) ? `cpu_percent must be within 0..100 (got ${hb.cpu_percent})`
      : !(hb.mem_percent >= 0 && hb.mem_percent <= 100) ? `mem_percent must be within 0..100 (got ${hb.mem_percent})`
      : !(Math.abs(sampleAt - now) <= MAX_CLOCK_SKEW_MS) ? `sample_time_ms is more than ${MAX_CLOCK_SKEW_MS / 1000}s from server time`
      : undefined;
    if (Number.isSafeInteger(seq)) session.receivedSeq = Math.max(session.receivedSeq, seq);
    if (problem !== undefined) {
      session.rejected++;
      session.rejectReason = problem;
      this.log.warn({ instanceId: session.instanceId, seq: hb.seq, problem }, 'heartbeat refused');
      this.scheduleFlush();
      return;
    }
    if (seq <= (this.acceptedSeq.get(session.instanceId) ?? 0)) {
      this.scheduleFlush(); // a replay of something stored: ack it again
      return;
    }
    this.acceptedSeq.set(session.instanceId, seq);
    const full = this.ingest.push({ instanceId: session.instanceId, seq, sampleAt, receivedAt: now, cpu: hb.cpu_percent, mem: hb.mem_percent });
    if (full) this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => this.flush());
  }

  /** Write the queue, then ack every session whose heartbeats are now all handled. */
  private flush(): void {
    this.flushScheduled = false;
    const now = this.clock.now();
    // Snapshot what each stream has sent so far: after a successful write all of it is stored,
    // a duplicate, or refused, so it can be acked.
    const snapshot = new Map<Session, number>();
    for (const s of this.sessions.values()) if (s.receivedSeq > s.ackedSeq || s.rejected > 0) snapshot.set(s, s.receivedSeq);
    const result = this.ingest.flush(now);
    const dropped = this.ingest.takeDropped();
    if (dropped > 0) {
      // Unacked rows were dropped server-side: make every agent reconnect and replay its buffer.
      this.log.error({ dropped }, 'ingest queue overflowed; asking agents to replay');
      for (const id of [...this.sessions.keys()]) this.endSession(id, { code: grpc.status.UNAVAILABLE, details: 'server overloaded; reconnect and replay' });
      return;
    }
    if (result === undefined || snapshot.size === 0) return;
    const views = new Map<string, HeartbeatAck['group']>();
    for (const [s, seq] of snapshot) {
      if (s.call === undefined) continue;
      let view = views.get(s.groupId);
      if (view === undefined) {
        view = this.groupView(s.groupId, now);
        views.set(s.groupId, view);
      }
      s.call.write({ persisted_seq: seq, rejected: s.rejected, reject_reason: s.rejectReason, group: view });
      s.ackedSeq = seq;
      s.rejected = 0;
      s.rejectReason = '';
    }
  }

  private groupView(groupId: string, now: number): HeartbeatAck['group'] {
    const load = this.simLoad.get(groupId);
    return {
      live_instances: this.detector.liveCount(groupId),
      demand_percent: load === undefined ? -1 : demandAt(load.profile, now - load.startedAt),
      as_of_ms: now,
    };
  }

  private sweep(): void {
    for (const t of this.detector.sweep(this.clock.now())) this.persist(t);
  }

  /** Store a liveness transition; if the controller has already taken the instance, stop watching it. */
  private persist(t: Transition | undefined): void {
    if (t === undefined) return;
    try {
      const applied = this.instances.setLiveness(t.instanceId, t.to, t.reason, this.clock.now());
      if (!applied) {
        this.detector.forget(t.instanceId);
        return;
      }
    } catch (err) {
      this.log.error({ err, instanceId: t.instanceId }, 'cannot store liveness transition');
      return;
    }
    const level = t.to === 'running' ? 'info' : 'warn';
    this.log[level]({ instanceId: t.instanceId, groupId: t.groupId, from: t.from, to: t.to, reason: t.reason }, 'liveness changed');
  }

  private beat(): void {
    try {
      this.components.beat({ name: 'monitor-server', pid: process.pid, startedAt: this.startedAt, info: { ...this.info, streams: this.sessions.size } }, this.clock.now());
    } catch (err) {
      this.log.warn({ err }, 'cannot write component heartbeat');
    }
  }

  private prune(): void {
    try {
      const before = this.clock.now() - this.cfg.sampleRetentionMs;
      const started = performance.now();
      let removed = 0;
      for (;;) {
        const n = this.telemetry.prune(before, PRUNE_CHUNK);
        removed += n;
        if (n < PRUNE_CHUNK || performance.now() - started > PRUNE_BUDGET_MS) break;
      }
      if (removed > 0) this.log.debug({ removed }, 'pruned old samples');
    } catch (err) {
      this.log.warn({ err }, 'sample pruning failed');
    }
  }

  private health(): { ok: boolean; details: Record<string, unknown> } {
    const e = this.ingest.lastError;
    return {
      ok: e === undefined,
      details: { streams: this.sessions.size, queued: this.ingest.length, lastFlushAt: this.ingest.lastFlushAt, storedRows: this.ingest.totalRows, ...(e ? { error: e.message } : {}) },
    };
  }

  private endSession(sessionId: string, status: { code: grpc.status; details: string }): void {
    const s = this.sessions.get(sessionId);
    if (s === undefined) return;
    this.sessions.delete(sessionId);
    if (this.sessionByInstance.get(s.instanceId) === sessionId) this.sessionByInstance.delete(s.instanceId);
    const call = s.call;
    s.call = undefined;
    call?.emit('error', status);
  }

  private async close(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.timers.length = 0;
    this.flush();
    for (const id of [...this.sessions.keys()]) this.endSession(id, { code: grpc.status.UNAVAILABLE, details: 'monitor server shutting down' });
    await this.http?.close();
    const server = this.grpcServer;
    if (server !== undefined) {
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => { server.forceShutdown(); resolve(); }, 2_000);
        server.tryShutdown(() => { clearTimeout(force); resolve(); });
      });
    }
    try {
      this.components.remove('monitor-server', process.pid);
    } catch (err) {
      this.log.warn({ err }, 'cannot clear component row');
    }
    this.log.info({ storedRows: this.ingest.totalRows }, 'monitor server stopped');
  }
}
