/**
 * The monitor server's GET /metrics (monitor-server/metrics.ts), against a real server on
 * 127.0.0.1:0 with a temp-file SQLite store and a real grpc-js client: the text parses strictly,
 * and the counters, gauges and histograms move with what the agents send.
 */
import * as grpc from '@grpc/grpc-js';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadMonitorServerConfig } from '../config/monitor-server.js';
import { SESSION_METADATA_KEY, monitorProto, type HeartbeatAck__Output, type MonitorClient } from '../lib/proto.js';
import { ManualClock, captureLogger, testGroup } from '../lib/testing.js';
import { MonitorServer, type MonitorServerHandle } from '../monitor-server/server.js';
import { openStore, type Db } from '../store/db.js';
import { GroupStore } from '../store/groups.js';
import { InstanceStore } from '../store/instances.js';
import { tempDir, waitFor } from './helpers.js';
import { parsePrometheus, sampleValue, type Families } from './prometheus.js';

let db: Db;
let clock: ManualClock;
let handle: MonitorServerHandle;
let client: MonitorClient;

beforeEach(async () => {
  const dbPath = join(tempDir(), 'a.db');
  db = openStore(dbPath);
  new GroupStore(db).upsert(testGroup(), 0);
  clock = new ManualClock();
  const cfg = loadMonitorServerConfig({ env: { AUTOSCALER_DB: dbPath, MONITOR_GRPC_PORT: '0', MONITOR_HTTP_PORT: '0', MONITOR_FLUSH_INTERVAL_MS: '20', MONITOR_ACK_INTERVAL_MS: '0', MONITOR_FAILURE_DETECTOR: 'timeout' } });
  handle = await new MonitorServer(cfg, db, clock, captureLogger('warn').log).start();
  client = new (monitorProto().monitor.v1.Monitor)(`127.0.0.1:${handle.grpcPort}`, grpc.credentials.createInsecure());
});

afterEach(async () => {
  client.close();
  await handle.close();
  db.close();
});

async function fetchMetrics(): Promise<Response> {
  return fetch(`http://127.0.0.1:${handle.httpPort}/metrics`);
}

async function scrape(): Promise<Families> {
  const res = await fetchMetrics();
  expect(res.status).toBe(200);
  return parsePrometheus(await res.text());
}

/** Record the instance as the controller does on a launch (Register refuses unknown ids), then register it. */
function register(instanceId: string, known = true) {
  const instances = new InstanceStore(db);
  if (known && instances.get(instanceId) === undefined) instances.insertLaunched('web', [{ id: instanceId, providerState: 'running' }], 'launched', 'test', clock.now());
  return new Promise<{ session_id: string }>((resolve, reject) =>
    client.Register({ instance_id: instanceId, group_id: 'web', agent_version: 'test', address: '127.0.0.1' }, (err, res) => (err || !res ? reject(err) : resolve(res))));
}

function openStream(sessionId: string) {
  const md = new grpc.Metadata();
  md.set(SESSION_METADATA_KEY, sessionId);
  const stream = client.Heartbeats(md);
  const acks: HeartbeatAck__Output[] = [];
  stream.on('data', (a: HeartbeatAck__Output) => acks.push(a));
  stream.on('error', () => {});
  return { stream, acks };
}

const beat = (seq: number, cpu = 40, mem = 30) => ({ seq, sample_time_ms: clock.now(), cpu_percent: cpu, mem_percent: mem });
const value = (f: Families, name: string, labels: Record<string, string> = {}, suffix?: string) => sampleValue(f, name, labels, suffix) ?? 0;

describe('parsePrometheus (test/prometheus.ts) is strict', () => {
  const typed = '# TYPE x_total counter\n';
  it.each([
    { name: 'a sample without a TYPE', text: 'x_total 1\n', error: /has no TYPE/ },
    { name: 'an unknown TYPE', text: '# TYPE x_total meter\n', error: /bad TYPE/ },
    { name: 'a family typed twice', text: `${typed}${typed}`, error: /second TYPE/ },
    { name: 'a value that is not a number', text: `${typed}x_total one\n`, error: /not a sample/ },
    { name: 'a malformed number', text: `${typed}x_total 1e+-\n`, error: /bad value/ },
    { name: 'an unquoted label', text: `${typed}x_total{a=b} 1\n`, error: /bad labels/ },
    { name: 'labels without a comma', text: `${typed}x_total{a="1" b="2"} 1\n`, error: /bad labels/ },
  ])('refuses $name', ({ text, error }) => {
    expect(() => parsePrometheus(text)).toThrow(error);
  });

  it('reads labels, escapes and histogram suffixes', () => {
    const f = parsePrometheus('# HELP h A histogram\n# TYPE h histogram\nh_bucket{le="+Inf",path="a\\"b"} 3\nh_sum 1.5\nh_count 3\n');
    expect(f.get('h')?.samples).toEqual([
      { labels: { le: '+Inf', path: 'a\\"b' }, value: 3, suffix: '_bucket' },
      { labels: {}, value: 1.5, suffix: '_sum' },
      { labels: {}, value: 3, suffix: '_count' },
    ]);
    expect(sampleValue(f, 'h', {}, '_count')).toBe(3);
  });
});

describe('monitor server /metrics', () => {
  it('serves Prometheus text that parses strictly, every family typed', async () => {
    const res = await fetchMetrics();
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const f = parsePrometheus(await res.text());
    const types = Object.fromEntries([...f].filter(([name]) => !name.includes('_nodejs_') && !name.includes('_process_')).map(([name, fam]) => [name, fam.type]));
    expect(types).toEqual({
      autoscaler_monitor_heartbeats_received_total: 'counter',
      autoscaler_monitor_heartbeats_stored_total: 'counter',
      autoscaler_monitor_refused_total: 'counter',
      autoscaler_monitor_ingest_write_failures_total: 'counter',
      autoscaler_monitor_ingest_write_failing: 'gauge',
      autoscaler_monitor_ingest_batch_seconds: 'histogram',
      autoscaler_monitor_ingest_batch_rows: 'histogram',
      autoscaler_monitor_ingest_queued_rows: 'gauge',
      autoscaler_monitor_ingest_queue_capacity_rows: 'gauge',
      autoscaler_monitor_ingest_paused: 'gauge',
      autoscaler_monitor_ingest_pauses_total: 'counter',
      autoscaler_monitor_agents: 'gauge',
      autoscaler_monitor_sessions: 'gauge',
      autoscaler_monitor_streams: 'gauge',
      autoscaler_monitor_sessions_expired_total: 'counter',
      autoscaler_monitor_registrations_total: 'counter',
      autoscaler_monitor_acks_total: 'counter',
      autoscaler_monitor_acks_coalesced_total: 'counter',
    });
    // Every refusal reason and registration outcome is there from the start (rate() needs the zero).
    expect(f.get('autoscaler_monitor_refused_total')?.samples.map((s) => s.labels.reason)).toContain('cpuOutOfRange');
    expect(f.get('autoscaler_monitor_registrations_total')?.samples.map((s) => s.labels.outcome).sort()).toEqual(['error', 'ok', 'refused', 'unavailable']);
    expect(value(f, 'autoscaler_monitor_ingest_queue_capacity_rows')).toBeGreaterThan(0);
  });

  it('has the default process metrics under autoscaler_monitor_, event-loop lag included', async () => {
    const f = await scrape();
    expect(f.get('autoscaler_monitor_nodejs_eventloop_lag_seconds')?.type).toBe('gauge');
    expect(f.get('autoscaler_monitor_process_resident_memory_bytes')?.type).toBe('gauge');
  });

  it('counts N heartbeats received and stored, the batches that wrote them, and the acks', async () => {
    const n = 25;
    const before = await scrape();
    const { session_id } = await register('i-1');
    const { stream, acks } = openStream(session_id);
    for (let seq = 1; seq <= n; seq++) stream.write(beat(seq));
    await waitFor(`${n} acked`, () => acks.some((a) => Number(a.persisted_seq) === n));
    const after = await waitFor('stored counter grown by N', async () => {
      const f = await scrape();
      return value(f, 'autoscaler_monitor_heartbeats_stored_total') - value(before, 'autoscaler_monitor_heartbeats_stored_total') >= n ? f : undefined;
    });
    const grew = (name: string, labels: Record<string, string> = {}, suffix?: string) => value(after, name, labels, suffix) - value(before, name, labels, suffix);
    expect(grew('autoscaler_monitor_heartbeats_received_total')).toBe(n);
    expect(grew('autoscaler_monitor_heartbeats_stored_total')).toBe(n);
    expect(value(after, 'autoscaler_monitor_ingest_batch_seconds', {}, '_count')).toBeGreaterThan(0);
    expect(grew('autoscaler_monitor_ingest_batch_rows', {}, '_sum')).toBe(n);
    expect(value(after, 'autoscaler_monitor_ingest_batch_rows', { le: '+Inf' }, '_bucket')).toBe(value(after, 'autoscaler_monitor_ingest_batch_rows', {}, '_count'));
    expect(grew('autoscaler_monitor_acks_total')).toBeGreaterThan(0);
    expect(grew('autoscaler_monitor_registrations_total', { outcome: 'ok' })).toBe(1);
    expect(value(after, 'autoscaler_monitor_sessions')).toBe(1);
    expect(value(after, 'autoscaler_monitor_streams')).toBe(1);
    expect(value(after, 'autoscaler_monitor_ingest_queued_rows')).toBe(0);
    stream.end();
  });

  it.each([
    { name: 'cpu above 100', cpu: 150, mem: 30, reason: 'cpuOutOfRange' },
    { name: 'mem below 0', cpu: 40, mem: -1, reason: 'memOutOfRange' },
  ])('counts a refused heartbeat under its reason: $name', async ({ cpu, mem, reason }) => {
    const before = await scrape();
    const { session_id } = await register('i-1');
    const { stream, acks } = openStream(session_id);
    stream.write(beat(1, cpu, mem));
    await waitFor('refusal acked', () => acks.some((a) => a.rejected > 0));
    const after = await scrape();
    const grew = (name: string, labels: Record<string, string> = {}) => value(after, name, labels) - value(before, name, labels);
    expect(grew('autoscaler_monitor_refused_total', { reason })).toBe(1);
    expect(grew('autoscaler_monitor_refused_total', { reason: 'seqInvalid' })).toBe(0);
    expect(grew('autoscaler_monitor_heartbeats_received_total')).toBe(1);
    expect(grew('autoscaler_monitor_heartbeats_stored_total')).toBe(0);
    stream.end();
  });

  it('counts a refused registration by outcome and reason', async () => {
    const err = await register('stranger', false).catch((e: grpc.ServiceError) => e);
    expect(err).toMatchObject({ code: grpc.status.PERMISSION_DENIED });
    const f = await scrape();
    expect(value(f, 'autoscaler_monitor_registrations_total', { outcome: 'refused' })).toBe(1);
    expect(value(f, 'autoscaler_monitor_registrations_total', { outcome: 'ok' })).toBe(0);
    expect(value(f, 'autoscaler_monitor_refused_total', { reason: 'registerUnknown' })).toBe(1);
  });

  it('shows failed batched writes while the disk is full, and the recovery', async () => {
    const { session_id } = await register('i-1');
    const { stream, acks } = openStream(session_id);
    stream.write(beat(1));
    await waitFor('first heartbeat acked', () => acks.some((a) => Number(a.persisted_seq) === 1));
    // max_page_count is per connection: the test shares the server's connection.
    db.pragma(`max_page_count = ${db.pragma('page_count', { simple: true }) as number}`);
    const total = 1_500; // within the default burst, and more than one page's free room
    for (let seq = 2; seq <= total; seq++) stream.write(beat(seq));
    const failing = await waitFor('a failed write shown', async () => {
      const f = await scrape();
      return value(f, 'autoscaler_monitor_ingest_write_failing') === 1 ? f : undefined;
    }, 15_000, 50);
    expect(value(failing, 'autoscaler_monitor_ingest_write_failures_total')).toBeGreaterThan(0);
    expect(value(failing, 'autoscaler_monitor_ingest_queued_rows')).toBeGreaterThan(0);
    db.pragma('max_page_count = 4294967294');
    const recovered = await waitFor('writes recovered', async () => {
      const f = await scrape();
      return value(f, 'autoscaler_monitor_heartbeats_stored_total') === total ? f : undefined;
    }, 15_000, 50);
    expect(value(recovered, 'autoscaler_monitor_ingest_write_failing')).toBe(0);
    expect(value(recovered, 'autoscaler_monitor_ingest_queued_rows')).toBe(0);
    stream.end();
  });

  it('shows agents by liveness state at scrape time: running after a heartbeat, suspect once the stream closes', async () => {
    const agents = (f: Families) => Object.fromEntries((f.get('autoscaler_monitor_agents')?.samples ?? []).map((s) => [s.labels.state, s.value]));
    expect(agents(await scrape())).toEqual({ running: 0, suspect: 0, dead: 0 });
    const { session_id } = await register('i-1');
    const { stream, acks } = openStream(session_id);
    stream.write(beat(1));
    await waitFor('heartbeat acked', () => acks.some((a) => Number(a.persisted_seq) === 1));
    expect(agents(await scrape())).toEqual({ running: 1, suspect: 0, dead: 0 });
    stream.cancel();
    const later = await waitFor('suspect after the stream closed', async () => {
      const a = agents(await scrape());
      return a.suspect === 1 ? a : undefined;
    });
    expect(later).toEqual({ running: 0, suspect: 1, dead: 0 });
  });
});
