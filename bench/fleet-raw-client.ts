/**
 * The cheapest client for bench/fleet-agents.ts (`--client raw`): one simulated agent's Register
 * and Heartbeats calls with HTTP/2 framed by hand (RFC 9113) on a node:tls socket (or node:net for
 * h2c), so that a generator spends its CPU on TLS and the kernel only. It puts on the wire the
 * frames fleet-h2-client.ts (and so grpc-js) puts there, a heartbeat being one DATA frame in one
 * write; no nghttp2 and no Http2Stream per agent on the generator's side.
 * Why: with node:http2 clients the generators cost about as much CPU per heartbeat as the server
 * under test (~110 µs), so on a 2-core machine 10,000 agents do not fit beside the server.
 *
 * - one TCP (and TLS, ALPN h2) connection per agent, opened at the first call and again at the next
 *   call after it dropped; the connection preface and our SETTINGS are written at once (a TLS
 *   socket holds them until the handshake is done);
 * - our SETTINGS: no server push, and a header table of 0 bytes, so the server's HPACK encoder
 *   keeps no dynamic table and every header it sends is a static-table index or a literal;
 * - requests: the headers of fleet-h2-client.ts, HPACK literals without indexing and without
 *   Huffman coding (a block is built once per call);
 * - responses: DATA frames to MessageDecoder (lib/grpc-server.ts); the status from the trailers
 *   (or the headers of a trailers-only answer): `grpc-status` and `grpc-message` are read when the
 *   server sends them raw or Huffman-coded with the shortest codes (5 and 6 bits, RFC 7541
 *   Appendix B: digits, lower-case letters and `-`; nghttp2 codes a value only when that is
 *   shorter, so a 1-2 digit status is raw); a message with other characters is reported as
 *   `(not decoded)`. `:status` 200 is the static index 8; any other is reported as not 200;
 * - RST_STREAM, GOAWAY and a dropped connection give the statuses grpc-js gives
 *   (fleet-h2-client.ts resetStatusOf);
 * - flow control both ways: a DATA frame waits for the window the server grants; what we receive
 *   is granted back once half of the default window is used;
 * - keepalive: a PING every `keepaliveTimeMs` after the last one was answered, calls or not, and
 *   one unanswered within `keepaliveTimeoutMs` drops the connection (grpc-js with agent/reporter.ts's
 *   options); the server's PINGs and SETTINGS are acknowledged.
 *
 * Only what the bench needs: no compression, no retries, no priorities, no CONTINUATION on our side
 * (a request's headers are far below the 16 KiB frame), no name resolution (host:port).
 */
import { status as Status } from '@grpc/grpc-js';
import * as net from 'node:net';
import * as tls from 'node:tls';
import {
  decodeHeartbeatAck, decodeRegisterResponse, encodeHeartbeat, encodeRegisterRequest, type HeartbeatIn, type RegisterRequestIn,
} from '../agent/wire.js';
import { FrameError, MessageDecoder } from '../lib/grpc-server.js';
import type { HeartbeatAck__Output, RegisterResponse__Output } from '../lib/proto.js';
import type { AgentTransport, CallError, CallMetadata, HeartbeatSink } from './fleet-common.js';
import {
  FIXED_HEADERS, GrpcCallError, HEARTBEATS_PATH, MAX_RECEIVE_MESSAGE_BYTES, REGISTER_PATH, decodeGrpcMessage, grpcTimeout, resetStatusOf, splitTarget,
  type H2ClientConfig,
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

/** A header block of literals without indexing, new names, no Huffman (§6.2.2). */
export function encodeHeaderBlock(headers: readonly (readonly [string, string])[]): Buffer {
  const out: number[] = [];
  for (const [name, value] of headers) {
    const n = Buffer.from(name, 'latin1');
    const v = Buffer.from(value, 'latin1');
    out.push(0x00);
    hpackInt(out, 0x00, 7, n.length);
    for (const b of n) out.push(b);
    hpackInt(out, 0x00, 7, v.length);
    for (const b of v) out.push(b);
  }
  return Buffer.from(out);
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

/** The static table entries a response may use for its status (§A: 8-14). */
const STATIC_STATUS: Readonly<Record<number, number>> = { 8: 200, 9: 204, 10: 206, 11: 304, 12: 400, 13: 404, 14: 500 };

/** What the client reads from a response header block. */
export interface ResponseHeaders {
  /** `:status` when the static table gives it (200 and 6 others); -1 for one sent as a literal (not 200); 0 if absent. */
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
      if (off >= block.length) throw new Error('HPACK: integer runs past the block');
      const b = block[off++] as number;
      v += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return v;
    }
    throw new Error('HPACK: integer too long');
  };
  /** A string; undefined when Huffman-coded with codes this decoder does not hold. */
  const str = (): string | undefined => {
    if (off >= block.length) throw new Error('HPACK: string runs past the block');
    const huffman = ((block[off] as number) & 0x80) !== 0;
    const len = int(7);
    if (off + len > block.length) throw new Error('HPACK: string runs past the block');
    const bytes = block.subarray(off, off + len);
    off += len;
    return huffman ? decodeShortHuffman(bytes) : bytes.toString('latin1');
  };
  while (off < block.length) {
    const b = block[off] as number;
    if ((b & 0x80) !== 0) {
      const index = int(7);
      if (index === 0) throw new Error('HPACK: index 0');
      const s = STATIC_STATUS[index];
      if (s !== undefined) out.httpStatus = s;
      continue;
    }
    if ((b & 0xe0) === 0x20) {
      int(5); // dynamic table size update
      continue;
    }
    const nameIndex = int((b & 0xc0) === 0x40 ? 6 : 4);
    const name = nameIndex === 0 ? str() : STATIC_STATUS[nameIndex] !== undefined ? ':status' : `static:${nameIndex}`;
    const value = str();
    if (name === ':status') out.httpStatus = value === '200' ? 200 : -1;
    else if (name === 'grpc-status') out.grpcStatus = value !== undefined && /^\d{1,2}$/.test(value) ? Number(value) : Status.UNKNOWN;
    else if (name === 'grpc-message') out.grpcMessage = value === undefined ? '(not decoded)' : decodeGrpcMessage(value);
  }
  return out;
}

interface CallListener {
  /** A whole response message; a throw (undecodable) ends the call with INTERNAL. */
  onMessage(payload: Buffer): void;
  /** Once, when the call is over (OK included). */
  onStatus(status: CallError): void;
}

/** One gRPC call on one stream of a RawConnection. */
class RawCall {
  /** What the server lets us send on this stream, bytes. */
  sendWindow: number;
  /** DATA frames waiting for window. */
  readonly queued: Buffer[] = [];
  /** Bytes received and not yet granted back. */
  received = 0;
  localEnded = false;
  finished = false;
  private readonly decoder = new MessageDecoder(MAX_RECEIVE_MESSAGE_BYTES);
  private readonly messages: Buffer[] = [];
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

  onHeaders(h: ResponseHeaders, endStream: boolean): void {
    if (!this.headersSeen) {
      this.headersSeen = true;
      this.httpStatus = h.httpStatus;
    }
    if (h.grpcStatus !== undefined) this.status ??= { code: h.grpcStatus, details: h.grpcMessage ?? '' };
    else if (this.httpStatus !== 200) this.status ??= { code: Status.UNKNOWN, details: `Received HTTP status ${this.httpStatus === -1 ? 'other than 200' : this.httpStatus}` };
    if (endStream) this.onRemoteEnd();
  }

  onData(payload: Buffer, endStream: boolean): void {
    if (!this.finished) {
      this.messages.length = 0;
      try {
        this.decoder.push(payload, this.messages);
      } catch (err) {
        if (!(err instanceof FrameError)) throw err;
        this.cancel({ code: err.status.code, details: err.status.details });
        return;
      }
      for (const m of this.messages) {
        try {
          this.listener.onMessage(m);
        } catch {
          this.cancel({ code: Status.INTERNAL, details: 'Failed to parse server response' });
          return;
        }
      }
    }
    if (endStream) this.onRemoteEnd();
  }

  /** The server's side is done: the call is over; half-close ours, as grpc-js does, so the stream closes. */
  private onRemoteEnd(): void {
    this.finish(this.status ?? resetStatusOf(RST_NO_ERROR, this.httpStatus === -1 ? 0 : this.httpStatus));
    this.end();
    this.conn.forget(this);
  }

  onReset(code: number): void {
    this.finish(this.status ?? resetStatusOf(code, this.httpStatus === -1 ? 0 : this.httpStatus));
    this.localEnded = true;
    this.conn.forget(this);
  }

  finish(status: CallError): void {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.deadline);
    this.listener.onStatus(status);
  }

  /** One length-prefixed message; dropped once the call is over. */
  write(payload: Buffer, endStream = false): void {
    if (this.finished || this.localEnded) return;
    if (endStream) this.localEnded = true;
    this.conn.sendData(this, messageFrame(this.id, payload, endStream));
  }

  /** Half-close: an empty DATA frame with END_STREAM. */
  end(): void {
    if (this.localEnded) return;
    this.localEnded = true;
    this.conn.sendData(this, frame(T_DATA, F_END_STREAM, this.id, undefined));
  }

  /** End the call with `status` now and reset the stream (RST_STREAM CANCEL). */
  cancel(status: CallError = { code: Status.CANCELLED, details: 'Cancelled on client' }): void {
    this.finish(status);
    if (this.conn.forget(this)) this.conn.send(frame(T_RST_STREAM, 0, this.id, u32(RST_CANCEL)));
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
  private nextStreamId = 1;
  /** What the server lets us send on the connection, bytes. */
  private sendWindow = DEFAULT_WINDOW;
  /** Bytes received on the connection and not yet granted back. */
  private received = 0;
  private rest: Buffer | undefined;
  /** A header block being gathered from HEADERS and CONTINUATION frames. */
  private block: { streamId: number; endStream: boolean; parts: Buffer[]; bytes: number } | undefined;
  private keepalive: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly cfg: H2ClientConfig) {
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
    this.send(frame(T_HEADERS, F_END_HEADERS, id, encodeHeaderBlock(headers)));
    return call;
  }

  /** Forget a call; true if it was open (a frame for it may still be sent). */
  forget(call: RawCall): boolean {
    call.queued.length = 0;
    return this.calls.delete(call.id);
  }

  send(buf: Buffer): void {
    if (!this.closed && !this.socket.destroyed) this.socket.write(buf);
  }

  /** A DATA frame: now if both windows allow, else when the server grants more. */
  sendData(call: RawCall, buf: Buffer): void {
    const len = buf.length - FRAME_HEADER_BYTES;
    if (call.queued.length === 0 && len <= call.sendWindow && len <= this.sendWindow) {
      call.sendWindow -= len;
      this.sendWindow -= len;
      this.send(buf);
      return;
    }
    if (this.calls.has(call.id)) call.queued.push(buf);
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
        if (len > MAX_FRAME_BYTES) throw new Error(`frame of ${len} bytes above SETTINGS_MAX_FRAME_SIZE`);
        if (buf.length - off < FRAME_HEADER_BYTES + len) break;
        const type = buf[off + 3] as number;
        const flags = buf[off + 4] as number;
        const streamId = buf.readUInt32BE(off + 5) & 0x7fff_ffff;
        this.onFrame(type, flags, streamId, buf.subarray(off + FRAME_HEADER_BYTES, off + FRAME_HEADER_BYTES + len));
        off += FRAME_HEADER_BYTES + len;
        if (this.closed) return;
      }
    } catch (err) {
      this.drop(`protocol error: ${(err as Error).message}`);
      return;
    }
    // A copy, so that the chunk is not kept for a partial frame.
    if (off < buf.length) this.rest = Buffer.from(buf.subarray(off));
  }

  private onFrame(type: number, flags: number, streamId: number, payload: Buffer): void {
    if (this.block !== undefined && type !== T_CONTINUATION) throw new Error('frame inside a header block');
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
        if (b === undefined || b.streamId !== streamId) throw new Error('CONTINUATION without its HEADERS');
        b.parts.push(payload);
        b.bytes += payload.length;
        if (b.bytes > MAX_HEADER_BLOCK_BYTES) throw new Error(`header block above ${MAX_HEADER_BLOCK_BYTES} bytes`);
        if ((flags & F_END_HEADERS) !== 0) this.endBlock();
        return;
      }
      case T_RST_STREAM:
        if (payload.length !== 4) throw new Error('RST_STREAM of the wrong size');
        this.calls.get(streamId)?.onReset(payload.readUInt32BE(0));
        return;
      case T_SETTINGS:
        if ((flags & F_ACK) !== 0) return;
        if (payload.length % 6 !== 0) throw new Error('SETTINGS of the wrong size');
        for (let i = 0; i < payload.length; i += 6) {
          if (payload.readUInt16BE(i) !== S_INITIAL_WINDOW_SIZE) continue;
          const v = payload.readUInt32BE(i + 2);
          const delta = v - this.peerInitialWindow;
          this.peerInitialWindow = v;
          for (const c of this.calls.values()) c.sendWindow += delta;
        }
        this.send(frame(T_SETTINGS, F_ACK, 0, undefined));
        if (!this.connected) {
          this.connected = true;
          this.scheduleKeepalive();
        }
        for (const c of this.calls.values()) this.flushQueued(c);
        return;
      case T_PING:
        if (payload.length !== 8) throw new Error('PING of the wrong size');
        if ((flags & F_ACK) === 0) this.send(frame(T_PING, F_ACK, 0, payload));
        else this.onPingAck();
        return;
      case T_GOAWAY: {
        const last = payload.readUInt32BE(0) & 0x7fff_ffff;
        this.usable = false;
        this.lastError ||= `GOAWAY code ${payload.readUInt32BE(4)}`;
        for (const c of [...this.calls.values()]) {
          if (c.id <= last) continue;
          this.forget(c);
          c.finish({ code: Status.UNAVAILABLE, details: `Connection dropped: ${this.lastError}` });
        }
        return;
      }
      case T_WINDOW_UPDATE: {
        const inc = payload.readUInt32BE(0) & 0x7fff_ffff;
        if (streamId === 0) {
          this.sendWindow += inc;
          for (const c of this.calls.values()) this.flushQueued(c);
        } else {
          const c = this.calls.get(streamId);
          if (c === undefined) return;
          c.sendWindow += inc;
          this.flushQueued(c);
        }
        return;
      }
      case T_PUSH_PROMISE:
        throw new Error('PUSH_PROMISE after SETTINGS_ENABLE_PUSH 0');
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

  private pingTimer: NodeJS.Timeout | undefined;

  private scheduleKeepalive(): void {
    if (this.cfg.keepaliveTimeMs <= 0 || this.closed) return;
    this.keepalive = setTimeout(() => this.ping(), this.cfg.keepaliveTimeMs);
    this.keepalive.unref();
  }

  private ping(): void {
    if (this.closed) return;
    this.pingTimer = setTimeout(() => this.drop('keepalive ping not answered'), this.cfg.keepaliveTimeoutMs);
    this.pingTimer.unref();
    this.send(frame(T_PING, 0, 0, Buffer.alloc(8)));
  }

  private onPingAck(): void {
    if (this.pingTimer === undefined) return;
    clearTimeout(this.pingTimer);
    this.pingTimer = undefined;
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
    clearTimeout(this.keepalive);
    clearTimeout(this.pingTimer);
    const what = this.connected ? 'Connection dropped' : 'No connection established';
    const status = { code: Status.UNAVAILABLE, details: this.lastError === '' ? what : `${what}: ${this.lastError}` };
    const calls = [...this.calls.values()];
    this.calls.clear();
    for (const c of calls) c.finish(status);
  }

  /** Close: GOAWAY, then the socket; open calls end UNAVAILABLE. */
  close(): void {
    if (this.closed) return;
    this.usable = false;
    this.lastError ||= 'client closed';
    const goaway = Buffer.alloc(8);
    this.send(frame(T_GOAWAY, 0, 0, goaway));
    this.socket.end();
    this.socket.destroySoon();
  }
}

/** A payload without its padding (PADDED flag: a length byte first, that many bytes last). */
function unpad(payload: Buffer, flags: number): Buffer {
  if ((flags & F_PADDED) === 0) return payload;
  const pad = payload[0] ?? 0;
  if (pad >= payload.length) throw new Error('padding longer than the frame');
  return payload.subarray(1, payload.length - pad);
}

/** One agent's client: its own connection, Register and Heartbeats as AgentTransport. */
export class RawMonitorClient implements AgentTransport {
  private conn: RawConnection | undefined;
  private closed = false;

  constructor(private readonly cfg: H2ClientConfig) {}

  private connection(): RawConnection {
    if (this.conn === undefined || this.conn.dropped) this.conn = new RawConnection(this.cfg);
    return this.conn;
  }

  register(req: RegisterRequestIn, metadata: CallMetadata, deadlineMs: number): Promise<RegisterResponse__Output> {
    if (this.closed) return Promise.reject(new Error('client closed'));
    return new Promise((resolve, reject) => {
      let response: RegisterResponse__Output | undefined;
      const call: RawCall = this.connection().open(REGISTER_PATH, metadata, deadlineMs, {
        onMessage: (payload) => {
          if (response !== undefined) {
            call.cancel({ code: Status.UNIMPLEMENTED, details: 'Too many responses received' });
            return;
          }
          response = decodeRegisterResponse(payload);
        },
        onStatus: (s) => {
          if (s.code !== Status.OK) reject(new GrpcCallError(s.code, s.details));
          else if (response === undefined) reject(new GrpcCallError(Status.UNIMPLEMENTED, 'No message received'));
          else resolve(response);
        },
      });
      call.write(encodeRegisterRequest(req), true);
    });
  }

  heartbeats(metadata: CallMetadata, onAck: (ack: HeartbeatAck__Output) => void, onEnd: (err: unknown) => void): HeartbeatSink {
    if (this.closed) {
      process.nextTick(() => onEnd(new GrpcCallError(Status.UNAVAILABLE, 'client closed')));
      return { write: () => {}, cancel: () => {} };
    }
    const call = this.connection().open(HEARTBEATS_PATH, metadata, undefined, {
      onMessage: (payload) => onAck(decodeHeartbeatAck(payload)),
      onStatus: (s) => onEnd(s.code === Status.OK ? undefined : new GrpcCallError(s.code, s.details)),
    });
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
