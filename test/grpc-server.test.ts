/**
 * lib/grpc-server.ts: the monitor's gRPC server on node:http2. A real GrpcServer on
 * 127.0.0.1:0 with small handlers written here, real grpc-js clients (the agent's client), and
 * raw node:http2 clients for what grpc-js would never send. TLS material comes from `certsInit`.
 */
import * as grpc from '@grpc/grpc-js';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect as h2connect, type ClientHttp2Session, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2';
import { connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import type { PeerCertificate } from 'node:tls';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { certsInit } from '../cli/certs.js';
import {
  FrameError, GrpcServer, MESSAGE_HIGH_WATER, MessageDecoder, encodeGrpcMessage, parseGrpcTimeout,
  type DuplexCall, type DuplexHandler, type GrpcServerOptions, type ServerRefusal, type ServerTlsOptions, type UnaryCall, type UnaryHandler,
} from '../lib/grpc-server.js';
import { monitorProto, type Heartbeat, type HeartbeatAck, type HeartbeatAck__Output, type Heartbeat__Output, type RegisterRequest__Output } from '../lib/proto.js';
import { waitFor } from '../lib/testing.js';
import type { DeregisterRequest__Output } from '../proto/gen/monitor/v1/DeregisterRequest.js';
import type { DeregisterResponse } from '../proto/gen/monitor/v1/DeregisterResponse.js';
import type { RegisterRequest } from '../proto/gen/monitor/v1/RegisterRequest.js';
import type { RegisterResponse } from '../proto/gen/monitor/v1/RegisterResponse.js';
import { tempDir } from './helpers.js';

const svc = monitorProto().monitor.v1.Monitor.service;
const REGISTER = svc.Register.path;
const HEARTBEATS = svc.Heartbeats.path;

// ---------------------------------------------------------------------------------------------
// Harness: servers, clients and raw sessions, all closed after each test.

const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const f of cleanup.splice(0).reverse()) f();
});

interface TestHandlers {
  readonly Register?: UnaryHandler<RegisterRequest__Output, RegisterResponse>;
  readonly Heartbeats?: DuplexHandler<Heartbeat__Output, HeartbeatAck>;
  readonly Deregister?: UnaryHandler<DeregisterRequest__Output, DeregisterResponse>;
}

interface Harness {
  readonly server: GrpcServer;
  readonly port: number;
  readonly addr: string;
  /** onError calls. */
  readonly errors: { where: string; err: unknown }[];
  /** onRefused calls. */
  readonly refusals: { reason: ServerRefusal; detail: string }[];
}

type TestOptions = Partial<Omit<GrpcServerOptions, 'onError' | 'onRefused'>>;

/** Register answers a session id naming the instance; Heartbeats acks each seq and ends OK after the client half-closes. */
const echoHandlers: Required<TestHandlers> = {
  Register: (call, cb) => cb(null, { session_id: `s-${call.request.instance_id}`, heartbeat_interval_ms: 1_000, last_seq: 7 }),
  Heartbeats: (call) => {
    call.on('data', (hb) => call.write({ persisted_seq: hb.seq }));
    call.on('end', () => call.end());
  },
  Deregister: (_call, cb) => cb(null, {}),
};

async function startServer(handlers: TestHandlers = {}, opts: TestOptions = {}, tls?: ServerTlsOptions): Promise<Harness> {
  const errors: Harness['errors'] = [];
  const refusals: Harness['refusals'] = [];
  const server = new GrpcServer({
    maxReceiveMessageBytes: 4 * 1024 * 1024,
    maxSendMessageBytes: 4 * 1024 * 1024,
    keepaliveTimeMs: 0,
    keepaliveTimeoutMs: 5_000,
    idleConnectionMs: 0,
    maxConcurrentStreams: 100,
    maxHeaderListBytes: 16_384,
    handshakeTimeoutMs: 5_000,
    ...opts,
    onError: (where, err) => errors.push({ where, err }),
    onRefused: (reason, detail) => refusals.push({ reason, detail }),
  });
  server.addService(svc, { ...echoHandlers, ...handlers });
  const port = await server.listen('127.0.0.1', 0, tls);
  cleanup.push(() => server.forceShutdown());
  return { server, port, addr: `127.0.0.1:${port}`, errors, refusals };
}

function client(h: Harness, creds: grpc.ChannelCredentials = grpc.credentials.createInsecure()): grpc.Client {
  // A local subchannel pool: no connection shared with another test's client.
  const c = new grpc.Client(h.addr, creds, { 'grpc.use_local_subchannel_pool': 1 });
  cleanup.push(() => c.close());
  return c;
}

/** Reject after `ms` so no await in a test is unbounded. */
function bounded<T>(p: Promise<T>, what: string, ms = 10_000): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    p.then((v) => { clearTimeout(t); resolve(v); }, (e: unknown) => { clearTimeout(t); reject(e instanceof Error ? e : new Error(String(e))); });
  });
}

type Outcome<T> = { ok: true; value: T } | { ok: false; code: number; details: string };

function unary<Req, Res>(c: grpc.Client, path: string, serialize: (r: Req) => Buffer, deserialize: (b: Buffer) => Res, req: Req, options: grpc.CallOptions = {}): Promise<Outcome<Res>> {
  const p = new Promise<Outcome<Res>>((resolve) => {
    c.makeUnaryRequest(path, serialize, deserialize, req, new grpc.Metadata(), { deadline: Date.now() + 10_000, ...options }, (err, value) => {
      resolve(err ? { ok: false, code: err.code, details: err.details } : { ok: true, value: value as Res });
    });
  });
  return bounded(p, `unary ${path}`, 12_000);
}

const register = (c: grpc.Client, req: RegisterRequest, options: grpc.CallOptions = {}) =>
  unary(c, REGISTER, svc.Register.requestSerialize, svc.Register.responseDeserialize, req, options);

const identity = (b: Buffer): Buffer => b;

interface OpenStream<Req> {
  readonly call: grpc.ClientDuplexStream<Req, HeartbeatAck__Output>;
  readonly acks: HeartbeatAck__Output[];
  /** The call's final status (grpc-js emits 'status' for OK and errors alike). */
  readonly status: Promise<grpc.StatusObject>;
}

function openStream<Req>(c: grpc.Client, serialize: (r: Req) => Buffer): OpenStream<Req> {
  const call = c.makeBidiStreamRequest(HEARTBEATS, serialize, svc.Heartbeats.responseDeserialize, new grpc.Metadata(), {});
  const acks: HeartbeatAck__Output[] = [];
  call.on('data', (a: HeartbeatAck__Output) => acks.push(a));
  call.on('error', () => { /* the status is read from 'status' */ });
  const status = bounded(new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve)), 'stream status');
  status.catch(() => { /* awaited by the tests that need it */ });
  return { call, acks, status };
}

const heartbeats = (c: grpc.Client) => openStream<Heartbeat>(c, svc.Heartbeats.requestSerialize);
const heartbeatsRaw = (c: grpc.Client) => openStream<Buffer>(c, identity);

const acked = (s: { readonly acks: readonly HeartbeatAck__Output[] }) => s.acks.map((a) => a.persisted_seq);

/** A length-prefixed message with any flag and any announced length (raw clients and the decoder). */
function frame(payload: Buffer | readonly number[], flag = 0, announced?: number): Buffer {
  const body = Buffer.from(payload);
  const head = Buffer.alloc(5);
  head[0] = flag;
  head.writeUInt32BE(announced ?? body.length, 1);
  return Buffer.concat([head, body]);
}

function rawSession(h: Harness): Promise<ClientHttp2Session> {
  const session = h2connect(`http://${h.addr}`);
  session.on('error', () => { /* a test that cares listens for 'close' */ });
  cleanup.push(() => session.destroy());
  return bounded(new Promise((resolve) => session.once('connect', () => resolve(session))), 'raw http2 connect');
}

interface RawAnswer {
  readonly headers: IncomingHttpHeaders;
  readonly trailers: IncomingHttpHeaders | undefined;
  /** From the trailers, or from the response headers of a trailers-only answer. */
  readonly grpcStatus: string | undefined;
  readonly grpcMessage: string | undefined;
  readonly body: Buffer;
}

/** One request on a raw session: these headers, these DATA chunks (one write each), then end. */
function rawCall(session: ClientHttp2Session, headers: OutgoingHttpHeaders, chunks: readonly Buffer[] = []): Promise<RawAnswer> {
  const isGet = headers[':method'] === 'GET';
  const stream = session.request({ ':method': 'POST', 'content-type': 'application/grpc', te: 'trailers', ...headers }, { endStream: isGet });
  let head: IncomingHttpHeaders = {};
  let trailers: IncomingHttpHeaders | undefined;
  const body: Buffer[] = [];
  stream.on('response', (h) => { head = h; });
  stream.on('trailers', (t) => { trailers = t; });
  stream.on('data', (b: Buffer) => body.push(b));
  stream.on('error', () => { /* reset streams close all the same */ });
  if (!isGet) {
    for (const c of chunks) stream.write(c);
    stream.end();
  }
  const p = new Promise<RawAnswer>((resolve) => stream.on('close', () => {
    const pick = (k: string) => {
      const v = trailers?.[k] ?? head[k];
      return v === undefined ? undefined : String(v);
    };
    resolve({ headers: head, trailers, grpcStatus: pick('grpc-status'), grpcMessage: pick('grpc-message'), body: Buffer.concat(body) });
  }));
  return bounded(p, `raw call ${String(headers[':path'])}`);
}

// ---------------------------------------------------------------------------------------------

describe('unary calls', () => {
  it('a Register handler answers and the grpc-js client gets the decoded response', async () => {
    const seen: RegisterRequest__Output[] = [];
    const h = await startServer({
      Register: (call, cb) => {
        seen.push(call.request);
        cb(null, { session_id: `s-${call.request.instance_id}`, heartbeat_interval_ms: 1_500, last_seq: '42' });
      },
    });
    const r = await register(client(h), { instance_id: 'i-1', group_id: 'web', agent_version: '1.2.3', address: '10.0.0.1' });
    expect(r).toEqual({ ok: true, value: { session_id: 's-i-1', heartbeat_interval_ms: 1_500, last_seq: '42' } });
    expect(seen).toEqual([{ instance_id: 'i-1', group_id: 'web', agent_version: '1.2.3', address: '10.0.0.1' }]);
    expect(h.errors).toEqual([]);
  });

  it.each([
    { name: 'non-ASCII', details: 'Gruppe „web“ unbekannt — ünïcödé 🚀' },
    { name: 'a percent sign', details: 'cpu 100% over 50%' },
    { name: 'a literal percent escape', details: 'not an escape: %41 %2 %' },
    { name: 'a newline and a tab', details: 'first line\nsecond\tline\r\n' },
    { name: 'all of them', details: 'ü%\n%C3%BC' },
  ])('an error status with $name in its message reaches the grpc-js client exactly', async ({ details }) => {
    const h = await startServer({ Register: (_call, cb) => cb({ code: grpc.status.NOT_FOUND, details }) });
    expect(await register(client(h), { instance_id: 'i-1' })).toEqual({ ok: false, code: grpc.status.NOT_FOUND, details });
  });

  it('a handler that throws: the client gets INTERNAL "internal error" and onError is called', async () => {
    const boom = new Error('handler bug');
    const h = await startServer({ Register: () => { throw boom; } });
    expect(await register(client(h), { instance_id: 'i-1' })).toEqual({ ok: false, code: grpc.status.INTERNAL, details: 'internal error' });
    expect(h.errors).toEqual([{ where: 'Register', err: boom }]);
  });

  type Answer = Parameters<UnaryHandler<RegisterRequest__Output, RegisterResponse>>[1];
  it.each([
    {
      name: 'a value, then an error',
      answer: (cb: Answer) => { cb(null, { session_id: 'first' }); cb({ code: grpc.status.NOT_FOUND, details: 'second' }); },
      want: { ok: true, value: { session_id: 'first', heartbeat_interval_ms: 0, last_seq: '0' } },
    },
    {
      name: 'an error, then a value',
      answer: (cb: Answer) => { cb({ code: grpc.status.NOT_FOUND, details: 'first' }); cb(null, { session_id: 'second' }); },
      want: { ok: false, code: grpc.status.NOT_FOUND, details: 'first' },
    },
    {
      // Were it not dropped, serializing the second value would throw and reach onError.
      name: 'a value, then a value that cannot be serialized',
      answer: (cb: Answer) => { cb(null, { session_id: 'first' }); cb(null, { get session_id(): string { throw new Error('unserializable'); } }); },
      want: { ok: true, value: { session_id: 'first', heartbeat_interval_ms: 0, last_seq: '0' } },
    },
    {
      name: 'a value, then another value a turn later',
      answer: (cb: Answer) => { cb(null, { session_id: 'first' }); setImmediate(() => cb(null, { session_id: 'second' })); },
      want: { ok: true, value: { session_id: 'first', heartbeat_interval_ms: 0, last_seq: '0' } },
    },
  ])('the callback called twice ($name): only the first answer counts', async ({ answer, want }) => {
    let calls = 0;
    const h = await startServer({ Register: (_call, cb) => { calls++; answer(cb); } });
    const c = client(h);
    expect(await register(c, { instance_id: 'i-1' })).toEqual(want);
    // The connection is still good and nothing was reported as a server bug.
    calls = 0;
    expect(await register(c, { instance_id: 'i-2' })).toEqual(want);
    expect(calls).toBe(1);
    expect(h.errors).toEqual([]);
  });
});

describe('bidirectional streams', () => {
  it('messages flow both ways in order; a client half-close is "end", and call.end() gives the client OK', async () => {
    const got: string[] = [];
    const events: string[] = [];
    const h = await startServer({
      Heartbeats: (call) => {
        call.on('data', (hb) => {
          got.push(hb.seq);
          call.write({ persisted_seq: hb.seq, reject_reason: `ack ${hb.seq}` });
        });
        call.on('end', () => {
          events.push('end');
          call.end();
        });
        call.on('close', () => events.push('close'));
      },
    });
    const s = heartbeats(client(h));
    for (let seq = 1; seq <= 20; seq++) s.call.write({ seq, sample_time_ms: 1_700_000_000_000 + seq, cpu_percent: seq / 2, mem_percent: 10 });
    await waitFor('20 acks', () => s.acks.length === 20);
    const want = Array.from({ length: 20 }, (_, i) => String(i + 1));
    expect(got).toEqual(want);
    expect(acked(s)).toEqual(want);
    expect(s.acks.map((a) => a.reject_reason)).toEqual(want.map((n) => `ack ${n}`));
    expect(events).toEqual([]);
    s.call.end();
    const st = await s.status;
    expect({ code: st.code, details: st.details }).toEqual({ code: grpc.status.OK, details: '' });
    await waitFor('server close', () => events.includes('close'));
    expect(events).toEqual(['end', 'close']);
  });

  const failure = { code: grpc.status.FAILED_PRECONDITION, details: 'unknown session: register again — 100%' };
  it.each([
    { name: 'before any write', writesFirst: 0, sameTick: false },
    { name: 'after 3 writes the client already read', writesFirst: 3, sameTick: false },
    { name: 'right after a write, in the same tick', writesFirst: 1, sameTick: true },
    { name: 'right after 200 writes, in the same tick', writesFirst: 200, sameTick: true },
  ])('call.fail() $name: the client sees the code and details', async ({ writesFirst, sameTick }) => {
    let server: DuplexCall<Heartbeat__Output, HeartbeatAck> | undefined;
    const h = await startServer({
      Heartbeats: (call) => {
        server = call;
        call.on('data', () => {
          for (let i = 1; i <= writesFirst; i++) call.write({ persisted_seq: i });
          if (sameTick) call.fail(failure);
        });
      },
    });
    const s = heartbeats(client(h));
    s.call.write({ seq: 1 });
    if (!sameTick) {
      await waitFor('server call', () => server);
      if (writesFirst > 0) await waitFor(`${writesFirst} acks`, () => s.acks.length === writesFirst);
      server?.fail(failure);
    }
    const st = await s.status;
    expect({ code: st.code, details: st.details }).toEqual(failure);
    expect(s.acks).toHaveLength(writesFirst);
    expect(h.errors).toEqual([]);
  });

  it('a "data" listener that throws: the client gets INTERNAL and onError is called', async () => {
    const boom = new Error('listener bug');
    const h = await startServer({
      Heartbeats: (call) => {
        call.on('data', (hb) => {
          if (hb.seq === '2') throw boom;
          call.write({ persisted_seq: hb.seq });
        });
      },
    });
    const s = heartbeats(client(h));
    s.call.write({ seq: 1 });
    await waitFor('ack 1', () => s.acks.length === 1);
    s.call.write({ seq: 2 });
    const st = await s.status;
    expect({ code: st.code, details: st.details }).toEqual({ code: grpc.status.INTERNAL, details: 'internal error' });
    expect(h.errors).toEqual([{ where: 'Heartbeats:data', err: boom }]);
  });

  it('undecodable protobuf after a valid, acked message: INTERNAL "Error deserializing request"', async () => {
    const seen: string[] = [];
    const h = await startServer({
      Heartbeats: (call) => {
        call.on('data', (hb) => {
          seen.push(hb.seq);
          call.write({ persisted_seq: hb.seq });
        });
      },
    });
    const s = heartbeatsRaw(client(h));
    s.call.write(svc.Heartbeats.requestSerialize({ seq: 1 }));
    await waitFor('ack 1', () => s.acks.length === 1);
    // A varint field, then a fixed64 field with 5 of its 8 bytes: protobufjs throws.
    s.call.write(Buffer.from([200, 80, 240, 125, 89, 23, 225, 8, 241, 212]));
    const st = await s.status;
    expect({ code: st.code, details: st.details }).toEqual({ code: grpc.status.INTERNAL, details: 'Error deserializing request' });
    expect(acked(s)).toEqual(['1']);
    expect(seen).toEqual(['1']);
    expect(h.refusals.map((r) => r.reason)).toEqual(['badMessage']);
  });

  it('the client cancels: the server call sees "cancelled", then "close"', async () => {
    const events: string[] = [];
    let server: DuplexCall<Heartbeat__Output, HeartbeatAck> | undefined;
    const h = await startServer({
      Heartbeats: (call) => {
        server = call;
        call.on('data', (hb) => call.write({ persisted_seq: hb.seq }));
        call.on('cancelled', () => events.push('cancelled'));
        call.on('close', () => events.push('close'));
        call.on('end', () => events.push('end'));
      },
    });
    const s = heartbeats(client(h));
    s.call.write({ seq: 1 });
    await waitFor('ack 1', () => s.acks.length === 1);
    expect(server?.cancelled).toBe(false);
    s.call.cancel();
    await waitFor('server close', () => events.includes('close'));
    // node:http2's close(CANCEL), which grpc-js uses, ends the writable side (END_STREAM) before
    // it sends RST_STREAM, so the server may first see a half-close; then it must see the cancel.
    expect(events.filter((e) => e !== 'end')).toEqual(['cancelled', 'close']);
    expect(events.at(-1)).toBe('close');
    expect(server?.cancelled).toBe(true);
    expect((await s.status).code).toBe(grpc.status.CANCELLED);
  });
});

describe('refusals', () => {
  it('an unknown method is UNIMPLEMENTED and reported as "unimplemented"', async () => {
    const h = await startServer();
    const r = await unary(client(h), '/monitor.v1.Monitor/Nope', identity, identity, Buffer.alloc(0));
    expect(r).toEqual({ ok: false, code: grpc.status.UNIMPLEMENTED, details: 'The server does not implement the method /monitor.v1.Monitor/Nope' });
    expect(h.refusals).toEqual([{ reason: 'unimplemented', detail: '/monitor.v1.Monitor/Nope' }]);
  });

  const LIMIT = 64;
  // RegisterRequest{instance_id: n-2 bytes} is n bytes; Heartbeat{seq: 1} (2 bytes) plus an
  // unknown length-delimited field 15 (2 + n-4 bytes) is n bytes and still decodes.
  const registerOf = (n: number) => svc.Register.requestSerialize({ instance_id: 'x'.repeat(n - 2) });
  const heartbeatOf = (n: number) => Buffer.concat([svc.Heartbeats.requestSerialize({ seq: 1 }), Buffer.from([0x7a, n - 4]), Buffer.alloc(n - 4)]);
  it.each([
    { name: 'a unary request exactly at the limit passes', method: 'Register', bytes: LIMIT, want: { code: grpc.status.OK, details: '' }, handled: 1 },
    { name: 'a unary request one byte over is RESOURCE_EXHAUSTED', method: 'Register', bytes: LIMIT + 1, want: { code: grpc.status.RESOURCE_EXHAUSTED, details: `Received message larger than max (${LIMIT + 1} vs. ${LIMIT})` }, handled: 0 },
    { name: 'a stream message exactly at the limit passes', method: 'Heartbeats', bytes: LIMIT, want: { code: grpc.status.OK, details: '' }, handled: 1 },
    { name: 'a stream message one byte over is RESOURCE_EXHAUSTED', method: 'Heartbeats', bytes: LIMIT + 1, want: { code: grpc.status.RESOURCE_EXHAUSTED, details: `Received message larger than max (${LIMIT + 1} vs. ${LIMIT})` }, handled: 0 },
  ])('maxReceiveMessageBytes: $name', async ({ method, bytes, want, handled }) => {
    let seen = 0;
    const h = await startServer({
      Register: (_call, cb) => { seen++; cb(null, {}); },
      Heartbeats: (call) => {
        call.on('data', (hb) => { seen++; call.write({ persisted_seq: hb.seq }); });
        call.on('end', () => call.end());
      },
    }, { maxReceiveMessageBytes: LIMIT });
    const c = client(h);
    let got: { code: number; details: string };
    if (method === 'Register') {
      const payload = registerOf(bytes);
      expect(payload.length).toBe(bytes);
      const r = await unary(c, REGISTER, identity, svc.Register.responseDeserialize, payload);
      got = r.ok ? { code: grpc.status.OK, details: '' } : { code: r.code, details: r.details };
    } else {
      const payload = heartbeatOf(bytes);
      expect(payload.length).toBe(bytes);
      expect(svc.Heartbeats.requestDeserialize(payload).seq).toBe('1');
      const s = heartbeatsRaw(c);
      s.call.write(payload);
      s.call.end();
      const st = await s.status;
      got = { code: st.code, details: st.details };
    }
    expect(got).toEqual(want);
    expect(seen).toBe(handled);
    expect(h.refusals.map((r) => r.reason)).toEqual(handled === 1 ? [] : ['tooLarge']);
  });
});

describe('after the status went out', () => {
  // stopReading(): "what it sends is read and dropped". A handler that failed a call (an unknown
  // session, a superseded one) must not be fed the messages the client sent before it saw the status.
  it('a stream the handler failed delivers no more "data" or "end" to it', async () => {
    const events: string[] = [];
    const h = await startServer({
      Heartbeats: (call) => {
        call.on('data', (hb) => {
          events.push(`data ${hb.seq}`);
          if (hb.seq === '1') call.fail({ code: grpc.status.FAILED_PRECONDITION, details: 'unknown session; register again' });
        });
        call.on('end', () => events.push('end'));
      },
    });
    const session = await rawSession(h);
    const stream = session.request({ ':method': 'POST', ':path': HEARTBEATS, 'content-type': 'application/grpc', te: 'trailers' });
    stream.on('error', () => { /* reset after the status */ });
    let head: IncomingHttpHeaders | undefined;
    stream.on('response', (x) => { head = x; });
    stream.on('data', () => { /* drained */ });
    const closed = bounded(new Promise<void>((resolve) => stream.on('close', () => resolve())), 'stream close');
    const beat = (seq: number) => frame(svc.Heartbeats.requestSerialize({ seq }));
    // Three messages in one DATA write: the first is failed by the handler.
    stream.write(Buffer.concat([beat(1), beat(2), beat(3)]));
    await waitFor('trailers-only status', () => head);
    expect(head?.['grpc-status']).toBe(String(grpc.status.FAILED_PRECONDITION));
    // A message and a half-close sent after the status: read and dropped by the server.
    stream.end(beat(4));
    await closed;
    expect(events).toEqual(['data 1']);
  });
});

describe('maxSendMessageBytes', () => {
  const LIMIT = 64;
  const big = 'x'.repeat(100);
  it.each([
    { name: 'a unary answer over the limit', method: 'Register', bytes: svc.Register.responseSerialize({ session_id: big }).length },
    { name: 'a stream message over the limit', method: 'Heartbeats', bytes: svc.Heartbeats.responseSerialize({ persisted_seq: 1, reject_reason: big }).length },
  ])('$name ends the call with RESOURCE_EXHAUSTED', async ({ method, bytes }) => {
    const h = await startServer({
      Register: (_call, cb) => cb(null, { session_id: big }),
      Heartbeats: (call) => call.on('data', (hb) => call.write({ persisted_seq: hb.seq, reject_reason: big })),
    }, { maxSendMessageBytes: LIMIT });
    const want = { code: grpc.status.RESOURCE_EXHAUSTED, details: `Sent message larger than max (${bytes} vs. ${LIMIT})` };
    if (method === 'Register') {
      expect(await register(client(h), { instance_id: 'i-1' })).toEqual({ ok: false, ...want });
    } else {
      const s = heartbeats(client(h));
      s.call.write({ seq: 1 });
      const st = await s.status;
      expect({ code: st.code, details: st.details }).toEqual(want);
      expect(s.acks).toEqual([]);
    }
  });
});

describe('raw HTTP/2 requests grpc-js would never send', () => {
  const register1 = () => frame(svc.Register.requestSerialize({ instance_id: 'i-1' }));
  it.each([
    { name: 'GET is 405', headers: { ':method': 'GET', ':path': REGISTER }, chunks: [], want: { status: 405, grpcStatus: undefined }, refused: 'protocol' },
    { name: 'content-type text/plain is 415', headers: { ':path': REGISTER, 'content-type': 'text/plain' }, chunks: [register1()], want: { status: 415, grpcStatus: undefined }, refused: 'protocol' },
    { name: 'a compressed message (flag 1) on a unary call is UNIMPLEMENTED', headers: { ':path': REGISTER }, chunks: [frame(svc.Register.requestSerialize({ instance_id: 'i-1' }), 1)], want: { status: 200, grpcStatus: '12' }, refused: 'protocol' },
    { name: 'a compressed message (flag 1) on a stream is UNIMPLEMENTED', headers: { ':path': HEARTBEATS }, chunks: [frame(svc.Heartbeats.requestSerialize({ seq: 1 }), 1)], want: { status: 200, grpcStatus: '12' }, refused: 'protocol' },
    { name: 'grpc-encoding gzip is UNIMPLEMENTED', headers: { ':path': REGISTER, 'grpc-encoding': 'gzip' }, chunks: [register1()], want: { status: 200, grpcStatus: '12' }, refused: 'protocol' },
    { name: 'a stream that ends inside a message is INTERNAL', headers: { ':path': HEARTBEATS }, chunks: [frame(Buffer.alloc(10), 0, 100)], want: { status: 200, grpcStatus: '13' }, refused: 'badMessage' },
    { name: 'a unary call with two messages in one chunk is UNIMPLEMENTED', headers: { ':path': REGISTER }, chunks: [Buffer.concat([register1(), register1()])], want: { status: 200, grpcStatus: '12' }, refused: 'badMessage' },
    { name: 'a unary call with two messages in two writes is UNIMPLEMENTED', headers: { ':path': REGISTER }, chunks: [register1(), register1()], want: { status: 200, grpcStatus: '12' }, refused: 'badMessage' },
    { name: 'a unary call with no message is UNIMPLEMENTED', headers: { ':path': REGISTER }, chunks: [], want: { status: 200, grpcStatus: '12' }, refused: 'badMessage' },
    { name: 'a unary call that ends inside a message is UNIMPLEMENTED', headers: { ':path': REGISTER }, chunks: [frame(Buffer.alloc(3), 0, 50)], want: { status: 200, grpcStatus: '12' }, refused: 'badMessage' },
  ])('$name', async ({ headers, chunks, want, refused }) => {
    let handled = 0;
    const h = await startServer({ Register: (_call, cb) => { handled++; cb(null, {}); } });
    const a = await rawCall(await rawSession(h), headers, chunks);
    expect({ status: a.headers[':status'], grpcStatus: a.grpcStatus }).toEqual(want);
    expect(handled).toBe(0);
    expect(h.refusals.map((r) => r.reason)).toEqual([refused]);
  });

  it('a well-formed raw unary call is answered OK (the rows above are refused for their reason only)', async () => {
    const h = await startServer();
    const a = await rawCall(await rawSession(h), { ':path': REGISTER }, [frame(svc.Register.requestSerialize({ instance_id: 'i-9' }))]);
    expect({ status: a.headers[':status'], grpcStatus: a.grpcStatus }).toEqual({ status: 200, grpcStatus: '0' });
    expect(svc.Register.responseDeserialize(a.body.subarray(5)).session_id).toBe('s-i-9');
    expect(h.refusals).toEqual([]);
  });

  it('getPeer() is "127.0.0.1:<the client\'s port>"', async () => {
    const peers: string[] = [];
    const h = await startServer({ Register: (call, cb) => { peers.push(call.getPeer()); cb(null, {}); } });
    const session = await rawSession(h);
    const a = await rawCall(session, { ':path': REGISTER }, [frame(svc.Register.requestSerialize({ instance_id: 'i-1' }))]);
    expect(a.grpcStatus).toBe('0');
    expect(peers).toEqual([`127.0.0.1:${session.socket.localPort}`]);
  });
});

describe('MessageDecoder (pure)', () => {
  const decodeAll = (chunks: readonly Buffer[], max = 1_000) => {
    const d = new MessageDecoder(max);
    const out: Buffer[] = [];
    const partial: boolean[] = [];
    for (const c of chunks) {
      d.push(c, out);
      partial.push(d.partial);
    }
    return { messages: out.map((b) => [...b]), partial };
  };
  const bytes = (b: Buffer) => [...b].map((x) => Buffer.from([x]));
  const two = Buffer.concat([frame([1, 2, 3]), frame([4, 5, 6, 7, 8, 9])]);

  it.each([
    { name: 'two messages split over 1-byte chunks', chunks: bytes(two), want: [[1, 2, 3], [4, 5, 6, 7, 8, 9]] },
    { name: 'several messages in one chunk', chunks: [Buffer.concat([frame([1]), frame([2, 2]), frame([]), frame([3, 3, 3])])], want: [[1], [2, 2], [], [3, 3, 3]] },
    { name: 'a zero-length message whole in a chunk', chunks: [frame([])], want: [[]] },
    { name: 'a zero-length message split over 1-byte chunks', chunks: bytes(frame([])), want: [[]] },
    { name: 'a header in one chunk, its body in the next', chunks: [two.subarray(0, 5), two.subarray(5)], want: [[1, 2, 3], [4, 5, 6, 7, 8, 9]] },
    { name: 'a chunk boundary inside the second header', chunks: [two.subarray(0, 10), two.subarray(10)], want: [[1, 2, 3], [4, 5, 6, 7, 8, 9]] },
  ])('$name', ({ chunks, want }) => {
    const r = decodeAll(chunks);
    expect(r.messages).toEqual(want);
    expect(r.partial.at(-1)).toBe(false);
  });

  it('is partial inside a message and not between messages', () => {
    expect(decodeAll(bytes(frame([1, 2]))).partial).toEqual([true, true, true, true, true, true, false]);
  });

  it('a message exactly at the limit passes', () => {
    expect(decodeAll([frame(Buffer.alloc(8, 7))], 8).messages).toEqual([[7, 7, 7, 7, 7, 7, 7, 7]]);
  });

  it.each([
    { name: 'flag 2', chunk: frame([1], 2), code: grpc.status.INTERNAL, reason: 'protocol', details: 'invalid message flag 2' },
    { name: 'flag 1 (compressed)', chunk: frame([1], 1), code: grpc.status.UNIMPLEMENTED, reason: 'protocol', details: 'compressed messages are not supported (send grpc-encoding identity)' },
    { name: 'a length over the limit, before its body arrived', chunk: frame([], 0, 9), code: grpc.status.RESOURCE_EXHAUSTED, reason: 'tooLarge', details: 'Received message larger than max (9 vs. 8)' },
  ])('$name is a FrameError', ({ chunk, code, reason, details }) => {
    for (const chunks of [[chunk], bytes(chunk)]) {
      let thrown: unknown;
      try {
        decodeAll(chunks, 8);
      } catch (err) {
        thrown = err;
      }
      expect(thrown).toBeInstanceOf(FrameError);
      expect({ status: (thrown as FrameError).status, reason: (thrown as FrameError).reason }).toEqual({ status: { code, details }, reason });
    }
  });
});

describe('parseGrpcTimeout and encodeGrpcMessage', () => {
  it.each([
    { name: 'seconds', value: '30S', want: 30_000 },
    { name: 'hours', value: '1H', want: 3_600_000 },
    { name: 'minutes', value: '2M', want: 120_000 },
    { name: 'milliseconds', value: '200m', want: 200 },
    { name: 'microseconds', value: '5000u', want: 5 },
    { name: 'nanoseconds', value: '3000000n', want: 3 },
    { name: 'zero', value: '0S', want: 0 },
    { name: '8 digits (the most allowed)', value: '99999999m', want: 99_999_999 },
    { name: '9 digits', value: '123456789S', want: undefined },
    { name: 'absent', value: undefined, want: undefined },
    { name: 'empty', value: '', want: undefined },
    { name: 'no unit', value: '10', want: undefined },
    { name: 'an unknown unit', value: '10s', want: undefined },
    { name: 'negative', value: '-1S', want: undefined },
    { name: 'a fraction', value: '1.5S', want: undefined },
    { name: 'spaces', value: ' 1S', want: undefined },
  ])('grpc-timeout $name', ({ value, want }) => {
    expect(parseGrpcTimeout(value)).toBe(want);
  });

  it.each([
    { name: 'printable ASCII is kept', text: 'unknown group "web" (id=3) ~ok', want: 'unknown group "web" (id=3) ~ok' },
    { name: 'a percent sign', text: '100%', want: '100%25' },
    { name: 'a newline and a tab', text: 'a\nb\tc', want: 'a%0Ab%09c' },
    { name: 'DEL', text: '\x7f', want: '%7F' },
    { name: 'two-byte UTF-8', text: 'é', want: '%C3%A9' },
    { name: 'four-byte UTF-8', text: '🚀', want: '%F0%9F%9A%80' },
    { name: 'empty', text: '', want: '' },
  ])('grpc-message: $name', ({ text, want }) => {
    const encoded = encodeGrpcMessage(text);
    expect(encoded).toBe(want);
    expect(decodeURIComponent(encoded)).toBe(text);
  });
});

describe('deadlines', () => {
  it('a grpc-js deadline on a unary the handler never answers: the server call is cancelled', async () => {
    let server: UnaryCall<RegisterRequest__Output> | undefined;
    let cancelledEvents = 0;
    const h = await startServer({
      Register: (call) => {
        server = call;
        // UnaryCall's type declares no on(); the object is an EventEmitter, as a DuplexCall is.
        call.on('cancelled', () => cancelledEvents++);
      },
    });
    const r = await register(client(h), { instance_id: 'i-1' }, { deadline: Date.now() + 200 });
    expect(r).toMatchObject({ ok: false, code: grpc.status.DEADLINE_EXCEEDED });
    await waitFor('server call cancelled', () => server?.cancelled === true && cancelledEvents === 1, 5_000);
  });

  it('a raw client that sends grpc-timeout and waits gets DEADLINE_EXCEEDED from the server', async () => {
    let server: UnaryCall<RegisterRequest__Output> | undefined;
    const h = await startServer({ Register: (call) => { server = call; } });
    const a = await rawCall(await rawSession(h), { ':path': REGISTER, 'grpc-timeout': '200m' }, [frame(svc.Register.requestSerialize({ instance_id: 'i-1' }))]);
    expect({ grpcStatus: a.grpcStatus, grpcMessage: a.grpcMessage }).toEqual({ grpcStatus: String(grpc.status.DEADLINE_EXCEEDED), grpcMessage: 'Deadline exceeded' });
    expect(server?.cancelled).toBe(true);
    expect(h.refusals.map((x) => x.reason)).toEqual(['deadline']);
  });
});

describe('backpressure', () => {
  it('a client that does not read: write() says wait at MESSAGE_HIGH_WATER; "drain" fires once it reads again', async () => {
    const MAX_WRITES = 2_000;
    const reason = 'x'.repeat(8 * 1024);
    let written = 0;
    let blocked: { written: number; writableLength: number } | undefined;
    let drained = 0;
    const h = await startServer({
      Heartbeats: (call) => {
        call.on('drain', () => {
          drained++;
          call.end();
        });
        call.on('data', () => {
          // One write per turn of the event loop, so write callbacks can run between writes.
          const step = () => {
            if (written >= MAX_WRITES) return;
            written++;
            if (!call.write({ persisted_seq: written, reject_reason: reason })) {
              blocked = { written, writableLength: call.writableLength };
              return;
            }
            setImmediate(step);
          };
          step();
        });
      },
    });
    const s = heartbeats(client(h));
    s.call.pause();
    s.call.write({ seq: 1 });
    const b = await waitFor('write() returns false', () => blocked ?? (written >= MAX_WRITES ? { written, writableLength: -1 } : undefined));
    expect(b.written).toBeLessThan(MAX_WRITES);
    // Some messages left (flow control let them through), so the count is of waiting ones.
    expect(b.written).toBeGreaterThan(MESSAGE_HIGH_WATER);
    expect(b.writableLength).toBeGreaterThan(0);
    expect(b.writableLength).toBeLessThanOrEqual(MESSAGE_HIGH_WATER);
    s.call.resume();
    await waitFor('drain', () => drained === 1);
    const st = await s.status;
    expect(st.code).toBe(grpc.status.OK);
    expect(s.acks).toHaveLength(b.written);
    expect(acked(s)).toEqual(Array.from({ length: b.written }, (_, i) => String(i + 1)));
  });
});

describe('mutual TLS', () => {
  const pki = tempDir('autoscaler-grpc-pki-');
  const otherPki = tempDir('autoscaler-grpc-pki-other-');
  beforeAll(async () => {
    await certsInit({ dir: pki, instances: ['i-1'] });
    await certsInit({ dir: otherPki, instances: ['i-1'] });
  }, 60_000);

  const read = (dir: string, name: string) => readFileSync(join(dir, name));
  const serverTls = (dir: string): ServerTlsOptions => ({ key: read(dir, 'server.key'), cert: read(dir, 'server.crt'), ca: read(dir, 'ca.crt'), requestCert: true, rejectUnauthorized: true });
  const fingerprint = (dir: string, name: string) => new X509Certificate(read(dir, name)).fingerprint256;

  /** Credentials trusting `dir`'s CA, with its client certificate unless `withCert` is false; records the server certificate seen. */
  function tlsCreds(dir: string, withCert = true): { creds: grpc.ChannelCredentials; serverCerts: string[] } {
    const serverCerts: string[] = [];
    const checkServerIdentity = (_host: string, cert: PeerCertificate) => { serverCerts.push(cert.fingerprint256); return undefined; };
    const creds = withCert
      ? grpc.credentials.createSsl(read(dir, 'ca.crt'), read(dir, 'instance-i-1.key'), read(dir, 'instance-i-1.crt'), { checkServerIdentity })
      : grpc.credentials.createSsl(read(dir, 'ca.crt'), null, null, { checkServerIdentity });
    return { creds, serverCerts };
  }

  /** Register answers the client certificate's SHA-256 fingerprint as the session id. */
  const peerCertHandler: TestHandlers = {
    Register: (call, cb) => cb(null, { session_id: call.getAuthContext().sslPeerCertificate?.fingerprint256 ?? 'no certificate' }),
  };

  it('the handler sees the verified client certificate', async () => {
    const h = await startServer(peerCertHandler, {}, serverTls(pki));
    const { creds, serverCerts } = tlsCreds(pki);
    const r = await register(client(h, creds), { instance_id: 'i-1' });
    expect(r).toMatchObject({ ok: true, value: { session_id: fingerprint(pki, 'instance-i-1.crt') } });
    expect(serverCerts).toEqual([fingerprint(pki, 'server.crt')]);
    expect(h.refusals).toEqual([]);
  });

  it('a client without a certificate cannot connect (UNAVAILABLE) and the handshake is reported as "tls"', async () => {
    let handled = 0;
    const h = await startServer({ Register: (_call, cb) => { handled++; cb(null, {}); } }, {}, serverTls(pki));
    const r = await register(client(h, tlsCreds(pki, false).creds), { instance_id: 'i-1' }, { deadline: Date.now() + 5_000 });
    expect(r).toMatchObject({ ok: false, code: grpc.status.UNAVAILABLE });
    await waitFor('tls refusal', () => h.refusals.some((x) => x.reason === 'tls'));
    expect(handled).toBe(0);
  });

  it('reloadTls: a new connection sees the new server certificate and CA; the old credentials no longer connect', async () => {
    const h = await startServer(peerCertHandler, {}, serverTls(pki));
    const before = tlsCreds(pki);
    expect(await register(client(h, before.creds), { instance_id: 'i-1' })).toMatchObject({ ok: true, value: { session_id: fingerprint(pki, 'instance-i-1.crt') } });
    expect(before.serverCerts).toEqual([fingerprint(pki, 'server.crt')]);

    h.server.reloadTls(serverTls(otherPki));
    const after = tlsCreds(otherPki);
    expect(await register(client(h, after.creds), { instance_id: 'i-1' })).toMatchObject({ ok: true, value: { session_id: fingerprint(otherPki, 'instance-i-1.crt') } });
    expect(after.serverCerts).toEqual([fingerprint(otherPki, 'server.crt')]);
    expect(fingerprint(otherPki, 'server.crt')).not.toBe(fingerprint(pki, 'server.crt'));
    expect(await register(client(h, tlsCreds(pki).creds), { instance_id: 'i-1' }, { deadline: Date.now() + 5_000 })).toMatchObject({ ok: false, code: grpc.status.UNAVAILABLE });
  });
});

describe('idle connections', () => {
  it('a connection that opens no call is closed ("idle"); one holding a stream is not', async () => {
    const h = await startServer({}, { idleConnectionMs: 300, keepaliveTimeMs: 200, keepaliveTimeoutMs: 2_000 });
    // First the busy connection, so it is older than the idle one when that one is closed.
    const busy = heartbeats(client(h));
    busy.call.write({ seq: 1 });
    await waitFor('ack 1', () => busy.acks.length === 1);

    const idle = await rawSession(h);
    let idleClosed = false;
    idle.on('close', () => { idleClosed = true; });
    await waitFor('idle connection closed', () => idleClosed, 5_000);
    expect(h.refusals.filter((r) => r.reason === 'idle')).toHaveLength(1);

    // The busy connection outlived the idle limit too, and still carries its stream.
    busy.call.write({ seq: 2 });
    await waitFor('ack 2', () => busy.acks.length === 2);
    expect(h.refusals.map((r) => r.reason)).toEqual(['idle']);
    expect(h.server.connectionCount).toBe(1);
  });
});

describe('keepalive', () => {
  /**
   * A hand-written HTTP/2 peer on a plain socket: the connection preface, an empty SETTINGS and
   * the ack of the server's SETTINGS (RFC 9113 §3.4, §6.5), then nothing: it never answers a PING.
   */
  function silentPeer(port: number): Promise<{ socket: Socket; frames: number[] }> {
    return new Promise((resolve, reject) => {
      const socket = netConnect(port, '127.0.0.1');
      const frames: number[] = [];
      let buffered = Buffer.alloc(0);
      socket.on('error', () => {});
      socket.on('data', (chunk: Buffer) => {
        buffered = Buffer.concat([buffered, chunk]);
        // Bounded: each pass consumes one whole frame.
        while (buffered.length >= 9) {
          const len = buffered.readUIntBE(0, 3);
          if (buffered.length < 9 + len) break;
          frames.push(buffered[3] as number);
          const settingsNotAck = buffered[3] === 0x4 && ((buffered[4] as number) & 0x1) === 0;
          if (settingsNotAck) socket.write(Buffer.from([0, 0, 0, 0x4, 0x1, 0, 0, 0, 0]));
          buffered = buffered.subarray(9 + len);
        }
      });
      socket.once('connect', () => {
        socket.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.from([0, 0, 0, 0x4, 0, 0, 0, 0, 0])]));
        resolve({ socket, frames });
      });
      socket.once('error', reject);
      cleanup.push(() => socket.destroy());
    });
  }

  it('a connection that does not answer the server\'s PING within keepaliveTimeoutMs is closed ("keepalive")', async () => {
    const h = await startServer({}, { keepaliveTimeMs: 200, keepaliveTimeoutMs: 300, idleConnectionMs: 0 });
    const peer = await silentPeer(h.port);
    let closed = false;
    peer.socket.on('close', () => { closed = true; });
    await waitFor('connection closed by the server', () => closed, 5_000);
    expect(peer.frames).toContain(0x6); // the server did send a PING
    expect(h.refusals.map((r) => r.reason)).toEqual(['keepalive']);
  });

  it('a connection that answers PINGs is kept however long it is silent', async () => {
    const h = await startServer({}, { keepaliveTimeMs: 200, keepaliveTimeoutMs: 300, idleConnectionMs: 0 });
    const session = await rawSession(h);
    let pinged = 0;
    session.on('ping', () => { pinged++; });
    await waitFor('three PINGs answered', () => pinged >= 3, 5_000);
    expect(session.closed || session.destroyed).toBe(false);
    expect(h.refusals).toEqual([]);
  });
});

describe('shutdown', () => {
  it('shutdown() with an open stream resolves only after the client ends it', async () => {
    const h = await startServer();
    const s = heartbeats(client(h));
    s.call.write({ seq: 1 });
    await waitFor('ack 1', () => s.acks.length === 1);
    let done = false;
    const p = h.server.shutdown().then(() => { done = true; });
    // After GOAWAY the open stream still works, and shutdown waits for it.
    s.call.write({ seq: 2 });
    await waitFor('ack 2', () => s.acks.length === 2);
    expect(done).toBe(false);
    s.call.end();
    expect((await s.status).code).toBe(grpc.status.OK);
    await bounded(p, 'shutdown');
    expect(done).toBe(true);
    // The listener's close callback can run before the session's 'close' event.
    await waitFor('no connection left', () => h.server.connectionCount === 0);
  });

  it('forceShutdown() closes at once: the client sees UNAVAILABLE or CANCELLED', async () => {
    const events: string[] = [];
    const h = await startServer({
      Heartbeats: (call) => {
        call.on('data', (hb) => call.write({ persisted_seq: hb.seq }));
        call.on('close', () => events.push('close'));
      },
    });
    const s = heartbeats(client(h));
    s.call.write({ seq: 1 });
    await waitFor('ack 1', () => s.acks.length === 1);
    h.server.forceShutdown();
    expect([grpc.status.UNAVAILABLE, grpc.status.CANCELLED]).toContain((await s.status).code);
    await waitFor('server call closed', () => events.includes('close'));
  });
});
