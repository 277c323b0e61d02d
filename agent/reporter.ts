import * as grpc from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import { SYSTEM_TRUST, type AgentConfig, type AgentTlsConfig } from '../config/agent.js';
import { ConfigError } from '../config/errors.js';
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import type { HeartbeatAck__Output, RegisterResponse__Output } from '../lib/proto.js';
import { AGENT_KEY_METADATA_KEY, AUTHORIZATION_METADATA_KEY, loadCertificates, loadKeyPair, problemsOf, type KeyPair } from '../lib/tls.js';
import { version } from '../lib/version.js';
import {
  IID_DOCUMENT_METADATA_KEY, IID_NONCE_METADATA_KEY, IID_SIGNATURE_METADATA_KEY, LAUNCH_TOKEN_METADATA_KEY,
} from '../monitor-server/identity.js';
import type { Identity } from './identity.js';
import type { InstanceIdentityDocument } from './imds.js';
import type { GroupViewSnapshot, Sampler } from './sampler.js';
import { SESSION_METADATA_KEY, createMonitorClient, type AgentMonitorClient, type HeartbeatIn } from './wire.js';

/** While the sampler keeps failing, one warning per this many skipped heartbeats (1 a minute at 1 Hz). */
export const SAMPLE_ERROR_LOG_EVERY = 60;

/** Deadline of Register and Deregister calls. */
export const CALL_DEADLINE_MS = 5_000;

/** How the agent reaches the monitor server: channel credentials, channel options, call metadata. */
export interface ServerLink {
  readonly credentials: grpc.ChannelCredentials;
  readonly options: grpc.ChannelOptions;
  /** The shared token (AGENT_AUTH_TOKEN); empty: none sent. */
  readonly token: string;
  /** What the link is, for the log. */
  readonly transport: 'plaintext' | 'tls' | 'mtls';
}

/**
 * Load the agent's TLS files (AGENT_TLS_CA, AGENT_TLS_CERT, AGENT_TLS_KEY). Throws a ConfigError
 * naming each unusable key; the CLI exits 78.
 */
export function serverLink(cfg: Pick<AgentConfig, 'tls' | 'authToken'>, now: number): ServerLink {
  const tls: AgentTlsConfig | undefined = cfg.tls;
  if (tls === undefined) return { credentials: grpc.credentials.createInsecure(), options: {}, token: cfg.authToken, transport: 'plaintext' };
  const problems: string[] = [];
  let ca: Buffer | null = null;
  let pair: KeyPair | undefined;
  if (tls.caFile !== SYSTEM_TRUST) {
    try { ca = loadCertificates('AGENT_TLS_CA', tls.caFile).pem; } catch (err) { problems.push(...problemsOf(err)); }
  }
  if (tls.certFile !== undefined && tls.keyFile !== undefined) {
    try { pair = loadKeyPair('AGENT_TLS_CERT', tls.certFile, 'AGENT_TLS_KEY', tls.keyFile, now); } catch (err) { problems.push(...problemsOf(err)); }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return {
    // null roots: Node's bundled CA store (AGENT_TLS_CA=system).
    credentials: grpc.credentials.createSsl(ca, pair?.keyPem ?? null, pair?.cert.pem ?? null),
    options: tls.serverName !== undefined ? { 'grpc.ssl_target_name_override': tls.serverName, 'grpc.default_authority': tls.serverName } : {},
    token: cfg.authToken,
    transport: pair !== undefined ? 'mtls' : 'tls',
  };
}

interface Pending {
  seq: number;
  sampleAt: number;
  cpu: number;
  mem: number;
}

/** Counters for tests and the agent's own log. */
export interface ReporterStats {
  sampled: number;
  acked: number;
  dropped: number;
  rejected: number;
  /** Heartbeats not sent because the sampler failed (each is logged, rate-limited). */
  sampleErrors: number;
  connects: number;
  buffered: number;
  lastPersistedSeq: number;
}

/**
 * The agent's link to the monitor server. Samples on a timer whether or not it is connected,
 * keeps unacked heartbeats in a bounded buffer, and on every (re)connection registers, opens one
 * heartbeat stream and replays what the server has not stored. Reconnects with capped, jittered
 * exponential backoff.
 */
export class Reporter {
  private readonly log: Logger;
  private client: AgentMonitorClient;
  /** A client with reloaded credentials, taken into use at the next connection. */
  private nextClient: AgentMonitorClient | undefined;
  private link: ServerLink;
  /** Drawn once per process: the server binds this agent's live session to it (identity.ts). */
  private readonly agentKey = randomBytes(16).toString('hex');
  /**
   * Drawn once per process and sent with the identity document: the server binds the instance to
   * the first nonce it saw with a verified document, so a restarted agent (a new nonce) is refused
   * until an operator clears the binding (docs/security.md, "Identity proofs").
   */
  private readonly nonce = randomBytes(16).toString('hex');
  private buffer: Pending[] = [];
  private nextSeq = 1;
  /** Until the first registration, buffered seqs are provisional (renumbered after the server's last_seq). */
  private registeredOnce = false;
  private intervalMs: number;
  private sampleTimer: NodeJS.Timeout | undefined;
  private stream: grpc.ClientDuplexStream<HeartbeatIn, HeartbeatAck__Output> | undefined;
  private sessionId: string | undefined;
  private view: GroupViewSnapshot | undefined;
  private stopped = false;
  private stopReason = '';
  private sampling = false;
  /** Sampler failures in a row; the first is logged, then one in every SAMPLE_ERROR_LOG_EVERY. */
  private failedInRow = 0;
  private wake: (() => void) | undefined;
  private loop: Promise<void> | undefined;
  readonly stats: ReporterStats = { sampled: 0, acked: 0, dropped: 0, rejected: 0, sampleErrors: 0, connects: 0, buffered: 0, lastPersistedSeq: 0 };

  constructor(
    private readonly cfg: AgentConfig,
    private readonly identity: Identity,
    private readonly sampler: Sampler,
    private readonly clock: Clock,
    rootLog: Logger,
    private readonly random: () => number = Math.random,
    link: ServerLink = serverLink(cfg, clock.now()),
    /** The signed instance identity document (AGENT_IDENTITY=imds), sent with every Register. */
    private readonly document: InstanceIdentityDocument | undefined = undefined,
  ) {
    this.log = rootLog.child({ component: 'reporter', instanceId: identity.instanceId });
    this.intervalMs = cfg.intervalMs;
    this.link = link;
    this.client = this.newClient(link);
  }

  /** How this reporter reaches the server, for the log. */
  get transport(): ServerLink['transport'] {
    return this.link.transport;
  }

  /**
   * Re-read the TLS files (SIGHUP): the next connection uses them; the open stream keeps its
   * connection. Throws a ConfigError naming the bad key, and the current files stay in use.
   */
  reloadCredentials(): void {
    const link = serverLink(this.cfg, this.clock.now());
    this.nextClient?.close();
    this.nextClient = this.newClient(link);
    this.link = link;
    this.log.info({ transport: link.transport }, 'TLS files reloaded; used from the next connection');
  }

  private newClient(link: ServerLink): AgentMonitorClient {
    return createMonitorClient(this.cfg.server, link.credentials, {
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
      'grpc.keepalive_permit_without_calls': 1,
      'grpc.initial_reconnect_backoff_ms': this.cfg.reconnectMinMs,
      'grpc.max_reconnect_backoff_ms': this.cfg.reconnectMaxMs,
      ...link.options,
    });
  }

  /** Metadata every call carries: the token (if any) and this process's agent key. */
  private metadata(): grpc.Metadata {
    const md = new grpc.Metadata();
    if (this.link.token !== '') md.set(AUTHORIZATION_METADATA_KEY, `Bearer ${this.link.token}`);
    md.set(AGENT_KEY_METADATA_KEY, this.agentKey);
    return md;
  }

  /** Register's metadata: the call metadata plus the identity proofs this agent holds. */
  private registerMetadata(): grpc.Metadata {
    const md = this.metadata();
    if (this.cfg.launchToken !== '') md.set(LAUNCH_TOKEN_METADATA_KEY, this.cfg.launchToken);
    if (this.document !== undefined) {
      md.set(IID_DOCUMENT_METADATA_KEY, this.document.document.toString('base64'));
      md.set(IID_SIGNATURE_METADATA_KEY, this.document.signature);
      md.set(IID_NONCE_METADATA_KEY, this.nonce);
    }
    return md;
  }

  /** The last group view the server sent, if any. */
  get groupView(): GroupViewSnapshot | undefined {
    return this.view;
  }

  start(): void {
    this.scheduleSampling();
    this.loop = this.connectLoop();
  }

  /** Stop sampling, deregister if connected (so the instance stops counting at once), close. */
  async stop(reason: string): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.stopReason = reason;
    clearInterval(this.sampleTimer);
    this.wake?.();
    const sessionId = this.sessionId;
    if (sessionId !== undefined) await this.deregister(sessionId, reason);
    this.stream?.cancel();
    await this.loop;
    this.client.close();
    this.nextClient?.close();
    this.log.info({ ...this.stats, reason }, 'reporter stopped');
  }

  private deregister(sessionId: string, reason: string): Promise<void> {
    return new Promise<void>((resolve) => {
      this.client.Deregister({ session_id: sessionId, instance_id: this.identity.instanceId, reason }, this.metadata(),
        { deadline: Date.now() + Math.min(CALL_DEADLINE_MS, 2_000) }, (err) => {
          if (err) this.log.warn({ err: { code: err.code, details: err.details } }, 'deregister failed');
          resolve();
        });
    });
  }

  private scheduleSampling(): void {
    clearInterval(this.sampleTimer);
    this.sampleTimer = setInterval(() => void this.takeSample(), this.intervalMs);
  }

  private async takeSample(): Promise<void> {
    if (this.sampling || this.stopped) return; // a slow sampler never piles up calls
    this.sampling = true;
    try {
      const now = this.clock.now();
      const s = await this.sampler.sample(now, this.view);
      if (this.failedInRow > 0) {
        this.log.info({ failed: this.failedInRow }, 'sampling recovered');
        this.failedInRow = 0;
      }
      // No reading yet (the first one primes the CPU counters): no heartbeat this interval.
      if (s === undefined) return;
      const hb: Pending = { seq: this.nextSeq++, sampleAt: now, cpu: s.cpu, mem: s.mem };
      this.buffer.push(hb);
      this.stats.sampled++;
      if (this.buffer.length > this.cfg.bufferSize) {
        const excess = this.buffer.length - this.cfg.bufferSize;
        this.buffer.splice(0, excess);
        this.stats.dropped += excess;
        if (this.stats.dropped === excess || this.stats.dropped % 100 === 0) this.log.warn({ dropped: this.stats.dropped, bufferSize: this.cfg.bufferSize }, 'heartbeat buffer full; dropping oldest');
      }
      this.stats.buffered = this.buffer.length;
      this.send(hb);
    } catch (err) {
      // No heartbeat rather than a made-up value: a 0 % CPU would read as an idle instance.
      this.stats.sampleErrors++;
      if (this.failedInRow++ % SAMPLE_ERROR_LOG_EVERY === 0) this.log.warn({ err, failed: this.failedInRow }, 'sampling failed; no heartbeat this interval');
    } finally {
      this.sampling = false;
    }
  }

  private send(hb: Pending): void {
    this.stream?.write({ seq: hb.seq, sample_time_ms: hb.sampleAt, cpu_percent: hb.cpu, mem_percent: hb.mem });
  }

  private async connectLoop(): Promise<void> {
    let attempt = 0;
    while (!this.stopped) {
      if (this.nextClient !== undefined) {
        // Reloaded credentials: the previous stream has ended, so its client can go.
        this.client.close();
        this.client = this.nextClient;
        this.nextClient = undefined;
      }
      try {
        const reg = await this.register();
        if (this.stopped) {
          // stop() came while Register was in flight: it found no session to end and no stream
          // to cancel, so end this session here and open no stream.
          await this.deregister(reg.session_id, this.stopReason);
          break;
        }
        attempt = 0;
        this.onRegistered(reg);
        await this.runStream(reg.session_id);
      } catch (err) {
        const e = err as grpc.ServiceError;
        // Refusals that will not fix themselves soon. PERMISSION_DENIED (an instance the
        // controller has not recorded yet: its launch is being written) and ALREADY_EXISTS (our
        // previous connection's session is still live on the server) clear on their own.
        const fatal = e.code === grpc.status.NOT_FOUND || e.code === grpc.status.FAILED_PRECONDITION || e.code === grpc.status.INVALID_ARGUMENT
          || e.code === grpc.status.UNAUTHENTICATED;
        const refused = fatal || e.code === grpc.status.PERMISSION_DENIED || e.code === grpc.status.ALREADY_EXISTS;
        if (!this.stopped) this.log[fatal ? 'error' : 'warn']({ code: e.code, details: e.details ?? e.message, attempt }, refused ? 'monitor server refused this agent' : 'monitor server unreachable');
        // Refusals will not fix themselves quickly: retry at the slowest pace.
        if (fatal) attempt = 30;
      }
      this.sessionId = undefined;
      if (this.stopped) break;
      await this.sleep(this.backoff(attempt++));
    }
  }

  private backoff(attempt: number): number {
    const capped = Math.min(this.cfg.reconnectMaxMs, this.cfg.reconnectMinMs * 2 ** Math.min(attempt, 30));
    return Math.round(capped / 2 + (capped / 2) * this.random());
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => { this.wake = undefined; resolve(); }, ms);
      this.wake = () => { clearTimeout(t); this.wake = undefined; resolve(); };
    });
  }

  private register(): Promise<RegisterResponse__Output> {
    return new Promise((resolve, reject) => {
      this.client.Register(
        { instance_id: this.identity.instanceId, group_id: this.identity.groupId, agent_version: version(), address: this.identity.address },
        this.registerMetadata(),
        { deadline: Date.now() + CALL_DEADLINE_MS },
        (err, res) => (err || res === undefined ? reject(err ?? new Error('empty response')) : resolve(res)),
      );
    });
  }

  private onRegistered(reg: RegisterResponse__Output): void {
    const lastSeq = Number(reg.last_seq);
    if (!this.registeredOnce) {
      // This process has never spoken to the server: number what it buffered after what is stored.
      this.registeredOnce = true;
      let seq = lastSeq;
      for (const hb of this.buffer) hb.seq = ++seq;
      this.nextSeq = seq + 1;
    } else {
      this.buffer = this.buffer.filter((hb) => hb.seq > lastSeq);
      this.nextSeq = Math.max(this.nextSeq, lastSeq + 1);
    }
    this.stats.connects++;
    if (reg.heartbeat_interval_ms > 0 && reg.heartbeat_interval_ms !== this.intervalMs) {
      this.intervalMs = reg.heartbeat_interval_ms;
      this.scheduleSampling();
    }
    this.log.info({ lastSeq, replaying: this.buffer.length, intervalMs: this.intervalMs, server: this.cfg.server }, 'registered');
  }

  /** Resolves when the stream ends, for whatever reason. */
  private runStream(sessionId: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const md = this.metadata();
      md.set(SESSION_METADATA_KEY, sessionId);
      const stream = this.client.Heartbeats(md);
      this.stream = stream;
      this.sessionId = sessionId;
      stream.on('data', (ack: HeartbeatAck__Output) => this.onAck(ack));
      stream.on('error', (err: grpc.ServiceError) => {
        this.stream = undefined;
        if (this.stopped || err.code === grpc.status.CANCELLED) resolve();
        else reject(err);
      });
      stream.on('end', () => {
        this.stream = undefined;
        resolve();
      });
      for (const hb of this.buffer) this.send(hb);
    });
  }

  private onAck(ack: HeartbeatAck__Output): void {
    const persisted = Number(ack.persisted_seq);
    const before = this.buffer.length;
    this.buffer = this.buffer.filter((hb) => hb.seq > persisted);
    this.stats.acked += before - this.buffer.length;
    this.stats.buffered = this.buffer.length;
    this.stats.lastPersistedSeq = Math.max(this.stats.lastPersistedSeq, persisted);
    if (ack.rejected > 0) {
      this.stats.rejected += ack.rejected;
      this.log.warn({ rejected: ack.rejected, reason: ack.reject_reason }, 'server refused heartbeats');
    }
    if (ack.group) this.view = { liveInstances: ack.group.live_instances, demandPercent: ack.group.demand_percent };
  }
}
