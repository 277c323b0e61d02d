/**
 * A gRPC server on node:http2 for the monitor's service: unary and bidirectional-streaming
 * methods, identity encoding (no compression), mutual TLS, reloadable certificates.
 *
 * Why not grpc-js's server: with one connection per agent at 1 Hz, grpc-js spends about as much
 * CPU per message above node:http2 as node:http2 spends on TLS, framing and the socket together
 * (docs/transport.md, "Server implementation"). This module implements what the monitor's three
 * methods need of the gRPC HTTP/2 protocol
 * (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md), and nothing more:
 *
 * - requests: `POST`, `content-type: application/grpc[+proto]`, length-prefixed messages (a 1-byte
 *   compressed flag and a 4-byte big-endian length), `grpc-timeout`, metadata (`-bin` keys base64);
 * - responses: `:status 200`, messages, then trailers `grpc-status` and `grpc-message`
 *   (percent-encoded); a call refused before any message is answered "trailers-only";
 * - keepalive: a PING to each connection that was silent for `keepaliveTimeMs`, closed when the
 *   PING is not answered within `keepaliveTimeoutMs`; a connection with no call for
 *   `idleConnectionMs` is closed (a scanner that completes a handshake does not hold memory).
 *
 * Clients are unchanged: the agent and the tests use grpc-js's client. Every refusal is a gRPC
 * status a client can act on (UNIMPLEMENTED, RESOURCE_EXHAUSTED, INTERNAL, DEADLINE_EXCEEDED),
 * and nothing a client sends reaches the process's uncaught-exception path.
 */
import { EventEmitter } from 'node:events';
import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import { Metadata, status as Status, type ServiceDefinition } from '@grpc/grpc-js';

/** A gRPC status to end a call with. `code` is one of grpc-js's `status` values. */
export interface CallStatus {
  readonly code: number;
  readonly details: string;
}

/** The caller's side of a call, as handlers see it. */
export interface CallContext {
  readonly metadata: Metadata;
  /** The peer's address, "1.2.3.4:5678" or "[::1]:5678". */
  getPeer(): string;
  /** The verified client certificate, when the connection presented one (mutual TLS). */
  getAuthContext(): { readonly sslPeerCertificate?: PeerCertificate | undefined };
  /** True once the client cancelled, the deadline passed or the connection closed. */
  readonly cancelled: boolean;
}

/** Answer of a unary call: exactly once, an error status or a value. */
export type UnaryCallback<Res> = (err: CallStatus | null, value?: Res) => void;

export interface UnaryCall<Req> extends CallContext {
  readonly request: Req;
  on(event: 'cancelled' | 'close', listener: () => void): this;
}

export type UnaryHandler<Req, Res> = (call: UnaryCall<Req>, callback: UnaryCallback<Res>) => void;
export type DuplexHandler<Req, Res> = (call: DuplexCall<Req, Res>) => void;

/** Handlers by method name, as `addService` takes them (each typed by its method; checked by path at run time). */
export type Handlers = Readonly<Record<string, (...args: never[]) => void>>;

/** What the server reports about refused connections and requests (for counters and logs). */
export type ServerRefusal = 'tls' | 'protocol' | 'unimplemented' | 'tooLarge' | 'badMessage' | 'deadline' | 'keepalive' | 'idle';

export interface GrpcServerOptions {
  /** Largest message accepted, bytes (the 4-byte length prefix is checked before anything is buffered). */
  readonly maxReceiveMessageBytes: number;
  /** Largest message sent, bytes. */
  readonly maxSendMessageBytes: number;
  /** PING a connection that sent nothing for this long, ms; 0: never. */
  readonly keepaliveTimeMs: number;
  /** Close a connection whose PING is not answered within this, ms. */
  readonly keepaliveTimeoutMs: number;
  /** Close a connection that has had no call for this long, ms; 0: never. */
  readonly idleConnectionMs: number;
  /** Calls at once on one connection (SETTINGS_MAX_CONCURRENT_STREAMS). */
  readonly maxConcurrentStreams: number;
  /** Largest header block accepted, bytes (SETTINGS_MAX_HEADER_LIST_SIZE). */
  readonly maxHeaderListBytes: number;
  /** A TLS handshake not done within this is dropped, ms. */
  readonly handshakeTimeoutMs: number;
  /** A handler or listener threw: the call got INTERNAL; log and count it. */
  readonly onError: (where: string, err: unknown) => void;
  /** Something was refused (see ServerRefusal); `detail` is short, for a throttled log. */
  readonly onRefused?: (reason: ServerRefusal, detail: string) => void;
}

/** TLS for the listener, as node:tls takes it: PEM key, certificate chain and (mutual TLS) client CA bundle. */
export interface ServerTlsOptions {
  readonly key: Buffer;
  readonly cert: Buffer;
  readonly ca?: Buffer;
  readonly requestCert: boolean;
  readonly rejectUnauthorized: boolean;
}

const HEADER_BYTES = 5;
/** Messages a call buffers before write() says wait (grpc-js's object-mode high-water mark, 16). */
export const MESSAGE_HIGH_WATER = 16;
const GRPC_CONTENT_TYPE = 'application/grpc';

/** "grpc-timeout: 30S" → ms; undefined when absent or malformed (then no deadline). */
export function parseGrpcTimeout(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const m = /^(\d{1,8})([HMSmun])$/.exec(value);
  if (m === null) return undefined;
  const n = Number(m[1]);
  const scale: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1_000, m: 1, u: 1e-3, n: 1e-6 };
  return n * (scale[m[2] as string] as number);
}

/** Percent-encode a status message as the protocol asks: bytes outside 0x20-0x7E, and '%'. */
export function encodeGrpcMessage(text: string): string {
  let out = '';
  for (const b of Buffer.from(text, 'utf8')) {
    out += b >= 0x20 && b <= 0x7e && b !== 0x25 ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** A length-prefixed message header for `payload`. */
export function frameMessage(payload: Buffer): Buffer {
  const out = Buffer.allocUnsafe(HEADER_BYTES + payload.length);
  out[0] = 0;
  out.writeUInt32BE(payload.length, 1);
  payload.copy(out, HEADER_BYTES);
  return out;
}

/** How long a client may keep a call open after its status went out, ms. */
const AFTER_STATUS_MS = 1_000;

/**
 * After the status went out: reset the stream (RST_STREAM NO_ERROR, as the protocol allows) if
 * the client has not closed it within AFTER_STATUS_MS, so a refused call does not hold a stream
 * slot. Until then what it sends is read and dropped; pausing instead would keep up to a flow
 * control window per stream in the connection's memory budget, and a connection over it has its
 * new calls refused. Not at once: nghttp2 may send a RST_STREAM ahead of the trailers queued
 * before it, and the client would then see "ended without gRPC status".
 */
function stopReading(stream: http2.ServerHttp2Stream): void {
  if (stream.readableEnded || stream.destroyed) return;
  const timer = setTimeout(() => {
    if (!stream.closed && !stream.destroyed) stream.close(http2.constants.NGHTTP2_NO_ERROR);
  }, AFTER_STATUS_MS);
  timer.unref();
  stream.once('close', () => clearTimeout(timer));
}

/** Why a stream of bytes is not a sequence of messages. */
export class FrameError extends Error {
  constructor(readonly status: CallStatus, readonly reason: ServerRefusal) {
    super(status.details);
  }
}

/**
 * Splits DATA bytes into messages. A message that arrives whole in one chunk is a view of that
 * chunk (no copy); one split over chunks is gathered into a buffer of its announced length,
 * allocated only after the length passed the limit. Pure: no I/O.
 */
export class MessageDecoder {
  private header = Buffer.alloc(HEADER_BYTES);
  private headerHave = 0;
  private body: Buffer | undefined;
  private bodyHave = 0;

  constructor(private readonly maxBytes: number) {}

  /** True when a message has begun but not ended (the stream must not end here). */
  get partial(): boolean {
    return this.headerHave > 0 || this.body !== undefined;
  }

  /** Messages completed by `chunk`; throws FrameError on a compressed or oversized message. */
  push(chunk: Buffer, out: Buffer[]): void {
    let off = 0;
    while (off < chunk.length) {
      if (this.body === undefined) {
        if (this.headerHave === 0 && chunk.length - off >= HEADER_BYTES) {
          const len = this.check(chunk[off] as number, chunk.readUInt32BE(off + 1));
          off += HEADER_BYTES;
          if (chunk.length - off >= len) {
            out.push(chunk.subarray(off, off + len));
            off += len;
            continue;
          }
          this.body = Buffer.allocUnsafe(len);
          this.bodyHave = 0;
          continue;
        }
        const take = Math.min(HEADER_BYTES - this.headerHave, chunk.length - off);
        chunk.copy(this.header, this.headerHave, off, off + take);
        this.headerHave += take;
        off += take;
        if (this.headerHave < HEADER_BYTES) return;
        this.headerHave = 0;
        const len = this.check(this.header[0] as number, this.header.readUInt32BE(1));
        if (len === 0) {
          out.push(Buffer.alloc(0));
          continue;
        }
        this.body = Buffer.allocUnsafe(len);
        this.bodyHave = 0;
        continue;
      }
      const take = Math.min(this.body.length - this.bodyHave, chunk.length - off);
      chunk.copy(this.body, this.bodyHave, off, off + take);
      this.bodyHave += take;
      off += take;
      if (this.bodyHave === this.body.length) {
        out.push(this.body);
        this.body = undefined;
      }
    }
  }

  private check(flag: number, len: number): number {
    if (flag === 1) throw new FrameError({ code: Status.UNIMPLEMENTED, details: 'compressed messages are not supported (send grpc-encoding identity)' }, 'protocol');
    if (flag !== 0) throw new FrameError({ code: Status.INTERNAL, details: `invalid message flag ${flag}` }, 'protocol');
    if (len > this.maxBytes) throw new FrameError({ code: Status.RESOURCE_EXHAUSTED, details: `Received message larger than max (${len} vs. ${this.maxBytes})` }, 'tooLarge');
    return len;
  }
}

/** Per connection: its certificate (read once), its calls, and keepalive state. */
class Connection {
  streams = 0;
  /** Anything read since the last keepalive sweep. */
  active = true;
  pinging = false;
  idleSince: number;
  private cert: PeerCertificate | undefined | null = null;
  readonly peer: string;

  constructor(readonly session: http2.ServerHttp2Session, now: number) {
    this.idleSince = now;
    const s = session.socket;
    const host = s.remoteAddress ?? 'unknown';
    this.peer = host.includes(':') ? `[${host}]:${s.remotePort ?? 0}` : `${host}:${s.remotePort ?? 0}`;
  }

  /** The verified peer certificate, or undefined (plaintext, or none presented). */
  certificate(): PeerCertificate | undefined {
    if (this.cert === null) {
      const socket = this.session.socket as Partial<TLSSocket>;
      const c = typeof socket.getPeerCertificate === 'function' && socket.authorized === true ? socket.getPeerCertificate() : undefined;
      this.cert = c !== undefined && Object.keys(c).length > 0 ? c : undefined;
    }
    return this.cert;
  }
}

interface Method {
  readonly name: string;
  readonly streaming: boolean;
  readonly deserialize: (buf: Buffer) => unknown;
  readonly serialize: (value: unknown) => Buffer;
  readonly handler: (...args: never[]) => void;
}

/** The common part of both call kinds: headers out, trailers, deadline, cancellation. */
abstract class BaseCall extends EventEmitter implements CallContext {
  readonly metadata: Metadata;
  cancelled = false;
  /** A status was sent (or the stream is gone): nothing more goes out. */
  protected finished = false;
  private headersSent = false;
  private deadline: NodeJS.Timeout | undefined;

  constructor(protected readonly stream: http2.ServerHttp2Stream, protected readonly conn: Connection, headers: http2.IncomingHttpHeaders, protected readonly server: GrpcServer) {
    super();
    this.metadata = Metadata.fromHttp2Headers(headers);
    const timeout = parseGrpcTimeout(typeof headers['grpc-timeout'] === 'string' ? headers['grpc-timeout'] : undefined);
    if (timeout !== undefined) {
      this.deadline = setTimeout(() => {
        this.server.refused('deadline', conn.peer);
        this.cancel();
        this.finish({ code: Status.DEADLINE_EXCEEDED, details: 'Deadline exceeded' });
      }, Math.max(0, timeout));
      this.deadline.unref();
    }
  }

  getPeer(): string {
    return this.conn.peer;
  }

  /** A status went out (or the stream is gone): the handler hears nothing more from this call. */
  get done(): boolean {
    return this.finished;
  }

  getAuthContext(): { readonly sslPeerCertificate?: PeerCertificate | undefined } {
    const cert = this.conn.certificate();
    return cert === undefined ? {} : { sslPeerCertificate: cert };
  }

  /** The client went away (RST_STREAM, connection lost) or the deadline passed. */
  cancel(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    this.emit('cancelled');
  }

  /** The stream closed, whatever the reason: release everything. */
  closed(): void {
    if (this.deadline !== undefined) clearTimeout(this.deadline);
    if (!this.finished) {
      this.finished = true;
      this.cancel();
    }
    this.emit('close');
  }

  /** `done`: called once the message left this call's buffer (or will never be sent). */
  protected sendMessage(payload: Buffer, done?: () => void): void {
    if (payload.length > this.server.opts.maxSendMessageBytes) {
      this.finish({ code: Status.RESOURCE_EXHAUSTED, details: `Sent message larger than max (${payload.length} vs. ${this.server.opts.maxSendMessageBytes})` });
      done?.();
      return;
    }
    this.respond();
    this.stream.write(frameMessage(payload), done);
  }

  private respond(): void {
    if (this.headersSent) return;
    this.headersSent = true;
    this.stream.respond({ ':status': 200, 'content-type': 'application/grpc+proto', 'grpc-accept-encoding': 'identity' }, { waitForTrailers: true });
  }

  /** Send `status` and end the call (once; later calls do nothing). */
  finish(status: CallStatus): void {
    if (this.finished) return;
    this.finished = true;
    if (this.deadline !== undefined) clearTimeout(this.deadline);
    const stream = this.stream;
    if (stream.destroyed || stream.closed) return;
    const trailers = { 'grpc-status': String(status.code), 'grpc-message': encodeGrpcMessage(status.details) };
    try {
      if (!this.headersSent) {
        this.headersSent = true;
        stream.respond({ ':status': 200, 'content-type': 'application/grpc+proto', ...trailers }, { endStream: true });
        stopReading(stream);
        return;
      }
      stream.once('wantTrailers', () => {
        // Runs inside an nghttp2 callback: a throw here would end the whole connection.
        try {
          if (stream.destroyed) return;
          stream.sendTrailers(trailers);
          stopReading(stream);
        } catch (err) {
          stream.destroy();
          this.server.opts.onError('trailers', err);
        }
      });
      stream.end();
    } catch (err) {
      // The stream died between the check and the write (the peer reset it): nothing to tell.
      stream.destroy();
      this.server.opts.onError('finish', err);
    }
  }
}

/**
 * A bidirectional-streaming call. Events: 'data' (a request message and its size on the wire,
 * bytes), 'end' (the client
 * half-closed), 'cancelled', 'close' (the call is over), 'drain' (writes may go on). There is no
 * 'error' event: a failed call is 'cancelled' then 'close'.
 */
export class DuplexCall<Req, Res> extends BaseCall {
  /** Messages written and not yet handed to the connection. */
  private queued = 0;
  private wantDrain = false;

  constructor(stream: http2.ServerHttp2Stream, conn: Connection, headers: http2.IncomingHttpHeaders, server: GrpcServer, private readonly serialize: (v: Res) => Buffer) {
    super(stream, conn, headers, server);
  }

  /**
   * Send a message; false when MESSAGE_HIGH_WATER messages wait (the client is not reading and
   * HTTP/2 flow control holds them back): write again after 'drain'. Counted in messages, not
   * bytes, so a client that never reads holds a known number of them.
   */
  write(message: Res): boolean {
    if (this.finished) return false;
    this.queued++;
    this.sendMessage(this.serialize(message), () => {
      this.queued--;
      if (this.wantDrain && this.queued === 0) {
        this.wantDrain = false;
        this.emit('drain');
      }
    });
    if (this.queued < MESSAGE_HIGH_WATER) return true;
    this.wantDrain = true;
    return false;
  }

  /** Messages waiting to be sent on this call. */
  get writableLength(): number {
    return this.queued;
  }

  /** End the call with OK. */
  end(): void {
    this.finish({ code: Status.OK, details: '' });
  }

  /** End the call with an error status. */
  fail(status: CallStatus): void {
    this.finish(status);
  }

  /** Stop reading this call's messages (HTTP/2 flow control then holds the client back). */
  pause(): void {
    this.stream.pause();
  }

  resume(): void {
    this.stream.resume();
  }

  override on(event: 'data', listener: (message: Req, bytes: number) => void): this;
  override on(event: 'end' | 'cancelled' | 'close' | 'drain', listener: () => void): this;
  override on(event: string, listener: (message: Req, bytes: number) => void): this {
    return super.on(event, listener);
  }
}

/** A unary call: the request, and `finish` through the handler's callback. */
class UnaryCallImpl<Req> extends BaseCall implements UnaryCall<Req> {
  request!: Req;

  /** The answer and OK; a message over the send limit ends the call with RESOURCE_EXHAUSTED instead. */
  reply(payload: Buffer): void {
    this.sendMessage(payload);
    this.finish({ code: Status.OK, details: '' });
  }
}

/**
 * The server. `addService` as grpc-js's (proto-loader's service definition: paths, streaming
 * flags, serializers), `listen` with optional TLS, `reloadTls` swaps certificates for new
 * connections, `shutdown` sends GOAWAY and waits for calls to end, `forceShutdown` closes all.
 */
export class GrpcServer {
  private readonly methods = new Map<string, Method>();
  private readonly connections = new Set<Connection>();
  private server: http2.Http2Server | http2.Http2SecureServer | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;

  constructor(readonly opts: GrpcServerOptions, private readonly now: () => number = Date.now) {}

  addService(def: ServiceDefinition, handlers: Handlers): void {
    for (const [name, m] of Object.entries(def)) {
      const handler = handlers[name];
      if (handler === undefined) throw new Error(`no handler for ${m.path}`);
      if (m.requestStream !== m.responseStream) throw new Error(`${m.path}: only unary and bidirectional-streaming methods are supported`);
      this.methods.set(m.path, {
        name, streaming: m.requestStream, handler,
        deserialize: (buf) => m.requestDeserialize(buf),
        serialize: (v) => m.responseSerialize(v),
      });
    }
  }

  /** Listen on host:port (0: the OS picks); resolves with the port. */
  listen(host: string, port: number, tls: ServerTlsOptions | undefined): Promise<number> {
    const settings: http2.Settings = { maxConcurrentStreams: this.opts.maxConcurrentStreams, maxHeaderListSize: this.opts.maxHeaderListBytes };
    const server = tls === undefined
      ? http2.createServer({ settings })
      : http2.createSecureServer({ ...tls, settings, allowHTTP1: false, handshakeTimeout: this.opts.handshakeTimeoutMs });
    server.on('session', (session) => this.onSession(session));
    server.on('stream', (stream, headers) => this.onStream(stream, headers));
    server.on('tlsClientError', (err: Error) => this.refused('tls', err.message.slice(0, 120)));
    server.on('sessionError', () => { /* reported per session */ });
    server.on('unknownProtocol', (socket: TLSSocket) => {
      this.refused('protocol', 'no h2 in ALPN');
      socket.destroy();
    });
    this.server = server;
    this.startSweep();
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      server.once('error', onError);
      server.listen(port, host, () => {
        server.off('error', onError);
        server.on('error', (err) => this.opts.onError('listener', err));
        resolve((server.address() as AddressInfo).port);
      });
    });
  }

  /** New TLS certificates for new connections; open ones keep theirs. */
  reloadTls(tls: ServerTlsOptions): void {
    const s = this.server;
    if (s !== undefined && 'setSecureContext' in s) s.setSecureContext({ key: tls.key, cert: tls.cert, ca: tls.ca });
  }

  /** Open connections. */
  get connectionCount(): number {
    return this.connections.size;
  }

  /** Stop accepting; GOAWAY every connection; resolves when all have closed. */
  shutdown(): Promise<void> {
    this.stopSweep();
    const server = this.server;
    if (server === undefined) return Promise.resolve();
    const listening = new Promise<void>((resolve) => server.close(() => resolve()));
    const sessions = [...this.connections].map((c) => new Promise<void>((resolve) => {
      if (c.session.destroyed) return resolve();
      c.session.once('close', () => resolve());
      if (!c.session.closed) c.session.close();
    }));
    return Promise.all([listening, ...sessions]).then(() => undefined);
  }

  /** Close every connection now. */
  forceShutdown(): void {
    this.stopSweep();
    this.server?.close();
    for (const c of this.connections) c.session.destroy();
  }

  /** Count and report a refusal. */
  refused(reason: ServerRefusal, detail: string): void {
    this.opts.onRefused?.(reason, detail);
  }

  private startSweep(): void {
    const periods = [this.opts.keepaliveTimeMs, this.opts.idleConnectionMs].filter((ms) => ms > 0);
    if (periods.length === 0) return;
    // Half the shortest period: a connection is pinged after 0.5× to 1× keepaliveTimeMs of silence.
    this.sweepTimer = setInterval(() => this.sweep(), Math.max(100, Math.min(...periods) / 2));
    this.sweepTimer.unref();
  }

  private stopSweep(): void {
    if (this.sweepTimer !== undefined) clearInterval(this.sweepTimer);
    this.sweepTimer = undefined;
  }

  /** Keepalive and idle checks for every connection: one timer, not one per connection. */
  private sweep(): void {
    const now = this.now();
    const { keepaliveTimeMs, keepaliveTimeoutMs, idleConnectionMs } = this.opts;
    for (const c of this.connections) {
      if (c.session.destroyed) continue;
      if (idleConnectionMs > 0 && c.streams === 0 && now - c.idleSince >= idleConnectionMs) {
        this.refused('idle', c.peer);
        c.session.close();
        continue;
      }
      if (keepaliveTimeMs <= 0) continue;
      if (c.active) {
        c.active = false;
        continue;
      }
      if (c.pinging) continue;
      c.pinging = true;
      const timer = setTimeout(() => {
        this.refused('keepalive', c.peer);
        c.session.destroy();
      }, keepaliveTimeoutMs);
      timer.unref();
      try {
        c.session.ping((err) => {
          clearTimeout(timer);
          c.pinging = false;
          if (err === null) c.active = true;
        });
      } catch {
        clearTimeout(timer);
        c.session.destroy();
      }
    }
  }

  private onSession(session: http2.ServerHttp2Session): void {
    const conn = new Connection(session, this.now());
    this.connections.add(conn);
    (session as http2.ServerHttp2Session & { grpcConnection?: Connection }).grpcConnection = conn;
    session.on('error', (err) => this.refused('protocol', err.message.slice(0, 120)));
    session.on('close', () => this.connections.delete(conn));
  }

  private onStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    const conn = (stream.session as (http2.ServerHttp2Session & { grpcConnection?: Connection }) | undefined)?.grpcConnection;
    stream.on('error', () => { /* the peer reset the stream or the connection dropped: 'close' follows */ });
    if (conn === undefined) {
      stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      return;
    }
    conn.active = true;
    if (headers[':method'] !== 'POST') {
      this.refused('protocol', `method ${String(headers[':method'])}`);
      stream.respond({ ':status': 405, allow: 'POST' }, { endStream: true });
      stopReading(stream);
      return;
    }
    const type = headers['content-type'];
    if (typeof type !== 'string' || !(type === GRPC_CONTENT_TYPE || type.startsWith(`${GRPC_CONTENT_TYPE}+`) || type.startsWith(`${GRPC_CONTENT_TYPE};`))) {
      this.refused('protocol', `content-type ${String(type)}`);
      stream.respond({ ':status': 415 }, { endStream: true });
      stopReading(stream);
      return;
    }
    const path = String(headers[':path'] ?? '');
    const method = this.methods.get(path);
    const encoding = headers['grpc-encoding'];
    const trailersOnly = (s: CallStatus) => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc+proto', 'grpc-accept-encoding': 'identity', 'grpc-status': String(s.code), 'grpc-message': encodeGrpcMessage(s.details) }, { endStream: true });
      stopReading(stream);
    };
    if (method === undefined) {
      this.refused('unimplemented', path.slice(0, 120));
      trailersOnly({ code: Status.UNIMPLEMENTED, details: `The server does not implement the method ${path}` });
      return;
    }
    if (encoding !== undefined && encoding !== 'identity') {
      this.refused('protocol', `grpc-encoding ${String(encoding)}`);
      trailersOnly({ code: Status.UNIMPLEMENTED, details: `unsupported grpc-encoding "${String(encoding)}"; use identity` });
      return;
    }
    conn.streams++;
    stream.once('close', () => {
      conn.streams--;
      if (conn.streams === 0) conn.idleSince = this.now();
    });
    if (method.streaming) this.startDuplex(stream, conn, headers, method);
    else this.startUnary(stream, conn, headers, method);
  }

  private startDuplex(stream: http2.ServerHttp2Stream, conn: Connection, headers: http2.IncomingHttpHeaders, method: Method): void {
    const call = new DuplexCall<unknown, unknown>(stream, conn, headers, this, method.serialize);
    const decoder = new MessageDecoder(this.opts.maxReceiveMessageBytes);
    const messages: Buffer[] = [];
    stream.on('aborted', () => call.cancel());
    stream.on('close', () => call.closed());
    stream.on('data', (chunk: Buffer) => {
      conn.active = true;
      if (call.cancelled || call.done) return;
      messages.length = 0;
      try {
        decoder.push(chunk, messages);
      } catch (err) {
        this.frameFailed(call, err);
        return;
      }
      for (const buf of messages) {
        let message: unknown;
        try {
          message = method.deserialize(buf);
        } catch (err) {
          this.refused('badMessage', `${method.name}: ${err instanceof Error ? err.message.slice(0, 80) : 'undecodable'}`);
          call.fail({ code: Status.INTERNAL, details: 'Error deserializing request' });
          call.cancel();
          return;
        }
        try {
          call.emit('data', message, buf.length);
        } catch (err) {
          this.opts.onError(`${method.name}:data`, err);
          call.fail({ code: Status.INTERNAL, details: 'internal error' });
          call.cancel();
          return;
        }
        if (call.cancelled || call.done) return;
      }
    });
    stream.on('end', () => {
      if (call.cancelled || call.done) return;
      if (decoder.partial) {
        this.refused('badMessage', `${method.name}: stream ended inside a message`);
        call.fail({ code: Status.INTERNAL, details: 'the stream ended inside a message' });
        return;
      }
      this.guard(method.name, call, () => call.emit('end'));
    });
    this.guard(method.name, call, () => (method.handler as DuplexHandler<unknown, unknown>)(call));
  }

  private startUnary(stream: http2.ServerHttp2Stream, conn: Connection, headers: http2.IncomingHttpHeaders, method: Method): void {
    const call = new UnaryCallImpl<unknown>(stream, conn, headers, this);
    const decoder = new MessageDecoder(this.opts.maxReceiveMessageBytes);
    const messages: Buffer[] = [];
    let request: Buffer | undefined;
    stream.on('aborted', () => call.cancel());
    stream.on('close', () => call.closed());
    stream.on('data', (chunk: Buffer) => {
      conn.active = true;
      if (call.cancelled) return;
      try {
        decoder.push(chunk, messages);
      } catch (err) {
        this.frameFailed(call, err);
        return;
      }
      if (messages.length > 1) {
        this.refused('badMessage', `${method.name}: more than one request message`);
        call.finish({ code: Status.UNIMPLEMENTED, details: 'a unary call takes exactly one request message' });
        call.cancel();
        return;
      }
      request = messages[0];
    });
    stream.on('end', () => {
      if (call.cancelled) return;
      if (request === undefined || decoder.partial) {
        this.refused('badMessage', `${method.name}: no request message`);
        call.finish({ code: Status.UNIMPLEMENTED, details: 'a unary call takes exactly one request message' });
        return;
      }
      try {
        call.request = method.deserialize(request);
      } catch (err) {
        this.refused('badMessage', `${method.name}: ${err instanceof Error ? err.message.slice(0, 80) : 'undecodable'}`);
        call.finish({ code: Status.INTERNAL, details: 'Error deserializing request' });
        return;
      }
      let answered = false;
      const callback: UnaryCallback<unknown> = (err, value) => {
        if (answered) return;
        answered = true;
        if (call.cancelled) return;
        if (err !== null) {
          call.finish(err);
          return;
        }
        let payload: Buffer;
        try {
          payload = method.serialize(value);
        } catch (e) {
          this.opts.onError(`${method.name}:serialize`, e);
          call.finish({ code: Status.INTERNAL, details: 'internal error' });
          return;
        }
        call.reply(payload);
      };
      this.guard(method.name, call, () => (method.handler as UnaryHandler<unknown, unknown>)(call, callback));
    });
  }

  private frameFailed(call: BaseCall, err: unknown): void {
    if (!(err instanceof FrameError)) throw err;
    this.refused(err.reason, `${call.getPeer()}: ${err.message.slice(0, 80)}`);
    call.finish(err.status);
    call.cancel();
  }

  /** Run handler code; a throw ends the call with INTERNAL and is reported. */
  private guard(where: string, call: BaseCall, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.opts.onError(where, err);
      call.finish({ code: Status.INTERNAL, details: 'internal error' });
      call.cancel();
    }
  }
}
