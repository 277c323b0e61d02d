/**
 * A cheap client for bench/fleet-agents.ts: one simulated agent's Register and Heartbeats calls
 * on node:http2, putting on the wire what grpc-js's client puts there
 * (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md), so that the server under test
 * sees the frames a fleet of real agents sends, for less generator CPU (no grpc-js layers):
 *
 * - one HTTP/2 session, so one TCP (and TLS, ALPN h2) connection, per agent, opened at the first
 *   call and again at the next call after it dropped (a grpc-js channel reconnects the same way);
 * - requests: `POST /monitor.v1.Monitor/<Method>`, `content-type: application/grpc`,
 *   `te: trailers`, grpc-js's `grpc-accept-encoding`, `accept-encoding` and `user-agent`-style
 *   headers, `grpc-timeout` when the call has a deadline, metadata as plain headers;
 * - messages: 5-byte length prefix (flag 0, no compression), encoded and decoded by agent/wire.ts;
 * - status: `grpc-status` / `grpc-message` from the trailers, or from the headers of a
 *   trailers-only answer; a stream closed without one gets the status grpc-js would give
 *   (RST_STREAM codes, "Connection dropped", HTTP status), as a GrpcCallError (code, details);
 * - keepalive: a PING every `keepaliveTimeMs` after the last one was answered, calls or not
 *   (grpc-js with keepalive_time_ms 10 s and keepalive_permit_without_calls, as agent/reporter.ts
 *   sets them); a PING unanswered within `keepaliveTimeoutMs` drops the connection.
 *
 * Only what the bench needs: no compression, no retries, no name resolution (host:port).
 */
import { status as Status } from '@grpc/grpc-js';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import * as tls from 'node:tls';
import {
  decodeHeartbeatAck, decodeRegisterResponse, encodeHeartbeat, encodeRegisterRequest, type HeartbeatIn, type RegisterRequestIn,
} from '../agent/wire.js';
import { FrameError, MessageDecoder, frameMessage } from '../lib/grpc-server.js';
import type { HeartbeatAck__Output, RegisterResponse__Output } from '../lib/proto.js';
import { loadCertificates, loadKeyPair } from '../lib/tls.js';
import type { AgentTlsFiles, AgentTransport, CallError, CallMetadata, HeartbeatSink } from './fleet-common.js';

export const REGISTER_PATH = '/monitor.v1.Monitor/Register';
export const HEARTBEATS_PATH = '/monitor.v1.Monitor/Heartbeats';
/** Largest message accepted (grpc-js's default receive limit, 4 MiB), bytes. */
export const MAX_RECEIVE_MESSAGE_BYTES = 4 * 1024 * 1024;
/** Keepalive as agent/reporter.ts configures grpc-js: PING every 10 s, dropped if unanswered in 5 s. */
export const KEEPALIVE_TIME_MS = 10_000;
export const KEEPALIVE_TIMEOUT_MS = 5_000;
/**
 * Headers every call carries besides the method's and the metadata: what grpc-js 1.14 sends
 * (its compression filter advertises deflate and gzip; neither server compresses, and a compressed
 * message would fail the call with UNIMPLEMENTED, visibly).
 */
export const FIXED_HEADERS = {
  'content-type': 'application/grpc',
  te: 'trailers',
  'user-agent': 'fleet-h2-client (grpc-node-js wire protocol)',
  'grpc-accept-encoding': 'identity,deflate,gzip',
  'accept-encoding': 'identity',
} as const;

/** A call that ended with a status other than OK, shaped as grpc-js's ServiceError. */
export class GrpcCallError extends Error implements CallError {
  override name = 'GrpcCallError';

  constructor(readonly code: number, readonly details: string) {
    super(`${code} ${Status[code] ?? 'UNKNOWN'}: ${details}`);
  }
}

/** What every agent's client of one generator shares. */
export interface H2ClientConfig {
  /** host:port of the server (an IP or a name; no resolution beyond node:net's). */
  readonly target: string;
  /** TLS: one context for all the process's connections (as grpc-js's credentials hold one); undefined: plaintext (h2c). */
  readonly tls: { readonly context: tls.SecureContext; readonly servername: string | undefined } | undefined;
  /** PING interval after the last PING was answered, ms (10,000); 0: no keepalive. */
  readonly keepaliveTimeMs: number;
  /** A PING not answered within this drops the connection, ms (5,000). */
  readonly keepaliveTimeoutMs: number;
}

/**
 * Load the agent TLS files as agent/reporter.ts serverLink does (the CA, the client certificate and
 * its key, checked to match and be valid now) into one secure context. `servername`: the name to
 * verify the server certificate against, when not the target's host (AGENT_TLS_SERVER_NAME).
 */
export function h2ClientConfig(target: string, files: AgentTlsFiles | undefined, now: number, servername?: string): H2ClientConfig {
  const base = { target, keepaliveTimeMs: KEEPALIVE_TIME_MS, keepaliveTimeoutMs: KEEPALIVE_TIMEOUT_MS };
  if (files === undefined) return { ...base, tls: undefined };
  const ca = loadCertificates('AGENT_TLS_CA', files.caFile).pem;
  const pair = loadKeyPair('AGENT_TLS_CERT', files.certFile, 'AGENT_TLS_KEY', files.keyFile, now);
  return { ...base, tls: { context: tls.createSecureContext({ ca, cert: pair.cert.pem, key: pair.keyPem }), servername } };
}

/** "host:port" or "[v6]:port" → host (no brackets) and port. */
export function splitTarget(target: string): { host: string; port: number } {
  const i = target.lastIndexOf(':');
  const port = Number(target.slice(i + 1));
  if (i < 0 || !Number.isInteger(port) || port < 1 || port > 65_535) throw new TypeError(`target ${target}: expected host:port`);
  const host = target.slice(0, i);
  return { host: host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host, port };
}

/** "grpc-timeout" as grpc-js writes it: the smallest unit whose amount is below 10^8. */
export function grpcTimeout(ms: number): string {
  const units: [string, number][] = [['m', 1], ['S', 1_000], ['M', 60_000], ['H', 3_600_000]];
  for (const [unit, factor] of units) {
    const amount = Math.max(0, ms) / factor;
    if (amount < 1e8) return `${Math.ceil(amount)}${unit}`;
  }
  throw new TypeError(`deadline ${ms} ms is too far`);
}

/** An error's errno-style code, its cause's when it wraps one (ERR_HTTP2_STREAM_CANCEL wraps the session's), else its message. */
function errorCode(err: NodeJS.ErrnoException): string {
  const cause = err.cause as NodeJS.ErrnoException | undefined;
  return cause?.code ?? err.code ?? err.message.slice(0, 60);
}

export function decodeGrpcMessage(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

/** The status in trailers (or a trailers-only answer's headers), if any. */
function statusOf(headers: http2.IncomingHttpHeaders): CallError | undefined {
  const raw = headers['grpc-status'];
  if (raw === undefined) return undefined;
  const code = Number(Array.isArray(raw) ? raw[0] : raw);
  const message = headers['grpc-message'];
  return { code: Number.isInteger(code) && code >= 0 && code <= 16 ? code : Status.UNKNOWN, details: decodeGrpcMessage(typeof message === 'string' ? message : '') };
}

/** An HTTP status other than 200, as grpc-js maps it. */
export function httpStatusOf(code: number): CallError {
  const map: Record<number, number> = {
    400: Status.INTERNAL, 401: Status.UNAUTHENTICATED, 403: Status.PERMISSION_DENIED, 404: Status.UNIMPLEMENTED,
    429: Status.UNAVAILABLE, 502: Status.UNAVAILABLE, 503: Status.UNAVAILABLE, 504: Status.UNAVAILABLE,
  };
  return { code: map[code] ?? Status.UNKNOWN, details: `Received HTTP status code ${code}` };
}

/** A stream closed without a status: what grpc-js reports for its RST_STREAM code. */
export function resetStatusOf(rstCode: number | undefined, httpStatus: number): CallError {
  const c = http2.constants;
  switch (rstCode) {
    case undefined:
    case c.NGHTTP2_NO_ERROR:
      return httpStatus !== 0 && httpStatus !== 200 ? httpStatusOf(httpStatus)
        : { code: Status.INTERNAL, details: `Received RST_STREAM with code ${rstCode ?? 0} (Call ended without gRPC status)` };
    case c.NGHTTP2_REFUSED_STREAM: return { code: Status.UNAVAILABLE, details: 'Stream refused by server' };
    case c.NGHTTP2_CANCEL: return { code: Status.CANCELLED, details: 'Call cancelled' };
    case c.NGHTTP2_ENHANCE_YOUR_CALM: return { code: Status.RESOURCE_EXHAUSTED, details: 'Bandwidth exhausted or memory limit exceeded' };
    case c.NGHTTP2_INADEQUATE_SECURITY: return { code: Status.PERMISSION_DENIED, details: 'Protocol not secure enough' };
    case c.NGHTTP2_INTERNAL_ERROR: return { code: Status.INTERNAL, details: `Received RST_STREAM with code ${rstCode} (Internal server error)` };
    default: return { code: Status.INTERNAL, details: `Received RST_STREAM with code ${rstCode}` };
  }
}

/** One HTTP/2 session (one connection) and its keepalive. */
class Connection {
  readonly session: http2.ClientHttp2Session;
  /** False once the session errored, got GOAWAY or closed: new calls go to a new connection. */
  usable = true;
  /** Why the connection went (an errno code or a message), for "Connection dropped" details. */
  lastError = '';
  /** The handshake completed (SETTINGS exchanged): a failure after it is a drop, before it no connection. */
  connected = false;
  private keepalive: NodeJS.Timeout | undefined;

  constructor(private readonly cfg: H2ClientConfig) {
    const { host, port } = splitTarget(cfg.target);
    const t = cfg.tls;
    this.session = http2.connect(`${t === undefined ? 'http' : 'https'}://${cfg.target}`, {
      // Our own socket, to set TCP_NODELAY as grpc-js does (Nagle would hold back small frames).
      createConnection: () => {
        const socket = t === undefined
          ? net.connect({ host, port })
          : tls.connect({ host, port, secureContext: t.context, ALPNProtocols: ['h2'], ...(t.servername === undefined ? {} : { servername: t.servername }) });
        socket.setNoDelay(true);
        return socket;
      },
    });
    const s = this.session;
    s.on('error', (err: NodeJS.ErrnoException) => {
      this.usable = false;
      this.lastError ||= errorCode(err);
    });
    s.on('goaway', () => { this.usable = false; });
    s.on('close', () => {
      this.usable = false;
      clearTimeout(this.keepalive);
    });
    s.once('connect', () => {
      this.connected = true;
      this.scheduleKeepalive();
    });
  }

  /** Gone or going: the session closed, was destroyed, or will take no new streams. */
  get dropped(): boolean {
    return !this.usable || this.session.closed || this.session.destroyed;
  }

  private scheduleKeepalive(): void {
    if (this.cfg.keepaliveTimeMs <= 0 || this.dropped) return;
    this.keepalive = setTimeout(() => this.ping(), this.cfg.keepaliveTimeMs);
    this.keepalive.unref();
  }

  private ping(): void {
    const s = this.session;
    if (s.closed || s.destroyed) return;
    const timeout = setTimeout(() => {
      this.lastError ||= 'keepalive ping not answered';
      this.usable = false;
      s.destroy();
    }, this.cfg.keepaliveTimeoutMs);
    timeout.unref();
    this.keepalive = timeout;
    try {
      s.ping((err) => {
        clearTimeout(timeout);
        if (err === null) this.scheduleKeepalive();
        else s.destroy();
      });
    } catch {
      clearTimeout(timeout);
      s.destroy();
    }
  }

  close(): void {
    this.usable = false;
    clearTimeout(this.keepalive);
    if (!this.session.closed && !this.session.destroyed) this.session.close();
  }
}

/** What a call tells its caller; both bench clients (this one and fleet-raw-client.ts) call it. */
export interface CallListener {
  /** A whole response message; a throw (undecodable) ends the call with INTERNAL. */
  onMessage(payload: Buffer): void;
  /** Once, when the call is over (OK included). */
  onStatus(status: CallError): void;
}

/**
 * Register's listener, as grpc-js's unary call behaves: exactly one message, then OK. A second
 * message cancels the call (`cancel`) with UNIMPLEMENTED; OK without one rejects the same way.
 */
export function unaryListener(cancel: (status: CallError) => void, resolve: (r: RegisterResponse__Output) => void, reject: (e: GrpcCallError) => void): CallListener {
  let response: RegisterResponse__Output | undefined;
  return {
    onMessage: (payload) => {
      if (response !== undefined) {
        cancel({ code: Status.UNIMPLEMENTED, details: 'Too many responses received' });
        return;
      }
      response = decodeRegisterResponse(payload);
    },
    onStatus: (s) => {
      if (s.code !== Status.OK) reject(new GrpcCallError(s.code, s.details));
      else if (response === undefined) reject(new GrpcCallError(Status.UNIMPLEMENTED, 'No message received'));
      else resolve(response);
    },
  };
}

/** The Heartbeats stream's listener: every ack to `onAck`; the end to `onEnd` (undefined for OK). */
export function heartbeatsListener(onAck: (ack: HeartbeatAck__Output) => void, onEnd: (err: unknown) => void): CallListener {
  return {
    onMessage: (payload) => onAck(decodeHeartbeatAck(payload)),
    onStatus: (s) => onEnd(s.code === Status.OK ? undefined : new GrpcCallError(s.code, s.details)),
  };
}

/**
 * The messages `chunk` completes, to `listener`, until the call is finished: a bad frame
 * (compressed, oversized) cancels the call with its status, a message the listener cannot take
 * with INTERNAL, as grpc-js does. `decoder` keeps a partial message for the next chunk.
 */
export function deliver(decoder: MessageDecoder, chunk: Buffer, listener: CallListener, call: { readonly finished: boolean; cancel(status: CallError): void }): void {
  const messages: Buffer[] = [];
  try {
    decoder.push(chunk, messages);
  } catch (err) {
    if (!(err instanceof FrameError)) throw err;
    call.cancel({ code: err.status.code, details: err.status.details });
    return;
  }
  for (const m of messages) {
    if (call.finished) return;
    try {
      listener.onMessage(m);
    } catch {
      call.cancel({ code: Status.INTERNAL, details: 'Failed to parse server response' });
      return;
    }
  }
}

/** A Heartbeats stream closed before it opened (the client was closed): ends UNAVAILABLE on the next tick. */
export function closedSink(onEnd: (err: unknown) => void): HeartbeatSink {
  process.nextTick(() => onEnd(new GrpcCallError(Status.UNAVAILABLE, 'client closed')));
  return { write: () => {}, cancel: () => {} };
}

/** One gRPC call on one stream: framing in and out, deadline, status. */
class Call {
  private readonly stream: http2.ClientHttp2Stream | undefined;
  private readonly decoder = new MessageDecoder(MAX_RECEIVE_MESSAGE_BYTES);
  private status: CallError | undefined;
  private httpStatus = 0;
  /** The status went to the listener: nothing more does. */
  finished = false;
  private streamError = '';
  private deadline: NodeJS.Timeout | undefined;

  constructor(private readonly conn: Connection, path: string, metadata: CallMetadata, timeoutMs: number | undefined, private readonly listener: CallListener) {
    const headers: http2.OutgoingHttpHeaders = { ...metadata, ':method': 'POST', ':path': path, ...FIXED_HEADERS };
    if (timeoutMs !== undefined) headers['grpc-timeout'] = grpcTimeout(timeoutMs);
    let stream: http2.ClientHttp2Stream;
    try {
      stream = conn.session.request(headers, { endStream: false });
    } catch (err) {
      // The session went away between the check and the request (GOAWAY, destroyed).
      conn.usable = false;
      const why = (err as NodeJS.ErrnoException).code ?? 'session unusable';
      process.nextTick(() => this.finish({ code: Status.UNAVAILABLE, details: `Connection dropped: ${why}` }));
      return;
    }
    this.stream = stream;
    if (timeoutMs !== undefined) {
      this.deadline = setTimeout(() => this.cancel({ code: Status.DEADLINE_EXCEEDED, details: 'Deadline exceeded' }), timeoutMs);
      this.deadline.unref();
    }
    stream.on('response', (h) => {
      this.httpStatus = Number(h[':status'] ?? 0);
      // Trailers-only: the status rides in the headers.
      this.status ??= statusOf(h) ?? (this.httpStatus !== 200 ? httpStatusOf(this.httpStatus) : undefined);
    });
    stream.on('data', (chunk: Buffer) => this.onData(chunk));
    stream.on('trailers', (h) => { this.status ??= statusOf(h) ?? { code: Status.UNKNOWN, details: 'trailers without grpc-status' }; });
    // The server's side is done (trailers, or a trailers-only answer, and every message before
    // them): the call is over. Half-close ours too, as grpc-js does, so the stream closes.
    stream.on('end', () => {
      if (this.status === undefined) return;
      this.finish(this.status);
      if (!stream.destroyed && !stream.writableEnded) stream.end();
    });
    stream.on('error', (err: NodeJS.ErrnoException) => { this.streamError ||= errorCode(err); });
    stream.on('close', () => this.onClose(stream));
  }

  private onData(chunk: Buffer): void {
    if (!this.finished) deliver(this.decoder, chunk, this.listener, this);
  }

  private onClose(stream: http2.ClientHttp2Stream): void {
    if (this.status !== undefined) return this.finish(this.status);
    // Node resets a session's streams with CANCEL (or an error) when the connection goes: grpc-js calls that UNAVAILABLE.
    if (this.conn.dropped || this.streamError !== '') {
      const why = this.conn.lastError || this.streamError;
      const what = this.conn.connected ? 'Connection dropped' : 'No connection established';
      return this.finish({ code: Status.UNAVAILABLE, details: why === '' ? what : `${what}: ${why}` });
    }
    this.finish(resetStatusOf(stream.rstCode, this.httpStatus));
  }

  private finish(status: CallError): void {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.deadline);
    this.listener.onStatus(status);
  }

  /** One length-prefixed message; dropped once the call is over. */
  write(payload: Buffer): void {
    const s = this.stream;
    if (this.finished || s === undefined || s.destroyed || s.writableEnded) return;
    s.write(frameMessage(payload));
  }

  /** Half-close: no more messages from this side. */
  end(): void {
    const s = this.stream;
    if (s !== undefined && !s.destroyed && !s.writableEnded) s.end();
  }

  /** End the call with `status` now and reset the stream (RST_STREAM CANCEL). */
  cancel(status: CallError = { code: Status.CANCELLED, details: 'Cancelled on client' }): void {
    this.finish(status);
    const s = this.stream;
    if (s !== undefined && !s.closed && !s.destroyed) s.close(http2.constants.NGHTTP2_CANCEL);
  }
}

/** One agent's client: its own connection, Register and Heartbeats as AgentTransport. */
export class H2MonitorClient implements AgentTransport {
  private conn: Connection | undefined;
  private closed = false;

  constructor(private readonly cfg: H2ClientConfig) {}

  /** The open connection, or a new one when there is none or it dropped. */
  private connection(): Connection {
    if (this.conn === undefined || this.conn.dropped) this.conn = new Connection(this.cfg);
    return this.conn;
  }

  register(req: RegisterRequestIn, metadata: CallMetadata, deadlineMs: number): Promise<RegisterResponse__Output> {
    if (this.closed) return Promise.reject(new Error('client closed'));
    return new Promise((resolve, reject) => {
      const call: Call = new Call(this.connection(), REGISTER_PATH, metadata, deadlineMs, unaryListener((st) => call.cancel(st), resolve, reject));
      call.write(encodeRegisterRequest(req));
      call.end();
    });
  }

  heartbeats(metadata: CallMetadata, onAck: (ack: HeartbeatAck__Output) => void, onEnd: (err: unknown) => void): HeartbeatSink {
    if (this.closed) return closedSink(onEnd);
    const call = new Call(this.connection(), HEARTBEATS_PATH, metadata, undefined, heartbeatsListener(onAck, onEnd));
    return {
      write: (hb: HeartbeatIn) => call.write(encodeHeartbeat(hb)),
      cancel: () => call.cancel(),
    };
  }

  close(): void {
    this.closed = true;
    this.conn?.close();
    this.conn = undefined;
  }
}
