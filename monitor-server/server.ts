import * as grpc from '@grpc/grpc-js';
import { randomUUID, type X509Certificate } from 'node:crypto';
import type { MonitorServerConfig } from '../config/monitor-server.js';
import { ID_PATTERN } from '../config/shared.js';
import { readAllocatorInfo } from '../lib/allocator.js';
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import { GrpcServer, type DuplexHandler, type ServerRefusal, type UnaryHandler } from '../lib/grpc-server.js';
import { SESSION_METADATA_KEY, monitorProto, type Heartbeat__Output, type HeartbeatAck } from '../lib/proto.js';
import { loadCertificates } from '../lib/tls.js';
import { version } from '../lib/version.js';
import { ComponentStore } from '../store/components.js';
import type { Db } from '../store/db.js';
import { InstanceStore, type LivenessState } from '../store/instances.js';
import { IdentityBindingStore, SecretStore, nonceDigest, secretsEqual } from '../store/secrets.js';
import { SimLoadStore } from '../store/simload.js';
import { StatusReader } from '../store/status.js';
import { TelemetryStore } from '../store/telemetry.js';
import { AckSender } from './acks.js';
import { containListener, containUnary, type ContainContext } from './contain.js';
import { HeartbeatPipeline, type CallStatus } from './heartbeats.js';
import { mountApi, type MountedApi } from './api-mount.js';
import { startHttp, type HttpHandle } from './http.js';
import {
  Authenticator, authorize, readProofs, sessionIdentity, verifyIdentityDocument, type AuthenticatedCall, type Caller, type IdentityDocumentProof,
} from './identity.js';
import { IngestQueue } from './ingest.js';
import { FailureDetector, type Transition } from './liveness.js';
import { MonitorMetrics } from './metrics.js';
import { ThrottledLog, newRefusalCounts, type RefusalCounts, type RefusalReason } from './refusals.js';
import { SessionTable, type HeartbeatCall, type Session } from './sessions.js';
import { StatusCache } from './status-cache.js';
import { MONITOR_GRPC_LIMITS } from './grpc-limits.js';
import { ServerTls, type ServerTlsSummary } from './tls.js';
import type { DeregisterRequest__Output } from '../proto/gen/monitor/v1/DeregisterRequest.js';
import type { DeregisterResponse } from '../proto/gen/monitor/v1/DeregisterResponse.js';
import type { RegisterRequest__Output } from '../proto/gen/monitor/v1/RegisterRequest.js';
import type { RegisterResponse } from '../proto/gen/monitor/v1/RegisterResponse.js';

export { MAX_CLOCK_SKEW_MS, MAX_SEQ } from './heartbeat-validation.js';

/** The Monitor service's handlers, as lib/grpc-server.ts calls them. */
type MonitorHandlers = {
  readonly Register: UnaryHandler<RegisterRequest__Output, RegisterResponse>;
  readonly Heartbeats: DuplexHandler<Heartbeat__Output, HeartbeatAck>;
  readonly Deregister: UnaryHandler<DeregisterRequest__Output, DeregisterResponse>;
};

/** How the gRPC listener's own refusals are counted (refusals.ts). */
const TRANSPORT_REFUSALS: Record<ServerRefusal, RefusalReason> = {
  tls: 'tlsHandshake', protocol: 'grpcProtocol', unimplemented: 'grpcProtocol', badMessage: 'grpcProtocol', deadline: 'grpcProtocol',
  tooLarge: 'messageTooLarge', keepalive: 'connectionClosed', idle: 'connectionClosed',
};
/** How often the monitor server writes its own heartbeat to the store. */
export const COMPONENT_BEAT_MS = 1_000;
/** Old raw samples and rollups are pruned every PRUNE_EVERY_MS in chunks, within a time budget per run (TelemetryStore.pruneExpired). */
export const PRUNE_EVERY_MS = 5_000;
export const PRUNE_CHUNK = 5_000;
export const PRUNE_BUDGET_MS = 50;
/** Throttled warn lines, all keys together, per refused-log interval. */
const MAX_REFUSED_LINES_PER_INTERVAL = 100;
/** Keys (instances, reasons) the throttled log tracks at once. */
const MAX_REFUSED_LOG_KEYS = 10_000;

/** Counters and gauges of what the server refused and how it pushed back; /healthz and /api/status show them. */
export interface MonitorStats {
  /** Refused input by reason since start. */
  readonly refused: Readonly<RefusalCounts>;
  /** Registered sessions, and those with an open Heartbeats stream. */
  readonly sessions: number;
  readonly streams: number;
  /** Sessions that never opened a stream and expired. */
  readonly sessionsExpired: number;
  /** Rows waiting to be written, and the queue's capacity. */
  readonly queued: number;
  readonly queueCapacity: number;
  /** True while streams are paused because the queue is full; how often that happened. */
  readonly ingestPaused: boolean;
  readonly ingestPauses: number;
  /** Acks merged into a pending one because a client read too slowly. */
  readonly acksCoalesced: number;
  /** Largest number of acks waiting for 'drain' on one stream (0 or 1). */
  readonly maxPendingAcks: number;
  /** Largest number of ack messages buffered for one stream (stream buffer plus pending). */
  readonly maxAckBacklog: number;
  /** Warn lines held back by the rate limit on logs. */
  readonly logSuppressed: number;
  /** Failure-detector sweeps run. */
  readonly sweeps: number;
  /** Status reports read from the store. */
  readonly statusBuilds: number;
  /** Rows stored since start. */
  readonly storedRows: number;
}

export interface MonitorServerHandle {
  readonly grpcPort: number;
  readonly httpPort: number;
  stats(): MonitorStats;
  /**
   * Re-read MONITOR_TLS_CERT, MONITOR_TLS_KEY and MONITOR_TLS_CLIENT_CA (SIGHUP): new connections
   * use the new files, open streams keep theirs, nothing is rebound. Rejects with a ConfigError
   * naming the bad key (the previous files stay in use); resolves at once without TLS.
   */
  reloadTls(): Promise<void>;
  /** Flush, close streams, stop listening. */
  close(): Promise<void>;
}

/**
 * MonitorS: accepts agent registrations and heartbeat streams, writes samples in batches, runs the
 * failure detector and persists its transitions. It never calls agents or the controller.
 * Files by job: sessions.ts (who is registered), heartbeats.ts (the ingest path and acks),
 * heartbeat-validation.ts, ingest.ts (bounded queue, batched writes), acks.ts (write
 * backpressure), refusals.ts (counters, rate-limited logs), contain.ts (last-resort handlers),
 * status-cache.ts and http.ts (operator reads that never block ingest).
 */
export class MonitorServer {
  private readonly log: Logger;
  private readonly instances: InstanceStore;
  private readonly components: ComponentStore;
  private readonly simLoad: SimLoadStore;
  private readonly telemetry: TelemetryStore;
  private readonly ingest: IngestQueue;
  private readonly detector: FailureDetector;
  private readonly sessions = new SessionTable();
  private readonly pipeline: HeartbeatPipeline;
  private readonly refused = newRefusalCounts();
  private readonly refusedLog: ThrottledLog;
  private readonly contain: ContainContext;
  private readonly status: StatusCache;
  private readonly metrics: MonitorMetrics;
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly counters = { sessionsExpired: 0, acksCoalesced: 0, sweeps: 0 };
  private readonly startedAt: number;
  private readonly auth: Authenticator;
  private readonly secrets: SecretStore;
  private readonly bindings: IdentityBindingStore;
  /** AWS certificates for identity documents (MONITOR_EC2_IDENTITY_CERTS), read at start. */
  private iidCerts: readonly X509Certificate[] = [];
  private tls: ServerTls | undefined;
  private grpcServer: GrpcServer | undefined;
  private http: HttpHandle | undefined;
  private api: MountedApi | undefined;
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
    this.metrics = this.newMetrics();
    this.ingest = new IngestQueue(this.telemetry, rootLog.child({ component: 'ingest' }), {
      flushMaxRows: cfg.flushMaxRows, maxQueuedRows: cfg.maxQueuedRows, onBatch: (rows, seconds) => this.metrics.batch(rows, seconds),
    });
    this.detector = new FailureDetector(cfg);
    this.refusedLog = new ThrottledLog(this.log, { intervalMs: cfg.refusedLogIntervalMs, maxLinesPerInterval: MAX_REFUSED_LINES_PER_INTERVAL, maxKeys: MAX_REFUSED_LOG_KEYS });
    this.contain = { log: this.refusedLog, now: () => this.clock.now(), onError: () => { this.refused.internalError++; } };
    this.pipeline = new HeartbeatPipeline({
      cfg, clock, sessions: this.sessions, detector: this.detector, ingest: this.ingest, simLoad: this.simLoad, contain: this.contain,
      refuse: (...a) => this.refuse(...a), persist: (t) => this.deferPersist(t), endSession: (s, st, d) => this.endSession(s, st, d),
    });
    this.status = new StatusCache(new StatusReader(db), () => this.clock.now(), cfg.statusCacheMs, () => ({ ...this.stats(), refused: { ...this.refused } }));
    this.startedAt = clock.now();
    this.auth = new Authenticator({ tokens: cfg.authTokens, mutualTls: cfg.tls?.clientCaFile !== undefined });
    this.secrets = new SecretStore(db);
    this.bindings = new IdentityBindingStore(db);
  }

  async start(): Promise<MonitorServerHandle> {
    // Files first: a bad certificate is a ConfigError (exit 78) before anything listens.
    this.tls = this.cfg.tls === undefined ? undefined : new ServerTls(this.cfg.tls, () => this.clock.now());
    // AWS's identity certificates live for decades and some regions' have expired DSA siblings: no date check.
    if (this.cfg.ec2IdentityCertsFile !== undefined) this.iidCerts = loadCertificates('MONITOR_EC2_IDENTITY_CERTS', this.cfg.ec2IdentityCertsFile).all;
    // Created now if the controller has not yet: a launch token never waits for the first Register.
    if (this.cfg.requireLaunchToken) this.secrets.launchToken('-');
    this.seedDetector();
    const server = new GrpcServer({
      maxReceiveMessageBytes: this.cfg.maxMessageBytes,
      maxSendMessageBytes: this.cfg.maxMessageBytes,
      ...MONITOR_GRPC_LIMITS,
      onError: (where, err) => {
        this.contain.onError();
        this.refusedLog.warn(`internal:grpc:${where}`, this.clock.now(), { err, where }, 'handler failed; contained');
      },
      onRefused: (reason, detail) => this.refuse(TRANSPORT_REFUSALS[reason], `transport:${reason}`, this.clock.now(), { reason, detail }, 'connection or call refused'),
    });
    server.addService(monitorProto().monitor.v1.Monitor.service, this.handlers());
    const grpcPort = await server.listen(this.cfg.grpcHost, this.cfg.grpcPort, this.tls?.nodeOptions()).catch((err: unknown) => {
      throw new Error(`cannot listen for gRPC on ${this.cfg.grpcHost}:${this.cfg.grpcPort}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    });
    this.grpcServer = server;
    try {
      this.api = mountApi(this.cfg.api, {
        db: this.db, status: this.status, now: () => this.clock.now(), log: this.log.child({ component: 'api' }),
        onRefused: () => { this.refused.httpBadRequest++; },
      });
      this.http = await startHttp({
        host: this.cfg.httpHost, port: this.cfg.httpPort, health: () => this.health(), log: this.log.child({ component: 'http' }),
        api: this.api.server, ...(this.cfg.api.tls === undefined ? {} : { tls: this.cfg.api.tls }),
        onBadRequest: () => { this.refused.httpBadRequest++; },
        metrics: () => this.metrics.render(),
        onError: (err, path) => { this.contain.onError(); this.refusedLog.warn('internal:http', this.clock.now(), { err, path }, 'request failed; contained'); },
      });
    } catch (err) {
      server.forceShutdown();
      throw err;
    }
    const grpcAddress = `${this.cfg.grpcHost}:${grpcPort}`;
    const httpAddress = `${this.cfg.httpHost}:${this.http.port}`;
    this.info = { grpcAddress, httpAddress, version: version() };
    this.beat();

    const sweepEvery = Math.max(10, Math.min(250, Math.floor(this.cfg.heartbeatIntervalMs / 4)));
    const every = (what: string, ms: number, fn: () => void) => this.timers.push(setInterval(containListener(this.contain, what, fn), ms));
    every('flush', this.cfg.flushIntervalMs, () => {
      this.persistDeferred();
      this.pipeline.flush();
    });
    every('sweep', sweepEvery, () => this.sweep());
    every('beat', COMPONENT_BEAT_MS, () => this.beat());
    every('prune', PRUNE_EVERY_MS, () => this.prune());
    for (const t of this.timers) t.unref();
    // Which malloc holds the sessions' native memory (lib/allocator.ts): a preload that did not take is only a line from ld.so otherwise.
    const alloc = readAllocatorInfo();
    if (alloc.notLoaded.length > 0) this.log.warn({ notLoaded: alloc.notLoaded, allocator: alloc.allocator }, 'LD_PRELOAD names a library that is not loaded');
    this.log.info({
      allocator: alloc.allocator, ...(alloc.library !== undefined ? { allocatorLibrary: alloc.library } : {}),
      grpcAddress, httpAddress, heartbeatIntervalMs: this.cfg.heartbeatIntervalMs, suspectAfterMs: this.cfg.suspectAfterMs, deadAfterMs: this.cfg.deadAfterMs,
      transport: this.tls === undefined ? 'plaintext' : this.tls.summary.mutual ? 'mtls' : 'tls', authToken: this.cfg.authTokens.length > 0,
      allowUnknownInstances: this.cfg.allowUnknownInstances, ec2IdentityCerts: this.iidCerts.length, requireEc2Identity: this.cfg.requireEc2Identity,
      requireLaunchToken: this.cfg.requireLaunchToken, ...(this.tls !== undefined ? { tls: this.tls.summary } : {}),
    }, 'monitor server listening');
    return { grpcPort, httpPort: this.http.port, stats: () => this.stats(), reloadTls: () => this.reloadTls(), close: () => this.close() };
  }

  private async reloadTls(): Promise<void> {
    this.api?.reload();
    if (this.cfg.api.tls !== undefined) {
      this.http?.reloadTls();
      this.log.info({ cert: this.cfg.api.tls.certFile }, 'HTTPS certificate reloaded');
    }
    if (this.tls === undefined) return;
    const summary: ServerTlsSummary = this.tls.reload();
    this.grpcServer?.reloadTls(this.tls.nodeOptions());
    this.log.info({ tls: summary }, 'TLS certificates reloaded');
  }

  /** Authenticate a call; on refusal count it and return the status to answer with. */
  private authenticate(call: AuthenticatedCall, where: string): Caller | CallStatus {
    const outcome = this.auth.authenticate(call);
    if (outcome.ok) return outcome.caller;
    const reason = outcome.code === grpc.status.UNAUTHENTICATED ? 'unauthenticated' : 'registerInvalid';
    this.refuse(reason, `auth:${where}:${reason}`, this.clock.now(), { where, code: outcome.code, details: outcome.details }, 'call refused');
    return { code: outcome.code, details: outcome.details };
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
      if (i.seq > 0) this.pipeline.acceptedSeq.set(i.id, i.seq);
    }
  }

  private handlers(): MonitorHandlers {
    return {
      Register: this.metrics.countRegistrations(containUnary(this.contain, 'Register', (call, callback) => {
        const caller = this.authenticate(call, 'Register');
        if ('code' in caller) {
          callback(caller);
          return;
        }
        const r = call.request;
        const problems: string[] = [];
        if (!ID_PATTERN.test(r.instance_id)) problems.push('instance_id must be 1-63 letters, digits, ".", "_" or "-"');
        if (!ID_PATTERN.test(r.group_id)) problems.push('group_id must be 1-63 letters, digits, ".", "_" or "-"');
        if (r.address.length > 255) problems.push('address must be at most 255 characters');
        if (r.agent_version.length > 64) problems.push('agent_version must be at most 64 characters');
        const proofs = readProofs(call.metadata);
        if (!proofs.ok) problems.push(proofs.details);
        if (problems.length > 0 || !proofs.ok) {
          this.refused.registerInvalid++;
          callback({ code: grpc.status.INVALID_ARGUMENT, details: problems.join('; ') });
          return;
        }
        const check = this.checkRegister(caller, r.instance_id, r.group_id, r.agent_version);
        if (check !== undefined) {
          callback(check);
          return;
        }
        const proven = this.checkProofs(caller, r.instance_id, r.group_id, proofs.document, proofs.launchToken);
        if ('code' in proven) {
          callback(proven);
          return;
        }
        // No write here (a Register storm would pay a batch write each): last_seq is what is stored;
        // heartbeats still queued come back in the agent's replay and are acked, not stored twice.
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
          this.refused.registerRefused++;
          this.refusedLog.warn(`register:${outcome.code}`, now, { instanceId: r.instance_id, groupId: r.group_id, code: outcome.code }, 'registration refused');
          callback({ code, details: outcome.message });
          return;
        }
        if (proven.bindNonce !== undefined) {
          try {
            this.bindings.bind(r.instance_id, proven.bindNonce, now);
          } catch (err) {
            this.log.error({ err, instanceId: r.instance_id }, 'cannot store identity binding');
            callback({ code: grpc.status.UNAVAILABLE, details: 'store unavailable; retry' });
            return;
          }
        }
        const previous = this.sessions.current(r.instance_id);
        if (previous !== undefined) this.endSession(previous, { code: grpc.status.ABORTED, details: 'superseded by a newer registration' }, false);
        const session: Session = {
          id: randomUUID(), instanceId: r.instance_id, groupId: r.group_id, createdAt: now, call: undefined, acks: undefined,
          identity: sessionIdentity(caller, r.instance_id, r.agent_version), certFingerprint: caller.certFingerprint,
          receivedSeq: outcome.lastSeq, ackedSeq: outcome.lastSeq, rejected: 0, rejectReason: '',
        };
        this.sessions.add(session);
        const accepted = this.pipeline.acceptedSeq;
        accepted.set(r.instance_id, Math.max(accepted.get(r.instance_id) ?? 0, outcome.lastSeq));
        this.detector.watch(r.instance_id, r.group_id, now, 'running', true);
        this.log.info({
          instanceId: r.instance_id, groupId: r.group_id, address: r.address, agentVersion: r.agent_version, known: outcome.known, lastSeq: outcome.lastSeq,
          auth: caller.kind, proofs: proven.proofs, superseded: previous !== undefined, ...(caller.certFingerprint !== undefined ? { cert: caller.certFingerprint } : {}),
        }, 'agent registered');
        callback(null, { session_id: session.id, heartbeat_interval_ms: this.cfg.heartbeatIntervalMs, last_seq: outcome.lastSeq });
      })),

      Heartbeats: (call: HeartbeatCall) => {
        const caller = this.authenticate(call, 'Heartbeats');
        if ('code' in caller) {
          call.fail(caller);
          return;
        }
        const sessionId = String(call.metadata.get(SESSION_METADATA_KEY)[0] ?? '');
        const session = this.sessions.get(sessionId);
        if (session === undefined) {
          this.refused.unknownSession++;
          call.fail({ code: grpc.status.FAILED_PRECONDITION, details: 'unknown session; register again' });
          return;
        }
        if (session.certFingerprint !== caller.certFingerprint) {
          this.refuse('sessionForbidden', 'session-forbidden', this.clock.now(), { instanceId: session.instanceId }, 'stream refused: not the certificate that registered the session');
          call.fail({ code: grpc.status.PERMISSION_DENIED, details: 'this session was registered with another client certificate' });
          return;
        }
        if (session.call !== undefined) {
          this.refused.duplicateStream++;
          call.fail({ code: grpc.status.ALREADY_EXISTS, details: 'this session already has a heartbeat stream' });
          return;
        }
        session.call = call;
        session.acks = new AckSender(call, () => { this.counters.acksCoalesced++; });
        const internal = () => this.endSession(session, { code: grpc.status.INTERNAL, details: 'internal error' }, true);
        call.on('data', containListener(this.contain, 'heartbeat', (hb: Heartbeat__Output, bytes: number) => this.pipeline.onHeartbeat(session, hb, bytes), internal));
        this.pipeline.attach(call);
        call.on('end', () => call.end());
        const closed = containListener(this.contain, 'stream-closed', () => {
          if (session.call !== call) return;
          session.call = undefined;
          session.acks = undefined;
          if (this.sessions.remove(session)) this.persist(this.detector.disconnected(session.instanceId));
        });
        call.on('cancelled', closed);
        call.on('close', closed);
      },

      Deregister: containUnary(this.contain, 'Deregister', (call, callback) => {
        const caller = this.authenticate(call, 'Deregister');
        if ('code' in caller) {
          callback(caller);
          return;
        }
        const r = call.request;
        const session = this.sessions.get(r.session_id);
        // A session registered with another certificate is answered like one that does not exist.
        if (session === undefined || session.instanceId !== r.instance_id || session.certFingerprint !== caller.certFingerprint) {
          this.refused.deregisterUnknown++;
          callback({ code: grpc.status.NOT_FOUND, details: 'no such session for this instance' });
          return;
        }
        this.persistDeferred();
        this.pipeline.flush();
        // Stored as sent (bounded); every operator-facing view strips control characters.
        const reason = `deregistered${r.reason ? `: ${r.reason.slice(0, 200)}` : ''}`;
        try {
          this.instances.setLiveness(session.instanceId, 'dead', reason, this.clock.now());
        } catch (err) {
          this.log.error({ err, instanceId: session.instanceId }, 'deregister failed');
          callback({ code: grpc.status.UNAVAILABLE, details: 'store unavailable; retry' });
          return;
        }
        const call_ = session.call;
        this.sessions.remove(session);
        session.call = undefined;
        session.acks = undefined;
        this.detector.forget(session.instanceId);
        this.log.info({ instanceId: session.instanceId, groupId: session.groupId, reason: r.reason.slice(0, 200) }, 'agent deregistered');
        callback(null, {});
        call_?.end();
      }),
    };
  }

  /**
   * The identity rules of Register, before anything is stored: the instance must be known (unless
   * MONITOR_ALLOW_UNKNOWN_INSTANCES), the client certificate must name it or its group, and a live
   * session of another identity is not taken over. Returns the status to refuse with.
   */
  private checkRegister(caller: Caller, instanceId: string, groupId: string, agentVersion: string): CallStatus | undefined {
    const now = this.clock.now();
    let row;
    try {
      row = this.instances.get(instanceId);
    } catch (err) {
      this.log.error({ err, instanceId }, 'register failed');
      return { code: grpc.status.UNAVAILABLE, details: 'store unavailable; retry' };
    }
    if (row === undefined && !this.cfg.allowUnknownInstances) {
      // One log key for all unknown ids: a flood of random ids must not fill the throttle's table.
      this.refuse('registerUnknown', 'register:unknown', now, { instanceId, groupId, auth: caller.kind, peer: caller.peerHost }, 'registration refused: unknown instance');
      return { code: grpc.status.PERMISSION_DENIED, details: `instance "${instanceId}" is not known to this controller (it launched or adopted no such instance)` };
    }
    const forbidden = authorize(caller, instanceId, row?.groupId ?? groupId);
    if (forbidden !== undefined) {
      this.refuse('registerForbidden', `register:forbidden:${instanceId}`, now, { instanceId, groupId, peer: caller.peerHost, cert: caller.certFingerprint }, 'registration refused: certificate does not name the instance');
      return { code: grpc.status.PERMISSION_DENIED, details: forbidden };
    }
    const live = this.sessions.current(instanceId);
    if (live !== undefined && live.identity !== sessionIdentity(caller, instanceId, agentVersion)) {
      this.refuse('registerConflict', `register:conflict:${instanceId}`, now, { instanceId, groupId, auth: caller.kind, peer: caller.peerHost }, 'registration refused: another agent holds the live session');
      return { code: grpc.status.ALREADY_EXISTS, details: `instance "${instanceId}" has a live session held by another agent; retry when it ends` };
    }
    return undefined;
  }

  /**
   * The identity proofs of Register (docs/security.md, "Identity proofs"), after the identity rules:
   * - launch token (local provider): a token sent must be HMAC(launch key, instance id); none sent
   *   is refused when MONITOR_REQUIRE_LAUNCH_TOKEN. PERMISSION_DENIED.
   * - EC2 identity document: a document sent is verified when certificates are configured (a
   *   forged one or one for another instance: PERMISSION_DENIED); none, or none verifiable, is
   *   refused UNAUTHENTICATED when MONITOR_REQUIRE_EC2_IDENTITY. The nonce must be the one bound
   *   at the instance's first verified Register (PERMISSION_DENIED otherwise: a replay).
   * Returns the refusal, or the nonce digest to bind once the registration is stored.
   */
  private checkProofs(caller: Caller, instanceId: string, groupId: string, doc: IdentityDocumentProof | undefined, launchToken: string | undefined):
    CallStatus | { readonly bindNonce: string | undefined; readonly proofs: string[] } {
    const now = this.clock.now();
    const fields = { instanceId, groupId, auth: caller.kind, peer: caller.peerHost };
    const proofs: string[] = [];
    if (launchToken !== undefined || this.cfg.requireLaunchToken) {
      let good = false;
      try {
        good = launchToken !== undefined && secretsEqual(launchToken, this.secrets.launchToken(instanceId));
      } catch (err) {
        this.log.error({ err, instanceId }, 'cannot read the launch key');
        return { code: grpc.status.UNAVAILABLE, details: 'store unavailable; retry' };
      }
      if (!good) {
        this.refuse('registerForbidden', `register:launch-token:${instanceId}`, now, { ...fields, sent: launchToken !== undefined }, 'registration refused: launch token');
        return { code: grpc.status.PERMISSION_DENIED, details: launchToken === undefined ? 'a launch token is required (AGENT_LAUNCH_TOKEN)' : 'wrong launch token for this instance' };
      }
      proofs.push('launch-token');
    }
    if (doc === undefined || this.iidCerts.length === 0) {
      if (this.cfg.requireEc2Identity) {
        this.refuse('unauthenticated', 'register:iid-missing', now, fields, 'registration refused: no instance identity document');
        return { code: grpc.status.UNAUTHENTICATED, details: 'an EC2 instance identity document is required (agent: AGENT_IDENTITY=imds)' };
      }
      return { bindNonce: undefined, proofs };
    }
    const verdict = verifyIdentityDocument(doc, this.iidCerts, instanceId, now);
    if (!verdict.ok) {
      this.refuse('registerForbidden', `register:iid-invalid:${instanceId}`, now, { ...fields, reason: verdict.details }, 'registration refused: instance identity document');
      return { code: grpc.status.PERMISSION_DENIED, details: verdict.details };
    }
    const digest = nonceDigest(doc.nonce);
    let bound;
    try {
      bound = this.bindings.check(instanceId, digest);
    } catch (err) {
      this.log.error({ err, instanceId }, 'cannot read identity binding');
      return { code: grpc.status.UNAVAILABLE, details: 'store unavailable; retry' };
    }
    if (bound === 'mismatch') {
      this.refuse('registerForbidden', `register:iid-replay:${instanceId}`, now, fields, 'registration refused: identity document replayed with another nonce');
      return { code: grpc.status.PERMISSION_DENIED, details: 'identity document replayed with another nonce' };
    }
    proofs.push('ec2-identity-document');
    return { bindNonce: digest, proofs };
  }

  private refuse(reason: RefusalReason, key: string, now: number, fields: Record<string, unknown>, msg: string): void {
    this.refused[reason]++;
    this.refusedLog.warn(key, now, fields, msg);
  }

  private sweep(): void {
    const now = this.clock.now();
    // A mass silence makes thousands of transitions at once: one transaction, not one each.
    const transitions = this.detector.sweep(now);
    if (transitions.length > 0) this.inTransaction(() => { for (const t of transitions) this.persist(t); });
    for (const s of this.sessions.expired(now, this.cfg.sessionOpenTimeoutMs)) {
      this.counters.sessionsExpired++;
      if (this.sessions.remove(s)) this.persist(this.detector.disconnected(s.instanceId));
      this.refusedLog.warn('session-expired', now, { instanceId: s.instanceId, groupId: s.groupId }, 'session expired without a heartbeat stream');
    }
    this.pipeline.prune(now);
    this.refusedLog.prune(now, (key, suppressed) => this.log.warn({ key, suppressed }, 'refused input: repeated lines suppressed'));
    this.counters.sweeps++;
  }

  /** Transitions from heartbeats (suspect → running): stored together at the next flush tick. */
  private deferred: Transition[] = [];

  private deferPersist(t: Transition | undefined): void {
    if (t !== undefined) this.deferred.push(t);
  }

  private persistDeferred(): void {
    if (this.deferred.length === 0) return;
    const batch = this.deferred;
    this.deferred = [];
    this.inTransaction(() => { for (const t of batch) this.persist(t); });
  }

  /** Run `f` in one store transaction (each persist handles its own errors). */
  private inTransaction(f: () => void): void {
    try {
      this.db.transaction(f)();
    } catch (err) {
      this.log.error({ err }, 'cannot store liveness transitions');
    }
  }

  /** Store a liveness transition; if the controller has already taken the instance, stop watching it. */
  private persist(t: Transition | undefined): void {
    if (t === undefined) return;
    // Older deferred transitions go first, so the store sees each instance's changes in order.
    this.persistDeferred();
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
      this.components.beat({ name: 'monitor-server', pid: process.pid, startedAt: this.startedAt, info: { ...this.info, streams: this.sessions.streams() } }, this.clock.now());
    } catch (err) {
      this.log.warn({ err }, 'cannot write component heartbeat');
    }
  }

  private prune(): void {
    try {
      const now = this.clock.now();
      const removed = this.telemetry.pruneExpired({
        samplesBefore: now - this.cfg.sampleRetentionMs, rollupsBefore: now - this.cfg.rollupRetentionMs, chunk: PRUNE_CHUNK, budgetMs: PRUNE_BUDGET_MS,
      });
      if (removed.samples > 0 || removed.rollups > 0) this.log.debug({ samples: removed.samples, rollups: removed.rollups }, 'pruned old samples and rollups');
    } catch (err) {
      this.log.warn({ err }, 'sample pruning failed');
    }
  }

  private stats(): MonitorStats {
    let maxPendingAcks = 0;
    let maxAckBacklog = 0;
    for (const s of this.sessions.values()) {
      if (s.acks === undefined) continue;
      maxPendingAcks = Math.max(maxPendingAcks, s.acks.pendingCount);
      maxAckBacklog = Math.max(maxAckBacklog, s.acks.backlog);
    }
    return {
      refused: { ...this.refused },
      sessions: this.sessions.size,
      streams: this.sessions.streams(),
      sessionsExpired: this.counters.sessionsExpired,
      queued: this.ingest.length,
      queueCapacity: this.ingest.capacity,
      ingestPaused: this.pipeline.paused,
      ingestPauses: this.pipeline.pauses,
      acksCoalesced: this.counters.acksCoalesced,
      maxPendingAcks,
      maxAckBacklog,
      logSuppressed: this.refusedLog.suppressedTotal,
      sweeps: this.counters.sweeps,
      statusBuilds: this.status.builds,
      storedRows: this.ingest.totalRows,
    };
  }

  private health(): { ok: boolean; details: Record<string, unknown> } {
    const e = this.ingest.lastError;
    return { ok: e === undefined, details: { ...this.stats(), lastFlushAt: this.ingest.lastFlushAt, ...(e ? { error: e.message } : {}) } };
  }

  /** Prometheus metrics; what they show is read from this server at each scrape (monitor-server/metrics.ts). */
  private newMetrics(): MonitorMetrics {
    return new MonitorMetrics({
      refused: () => this.refused,
      received: () => this.pipeline.received,
      stored: () => this.ingest.totalRows,
      writeFailures: () => this.ingest.failedWrites,
      writeFailing: () => this.ingest.lastError !== undefined,
      acks: () => this.pipeline.acks,
      acksCoalesced: () => this.counters.acksCoalesced,
      agents: () => this.agentStates(),
      sessions: () => this.sessions.size,
      streams: () => this.sessions.streams(),
      sessionsExpired: () => this.counters.sessionsExpired,
      queued: () => this.ingest.length,
      queueCapacity: () => this.ingest.capacity,
      paused: () => this.pipeline.paused,
      pauses: () => this.pipeline.pauses,
    });
  }

  /** Watched instances by liveness state, from the failure detector (no store read per scrape). */
  private agentStates(): Record<LivenessState, number> {
    return this.detector.counts();
  }

  /** End a session and its stream with `status`; `disconnected`: its instance loses its stream (suspect). */
  private endSession(s: Session, status: CallStatus, disconnected: boolean): void {
    if (!this.sessions.has(s)) return;
    const current = this.sessions.remove(s);
    const call = s.call;
    s.call = undefined;
    s.acks = undefined;
    call?.fail(status);
    if (current && disconnected) this.persist(this.detector.disconnected(s.instanceId));
  }

  private async close(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.timers.length = 0;
    this.persistDeferred();
    this.pipeline.flush();
    for (const s of [...this.sessions.values()]) this.endSession(s, { code: grpc.status.UNAVAILABLE, details: 'monitor server shutting down' }, false);
    await this.http?.close();
    const server = this.grpcServer;
    if (server !== undefined) {
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => { server.forceShutdown(); resolve(); }, 2_000);
        void server.shutdown().then(() => { clearTimeout(force); resolve(); });
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
