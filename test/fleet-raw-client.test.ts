/**
 * bench/fleet-raw-client.ts: the fleet bench's hand-framed HTTP/2 client. Its HPACK pieces against
 * RFC 7541's own examples, then the client against real servers on 127.0.0.1:0: the monitor's
 * transport (lib/grpc-server.ts) over mutual TLS made by `certsInit`, and a grpc-js server over
 * h2c. What it reads from the wire (statuses, acks past the flow-control window, a drop) must be
 * what a grpc-js client would report, or the bench counts the wrong things.
 */
import * as grpc from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import * as http2 from 'node:http2';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RegisterRequestIn } from '../agent/wire.js';
import { decodeResponseHeaders, decodeShortHuffman, HeaderEncoder, RawMonitorClient } from '../bench/fleet-raw-client.js';
import { h2ClientConfig, type GrpcCallError } from '../bench/fleet-h2-client.js';
import { certsInit } from '../cli/certs.js';
import { GrpcServer, MessageDecoder, type DuplexHandler, type ServerTlsOptions, type UnaryHandler } from '../lib/grpc-server.js';
import { monitorProto, type HeartbeatAck, type HeartbeatAck__Output, type Heartbeat__Output, type RegisterRequest__Output } from '../lib/proto.js';
import { waitFor } from '../lib/testing.js';
import type { RegisterResponse } from '../proto/gen/monitor/v1/RegisterResponse.js';
import { tempDir } from './helpers.js';

const svc = monitorProto().monitor.v1.Monitor.service;
const req = (id: string): RegisterRequestIn => ({ instance_id: id, group_id: 'g', agent_version: 'test', address: '127.0.0.1' });

const cleanup: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

/** Reject after `ms` so no await in a test is unbounded. */
function bounded<T>(p: Promise<T>, what: string, ms = 10_000): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    p.then((v) => { clearTimeout(t); resolve(v); }, (e: unknown) => { clearTimeout(t); reject(e instanceof Error ? e : new Error(String(e))); });
  });
}

describe('HPACK pieces', () => {
  it.each([
    { name: 'no-cache (RFC 7541 C.4.2)', hex: 'a8eb10649cbf', text: 'no-cache' },
    { name: '302 (C.6.1), no padding', hex: '6402', text: '302' },
    { name: 'custom-key (C.4.3): k has a 7-bit code', hex: '25a849e95ba97d7f', text: undefined },
    { name: 'www.example.com (C.4.1): w has a 7-bit code', hex: 'f1e3c2e5f23a6ba0ab90f4ff', text: undefined },
    { name: 'empty', hex: '', text: '' },
  ])('short Huffman codes: $name', ({ hex, text }) => {
    expect(decodeShortHuffman(Buffer.from(hex, 'hex'))).toBe(text);
  });

  it('a response block: static :status 200, a size update, literal grpc-status and a Huffman grpc-message', () => {
    // 0x20: table size update to 0; 0x88: indexed :status 200; 0x40 literal with indexing, new name.
    const lit = (name: Buffer, value: Buffer) => Buffer.concat([Buffer.from([0x40, name.length]), name, Buffer.from([value.length]), value]);
    const huffman = (hex: string) => { const b = Buffer.from(hex, 'hex'); return Buffer.concat([Buffer.from([0x80 | b.length]), b]); };
    const block = Buffer.concat([
      Buffer.from([0x20, 0x88]),
      lit(Buffer.from('grpc-status'), Buffer.from('14')),
      Buffer.from([0x00, 0x0c]), Buffer.from('grpc-message'), huffman('a8eb10649cbf'),
    ]);
    expect(decodeResponseHeaders(block)).toEqual({ httpStatus: 200, grpcStatus: 14, grpcMessage: 'no-cache' });
  });

  it.each([
    { name: 'an integer running past the block', hex: 'ff' },
    { name: 'a string longer than the block', hex: '000a61' },
    { name: 'index 0', hex: '80' },
  ])('a malformed block throws: $name', ({ hex }) => {
    expect(() => decodeResponseHeaders(Buffer.from(hex, 'hex'))).toThrow(/HPACK/);
  });

  it('the request encoder: literals with incremental indexing first, then indexes into the dynamic table (62 = newest)', () => {
    const hex = (t: string) => Buffer.from(t).toString('hex');
    const enc = new HeaderEncoder();
    expect(enc.encode([[':path', '/x'], ['te', 'trailers']]).toString('hex'))
      .toBe(`4005${hex(':path')}02${hex('/x')}4002${hex('te')}08${hex('trailers')}`);
    expect(enc.encode([[':path', '/x'], ['te', 'trailers'], ['k', 'v']]).toString('hex')).toBe(`bfbe4001${hex('k')}01${hex('v')}`);
    // The new entry is now 62, the others move down.
    expect(enc.encode([['k', 'v'], [':path', '/x']]).toString('hex')).toBe('bec0');
  });

  it('the request encoder evicts the oldest beyond its table, and sends an entry larger than the table without indexing', () => {
    const enc = new HeaderEncoder(80); // an entry is name + value + 32 bytes
    enc.encode([['a', 'x'.repeat(10)]]); // 43 bytes
    enc.encode([['b', 'y'.repeat(10)]]); // 43 more: 'a' is evicted
    expect(enc.encode([['b', 'y'.repeat(10)]]).toString('hex')).toBe('be');
    expect(enc.encode([['a', 'x'.repeat(10)]])[0]).toBe(0x40); // a literal again, re-indexed
    expect(enc.encode([['c', 'z'.repeat(60)]])[0]).toBe(0x00); // 93 bytes > 80: not indexed
  });

  it.each([
    { name: 'a dynamic-table index (ours holds 0 bytes)', hex: 'be' },
    { name: 'a table size update above 0', hex: '3f01' },
  ])('a block the server may not send us throws: $name', ({ hex }) => {
    expect(() => decodeResponseHeaders(Buffer.from(hex, 'hex'))).toThrow(/dynamic table|table size update/);
  });
});

describe('against the monitor transport over mutual TLS', () => {
  const pki = tempDir('autoscaler-raw-client-pki-');
  beforeAll(async () => {
    await certsInit({ dir: pki, instances: ['i-1'] });
  }, 60_000);
  const read = (name: string) => readFileSync(join(pki, name));
  const serverTls = (): ServerTlsOptions => ({ key: read('server.key'), cert: read('server.crt'), ca: read('ca.crt'), requestCert: true, rejectUnauthorized: true });

  type TestHandlers = { Register?: UnaryHandler<RegisterRequest__Output, RegisterResponse>; Heartbeats?: DuplexHandler<Heartbeat__Output, HeartbeatAck> };
  const start = async (handlers: TestHandlers): Promise<RawMonitorClient> => (await startWithServer(handlers)).c;

  async function startWithServer(handlers: TestHandlers): Promise<{ c: RawMonitorClient; server: GrpcServer }> {
    const server = new GrpcServer({
      maxReceiveMessageBytes: 4 * 1024 * 1024, maxSendMessageBytes: 4 * 1024 * 1024, keepaliveTimeMs: 0, keepaliveTimeoutMs: 5_000,
      idleConnectionMs: 0, maxConcurrentStreams: 100, maxHeaderListBytes: 16_384, handshakeTimeoutMs: 5_000, onError: () => {},
    });
    const register: UnaryHandler<RegisterRequest__Output, RegisterResponse> = (call, cb) =>
      cb(null, { session_id: `s-${call.request.instance_id}`, heartbeat_interval_ms: 1_000, last_seq: 7 });
    const heartbeats: DuplexHandler<Heartbeat__Output, HeartbeatAck> = (call) => {
      call.on('data', (hb) => call.write({ persisted_seq: hb.seq }));
      call.on('end', () => call.end());
    };
    const deregister: UnaryHandler<unknown, object> = (_call, cb) => cb(null, {});
    server.addService(svc, { Register: handlers.Register ?? register, Heartbeats: handlers.Heartbeats ?? heartbeats, Deregister: deregister });
    const port = await server.listen('127.0.0.1', 0, serverTls());
    cleanup.push(() => server.forceShutdown());
    const c = new RawMonitorClient(h2ClientConfig(`127.0.0.1:${port}`, { caFile: join(pki, 'ca.crt'), certFile: join(pki, 'instance-i-1.crt'), keyFile: join(pki, 'instance-i-1.key') }, Date.now()));
    cleanup.push(() => c.close());
    return { c, server };
  }

  it('Register answers the response; a second call reuses the connection', async () => {
    const { c, server } = await startWithServer({});
    const r1 = await bounded(c.register(req('i-1'), {}, 5_000), 'register');
    expect(r1).toMatchObject({ session_id: 's-i-1', last_seq: '7' });
    const r2 = await bounded(c.register(req('i-2'), {}, 5_000), 'second register');
    expect(r2.session_id).toBe('s-i-2');
    expect(server.connectionCount).toBe(1);
  });

  it('a handler that never answers: DEADLINE_EXCEEDED at the call deadline', async () => {
    const c = await start({ Register: () => {} });
    const err = await bounded(c.register(req('i-1'), {}, 300).then(() => undefined, (e: unknown) => e as GrpcCallError), 'deadline');
    expect(err).toMatchObject({ code: grpc.status.DEADLINE_EXCEEDED });
  });

  it.each([
    { name: 'short codes: details decoded', code: grpc.status.NOT_FOUND, details: 'no such group', want: 'no such group' },
    { name: 'percent-encoded, then Huffman with short codes', code: grpc.status.RESOURCE_EXHAUSTED, details: '100%', want: '100%' },
    { name: 'longer codes: "(not decoded)"', code: grpc.status.PERMISSION_DENIED, details: 'Session unknown', want: '(not decoded)' },
    { name: 'raw (Huffman would not be shorter)', code: grpc.status.ABORTED, details: 'XZ', want: 'XZ' },
  ])('a refusal reaches the caller with its status: $name', async ({ code, details, want }) => {
    const c = await start({ Register: (_call, cb) => cb({ code, details }) });
    const err = await bounded(c.register(req('i-1'), {}, 5_000).then(() => undefined, (e: unknown) => e as GrpcCallError), 'refusal');
    expect(err).toMatchObject({ code, details: want });
  });

  it('metadata reaches the handler as headers', async () => {
    let seen: unknown;
    const c = await start({ Register: (call, cb) => { seen = call.metadata.get('x-agent-key')[0]; cb(null, {}); } });
    await bounded(c.register(req('i-1'), { 'x-agent-key': 'k1' }, 5_000), 'register');
    expect(seen).toBe('k1');
  });

  it('heartbeats are acked; acks beyond the 64 KiB flow-control window all arrive; the server ending OK ends the stream', async () => {
    const ACKS = 20_000; // 7-9 bytes each with the gRPC prefix: about 163 KB, 2.5 × the default window
    const c = await start({
      Heartbeats: (call) => {
        call.on('data', (hb) => {
          if (Number(hb.seq) === 1) for (let i = 1; i <= ACKS; i++) call.write({ persisted_seq: i });
          else call.end();
        });
      },
    });
    const acks: HeartbeatAck__Output[] = [];
    let ended: unknown = 'not yet';
    const sink = c.heartbeats({}, (a) => acks.push(a), (err) => { ended = err; });
    sink.write({ seq: 1, sample_time_ms: 1, cpu_percent: 1, mem_percent: 1 });
    await waitFor('every ack', () => acks.length === ACKS, 10_000);
    expect(acks.at(-1)?.persisted_seq).toBe(String(ACKS));
    sink.write({ seq: 2, sample_time_ms: 2, cpu_percent: 1, mem_percent: 1 });
    await waitFor('the stream to end', () => ended !== 'not yet');
    expect(ended).toBeUndefined();
  });

  it('a stream failed by the server ends with its status; the connection serves the next call', async () => {
    let fail: (() => void) | undefined;
    const { c, server } = await startWithServer({
      Heartbeats: (call) => {
        call.on('data', (hb) => call.write({ persisted_seq: hb.seq }));
        fail = () => call.fail({ code: grpc.status.UNAVAILABLE, details: 'draining' });
      },
    });
    let ended: unknown = 'not yet';
    const acks: string[] = [];
    const sink = c.heartbeats({}, (a) => acks.push(a.persisted_seq), (err) => { ended = err; });
    sink.write({ seq: 5, sample_time_ms: 1, cpu_percent: 1, mem_percent: 1 });
    await waitFor('the ack', () => acks.length === 1);
    fail?.();
    await waitFor('the stream to end', () => ended !== 'not yet');
    expect(ended).toMatchObject({ code: grpc.status.UNAVAILABLE, details: 'draining' });
    expect((await bounded(c.register(req('i-1'), {}, 5_000), 'register after')).session_id).toBe('s-i-1');
    expect(server.connectionCount).toBe(1);
  });

  it('the connection dropping ends the stream UNAVAILABLE "Connection dropped"; the next call tries a new connection', async () => {
    const { c, server } = await startWithServer({});
    expect((await bounded(c.register(req('i-1'), {}, 5_000), 'register')).session_id).toBe('s-i-1');
    let ended: unknown = 'not yet';
    c.heartbeats({}, () => {}, (err) => { ended = err; });
    server.forceShutdown();
    await waitFor('the stream to end', () => ended !== 'not yet');
    expect(ended).toMatchObject({ code: grpc.status.UNAVAILABLE, details: expect.stringMatching(/^Connection dropped/) as string });
    const err = await bounded(c.register(req('i-1'), {}, 5_000).then(() => undefined, (e: unknown) => e as GrpcCallError), 'register after');
    expect(err).toMatchObject({ code: grpc.status.UNAVAILABLE, details: expect.stringMatching(/^No connection established/) as string });
  });
});

describe('against grpc-js over h2c', () => {
  it('Register and acked heartbeats, as with grpc-js clients', async () => {
    const server = new grpc.Server();
    server.addService(svc, {
      Register: (call: grpc.ServerUnaryCall<RegisterRequest__Output, RegisterResponse>, cb: grpc.sendUnaryData<RegisterResponse>) => cb(null, { session_id: `g-${call.request.instance_id}` }),
      Heartbeats: (call: grpc.ServerDuplexStream<Heartbeat__Output, HeartbeatAck>) => { call.on('data', (hb: Heartbeat__Output) => call.write({ persisted_seq: hb.seq })); },
      Deregister: (_call: unknown, cb: grpc.sendUnaryData<object>) => cb(null, {}),
    });
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
    cleanup.push(() => { server.forceShutdown(); });
    const c = new RawMonitorClient(h2ClientConfig(`127.0.0.1:${port}`, undefined, Date.now()));
    cleanup.push(() => c.close());
    expect((await bounded(c.register(req('i-9'), {}, 5_000), 'register')).session_id).toBe('g-i-9');
    const acks: string[] = [];
    const sink = c.heartbeats({}, (a) => acks.push(a.persisted_seq), () => {});
    for (let i = 1; i <= 3; i++) sink.write({ seq: i, sample_time_ms: i, cpu_percent: 1, mem_percent: 1 });
    await waitFor('three acks', () => acks.length === 3);
    expect(acks).toEqual(['1', '2', '3']);
  });
});

describe('against a bare node:http2 server (what a gRPC server may do that ours does not)', () => {
  /** An h2c server whose streams `onStream` answers; the client is connected to it. */
  async function h2Server(onStream: (stream: http2.ServerHttp2Stream) => void, settings: http2.Settings = {}): Promise<RawMonitorClient> {
    const server = http2.createServer({ settings });
    server.on('stream', (stream) => {
      // A stream closed with an error code (RST_STREAM) emits 'error' on this side too: expected here.
      stream.on('error', () => {});
      onStream(stream);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const port = (server.address() as { port: number }).port;
    cleanup.push(() => new Promise<void>((resolve) => { server.close(() => resolve()); }));
    const c = new RawMonitorClient(h2ClientConfig(`127.0.0.1:${port}`, undefined, Date.now()));
    cleanup.push(() => c.close());
    return c;
  }

  it('a stream window of 64 bytes: heartbeats wait for WINDOW_UPDATE, and every one arrives in order', async () => {
    const seqs: number[] = [];
    const c = await h2Server((stream) => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
      const decoder = new MessageDecoder(1 << 20);
      stream.on('data', (chunk: Buffer) => {
        const out: Buffer[] = [];
        decoder.push(chunk, out);
        for (const m of out) seqs.push(Number(svc.Heartbeats.requestDeserialize(m).seq));
      });
    }, { initialWindowSize: 64 });
    let ended: unknown = 'not yet';
    const sink = c.heartbeats({}, () => {}, (err) => { ended = err; });
    const beat = (i: number) => sink.write({ seq: i, sample_time_ms: i, cpu_percent: 12.5, mem_percent: 40.25 });
    // The first one goes out before the server's SETTINGS (the default window applies until they are acked); the rest after.
    beat(1);
    await waitFor('the first heartbeat at the server', () => seqs.length === 1);
    for (let i = 2; i <= 50; i++) beat(i);
    await waitFor('50 heartbeats at the server', () => seqs.length === 50);
    expect(seqs).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    expect(ended).toBe('not yet');
  });

  it.each([
    { name: '404 (a static index): UNIMPLEMENTED', status: 404, code: grpc.status.UNIMPLEMENTED },
    { name: '503 (a literal): UNAVAILABLE', status: 503, code: grpc.status.UNAVAILABLE },
  ])('an HTTP status other than 200 maps as grpc-js maps it: $name', async ({ status, code }) => {
    const c = await h2Server((stream) => stream.respond({ ':status': status }, { endStream: true }));
    const err = await bounded(c.register(req('i-1'), {}, 5_000).then(() => undefined, (e: unknown) => e as GrpcCallError), 'status');
    expect(err).toMatchObject({ code, details: `Received HTTP status code ${status}` });
  });

  it('RST_STREAM REFUSED_STREAM: UNAVAILABLE "Stream refused by server"', async () => {
    const c = await h2Server((stream) => stream.close(http2.constants.NGHTTP2_REFUSED_STREAM));
    const err = await bounded(c.register(req('i-1'), {}, 5_000).then(() => undefined, (e: unknown) => e as GrpcCallError), 'reset');
    expect(err).toMatchObject({ code: grpc.status.UNAVAILABLE, details: 'Stream refused by server' });
  });

  it('trailers without grpc-status: UNKNOWN', async () => {
    const c = await h2Server((stream) => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'x-other': '1' }));
      stream.end();
    });
    const err = await bounded(c.register(req('i-1'), {}, 5_000).then(() => undefined, (e: unknown) => e as GrpcCallError), 'trailers');
    expect(err).toMatchObject({ code: grpc.status.UNKNOWN, details: 'trailers without grpc-status' });
  });
});

describe('no server', () => {
  it('Register fails UNAVAILABLE, "No connection established"', async () => {
    const probe = createServer();
    const port = await new Promise<number>((resolve) => probe.listen(0, '127.0.0.1', () => resolve((probe.address() as { port: number }).port)));
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const c = new RawMonitorClient(h2ClientConfig(`127.0.0.1:${port}`, undefined, Date.now()));
    cleanup.push(() => c.close());
    const err = await bounded(c.register(req('i-1'), {}, 5_000).then(() => undefined, (e: unknown) => e as GrpcCallError), 'refusal');
    expect(err).toMatchObject({ code: grpc.status.UNAVAILABLE, details: expect.stringMatching(/^No connection established/) as string });
  });
});
