/**
 * Client child of bench/transport.ts: `node dist/bench/transport-client.js '<ClientPlan JSON>'`.
 * Simulates `agents` agents, one connection each, sending heartbeats over one transport and
 * timing each ack. Runs in its own process so the server's CPU is measured alone.
 *
 * Control (JSON lines): prints `ready` once every agent has connected and had its first heartbeat
 * acked, then sends on schedule; `mark` on stdin starts the window (counters and latencies reset);
 * `report` prints the window's figures; `stop` (or stdin closing) closes every connection and exits.
 */
import * as grpc from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import * as http from 'node:http';
import * as https from 'node:https';
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';
import { SESSION_METADATA_KEY, monitorProto, type HeartbeatAck__Output } from '../lib/proto.js';
import {
  AGENT_KEY_HEADER, BENCH_TOKEN, GRPC_CLIENT_OPTIONS, HTTP_PATH, INSTANCE_HEADER, UNARY_DEADLINE_MS, WS_PATH, onLines, readTls, say, unaryMonitor,
  type ClientPlan, type JsonAck, type JsonHeartbeat,
} from './transport-common.js';

const BEARER = `Bearer ${BENCH_TOKEN}`;
/** How long one agent may take to connect and have its first heartbeat acked, ms. */
const CONNECT_TIMEOUT_MS = 30_000;
/** Agents connecting at once (the server's accept backlog is 511). */
const CONNECT_CONCURRENCY = 50;
/** Latencies kept per window; beyond this the window's percentiles use the first ones. */
const MAX_LATENCIES = 4_000_000;

interface Beat {
  readonly seq: number;
  /** Unix epoch ms. */
  readonly sampleAt: number;
  readonly cpu: number;
  readonly mem: number;
}

interface Link {
  send(hb: Beat): void;
  close(): void;
}

interface Hooks {
  onAck(seq: number): void;
  onError(err: unknown): void;
}

const tally = { measuring: false, acks: 0, sent: 0, errors: 0, firstError: '', latencies: new Float64Array(1024), n: 0 };
let running = true;

function recordLatency(ms: number): void {
  if (tally.n >= MAX_LATENCIES) return;
  if (tally.n === tally.latencies.length) {
    const bigger = new Float64Array(tally.latencies.length * 2);
    bigger.set(tally.latencies);
    tally.latencies = bigger;
  }
  tally.latencies[tally.n++] = ms;
}

function describe(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

function grpcCredentials(plan: ClientPlan): grpc.ChannelCredentials {
  return plan.tls === undefined ? grpc.credentials.createInsecure() : grpc.credentials.createSsl(readTls(plan.tls).ca);
}

/** Channel options; with TLS the certificate's DNS name, as AGENT_TLS_SERVER_NAME sets it (an IP is no TLS server name). */
function grpcOptions(plan: ClientPlan): grpc.ChannelOptions {
  return plan.tls === undefined ? GRPC_CLIENT_OPTIONS
    : { ...GRPC_CLIENT_OPTIONS, 'grpc.ssl_target_name_override': 'localhost', 'grpc.default_authority': 'localhost' };
}

function waitForReady(client: grpc.Client): Promise<void> {
  return new Promise((resolve, reject) => client.waitForReady(Date.now() + CONNECT_TIMEOUT_MS, (err) => (err ? reject(err) : resolve())));
}

function metadata(agentKey: string): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set('authorization', BEARER);
  md.set(AGENT_KEY_HEADER, agentKey);
  return md;
}

async function grpcStream(plan: ClientPlan, id: string, agentKey: string, hooks: Hooks): Promise<Link> {
  const Ctor = monitorProto().monitor.v1.Monitor;
  const client = new Ctor(`127.0.0.1:${plan.port}`, grpcCredentials(plan), grpcOptions(plan));
  await waitForReady(client);
  const md = metadata(agentKey);
  md.set(SESSION_METADATA_KEY, id);
  const stream = client.Heartbeats(md);
  stream.on('data', (ack: HeartbeatAck__Output) => hooks.onAck(Number(ack.persisted_seq)));
  stream.on('error', (err: grpc.ServiceError) => { if (running) hooks.onError(err); });
  return {
    send: (hb) => { stream.write({ seq: hb.seq, sample_time_ms: hb.sampleAt, cpu_percent: hb.cpu, mem_percent: hb.mem }); },
    close: () => { stream.cancel(); client.close(); },
  };
}

async function grpcUnary(plan: ClientPlan, id: string, agentKey: string, hooks: Hooks): Promise<Link> {
  const client = new (unaryMonitor())(`127.0.0.1:${plan.port}`, grpcCredentials(plan), grpcOptions(plan));
  await waitForReady(client);
  return {
    send: (hb) => {
      client.Beat({ instance_id: id, seq: hb.seq, sample_time_ms: hb.sampleAt, cpu_percent: hb.cpu, mem_percent: hb.mem }, metadata(agentKey),
        { deadline: Date.now() + UNARY_DEADLINE_MS }, (err, ack) => {
          if (err !== null || ack === undefined) { if (running) hooks.onError(err ?? new Error('empty ack')); return; }
          hooks.onAck(Number(ack.persisted_seq));
        });
    },
    close: () => client.close(),
  };
}

function http1(plan: ClientPlan, id: string, agentKey: string, hooks: Hooks): Link {
  const tls = plan.tls === undefined ? undefined : readTls(plan.tls);
  const mod = tls === undefined ? http : https;
  // One socket per simulated agent, kept open between heartbeats.
  const agent = tls === undefined ? new http.Agent({ keepAlive: true, maxSockets: 1 }) : new https.Agent({ keepAlive: true, maxSockets: 1, ca: tls.ca });
  return {
    send: (hb) => {
      const msg: JsonHeartbeat = { instance_id: id, seq: hb.seq, sample_time_ms: hb.sampleAt, cpu_percent: hb.cpu, mem_percent: hb.mem };
      const body = JSON.stringify(msg);
      const req = mod.request({
        agent, host: '127.0.0.1', port: plan.port, method: 'POST', path: HTTP_PATH,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), authorization: BEARER, [AGENT_KEY_HEADER]: agentKey },
      }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          if (res.statusCode !== 200) { hooks.onError(new Error(`HTTP ${res.statusCode ?? 0}`)); return; }
          hooks.onAck((JSON.parse(Buffer.concat(chunks).toString('utf8')) as JsonAck).persisted_seq);
        });
      });
      req.on('error', (err) => { if (running) hooks.onError(err); });
      req.end(body);
    },
    close: () => agent.destroy(),
  };
}

function ws(plan: ClientPlan, id: string, agentKey: string, hooks: Hooks): Promise<Link> {
  const tls = plan.tls === undefined ? undefined : readTls(plan.tls);
  const socket = new WebSocket(`${tls === undefined ? 'ws' : 'wss'}://127.0.0.1:${plan.port}${WS_PATH}`, {
    headers: { authorization: BEARER, [AGENT_KEY_HEADER]: agentKey, [INSTANCE_HEADER]: id },
    perMessageDeflate: false,
    ...(tls !== undefined ? { ca: tls.ca } : {}),
  });
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.once('open', () => {
      socket.off('error', reject);
      socket.on('error', (err) => { if (running) hooks.onError(err); });
      socket.on('close', () => { if (running) hooks.onError(new Error('websocket closed')); });
      socket.on('message', (data: WebSocket.RawData) => hooks.onAck((JSON.parse(data.toString()) as JsonAck).persisted_seq));
      resolve({
        send: (hb) => {
          const msg: JsonHeartbeat = { seq: hb.seq, sample_time_ms: hb.sampleAt, cpu_percent: hb.cpu, mem_percent: hb.mem };
          socket.send(JSON.stringify(msg));
        },
        close: () => socket.terminate(),
      });
    });
  });
}

/** One simulated agent: numbers its heartbeats, remembers when each left, and times its ack. */
class SimAgent {
  private seq = 0;
  private readonly pending = new Map<number, number>();
  private link: Link | undefined;
  private firstAck: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly agentKey = randomBytes(16).toString('hex');

  constructor(private readonly plan: ClientPlan, readonly id: string) {}

  /** Connect, send one heartbeat and wait for its ack. */
  async connect(): Promise<void> {
    const hooks: Hooks = { onAck: (seq) => this.onAck(seq), onError: (err) => this.onError(err) };
    const p = this.plan;
    switch (p.transport) {
      case 'grpc-stream': this.link = await grpcStream(p, this.id, this.agentKey, hooks); break;
      case 'grpc-unary': this.link = await grpcUnary(p, this.id, this.agentKey, hooks); break;
      case 'http1': this.link = http1(p, this.id, this.agentKey, hooks); break;
      case 'ws': this.link = await ws(p, this.id, this.agentKey, hooks); break;
    }
    const acked = new Promise<void>((resolve) => { this.firstAck = resolve; });
    this.beat();
    let timeout: NodeJS.Timeout | undefined;
    await Promise.race([acked, new Promise((_, reject) => { timeout = setTimeout(() => reject(new Error('first heartbeat not acked')), CONNECT_TIMEOUT_MS); })]);
    clearTimeout(timeout);
  }

  /** Send every `intervalMs` from `phaseMs` on, or keep `inflight` unacked ('max'). */
  start(phaseMs: number): void {
    if (this.plan.mode === 'max') {
      for (let i = 0; i < this.plan.inflight; i++) this.beat();
      return;
    }
    this.timer = setTimeout(() => {
      this.beat();
      this.timer = setInterval(() => this.beat(), this.plan.intervalMs);
    }, phaseMs);
  }

  stop(): void {
    clearTimeout(this.timer);
    clearInterval(this.timer);
    this.link?.close();
  }

  private beat(): void {
    if (!running || this.link === undefined) return;
    const seq = ++this.seq;
    this.pending.set(seq, performance.now());
    if (tally.measuring) tally.sent++;
    this.link.send({ seq, sampleAt: Date.now(), cpu: Math.random() * 100, mem: Math.random() * 100 });
  }

  private onAck(seq: number): void {
    const sentAt = this.pending.get(seq);
    if (sentAt === undefined) return;
    this.pending.delete(seq);
    if (tally.measuring) {
      tally.acks++;
      recordLatency(performance.now() - sentAt);
    }
    if (this.firstAck !== undefined) {
      const f = this.firstAck;
      this.firstAck = undefined;
      f();
      return;
    }
    if (this.plan.mode === 'max') this.beat();
  }

  private onError(err: unknown): void {
    tally.errors++;
    if (tally.firstError === '') tally.firstError = describe(err);
  }
}

function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
}

async function main(): Promise<void> {
  const plan = JSON.parse(process.argv[2] ?? '{}') as ClientPlan;
  const agents = Array.from({ length: plan.agents }, (_, i) => new SimAgent(plan, `i-${i.toString(16).padStart(17, '0')}`));
  const stop = () => {
    running = false;
    for (const a of agents) a.stop();
    process.exit(0);
  };
  onLines(process.stdin, (line) => {
    if (line === 'mark') {
      Object.assign(tally, { measuring: true, acks: 0, sent: 0, errors: 0, firstError: '', n: 0 });
      say({ event: 'marked' });
    } else if (line === 'report') {
      const sorted = tally.latencies.slice(0, tally.n).sort();
      say({ event: 'report', acks: tally.acks, sent: tally.sent, errors: tally.errors, firstError: tally.firstError,
        p50Ms: percentile(sorted, 0.5), p99Ms: percentile(sorted, 0.99), maxMs: sorted.at(-1) ?? 0 });
    } else if (line === 'stop') {
      stop();
    }
  }, stop);
  process.on('SIGTERM', stop);

  let connected = 0;
  let failed = 0;
  let firstError = '';
  for (let i = 0; i < agents.length; i += CONNECT_CONCURRENCY) {
    await Promise.all(agents.slice(i, i + CONNECT_CONCURRENCY).map((a) => a.connect().then(
      () => { connected++; },
      (err: unknown) => { failed++; if (firstError === '') firstError = describe(err); },
    )));
  }
  // Connection-time errors are reported at `ready`; the tally counts its own.
  tally.errors = 0;
  tally.firstError = '';
  agents.forEach((a, i) => a.start((i / agents.length) * plan.intervalMs));
  say({ event: 'ready', connected, failed, firstError });
}

main().catch((err: unknown) => {
  process.stderr.write(`transport-client: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
