/**
 * What bench/transport.ts, its server child (transport-server.ts) and its client child
 * (transport-client.ts) share: the transports, the heartbeat and ack as each one carries them,
 * the bench-only unary service, and the JSON-line control protocol on the children's stdio.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { packageRoot } from '../lib/paths.js';
import type { HeartbeatAck, HeartbeatAck__Output } from '../lib/proto.js';

/** The four transports under test. */
export const TRANSPORTS = ['grpc-stream', 'grpc-unary', 'http1', 'ws'] as const;
export type TransportName = (typeof TRANSPORTS)[number];

/** Shared token every agent presents (`authorization: Bearer …`), 43 characters like `certs init`'s token.txt. */
export const BENCH_TOKEN = 'bench-token-0123456789abcdefghijklmnopqrstu';
/** Metadata / header key of the random per-process agent key (as agent/reporter.ts sends it). */
export const AGENT_KEY_HEADER = 'agent-key';
/** Header naming the session on the WebSocket upgrade: the gRPC stream's metadata key; the bench's session id is the instance id. */
export const INSTANCE_HEADER = 'session-id';
/** HTTP/1.1 endpoint of the JSON POST transport. */
export const HTTP_PATH = '/v1/heartbeats';
/** WebSocket endpoint. */
export const WS_PATH = '/v1/heartbeats/ws';
/** Keepalive of the long-lived transports, ms: the monitor server's and the agent's gRPC keepalive (10 s). */
export const KEEPALIVE_MS = 10_000;
/** Deadline of each unary call, ms (agent/reporter.ts CALL_DEADLINE_MS). */
export const UNARY_DEADLINE_MS = 5_000;

/** gRPC channel options of the bench clients: the agent's keepalive, and one connection per simulated agent. */
export const GRPC_CLIENT_OPTIONS: grpc.ChannelOptions = {
  'grpc.keepalive_time_ms': KEEPALIVE_MS,
  'grpc.keepalive_timeout_ms': 5_000,
  'grpc.keepalive_permit_without_calls': 1,
  // grpc-js shares one subchannel (one TCP connection) among clients with the same target and
  // options; a local pool gives each simulated agent its own connection, as separate hosts have.
  'grpc.use_local_subchannel_pool': 1,
};

/** gRPC server options: the monitor server's (monitor-server/server.ts). */
export const GRPC_SERVER_OPTIONS: grpc.ChannelOptions = {
  'grpc.keepalive_time_ms': KEEPALIVE_MS,
  'grpc.keepalive_timeout_ms': 5_000,
  'grpc.http2.min_ping_interval_without_data_ms': 5_000,
  'grpc.keepalive_permit_without_calls': 1,
};

/** A heartbeat as the JSON transports carry it: monitor.v1.Heartbeat's fields (snake_case, as the proto). */
export interface JsonHeartbeat {
  /** Only where there is no session (HTTP/1.1): a WebSocket names its instance once, at the upgrade. */
  readonly instance_id?: string;
  readonly seq: number;
  /** Unix epoch ms. */
  readonly sample_time_ms: number;
  /** 0..100. */
  readonly cpu_percent: number;
  /** 0..100. */
  readonly mem_percent: number;
}

/** The ack every transport returns: monitor.v1.HeartbeatAck's fields. */
export interface JsonAck {
  readonly persisted_seq: number;
  readonly rejected: number;
  readonly reject_reason: string;
  readonly group: { readonly live_instances: number; readonly demand_percent: number; readonly as_of_ms: number };
}

/** One call of the bench-only unary service: bench/transport.proto's UnaryHeartbeat (its comments give the units). */
export interface UnaryHeartbeat {
  instance_id: string;
  seq: number | string;
  sample_time_ms: number | string;
  cpu_percent: number;
  mem_percent: number;
}

/** UnaryHeartbeat as the server reads it (64-bit integers as strings, `--longs String`). */
export interface UnaryHeartbeat__Output {
  instance_id: string;
  seq: string;
  sample_time_ms: string;
  cpu_percent: number;
  mem_percent: number;
}

/** Client of bench.transport.v1.UnaryMonitor. */
export interface UnaryMonitorClient extends grpc.Client {
  Beat(req: UnaryHeartbeat, md: grpc.Metadata, opts: grpc.CallOptions, cb: grpc.requestCallback<HeartbeatAck__Output>): grpc.ClientUnaryCall;
}

/** Server side of bench.transport.v1.UnaryMonitor. */
export interface UnaryMonitorHandlers extends grpc.UntypedServiceImplementation {
  Beat: grpc.handleUnaryCall<UnaryHeartbeat__Output, HeartbeatAck>;
}

/** The loaded client class, with the service definition for Server.addService. */
export interface UnaryMonitorCtor {
  new (address: string, creds: grpc.ChannelCredentials, options?: grpc.ChannelOptions): UnaryMonitorClient;
  readonly service: grpc.ServiceDefinition;
}

let unary: UnaryMonitorCtor | undefined;

/** bench.transport.v1.UnaryMonitor, loaded with the options of lib/proto.ts. */
export function unaryMonitor(): UnaryMonitorCtor {
  if (unary === undefined) {
    const root = packageRoot();
    const def = protoLoader.loadSync(join(root, 'bench', 'transport.proto'), {
      keepCase: true, longs: String, enums: String, defaults: true, oneofs: true, includeDirs: [join(root, 'proto')],
    });
    const pkg = grpc.loadPackageDefinition(def) as unknown as { bench: { transport: { v1: { UnaryMonitor: UnaryMonitorCtor } } } };
    unary = pkg.bench.transport.v1.UnaryMonitor;
  }
  return unary;
}

/** TLS files for the server (cert + key) and the clients (CA), made by `autoscaler certs init`. */
export interface TlsFiles {
  /** Server certificate (PEM), names localhost and 127.0.0.1. */
  readonly certFile: string;
  /** Its private key (PEM). */
  readonly keyFile: string;
  /** The CA that signed it (PEM), which the clients trust. */
  readonly caFile: string;
}

/** The PEM contents of the TLS files. */
export function readTls(files: TlsFiles): { cert: Buffer; key: Buffer; ca: Buffer } {
  return { cert: readFileSync(files.certFile), key: readFileSync(files.keyFile), ca: readFileSync(files.caFile) };
}

/** How the client child is told what to run (one JSON argument). */
export interface ClientPlan {
  readonly transport: TransportName;
  /** The server child's port on 127.0.0.1. */
  readonly port: number;
  /** Set: connect with TLS, trusting this CA. */
  readonly tls: TlsFiles | undefined;
  /** Simulated agents, one connection each. */
  readonly agents: number;
  /** 'rate': each agent sends every `intervalMs`, phases spread evenly; 'max': each keeps `inflight` unacked. */
  readonly mode: 'rate' | 'max';
  /** Heartbeat interval in 'rate' mode, ms. */
  readonly intervalMs: number;
  /** Unacked heartbeats each agent keeps in 'max' mode. */
  readonly inflight: number;
}

/** Server child → parent. */
export type ServerMessage =
  | { readonly event: 'listening'; readonly port: number }
  | { readonly event: 'count'; readonly heartbeats: number; readonly invalid: number; readonly instances: number };

/** Client child → parent. */
export type ClientMessage =
  | { readonly event: 'ready'; readonly connected: number; readonly failed: number; readonly firstError: string }
  | { readonly event: 'marked' }
  | { readonly event: 'report'; readonly acks: number; readonly sent: number; readonly errors: number; readonly firstError: string;
      readonly p50Ms: number; readonly p99Ms: number; readonly maxMs: number };

/** Call `onLine` for every line of `input`; `onEnd` when it closes (the parent went away). */
export function onLines(input: Readable, onLine: (line: string) => void, onEnd: () => void): void {
  const rl = createInterface({ input, crlfDelay: Infinity });
  rl.on('line', (line) => { if (line.trim() !== '') onLine(line.trim()); });
  rl.on('close', onEnd);
}

/** Write one JSON line to stdout (the control channel to the parent). */
export function say(msg: ServerMessage | ClientMessage): void {
  process.stdout.write(`${JSON.stringify(msg)}\n`);
}

/** The value of `--name` in argv, or undefined. */
export function arg(argv: readonly string[], name: string): string | undefined {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
}
