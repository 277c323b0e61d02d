/**
 * What bench/fleet.ts and its children share: the IPC messages between the orchestrator and the
 * load generators (bench/fleet-agents.ts), the link a simulated agent's client gives it
 * (AgentTransport: grpc-js or bench/fleet-h2-client.ts), a mergeable latency histogram, and /proc
 * readers. Linux only (/proc).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import type { HeartbeatIn, RegisterRequestIn } from '../agent/wire.js';
import type { HeartbeatAck__Output, RegisterResponse__Output } from '../lib/proto.js';

/** TLS files of a simulated agent (the AGENT_TLS_* keys); undefined: plaintext. */
export interface AgentTlsFiles {
  /** AGENT_TLS_CA: the CA that signed the server certificate. */
  readonly caFile: string;
  /** AGENT_TLS_CERT / AGENT_TLS_KEY: the client certificate (mutual TLS). */
  readonly certFile: string;
  readonly keyFile: string;
}

/**
 * Which client the simulated agents use: `raw`, bench/fleet-raw-client.ts (the same gRPC frames
 * framed by hand on node:tls, the least generator CPU); `h2`, bench/fleet-h2-client.ts (the same
 * frames on node:http2); `grpc-js`, the agent's own client library.
 */
export type AgentClientKind = 'raw' | 'h2' | 'grpc-js';

/** What one load generator process simulates. */
export interface AgentsConfig {
  /** The client every agent of this process uses. */
  readonly client: AgentClientKind;
  /** host:port of the server under test. */
  readonly target: string;
  /** Scaling group every agent registers in. */
  readonly groupId: string;
  /** Instance ids are `${idPrefix}${i}` for i in [firstIndex, firstIndex + count). */
  readonly idPrefix: string;
  readonly firstIndex: number;
  readonly count: number;
  /** Epoch ms all generators count their intervals from, so phases are fleet-wide (see `phaseOf`). */
  readonly epochMs: number;
  /** Heartbeat interval, ms (1 Hz: 1000). */
  readonly intervalMs: number;
  /** Most Registers in flight at once in this process while the fleet connects (the window adapts below it). */
  readonly connectConcurrency: number;
  /** New agents started per second in this process while the fleet connects; 0: as fast as the concurrency allows. */
  readonly connectRatePerSec: number;
  readonly tls: AgentTlsFiles | undefined;
}

/** Call metadata as header names and values (lowercase ASCII keys, no `-bin` keys). */
export type CallMetadata = Readonly<Record<string, string>>;

/**
 * A failed call as grpc-js reports it (its ServiceError): a `status` code and the details. Both
 * clients reject and end streams with errors of this shape, so the generator counts them alike.
 */
export interface CallError {
  readonly code: number;
  readonly details: string;
}

/** The open Heartbeats stream of one agent. */
export interface HeartbeatSink {
  /** Queue one heartbeat (written when the connection allows). */
  write(hb: HeartbeatIn): void;
  /** Cancel the stream (RST_STREAM CANCEL); its `onEnd` may still be called, with CANCELLED. */
  cancel(): void;
}

/** One simulated agent's client: its own connection, the two calls an agent makes on it. */
export interface AgentTransport {
  /** Register; rejects with a CallError (or an Error when nothing came back). */
  register(req: RegisterRequestIn, metadata: CallMetadata, deadlineMs: number): Promise<RegisterResponse__Output>;
  /**
   * Open the Heartbeats stream. `onEnd` is called once when it ends: `undefined` when the server
   * ended it with OK, else the CallError. Neither callback runs before this returns.
   */
  heartbeats(metadata: CallMetadata, onAck: (ack: HeartbeatAck__Output) => void, onEnd: (err: unknown) => void): HeartbeatSink;
  /** Close the connection; calls still open end. */
  close(): void;
}

export type ToAgents =
  | { readonly type: 'start'; readonly config: AgentsConfig }
  | { readonly type: 'window-start' }
  | { readonly type: 'window-end' }
  | { readonly type: 'stop' };

/** What one generator measured between window-start and window-end. */
export interface WindowReport {
  /** Heartbeats written to a stream. */
  readonly sent: number;
  /** Heartbeats covered by an ack (`persisted_seq` at or above them). */
  readonly acked: number;
  /** Ack messages received. */
  readonly acks: number;
  /** Heartbeats dropped from a full buffer (600, as the real agent). */
  readonly dropped: number;
  /** Streams that ended or failed, and re-registrations after them. */
  readonly streamErrors: number;
  readonly reconnects: number;
  /** Ack latency histogram (send → ack received), sparse: [bucket, count]. */
  readonly ackHist: readonly (readonly [number, number])[];
  /** Event-loop delay of the generator, p99 and max, ms: a generator that lags delays acks it measures. */
  readonly loopDelayP99Ms: number;
  readonly loopDelayMaxMs: number;
  /** Longest event-loop delay since the generator started (the ramp included), ms. */
  readonly loopDelayMaxSinceStartMs: number;
  /** Agents with an open stream at window end. */
  readonly streaming: number;
  /** Failed calls and ended streams since the generator started, by status and details. */
  readonly errors: Readonly<Record<string, number>>;
}

export type FromAgents =
  | {
    readonly type: 'ready'; readonly connected: number; readonly failed: number; readonly ms: number; readonly errors: Readonly<Record<string, number>>;
    /** Time from an agent's first Register to its stream opening, histogram (sparse). */
    readonly connectHist: readonly (readonly [number, number])[];
  }
  | { readonly type: 'window'; readonly report: WindowReport };

/**
 * Where in each interval agent i sends, as a fraction: the golden-ratio sequence, so that the
 * first N agents are spread evenly over the interval for every N (the fleet grows step by step).
 */
export function phaseOf(i: number): number {
  const x = i * 0.618_033_988_749_895;
  return x - Math.floor(x);
}

/** Bare server → orchestrator. */
export type FromBare = { readonly type: 'listening'; readonly port: number };

/**
 * Latency histogram in ms: 1 ms buckets below 10 s, 100 ms buckets up to 120 s, one overflow
 * bucket. Mergeable across processes (sparse form over IPC).
 */
export class Histogram {
  private static readonly FINE = 10_000;
  private static readonly COARSE_STEP = 100;
  private static readonly SIZE = Histogram.FINE + (120_000 - Histogram.FINE) / Histogram.COARSE_STEP + 1;
  private readonly counts = new Float64Array(Histogram.SIZE);
  total = 0;

  add(ms: number): void {
    const v = ms < 0 ? 0 : ms;
    const i = v < Histogram.FINE ? Math.floor(v) : Math.min(Histogram.SIZE - 1, Histogram.FINE + Math.floor((v - Histogram.FINE) / Histogram.COARSE_STEP));
    this.counts[i] = (this.counts[i] ?? 0) + 1;
    this.total++;
  }

  /** The lower edge of the bucket holding quantile q (0..1), ms; NaN when empty. */
  quantile(q: number): number {
    if (this.total === 0) return Number.NaN;
    const rank = Math.max(1, Math.ceil(q * this.total));
    let seen = 0;
    for (let i = 0; i < Histogram.SIZE; i++) {
      seen += this.counts[i] ?? 0;
      if (seen >= rank) return i < Histogram.FINE ? i : Histogram.FINE + (i - Histogram.FINE) * Histogram.COARSE_STEP;
    }
    return Number.POSITIVE_INFINITY;
  }

  sparse(): [number, number][] {
    const out: [number, number][] = [];
    for (let i = 0; i < Histogram.SIZE; i++) {
      const c = this.counts[i] ?? 0;
      if (c > 0) out.push([i, c]);
    }
    return out;
  }

  merge(sparse: readonly (readonly [number, number])[]): void {
    for (const [i, c] of sparse) {
      if (i < 0 || i >= Histogram.SIZE) continue;
      this.counts[i] = (this.counts[i] ?? 0) + c;
      this.total += c;
    }
  }
}

let clkTck: number | undefined;

/** Kernel clock ticks per second (USER_HZ), for /proc CPU times. */
export function ticksPerSecond(): number {
  if (clkTck === undefined) {
    try {
      clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clkTck = 100;
    }
  }
  return clkTck;
}

function cpuMsOf(statPath: string): { user: number; sys: number } {
  const stat = readFileSync(statPath, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ms = 1000 / ticksPerSecond();
  return { user: Number(fields[11]) * ms, sys: Number(fields[12]) * ms }; // utime, stime
}

/** A process's CPU so far (all threads, and its main thread alone), ms, and its RSS, MiB. */
export interface ProcSample {
  readonly cpuMs: number;
  /** Of cpuMs, the part spent in the kernel (system calls, loopback TCP). */
  readonly sysMs: number;
  /** The JavaScript thread: at 100 % of a core, a Node server is saturated whatever the other threads do. */
  readonly mainCpuMs: number;
  readonly rssMiB: number;
}

export function procSample(pid: number): ProcSample {
  const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  const all = cpuMsOf(`/proc/${pid}/stat`);
  const main = cpuMsOf(`/proc/${pid}/task/${pid}/stat`);
  return { cpuMs: all.user + all.sys, sysMs: all.sys, mainCpuMs: main.user + main.sys, rssMiB: Number(rss?.[1] ?? 0) / 1024 };
}

/** Open file descriptors of a process. */
export function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** Whole-machine CPU from /proc/stat: busy and total time, ms summed over cores. */
export function machineCpu(): { busyMs: number; totalMs: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const v = line.trim().split(/\s+/).slice(1, 9).map(Number); // user nice system idle iowait irq softirq steal
  const total = v.reduce((a, b) => a + b, 0);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  const ms = 1000 / ticksPerSecond();
  return { busyMs: (total - idle) * ms, totalMs: total * ms };
}

/**
 * Established TCP connections involving `port` on this host, counted from /proc/net/tcp{,6}:
 * the server's side (local port) and the clients' side (remote port).
 */
export function establishedTo(port: number): { serverSide: number; clientSide: number } {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  let serverSide = 0;
  let clientSide = 0;
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const row of text.split('\n').slice(1)) {
      const f = row.trim().split(/\s+/);
      if (f[3] !== '01') continue; // TCP_ESTABLISHED
      if (f[1]?.endsWith(`:${hex}`)) serverSide++;
      if (f[2]?.endsWith(`:${hex}`)) clientSide++;
    }
  }
  return { serverSide, clientSide };
}
