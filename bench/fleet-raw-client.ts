/**
 * The cheapest client for bench/fleet-agents.ts (`--client raw`, the default): one simulated
 * agent's Register and Heartbeats calls with HTTP/2 framed by hand (RFC 9113) on a node:tls socket
 * (or node:net for h2c), so that a generator spends its CPU on TLS and the kernel only. A heartbeat
 * is one DATA frame in one write, as with grpc-js; there is no nghttp2 session and no Http2Stream
 * per agent on the generator's side. Why: with node:http2 clients the generators cost about as
 * much CPU per heartbeat as the server under test (~110 µs), so on a 2-core machine a large fleet
 * does not fit beside the server.
 *
 * What the server sees, against a grpc-js agent:
 * - one TCP (and TLS, ALPN h2) connection per agent, opened at the first call and again at the next
 *   call after it dropped (a connection left unusable is closed once its calls are over); the
 *   preface and our SETTINGS are written at once (a TLS socket holds them until the handshake);
 * - the request headers of fleet-h2-client.ts. HPACK as nghttp2's encoder does in the large: a
 *   header is sent as a literal with incremental indexing the first time and as an index into the
 *   dynamic table (4,096 bytes) after that, so the server's decoder holds the same table;
 * - one difference: our SETTINGS give the server's encoder a header table of 0 bytes, so its
 *   responses carry only static indexes and literals (this decoder keeps no dynamic table and
 *   reads Huffman strings of short codes only). The server's encoder table, a few hundred bytes
 *   per connection with grpc-js, stays empty;
 * - the status from the trailers (or a trailers-only answer): `grpc-status` (0-16, else UNKNOWN)
 *   and `grpc-message`, read raw or Huffman-coded when every symbol has a 5- or 6-bit code
 *   (RFC 7541 Appendix B: `0-9`, `a c e i o s t b d f g h l m n p r u`, space, `% - . / = A _`);
 *   a message with any other character is reported as `(not decoded)`. A `:status` other than 200
 *   maps as grpc-js maps it (fleet-h2-client.ts httpStatusOf), as do RST_STREAM codes, GOAWAY and
 *   a dropped connection (resetStatusOf);
 * - flow control both ways: a DATA frame waits for the window the server grants (at most
 *   MAX_QUEUED frames per stream, the oldest dropped beyond); what we receive is granted back once
 *   half of the default window is used;
 * - keepalive: a PING every `keepaliveTimeMs` after the last one was answered, calls or not, and
 *   one unanswered within `keepaliveTimeoutMs` drops the connection (grpc-js with agent/reporter.ts's
 *   options); a connection without the server's SETTINGS within CONNECT_TIMEOUT_MS is dropped
 *   (grpc-js's default connect timeout); the server's PINGs and SETTINGS are acknowledged.
 * A frame that breaks RFC 9113 drops the connection ("protocol error: …"); an exception in the
 * bench's own callbacks is rethrown, not taken for one.
 *
 * Only what the bench needs: no compression, no retries, no priorities, no CONTINUATION on our side
 * (a request's headers are far below the 16 KiB frame), no name resolution (host:port).
 */
import { status as Status } from '@grpc/grpc-js';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { encodeHeartbeat, encodeRegisterRequest, type HeartbeatIn, type RegisterRequestIn } from '../agent/wire.js';
import { MessageDecoder } from '../lib/grpc-server.js';
import type { HeartbeatAck__Output, RegisterResponse__Output } from '../lib/proto.js';
import type { AgentTransport, CallError, CallMetadata, HeartbeatSink } from './fleet-common.js';
import {
  FIXED_HEADERS, HEARTBEATS_PATH, MAX_RECEIVE_MESSAGE_BYTES, REGISTER_PATH, closedSink, decodeGrpcMessage, grpcTimeout, heartbeatsListener, httpStatusOf,
  deliver, resetStatusOf, splitTarget, unaryListener, type CallListener, type H2ClientConfig,
} from './fleet-h2-client.js';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const FRAME_HEADER_BYTES = 9;
/** Frame types and flags (RFC 9113 §6). */
const T_DATA = 0x0;
const T_HEADERS = 0x1;
const T_RST_STREAM = 0x3;
const T_SETTINGS = 0x4;
const T_PUSH_PROMISE = 0x5;
const T_PING = 0x6;
const T_GOAWAY = 0x7;
const T_WINDOW_UPDATE = 0x8;
const T_CONTINUATION = 0x9;
const F_END_STREAM = 0x1;
const F_ACK = 0x1;
const F_END_HEADERS = 0x4;
const F_PADDED = 0x8;
const F_PRIORITY = 0x20;
/** SETTINGS identifiers. */
const S_HEADER_TABLE_SIZE = 0x1;
const S_ENABLE_PUSH = 0x2;
const S_INITIAL_WINDOW_SIZE = 0x4;
/** The default window and frame size (RFC 9113 §6.5.2), bytes. */
const DEFAULT_WINDOW = 65_535;
const MAX_FRAME_BYTES = 16_384;
/** A header block (HEADERS and its CONTINUATIONs) larger than this drops the connection, bytes. */
const MAX_HEADER_BLOCK_BYTES = 64 * 1024;
/** RST_STREAM codes used here. */
const RST_NO_ERROR = 0x0;
const RST_CANCEL = 0x8;
/** The largest flow-control window (RFC 9113 §6.9.1), bytes. */
const MAX_WINDOW = 2 ** 31 - 1;
/** The dynamic table our encoder may use: the server's SETTINGS_HEADER_TABLE_SIZE default, bytes. */
const ENCODER_TABLE_BYTES = 4_096;
/** Server SETTINGS must arrive within this after the connection starts (grpc-js: 20 s), ms. */
const CONNECT_TIMEOUT_MS = 20_000;
/** DATA frames a stream holds while the server grants no window; beyond it the oldest goes (the agent's buffer is 600). */
const MAX_QUEUED = 600;

/** The peer broke RFC 9113 or 7541: the connection is dropped. Other errors are the bench's own. */
export class ProtocolError extends Error {
  override name = 'ProtocolError';
}

function frameHeader(out: Buffer, length: number, type: number, flags: number, streamId: number): void {
  out.writeUIntBE(length, 0, 3);
  out[3] = type;
  out[4] = flags;
  out.writeUInt32BE(streamId & 0x7fff_ffff, 5);
}

/** One frame: header and payload in one buffer (one write). */
function frame(type: number, flags: number, streamId: number, payload: Buffer | undefined): Buffer {
  const len = payload?.length ?? 0;
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + len);
  frameHeader(out, len, type, flags, streamId);
  payload?.copy(out, FRAME_HEADER_BYTES);
  return out;
}

/** A DATA frame holding one length-prefixed gRPC message: built in one allocation, bytes. */
function messageFrame(streamId: number, payload: Buffer, endStream: boolean): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + 5 + payload.length);
  frameHeader(out, 5 + payload.length, T_DATA, endStream ? F_END_STREAM : 0, streamId);
  out[FRAME_HEADER_BYTES] = 0;
  out.writeUInt32BE(payload.length, FRAME_HEADER_BYTES + 1);
  payload.copy(out, FRAME_HEADER_BYTES + 5);
  return out;
}

// HPACK (RFC 7541), what this client needs.

/** An integer with an N-bit prefix (§5.1), `first` holding the pattern bits above the prefix. */
function hpackInt(out: number[], first: number, prefixBits: number, value: number): void {
  const max = (1 << prefixBits) - 1;
  if (value < max) {
    out.push(first | value);
    return;
  }
  out.push(first | max);
  let v = value - max;
  while (v >= 128) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
}

/**
 * One connection's HPACK encoder (RFC 7541 §2.3, §6): a header already in the dynamic table is
 * sent as its index, any other as a literal with incremental indexing (new name, no Huffman) and
 * added to the table; entries are evicted oldest first beyond ENCODER_TABLE_BYTES (entry size:
 * name + value + 32 bytes, §4.1), and one larger than the table is sent without indexing.
 */
export class HeaderEncoder {
  /** Newest first: index 62 is entries[0]. */
  private readonly entries: { readonly name: string; readonly value: string; readonly size: number }[] = [];
  private bytes = 0;

  constructor(private readonly maxBytes = ENCODER_TABLE_BYTES) {}

  encode(headers: readonly (readonly [string, string])[]): Buffer {
    const out: number[] = [];
    for (const [name, value] of headers) {
      const at = this.entries.findIndex((e) => e.name === name && e.value === value);
      if (at >= 0) {
        hpackInt(out, 0x80, 7, 62 + at);
        continue;
      }
      const size = Buffer.byteLength(name, 'latin1') + Buffer.byteLength(value, 'latin1') + 32;
      const index = size <= this.maxBytes;
      out.push(index ? 0x40 : 0x00);
      literal(out, name);
      literal(out, value);
      if (!index) continue;
      this.entries.unshift({ name, value, size });
      this.bytes += size;
      while (this.bytes > this.maxBytes) this.bytes -= (this.entries.pop() as { size: number }).size;
    }
    return Buffer.from(out);
  }
}

function literal(out: number[], s: string): void {
  const b = Buffer.from(s, 'latin1');
  hpackInt(out, 0x00, 7, b.length);
  for (const x of b) out.push(x);
}

/**
 * The Huffman codes of 5 and 6 bits (RFC 7541 Appendix B), by code: 0x00-0x09 are 5 bits,
 * 0x14-0x2d 6 bits. Longer codes are not decoded.
 */
const HUFFMAN_5 = '012aceiost';
const HUFFMAN_6 = ' %-./3456789=A_bdfghlmnpru';

/** A Huffman-coded string of 5- and 6-bit codes only; undefined when it holds a longer code. */
export function decodeShortHuffman(bytes: Buffer): string | undefined {
  let acc = 0;
  let bits = 0;
  let out = '';
  let i = 0;
  for (;;) {
    while (bits < 6 && i < bytes.length) {
      acc = ((acc << 8) | (bytes[i++] as number)) & 0xffff;
      bits += 8;
    }
    if (bits === 0) return out;
    // Padding: fewer than 8 bits left, all ones (the EOS code's prefix, §5.2).
    if (i === bytes.length && bits < 8 && (acc & ((1 << bits) - 1)) === (1 << bits) - 1) return out;
    if (bits < 5) return undefined;
    const v5 = (acc >> (bits - 5)) & 0x1f;
    if (v5 < HUFFMAN_5.length) {
      out += HUFFMAN_5[v5];
      bits -= 5;
      continue;
    }
    if (bits < 6) return undefined;
    const v6 = (acc >> (bits - 6)) & 0x3f;
    const c = HUFFMAN_6[v6 - 0x14];
    if (v6 < 0x14 || c === undefined) return undefined;
    out += c;
    bits -= 6;
  }
}

/** Entries in HPACK's static table (RFC 7541 Appendix A). */
const STATIC_ENTRIES = 61;
/** The static table entries a response may use for its status (§A: 8-14). */
const STATIC_STATUS: Readonly<Record<number, number>> = { 8: 200, 9: 204, 10: 206, 11: 304, 12: 400, 13: 404, 14: 500 };

/** What the client reads from a response header block. */
export interface ResponseHeaders {
  /** `:status`: from the static table (200 and 6 others) or a literal; -1 for a literal this decoder could not read; 0 if absent. */
  httpStatus: number;
  /** `grpc-status`, when present and readable. */
  grpcStatus: number | undefined;
  /** `grpc-message`, percent-decoded; `(not decoded)` when its Huffman codes are longer than 6 bits. */
  grpcMessage: string | undefined;
}

/**
 * Read a header block sent to a decoder with a 0-byte dynamic table (our SETTINGS): indexed
 * fields are static, literals are read (raw, or Huffman with short codes), size updates skipped.
 * Throws on a malformed block (the connection is then dropped).
 */
export function decodeResponseHeaders(block: Buffer): ResponseHeaders {
  const out: ResponseHeaders = { httpStatus: 0, grpcStatus: undefined, grpcMessage: undefined };
  let off = 0;
  const int = (prefixBits: number): number => {
    const max = (1 << prefixBits) - 1;
    let v = (block[off++] as number) & max;
    if (v < max) return v;
    for (let shift = 0; shift <= 28; shift += 7) {
      if (off >= block.length) throw new ProtocolError('HPACK: integer runs past the block');
      const b = block[off++] as number;
      v += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return v;
    }
    throw new ProtocolError('HPACK: integer too long');
  };
  /** A string; undefined when Huffman-coded with codes this decoder does not hold. */
  const str = (): string | undefined => {
    if (off >= block.length) throw new ProtocolError('HPACK: string runs past the block');
    const huffman = ((block[off] as number) & 0x80) !== 0;
    const len = int(7);
    if (off + len > block.length) throw new ProtocolError('HPACK: string runs past the block');
    const bytes = block.subarray(off, off + len);
    off += len;
    return huffman ? decodeShortHuffman(bytes) : bytes.toString('latin1');
  };
  while (off < block.length) {
    const b = block[off] as number;
    if ((b & 0x80) !== 0) {
      const index = int(7);
      if (index === 0) throw new ProtocolError('HPACK: index 0');
      if (index > STATIC_ENTRIES) throw new ProtocolError(`HPACK: dynamic table index ${index} with a table of 0 bytes`);
      const s = STATIC_STATUS[index];
      if (s !== undefined) out.httpStatus = s;
      continue;
    }
    if ((b & 0xe0) === 0x20) {
      const size = int(5); // dynamic table size update: ours is 0
      if (size > 0) throw new ProtocolError(`HPACK: table size update to ${size} above our SETTINGS_HEADER_TABLE_SIZE 0`);
      continue;
    }
    const nameIndex = int((b & 0xc0) === 0x40 ? 6 : 4);
    if (nameIndex > STATIC_ENTRIES) throw new ProtocolError(`HPACK: dynamic table index ${nameIndex} with a table of 0 bytes`);
    const name = nameIndex === 0 ? str() : STATIC_STATUS[nameIndex] !== undefined ? ':status' : `static:${nameIndex}`;
    const value = str();
    if (name === ':status') out.httpStatus = value !== undefined && /^\d{3}$/.test(value) ? Number(value) : -1;
    else if (name === 'grpc-status') out.grpcStatus = value !== undefined && /^\d{1,2}$/.test(value) && Number(value) <= 16 ? Number(value) : Status.UNKNOWN;
    else if (name === 'grpc-message') out.grpcMessage = value === undefined ? '(not decoded)' : decodeGrpcMessage(value);
  }
  return out;
}

/** One gRPC call on one stream of a RawConnection. */
class RawCall {
  /** What the server lets us send on this stream, bytes. */
  sendWindow: number;
  /** DATA frames waiting for window (at most MAX_QUEUED). */
  readonly queued: Buffer[] = [];
  /** Bytes received and not yet granted back. */
  received = 0;
  /** Our side is closed: END_STREAM or RST_STREAM sent (or the stream is gone). */
  localEnded = false;
  finished = false;
  private readonly decoder = new MessageDecoder(MAX_RECEIVE_MESSAGE_BYTES);
  private headersSeen = false;
  private httpStatus = 0;
  private status: CallError | undefined;
  private deadline: NodeJS.Timeout | undefined;

  constructor(private readonly conn: RawConnection, readonly id: number, private readonly listener: CallListener, timeoutMs: number | undefined) {
    this.sendWindow = conn.peerInitialWindow;
    if (timeoutMs !== undefined) {
      this.deadline = setTimeout(() => this.cancel({ code: Status.DEADLINE_EXCEEDED, details: 'Deadline exceeded' }), timeoutMs);
      this.deadline.unref();
    }
  }

  /** Response headers first, then trailers; a trailers-only answer is both at once. */
  onHeaders(h: ResponseHeaders, endStream: boolean): void {
    const first = !this.headersSeen;
    this.headersSeen = true;
    if (first) this.httpStatus = h.httpStatus;
    if (h.grpcStatus !== undefined) this.status ??= { code: h.grpcStatus, details: h.grpcMessage ?? '' };
    else if (first && this.httpStatus !== 200) {
      this.status ??= this.httpStatus === -1 ? { code: Status.UNKNOWN, details: 'Received an HTTP status other than 200 (not decoded)' } : httpStatusOf(this.httpStatus);
    } else if (!first) this.status ??= { code: Status.UNKNOWN, details: 'trailers without grpc-status' };
    if (endStream) this.onRemoteEnd();
  }

  onData(payload: Buffer, endStream: boolean): void {
    if (!this.finished) deliver(this.decoder, payload, this.listener, this);
    if (endStream) this.onRemoteEnd();
  }

  /**
   * The server's side is done: the call is over. Our side closes first, as grpc-js half-closes:
   * END_STREAM, or RST_STREAM CANCEL when frames still wait for window; then the status.
   */
  private onRemoteEnd(): void {
    if (!this.localEnded) {
      this.localEnded = true;
      this.conn.send(this.queued.length === 0 ? frame(T_DATA, F_END_STREAM, this.id, undefined) : frame(T_RST_STREAM, 0, this.id, u32(RST_CANCEL)));
    }
    this.conn.forget(this);
    this.finish(this.status ?? resetStatusOf(RST_NO_ERROR, this.httpStatus === -1 ? 0 : this.httpStatus));
  }

  onReset(code: number): void {
    this.localEnded = true;
    this.conn.forget(this);
    this.finish(this.status ?? resetStatusOf(code, this.httpStatus === -1 ? 0 : this.httpStatus));
  }

  finish(status: CallError): void {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.deadline);
    this.listener.onStatus(status);
  }

  /** One length-prefixed message; dropped once the call is over or our side closed. */
  write(payload: Buffer, endStream = false): void {
    if (this.finished || this.localEnded) return;
    const buf = messageFrame(this.id, payload, endStream);
    if (endStream) this.localEnded = true;
    this.conn.sendData(this, buf);
  }

  /** End the call with `status` now and reset the stream (RST_STREAM CANCEL), unless it is already closed. */
  cancel(status: CallError = { code: Status.CANCELLED, details: 'Cancelled on client' }): void {
    const wasOpen = this.conn.forget(this);
    this.localEnded = true;
    if (wasOpen) this.conn.send(frame(T_RST_STREAM, 0, this.id, u32(RST_CANCEL)));
    this.finish(status);
  }
}

function u32(v: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(v >>> 0, 0);
  return b;
}

/** One connection: the frame reader and writer, flow control, keepalive, its calls. */
class RawConnection {
  /** False once the connection errored, got GOAWAY or closed: new calls go to a new connection. */
  usable = true;
  /** The server's SETTINGS arrived: a failure after it is a drop, before it no connection. */
  connected = false;
  /** Why the connection went, for "Connection dropped" details. */
  lastError = '';
  /** The server's SETTINGS_INITIAL_WINDOW_SIZE, bytes. */
  peerInitialWindow = DEFAULT_WINDOW;
  private readonly socket: net.Socket;
  private readonly calls = new Map<number, RawCall>();
  private readonly encoder = new HeaderEncoder();
  private nextStreamId = 1;
  /** What the server lets us send on the connection, bytes. */
  private sendWindow = DEFAULT_WINDOW;
  /** Bytes received on the connection and not yet granted back. */
  private received = 0;
  private rest: Buffer | undefined;
  /** A header block being gathered from HEADERS and CONTINUATION frames. */
  private block: { streamId: number; endStream: boolean; parts: Buffer[]; bytes: number } | undefined;
  /** The connect timeout, then the keepalive timer, then the PING's answer timer. */
  private timer: NodeJS.Timeout | undefined;
  private pingOut = false;
  private closed = false;

  constructor(private readonly cfg: H2ClientConfig, private readonly onClosed: (c: RawConnection) => void) {
    const { host, port } = splitTarget(cfg.target);
    const t = cfg.tls;
    this.socket = t === undefined
      ? net.connect({ host, port })
      : tls.connect({ host, port, secureContext: t.context, ALPNProtocols: ['h2'], ...(t.servername === undefined ? {} : { servername: t.servername }) });
    const s = this.socket;
    s.setNoDelay(true);
    if (s instanceof tls.TLSSocket) {
      s.once('secureConnect', () => {
        if (s.alpnProtocol !== 'h2') this.drop(`server did not negotiate h2 (ALPN ${String(s.alpnProtocol)})`);
      });
    }
    s.on('data', (chunk: Buffer) => this.onChunk(chunk));
    s.on('error', (err: NodeJS.ErrnoException) => { this.lastError ||= err.code ?? err.message.slice(0, 60); });
    s.on('close', () => this.onClose());
    this.timer = setTimeout(() => this.drop(`no SETTINGS from the server within ${CONNECT_TIMEOUT_MS} ms`), CONNECT_TIMEOUT_MS);
    this.timer.unref();
    const settings = Buffer.allocUnsafe(12);
    settings.writeUInt16BE(S_HEADER_TABLE_SIZE, 0);
    settings.writeUInt32BE(0, 2);
    settings.writeUInt16BE(S_ENABLE_PUSH, 6);
    settings.writeUInt32BE(0, 8);
    s.write(Buffer.concat([PREFACE, frame(T_SETTINGS, 0, 0, settings)]));
  }

  /** Gone or going: it closed, or will take no new streams. */
  get dropped(): boolean {
    return !this.usable || this.closed;
  }

  /** Open a call: its HEADERS are written now. */
  open(path: string, metadata: CallMetadata, timeoutMs: number | undefined, listener: CallListener): RawCall {
    const id = this.nextStreamId;
    this.nextStreamId += 2;
    const call = new RawCall(this, id, listener, timeoutMs);
    if (this.dropped) {
      call.localEnded = true;
      const what = this.connected ? 'Connection dropped' : 'No connection established';
      process.nextTick(() => call.finish({ code: Status.UNAVAILABLE, details: this.lastError === '' ? what : `${what}: ${this.lastError}` }));
      return call;
    }
    this.calls.set(id, call);
    const t = this.cfg.tls;
    const headers: [string, string][] = [
      [':method', 'POST'], [':scheme', t === undefined ? 'http' : 'https'], [':path', path], [':authority', this.cfg.target],
      ...Object.entries(FIXED_HEADERS), ...Object.entries(metadata),
    ];
    if (timeoutMs !== undefined) headers.push(['grpc-timeout', grpcTimeout(timeoutMs)]);
    this.send(frame(T_HEADERS, F_END_HEADERS, id, this.encoder.encode(headers)));
    return call;
  }

  /** Forget a call; true if it was open. A connection left unusable closes once it has none. */
  forget(call: RawCall): boolean {
    call.queued.length = 0;
    const had = this.calls.delete(call.id);
    if (had && !this.usable && this.calls.size === 0) this.close();
    return had;
  }

  send(buf: Buffer): void {
    if (!this.closed && !this.socket.destroyed) this.socket.write(buf);
  }

  /** A DATA frame of an open stream: now if both windows allow, else when the server grants more. */
  sendData(call: RawCall, buf: Buffer): void {
    if (!this.calls.has(call.id)) return;
    const len = buf.length - FRAME_HEADER_BYTES;
    if (call.queued.length === 0 && len <= call.sendWindow && len <= this.sendWindow) {
      call.sendWindow -= len;
      this.sendWindow -= len;
      this.send(buf);
      return;
    }
    call.queued.push(buf);
    if (call.queued.length > MAX_QUEUED) call.queued.shift();
  }

  private flushQueued(call: RawCall): void {
    while (call.queued.length > 0) {
      const buf = call.queued[0] as Buffer;
      const len = buf.length - FRAME_HEADER_BYTES;
      if (len > call.sendWindow || len > this.sendWindow) return;
      call.queued.shift();
      call.sendWindow -= len;
      this.sendWindow -= len;
      this.send(buf);
    }
  }

  private onChunk(chunk: Buffer): void {
    const buf = this.rest === undefined ? chunk : Buffer.concat([this.rest, chunk]);
    this.rest = undefined;
    let off = 0;
    try {
      while (buf.length - off >= FRAME_HEADER_BYTES) {
        const len = buf.readUIntBE(off, 3);
        if (len > MAX_FRAME_BYTES) throw new ProtocolError(`frame of ${len} bytes above SETTINGS_MAX_FRAME_SIZE`);
        if (buf.length - off < FRAME_HEADER_BYTES + len) break;
        const type = buf[off + 3] as number;
        const flags = buf[off + 4] as number;
        const streamId = buf.readUInt32BE(off + 5) & 0x7fff_ffff;
        this.onFrame(type, flags, streamId, buf.subarray(off + FRAME_HEADER_BYTES, off + FRAME_HEADER_BYTES + len));
        off += FRAME_HEADER_BYTES + len;
        if (this.closed) return;
      }
    } catch (err) {
      if (err instanceof ProtocolError) {
        this.drop(`protocol error: ${err.message}`);
        return;
      }
      // A bug of the bench (a callback threw): not the server's fault, so not a drop; loud.
      this.drop('client error');
      process.nextTick(() => { throw err; });
      return;
    }
    // A copy, so that the chunk is not kept for a partial frame.
    if (off < buf.length) this.rest = Buffer.from(buf.subarray(off));
  }

  private onFrame(type: number, flags: number, streamId: number, payload: Buffer): void {
    if (this.block !== undefined && type !== T_CONTINUATION) throw new ProtocolError('frame inside a header block');
    switch (type) {
      case T_DATA: {
        this.received += payload.length;
        if (this.received >= DEFAULT_WINDOW / 2) {
          this.send(frame(T_WINDOW_UPDATE, 0, 0, u32(this.received)));
          this.received = 0;
        }
        const call = this.calls.get(streamId);
        if (call === undefined) return;
        call.received += payload.length;
        if (call.received >= DEFAULT_WINDOW / 2 && (flags & F_END_STREAM) === 0) {
          this.send(frame(T_WINDOW_UPDATE, 0, streamId, u32(call.received)));
          call.received = 0;
        }
        call.onData(unpad(payload, flags), (flags & F_END_STREAM) !== 0);
        return;
      }
      case T_HEADERS: {
        let p = unpad(payload, flags);
        if ((flags & F_PRIORITY) !== 0) p = p.subarray(5);
        this.block = { streamId, endStream: (flags & F_END_STREAM) !== 0, parts: [p], bytes: p.length };
        if ((flags & F_END_HEADERS) !== 0) this.endBlock();
        return;
      }
      case T_CONTINUATION: {
        const b = this.block;
        if (b === undefined || b.streamId !== streamId) throw new ProtocolError('CONTINUATION without its HEADERS');
        b.parts.push(payload);
        b.bytes += payload.length;
        if (b.bytes > MAX_HEADER_BLOCK_BYTES) throw new ProtocolError(`header block above ${MAX_HEADER_BLOCK_BYTES} bytes`);
        if ((flags & F_END_HEADERS) !== 0) this.endBlock();
        return;
      }
      case T_RST_STREAM:
        if (payload.length !== 4) throw new ProtocolError('RST_STREAM of the wrong size');
        this.calls.get(streamId)?.onReset(payload.readUInt32BE(0));
        return;
      case T_SETTINGS:
        if ((flags & F_ACK) !== 0) return;
        if (payload.length % 6 !== 0) throw new ProtocolError('SETTINGS of the wrong size');
        for (let i = 0; i < payload.length; i += 6) {
          if (payload.readUInt16BE(i) !== S_INITIAL_WINDOW_SIZE) continue;
          const v = payload.readUInt32BE(i + 2);
          if (v > MAX_WINDOW) throw new ProtocolError(`SETTINGS_INITIAL_WINDOW_SIZE ${v} above 2^31-1`);
          const delta = v - this.peerInitialWindow;
          this.peerInitialWindow = v;
          for (const c of this.calls.values()) {
            c.sendWindow += delta;
            if (c.sendWindow > MAX_WINDOW) throw new ProtocolError('a stream window above 2^31-1 after SETTINGS');
          }
        }
        this.send(frame(T_SETTINGS, F_ACK, 0, undefined));
        if (!this.connected) {
          this.connected = true;
          clearTimeout(this.timer);
          this.scheduleKeepalive();
        }
        for (const c of [...this.calls.values()]) this.flushQueued(c);
        return;
      case T_PING:
        if (payload.length !== 8) throw new ProtocolError('PING of the wrong size');
        if ((flags & F_ACK) === 0) this.send(frame(T_PING, F_ACK, 0, payload));
        else this.onPingAck();
        return;
      case T_GOAWAY: {
        if (payload.length < 8) throw new ProtocolError('GOAWAY of the wrong size');
        const last = payload.readUInt32BE(0) & 0x7fff_ffff;
        this.usable = false;
        this.lastError ||= `GOAWAY code ${payload.readUInt32BE(4)}`;
        for (const c of [...this.calls.values()]) {
          if (c.id <= last) continue;
          c.localEnded = true;
          this.forget(c);
          c.finish({ code: Status.UNAVAILABLE, details: `Connection dropped: ${this.lastError}` });
        }
        if (this.calls.size === 0) this.close();
        return;
      }
      case T_WINDOW_UPDATE: {
        if (payload.length !== 4) throw new ProtocolError('WINDOW_UPDATE of the wrong size');
        const inc = payload.readUInt32BE(0) & 0x7fff_ffff;
        if (inc === 0) throw new ProtocolError('WINDOW_UPDATE of 0');
        if (streamId === 0) {
          this.sendWindow += inc;
          if (this.sendWindow > MAX_WINDOW) throw new ProtocolError('connection window above 2^31-1');
          for (const c of [...this.calls.values()]) this.flushQueued(c);
        } else {
          const c = this.calls.get(streamId);
          if (c === undefined) return;
          c.sendWindow += inc;
          if (c.sendWindow > MAX_WINDOW) throw new ProtocolError('stream window above 2^31-1');
          this.flushQueued(c);
        }
        return;
      }
      case T_PUSH_PROMISE:
        throw new ProtocolError('PUSH_PROMISE after SETTINGS_ENABLE_PUSH 0');
      default:
        return; // unknown and PRIORITY frames are ignored (§4.1, §5.5)
    }
  }

  private endBlock(): void {
    const b = this.block;
    if (b === undefined) return;
    this.block = undefined;
    const h = decodeResponseHeaders(b.parts.length === 1 ? (b.parts[0] as Buffer) : Buffer.concat(b.parts));
    this.calls.get(b.streamId)?.onHeaders(h, b.endStream);
  }

  private scheduleKeepalive(): void {
    if (this.cfg.keepaliveTimeMs <= 0 || this.closed) return;
    this.timer = setTimeout(() => this.ping(), this.cfg.keepaliveTimeMs);
    this.timer.unref();
  }

  private ping(): void {
    if (this.closed) return;
    this.pingOut = true;
    this.timer = setTimeout(() => this.drop('keepalive ping not answered'), this.cfg.keepaliveTimeoutMs);
    this.timer.unref();
    this.send(frame(T_PING, 0, 0, Buffer.alloc(8)));
  }

  private onPingAck(): void {
    if (!this.pingOut) return;
    this.pingOut = false;
    clearTimeout(this.timer);
    this.scheduleKeepalive();
  }

  private drop(why: string): void {
    this.lastError ||= why;
    this.usable = false;
    this.socket.destroy();
  }

  private onClose(): void {
    if (this.closed) return;
    this.closed = true;
    this.usable = false;
    clearTimeout(this.timer);
    const what = this.connected ? 'Connection dropped' : 'No connection established';
    const status = { code: Status.UNAVAILABLE, details: this.lastError === '' ? what : `${what}: ${this.lastError}` };
    const calls = [...this.calls.values()];
    this.calls.clear();
    for (const c of calls) {
      c.localEnded = true;
      c.finish(status);
    }
    this.onClosed(this);
  }

  /** Close: GOAWAY, then the socket; open calls end UNAVAILABLE. */
  close(): void {
    if (this.closed || this.socket.destroyed) return;
    this.usable = false;
    this.lastError ||= 'client closed';
    this.send(frame(T_GOAWAY, 0, 0, Buffer.alloc(8)));
    this.socket.end();
    this.socket.destroySoon();
  }
}

/** A payload without its padding (PADDED flag: a length byte first, that many bytes last). */
function unpad(payload: Buffer, flags: number): Buffer {
  if ((flags & F_PADDED) === 0) return payload;
  const pad = payload[0] ?? 0;
  if (pad >= payload.length) throw new ProtocolError('padding longer than the frame');
  return payload.subarray(1, payload.length - pad);
}

/** One agent's client: its own connection, Register and Heartbeats as AgentTransport. */
export class RawMonitorClient implements AgentTransport {
  private conn: RawConnection | undefined;
  /** Every connection not yet closed: the current one and any left unusable with calls still open. */
  private readonly open = new Set<RawConnection>();
  private closed = false;

  constructor(private readonly cfg: H2ClientConfig) {}

  private connection(): RawConnection {
    if (this.conn === undefined || this.conn.dropped) {
      this.conn = new RawConnection(this.cfg, (c) => this.open.delete(c));
      this.open.add(this.conn);
    }
    return this.conn;
  }

  register(req: RegisterRequestIn, metadata: CallMetadata, deadlineMs: number): Promise<RegisterResponse__Output> {
    if (this.closed) return Promise.reject(new Error('client closed'));
    return new Promise((resolve, reject) => {
      const call: RawCall = this.connection().open(REGISTER_PATH, metadata, deadlineMs, unaryListener((st) => call.cancel(st), resolve, reject));
      call.write(encodeRegisterRequest(req), true);
    });
  }

  heartbeats(metadata: CallMetadata, onAck: (ack: HeartbeatAck__Output) => void, onEnd: (err: unknown) => void): HeartbeatSink {
    if (this.closed) return closedSink(onEnd);
    const call = this.connection().open(HEARTBEATS_PATH, metadata, undefined, heartbeatsListener(onAck, onEnd));
    return {
      write: (hb: HeartbeatIn) => call.write(encodeHeartbeat(hb)),
      cancel: () => call.cancel(),
    };
  }

  close(): void {
    this.closed = true;
    for (const c of [...this.open]) c.close();
    this.conn = undefined;
  }
}
