/**
 * The reference for bench/fleet.ts: a bare gRPC server with the monitor's proto, the same server
 * options and the same TLS (monitor-server/tls.ts ServerTls from MONITOR_TLS_CERT,
 * MONITOR_TLS_KEY, MONITOR_TLS_CLIENT_CA), that only counts heartbeats and acks each stream's
 * highest seq every 200 ms (REFERENCE_ACK_INTERVAL_MS: the monitor's flush interval when issue 10 defined the reference). No store, no validation, no liveness:
 * what the monitor server costs above it is what its own work costs.
 *
 * BARE_IMPL picks the gRPC server under the same handlers:
 * - `grpc-js` (the default): grpc-js's server, with the options the monitor server gave it before
 *   lib/grpc-server.ts;
 * - `h2`: lib/grpc-server.ts's GrpcServer on node:http2, with the options monitor-server/server.ts
 *   gives it: what the monitor's transport costs alone.
 *
 * Started by bench/fleet.ts with an IPC channel; sends `{ type: 'listening', port }` and exits
 * when the channel closes. Standalone (`BARE_IMPL=h2 node dist/bench/bare-server.js`) it prints
 * the port. BARE_PORT: the port to listen on (0, the default: the OS picks). BARE_ACK_INTERVAL_MS:
 * how often each stream is acked (default 200).
 */
import * as grpc from '@grpc/grpc-js';
import { randomUUID } from 'node:crypto';
import { DEFAULT_HEARTBEAT_INTERVAL_MS, DEFAULT_MAX_MESSAGE_BYTES } from '../config/monitor-server.js';
import { GrpcServer, type DuplexHandler, type Handlers, type UnaryHandler } from '../lib/grpc-server.js';
import { SESSION_METADATA_KEY, monitorProto, type HeartbeatAck, type Heartbeat__Output, type MonitorHandlers, type RegisterRequest__Output } from '../lib/proto.js';
import { ServerTls } from '../monitor-server/tls.js';
import type { DeregisterRequest__Output } from '../proto/gen/monitor/v1/DeregisterRequest.js';
import type { DeregisterResponse } from '../proto/gen/monitor/v1/DeregisterResponse.js';
import type { RegisterResponse } from '../proto/gen/monitor/v1/RegisterResponse.js';
import { MONITOR_GRPC_LIMITS } from '../monitor-server/grpc-limits.js';
import type { FromBare } from './fleet-common.js';

/** What monitor-server/server.ts gives its GrpcServer. */
const H2_OPTIONS = MONITOR_GRPC_LIMITS;

type Impl = 'grpc-js' | 'h2';

/** The issue's reference acks every heartbeat within 200 ms. */
const REFERENCE_ACK_INTERVAL_MS = 200;

/** A heartbeat stream as the counting core sees it: where its acks go. */
interface Stream {
  readonly write: (ack: HeartbeatAck) => void;
  readonly instanceId: string;
  highest: number;
  acked: number;
}

/** The bare server's whole job, whichever gRPC server carries it. */
class Counting {
  private readonly sessions = new Map<string, string>(); // session id → instance id
  private readonly lastSeq = new Map<string, number>(); // instance id → highest seq seen
  readonly streams = new Set<Stream>();
  heartbeats = 0;

  register(instanceId: string): RegisterResponse {
    const id = randomUUID();
    this.sessions.set(id, instanceId);
    return { session_id: id, heartbeat_interval_ms: DEFAULT_HEARTBEAT_INTERVAL_MS, last_seq: this.lastSeq.get(instanceId) ?? 0 };
  }

  deregister(sessionId: string): void {
    this.sessions.delete(sessionId);
  }

  /** A stream for a known session, or undefined (the caller refuses it with FAILED_PRECONDITION). */
  open(sessionId: unknown, write: (ack: HeartbeatAck) => void): Stream | undefined {
    const instanceId = typeof sessionId === 'string' ? this.sessions.get(sessionId) : undefined;
    if (instanceId === undefined) return undefined;
    const s: Stream = { write, instanceId, highest: this.lastSeq.get(instanceId) ?? 0, acked: 0 };
    this.streams.add(s);
    return s;
  }

  heartbeat(s: Stream, hb: Heartbeat__Output): void {
    this.heartbeats++;
    const seq = Number(hb.seq);
    if (seq > s.highest) s.highest = seq;
  }

  close(s: Stream): void {
    if (!this.streams.delete(s)) return;
    this.lastSeq.set(s.instanceId, Math.max(this.lastSeq.get(s.instanceId) ?? 0, s.highest));
  }

  /** Ack each stream's highest seq, if it moved. */
  flush(now: number): void {
    // The same ack shape as the monitor's (a group view included), so both send the same bytes.
    const group = { live_instances: this.streams.size, demand_percent: -1, as_of_ms: now };
    for (const s of this.streams) {
      if (s.highest <= s.acked) continue;
      s.acked = s.highest;
      s.write({ persisted_seq: s.highest, rejected: 0, reject_reason: '', group });
    }
  }
}

const UNKNOWN_SESSION = { code: grpc.status.FAILED_PRECONDITION, details: 'unknown session' };

/** The same files as grpc-js server credentials; with a client CA, mutual (a certificate is required). */
function grpcJsCredentials(tls: ServerTls | undefined): grpc.ServerCredentials {
  if (tls === undefined) return grpc.ServerCredentials.createInsecure();
  const o = tls.nodeOptions();
  return grpc.ServerCredentials.createSsl(o.ca ?? null, [{ private_key: o.key, cert_chain: o.cert }], o.requestCert);
}

async function listenGrpcJs(core: Counting, tls: ServerTls | undefined, port: number): Promise<number> {
  const handlers: MonitorHandlers = {
    Register: (call, callback) => callback(null, core.register(call.request.instance_id)),
    Heartbeats: (call) => {
      const s = core.open(call.metadata.get(SESSION_METADATA_KEY)[0], (ack) => call.write(ack));
      if (s === undefined) {
        call.emit('error', UNKNOWN_SESSION);
        return;
      }
      call.on('data', (hb: Heartbeat__Output) => core.heartbeat(s, hb));
      const done = () => core.close(s);
      call.on('end', () => { done(); call.end(); });
      call.on('error', done);
      call.on('cancelled', done);
    },
    Deregister: (call, callback) => {
      core.deregister(call.request.session_id);
      callback(null, {});
    },
  };
  // The options monitor-server/server.ts gave grpc-js's server.
  const server = new grpc.Server({
    'grpc.max_receive_message_length': DEFAULT_MAX_MESSAGE_BYTES,
    'grpc.max_send_message_length': DEFAULT_MAX_MESSAGE_BYTES,
    'grpc.keepalive_time_ms': 10_000,
    'grpc.keepalive_timeout_ms': 5_000,
    'grpc.http2.min_ping_interval_without_data_ms': 5_000,
    'grpc.keepalive_permit_without_calls': 1,
  });
  server.addService(monitorProto().monitor.v1.Monitor.service, handlers);
  return new Promise((resolve, reject) => {
    server.bindAsync(`127.0.0.1:${port}`, grpcJsCredentials(tls), (err, bound) => (err ? reject(err) : resolve(bound)));
  });
}

function listenH2(core: Counting, tls: ServerTls | undefined, port: number, refused: Map<string, number>): Promise<number> {
  const register: UnaryHandler<RegisterRequest__Output, RegisterResponse> = (call, callback) => callback(null, core.register(call.request.instance_id));
  const heartbeats: DuplexHandler<Heartbeat__Output, HeartbeatAck> = (call) => {
    const s = core.open(call.metadata.get(SESSION_METADATA_KEY)[0], (ack) => { call.write(ack); });
    if (s === undefined) {
      call.fail(UNKNOWN_SESSION);
      return;
    }
    call.on('data', (hb) => core.heartbeat(s, hb));
    call.on('end', () => { core.close(s); call.end(); });
    call.on('close', () => core.close(s));
  };
  const deregister: UnaryHandler<DeregisterRequest__Output, DeregisterResponse> = (call, callback) => {
    core.deregister(call.request.session_id);
    callback(null, {});
  };
  const server = new GrpcServer({
    ...H2_OPTIONS,
    maxReceiveMessageBytes: DEFAULT_MAX_MESSAGE_BYTES,
    maxSendMessageBytes: DEFAULT_MAX_MESSAGE_BYTES,
    onError: (where, err) => process.stderr.write(`bare server: ${where}: ${err instanceof Error ? err.message : String(err)}\n`),
    onRefused: (reason) => refused.set(reason, (refused.get(reason) ?? 0) + 1),
  });
  const handlers: Handlers = { Register: register, Heartbeats: heartbeats, Deregister: deregister };
  server.addService(monitorProto().monitor.v1.Monitor.service, handlers);
  return server.listen('127.0.0.1', port, tls?.nodeOptions());
}

async function main(): Promise<void> {
  const env = process.env;
  const impl = (env.BARE_IMPL || 'grpc-js') as Impl;
  if (impl !== 'grpc-js' && impl !== 'h2') throw new Error(`BARE_IMPL=${String(env.BARE_IMPL)}: expected grpc-js or h2`);
  const cert = env.MONITOR_TLS_CERT ?? '';
  const tls = cert === '' ? undefined
    : new ServerTls({ certFile: cert, keyFile: env.MONITOR_TLS_KEY ?? '', clientCaFile: env.MONITOR_TLS_CLIENT_CA || undefined }, () => Date.now());
  const requested = Number(env.BARE_PORT ?? '0');
  const core = new Counting();
  const refused = new Map<string, number>();
  const port = impl === 'h2' ? await listenH2(core, tls, requested, refused) : await listenGrpcJs(core, tls, requested);
  const ackEvery = Number(env.BARE_ACK_INTERVAL_MS ?? REFERENCE_ACK_INTERVAL_MS);
  if (!Number.isInteger(ackEvery) || ackEvery < 1) throw new Error(`BARE_ACK_INTERVAL_MS=${String(env.BARE_ACK_INTERVAL_MS)}: a whole number of ms, at least 1`);
  setInterval(() => core.flush(Date.now()), ackEvery);
  if (process.send !== undefined) {
    process.send({ type: 'listening', port } satisfies FromBare);
    process.on('disconnect', () => process.exit(0));
  } else {
    process.stdout.write(`bare server (${impl}) listening on 127.0.0.1:${port} (${tls === undefined ? 'plaintext' : 'tls'})\n`);
    setInterval(() => {
      const r = [...refused.entries()].map(([k, v]) => `${k} ${v}`).join(', ');
      process.stdout.write(`${core.heartbeats} heartbeats, ${core.streams.size} streams${r === '' ? '' : `; refused: ${r}`}\n`);
    }, 10_000);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
