/**
 * Regression tests for issue 7 ("nothing a client sends can stop or swell the monitor server;
 * backpressure instead of loss"): each reproduces one finding against a real server on
 * 127.0.0.1:0 with a temp-file SQLite store.
 */
import * as grpc from '@grpc/grpc-js';
import { request as httpRequest, Agent as HttpAgent } from 'node:http';
import { connect as h2connect } from 'node:http2';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { formatEntry } from '../cli/events.js';
import { TimelineReader } from '../store/timeline.js';
import { formatStatus } from '../cli/format.js';
import { loadMonitorServerConfig } from '../config/monitor-server.js';
import { SESSION_METADATA_KEY, monitorProto, type HeartbeatAck__Output, type MonitorClient } from '../lib/proto.js';
import { ManualClock, captureLogger, testGroup } from '../lib/testing.js';
import { MonitorServer, type MonitorServerHandle } from '../monitor-server/server.js';
import { openStore, type Db } from '../store/db.js';
import { EventStore } from '../store/events.js';
import { GroupStore } from '../store/groups.js';
import { InstanceStore } from '../store/instances.js';
import { StatusReader } from '../store/status.js';
import { tempDir, waitFor } from './helpers.js';

interface Harness {
  readonly db: Db;
  readonly clock: ManualClock;
  readonly handle: MonitorServerHandle;
  readonly lines: Record<string, unknown>[];
  readonly clients: MonitorClient[];
  client(options?: grpc.ChannelOptions): MonitorClient;
}

let h: Harness | undefined;

async function start(env: Record<string, string> = {}): Promise<Harness> {
  const dbPath = join(tempDir(), 'a.db');
  const db = openStore(dbPath);
  new GroupStore(db).upsert(testGroup(), 0);
  const clock = new ManualClock();
  const cfg = loadMonitorServerConfig({ env: { AUTOSCALER_DB: dbPath, MONITOR_GRPC_PORT: '0', MONITOR_HTTP_PORT: '0', MONITOR_FLUSH_INTERVAL_MS: '20', MONITOR_ACK_INTERVAL_MS: '0', MONITOR_FAILURE_DETECTOR: 'timeout', ...env } });
  const { log, lines } = captureLogger('warn');
  const handle = await new MonitorServer(cfg, db, clock, log).start();
  const clients: MonitorClient[] = [];
  const Ctor = monitorProto().monitor.v1.Monitor;
  const harness: Harness = {
    db, clock, handle, lines, clients,
    client: (options = {}) => {
      const c = new Ctor(`127.0.0.1:${handle.grpcPort}`, grpc.credentials.createInsecure(), options);
      clients.push(c);
      return c;
    },
  };
  h = harness;
  return harness;
}

afterEach(async () => {
  if (h === undefined) return;
  for (const c of h.clients) c.close();
  await h.handle.close();
  h.db.close();
  h = undefined;
});

function register(client: MonitorClient, instanceId: string) {
  // Register refuses ids the store does not know: record each as the controller does on a launch.
  const instances = new InstanceStore((h as Harness).db);
  if (instances.get(instanceId) === undefined) instances.insertLaunched('web', [{ id: instanceId, providerState: 'running' }], 'launched', 'test', (h as Harness).clock.now());
  return new Promise<{ session_id: string; last_seq: string }>((resolve, reject) =>
    client.Register({ instance_id: instanceId, group_id: 'web', agent_version: 'test', address: '127.0.0.1' }, (err, res) => (err || !res ? reject(err) : resolve(res))));
}

function openStream(client: MonitorClient, sessionId: string, read = true) {
  const md = new grpc.Metadata();
  md.set(SESSION_METADATA_KEY, sessionId);
  const stream = client.Heartbeats(md);
  const acks: HeartbeatAck__Output[] = [];
  let error: grpc.ServiceError | undefined;
  if (read) stream.on('data', (a: HeartbeatAck__Output) => acks.push(a));
  stream.on('error', (e: grpc.ServiceError) => { error = e; });
  const maxAcked = () => acks.reduce((m, a) => Math.max(m, Number(a.persisted_seq)), 0);
  const rejected = () => acks.reduce((n, a) => n + a.rejected, 0);
  return { stream, acks, maxAcked, rejected, error: () => error };
}

const beat = (clock: ManualClock, seq: number | string, cpu = 40) => ({ seq, sample_time_ms: clock.now(), cpu_percent: cpu, mem_percent: 30 });

function storedSeqs(db: Db, instanceId: string): number[] {
  return db.prepare('SELECT seq FROM samples WHERE instance_id = ? ORDER BY seq').all(instanceId).map((r) => (r as { seq: number }).seq);
}

/** A raw HTTP/1.1 request with the path sent exactly as given (no URL normalization). */
function rawGet(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, method: 'GET' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('HTTP: no request stops the server', () => {
  it.each([
    { name: 'double slash', path: '//', status: 404 },
    { name: 'double slash and a bad escape', path: '//%', status: 404 },
    { name: 'double slash and an at sign', path: '//@', status: 404 },
    { name: 'bad escapes in the query', path: '/api/status?group=%&decisions=%zz', status: 400 },
    { name: 'a group that is not an id', path: '/api/status?group=../../etc', status: 400 },
    { name: 'a target that is not a path', path: 'healthz', status: 400 },
  ])('$name answers $status and the server keeps serving', async ({ path, status }) => {
    const { handle } = await start();
    const res = await rawGet(handle.httpPort, path);
    expect(res.status).toBe(status);
    expect((await rawGet(handle.httpPort, '/healthz')).status).toBe(200);
    expect(handle.stats().refused.httpBadRequest).toBe(1);
  });

  it('a request the HTTP parser refuses gets 400 on its socket only; gRPC stays up', async () => {
    const harness = await start();
    const answer = await new Promise<string>((resolve, reject) => {
      const sock = connect(harness.handle.httpPort, '127.0.0.1', () => sock.write('GET / HTTP/1.1\r\nthis is not a header\r\n\r\n'));
      let got = '';
      sock.on('data', (b: Buffer) => { got += b.toString('latin1'); });
      sock.on('close', () => resolve(got));
      sock.on('error', reject);
    });
    expect(answer).toMatch(/^HTTP\/1\.1 400/);
    expect((await rawGet(harness.handle.httpPort, '/healthz')).status).toBe(200);
    await expect(register(harness.client(), 'i-1')).resolves.toHaveProperty('session_id');
  });
});

describe('seq is bounded', () => {
  it.each([
    { name: '2^53 - 1', seq: String(2 ** 53 - 1), reason: 'seqAboveMax' },
    { name: 'uint64 max', seq: '18446744073709551615', reason: 'seqAboveMax' },
    { name: 'just above 2^48', seq: String(2 ** 48 + 1), reason: 'seqAboveMax' },
    { name: 'more than MONITOR_MAX_SEQ_AHEAD above the accepted seq', seq: String(1 + 1_000 + 1), reason: 'seqTooFarAhead' },
  ])('a seq of $name is refused, never stored, and the agent carries on', async ({ seq, reason }) => {
    const { db, clock, handle, client } = await start({ MONITOR_MAX_SEQ_AHEAD: '1000' });
    const c = client();
    const reg = await register(c, 'i-1');
    const s = openStream(c, reg.session_id);
    s.stream.write(beat(clock, 1));
    s.stream.write(beat(clock, seq));
    s.stream.write(beat(clock, 2));
    s.stream.write(beat(clock, 3));
    await waitFor('ack of 3', () => s.maxAcked() === 3 && s.rejected() === 1);
    // Never acked past what the agent really sent: persisted_seq stays at 3.
    expect(s.acks.every((a) => Number(a.persisted_seq) <= 3)).toBe(true);
    expect(storedSeqs(db, 'i-1')).toEqual([1, 2, 3]);
    expect(handle.stats().refused[reason as 'seqAboveMax']).toBe(1);
    s.stream.cancel();
    await waitFor('stream closed', () => handle.stats().streams === 0);
    const again = await register(c, 'i-1');
    expect(again.last_seq).toBe('3');
    const t = openStream(c, again.session_id);
    t.stream.write(beat(clock, 4));
    await waitFor('ack of 4', () => t.maxAcked() === 4);
    expect(storedSeqs(db, 'i-1')).toEqual([1, 2, 3, 4]);
    t.stream.end();
  });
});

describe('liveness follows valid heartbeats only', () => {
  it('an instance whose heartbeats are all refused goes suspect, then dead, like a silent one', async () => {
    const { db, clock, client } = await start();
    const c = client();
    const instances = new InstanceStore(db);
    const reg = await register(c, 'i-1');
    const s = openStream(c, reg.session_id);
    s.stream.write(beat(clock, 1));
    await waitFor('ack of 1', () => s.maxAcked() === 1);
    let seq = 1;
    const refusedAfter = async (ms: number) => {
      clock.advance(ms);
      const before = s.rejected();
      s.stream.write(beat(clock, ++seq, 140));
      await waitFor('refusal acked', () => s.rejected() > before);
    };
    await refusedAfter(1_000);
    await refusedAfter(1_000);
    await refusedAfter(1_000); // 3 s since the last valid heartbeat
    await waitFor('suspect', () => instances.get('i-1')?.state === 'suspect');
    await refusedAfter(1_000);
    await refusedAfter(1_000); // 5 s
    await waitFor('dead', () => instances.get('i-1')?.state === 'dead');
    expect(instances.get('i-1')?.cpu).toBe(40); // the refused "cpu 140" was never stored
    s.stream.end();
  });
});

describe('refused input is logged at a bounded rate and counted', () => {
  it('20 streams sending 250 refused heartbeats each write one line per instance per interval, with the rest counted', async () => {
    const { clock, handle, lines, client } = await start({ MONITOR_REFUSED_LOG_INTERVAL_MS: '10000' });
    const c = client();
    const streams = await Promise.all(Array.from({ length: 20 }, async (_, i) => {
      const reg = await register(c, `i-${i}`);
      return openStream(c, reg.session_id);
    }));
    for (const s of streams) for (let seq = 1; seq <= 250; seq++) s.stream.write(beat(clock, seq, 140));
    await waitFor('all refusals acked', () => streams.every((s) => s.rejected() === 250), 15_000);
    const bytes = lines.reduce((n, l) => n + JSON.stringify(l).length + 1, 0);
    const linesBefore = lines.length;
    const refusedLines = lines.filter((l) => l.msg === 'heartbeat refused');
    expect(refusedLines).toHaveLength(20);
    expect(bytes).toBeLessThan(20 * 512);
    expect(handle.stats().refused.cpuOutOfRange).toBe(20 * 250);
    expect(handle.stats().logSuppressed).toBe(20 * 249);
    // After the interval, what was held back is reported with its count.
    clock.advance(10_000);
    await waitFor('suppressed counts reported', () => {
      const reported = lines.reduce((n, l) => n + (typeof l.suppressed === 'number' ? l.suppressed : 0), 0);
      return reported === 20 * 249;
    });
    console.info(`refused flood: ${20 * 250} refused heartbeats, ${linesBefore} log lines, ${bytes} bytes before the summary`);
    for (const s of streams) s.stream.end();
  });
});

describe('ingest: backpressure instead of loss', () => {
  it('512 streams on 16 connections against a 400-row queue: every acked heartbeat stored exactly once, an honest agent still acked', async () => {
    const PER_STREAM = 100;
    const { db, clock, handle, client } = await start({ MONITOR_MAX_QUEUED_ROWS: '400', MONITOR_FLUSH_MAX_ROWS: '200' });
    const conns = Array.from({ length: 16 }, (_, i) => client({ 'grpc.use_local_subchannel_pool': 1, 'grpc.primary_user_agent': `flood-${i}` }));
    const honestClient = client({ 'grpc.use_local_subchannel_pool': 1 });
    const honest = openStream(honestClient, (await register(honestClient, 'honest')).session_id);
    const flood = await Promise.all(Array.from({ length: 512 }, async (_, i) => {
      const c = conns[i % conns.length] as MonitorClient;
      const reg = await register(c, `flood-${i}`);
      return { id: `flood-${i}`, ...openStream(c, reg.session_id) };
    }));
    for (const f of flood) for (let seq = 1; seq <= PER_STREAM; seq++) f.stream.write(beat(clock, seq, seq % 100));
    let honestSeq = 0;
    const sendHonest = () => honest.stream.write(beat(clock, ++honestSeq));
    sendHonest();
    const pacing = setInterval(sendHonest, 50);
    try {
      await waitFor('flood acked', () => flood.every((f) => f.maxAcked() === PER_STREAM || f.error() !== undefined), 30_000);
      await waitFor('honest agent acked', () => honest.maxAcked() >= 1);
    } finally {
      clearInterval(pacing);
    }
    const stats = handle.stats();
    expect(flood.filter((f) => f.error() !== undefined).map((f) => f.error()?.details)).toEqual([]);
    expect(stats.ingestPauses).toBeGreaterThan(0); // the queue did fill: streams were paused, not dropped
    expect(stats.refused.queueFull).toBe(0);
    const counts = db.prepare('SELECT instance_id AS id, COUNT(*) AS n, COUNT(DISTINCT seq) AS d FROM samples GROUP BY instance_id').all() as { id: string; n: number; d: number }[];
    const byId = new Map(counts.map((r) => [r.id, r]));
    let acked = 0;
    for (const f of flood) {
      const row = byId.get(f.id);
      acked += f.maxAcked();
      expect(row, f.id).toEqual({ id: f.id, n: PER_STREAM, d: PER_STREAM });
    }
    expect(storedSeqs(db, 'honest').slice(0, honest.maxAcked())).toEqual(Array.from({ length: honest.maxAcked() }, (_, i) => i + 1));
    console.info(`flood: ${acked} flood heartbeats acked, ${stats.storedRows} rows stored, ${stats.ingestPauses} pauses, honest agent acked to seq ${honest.maxAcked()}`);
    for (const f of flood) f.stream.end();
    honest.stream.end();
  }, 60_000);
});

describe('acks respect write backpressure', () => {
  it('a client that never reads costs at most one pending ack and a stream buffer; others are still acked', async () => {
    const { clock, handle, client } = await start({ MONITOR_FLUSH_MAX_ROWS: '1', MONITOR_HEARTBEAT_BURST: '100000' });
    const reg = await register(client(), 'never-reads');
    // A raw HTTP/2 client (grpc-js clients read ahead without bound): a 1 KiB receive window and a
    // paused stream, so the server's ack writes block once 1 KiB is in flight.
    const session = h2connect(`http://127.0.0.1:${handle.grpcPort}`, { settings: { initialWindowSize: 1024 } });
    const stream = session.request({ ':method': 'POST', ':path': '/monitor.v1.Monitor/Heartbeats', 'content-type': 'application/grpc', te: 'trailers', [SESSION_METADATA_KEY]: reg.session_id });
    stream.on('error', () => {}); // reset when the server shuts down
    stream.pause();
    const serialize = monitorProto().monitor.v1.Monitor.service.Heartbeats.requestSerialize;
    const frame = (m: Buffer) => Buffer.concat([Buffer.from([0, (m.length >>> 24) & 0xff, (m.length >>> 16) & 0xff, (m.length >>> 8) & 0xff, m.length & 0xff]), m]);
    let maxBacklog = 0;
    let maxPending = 0;
    let seq = 0;
    // Each refused heartbeat is handled in its own flush, so each gets its own ~80-byte ack.
    while (seq < 600) {
      stream.write(frame(serialize({ ...beat(clock, ++seq), sample_time_ms: 0 })));
      await waitFor('refusal handled', () => handle.stats().refused.clockSkew >= seq, 5_000, 1);
      const st = handle.stats();
      maxBacklog = Math.max(maxBacklog, st.maxAckBacklog);
      maxPending = Math.max(maxPending, st.maxPendingAcks);
    }
    const coalesced = handle.stats().acksCoalesced;
    expect(coalesced).toBeGreaterThan(100);
    expect(maxPending).toBeLessThanOrEqual(1);
    // Object-mode stream buffer (high-water mark 16) plus the pending ack.
    expect(maxBacklog).toBeLessThanOrEqual(17);
    const other = client();
    const t = openStream(other, (await register(other, 'reads')).session_id);
    t.stream.write(beat(clock, 1));
    await waitFor('other agent acked', () => t.maxAcked() === 1);
    console.info(`never-reading client: ${seq} acks due, ${coalesced} coalesced, max backlog ${maxBacklog}, max pending ${maxPending}`);
    t.stream.end();
    stream.destroy();
    session.close();
  });
});

describe('status never blocks ingest', () => {
  it('1,000 concurrent /api/status requests on a 3,000-instance fleet: one store read, acks keep arriving', async () => {
    const { db, clock, handle, client } = await start();
    const instances = new InstanceStore(db);
    db.transaction(() => {
      for (let i = 0; i < 3_000; i++) instances.register({ id: `fleet-${i}`, groupId: 'web', address: '10.0.0.1', agentVersion: 'test' }, clock.now());
    })();
    const c = client();
    const s = openStream(c, (await register(c, 'agent')).session_id);
    let seq = 0;
    const pacing = setInterval(() => s.stream.write(beat(clock, ++seq)), 10);
    const agent = new HttpAgent({ keepAlive: true, maxSockets: 50 });
    let acksDuring = 0;
    try {
      await waitFor('first ack', () => s.maxAcked() >= 1);
      const acksBefore = s.acks.length;
      const statuses = await Promise.all(Array.from({ length: 1_000 }, () => new Promise<number>((resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port: handle.httpPort, path: '/api/status', agent }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('error', reject);
        req.end();
      })));
      acksDuring = s.acks.length - acksBefore;
      expect(statuses.filter((x) => x !== 200)).toEqual([]);
    } finally {
      clearInterval(pacing);
      agent.destroy();
    }
    expect(handle.stats().statusBuilds).toBe(1);
    expect(acksDuring).toBeGreaterThan(0);
    console.info(`status storm: 1000 requests, ${handle.stats().statusBuilds} store read, ${acksDuring} acks during the storm`);
    s.stream.end();
  }, 60_000);
});

describe('sessions and per-agent limits', () => {
  it('a session that never opens a stream expires and is counted', async () => {
    const { db, clock, handle, client } = await start({ MONITOR_SESSION_OPEN_TIMEOUT_MS: '5000' });
    const c = client();
    const reg = await register(c, 'i-1');
    expect(handle.stats().sessions).toBe(1);
    clock.advance(5_000);
    await waitFor('expired', () => handle.stats().sessionsExpired === 1);
    expect(handle.stats().sessions).toBe(0);
    expect(new InstanceStore(db).get('i-1')?.state).not.toBe('running');
    const s = openStream(c, reg.session_id);
    await waitFor('refused', () => s.error());
    expect(s.error()).toMatchObject({ code: grpc.status.FAILED_PRECONDITION });
  });

  it('heartbeats past the per-instance rate end the stream with RESOURCE_EXHAUSTED; the refused ones are accepted when replayed', async () => {
    const { db, clock, handle, client } = await start({ MONITOR_MAX_HEARTBEATS_PER_SEC: '1', MONITOR_HEARTBEAT_BURST: '5' });
    const c = client();
    const s = openStream(c, (await register(c, 'i-1')).session_id);
    for (let seq = 1; seq <= 8; seq++) s.stream.write(beat(clock, seq));
    await waitFor('stream ended', () => s.error());
    expect(s.error()).toMatchObject({ code: grpc.status.RESOURCE_EXHAUSTED });
    expect(handle.stats().refused.rateLimited).toBe(1);
    const again = await register(c, 'i-1');
    expect(again.last_seq).toBe('5');
    clock.advance(3_000); // three tokens
    const t = openStream(c, again.session_id);
    for (let seq = 6; seq <= 8; seq++) t.stream.write(beat(clock, seq));
    await waitFor('ack of 8', () => t.maxAcked() === 8);
    expect(storedSeqs(db, 'i-1')).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    t.stream.end();
  });

  it('a heartbeat larger than MONITOR_MAX_HEARTBEAT_BYTES is refused, acked as refused, and counted', async () => {
    const { db, clock, handle, client } = await start({ MONITOR_MAX_HEARTBEAT_BYTES: '256' });
    const c = client();
    const reg = await register(c, 'i-1');
    const def = monitorProto().monitor.v1.Monitor.service.Heartbeats;
    // A valid heartbeat followed by an unknown length-delimited field 15 of 1,000 bytes.
    const padded = (seq: number) => Buffer.concat([def.requestSerialize(beat(clock, seq)), Buffer.from([0x7a, 0xe8, 0x07]), Buffer.alloc(1_000, 0x61)]);
    const md = new grpc.Metadata();
    md.set(SESSION_METADATA_KEY, reg.session_id);
    const stream = c.makeBidiStreamRequest('/monitor.v1.Monitor/Heartbeats', (b: Buffer) => b, def.responseDeserialize, md);
    const acks: HeartbeatAck__Output[] = [];
    stream.on('data', (a: HeartbeatAck__Output) => acks.push(a));
    stream.on('error', () => {}); // the server's shutdown ends it
    stream.write(def.requestSerialize(beat(clock, 1)));
    stream.write(padded(2));
    stream.write(def.requestSerialize(beat(clock, 3)));
    await waitFor('ack of 3', () => acks.some((a) => a.persisted_seq === '3'));
    expect(acks.reduce((n, a) => n + a.rejected, 0)).toBe(1);
    expect(acks.find((a) => a.rejected > 0)?.reject_reason).toMatch(/heartbeat is \d+ bytes; at most 256/);
    expect(storedSeqs(db, 'i-1')).toEqual([1, 3]);
    expect(handle.stats().refused.oversized).toBe(1);
    stream.end();
  });
});

describe('operator output strips control characters', () => {
  const hostile = 'bye \u001b[31mRED\u001b[0m \u001b]0;owned title\u0007done\rOVERWRITE\u009b2J\u202eevil';
  // eslint-disable-next-line no-control-regex
  const CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

  it('a Deregister reason with ANSI escapes is stored as sent and shown clean by `autoscaler status`', async () => {
    const { db, clock, client } = await start();
    const c = client();
    const reg = await register(c, 'i-1');
    await new Promise<void>((resolve, reject) => c.Deregister({ session_id: reg.session_id, instance_id: 'i-1', reason: hostile }, (err) => (err ? reject(err) : resolve())));
    expect(new InstanceStore(db).get('i-1')?.stateReason).toBe(`deregistered: ${hostile}`);
    const out = formatStatus(new StatusReader(db).report(clock.now()));
    expect(out).not.toMatch(CONTROL);
    expect(out).toContain('deregistered: bye RED done OVERWRITE');
    expect(out).not.toContain('owned title');
  });

  it('`autoscaler events` shows provider errors and decision messages clean and capped', async () => {
    const { db, clock } = await start();
    const events = new EventStore(db);
    events.recordActivity({ ts: clock.now(), groupId: 'web', instanceId: 'i-1', action: 'launch', cause: `scale out${hostile}`, outcome: 'failed', error: `${hostile}${'x'.repeat(5_000)}` });
    events.recordDecision('web', { current: 1, desired: 2, reason: 'ScaleOut', message: hostile, trail: ['ScaleOut'], details: {} }, clock.now());
    const lines = new TimelineReader(db).latest({ limit: 10 }).entries.filter((e) => e.kind !== 'change').map(formatEntry);
    expect(lines).toHaveLength(2);
    for (const l of lines) {
      expect(l).not.toMatch(CONTROL);
      expect(l).not.toContain('\n');
      expect(l.length).toBeLessThan(700);
    }
    expect(lines.join('\n')).toContain('bye RED done OVERWRITE');
  });
});
