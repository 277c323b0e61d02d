/**
 * The floor under the monitor server's memory: what one server-side connection costs in Node,
 * layer by layer, with nothing of ours on top.
 *
 *   node dist/bench/conn-memory.js [--connections 2000] [--layers tcp,tls,mtls,h2c,h2,mtls-h2]
 *     [--parallel 2] [--server-env NAME=value …]
 *
 * For each layer a server child process (this file again, `node --expose-gc`, IPC channel) listens
 * on 127.0.0.1 port 0 and this process opens N connections to it (default 2,000, at most 10,000
 * and what the fd limit allows), 50 at a time:
 * - tcp: a net server, data read and dropped;
 * - tls / mtls: tls.createServer with the server certificate (mtls: requestCert and
 *   rejectUnauthorized against the CA; the client shows the group certificate);
 * - h2c / h2 / mtls-h2: node:http2 (createServer / createSecureServer, the same TLS), one POST
 *   stream per connection answered with `:status 200`, content-type application/grpc, kept open.
 * Certificates come from `autoscaler certs init DIR --group bench` (EC P-256, as in production).
 * Every handshake is a full one: the clients keep no sessions.
 *
 * The server child measures itself after global.gc(): process.memoryUsage() (rss, heapUsed,
 * external) and /proc/self/smaps split into the `[heap]` mapping (the brk heap: glibc's main arena,
 * where OpenSSL, nghttp2 and libuv allocate), the other anonymous mappings (V8's heap pages, big
 * mallocs, thread arenas, and all of an allocator's memory when one is preloaded) and file mappings. Samples: before any connection (the baseline); all N connected and
 * 1 s idle; after each connection (stream) sent 3 messages of 120 bytes 1 s apart, as heartbeats
 * would (the 5-byte gRPC prefix and 115 bytes); after 3 s more idle. Per connection =
 * (sample − baseline) / N; the projection at 10,000 is baseline + 10,000 × the highest of the
 * three RSS per-connection figures. --parallel 2 (the default) runs two layers at once, each in
 * its own server process (one connects while the other waits out its idle seconds), so a run takes
 * under a minute; 1 runs them one by one (also when the fd limit cannot hold two layers' clients).
 *
 * --server-env sets a variable for the server children (repeatable), e.g.
 * LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libmimalloc.so.2: how much of glibc's `[heap]` is memory it
 * keeps after frees rather than memory in use. Compare RSS per connection: under mimalloc `[heap]`
 * is about 0 and its memory is in "other anon". A preload that is not mapped in the child fails the run.
 *
 * Bounded: 10 s for a child to start, 30 s per connection and per wait for the server to count,
 * a 10 min watchdog. The server child is ended on every exit path (it also exits when the IPC
 * channel closes); the temp dir is removed. Linux only (/proc); all traffic stays on 127.0.0.1.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { benchWorkDir, checkPreload, cleanEnv, makeBenchCerts, sleep, stopChild, track, within, type BenchCerts } from './children.js';

const LAYERS = ['tcp', 'tls', 'mtls', 'h2c', 'h2', 'mtls-h2'] as const;
type Layer = (typeof LAYERS)[number];

/** The layer each one adds to: its "over" column is the difference. */
const BELOW: Readonly<Record<Layer, Layer | undefined>> = { tcp: undefined, tls: 'tcp', mtls: 'tls', h2c: 'tcp', h2: 'tls', 'mtls-h2': 'mtls' };
const IS_H2: Readonly<Record<Layer, boolean>> = { tcp: false, tls: false, mtls: false, h2c: true, h2: true, 'mtls-h2': true };

const DEFAULT_CONNECTIONS = 2_000;
const MAX_CONNECTIONS = 10_000;
/** The projection's size: the issue's goal. */
const TARGET_CONNECTIONS = 10_000;
/** The issue's budget for TARGET_CONNECTIONS agents, MB (10^6 bytes). */
const BUDGET_MB = 700;
/** Connections opened at once. */
const BATCH = 50;
/** fds kept free besides the connections (the node process's own, the IPC channel, …). */
const FD_MARGIN = 200;
const MESSAGES = 3;
const MESSAGE_BYTES = 120;
const MESSAGE_GAP_MS = 1_000;
const CONNECTED_IDLE_MS = 1_000;
const FINAL_IDLE_MS = 3_000;
const CHILD_START_TIMEOUT_MS = 10_000;
const CONNECT_TIMEOUT_MS = 30_000;
const COUNT_TIMEOUT_MS = 30_000;
const REQUEST_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 3_000;
const WATCHDOG_MS = 600_000;
const COUNT_POLL_MS = 50;
const GROUP = 'bench';
const GRPC_PATH = '/monitor.v1.Monitor/Heartbeat';
const ROLE_ENV = 'CONN_MEMORY_ROLE';

type CertFiles = BenchCerts;

/** One measurement in the server child, KiB. */
interface Sample {
  readonly rss: number;
  readonly heapUsed: number;
  readonly external: number;
  /** Rss of the `[heap]` mapping: glibc's main (brk) arena. */
  readonly brk: number;
  /** Rss of the other anonymous mappings: V8's heap pages, mmapped mallocs, thread arenas. */
  readonly anon: number;
  /** Rss of file mappings (the node binary, libraries). */
  readonly file: number;
}

interface Counts {
  /** Connections (tcp), handshakes done (tls, mtls) or HTTP/2 sessions. */
  readonly accepted: number;
  /** HTTP/2 streams answered. */
  readonly streams: number;
  /** Application bytes read. */
  readonly bytes: number;
  readonly errors: number;
}

type ToChild =
  | { readonly type: 'start'; readonly id: number; readonly layer: Layer; readonly certs: CertFiles }
  | { readonly type: 'counts'; readonly id: number }
  | { readonly type: 'sample'; readonly id: number };

/** A request before the channel numbers it. */
type Ask = ToChild extends infer M ? (M extends { readonly id: number } ? Omit<M, 'id'> : never) : never;

type FromChild =
  | { readonly type: 'listening'; readonly id: number; readonly port: number }
  | { readonly type: 'counts'; readonly id: number; readonly counts: Counts }
  | { readonly type: 'sample'; readonly id: number; readonly sample: Sample; readonly counts: Counts }
  | { readonly type: 'error'; readonly id: number; readonly message: string };

// ---------------------------------------------------------------------------------------------
// The server child. Per connection it keeps nothing of its own: the handlers are shared and the
// counters are four numbers, so what grows is Node's, OpenSSL's and nghttp2's.

function smapsSplit(): { brk: number; anon: number; file: number } {
  let brk = 0, anon = 0, file = 0;
  let kind: 'brk' | 'anon' | 'file' | 'other' = 'other';
  for (const line of readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    const header = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (header !== null) {
      const path = header[1] ?? '';
      kind = path === '[heap]' ? 'brk' : path === '' || path.startsWith('[anon') ? 'anon' : path.startsWith('/') ? 'file' : 'other';
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss === null) continue;
    const kib = Number(rss[1]);
    if (kind === 'brk') brk += kib;
    else if (kind === 'anon') anon += kib;
    else if (kind === 'file') file += kib;
  }
  return { brk, anon, file };
}

function serverChild(): void {
  const send = (m: FromChild) => process.send?.(m);
  const counts = { accepted: 0, streams: 0, bytes: 0, errors: 0 };
  const onData = (chunk: Buffer) => { counts.bytes += chunk.length; };
  const onError = () => { counts.errors += 1; };
  const onSocket = (s: net.Socket) => { counts.accepted += 1; s.on('data', onData); s.on('error', onError); };
  const onStream = (stream: http2.ServerHttp2Stream) => {
    counts.streams += 1;
    stream.on('data', onData);
    stream.on('error', onError);
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
  };
  const gc = globalThis.gc;
  // The parent going away (even by SIGKILL) closes the channel: nothing outlives the bench.
  process.on('disconnect', () => process.exit(0));
  process.on('message', (raw: unknown) => {
    const m = raw as ToChild;
    if (m.type === 'counts') {
      send({ type: 'counts', id: m.id, counts: { ...counts } });
    } else if (m.type === 'sample') {
      if (gc === undefined) {
        send({ type: 'error', id: m.id, message: 'the server child needs --expose-gc' });
        return;
      }
      gc();
      gc();
      const u = process.memoryUsage();
      send({ type: 'sample', id: m.id, counts: { ...counts }, sample: { rss: u.rss / 1024, heapUsed: u.heapUsed / 1024, external: u.external / 1024, ...smapsSplit() } });
    } else {
      const read = (p: string) => readFileSync(p);
      const identity = { key: read(m.certs.serverKey), cert: read(m.certs.serverCert) };
      const mutual = { ca: read(m.certs.ca), requestCert: true, rejectUnauthorized: true };
      let server: net.Server;
      switch (m.layer) {
        case 'tcp': server = net.createServer(onSocket); break;
        case 'tls': server = tls.createServer(identity, onSocket); break;
        case 'mtls': server = tls.createServer({ ...identity, ...mutual }, onSocket); break;
        case 'h2c': server = http2.createServer(); break;
        case 'h2': server = http2.createSecureServer(identity); break;
        case 'mtls-h2': server = http2.createSecureServer({ ...identity, ...mutual }); break;
      }
      if (IS_H2[m.layer]) {
        server.on('session', (session: http2.ServerHttp2Session) => { counts.accepted += 1; session.on('error', onError); });
        server.on('stream', onStream);
        server.on('sessionError', onError);
      }
      server.on('tlsClientError', onError);
      server.once('error', (err: Error) => { send({ type: 'error', id: m.id, message: err.message }); process.exit(1); });
      server.listen({ host: '127.0.0.1', port: 0, backlog: 1_024 }, () => send({ type: 'listening', id: m.id, port: (server.address() as net.AddressInfo).port }));
    }
  });
}

// ---------------------------------------------------------------------------------------------
// The parent: certificates, one server child per layer, the clients.

function maxOpenFiles(): number {
  const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  return m === null || m[1] === 'unlimited' ? Number.POSITIVE_INFINITY : Number(m[1]);
}


/** A server child and its request/answer channel. */
class ServerChild {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (m: FromChild) => void; reject: (e: Error) => void }>();
  readonly child: ChildProcess;

  constructor(env: Readonly<Record<string, string>>) {
    this.child = track(fork(fileURLToPath(import.meta.url), [], {
      execArgv: ['--expose-gc'], env: { ...cleanEnv(), ...env, [ROLE_ENV]: 'server' }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    }));
    this.child.on('message', (raw: unknown) => {
      const m = raw as FromChild;
      const p = this.pending.get(m.id);
      if (p === undefined) return;
      this.pending.delete(m.id);
      if (m.type === 'error') p.reject(new Error(`server child: ${m.message}`));
      else p.resolve(m);
    });
    this.child.once('exit', (code, signal) => {
      for (const p of this.pending.values()) p.reject(new Error(`server child exited (${code ?? signal ?? '?'})`));
      this.pending.clear();
    });
  }

  async request<T extends FromChild['type']>(m: Ask, want: T, ms = REQUEST_TIMEOUT_MS): Promise<Extract<FromChild, { type: T }>> {
    const id = this.nextId++;
    const answer = new Promise<FromChild>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    this.child.send({ ...m, id });
    const got = await within(`server child ${m.type}`, ms, answer).finally(() => this.pending.delete(id));
    if (got.type !== want) throw new Error(`server child answered ${got.type} to ${m.type}`);
    return got as Extract<FromChild, { type: T }>;
  }
}

/** One client connection: what the bench does with it. */
interface Client {
  readonly write: (b: Buffer) => void;
  readonly destroy: () => void;
}

const noop = () => {};

function connectOne(layer: Layer, port: number, contexts: { readonly tls: tls.SecureContext; readonly mtls: tls.SecureContext }): Promise<Client> {
  return new Promise((resolve, reject) => {
    const fail = (err: Error) => reject(err);
    if (IS_H2[layer]) {
      const secure = layer !== 'h2c';
      const session = http2.connect(`${secure ? 'https' : 'http'}://127.0.0.1:${port}`, secure ? { secureContext: layer === 'mtls-h2' ? contexts.mtls : contexts.tls } : {});
      session.once('error', fail);
      const stream = session.request({ ':method': 'POST', ':path': GRPC_PATH, 'content-type': 'application/grpc', te: 'trailers' }, { endStream: false });
      stream.once('error', fail);
      stream.once('response', (headers) => {
        if (headers[':status'] !== 200) return reject(new Error(`HTTP/2 status ${String(headers[':status'])}`));
        session.off('error', fail).on('error', noop);
        stream.off('error', fail).on('error', noop);
        resolve({ write: (b) => { stream.write(b); }, destroy: () => session.destroy() });
      });
      return;
    }
    const socket = layer === 'tcp'
      ? net.connect({ host: '127.0.0.1', port })
      : tls.connect({ host: '127.0.0.1', port, secureContext: layer === 'mtls' ? contexts.mtls : contexts.tls });
    socket.once('error', fail);
    socket.once(layer === 'tcp' ? 'connect' : 'secureConnect', () => {
      socket.off('error', fail).on('error', noop);
      resolve({ write: (b) => { socket.write(b); }, destroy: () => socket.destroy() });
    });
  });
}

async function waitForCounts(server: ServerChild, what: string, done: (c: Counts) => boolean): Promise<Counts> {
  const deadline = Date.now() + COUNT_TIMEOUT_MS;
  for (;;) {
    const { counts } = await server.request({ type: 'counts' }, 'counts');
    if (done(counts)) return counts;
    if (Date.now() > deadline) throw new Error(`${what}: not reached within ${COUNT_TIMEOUT_MS} ms (server counts ${JSON.stringify(counts)})`);
    await sleep(COUNT_POLL_MS);
  }
}

interface LayerResult {
  readonly layer: Layer;
  readonly connectMs: number;
  readonly baseline: Sample;
  /** connected + 1 s idle, after the messages, after 3 s more idle. */
  readonly phases: readonly [Sample, Sample, Sample];
  readonly serverErrors: number;
}

/** A gRPC length-prefixed message of MESSAGE_BYTES in all, as a heartbeat would be on the wire. */
function message(): Buffer {
  const b = Buffer.alloc(MESSAGE_BYTES, 0x61);
  b[0] = 0;
  b.writeUInt32BE(MESSAGE_BYTES - 5, 1);
  return b;
}

async function runLayer(layer: Layer, n: number, certs: CertFiles, contexts: { readonly tls: tls.SecureContext; readonly mtls: tls.SecureContext },
  serverEnv: Readonly<Record<string, string>>): Promise<LayerResult> {
  const server = new ServerChild(serverEnv);
  const clients: Client[] = [];
  try {
    const { port } = await server.request({ type: 'start', layer, certs }, 'listening', CHILD_START_TIMEOUT_MS);
    checkPreload(server.child.pid as number, serverEnv, `${layer} server`);
    const { sample: baseline } = await server.request({ type: 'sample' }, 'sample');
    const t0 = Date.now();
    for (let i = 0; i < n; i += BATCH) {
      const batch = Array.from({ length: Math.min(BATCH, n - i) }, () => within(`${layer} connect`, CONNECT_TIMEOUT_MS, connectOne(layer, port, contexts)));
      clients.push(...await Promise.all(batch));
    }
    await waitForCounts(server, `${layer}: ${n} connections accepted`, (c) => c.accepted >= n && (!IS_H2[layer] || c.streams >= n));
    const connectMs = Date.now() - t0;
    process.stderr.write(`${layer}: ${n} connected in ${(connectMs / 1000).toFixed(1)} s\n`);
    await sleep(CONNECTED_IDLE_MS);
    const connected = (await server.request({ type: 'sample' }, 'sample')).sample;
    const msg = message();
    for (let r = 1; r <= MESSAGES; r++) {
      const roundStart = Date.now();
      for (const c of clients) c.write(msg);
      await waitForCounts(server, `${layer}: message ${r} on every connection`, (c) => c.bytes >= n * MESSAGE_BYTES * r);
      if (r < MESSAGES) await sleep(roundStart + MESSAGE_GAP_MS - Date.now());
    }
    const afterMessages = (await server.request({ type: 'sample' }, 'sample')).sample;
    await sleep(FINAL_IDLE_MS);
    const last = await server.request({ type: 'sample' }, 'sample');
    return { layer, connectMs, baseline, phases: [connected, afterMessages, last.sample], serverErrors: last.counts.errors };
  } finally {
    for (const c of clients) c.destroy();
    await stopChild(server.child, STOP_GRACE_MS);
  }
}

// ---------------------------------------------------------------------------------------------
// Output.

const perConn = (r: LayerResult, pick: (s: Sample) => number, n: number) => r.phases.map((p) => (pick(p) - pick(r.baseline)) / n);
const rssPerConn = (r: LayerResult, n: number) => Math.max(...perConn(r, (s) => s.rss, n));
/** baseline + TARGET_CONNECTIONS × the highest RSS per connection, MiB. */
const projectedMiB = (r: LayerResult, n: number) => (r.baseline.rss + TARGET_CONNECTIONS * rssPerConn(r, n)) / 1024;
const triple = (xs: readonly number[]) => xs.map((x) => x.toFixed(1)).join(' / ');
const mib = (kib: number) => (kib / 1024).toFixed(1);
const mbOfMiB = (m: number) => ((m * 2 ** 20) / 1e6).toFixed(0);

function table(results: readonly LayerResult[], n: number): string {
  const head = '| layer | connect, s | baseline RSS, MiB | RSS / conn, KiB | over layer below, KiB | V8 heapUsed / conn, KiB | external / conn, KiB | brk [heap] / conn, KiB | other anon / conn, KiB | projected RSS at 10,000, MiB (MB) |';
  const out = [head, `|${head.split('|').slice(1, -1).map(() => '---').join('|')}|`];
  for (const r of results) {
    const below = BELOW[r.layer];
    const base = below === undefined ? undefined : results.find((x) => x.layer === below);
    const over = base === undefined ? '—' : `${(rssPerConn(r, n) - rssPerConn(base, n)).toFixed(1)} over ${below}`;
    const p = projectedMiB(r, n);
    out.push(`| ${r.layer} | ${(r.connectMs / 1000).toFixed(1)} | ${mib(r.baseline.rss)} | ${triple(perConn(r, (s) => s.rss, n))} | ${over} `
      + `| ${triple(perConn(r, (s) => s.heapUsed, n))} | ${triple(perConn(r, (s) => s.external, n))} | ${triple(perConn(r, (s) => s.brk, n))} `
      + `| ${triple(perConn(r, (s) => s.anon, n))} | ${p.toFixed(0)} (${mbOfMiB(p)}) |`);
  }
  return out.join('\n');
}

const LAYER_PHRASE: Readonly<Record<Layer, string>> = {
  tcp: 'plain TCP', tls: 'TLS', mtls: 'mutual-TLS', h2c: 'cleartext HTTP/2', h2: 'TLS HTTP/2', 'mtls-h2': 'mutual-TLS HTTP/2',
};

function conclusion(results: readonly LayerResult[], n: number): string {
  const r = results.find((x) => x.layer === 'mtls-h2') ?? results.at(-1);
  if (r === undefined) return '';
  const p = projectedMiB(r, n);
  return `${TARGET_CONNECTIONS.toLocaleString('en-US')} ${LAYER_PHRASE[r.layer]} connections need at least ${p.toFixed(0)} MiB (${mbOfMiB(p)} MB) in Node ${process.version} (OpenSSL ${process.versions.openssl}), `
    + `before any application state (the issue's budget: ${BUDGET_MB} MB = ${((BUDGET_MB * 1e6) / 2 ** 20).toFixed(0)} MiB).`;
}

// ---------------------------------------------------------------------------------------------

interface Options {
  readonly connections: number;
  readonly layers: readonly Layer[];
  /** Layers run at once (1 or 2; 1 when the fd limit cannot hold two layers' clients). */
  readonly parallel: number;
  /** Environment for the server children (--server-env NAME=value). */
  readonly serverEnv: Readonly<Record<string, string>>;
}

function options(argv: readonly string[]): Options {
  const { values } = parseArgs({ args: [...argv], options: {
    connections: { type: 'string', default: String(DEFAULT_CONNECTIONS) },
    layers: { type: 'string', default: LAYERS.join(',') },
    parallel: { type: 'string', default: '2' },
    'server-env': { type: 'string', multiple: true, default: [] },
  } });
  const problems: string[] = [];
  const connections = Number(values.connections);
  const cap = Math.min(MAX_CONNECTIONS, maxOpenFiles() - FD_MARGIN);
  if (!Number.isInteger(connections) || connections < 1 || connections > cap) problems.push(`--connections must be a whole number in 1..${cap} (at most ${MAX_CONNECTIONS}, and the fd limit ${maxOpenFiles()} less ${FD_MARGIN})`);
  const layers = values.layers.split(',').map((s) => s.trim()).filter(Boolean);
  for (const l of layers) if (!(LAYERS as readonly string[]).includes(l)) problems.push(`--layers: unknown layer ${JSON.stringify(l)} (one of ${LAYERS.join(', ')})`);
  if (layers.length === 0) problems.push('--layers: name at least one layer');
  const parallel = Number(values.parallel);
  if (parallel !== 1 && parallel !== 2) problems.push('--parallel must be 1 or 2');
  const serverEnv: Record<string, string> = {};
  for (const kv of values['server-env']) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(kv);
    if (m === null) problems.push(`--server-env ${JSON.stringify(kv)}: expected NAME=value`);
    else serverEnv[m[1] as string] = m[2] as string;
  }
  if (problems.length > 0) throw new Error(problems.join('; '));
  // Always in the order of LAYERS, so each one follows the layer it adds to.
  return { connections, layers: LAYERS.filter((l) => layers.includes(l)), parallel, serverEnv };
}

async function main(): Promise<void> {
  const opts = options(process.argv.slice(2));
  const { work, cleanup } = benchWorkDir('autoscaler-conn-memory-');
  const watchdog = setTimeout(() => {
    process.stderr.write(`conn-memory: over ${WATCHDOG_MS / 1000} s, giving up\n`);
    cleanup();
    process.exit(1);
  }, WATCHDOG_MS);
  watchdog.unref();

  const started = Date.now();
  const certs = await makeBenchCerts(join(work, 'tls'), GROUP);
  const ca = readFileSync(certs.ca);
  const contexts = {
    tls: tls.createSecureContext({ ca }),
    mtls: tls.createSecureContext({ ca, cert: readFileSync(certs.clientCert), key: readFileSync(certs.clientKey) }),
  };
  const n = opts.connections;
  // Layers overlap (one connects while another sits in its idle waits): separate server
  // processes, so their memory does not mix; the clients of both need fds here.
  const parallel = Math.min(opts.parallel, 2 * n + FD_MARGIN <= maxOpenFiles() ? 2 : 1, opts.layers.length);
  process.stdout.write(`conn-memory: node ${process.version}, OpenSSL ${process.versions.openssl}, ${cpus().length} cores, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}; `
    + `${n.toLocaleString('en-US')} connections per layer on 127.0.0.1, ${BATCH} at a time; ${MESSAGES} messages of ${MESSAGE_BYTES} bytes each, ${MESSAGE_GAP_MS / 1000} s apart; `
    + `certificates from autoscaler certs init (EC P-256), full handshakes; `
    + `${parallel === 1 ? 'one layer at a time' : `${parallel} layers at a time (connect times include the other's load)`}; server child: node --expose-gc, measured after gc()`
    + `${Object.keys(opts.serverEnv).length > 0 ? `; server environment: ${Object.entries(opts.serverEnv).map(([k, v]) => `${k}=${v}`).join(' ')}` : ''}\n`);
  const results: LayerResult[] = [];
  const queue = [...opts.layers];
  await Promise.all(Array.from({ length: parallel }, async () => {
    for (let layer = queue.shift(); layer !== undefined; layer = queue.shift()) {
      const r = await runLayer(layer, n, certs, contexts, opts.serverEnv);
      if (r.serverErrors > 0) process.stderr.write(`${layer}: the server saw ${r.serverErrors} socket/session errors\n`);
      results.push(r);
    }
  }));
  results.sort((a, b) => LAYERS.indexOf(a.layer) - LAYERS.indexOf(b.layer));
  process.stdout.write(`\nper connection = (sample − baseline) / ${n.toLocaleString('en-US')}; each cell: connected + ${CONNECTED_IDLE_MS / 1000} s idle / after ${MESSAGES} messages / `
    + `${FINAL_IDLE_MS / 1000} s later; "over" and the projection use each layer's highest RSS figure; ${((Date.now() - started) / 1000).toFixed(0)} s in all\n\n`);
  process.stdout.write(`${table(results, n)}\n\n${conclusion(results, n)}\n`);
}

if (process.env[ROLE_ENV] === 'server' && process.send !== undefined) {
  serverChild();
} else {
  main().then(() => process.exit(0), (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
}
