/**
 * The agent's side of proto/monitor/v1/monitor.proto, encoded by hand: the three requests it
 * sends and the three responses it reads. lib/proto.ts loads the .proto at run time with
 * @grpc/proto-loader (protobufjs), which costs the agent about 2-3 MiB of RSS for six small
 * messages (bench/agent-rss.ts); the monitor server keeps using it.
 *
 * Encoding (protobuf wire format): each field is a varint key (field number << 3 | wire type) and a
 * value: varint (0) for uint32/uint64/int64, 64-bit little-endian (1) for double, length-delimited
 * (2) for strings and messages. Fields at their proto3 default (0, "") are left out. Decoding
 * skips unknown fields, fills absent ones with their defaults, and gives 64-bit integers as
 * decimal strings: the shape proto-loader gives with `longs: String, defaults: true` (the
 * proto/gen `__Output` types). agent/wire.test.ts checks every message against protobufjs both ways.
 */
import * as grpc from '@grpc/grpc-js';
import type { DeregisterResponse__Output } from '../proto/gen/monitor/v1/DeregisterResponse.js';
import type { GroupView__Output } from '../proto/gen/monitor/v1/GroupView.js';
import type { HeartbeatAck__Output } from '../proto/gen/monitor/v1/HeartbeatAck.js';
import type { RegisterResponse__Output } from '../proto/gen/monitor/v1/RegisterResponse.js';

/** Metadata key carrying the session id on the Heartbeats stream (the same as lib/proto.ts). */
export const SESSION_METADATA_KEY = 'session-id';
/** The gRPC service name of proto/monitor/v1/monitor.proto. */
const SERVICE = 'monitor.v1.Monitor';

/** RegisterRequest as the agent sends it. */
export interface RegisterRequestIn {
  readonly instance_id: string;
  readonly group_id: string;
  readonly agent_version: string;
  readonly address: string;
}

/** Heartbeat as the agent sends it; seq and sample_time_ms are safe integers. */
export interface HeartbeatIn {
  readonly seq: number;
  readonly sample_time_ms: number;
  readonly cpu_percent: number;
  readonly mem_percent: number;
}

/** DeregisterRequest as the agent sends it. */
export interface DeregisterRequestIn {
  readonly session_id: string;
  readonly instance_id: string;
  readonly reason: string;
}

/** A message that is not valid protobuf for its type; grpc-js fails the call with INTERNAL. */
export class WireError extends Error {
  override name = 'WireError';
}

const VARINT = 0;
const FIXED64 = 1;
const LENGTH_DELIMITED = 2;
const FIXED32 = 5;

/** Appends protobuf fields to a buffer that grows as needed; one Writer per message. */
class Writer {
  private buf = Buffer.allocUnsafe(64);
  private pos = 0;

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  /** A varint of a non-negative safe integer. */
  private varint(v: number): void {
    this.ensure(10);
    while (v > 0x7f) {
      this.buf[this.pos++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[this.pos++] = v;
  }

  private key(field: number, wire: number): void {
    this.varint(field * 8 + wire);
  }

  string(field: number, v: string): void {
    if (v === '') return;
    const n = Buffer.byteLength(v, 'utf8');
    this.key(field, LENGTH_DELIMITED);
    this.varint(n);
    this.ensure(n);
    this.pos += this.buf.write(v, this.pos, n, 'utf8');
  }

  /** uint64 / int64: a safe integer; a negative int64 goes out as its 64-bit two's complement. */
  int64(field: number, v: number): void {
    if (!Number.isSafeInteger(v)) throw new TypeError(`field ${field}: ${v} is not a safe integer`);
    if (v === 0) return;
    this.key(field, VARINT);
    if (v > 0) return this.varint(v);
    let u = BigInt.asUintN(64, BigInt(v));
    this.ensure(10);
    while (u > 0x7fn) {
      this.buf[this.pos++] = Number(u & 0x7fn) | 0x80;
      u >>= 7n;
    }
    this.buf[this.pos++] = Number(u);
  }

  double(field: number, v: number): void {
    if (v === 0 && !Object.is(v, -0)) return;
    this.key(field, FIXED64);
    this.ensure(8);
    this.pos = this.buf.writeDoubleLE(v, this.pos);
  }

  finish(): Buffer {
    return this.buf.subarray(0, this.pos);
  }
}

/** Reads protobuf fields from one message (or a nested one: `end`). */
class Reader {
  pos: number;

  constructor(private readonly buf: Buffer, start = 0, readonly end = buf.length) {
    this.pos = start;
  }

  get done(): boolean {
    return this.pos >= this.end;
  }

  private byte(): number {
    if (this.pos >= this.end) throw new WireError('message truncated');
    return this.buf[this.pos++] ?? 0;
  }

  /** A varint as a 64-bit unsigned bigint (at most 10 bytes). */
  varint64(): bigint {
    let v = 0n;
    for (let shift = 0n; shift < 70n; shift += 7n) {
      const b = this.byte();
      v |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) return BigInt.asUintN(64, v);
    }
    throw new WireError('varint longer than 10 bytes');
  }

  /** A varint that must fit in 32 bits unsigned (keys and lengths). */
  small(): number {
    let v = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      const b = this.byte();
      v += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) {
        if (v > 0xffffffff) break;
        return v;
      }
    }
    throw new WireError('key or length does not fit in 32 bits');
  }

  uint32(): number {
    return Number(BigInt.asUintN(32, this.varint64()));
  }

  uint64(): string {
    return this.varint64().toString();
  }

  int64(): string {
    return BigInt.asIntN(64, this.varint64()).toString();
  }

  double(): number {
    if (this.pos + 8 > this.end) throw new WireError('message truncated');
    const v = this.buf.readDoubleLE(this.pos);
    this.pos += 8;
    return v;
  }

  /** The [start, end) of a length-delimited value. */
  bytes(): [number, number] {
    const n = this.small();
    if (this.pos + n > this.end) throw new WireError('length-delimited field runs past the end of the message');
    const start = this.pos;
    this.pos += n;
    return [start, this.pos];
  }

  string(): string {
    const [start, end] = this.bytes();
    return this.buf.toString('utf8', start, end);
  }

  sub(): Reader {
    const [start, end] = this.bytes();
    return new Reader(this.buf, start, end);
  }

  skip(wire: number): void {
    if (wire === VARINT) this.varint64();
    else if (wire === FIXED64) this.advance(8);
    else if (wire === LENGTH_DELIMITED) this.bytes();
    else if (wire === FIXED32) this.advance(4);
    else throw new WireError(`unsupported wire type ${wire}`);
  }

  private advance(n: number): void {
    if (this.pos + n > this.end) throw new WireError('message truncated');
    this.pos += n;
  }

  /** Calls `field` for each field; it returns false for fields it does not know, which are skipped. */
  each(field: (num: number, wire: number) => boolean): void {
    while (!this.done) {
      const key = this.small();
      const num = Math.floor(key / 8);
      const wire = key % 8;
      if (num === 0) throw new WireError('field number 0');
      if (!field(num, wire)) this.skip(wire);
    }
  }
}

export function encodeRegisterRequest(m: RegisterRequestIn): Buffer {
  const w = new Writer();
  w.string(1, m.instance_id);
  w.string(2, m.group_id);
  w.string(3, m.agent_version);
  w.string(4, m.address);
  return w.finish();
}

export function encodeHeartbeat(m: HeartbeatIn): Buffer {
  const w = new Writer();
  w.int64(1, m.seq);
  w.int64(2, m.sample_time_ms);
  w.double(3, m.cpu_percent);
  w.double(4, m.mem_percent);
  return w.finish();
}

export function encodeDeregisterRequest(m: DeregisterRequestIn): Buffer {
  const w = new Writer();
  w.string(1, m.session_id);
  w.string(2, m.instance_id);
  w.string(3, m.reason);
  return w.finish();
}

export function decodeRegisterResponse(buf: Buffer): RegisterResponse__Output {
  const out = { session_id: '', heartbeat_interval_ms: 0, last_seq: '0' };
  const r = new Reader(buf);
  r.each((num, wire) => {
    if (num === 1 && wire === LENGTH_DELIMITED) out.session_id = r.string();
    else if (num === 2 && wire === VARINT) out.heartbeat_interval_ms = r.uint32();
    else if (num === 3 && wire === VARINT) out.last_seq = r.uint64();
    else return false;
    return true;
  });
  return out;
}

function decodeGroupView(r: Reader, into: GroupView__Output | null): GroupView__Output {
  // A message field seen twice is merged (protobuf rules): later fields win.
  const out = into ?? { live_instances: 0, demand_percent: 0, as_of_ms: '0' };
  r.each((num, wire) => {
    if (num === 1 && wire === VARINT) out.live_instances = r.uint32();
    else if (num === 2 && wire === FIXED64) out.demand_percent = r.double();
    else if (num === 3 && wire === VARINT) out.as_of_ms = r.int64();
    else return false;
    return true;
  });
  return out;
}

export function decodeHeartbeatAck(buf: Buffer): HeartbeatAck__Output {
  const out: HeartbeatAck__Output = { persisted_seq: '0', rejected: 0, reject_reason: '', group: null };
  const r = new Reader(buf);
  r.each((num, wire) => {
    if (num === 1 && wire === VARINT) out.persisted_seq = r.uint64();
    else if (num === 2 && wire === VARINT) out.rejected = r.uint32();
    else if (num === 3 && wire === LENGTH_DELIMITED) out.reject_reason = r.string();
    else if (num === 4 && wire === LENGTH_DELIMITED) out.group = decodeGroupView(r.sub(), out.group);
    else return false;
    return true;
  });
  return out;
}

export function decodeDeregisterResponse(buf: Buffer): DeregisterResponse__Output {
  new Reader(buf).each(() => false);
  return {};
}

/** The directions a client never uses (it does not decode requests or encode responses). */
const clientOnly = (): never => {
  throw new TypeError('agent/wire.ts encodes requests and decodes responses only (the server uses lib/proto.ts)');
};

const SERVICE_DEFINITION = {
  Register: {
    path: `/${SERVICE}/Register`, requestStream: false, responseStream: false,
    requestSerialize: encodeRegisterRequest, responseDeserialize: decodeRegisterResponse,
    requestDeserialize: clientOnly, responseSerialize: clientOnly,
  },
  Heartbeats: {
    path: `/${SERVICE}/Heartbeats`, requestStream: true, responseStream: true,
    requestSerialize: encodeHeartbeat, responseDeserialize: decodeHeartbeatAck,
    requestDeserialize: clientOnly, responseSerialize: clientOnly,
  },
  Deregister: {
    path: `/${SERVICE}/Deregister`, requestStream: false, responseStream: false,
    requestSerialize: encodeDeregisterRequest, responseDeserialize: decodeDeregisterResponse,
    requestDeserialize: clientOnly, responseSerialize: clientOnly,
  },
} satisfies grpc.ServiceDefinition;

/** The calls the agent makes, with the shapes lib/proto.ts's MonitorClient gives them. */
export interface AgentMonitorClient {
  Register(req: RegisterRequestIn, md: grpc.Metadata, opts: grpc.CallOptions, cb: grpc.requestCallback<RegisterResponse__Output>): grpc.ClientUnaryCall;
  Deregister(req: DeregisterRequestIn, md: grpc.Metadata, opts: grpc.CallOptions, cb: grpc.requestCallback<DeregisterResponse__Output>): grpc.ClientUnaryCall;
  Heartbeats(md: grpc.Metadata, opts?: grpc.CallOptions): grpc.ClientDuplexStream<HeartbeatIn, HeartbeatAck__Output>;
  close(): void;
}

let Ctor: grpc.ServiceClientConstructor | undefined;

/** A Monitor client on the hand-written codec. */
export function createMonitorClient(address: string, credentials: grpc.ChannelCredentials, options: grpc.ChannelOptions): AgentMonitorClient {
  Ctor ??= grpc.makeGenericClientConstructor(SERVICE_DEFINITION, SERVICE);
  return new Ctor(address, credentials, options) as unknown as AgentMonitorClient;
}
