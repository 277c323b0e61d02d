/**
 * Transport bench (docs/transport.md): the same heartbeat workload over a gRPC bidi stream (the
 * project's proto, as agent/reporter.ts uses it), gRPC unary calls (bench/transport.proto),
 * HTTP/1.1 JSON POSTs with keep-alive, and a WebSocket (`ws`), plain TCP and TLS.
 *
 *   node dist/bench/transport.js [--agents 1000] [--window 20s] [--interval 1s] [--warmup 3s]
 *     [--max-connections 8] [--inflight 32] [--max-window 10s]
 *     [--transports grpc-stream,grpc-unary,http1,ws] [--tls grpc-stream,http1,ws|none] [--phases fleet,max]
 *     [--tls-phases fleet]
 *
 * Each run starts a server child (transport-server.ts) and a client child (transport-client.ts)
 * on 127.0.0.1, so the server's CPU (utime + stime from /proc/PID/stat), RSS and socket bytes
 * (rchar / wchar from /proc/PID/io) are its own. Two loads: the fleet case (`--agents` agents,
 * one connection each, one heartbeat per `--interval`) and the throughput case (a few
 * connections, each keeping `--inflight` heartbeats unacked; HTTP/1.1 can only keep one).
 * Prints markdown tables on stdout and progress on stderr. The whole run is bounded (the plan
 * must fit in 7.5 minutes, and a watchdog ends it at 8); every child is killed on exit.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { certsInit } from '../cli/certs.js';
import { packageRoot } from '../lib/paths.js';
import { monitorProto } from '../lib/proto.js';
import {
  TRANSPORTS, onLines, unaryMonitor, type ClientMessage, type ClientPlan, type JsonAck, type JsonHeartbeat, type ServerMessage, type TlsFiles,
  type TransportName,
} from './transport-common.js';

const CLK_TCK = 100; // Linux USER_HZ
/** Whole-run bound: the plan must fit in this, ms. */
const PLAN_BUDGET_MS = 450_000;
/** Watchdog: the bench ends here whatever it is doing, ms. */
const HARD_LIMIT_MS = 480_000;
/** Per-run time outside warm-up and window (spawn, stop), ms, for the plan's estimate. */
const RUN_OVERHEAD_MS = 5_000;
/** Connecting one agent and having its first heartbeat acked, ms, for the plan's estimate (TLS on a busy machine). */
const CONNECT_MS_PER_AGENT = 10;
const CHILD_EXIT_TIMEOUT_MS = 5_000;

interface Options {
  agents: number;
  windowMs: number;
  intervalMs: number;
  warmupMs: number;
  maxConnections: number;
  inflight: number;
  maxWindowMs: number;
  transports: TransportName[];
  tls: TransportName[];
  tlsPhases: ('fleet' | 'max')[];
  phases: ('fleet' | 'max')[];
}

interface RunSpec {
  readonly transport: TransportName;
  readonly tls: boolean;
  readonly phase: 'fleet' | 'max';
  readonly agents: number;
  readonly inflight: number;
  readonly windowMs: number;
}

interface RunResult {
  readonly spec: RunSpec;
  readonly heartbeatsPerS: number;
  readonly cpuUsPerHb: number;
  readonly serverCpuPct: number;
  readonly clientCpuPct: number;
  readonly rssMiB: number;
  readonly kibPerConnection: number;
  readonly sockets: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly bytesInPerHb: number;
  readonly bytesOutPerHb: number;
  readonly errors: number;
  readonly note: string;
}

class UsageError extends Error {
  override name = 'UsageError';
}

function duration(flag: string, text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  if (m === null) throw new UsageError(`--${flag}: expected a duration like 20s, 500ms or 2m (got "${text}")`);
  const n = Number(m[1]);
  return Math.round(m[2] === 'ms' ? n : m[2] === 'm' ? n * 60_000 : n * 1000);
}

function count(flag: string, text: string, min: number, max: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`--${flag}: expected an integer ${min}..${max} (got "${text}")`);
  return n;
}

function transports(flag: string, text: string): TransportName[] {
  if (text === 'none' || text === '') return [];
  const names = text.split(',').map((s) => s.trim());
  const bad = names.filter((n) => !TRANSPORTS.includes(n as TransportName));
  if (bad.length > 0) throw new UsageError(`--${flag}: unknown transport ${bad.join(', ')} (known: ${TRANSPORTS.join(', ')})`);
  return names as TransportName[];
}

function phaseList(flag: string, text: string): ('fleet' | 'max')[] {
  const phases = text.split(',').map((s) => s.trim()).filter((s) => s !== '');
  const bad = phases.filter((p) => p !== 'fleet' && p !== 'max');
  if (bad.length > 0) throw new UsageError(`--${flag}: unknown phase ${bad.join(', ')} (known: fleet, max)`);
  return phases as ('fleet' | 'max')[];
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      agents: { type: 'string', default: '1000' },
      window: { type: 'string', default: '20s' },
      interval: { type: 'string', default: '1s' },
      warmup: { type: 'string', default: '3s' },
      'max-connections': { type: 'string', default: '8' },
      inflight: { type: 'string', default: '32' },
      'max-window': { type: 'string', default: '10s' },
      transports: { type: 'string', default: TRANSPORTS.join(',') },
      tls: { type: 'string', default: 'grpc-stream,http1,ws' },
      phases: { type: 'string', default: 'fleet,max' },
      'tls-phases': { type: 'string', default: 'fleet' },
    },
    strict: true,
  });
  const phases = phaseList('phases', values.phases);
  const opts: Options = {
    agents: count('agents', values.agents, 1, 5_000),
    windowMs: duration('window', values.window),
    intervalMs: duration('interval', values.interval),
    warmupMs: duration('warmup', values.warmup),
    maxConnections: count('max-connections', values['max-connections'], 1, 256),
    inflight: count('inflight', values.inflight, 1, 1_000),
    maxWindowMs: duration('max-window', values['max-window']),
    transports: transports('transports', values.transports),
    tls: transports('tls', values.tls),
    phases,
    tlsPhases: phaseList('tls-phases', values['tls-phases']),
  };
  if (opts.windowMs < 1_000 || opts.maxWindowMs < 1_000) throw new UsageError('--window and --max-window must be at least 1s');
  if (opts.intervalMs < 10) throw new UsageError('--interval must be at least 10ms');
  return opts;
}

function plan(opts: Options): RunSpec[] {
  const runs: RunSpec[] = [];
  for (const phase of opts.phases) {
    for (const tls of [false, true]) {
      for (const transport of opts.transports) {
        if (tls && (!opts.tls.includes(transport) || !opts.tlsPhases.includes(phase))) continue;
        runs.push(phase === 'fleet'
          ? { transport, tls, phase, agents: opts.agents, inflight: 1, windowMs: opts.windowMs }
          // HTTP/1.1 answers in order, one request at a time per connection (Node's client does not pipeline).
          : { transport, tls, phase, agents: opts.maxConnections, inflight: transport === 'http1' ? 1 : opts.inflight, windowMs: opts.maxWindowMs });
      }
    }
  }
  return runs;
}

// --- children ---------------------------------------------------------------------------------

const children = new Set<ChildProcess>();
/** The run's temporary folder (TLS files), removed however the bench ends. */
let tempDir: string | undefined;

function killAll(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  if (tempDir !== undefined) rmSync(tempDir, { recursive: true, force: true });
  tempDir = undefined;
}

/** A child speaking JSON lines on stdout, told things by lines on stdin. */
class Child<M extends { event: string }> {
  readonly proc: ChildProcess;
  private readonly queue: M[] = [];
  private waiter: ((m: M) => void) | undefined;
  private readonly exited: Promise<void>;

  constructor(readonly name: string, script: string, args: string[]) {
    this.proc = spawn(process.execPath, [join(packageRoot(), 'dist', 'bench', script), ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
    children.add(this.proc);
    this.exited = new Promise((resolve) => this.proc.once('exit', () => { children.delete(this.proc); resolve(); }));
    if (this.proc.stdout === null) throw new Error(`${name}: no stdout`);
    onLines(this.proc.stdout, (line) => {
      let m: M;
      try { m = JSON.parse(line) as M; } catch { process.stderr.write(`${name}: ${line}\n`); return; }
      if (this.waiter !== undefined) { const w = this.waiter; this.waiter = undefined; w(m); } else this.queue.push(m);
    }, () => {});
  }

  get pid(): number {
    if (this.proc.pid === undefined) throw new Error(`${this.name} did not start`);
    return this.proc.pid;
  }

  send(line: string): void {
    this.proc.stdin?.write(`${line}\n`);
  }

  /** The next message, which must be `event`, within `timeoutMs`. */
  next<E extends M['event']>(event: E, timeoutMs: number): Promise<Extract<M, { event: E }>> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => { this.waiter = undefined; reject(new Error(`${this.name}: no "${event}" within ${timeoutMs} ms`)); }, timeoutMs);
      const onExit = () => { clearTimeout(t); reject(new Error(`${this.name} exited (code ${this.proc.exitCode ?? this.proc.signalCode ?? '?'}) before "${event}"`)); };
      this.proc.once('exit', onExit);
      const take = (m: M) => {
        clearTimeout(t);
        this.proc.off('exit', onExit);
        if (m.event === event) resolve(m as Extract<M, { event: E }>);
        else reject(new Error(`${this.name}: expected "${event}", got ${JSON.stringify(m)}`));
      };
      const queued = this.queue.shift();
      if (queued !== undefined) take(queued);
      else this.waiter = take;
    });
  }

  /** Ask it to go (`line`, or stdin closing), then SIGKILL if it has not within the timeout. */
  async stop(line?: string): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    if (line !== undefined) this.send(line);
    this.proc.stdin?.end();
    const t = setTimeout(() => this.proc.kill('SIGKILL'), CHILD_EXIT_TIMEOUT_MS);
    await this.exited;
    clearTimeout(t);
  }
}

interface ProcSnapshot {
  cpuMs: number;
  rssKiB: number;
  /** Bytes read / written through read(2)/write(2)-family calls: the sockets' payload (the child does no other I/O in the window). */
  rchar: number;
  wchar: number;
  sockets: number;
}

function snapshot(pid: number): ProcSnapshot {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]); // utime + stime, every thread
  const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  const io = readFileSync(`/proc/${pid}/io`, 'utf8');
  const ioField = (name: string) => Number(new RegExp(`^${name}: (\\d+)$`, 'm').exec(io)?.[1] ?? 0);
  let sockets = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try { if (readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('socket:')) sockets++; } catch { /* closed meanwhile */ }
  }
  return { cpuMs: (ticks * 1000) / CLK_TCK, rssKiB: Number(rss?.[1] ?? 0), rchar: ioField('rchar'), wchar: ioField('wchar'), sockets };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function runOne(spec: RunSpec, opts: Options, tlsFiles: TlsFiles | undefined): Promise<RunResult> {
  const tls = spec.tls ? tlsFiles : undefined;
  const server = new Child<ServerMessage>(`server(${spec.transport})`, 'transport-server.js',
    ['--transport', spec.transport, ...(tls !== undefined ? ['--tls', JSON.stringify(tls)] : [])]);
  let client: Child<ClientMessage> | undefined;
  try {
    const { port } = await server.next('listening', 15_000);
    const idle = snapshot(server.pid);
    const clientPlan: ClientPlan = {
      transport: spec.transport, port, tls, agents: spec.agents, mode: spec.phase === 'fleet' ? 'rate' : 'max', intervalMs: opts.intervalMs, inflight: spec.inflight,
    };
    client = new Child<ClientMessage>(`client(${spec.transport})`, 'transport-client.js', [JSON.stringify(clientPlan)]);
    const ready = await client.next('ready', 120_000);
    if (ready.failed > 0) throw new Error(`${ready.failed} of ${spec.agents} agents could not connect: ${ready.firstError}`);
    await sleep(opts.warmupMs);

    server.send('count');
    const c0 = await server.next('count', 5_000);
    const s0 = snapshot(server.pid);
    const k0 = snapshot(client.pid);
    const t0 = performance.now();
    client.send('mark');
    await client.next('marked', 5_000);
    await sleep(spec.windowMs);
    server.send('count');
    const c1 = await server.next('count', 5_000);
    const s1 = snapshot(server.pid);
    const k1 = snapshot(client.pid);
    const elapsedMs = performance.now() - t0;
    client.send('report');
    const rep = await client.next('report', 10_000);

    const hbs = c1.heartbeats - c0.heartbeats;
    const per = (v: number) => (hbs > 0 ? v / hbs : 0);
    const notes: string[] = [];
    if (c1.invalid > 0) notes.push(`${c1.invalid} refused`);
    // One connection per simulated agent (sockets the server holds beyond those it had listening).
    const connections = s1.sockets - idle.sockets;
    if (connections !== spec.agents) notes.push(`${connections} server connections`);
    if (rep.errors > 0) notes.push(`first error: ${rep.firstError}`);
    if (spec.phase === 'fleet') {
      const expected = (spec.agents * spec.windowMs) / opts.intervalMs;
      if (hbs < expected * 0.95) notes.push(`only ${Math.round((100 * hbs) / expected)}% of the offered load`);
    }
    return {
      spec,
      heartbeatsPerS: hbs / (elapsedMs / 1000),
      cpuUsPerHb: per((s1.cpuMs - s0.cpuMs) * 1000),
      serverCpuPct: ((s1.cpuMs - s0.cpuMs) / elapsedMs) * 100,
      clientCpuPct: ((k1.cpuMs - k0.cpuMs) / elapsedMs) * 100,
      rssMiB: s1.rssKiB / 1024,
      kibPerConnection: (s1.rssKiB - idle.rssKiB) / spec.agents,
      sockets: s1.sockets,
      p50Ms: rep.p50Ms,
      p99Ms: rep.p99Ms,
      bytesInPerHb: per(s1.rchar - s0.rchar),
      bytesOutPerHb: per(s1.wchar - s0.wchar),
      errors: rep.errors,
      note: notes.join('; '),
    };
  } finally {
    await client?.stop('stop');
    await server.stop();
  }
}

// --- report -----------------------------------------------------------------------------------

/** Encoded application payload of one heartbeat and its ack, per transport (no framing). */
function payloadSizes(agents: number): Record<TransportName, { up: number; down: number }> {
  const now = Date.now();
  const cpu = 43.21987654321;
  const mem = 61.0372819283;
  const seq = 12_345;
  const instanceId = 'i-0000000000000002a';
  const group = { live_instances: agents, demand_percent: -1, as_of_ms: now };
  const ack: JsonAck = { persisted_seq: seq, rejected: 0, reject_reason: '', group };
  const stream = monitorProto().monitor.v1.Monitor.service.Heartbeats;
  const unary = unaryMonitor().service.Beat;
  if (unary === undefined) throw new Error('bench/transport.proto has no Beat');
  const hb = { seq, sample_time_ms: now, cpu_percent: cpu, mem_percent: mem };
  const jsonHb: JsonHeartbeat = hb;
  const grpcDown = stream.responseSerialize({ persisted_seq: seq, rejected: 0, reject_reason: '', group }).length;
  return {
    'grpc-stream': { up: stream.requestSerialize(hb).length, down: grpcDown },
    'grpc-unary': { up: unary.requestSerialize({ instance_id: instanceId, ...hb }).length, down: grpcDown },
    http1: { up: Buffer.byteLength(JSON.stringify({ instance_id: instanceId, ...jsonHb })), down: Buffer.byteLength(JSON.stringify(ack)) },
    ws: { up: Buffer.byteLength(JSON.stringify(jsonHb)), down: Buffer.byteLength(JSON.stringify(ack)) },
  };
}

const ENCODING: Record<TransportName, string> = {
  'grpc-stream': 'protobuf; instance in the session',
  'grpc-unary': 'protobuf + instance_id',
  http1: 'JSON + instance_id',
  ws: 'JSON; instance in the session',
};

const f0 = (n: number) => Math.round(n).toLocaleString('en-US');
const f1 = (n: number) => n.toFixed(1);
const f2 = (n: number) => n.toFixed(2);
const name = (s: RunSpec) => `${s.transport}${s.tls ? ' + TLS' : ''}`;

function tables(results: readonly RunResult[], opts: Options): string {
  const out: string[] = [];
  const sizes = payloadSizes(opts.agents);
  out.push('Payload of one heartbeat / its ack, bytes, before framing:', '',
    '| transport | encoding | heartbeat | ack |', '|---|---|---:|---:|',
    ...opts.transports.map((t) => `| ${t} | ${ENCODING[t]} | ${sizes[t].up} | ${sizes[t].down} |`), '');
  const fleet = results.filter((r) => r.spec.phase === 'fleet');
  if (fleet.length > 0) {
    out.push(`Fleet: ${f0(opts.agents)} agents × one heartbeat per ${opts.intervalMs} ms, one connection each, ${opts.windowMs / 1000} s window:`, '',
      '| transport | heartbeats/s | server CPU µs/heartbeat | server CPU % | client CPU % | server RSS MiB | KiB/connection | ack p50 ms | ack p99 ms | bytes in/heartbeat | bytes out/heartbeat | errors | note |',
      '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|',
      ...fleet.map((r) => `| ${name(r.spec)} | ${f0(r.heartbeatsPerS)} | ${f1(r.cpuUsPerHb)} | ${f1(r.serverCpuPct)} | ${f1(r.clientCpuPct)} | ${f0(r.rssMiB)} | ${f1(r.kibPerConnection)} | ${f2(r.p50Ms)} | ${f2(r.p99Ms)} | ${f0(r.bytesInPerHb)} | ${f0(r.bytesOutPerHb)} | ${r.errors} | ${r.note} |`), '');
  }
  const max = results.filter((r) => r.spec.phase === 'max');
  if (max.length > 0) {
    out.push(`Throughput: ${opts.maxConnections} connections, each keeping up to ${opts.inflight} heartbeats unacked (HTTP/1.1: 1), ${opts.maxWindowMs / 1000} s window:`, '',
      '| transport | in flight | heartbeats/s | server CPU µs/heartbeat | server CPU % | client CPU % | ack p50 ms | ack p99 ms | bytes in/heartbeat | bytes out/heartbeat | errors | note |',
      '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|',
      ...max.map((r) => `| ${name(r.spec)} | ${r.spec.agents} × ${r.spec.inflight} | ${f0(r.heartbeatsPerS)} | ${f1(r.cpuUsPerHb)} | ${f1(r.serverCpuPct)} | ${f1(r.clientCpuPct)} | ${f2(r.p50Ms)} | ${f2(r.p99Ms)} | ${f0(r.bytesInPerHb)} | ${f0(r.bytesOutPerHb)} | ${r.errors} | ${r.note} |`), '');
  }
  return out.join('\n');
}

/** The header lines and tables, for what has run so far. */
function report(argv: readonly string[], opts: Options, started: Date, loadAtStart: number[], results: readonly RunResult[], failures: readonly string[]): string {
  const cpu = cpus();
  const seconds = Math.round((Date.now() - started.getTime()) / 1000);
  const load = (l: number[]) => l.map((v) => v.toFixed(1)).join(' / ');
  return [
    `Transport bench, ${started.toISOString()}: node ${process.version}, ${cpu.length} × ${cpu[0]?.model.trim() ?? 'unknown CPU'}, ${process.platform} ${process.arch}; ${seconds} s.`,
    `Load average (1 / 5 / 15 min) at start ${load(loadAtStart)}, at end ${load(loadavg())}: the machine is shared, so latencies and rates carry other processes' load.`,
    `Command: node dist/bench/transport.js ${argv.join(' ')}`.trimEnd(),
    'Server and clients are separate processes on 127.0.0.1; plain TCP unless the row says TLS (TLS 1.3, P-256 certificate from `autoscaler certs init`).',
    'Server CPU and bytes are the server process\'s own (/proc/PID/stat utime+stime, /proc/PID/io rchar/wchar: socket payload, no TCP/IP headers).',
    '', tables(results, opts),
    ...(failures.length > 0 ? ['Runs that failed:', '', ...failures.map((f) => `- ${f}`), ''] : []),
  ].join('\n');
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const opts = parseOptions(argv);
  const runs = plan(opts);
  const estimateMs = runs.reduce((sum, r) => sum + r.windowMs + opts.warmupMs + RUN_OVERHEAD_MS + r.agents * CONNECT_MS_PER_AGENT, 0);
  if (estimateMs > PLAN_BUDGET_MS) {
    throw new UsageError(`the plan (${runs.length} runs) would take about ${Math.round(estimateMs / 1000)} s, over the ${PLAN_BUDGET_MS / 1000} s budget: use a shorter --window / --max-window, fewer --transports or --tls none`);
  }
  const started = new Date();
  const loadAtStart = loadavg();
  const results: RunResult[] = [];
  const failures: string[] = [];
  const watchdog = setTimeout(() => {
    process.stderr.write(`\ntransport bench: still running after ${HARD_LIMIT_MS / 1000} s; stopping with what has run\n`);
    process.stdout.write(report(argv, opts, started, loadAtStart, results, [...failures, 'stopped by the watchdog before the remaining runs']));
    process.exit(2);
  }, HARD_LIMIT_MS);
  watchdog.unref();

  process.stderr.write(`transport bench: ${runs.length} runs, about ${Math.round(estimateMs / 1000)} s\n`);
  const dir = mkdtempSync(join(tmpdir(), 'autoscaler-transport-'));
  tempDir = dir;
  try {
    let tlsFiles: TlsFiles | undefined;
    if (runs.some((r) => r.tls)) {
      await certsInit({ dir });
      tlsFiles = { certFile: join(dir, 'server.crt'), keyFile: join(dir, 'server.key'), caFile: join(dir, 'ca.crt') };
    }
    for (const spec of runs) {
      const at = performance.now();
      process.stderr.write(`  ${spec.phase} ${name(spec)}: ${spec.agents} connection(s) … `);
      try {
        const r = await runOne(spec, opts, tlsFiles);
        results.push(r);
        process.stderr.write(`${f0(r.heartbeatsPerS)} heartbeats/s, ${f1(r.cpuUsPerHb)} µs/heartbeat (${((performance.now() - at) / 1000).toFixed(0)} s)\n`);
      } catch (err) {
        // One transport failing (say, agents that cannot connect) still leaves the others' figures.
        const msg = err instanceof Error ? err.message : String(err);
        failures.push(`${spec.phase} ${name(spec)}: ${msg}`);
        process.stderr.write(`failed: ${msg}\n`);
      }
    }
    process.stdout.write(report(argv, opts, started, loadAtStart, results, failures));
  } finally {
    clearTimeout(watchdog);
    rmSync(dir, { recursive: true, force: true });
  }
}

process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => { killAll(); process.exit(130); });

main().catch((err: unknown) => {
  killAll();
  process.stderr.write(`${err instanceof UsageError ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(err instanceof UsageError ? 64 : 1);
});
