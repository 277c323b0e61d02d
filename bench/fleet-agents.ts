/**
 * A load generator for bench/fleet.ts: one process simulating `count` agents, each with its own
 * client and so its own TCP (and TLS) connection, speaking the agent protocol as
 * agent/reporter.ts does: Register, one Heartbeats stream with the session id, one heartbeat per
 * interval, acks drop what they cover, a bounded buffer, re-register and replay after a stream
 * ends. Agents send at fleet-wide phases (fleet-common.ts phaseOf), so the fleet's heartbeats
 * are spread evenly over each second however many generators there are.
 *
 * The client (AgentsConfig.client) sits behind AgentTransport: `raw` is bench/fleet-raw-client.ts
 * (the same frames framed by hand on node:tls, the cheapest); `h2` is bench/fleet-h2-client.ts
 * (node:http2, the frames grpc-js sends, about a third less CPU than grpc-js); `grpc-js` is a
 * grpc-js channel with agent/reporter.ts's options, as a real agent has.
 *
 * Started by bench/fleet.ts with an IPC channel (`process.execPath dist/bench/fleet-agents.js`);
 * exits when the channel closes, so it never outlives the orchestrator.
 */
import * as grpc from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { serverLink, type ServerLink } from '../agent/reporter.js';
import type { HeartbeatIn, RegisterRequestIn } from '../agent/wire.js';
import { SESSION_METADATA_KEY, monitorProto, type HeartbeatAck__Output, type MonitorClient, type RegisterResponse__Output } from '../lib/proto.js';
import { AGENT_KEY_METADATA_KEY, AUTHORIZATION_METADATA_KEY } from '../lib/tls.js';
import {
  Histogram, phaseOf, type AgentTransport, type AgentsConfig, type CallError, type CallMetadata, type FromAgents, type HeartbeatSink, type ToAgents,
  type WindowReport,
} from './fleet-common.js';
import { H2MonitorClient, h2ClientConfig } from './fleet-h2-client.js';
import { RawMonitorClient } from './fleet-raw-client.js';

/** Heartbeats an agent keeps unacked before dropping the oldest (AGENT_BUFFER_SIZE's default). */
const BUFFER_SIZE = 600;
/** Register deadline while the fleet connects (the server is busy with handshakes), ms. */
const REGISTER_DEADLINE_MS = 30_000;
/** Register attempts per agent while the fleet connects. */
const REGISTER_ATTEMPTS = 5;
/** Registers in flight at first while the fleet connects, and what makes the window shrink or grow, ms. */
const INITIAL_CONNECT_WINDOW = 4;
const SLOW_CONNECT_MS = 1_000;
const FAST_CONNECT_MS = 300;
/** After a stream ends: wait this long (plus up to as much again, jittered) before registering again, ms. */
const RECONNECT_MS = 1_000;
/** The send loop wakes at most this often; heartbeats due within a slot go out together, ms. */
const SLOT_MS = 4;

/** The shared token sent as `authorization` (none: the group certificate authenticates the bench's agents). */
const AUTH_TOKEN = '';

type HeartbeatStream = grpc.ClientDuplexStream<HeartbeatIn, HeartbeatAck__Output>;

function toMetadata(md: CallMetadata): grpc.Metadata {
  const out = new grpc.Metadata();
  for (const [k, v] of Object.entries(md)) out.set(k, v);
  return out;
}

/**
 * A grpc-js channel per agent: the options agent/reporter.ts gives its channel, plus a subchannel
 * pool of its own: grpc-js otherwise shares one connection between clients with the same target
 * and options, and the bench would measure HTTP/2 multiplexing rather than a fleet.
 */
class GrpcJsTransport implements AgentTransport {
  private readonly client: MonitorClient;

  constructor(target: string, link: ServerLink) {
    const Ctor = monitorProto().monitor.v1.Monitor;
    this.client = new Ctor(target, link.credentials, {
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
      'grpc.keepalive_permit_without_calls': 1,
      'grpc.use_local_subchannel_pool': 1,
      ...link.options,
    });
  }

  register(req: RegisterRequestIn, metadata: CallMetadata, deadlineMs: number): Promise<RegisterResponse__Output> {
    return new Promise((resolve, reject) => {
      this.client.Register(req, toMetadata(metadata), { deadline: Date.now() + deadlineMs },
        (err, res) => (err || res === undefined ? reject(err ?? new Error('empty response')) : resolve(res)));
    });
  }

  heartbeats(metadata: CallMetadata, onAck: (ack: HeartbeatAck__Output) => void, onEnd: (err: unknown) => void): HeartbeatSink {
    const stream = this.client.Heartbeats(toMetadata(metadata)) as HeartbeatStream;
    stream.on('data', onAck);
    stream.on('error', (err: grpc.ServiceError) => onEnd(err));
    stream.on('end', () => onEnd(undefined));
    return { write: (hb) => { stream.write(hb); }, cancel: () => stream.cancel() };
  }

  close(): void {
    this.client.close();
  }
}

interface Pending {
  readonly seq: number;
  readonly at: number;
}

interface Counters {
  sent: number;
  acked: number;
  acks: number;
  dropped: number;
  streamErrors: number;
  reconnects: number;
}

function newCounters(): Counters {
  return { sent: 0, acked: 0, acks: 0, dropped: 0, streamErrors: 0, reconnects: 0 };
}

class Fleet {
  private readonly agents: Agent[] = [];
  /** The same agents in the order they send within an interval. */
  private readonly byPhase: Agent[];
  counters = newCounters();
  hist = new Histogram();
  measuring = false;
  stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private cursor = 0;
  private round = 0;
  /** A new agent's client: its own connection, the TLS material shared by the process. */
  readonly newTransport: () => AgentTransport;
  readonly errors: Record<string, number> = {};
  readonly connectHist = new Histogram();

  constructor(readonly cfg: AgentsConfig) {
    if (cfg.client === 'grpc-js') {
      const link = serverLink({
        tls: cfg.tls === undefined ? undefined : { caFile: cfg.tls.caFile, certFile: cfg.tls.certFile, keyFile: cfg.tls.keyFile, serverName: undefined },
        authToken: AUTH_TOKEN,
      }, Date.now());
      this.newTransport = () => new GrpcJsTransport(cfg.target, link);
    } else {
      const h2 = h2ClientConfig(cfg.target, cfg.tls, Date.now());
      this.newTransport = cfg.client === 'raw' ? () => new RawMonitorClient(h2) : () => new H2MonitorClient(h2);
    }
    for (let i = 0; i < cfg.count; i++) this.agents.push(new Agent(this, `${cfg.idPrefix}${cfg.firstIndex + i}`, phaseOf(cfg.firstIndex + i) * cfg.intervalMs));
    this.byPhase = [...this.agents].sort((a, b) => a.phaseMs - b.phaseMs);
  }

  countError(err: unknown): void {
    const e = err as Partial<CallError>;
    const key = e.code !== undefined ? `${grpc.status[e.code] ?? e.code}: ${(e.details ?? '').slice(0, 80)}` : String(err).slice(0, 80);
    this.errors[key] = (this.errors[key] ?? 0) + 1;
  }

  /**
   * Register every agent, at most `connectRatePerSec` a second and with a window of Registers in
   * flight that adapts to the server (AIMD, up to `connectConcurrency`): halved when one takes
   * longer than SLOW_CONNECT_MS, grown by one when one is quick. A server that is slow to accept
   * is not pushed into a reconnect storm. Resolves when each agent has succeeded or given up.
   */
  async connect(): Promise<{ connected: number; failed: number }> {
    let connected = 0;
    let failed = 0;
    let inFlight = 0;
    let limit = Math.min(INITIAL_CONNECT_WINDOW, this.cfg.connectConcurrency);
    let wake: (() => void) | undefined;
    const started = Date.now();
    const rate = this.cfg.connectRatePerSec;
    // Heartbeats start with the first connected agent, as a real fleet's would.
    this.startSending();
    for (let k = 0; k < this.agents.length && !this.stopped;) {
      if (inFlight >= limit) {
        await new Promise<void>((r) => { wake = r; });
        continue;
      }
      const wait = rate > 0 ? started + (k * 1000) / rate - Date.now() : 0;
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const agent = this.agents[k++] as Agent;
      const t = Date.now();
      inFlight++;
      void agent.firstConnect().then((ok) => {
        inFlight--;
        if (ok) connected++;
        else failed++;
        const ms = Date.now() - t;
        if (ms > SLOW_CONNECT_MS) limit = Math.max(1, Math.floor(limit / 2));
        else if (ms < FAST_CONNECT_MS) limit = Math.min(this.cfg.connectConcurrency, limit + 1);
        wake?.();
      });
    }
    // Bounded: each agent's firstConnect gives up after REGISTER_ATTEMPTS.
    while (inFlight > 0) await new Promise<void>((r) => { wake = r; });
    return { connected, failed };
  }

  private startSending(): void {
    const { epochMs, intervalMs } = this.cfg;
    const now = Date.now();
    // First (agent, round) due at or after now.
    this.round = Math.max(0, Math.ceil((now - epochMs) / intervalMs) - 1);
    this.cursor = 0;
    while (this.due() < now) this.advance();
    this.schedule(now);
  }

  private due(): number {
    const a = this.byPhase[this.cursor] as Agent;
    return this.cfg.epochMs + this.round * this.cfg.intervalMs + a.phaseMs;
  }

  private advance(): void {
    this.cursor++;
    if (this.cursor === this.byPhase.length) {
      this.cursor = 0;
      this.round++;
    }
  }

  private schedule(now: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => this.tick(), Math.max(SLOT_MS, this.due() - now));
  }

  private tick(): void {
    const now = Date.now();
    // Bounded: one pass over the fleet at most per wake-up, however late the wake-up is.
    for (let n = 0; n < this.byPhase.length && this.due() <= now; n++) {
      (this.byPhase[this.cursor] as Agent).beat(now);
      this.advance();
    }
    this.schedule(now);
  }

  streaming(): number {
    return this.agents.filter((a) => a.streaming).length;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    for (const a of this.agents) a.close();
  }
}

class Agent {
  private readonly client: AgentTransport;
  private readonly key = randomBytes(16).toString('hex');
  private stream: HeartbeatSink | undefined;
  private pending: Pending[] = [];
  private nextSeq = 1;
  private registered = false;
  private reconnecting = false;

  constructor(private readonly fleet: Fleet, readonly id: string, readonly phaseMs: number) {
    this.client = fleet.newTransport();
  }

  get streaming(): boolean {
    return this.stream !== undefined;
  }

  private metadata(): Record<string, string> {
    const md: Record<string, string> = {};
    if (AUTH_TOKEN !== '') md[AUTHORIZATION_METADATA_KEY] = `Bearer ${AUTH_TOKEN}`;
    md[AGENT_KEY_METADATA_KEY] = this.key;
    return md;
  }

  private register(): Promise<RegisterResponse__Output> {
    return this.client.register({ instance_id: this.id, group_id: this.fleet.cfg.groupId, agent_version: 'fleet-bench', address: '127.0.0.1' },
      this.metadata(), REGISTER_DEADLINE_MS);
  }

  /** Register and open the stream; retried a few times. False if the agent gave up. */
  async firstConnect(): Promise<boolean> {
    const start = Date.now();
    for (let attempt = 1; attempt <= REGISTER_ATTEMPTS && !this.fleet.stopped; attempt++) {
      try {
        this.open(await this.register());
        this.fleet.connectHist.add(Date.now() - start);
        return true;
      } catch (err) {
        this.fleet.countError(err);
        await new Promise((r) => setTimeout(r, 500 * attempt));
      }
    }
    return false;
  }

  private open(reg: RegisterResponse__Output): void {
    const lastSeq = Number(reg.last_seq);
    this.pending = this.pending.filter((p) => p.seq > lastSeq);
    this.nextSeq = Math.max(this.nextSeq, lastSeq + 1);
    this.registered = true;
    const md = { ...this.metadata(), [SESSION_METADATA_KEY]: reg.session_id };
    // Both transports call back only after heartbeats() returned: `stream` is set by then.
    const ended = (err: unknown) => {
      if (this.stream !== stream) return;
      this.stream = undefined;
      if (this.fleet.stopped) return;
      this.fleet.counters.streamErrors++;
      this.fleet.countError(err ?? new Error('stream ended by the server'));
      this.reconnect();
    };
    const stream = this.client.heartbeats(md, (ack) => this.onAck(ack), ended);
    this.stream = stream;
    for (const p of this.pending) this.write(p);
  }

  private reconnect(): void {
    if (this.reconnecting || this.fleet.stopped) return;
    this.reconnecting = true;
    const retry = () => {
      if (this.fleet.stopped) return;
      this.register().then((reg) => {
        this.reconnecting = false;
        this.fleet.counters.reconnects++;
        this.open(reg);
      }, (err: unknown) => {
        this.fleet.countError(err);
        setTimeout(retry, RECONNECT_MS * (1 + Math.random()));
      });
    };
    setTimeout(retry, RECONNECT_MS * (1 + Math.random()));
  }

  private write(p: Pending): void {
    // Fractional values, as a real sampler's: SQLite stores whole REALs as small integers, which would understate the DB's growth.
    this.stream?.write({ seq: p.seq, sample_time_ms: p.at, cpu_percent: 20 + ((p.seq * 37) % 600) / 10.3, mem_percent: 40 + (p.seq % 100) / 9.7 });
  }

  /** One heartbeat, due now: buffered, and written if the stream is open. */
  beat(now: number): void {
    if (!this.registered) return; // not yet up: a real agent starts sampling when it starts
    const p = { seq: this.nextSeq++, at: now };
    this.pending.push(p);
    if (this.pending.length > BUFFER_SIZE) {
      this.pending.shift();
      if (this.fleet.measuring) this.fleet.counters.dropped++;
    }
    if (this.stream !== undefined) {
      this.write(p);
      if (this.fleet.measuring) this.fleet.counters.sent++;
    }
  }

  private onAck(ack: HeartbeatAck__Output): void {
    const persisted = Number(ack.persisted_seq);
    const now = Date.now();
    const f = this.fleet;
    let covered = 0;
    while (covered < this.pending.length && (this.pending[covered] as Pending).seq <= persisted) {
      if (f.measuring) f.hist.add(now - (this.pending[covered] as Pending).at);
      covered++;
    }
    if (covered > 0) this.pending.splice(0, covered);
    if (f.measuring) {
      f.counters.acks++;
      f.counters.acked += covered;
    }
  }

  close(): void {
    this.stream?.cancel();
    this.stream = undefined;
    this.client.close();
  }
}

function send(msg: FromAgents): void {
  process.send?.(msg);
}

async function main(): Promise<void> {
  if (process.send === undefined) throw new Error('fleet-agents runs under bench/fleet.ts (it needs an IPC channel)');
  let fleet: Fleet | undefined;
  const delay = monitorEventLoopDelay({ resolution: 5 });
  delay.enable();
  const sinceStart = monitorEventLoopDelay({ resolution: 5 });
  sinceStart.enable();
  // Exit through process.exit, so that a --cpu-prof profile is written.
  for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => process.exit(0));
  // The orchestrator's end (exit, crash, kill -9) closes the channel: never outlive it.
  process.on('disconnect', () => {
    void fleet?.stop();
    process.exit(0);
  });
  process.on('message', (raw: unknown) => {
    const msg = raw as ToAgents;
    if (msg.type === 'start') {
      const started = Date.now();
      fleet = new Fleet(msg.config);
      const f = fleet;
      void f.connect().then(({ connected, failed }) => send({ type: 'ready', connected, failed, ms: Date.now() - started, errors: f.errors, connectHist: f.connectHist.sparse() }));
    } else if (msg.type === 'window-start' && fleet !== undefined) {
      fleet.counters = newCounters();
      fleet.hist = new Histogram();
      fleet.measuring = true;
      delay.reset();
    } else if (msg.type === 'window-end' && fleet !== undefined) {
      fleet.measuring = false;
      const c = fleet.counters;
      const report: WindowReport = {
        ...c, ackHist: fleet.hist.sparse(), loopDelayP99Ms: delay.percentile(99) / 1e6, loopDelayMaxMs: delay.max / 1e6, loopDelayMaxSinceStartMs: sinceStart.max / 1e6, streaming: fleet.streaming(), errors: fleet.errors,
      };
      send({ type: 'window', report });
    } else if (msg.type === 'stop') {
      void fleet?.stop();
      process.disconnect();
      // Open channels would keep the loop alive a little longer; nothing is left to do.
      setTimeout(() => process.exit(0), 200).unref();
    }
  });
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
