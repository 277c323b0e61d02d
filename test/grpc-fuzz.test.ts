/**
 * fast-check fuzzing of the gRPC boundary (issue 7, Acceptance): generated Register, Heartbeats
 * and Deregister calls, valid and not (odd ids and lengths, NaN/Infinity/huge/negative metrics,
 * seqs around 0, 2^48, 2^53 and 2^64, out of order, far-off timestamps, oversized strings and
 * messages, bytes that are no protobuf message at all), sent through grpc-js to a real in-process
 * MonitorServer on 127.0.0.1:0. Properties: every call ends with a documented status, nothing
 * invalid is stored, no handler throws (internalError stays 0), and the server still acks a valid
 * heartbeat at the end. Seeded: the same messages on every run.
 */
import * as grpc from '@grpc/grpc-js';
import fc from 'fast-check';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadMonitorServerConfig } from '../config/monitor-server.js';
import { SESSION_METADATA_KEY, monitorProto, type HeartbeatAck__Output } from '../lib/proto.js';
import { AGENT_KEY_METADATA_KEY } from '../lib/tls.js';
import { ManualClock, captureLogger, testGroup } from '../lib/testing.js';
import { MAX_SEQ, MonitorServer, type MonitorServerHandle } from '../monitor-server/server.js';
import { openStore, type Db } from '../store/db.js';
import { GroupStore } from '../store/groups.js';
import { InstanceStore } from '../store/instances.js';
import { tempDir, waitFor } from './helpers.js';

const SEED = 20_260_701;
const NUM_RUNS = 600;
/** Deadline of each call: a call the server never answers fails the property. */
const CALL_DEADLINE_MS = 10_000;

/** Instances the store knows (launched by "the controller"); everything else must be refused. */
const KNOWN = ['i-1', 'i-2', 'i-3', 'web.node_7', 'x'] as const;
const KNOWN_API = 'a-1';
const TERMINATED = 'gone';
/** Kept out of the fuzz: the final check registers it. */
const FINAL = 'final-1';
/** The agent key most generated calls send, so their registrations supersede each other like one reconnecting agent. */
const AGENT_KEY = '0123456789abcdef0123456789abcdef';

/** Status codes the server documents for its refusals (and OK). */
const DOCUMENTED: ReadonlySet<grpc.status> = new Set([
  grpc.status.OK, grpc.status.INVALID_ARGUMENT, grpc.status.NOT_FOUND, grpc.status.FAILED_PRECONDITION, grpc.status.PERMISSION_DENIED,
  grpc.status.UNAUTHENTICATED, grpc.status.ALREADY_EXISTS, grpc.status.RESOURCE_EXHAUSTED, grpc.status.ABORTED, grpc.status.UNAVAILABLE,
]);
/** grpc-js's own answer to bytes that do not decode as the request message (before any handler runs). */
const UNDECODABLE = { code: grpc.status.INTERNAL, details: 'Error deserializing request' };

const service = monitorProto().monitor.v1.Monitor.service;
const PATH = { register: service.Register.path, heartbeats: service.Heartbeats.path, deregister: service.Deregister.path };

// ---- generators ---------------------------------------------------------------------------

const weirdChars = fc.constantFrom('\u0000', '\u001b[31m', '\u202e', '\n', ' ', '/', '..', '%', '@', 'é', '💥', '\ud800', '"', "'", ';', '*');
const longString = fc.tuple(fc.constantFrom('x', 'é', '💥', '\u0000'), fc.integer({ min: 60, max: 20_000 })).map(([c, n]) => c.repeat(n));
const oddString = fc.oneof(
  fc.string({ maxLength: 80 }),
  fc.string({ unit: 'binary', maxLength: 80 }),
  fc.array(weirdChars, { maxLength: 8 }).map((a) => a.join('')),
  longString,
);
const idArb = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...KNOWN) },
  { weight: 1, arbitrary: fc.constantFrom(KNOWN_API, TERMINATED) },
  { weight: 2, arbitrary: fc.stringMatching(/^[A-Za-z0-9._-]{1,63}$/) },
  { weight: 1, arbitrary: fc.constantFrom('', 'a'.repeat(63), 'a'.repeat(64), '-', '.', '..', 'i-1 ', ' i-1', 'I-1', 'i-1\u0000') },
  { weight: 2, arbitrary: oddString },
);
const groupArb = fc.oneof({ weight: 6, arbitrary: fc.constant('web') }, fc.constantFrom('api', 'nope', '', 'WEB'), oddString);
const metricArb = fc.oneof(
  { weight: 4, arbitrary: fc.double({ min: 0, max: 100, noNaN: true }) },
  { weight: 2, arbitrary: fc.double() },
  { weight: 1, arbitrary: fc.constantFrom(Number.NaN, Infinity, -Infinity, -0, -1e-300, 100.000_000_1, Number.MAX_VALUE, -Number.MAX_VALUE, 5e-324) },
);
/** Seqs as the wire carries them (uint64, sent as a decimal string so nothing is rounded). */
const absoluteSeq = fc.oneof(
  fc.constantFrom(0n, 1n, 2n, 2n ** 48n - 1n, 2n ** 48n, 2n ** 48n + 1n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 53n + 1n, 2n ** 63n, 2n ** 64n - 1n),
  fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
);
type SeqSpec = { kind: 'next' } | { kind: 'relative'; delta: number } | { kind: 'absolute'; value: bigint };
const seqArb: fc.Arbitrary<SeqSpec> = fc.oneof(
  { weight: 6, arbitrary: fc.constant({ kind: 'next' as const }) },
  { weight: 2, arbitrary: fc.integer({ min: -5, max: 5 }).map((delta) => ({ kind: 'relative' as const, delta })) },
  { weight: 2, arbitrary: absoluteSeq.map((value) => ({ kind: 'absolute' as const, value })) },
);
/** Offset of sample_time_ms from server time: mostly near, some beyond the 5 min skew, some absurd. */
const timeArb = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: -2_000, max: 2_000 }) },
  { weight: 2, arbitrary: fc.integer({ min: -600_000, max: 600_000 }) },
  { weight: 1, arbitrary: fc.constantFrom(-1_700_000_000_000, 2 ** 62, -(2 ** 62), 300_000, 300_001, -300_001) },
);

interface HeartbeatSpec { seq: SeqSpec; at: number; cpu: number; mem: number; padding: number }
/** What an agent sends: the next seq, now, metrics in range. */
const validHeartbeatArb: fc.Arbitrary<HeartbeatSpec> = fc.record({
  seq: fc.constant({ kind: 'next' as const }), at: fc.integer({ min: -1_000, max: 1_000 }),
  cpu: fc.double({ min: 0, max: 100, noNaN: true }), mem: fc.double({ min: 0, max: 100, noNaN: true }), padding: fc.constant(0),
});
const fuzzedHeartbeatArb: fc.Arbitrary<HeartbeatSpec> = fc.record({
  seq: seqArb, at: timeArb, cpu: metricArb, mem: metricArb,
  // Bytes of an unknown field appended: decoders skip it, the size limit must not.
  padding: fc.oneof({ weight: 9, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 20_000 }) }),
});
const heartbeatArb = fc.oneof({ weight: 3, arbitrary: validHeartbeatArb }, { weight: 2, arbitrary: fuzzedHeartbeatArb });
type StreamMessage = { kind: 'heartbeat'; hb: HeartbeatSpec } | { kind: 'raw'; bytes: Uint8Array };
const streamMessageArb: fc.Arbitrary<StreamMessage> = fc.oneof(
  { weight: 12, arbitrary: heartbeatArb.map((hb) => ({ kind: 'heartbeat' as const, hb })) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }).map((bytes) => ({ kind: 'raw' as const, bytes })) },
);

/** agent-key metadata: ours, another valid one, a malformed one, or none. */
const printable = fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 200 });
const agentKeyArb = fc.oneof(
  { weight: 8, arbitrary: fc.constant(AGENT_KEY) },
  { weight: 1, arbitrary: fc.constant(undefined) },
  { weight: 1, arbitrary: fc.stringMatching(/^[A-Za-z0-9_-]{16,40}$/) },
  { weight: 1, arbitrary: printable },
);

type Command =
  | { kind: 'register'; instanceId: string; groupId: string; address: string; agentVersion: string; agentKey: string | undefined }
  | { kind: 'stream'; session: 'last' | string; agentKey: string | undefined; messages: StreamMessage[] }
  | { kind: 'deregister'; session: 'last' | string; instanceId: string | 'last'; reason: string; agentKey: string | undefined }
  | { kind: 'raw'; method: 'register' | 'deregister'; bytes: Uint8Array };

/** Most runs open with a Register an agent would send, so their streams get past the session check. */
const openingArb: fc.Arbitrary<Command | undefined> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...KNOWN).map((instanceId) => ({ kind: 'register' as const, instanceId, groupId: 'web', address: '127.0.0.1', agentVersion: 'fuzz', agentKey: AGENT_KEY })) },
  { weight: 1, arbitrary: fc.constant(undefined) },
);

const commandArb: fc.Arbitrary<Command> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('register' as const), instanceId: idArb, groupId: groupArb,
      address: fc.oneof({ weight: 4, arbitrary: fc.constant('127.0.0.1') }, oddString),
      agentVersion: fc.oneof({ weight: 4, arbitrary: fc.constant('fuzz') }, oddString),
      agentKey: agentKeyArb,
    }),
  },
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('stream' as const),
      session: fc.oneof({ weight: 6, arbitrary: fc.constant('last') }, fc.uuid(), printable),
      agentKey: agentKeyArb,
      messages: fc.array(streamMessageArb, { maxLength: 60 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('deregister' as const),
      session: fc.oneof({ weight: 3, arbitrary: fc.constant('last') }, fc.uuid()),
      instanceId: fc.oneof({ weight: 3, arbitrary: fc.constant('last') }, idArb),
      reason: oddString, agentKey: agentKeyArb,
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('raw' as const), method: fc.constantFrom('register' as const, 'deregister' as const), bytes: fc.uint8Array({ maxLength: 256 }) }),
  },
);

// ---- driving the server -------------------------------------------------------------------

let db: Db;
let clock: ManualClock;
let handle: MonitorServerHandle;
let client: grpc.Client;

beforeAll(async () => {
  const dbPath = join(tempDir('autoscaler-fuzz-'), 'a.db');
  db = openStore(dbPath);
  clock = new ManualClock();
  const now = clock.now();
  new GroupStore(db).upsert(testGroup({ id: 'web' }), now);
  new GroupStore(db).upsert(testGroup({ id: 'api' }), now);
  const instances = new InstanceStore(db);
  instances.insertLaunched('web', [...KNOWN, TERMINATED, FINAL].map((id) => ({ id, providerState: 'running' })), 'launched', 'test', now);
  instances.insertLaunched('api', [{ id: KNOWN_API, providerState: 'running' }], 'launched', 'test', now);
  instances.setState(TERMINATED, 'terminated', 'scale in', now);
  const cfg = loadMonitorServerConfig({ env: {
    AUTOSCALER_DB: dbPath, MONITOR_GRPC_PORT: '0', MONITOR_HTTP_PORT: '0', MONITOR_FLUSH_INTERVAL_MS: '20', MONITOR_STARTUP_GRACE_MS: '0',
  } });
  handle = await new MonitorServer(cfg, db, clock, captureLogger('warn').log).start();
  client = new grpc.Client(`127.0.0.1:${handle.grpcPort}`, grpc.credentials.createInsecure());
});

afterAll(async () => {
  client?.close();
  await handle?.close();
  db?.close();
});

/** protobuf tag of an unknown length-delimited field 15, then a varint length. */
function unknownField(n: number): Buffer {
  const len: number[] = [];
  for (let v = n; ; v = Math.floor(v / 128)) {
    if (v < 128) { len.push(v); break; }
    len.push((v % 128) | 0x80);
  }
  return Buffer.concat([Buffer.from([0x7a, ...len]), Buffer.alloc(n, 0x41)]);
}

interface Outcome { method: string; code: grpc.status; details: string; raw: boolean }

function metadata(agentKey: string | undefined, session?: string): grpc.Metadata {
  const md = new grpc.Metadata();
  if (agentKey !== undefined) md.set(AGENT_KEY_METADATA_KEY, agentKey);
  if (session !== undefined) md.set(SESSION_METADATA_KEY, session);
  return md;
}

const identity = (b: Buffer) => b;

function unary<Res>(method: 'register' | 'deregister', bytes: Buffer, md: grpc.Metadata, decode: (b: Buffer) => Res): Promise<{ code: grpc.status; details: string; res?: Res }> {
  return new Promise((resolve) => {
    client.makeUnaryRequest(PATH[method], identity, decode, bytes, md, { deadline: Date.now() + CALL_DEADLINE_MS }, (err, res) =>
      resolve(err ? { code: err.code, details: err.details } : { code: grpc.status.OK, details: '', ...(res !== undefined ? { res } : {}) }));
  });
}

/** Per run: the last session a Register opened, and the next seq to send on it. */
interface RunState { session: string | undefined; instanceId: string | undefined; nextSeq: bigint }

function heartbeatBytes(hb: HeartbeatSpec, st: RunState): Buffer {
  const seq = hb.seq.kind === 'next' ? st.nextSeq++ : hb.seq.kind === 'relative' ? st.nextSeq - 1n + BigInt(hb.seq.delta) : hb.seq.value;
  // uint64 on the wire: a negative relative seq becomes its two's complement, as a buggy agent would send it.
  const wire = ((seq % 2n ** 64n) + 2n ** 64n) % 2n ** 64n;
  const body = service.Heartbeats.requestSerialize({
    seq: wire.toString(), sample_time_ms: String(clock.now() + hb.at), cpu_percent: hb.cpu, mem_percent: hb.mem,
  });
  return hb.padding > 0 ? Buffer.concat([body, unknownField(hb.padding)]) : body;
}

function stream(cmd: Extract<Command, { kind: 'stream' }>, st: RunState): Promise<Outcome> {
  const session = cmd.session === 'last' ? (st.session ?? 'no-session') : cmd.session;
  const raw = cmd.messages.some((m) => m.kind === 'raw');
  return new Promise((resolve) => {
    const call = client.makeBidiStreamRequest(PATH.heartbeats, identity, service.Heartbeats.responseDeserialize, metadata(cmd.agentKey, session),
      { deadline: Date.now() + CALL_DEADLINE_MS });
    call.on('data', (_ack: HeartbeatAck__Output) => {});
    call.on('error', () => {}); // the status event carries the outcome
    call.on('status', (s: grpc.StatusObject) => resolve({ method: 'Heartbeats', code: s.code, details: s.details, raw }));
    for (const m of cmd.messages) call.write(m.kind === 'raw' ? Buffer.from(m.bytes) : heartbeatBytes(m.hb, st));
    call.end();
  });
}

async function run(cmd: Command, st: RunState): Promise<Outcome> {
  switch (cmd.kind) {
    case 'register': {
      const bytes = service.Register.requestSerialize({ instance_id: cmd.instanceId, group_id: cmd.groupId, agent_version: cmd.agentVersion, address: cmd.address });
      const r = await unary('register', bytes, metadata(cmd.agentKey), service.Register.responseDeserialize);
      if (r.res !== undefined) {
        st.session = r.res.session_id;
        st.instanceId = cmd.instanceId;
        st.nextSeq = BigInt(r.res.last_seq) + 1n;
      }
      return { method: 'Register', code: r.code, details: r.details, raw: false };
    }
    case 'stream':
      return stream(cmd, st);
    case 'deregister': {
      const bytes = service.Deregister.requestSerialize({
        session_id: cmd.session === 'last' ? (st.session ?? '') : cmd.session,
        instance_id: cmd.instanceId === 'last' ? (st.instanceId ?? '') : cmd.instanceId, reason: cmd.reason,
      });
      const r = await unary('deregister', bytes, metadata(cmd.agentKey), service.Deregister.responseDeserialize);
      return { method: 'Deregister', code: r.code, details: r.details, raw: false };
    }
    case 'raw': {
      const decode = cmd.method === 'register' ? service.Register.responseDeserialize : service.Deregister.responseDeserialize;
      const r = await unary(cmd.method, Buffer.from(cmd.bytes), metadata(AGENT_KEY), decode);
      return { method: `raw ${cmd.method}`, code: r.code, details: r.details, raw: true };
    }
  }
}

/** What the store must never hold, whatever was sent. Returns the offending rows. */
function invalidRows(): Record<string, unknown[]> {
  const known = [...KNOWN, KNOWN_API, TERMINATED, FINAL];
  const marks = known.map(() => '?').join(',');
  const range = `NOT (cpu >= 0 AND cpu <= 100 AND mem >= 0 AND mem <= 100 AND seq >= 1 AND seq <= ${MAX_SEQ})`;
  return Object.fromEntries(Object.entries({
    badSamples: db.prepare(`SELECT * FROM samples WHERE ${range} OR instance_id NOT IN (${marks}) LIMIT 5`).all(...known),
    badLatest: db.prepare(`SELECT * FROM latest WHERE ${range} OR instance_id NOT IN (${marks}) LIMIT 5`).all(...known),
    strangers: db.prepare(`SELECT id FROM instances WHERE id NOT IN (${marks}) LIMIT 5`).all(...known),
    duplicateSeqs: db.prepare('SELECT instance_id, seq, COUNT(*) AS n FROM samples GROUP BY instance_id, seq HAVING n > 1 LIMIT 5').all(),
    terminatedSamples: db.prepare('SELECT * FROM samples WHERE instance_id = ? LIMIT 5').all(TERMINATED),
  }).filter(([, rows]) => rows.length > 0));
}

describe('gRPC boundary under fast-check', () => {
  it('every generated call ends with a documented status, nothing invalid is stored, the server keeps serving', async () => {
    const codes = new Map<string, number>();
    let messages = 0;
    let calls = 0;
    await fc.assert(
      fc.asyncProperty(openingArb, fc.array(commandArb, { minLength: 1, maxLength: 6 }), async (opening, rest) => {
        const commands = opening === undefined ? rest : [opening, ...rest];
        clock.advance(1_000); // the rate limiter refills; sessions without a stream expire after 30 runs
        const st: RunState = { session: undefined, instanceId: undefined, nextSeq: 1n };
        for (const cmd of commands) {
          const o = await run(cmd, st);
          calls++;
          if (cmd.kind === 'stream') messages += cmd.messages.length;
          else messages++;
          const key = `${o.method} ${grpc.status[o.code]}`;
          codes.set(key, (codes.get(key) ?? 0) + 1);
          const documented = DOCUMENTED.has(o.code) || (o.raw && o.code === UNDECODABLE.code && o.details === UNDECODABLE.details);
          if (!documented) throw new Error(`${o.method} ended with ${grpc.status[o.code]} "${o.details}" for ${JSON.stringify(cmd, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v)).slice(0, 500)}`);
        }
        const bad = invalidRows();
        if (Object.keys(bad).length > 0) throw new Error(`stored invalid rows: ${JSON.stringify(bad).slice(0, 1_000)}`);
      }),
      { seed: SEED, numRuns: NUM_RUNS, endOnFailure: true, interruptAfterTimeLimit: 60_000 },
    );
    const stats = handle.stats();
    console.log(JSON.stringify({ runs: NUM_RUNS, calls, messages, codes: Object.fromEntries([...codes].sort()), refused: Object.fromEntries(Object.entries(stats.refused).filter(([, n]) => n > 0)), storedRows: stats.storedRows }));
    expect(stats.refused.internalError).toBe(0);
    expect(messages).toBeGreaterThan(5_000);
    // Both sides of the boundary were exercised: plenty stored, plenty refused.
    expect(stats.storedRows).toBeGreaterThan(500);
    expect(codes.get('Heartbeats OK') ?? 0).toBeGreaterThan(100);
    expect(stats.refused.registerUnknown + stats.refused.registerInvalid).toBeGreaterThan(50);

    // Still up: a fresh instance registers, streams a valid heartbeat, and is acked.
    const reg = await unary('register', service.Register.requestSerialize({ instance_id: FINAL, group_id: 'web', agent_version: 'final', address: '' }),
      metadata(AGENT_KEY), service.Register.responseDeserialize);
    expect(reg.code).toBe(grpc.status.OK);
    const call = client.makeBidiStreamRequest(PATH.heartbeats, identity, service.Heartbeats.responseDeserialize, metadata(AGENT_KEY, reg.res?.session_id ?? ''));
    const acks: HeartbeatAck__Output[] = [];
    call.on('data', (a: HeartbeatAck__Output) => acks.push(a));
    call.on('error', () => {});
    call.write(service.Heartbeats.requestSerialize({ seq: 1, sample_time_ms: clock.now(), cpu_percent: 12.5, mem_percent: 40 }));
    await waitFor('the final heartbeat acked', () => acks.some((a) => a.persisted_seq === '1' && a.rejected === 0));
    call.end();
    expect(db.prepare('SELECT seq, cpu, mem FROM samples WHERE instance_id = ?').all(FINAL)).toEqual([{ seq: 1, cpu: 12.5, mem: 40 }]);
    expect(invalidRows()).toEqual({});
  }, 90_000);
});
