/**
 * Fleet benchmark: the monitor server as operators meet it. N agents, one TCP (and TLS)
 * connection each, in separate load-generator processes (bench/fleet-agents.ts), heartbeating at
 * 1 Hz spread evenly over the second, against a real `autoscaler monitor-server` process with a
 * real SQLite file and mutual TLS made by `autoscaler certs init`. The same fleet then runs
 * against bench/bare-server.ts (the same proto and TLS, no work), on grpc-js's server and on
 * lib/grpc-server.ts (the monitor's own transport): the ratios of CPU per heartbeat say what the
 * monitor's own work costs, above each.
 *
 *   node dist/bench/fleet.js [--agents 1000,5000,10000] [--window 30s] [--warmup 5s] [--no-tls]
 *     [--client raw|h2|grpc-js] [--bare grpc-js|h2|both] [--bare-only | --monitor-only] [--no-climb]
 *     [--per-process 2500] [--budget 12m] [--connect-rate 100] [--cpu-prof DIR]
 *     [--gen-cpu-prof DIR] [--gen-nice N] [--server-node-args '--flag …'] [--bare-ack-interval 200ms]
 *     [--monitor-env MONITOR_NAME=value …] [--server-env NAME=value …] [--keep]
 *
 * --client: what each simulated agent's client is. `raw` (the default) is bench/fleet-raw-client.ts,
 * the frames grpc-js sends framed by hand on node:tls: no nghttp2 or Http2Stream per agent on the
 * generator's side (75-91 µs of generator CPU per heartbeat on a 2-core machine, TLS and the
 * kernel being most of it); `h2` is bench/fleet-h2-client.ts, the same frames on node:http2
 * (~110 µs); `grpc-js` is the agent's own client library (~140-220 µs). The cheaper the
 * generators, the more of the second core is left to the server.
 * --bare: which bare servers follow the monitor (`both`, the default: bare grpc-js, then bare h2).
 * --cpu-prof profiles the monitor server (node --cpu-prof) and prints a summary of the steady
 * window (bench/fleet-profile.ts); --gen-cpu-prof profiles the generators; --gen-nice lowers
 * their priority so that the server gets the CPU first.
 * --server-node-args: node flags for the server under test (the monitor and the bare servers
 * alike), e.g. '--max-semi-space-size=2' or '--heapsnapshot-signal=SIGUSR2'. --bare-ack-interval:
 * how often the bare servers ack each stream (200ms, every flush, by default, as the issue defines
 * the reference; the monitor's own pacing, 5s, gives the receive-only floor). --monitor-env sets a
 * monitor server setting for the run (repeatable), e.g. MONITOR_FLUSH_INTERVAL_MS=100.
 * --server-env sets any variable for the servers under test (repeatable), e.g.
 * LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 to measure the allocator the unit can preload.
 *
 * One server process per kind serves a fleet that grows through the sizes (agents are only ever
 * connected once: a TLS connection costs the server ~7-10 ms of CPU); the monitor server goes
 * first, then each bare server repeats its sizes (with --bare-only the first bare server leads and
 * climbs, the other repeats). After the listed sizes the monitor climbs (×1.5)
 * until saturation (sustained rate < 95 % of offered, ack p99 > 2 s beyond the server's ack
 * pacing, or heartbeat → `latest` p99 > 2 s), the fd limit or the time budget. Every child is ended on exit, Ctrl-C or error.
 * Linux only (/proc); all traffic stays on 127.0.0.1.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { cpus, loadavg, setPriority } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import * as monitorConfig from '../config/monitor-server.js';
import { parseGroup } from '../domain/policy.js';
import { cliEntry } from '../lib/paths.js';
import { openStore, type Db } from '../store/db.js';
import { GroupStore } from '../store/groups.js';
import { InstanceStore } from '../store/instances.js';
import {
  Histogram, establishedTo, fdCount, machineCpu, procSample, type AgentClientKind, type AgentTlsFiles, type AgentsConfig, type FromAgents,
  type FromBare, type ProcSample, type ToAgents, type WindowReport,
} from './fleet-common.js';
import { summariseProfileFile } from './fleet-profile.js';
import { benchWorkDir, checkPreload, cleanEnv, makeBenchCerts, sleep, stopChild, track, within } from './children.js';

const GROUP = 'bench';
const ID_PREFIX = 'f-';
/** `latest` is polled this often; a heartbeat's time to reach it is known to within this, ms. */
const LATEST_POLL_MS = 25;
/**
 * Saturation: sustained below this share of the offered rate, or ack p99 above ACK_P99_LIMIT_MS
 * beyond the server's own ack pacing (MONITOR_ACK_INTERVAL_MS, where the monitor has one: an ack
 * is cumulative and may wait that long by design), or a heartbeat's time to `latest` above it.
 */
const SUSTAINED_SHARE = 0.95;
const ACK_P99_LIMIT_MS = 2_000;
/** The monitor's default ack pacing, ms (0 when this build acks at every write). */
const MONITOR_ACK_PACING_MS = Number((monitorConfig as Record<string, unknown>).DEFAULT_ACK_INTERVAL_MS ?? 0);
/** fds the server needs besides one per agent (store, listeners, logs, pipes). */
const FD_MARGIN = 200;
/**
 * How long a fleet may take to connect: a base plus this much per agent (a TLS connection costs
 * the server about 7 ms of CPU, the generator about 10), ms. Beyond it the window starts with
 * what connected.
 */
const CONNECT_TIMEOUT_BASE_MS = 30_000;
const CONNECT_TIMEOUT_PER_AGENT_MS = 40;
/**
 * Agents connected per second by default. A TLS connection costs the server ~7-10 ms of CPU: an
 * unpaced ramp holds its loop for seconds, agents' keepalives time out and the fleet reconnects
 * over and over (a reconnect storm, as after a monitor restart). The bench measures the steady
 * state, so it connects at a rate the server absorbs beside the heartbeats already flowing.
 */
const DEFAULT_CONNECT_RATE = 100;

/** The servers under test: the monitor, and the bare reference on either gRPC server. */
type ServerKind = 'monitor-server' | 'bare-grpc-js' | 'bare-h2';
type BareKind = Exclude<ServerKind, 'monitor-server'>;
/** Order in reports and ratios: a ratio is always an earlier kind ÷ a later one. */
const KINDS: readonly ServerKind[] = ['monitor-server', 'bare-grpc-js', 'bare-h2'];
const KIND_LABEL: Record<ServerKind, string> = { 'monitor-server': 'monitor-server', 'bare-grpc-js': 'bare grpc-js', 'bare-h2': 'bare h2' };
const isBare = (k: ServerKind): k is BareKind => k !== 'monitor-server';
/** Why the generators use the client they use, for the header line. */
const CLIENT_WHY: Record<AgentClientKind, string> = {
  raw: "bench/fleet-raw-client.ts, grpc-js's frames framed by hand on node:tls: the cheapest generators leave the most of the second core to the server",
  h2: "bench/fleet-h2-client.ts, grpc-js's frames on node:http2 (~110 µs/heartbeat, 20-45 % more than raw)",
  'grpc-js': "the agent's own grpc-js client: costly generators (~140 µs/heartbeat) compete with the server for the cores",
};

interface Options {
  sizes: number[];
  /** The simulated agents' client. */
  client: AgentClientKind;
  /** The bare servers run after (or, --bare-only, instead of) the monitor. */
  bare: readonly BareKind[];
  windowMs: number;
  warmupMs: number;
  tls: boolean;
  bareOnly: boolean;
  monitorOnly: boolean;
  climb: boolean;
  perProcess: number;
  budgetMs: number;
  cpuProfDir: string | undefined;
  /** CPU profiles of the load generators go here (to see what an agent costs them). */
  genCpuProfDir: string | undefined;
  /** Agents connected per second, the whole fleet (0: as fast as 16 Registers in flight per generator allow). */
  connectRate: number;
  /** Nice value of the generators (0: as the server; higher yields the CPU to the server). */
  genNice: number;
  /** Extra node flags for the server under test (monitor and bare alike), e.g. V8 heap flags. */
  serverNodeArgs: string[];
  /** How often the bare servers ack each stream, ms (the issue's reference: every flush, 200). */
  bareAckIntervalMs: number;
  /** MONITOR_* settings for the monitor server beyond the defaults (--monitor-env KEY=VALUE, repeatable). */
  monitorEnv: Record<string, string>;
  /**
   * Environment for the server under test (monitor and bare alike; --server-env NAME=value,
   * repeatable), e.g. LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 to measure another allocator.
   */
  serverEnv: Record<string, string>;
  keep: boolean;
}

function duration(v: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(v);
  if (m === null) throw new Error(`${flag} ${v}: expected a duration such as 30s, 2m or 500ms`);
  const n = Number(m[1]);
  return Math.round(m[2] === 'ms' ? n : m[2] === 'm' ? n * 60_000 : n * 1_000);
}

function parseArgs(argv: readonly string[]): Options {
  const o: Options = {
    sizes: [1_000, 5_000, 10_000], client: 'raw', bare: ['bare-grpc-js', 'bare-h2'], windowMs: 30_000, warmupMs: 5_000, tls: true, bareOnly: false, monitorOnly: false, climb: true,
    perProcess: 2_500, budgetMs: 12 * 60_000, cpuProfDir: undefined, genCpuProfDir: undefined, genNice: 0, connectRate: DEFAULT_CONNECT_RATE, serverNodeArgs: [], bareAckIntervalMs: 200, monitorEnv: {}, serverEnv: {}, keep: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--agents') {
      o.sizes = value().split(',').map((s) => Number(s.replace(/_/g, '')));
      if (o.sizes.some((n) => !Number.isInteger(n) || n < 1)) throw new Error('--agents: a comma-separated list of positive whole numbers');
    } else if (a === '--window') o.windowMs = duration(value(), a);
    else if (a === '--warmup') o.warmupMs = duration(value(), a);
    else if (a === '--budget') o.budgetMs = duration(value(), a);
    else if (a === '--per-process') o.perProcess = Number(value());
    else if (a === '--cpu-prof') o.cpuProfDir = value();
    else if (a === '--gen-cpu-prof') o.genCpuProfDir = value();
    else if (a === '--gen-nice') o.genNice = Number(value());
    else if (a === '--connect-rate') o.connectRate = Number(value());
    else if (a === '--server-node-args') o.serverNodeArgs = value().split(/\s+/).filter((x) => x !== '');
    else if (a === '--bare-ack-interval') o.bareAckIntervalMs = duration(value(), a);
    else if (a === '--monitor-env') {
      const m = /^(MONITOR_[A-Z0-9_]+)=(.*)$/.exec(value());
      if (m === null) throw new Error('--monitor-env: MONITOR_NAME=value');
      o.monitorEnv[m[1] as string] = m[2] as string;
    } else if (a === '--server-env') {
      const v = value();
      const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(v);
      if (m === null) throw new Error(`--server-env ${JSON.stringify(v)}: expected NAME=value`);
      if (/^(MONITOR_|AUTOSCALER_|BARE_)|^LOG_LEVEL$/.test(m[1] as string)) throw new Error(`--server-env ${m[1]}: the bench sets it (use --monitor-env for MONITOR_ settings)`);
      o.serverEnv[m[1] as string] = m[2] as string;
    }
    else if (a === '--client') {
      const v = value();
      if (v !== 'raw' && v !== 'h2' && v !== 'grpc-js') throw new Error(`--client ${v}: raw, h2 or grpc-js`);
      o.client = v;
    } else if (a === '--bare') {
      const v = value();
      if (v !== 'grpc-js' && v !== 'h2' && v !== 'both') throw new Error(`--bare ${v}: grpc-js, h2 or both`);
      o.bare = v === 'both' ? ['bare-grpc-js', 'bare-h2'] : [v === 'h2' ? 'bare-h2' : 'bare-grpc-js'];
    } else if (a === '--no-tls') o.tls = false;
    else if (a === '--bare-only') o.bareOnly = true;
    else if (a === '--monitor-only') o.monitorOnly = true;
    else if (a === '--no-climb') o.climb = false;
    else if (a === '--keep') o.keep = true;
    else throw new Error(`unknown argument ${a}; see the header of bench/fleet.ts`);
  }
  if (!Number.isInteger(o.perProcess) || o.perProcess < 1) throw new Error('--per-process: a positive whole number');
  if (o.bareOnly && o.monitorOnly) throw new Error('--bare-only and --monitor-only exclude each other');
  if (!Number.isFinite(o.connectRate) || o.connectRate < 0) throw new Error('--connect-rate: agents per second, 0 for unpaced');
  if (!Number.isInteger(o.genNice) || o.genNice < 0 || o.genNice > 19) throw new Error('--gen-nice: a whole number in 0..19');
  return o;
}

// ---------------------------------------------------------------------------------------------
// Servers under test (every process started here is tracked by ./children.js and ended on the way out).

interface ServerUnderTest {
  readonly kind: ServerKind;
  readonly pid: number;
  readonly port: number;
  readonly httpPort: number | undefined;
  readonly child: ChildProcess;
  /** When it was spawned (epoch ms): a CPU profile's time 0, near enough. */
  readonly spawnedAt: number;
}

interface Tls {
  readonly dir: string;
  readonly server: { readonly MONITOR_TLS_CERT: string; readonly MONITOR_TLS_KEY: string; readonly MONITOR_TLS_CLIENT_CA: string };
  readonly agent: AgentTlsFiles;
}

/** `autoscaler certs init DIR --group bench`: a CA, the server certificate and a group client certificate. */
async function makeCerts(dir: string): Promise<Tls> {
  const c = await makeBenchCerts(dir, GROUP);
  return {
    dir,
    server: { MONITOR_TLS_CERT: c.serverCert, MONITOR_TLS_KEY: c.serverKey, MONITOR_TLS_CLIENT_CA: c.ca },
    agent: { caFile: c.ca, certFile: c.clientCert, keyFile: c.clientKey },
  };
}

/** The group and its instance rows, as the controller writes them at launch (the server refuses unknown ids). */
function seedStore(dbPath: string, from: number, to: number): void {
  const parsed = parseGroup({ id: GROUP, minSize: 1, maxSize: 10_000 });
  if (!parsed.ok) throw new Error('bench group document is invalid');
  const db = openStore(dbPath);
  try {
    new GroupStore(db).upsert(parsed.value, Date.now());
    new InstanceStore(db).insertLaunched(GROUP, Array.from({ length: to - from }, (_, i) => ({ id: `${ID_PREFIX}${from + i}`, providerState: 'running' })), 'launched', 'bench', Date.now());
  } finally {
    db.close();
  }
}

async function startMonitor(dbPath: string, tls: Tls | undefined, opts: Options): Promise<ServerUnderTest> {
  const logFd = openSync(`${dbPath}.monitor.log`, 'a');
  const execArgv = [...opts.serverNodeArgs, ...(opts.cpuProfDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', opts.cpuProfDir])];
  const spawnedAt = Date.now();
  // Production settings (the defaults), on loopback with ports chosen by the OS.
  const child = track(spawn(process.execPath, [...execArgv, cliEntry(), 'monitor-server'], {
    env: { ...cleanEnv(), ...opts.serverEnv, AUTOSCALER_DB: dbPath, MONITOR_GRPC_HOST: '127.0.0.1', MONITOR_GRPC_PORT: '0', MONITOR_HTTP_PORT: '0', LOG_LEVEL: 'info', ...tls?.server, ...opts.monitorEnv },
    stdio: ['ignore', logFd, logFd],
  }));
  closeSync(logFd);
  // The listening line goes to the log; the address is also in the store's component row.
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`monitor server exited (${child.exitCode}); see ${dbPath}.monitor.log`);
    const db = openStore(dbPath);
    const row = db.prepare("SELECT info FROM components WHERE name = 'monitor-server'").get() as { info: string } | undefined;
    db.close();
    if (row !== undefined) {
      const info = JSON.parse(row.info) as { grpcAddress: string; httpAddress: string };
      const portOf = (a: string) => Number(a.split(':').pop());
      return { kind: 'monitor-server', pid: child.pid as number, port: portOf(info.grpcAddress), httpPort: portOf(info.httpAddress), child, spawnedAt };
    }
    if (Date.now() > deadline) throw new Error(`monitor server did not start within 20 s; see ${dbPath}.monitor.log`);
    await sleep(50);
  }
}

async function startBare(kind: BareKind, tls: Tls | undefined, opts: Options): Promise<ServerUnderTest> {
  const script = fileURLToPath(new URL('./bare-server.js', import.meta.url));
  const spawnedAt = Date.now();
  const env = { ...cleanEnv(), ...opts.serverEnv, ...tls?.server, BARE_IMPL: kind === 'bare-h2' ? 'h2' : 'grpc-js', BARE_ACK_INTERVAL_MS: String(opts.bareAckIntervalMs) };
  const child = track(spawn(process.execPath, [...opts.serverNodeArgs, script], { env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
  const port = await within('bare server start', 20_000, new Promise<number>((resolve, reject) => {
    child.once('message', (m: unknown) => resolve((m as FromBare).port));
    child.once('exit', (code) => reject(new Error(`bare server exited (${code})`)));
  }));
  return { kind, pid: child.pid as number, port, httpPort: undefined, child, spawnedAt };
}

function maxOpenFiles(pid: number): number {
  const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'));
  return m === null || m[1] === 'unlimited' ? Number.POSITIVE_INFINITY : Number(m[1]);
}

// ---------------------------------------------------------------------------------------------
// Load generators.

interface Generator {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly agents: number;
  ready: Promise<Extract<FromAgents, { type: 'ready' }>>;
  next(type: 'window'): Promise<WindowReport>;
  send(msg: ToAgents): void;
}

function startGenerator(config: AgentsConfig, cpuProfDir: string | undefined, nice: number): Generator {
  const script = fileURLToPath(new URL('./fleet-agents.js', import.meta.url));
  // --no-deprecation: grpc-js sets the TLS server name to the target's IP, and Node warns of it once per process.
  const execArgv = ['--no-deprecation', ...(cpuProfDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', cpuProfDir])];
  const child = track(spawn(process.execPath, [...execArgv, script], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env: cleanEnv() }));
  if (nice > 0 && child.pid !== undefined) setPriority(child.pid, nice);
  const waiting: ((r: WindowReport) => void)[] = [];
  let onReady: (m: Extract<FromAgents, { type: 'ready' }>) => void = () => {};
  const ready = new Promise<Extract<FromAgents, { type: 'ready' }>>((r) => { onReady = r; });
  child.on('message', (raw: unknown) => {
    const m = raw as FromAgents;
    if (m.type === 'ready') onReady(m);
    else if (m.type === 'window') waiting.shift()?.(m.report);
  });
  const send = (msg: ToAgents) => { if (child.connected) child.send(msg); };
  send({ type: 'start', config });
  return {
    child, pid: child.pid as number, agents: config.count, ready,
    next: () => new Promise((r) => waiting.push(r)),
    send,
  };
}

// ---------------------------------------------------------------------------------------------
// The `latest` reader: when does a heartbeat become visible to the controller?

class LatestWatcher {
  private readonly db: Db;
  private readonly query;
  private readonly seen = new Map<string, number>();
  /** Rows of a later commit were all received after the previous commit's flush began: never below its newest received_at. */
  private since = 0;
  private timer: NodeJS.Timeout | undefined;
  readonly hist = new Histogram();
  /** Updates whose seq jumped by more than one between two polls (two heartbeats in one commit, a replay). */
  skipped = 0;
  polls = 0;
  private recording = false;

  constructor(dbPath: string) {
    this.db = openStore(dbPath, { readonly: true });
    this.query = this.db.prepare('SELECT instance_id, seq, sample_at, received_at FROM latest WHERE received_at >= ?').raw();
  }

  start(): void {
    this.poll();
    this.recording = true;
    this.timer = setInterval(() => this.poll(), LATEST_POLL_MS);
  }

  private poll(): void {
    const t = Date.now();
    this.polls++;
    for (const row of this.query.all(this.since) as [string, number, number, number][]) {
      const [id, seq, sampleAt, receivedAt] = row;
      if (receivedAt > this.since) this.since = receivedAt;
      const prev = this.seen.get(id);
      if (prev !== undefined && seq <= prev) continue;
      this.seen.set(id, seq);
      if (!this.recording || prev === undefined) continue;
      this.hist.add(t - sampleAt);
      if (seq > prev + 1) this.skipped++;
    }
  }

  /** Logical size of the database (pages in use, as this reader sees it), bytes. */
  sizeBytes(): number {
    const pageSize = this.db.pragma('page_size', { simple: true }) as number;
    const pages = this.db.pragma('page_count', { simple: true }) as number;
    const free = this.db.pragma('freelist_count', { simple: true }) as number;
    return (pages - free) * pageSize;
  }

  stop(): void {
    clearInterval(this.timer);
    this.db.close();
  }
}

/**
 * How long the monitor takes to answer GET /healthz, polled every 500 ms: the server's event-loop
 * delay seen from outside (a heartbeat waits as long). Separate figures for the ramp and the window.
 */
class ResponsivenessProbe {
  private stopped = false;
  phase: 'ramp' | 'window' | 'other' = 'ramp';
  ramp = new Histogram();
  window = new Histogram();
  private loop: Promise<void> | undefined;

  constructor(private readonly port: number) {}

  start(): void {
    this.loop = (async () => {
      while (!this.stopped) {
        const t = performance.now();
        try {
          const res = await fetch(`http://127.0.0.1:${this.port}/healthz`, { signal: AbortSignal.timeout(10_000) });
          await res.arrayBuffer();
        } catch {
          // timed out or refused: counted at the time it took
        }
        const ms = performance.now() - t;
        if (this.phase === 'ramp') this.ramp.add(ms);
        else if (this.phase === 'window') this.window.add(ms);
        await sleep(500);
      }
    })();
  }

  /** Start a new measurement: `phase`'s histogram is emptied. */
  reset(phase: 'ramp' | 'window'): void {
    if (phase === 'ramp') this.ramp = new Histogram();
    else this.window = new Histogram();
    this.phase = phase;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }
}

function fileBytes(dbPath: string): number {
  let total = 0;
  for (const f of [dbPath, `${dbPath}-wal`]) if (existsSync(f)) total += statSync(f).size;
  return total;
}

// ---------------------------------------------------------------------------------------------
// One phase: one server, one fleet size.

interface PhaseResult {
  readonly kind: ServerKind;
  readonly agents: number;
  /** How long the server may hold an ack by design, ms: the monitor's MONITOR_ACK_INTERVAL_MS, the bare servers' --bare-ack-interval. */
  readonly ackPacingMs: number;
  /** The generators' client. */
  readonly client: AgentClientKind;
  /** Agents connected for this size (the fleet grows: the others were already up). */
  readonly added: number;
  /** Agents with an open stream at window end. */
  readonly connected: number;
  /** New agents that had connected when the window's warm-up began. */
  readonly newlyConnected: number;
  readonly connectMs: number;
  /** One agent's Register + stream open, p50 / p99, ms. */
  readonly connectP50: number;
  readonly connectP99: number;
  /** CPU spent while the new agents connected, per new agent (TLS handshake, Register, stream), less the heartbeats meanwhile (estimated), ms. */
  readonly rampServerMsPerAgent: number;
  readonly rampGenMsPerAgent: number;
  readonly tcpServerSide: number;
  readonly tcpClientSide: number;
  readonly serverFds: number;
  readonly windowMs: number;
  readonly offered: number;
  readonly sentPerSec: number;
  readonly sustained: number;
  readonly ackP50: number;
  readonly ackP99: number;
  readonly serverCpuPct: number;
  readonly serverMainPct: number;
  /** Share of the server's and the generators' CPU spent in the kernel, %. */
  readonly serverSysShare: number;
  readonly genSysShare: number;
  readonly serverUsPerHb: number;
  readonly serverRssMiB: number;
  readonly genCpuPct: number;
  readonly genMaxPct: number;
  readonly genUsPerHb: number;
  readonly genLoopP99: number;
  /** Longest generator event-loop stall since it started (ramp included), ms. */
  readonly genLoopMaxEver: number;
  /** Largest generator RSS at window end, MiB. */
  readonly genRssMiB: number;
  readonly generators: number;
  readonly machinePct: number;
  readonly othersPct: number;
  readonly cores: number;
  readonly dbMiBPerHour: number | undefined;
  readonly dbFileMiBPerHour: number | undefined;
  readonly latestP50: number | undefined;
  readonly latestP99: number | undefined;
  readonly latestSeen: number;
  readonly latestSkipped: number;
  readonly readerPct: number;
  readonly reports: readonly WindowReport[];
  readonly health: Record<string, unknown> | undefined;
  /** GET /healthz answer time while the fleet connected and in the window: p99, max, ms. */
  readonly healthRamp: { p99: number; max: number } | undefined;
  readonly healthWindow: { p99: number; max: number } | undefined;
  readonly logLines: { warn: number; error: number; top: string } | undefined;
  readonly saturated: boolean;
  readonly bound: string;
  /** The server's CPU profile summary over the window (--cpu-prof). */
  profile?: string;
}

const pct = (cpuMs: number, ms: number) => (cpuMs / ms) * 100;

async function healthz(port: number): Promise<Record<string, unknown> | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(3_000) });
    const body = (await res.json()) as { details?: Record<string, unknown> };
    return body.details;
  } catch {
    return undefined;
  }
}

/** Warn and error lines of a pino log, and the most frequent messages among them. */
function logLevels(path: string): { warn: number; error: number; top: string } {
  let warn = 0;
  let error = 0;
  const byMsg = new Map<string, number>();
  if (!existsSync(path)) return { warn, error, top: '' };
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const level = /"level":"?(\w+)"?/.exec(line)?.[1];
    const bad = level === 'warn' || level === '40' ? 'warn' : level === 'error' || level === 'fatal' || level === '50' || level === '60' ? 'error' : undefined;
    if (bad === undefined) continue;
    if (bad === 'warn') warn++;
    else error++;
    const msg = /"msg":"([^"]*)"/.exec(line)?.[1] ?? '?';
    byMsg.set(msg, (byMsg.get(msg) ?? 0) + 1);
  }
  const top = [...byMsg.entries()].sort((a, b) => b[1] - a[1]).slice(0, 4).map(([m, n]) => `${n}× "${m}"`).join(', ');
  return { warn, error, top };
}

/**
 * One server process, one fleet that grows: for each size `nextSize` gives, connect the agents
 * missing (new generator processes), warm up, measure a window. Growing the same fleet costs one
 * connection per agent in all, where a fresh fleet per size would pay them again every time (a
 * TLS connection costs the server ~7-10 ms of CPU and the generator ~10). Stops when `nextSize`
 * says so or a size saturates.
 */
async function runServer(
  kind: ServerKind, firstSize: number, nextSize: (done: readonly PhaseResult[]) => number | undefined,
  opts: Options, tls: Tls | undefined, work: string, prior: readonly PhaseResult[],
): Promise<PhaseResult[]> {
  const dbPath = join(work, `${kind}.db`);
  let seeded = 0;
  const seedUpTo = (n: number) => {
    if (kind !== 'monitor-server' || n <= seeded) return;
    // As the controller would: rows for the instances it launches, written while the server runs.
    seedStore(dbPath, seeded, n);
    seeded = n;
  };
  seedUpTo(firstSize);
  const server = kind === 'monitor-server' ? await startMonitor(dbPath, tls, opts) : await startBare(kind, tls, opts);
  checkPreload(server.pid, opts.serverEnv, KIND_LABEL[kind]);
  const gens: Generator[] = [];
  const probe = server.httpPort === undefined ? undefined : new ResponsivenessProbe(server.httpPort);
  probe?.start();
  const results: PhaseResult[] = [];
  const windows: { fromMs: number; toMs: number }[] = [];
  const epochMs = Date.now();
  try {
    for (let agents: number | undefined = firstSize; agents !== undefined; agents = nextSize(results)) {
      const have = gens.reduce((a, g) => a + g.agents, 0);
      if (agents <= have) break;
      process.stdout.write(`\n── ${n0(agents)} agents, ${KIND_LABEL[kind]} ${'─'.repeat(50)}\n`);
      seedUpTo(agents);
      const fresh: Generator[] = [];
      const chunks = Math.ceil((agents - have) / opts.perProcess);
      const perGen = Math.ceil((agents - have) / chunks);
      for (let first = have; first < agents; first += perGen) {
        fresh.push(startGenerator({
          target: `127.0.0.1:${server.port}`, groupId: GROUP, idPrefix: ID_PREFIX, firstIndex: first, count: Math.min(perGen, agents - first),
          epochMs, intervalMs: 1_000, connectConcurrency: 16, connectRatePerSec: opts.connectRate / chunks, tls: tls?.agent, client: opts.client,
        }, opts.genCpuProfDir, opts.genNice));
      }
      gens.push(...fresh);
      const r = await measure(kind, agents, agents - have, server, gens, fresh, probe, dbPath, opts);
      windows.push(r.window);
      results.push(r.result);
      printPhase(r.result, prior);
      if (r.result.saturated) break;
    }
  } finally {
    await probe?.stop();
    for (const g of gens) g.send({ type: 'stop' });
    await Promise.all(gens.map((g) => stopChild(g.child, 10_000, false)));
    // The monitor flushes and writes its CPU profile on SIGTERM: give it time.
    await stopChild(server.child, 20_000);
    if (!opts.keep) for (const f of [dbPath, `${dbPath}-wal`, `${dbPath}-shm`]) rmSync(f, { force: true });
  }
  const dir = opts.cpuProfDir;
  if (dir !== undefined && kind === 'monitor-server') {
    // Node names the file CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile.
    const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile') && f.includes(`.${server.pid}.`));
    for (const [i, r] of results.entries()) {
      r.profile = file === undefined ? `no CPU profile of pid ${server.pid} in ${dir}` : summariseProfileFile(join(dir, file), { top: 25, ...windows[i] });
    }
  }
  return results;
}

/** Connect `fresh` (the agents above what `gens` already had), warm up, measure one window over every generator. */
async function measure(
  kind: ServerKind, agents: number, added: number, server: ServerUnderTest, gens: readonly Generator[], fresh: readonly Generator[],
  probe: ResponsivenessProbe | undefined, dbPath: string, opts: Options,
): Promise<{ result: PhaseResult; window: { fromMs: number; toMs: number } }> {
  const cores = cpus().length;
  probe?.reset('ramp');
  const connectStart = Date.now();
  const rampServer0 = procSample(server.pid).cpuMs;
  const rampGen0 = fresh.reduce((a, g) => a + procSample(g.pid).cpuMs, 0);
  const paced = opts.connectRate > 0 ? (added / opts.connectRate) * 1000 * 1.3 : 0;
  const connectTimeoutMs = CONNECT_TIMEOUT_BASE_MS + Math.max(added * CONNECT_TIMEOUT_PER_AGENT_MS, paced);
  let timer: NodeJS.Timeout | undefined;
  const readies = await Promise.race([
    Promise.all(fresh.map((g) => g.ready)),
    new Promise<undefined>((r) => { timer = setTimeout(() => r(undefined), connectTimeoutMs); }),
  ]);
  clearTimeout(timer);
  const connectMs = Date.now() - connectStart;
  const rampServerMs = procSample(server.pid).cpuMs - rampServer0;
  const rampGenMs = fresh.reduce((a, g) => a + procSample(g.pid).cpuMs, 0) - rampGen0;
  const newlyConnected = readies?.reduce((a, r) => a + r.connected, 0);
  const connectHist = new Histogram();
  for (const r of readies ?? []) connectHist.merge(r.connectHist);
  if (readies === undefined) process.stdout.write(`  the new agents did not connect within ${(connectTimeoutMs / 1000).toFixed(0)} s; measuring what is up\n`);
  const tcp = establishedTo(server.port);
  const rampAgents = Math.max(1, newlyConnected ?? tcp.serverSide - (agents - added));
  const serverFds = fdCount(server.pid);

  if (probe !== undefined) probe.phase = 'other';
  await sleep(opts.warmupMs);
  if (probe !== undefined) probe.reset('window');
  const watcher = kind === 'monitor-server' ? new LatestWatcher(dbPath) : undefined;
  watcher?.start();
  const db0 = watcher?.sizeBytes();
  const file0 = kind === 'monitor-server' ? fileBytes(dbPath) : 0;
  const s0 = procSample(server.pid);
  const g0 = gens.map((g) => procSample(g.pid));
  const me0 = procSample(process.pid);
  const m0 = machineCpu();
  const t0 = Date.now();
  for (const g of gens) g.send({ type: 'window-start' });

  await sleep(opts.windowMs);

  const reportsP = Promise.all(gens.map((g) => g.next('window')));
  for (const g of gens) g.send({ type: 'window-end' });
  const t1 = Date.now();
  const s1 = procSample(server.pid);
  const g1 = gens.map((g) => procSample(g.pid));
  const me1 = procSample(process.pid);
  const m1 = machineCpu();
  const db1 = watcher?.sizeBytes();
  const file1 = kind === 'monitor-server' ? fileBytes(dbPath) : 0;
  watcher?.stop();
  if (probe !== undefined) probe.phase = 'other';
  const reports = await within('generator reports', 15_000, reportsP);
  const health = server.httpPort !== undefined ? await healthz(server.httpPort) : undefined;

  const ms = t1 - t0;
  const streaming = reports.reduce((a, x) => a + x.streaming, 0);
  const hist = new Histogram();
  let acked = 0;
  let sent = 0;
  for (const r of reports) {
    hist.merge(r.ackHist);
    acked += r.acked;
    sent += r.sent;
  }
  const cpuDelta = (a: ProcSample, b: ProcSample) => b.cpuMs - a.cpuMs;
  const genMs = g1.reduce((sum, b, i) => sum + cpuDelta(g0[i] as ProcSample, b), 0);
  const genSysMs = g1.reduce((sum, b, i) => sum + b.sysMs - (g0[i] as ProcSample).sysMs, 0);
  const genMax = Math.max(...g1.map((b, i) => pct(cpuDelta(g0[i] as ProcSample, b), ms)));
  const serverMs = cpuDelta(s0, s1);
  const readerMs = cpuDelta(me0, me1);
  const machinePct = ((m1.busyMs - m0.busyMs) / (m1.totalMs - m0.totalMs)) * cores * 100;
  const sustained = (acked / ms) * 1000;
  const rampHeartbeats = (agents - added + added / 2) * (connectMs / 1000);
  const ackPacingMs = kind === 'monitor-server' ? Number(opts.monitorEnv.MONITOR_ACK_INTERVAL_MS ?? MONITOR_ACK_PACING_MS) : opts.bareAckIntervalMs;
  const r: Omit<PhaseResult, 'saturated' | 'bound'> = {
    ackPacingMs,
    kind, agents, client: opts.client, added, connected: streaming, newlyConnected: rampAgents, connectMs, connectP50: connectHist.quantile(0.5), connectP99: connectHist.quantile(0.99),
    // Less what heartbeats cost meanwhile (the agents already up, and the new ones as they came up:
    // a linear ramp), at this window's CPU per heartbeat.
    rampServerMsPerAgent: (rampServerMs - rampHeartbeats * (acked > 0 ? serverMs / acked : 0)) / rampAgents,
    rampGenMsPerAgent: (rampGenMs - (added / 2) * (connectMs / 1000) * (acked > 0 ? genMs / acked : 0)) / rampAgents,
    tcpServerSide: tcp.serverSide, tcpClientSide: tcp.clientSide, serverFds, windowMs: ms,
    offered: agents, sentPerSec: (sent / ms) * 1000, sustained, ackP50: hist.quantile(0.5), ackP99: hist.quantile(0.99),
    serverCpuPct: pct(serverMs, ms), serverMainPct: pct(s1.mainCpuMs - s0.mainCpuMs, ms),
    serverSysShare: serverMs > 0 ? ((s1.sysMs - s0.sysMs) / serverMs) * 100 : 0, genSysShare: genMs > 0 ? (genSysMs / genMs) * 100 : 0,
    serverUsPerHb: acked > 0 ? (serverMs * 1000) / acked : Number.NaN,
    serverRssMiB: s1.rssMiB, genCpuPct: pct(genMs, ms), genMaxPct: genMax, genUsPerHb: acked > 0 ? (genMs * 1000) / acked : Number.NaN,
    genLoopP99: Math.max(...reports.map((x) => x.loopDelayP99Ms)), genLoopMaxEver: Math.max(...reports.map((x) => x.loopDelayMaxSinceStartMs)),
    generators: gens.length, genRssMiB: Math.max(...g1.map((b) => b.rssMiB)),
    machinePct, othersPct: Math.max(0, machinePct - pct(serverMs + genMs + readerMs, ms)), cores,
    dbMiBPerHour: db0 !== undefined && db1 !== undefined ? ((db1 - db0) / 2 ** 20) * (3_600_000 / ms) : undefined,
    dbFileMiBPerHour: kind === 'monitor-server' ? ((file1 - file0) / 2 ** 20) * (3_600_000 / ms) : undefined,
    latestP50: watcher?.hist.quantile(0.5), latestP99: watcher?.hist.quantile(0.99), latestSeen: watcher?.hist.total ?? 0,
    latestSkipped: watcher?.skipped ?? 0, readerPct: pct(readerMs, ms), reports, health,
    healthRamp: probe === undefined ? undefined : { p99: probe.ramp.quantile(0.99), max: probe.ramp.quantile(1) },
    healthWindow: probe === undefined ? undefined : { p99: probe.window.quantile(0.99), max: probe.window.quantile(1) },
    logLines: kind === 'monitor-server' ? logLevels(`${dbPath}.monitor.log`) : undefined,
  };
  return { result: { ...r, ...judge(r) }, window: { fromMs: t0 - server.spawnedAt, toMs: t1 - server.spawnedAt } };
}

/** Saturated or not, and what bounds the rate (or, below saturation, what is nearest its limit). */
function judge(r: Omit<PhaseResult, 'saturated' | 'bound'>): { saturated: boolean; bound: string } {
  const pacing = r.ackPacingMs;
  const saturated = r.sustained < SUSTAINED_SHARE * r.offered || !(r.ackP99 <= ACK_P99_LIMIT_MS + pacing)
    || (r.latestP99 !== undefined && !(r.latestP99 <= ACK_P99_LIMIT_MS));
  const main = `server main thread ${r.serverMainPct.toFixed(0)} % of a core`;
  const machine = `machine ${r.machinePct.toFixed(0)} % of ${r.cores} cores busy (server ${r.serverCpuPct.toFixed(0)} %, generators ${r.genCpuPct.toFixed(0)} %, others ${r.othersPct.toFixed(0)} %)`;
  const candidates: { share: number; text: string }[] = [
    { share: r.serverMainPct / 100, text: main },
    { share: r.genMaxPct / 100, text: `generator CPU (busiest ${r.genMaxPct.toFixed(0)} % of a core, loop delay p99 ${r.genLoopP99.toFixed(0)} ms)` },
    { share: r.machinePct / (r.cores * 100), text: machine },
  ];
  if (r.newlyConnected < r.added) {
    // The fleet did not come up in time: new agents are admitted slower than the pace asked.
    candidates.push({
      share: 1.01,
      text: `admission: ${n0(r.newlyConnected)} of ${n0(r.added)} new agents connected in ${(r.connectMs / 1000).toFixed(0)} s (${n0(r.newlyConnected / (r.connectMs / 1000))}/s) beside the heartbeats; ${main}, ${machine}`,
    });
  }
  candidates.sort((a, b) => b.share - a.share);
  const top = candidates[0] as { share: number; text: string };
  return { saturated, bound: saturated ? top.text : `not saturated; nearest limit: ${top.text}` };
}

// ---------------------------------------------------------------------------------------------
// Output.

const n0 = (v: number) => (Number.isFinite(v) ? Math.round(v).toLocaleString('en-US') : '—');
const f1 = (v: number | undefined) => (v === undefined || !Number.isFinite(v) ? '—' : v.toFixed(1));
const msText = (v: number | undefined) => (v === undefined || Number.isNaN(v) ? '—' : Number.isFinite(v) ? `${n0(v)} ms` : '> 120 s');

const byKind = (a: PhaseResult, b: PhaseResult) => KINDS.indexOf(a.kind) - KINDS.indexOf(b.kind);

/** The ratios among `rows` (one size): each kind's CPU per heartbeat ÷ each bare kind after it in KINDS. */
function ratioPairs(rows: readonly PhaseResult[]): [PhaseResult, PhaseResult][] {
  const sorted = [...rows].sort(byKind);
  const out: [PhaseResult, PhaseResult][] = [];
  for (const [i, a] of sorted.entries()) for (const b of sorted.slice(i + 1)) if (isBare(b.kind) && b.kind !== a.kind) out.push([a, b]);
  return out;
}

const ratio = (a: PhaseResult, b: PhaseResult) => `${(a.serverUsPerHb / b.serverUsPerHb).toFixed(1)}×`;

/** One size's report; `prior`: the runs before this server's, whose ratios to it are shown. */
function printPhase(r: PhaseResult, prior: readonly PhaseResult[]): void {
  const w = (label: string, value: string) => process.stdout.write(`  ${label.padEnd(26)} ${value}\n`);
  w('connected', `${n0(r.connected)}/${n0(r.agents)} agents streaming; the ${n0(r.added)} new ones connected in ${(r.connectMs / 1000).toFixed(1)} s (each ${msText(r.connectP50)} p50, ${msText(r.connectP99)} p99); TCP established ${n0(r.tcpServerSide)} (server side), ${n0(r.tcpClientSide)} (client side); server fds ${n0(r.serverFds)}`);
  w('connecting cost', `server ${f1(r.rampServerMsPerAgent)} ms CPU per agent, generators ${f1(r.rampGenMsPerAgent)} ms (TLS handshake, Register, stream; heartbeats meanwhile subtracted at the window's cost)`);
  w('sustained heartbeats/s', `${n0(r.sustained)} (offered ${n0(r.offered)}, sent ${n0(r.sentPerSec)}; ${((r.sustained / Math.max(1, r.connected)) * 100).toFixed(0)} % of the agents streaming) over ${(r.windowMs / 1000).toFixed(0)} s`);
  const pacing = r.ackPacingMs > 0 ? ` (the server paces acks: one per stream per ${n0(r.ackPacingMs)} ms${r.kind === 'monitor-server' ? ', MONITOR_ACK_INTERVAL_MS' : ', --bare-ack-interval'})` : '';
  w('ack latency p50 / p99', `${msText(r.ackP50)} / ${msText(r.ackP99)}${pacing}`);
  w('server CPU', `${f1(r.serverCpuPct)} % of a core (main thread ${f1(r.serverMainPct)} %; ${r.serverSysShare.toFixed(0)} % of it in the kernel), ${f1(r.serverUsPerHb)} µs/heartbeat (one free core at that cost: ≈ ${n0(1e6 / r.serverUsPerHb)}/s); RSS ${n0(r.serverRssMiB)} MiB`);
  if (r.kind === 'monitor-server') {
    w('DB growth', `${f1(r.dbMiBPerHour)} MiB/h (pages in use; files incl. WAL ${f1(r.dbFileMiBPerHour)} MiB/h); raw samples are kept ${monitorConfig.DEFAULT_SAMPLE_RETENTION_MS / 3_600_000} h, so the file levels off near ${n0(((r.dbMiBPerHour ?? 0) * monitorConfig.DEFAULT_SAMPLE_RETENTION_MS) / 3_600_000)} MiB`);
    w('heartbeat → `latest`', `p50 ${msText(r.latestP50)}, p99 ${msText(r.latestP99)} (${n0(r.latestSeen)} updates seen; polled every ${LATEST_POLL_MS} ms, so up to ${LATEST_POLL_MS} ms high; ${n0(r.latestSkipped)} skipped a seq)`);
  }
  const pairs = ratioPairs([...prior.filter((p) => p.agents === r.agents), r]).filter(([a, b]) => a === r || b === r);
  if (pairs.length > 0) {
    w('CPU per heartbeat ratio', pairs.map(([a, b]) => `${KIND_LABEL[a.kind]} ${ratio(a, b)} ${KIND_LABEL[b.kind]} (${f1(a.serverUsPerHb)} µs ÷ ${f1(b.serverUsPerHb)} µs)`).join('; '));
  }
  w('generators', `${r.generators} × ${n0(Math.ceil(r.agents / r.generators))} agents (${r.client} client): ${f1(r.genCpuPct)} % of a core in all (busiest ${f1(r.genMaxPct)} %), ${f1(r.genUsPerHb)} µs/heartbeat (${r.genSysShare.toFixed(0)} % in the kernel), loop delay p99 ${f1(r.genLoopP99)} ms (max since start ${n0(r.genLoopMaxEver)} ms), RSS ≤ ${n0(r.genRssMiB)} MiB each`);
  const streamErrors = r.reports.reduce((a, x) => a + x.streamErrors, 0);
  const dropped = r.reports.reduce((a, x) => a + x.dropped, 0);
  const streaming = r.reports.reduce((a, x) => a + x.streaming, 0);
  w('streams', `${n0(streaming)} open at window end; ${n0(streamErrors)} ended in the window, ${n0(dropped)} heartbeats dropped from full buffers`);
  w('machine', `${f1(r.machinePct)} % of ${r.cores} cores busy (this process, the \`latest\` reader: ${f1(r.readerPct)} %; others' processes: ${f1(r.othersPct)} %)`);
  const errors: Record<string, number> = {};
  for (const x of r.reports) for (const [k, v] of Object.entries(x.errors)) errors[k] = (errors[k] ?? 0) + v;
  const errs = Object.entries(errors).sort((a, b) => b[1] - a[1]).slice(0, 5);
  if (errs.length > 0) w('agent-side errors', `${errs.map(([k, v]) => `${n0(v)}× ${k}`).join('; ')} (since start, ramp included)`);
  if (r.health !== undefined) {
    const h = r.health;
    const refused = Object.entries((h.refused ?? {}) as Record<string, number>).filter(([, v]) => v > 0).map(([k, v]) => `${k} ${v}`);
    w('server /healthz', `streams ${String(h.streams)}, queued ${String(h.queued)}, ingest pauses ${String(h.ingestPauses)}, acks coalesced ${String(h.acksCoalesced)}, refused: ${refused.join(', ') || 'none'}`);
  }
  if (r.healthRamp !== undefined && r.healthWindow !== undefined) {
    w('server responsiveness', `GET /healthz answered in p99 ${msText(r.healthWindow.p99)}, max ${msText(r.healthWindow.max)} in the window; max ${msText(r.healthRamp.max)} while the fleet connected`);
  }
  if (r.logLines !== undefined) w('server log', `${n0(r.logLines.warn)} warn, ${n0(r.logLines.error)} error lines${r.logLines.top === '' ? '' : `: ${r.logLines.top}`}`);
  w('bound', r.bound);
}

/** The final table; a "× bare X" column per bare kind that ran: each row's CPU per heartbeat ÷ that run's at the same size. */
function table(rows: readonly PhaseResult[]): string {
  const bares = KINDS.filter(isBare).filter((k) => rows.some((r) => r.kind === k));
  const head = `| agents | server | sustained hb/s | ack p50 / p99 | server CPU (% core) | µs/hb | ${bares.map((k) => `× ${KIND_LABEL[k]}`).join(' | ')}${bares.length > 0 ? ' | ' : ''}`
    + 'RSS MiB | DB MiB/h | → latest p50 / p99 | generators CPU (% core) | bound |';
  const out = [head, `|${head.split('|').slice(1, -1).map(() => '---').join('|')}|`];
  for (const r of rows) {
    const ratios = bares.map((k) => {
      const bare = rows.find((b) => b.kind === k && b.agents === r.agents);
      return bare === undefined || bare === r ? '—' : ratio(r, bare);
    });
    const latest = r.kind === 'monitor-server' ? `${msText(r.latestP50)} / ${msText(r.latestP99)}` : '—';
    out.push(`| ${n0(r.agents)} | ${KIND_LABEL[r.kind]} | ${n0(r.sustained)} | ${msText(r.ackP50)} / ${msText(r.ackP99)} | ${f1(r.serverCpuPct)} | ${f1(r.serverUsPerHb)} | `
      + `${ratios.map((x) => `${x} | `).join('')}${n0(r.serverRssMiB)} | ${f1(r.dbMiBPerHour)} | ${latest} | ${f1(r.genCpuPct)} | ${r.bound} |`);
  }
  return out.join('\n');
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  const started = Date.now();
  const { work } = benchWorkDir('autoscaler-fleet-', { keep: opts.keep, graceMs: 1_500 });
  for (const d of [opts.cpuProfDir, opts.genCpuProfDir]) if (d !== undefined) mkdirSync(d, { recursive: true });

  const tls = opts.tls ? await makeCerts(join(work, 'tls')) : undefined;
  const fdLimit = maxOpenFiles(process.pid);
  const cap = Math.min(fdLimit - FD_MARGIN, 28_000); // 28,000: about the default ephemeral port range
  process.stdout.write(`fleet bench: node ${process.version}, ${cpus().length} cores, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}; `
    + `${tls === undefined ? 'plaintext' : 'mutual TLS (autoscaler certs init, group certificate)'}; window ${opts.windowMs / 1000} s after ${opts.warmupMs / 1000} s warm-up; `
    + `up to ${opts.perProcess} agents per generator process (nice ${opts.genNice}), connecting ${opts.connectRate || 'unpaced'}/s; fd limit ${fdLimit}${opts.keep ? `; files kept in ${work}` : ''}; `
    + `generators use the ${opts.client} client (${CLIENT_WHY[opts.client]}); bare servers ack every ${opts.bareAckIntervalMs} ms`
    + `${opts.serverNodeArgs.length > 0 ? `; server node flags: ${opts.serverNodeArgs.join(' ')}` : ''}`
    + `${Object.keys(opts.monitorEnv).length > 0 ? `; monitor settings: ${Object.entries(opts.monitorEnv).map(([k, v]) => `${k}=${v}`).join(' ')}` : ''}`
    + `${Object.keys(opts.serverEnv).length > 0 ? `; server environment: ${Object.entries(opts.serverEnv).map(([k, v]) => `${k}=${v}`).join(' ')}` : ''}\n`);

  const sizes = [...new Set(opts.sizes)].sort((a, b) => a - b).filter((n) => n <= cap);
  for (const n of opts.sizes) if (n > cap) process.stdout.write(`skipping ${n} agents: the fd limit (${fdLimit}) allows ${cap}\n`);
  if (sizes.length === 0) throw new Error('no fleet size to run');
  const leadKind: ServerKind = opts.bareOnly ? (opts.bare[0] as BareKind) : 'monitor-server';
  const followKinds = opts.monitorOnly ? [] : opts.bare.filter((k) => k !== leadKind);
  let stopReason: string | undefined;
  const leadStart = Date.now();
  // The lead server takes the listed sizes, then climbs; the other one repeats its sizes after it.
  const lead = await runServer(leadKind, sizes[0] as number, (done) => {
    const last = done.at(-1);
    if (last === undefined) return undefined;
    const listed = sizes[done.length];
    if (listed === undefined && !opts.climb) {
      stopReason = 'the listed sizes are done';
      return undefined;
    }
    const next = listed ?? Math.min(cap, Math.round((last.agents * 1.5) / 1_000) * 1_000);
    if (next <= last.agents) {
      stopReason = `not saturated at ${n0(last.agents)} agents, the most the fd limit (${fdLimit}) allows`;
      return undefined;
    }
    // Budget: this step (connecting at the pace seen so far, then a window) and, for each
    // following server, everything the lead has done plus this step once more.
    const msPerAgent = done.reduce((a, r) => a + r.connectMs, 0) / Math.max(1, done.reduce((a, r) => a + r.newlyConnected, 0));
    const stepMs = (next - last.agents) * msPerAgent + opts.warmupMs + opts.windowMs + 15_000;
    const followMs = followKinds.length * (Date.now() - leadStart + stepMs);
    // The first listed sizes always run; a later one only if it fits.
    if (done.length >= 2 && Date.now() - started + stepMs + followMs > opts.budgetMs) {
      stopReason = `not saturated at ${n0(last.agents)} agents; ${n0(next)} would overrun the ${opts.budgetMs / 60_000} min budget`;
      return undefined;
    }
    return next;
  }, opts, tls, work, []);
  const lastLead = lead.at(-1);
  if (stopReason === undefined && lastLead !== undefined) stopReason = `saturated at ${n0(lastLead.agents)} agents (${lastLead.bound})`;
  const follow: PhaseResult[] = [];
  const followSizes = lead.map((r) => r.agents);
  for (const kind of followKinds) {
    if (followSizes.length === 0) break;
    follow.push(...await runServer(kind, followSizes[0] as number, (done) => followSizes[done.length], opts, tls, work, [...lead, ...follow]));
  }
  const results = [...lead, ...follow].sort((a, b) => a.agents - b.agents || byKind(a, b));
  process.stdout.write('\n');
  for (const n of followSizes) {
    for (const [a, b] of ratioPairs(results.filter((r) => r.agents === n))) {
      process.stdout.write(`ratio at ${n0(n)} agents: ${KIND_LABEL[a.kind]} CPU per heartbeat ÷ ${KIND_LABEL[b.kind]} ${ratio(a, b)} (${f1(a.serverUsPerHb)} µs ÷ ${f1(b.serverUsPerHb)} µs)\n`);
    }
  }
  process.stdout.write(`\nstopped: ${stopReason}; ${((Date.now() - started) / 1000).toFixed(0)} s in all\n\n${table(results)}\n`);
  for (const r of results) if (r.profile !== undefined) process.stdout.write(`\n${n0(r.agents)} agents, ${KIND_LABEL[r.kind]}, steady window only:\n${r.profile}\n`);
}

main().then(() => process.exit(0), (err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
