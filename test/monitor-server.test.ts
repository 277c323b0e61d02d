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
import { SimLoadStore } from '../store/simload.js';
import { tempDir, waitFor } from './helpers.js';

const spec = testGroup();

let db: Db;
let clock: ManualClock;
let handle: MonitorServerHandle;
let client: MonitorClient;

beforeEach(async () => {
  const dir = tempDir();
  const dbPath = join(dir, 'a.db');
  db = openStore(dbPath);
  new GroupStore(db).upsert(spec, 0);
  clock = new ManualClock();
  const cfg = loadMonitorServerConfig({ env: { AUTOSCALER_DB: dbPath, MONITOR_GRPC_PORT: '0', MONITOR_HTTP_PORT: '0', MONITOR_FLUSH_INTERVAL_MS: '20', MONITOR_ACK_INTERVAL_MS: '0', MONITOR_MAX_MESSAGE_BYTES: '4096',
    // These tests drive liveness on a manual clock with the timeout rule's thresholds; phi accrual has its own (monitor-server/liveness.test.ts, test/e2e.test.ts).
    MONITOR_FAILURE_DETECTOR: 'timeout' } });
  handle = await new MonitorServer(cfg, db, clock, captureLogger('warn').log).start();
  const Ctor = monitorProto().monitor.v1.Monitor;
  client = new Ctor(`127.0.0.1:${handle.grpcPort}`, grpc.credentials.createInsecure());
});

afterEach(async () => {
  client.close();
  await handle.close();
  db.close();
});

/** Record an instance as the controller does when the provider accepts a launch (Register refuses ids the store does not know). */
function known(instanceId: string, groupId = 'web'): void {
  const instances = new InstanceStore(db);
  if (instances.get(instanceId) === undefined) instances.insertLaunched(groupId, [{ id: instanceId, providerState: 'running' }], 'launched', 'test', clock.now());
}

function register(instanceId: string, groupId = 'web', address = '127.0.0.1') {
  known(instanceId);
  return new Promise<{ session_id: string; last_seq: string; heartbeat_interval_ms: number }>((resolve, reject) =>
    client.Register({ instance_id: instanceId, group_id: groupId, agent_version: 'test', address }, (err, res) => (err || !res ? reject(err) : resolve(res))));
}

function openStream(sessionId: string) {
  const md = new grpc.Metadata();
  md.set(SESSION_METADATA_KEY, sessionId);
  const stream = client.Heartbeats(md);
  const acks: HeartbeatAck__Output[] = [];
  let error: grpc.ServiceError | undefined;
  stream.on('data', (a: HeartbeatAck__Output) => acks.push(a));
  stream.on('error', (e: grpc.ServiceError) => { error = e; });
  return { stream, acks, error: () => error };
}

const hb = (seq: number, cpu = 40, mem = 30) => ({ seq, sample_time_ms: clock.now(), cpu_percent: cpu, mem_percent: mem });

describe('monitor server over gRPC', () => {
  it.each([
    { name: 'unknown group', id: 'i-1', group: 'nope', code: grpc.status.NOT_FOUND, details: /group "nope" is not configured/ },
    { name: 'malformed instance id', id: 'bad id!', group: 'web', code: grpc.status.INVALID_ARGUMENT, details: /instance_id must be/ },
  ])('refuses registration: $name', async ({ id, group, code, details }) => {
    const err = await register(id, group).catch((e: grpc.ServiceError) => e);
    expect(err).toMatchObject({ code });
    expect((err as grpc.ServiceError).details).toMatch(details);
  });

  it('refuses an instance id the store does not know (PERMISSION_DENIED) and stores nothing', async () => {
    const err = await new Promise<grpc.ServiceError | null>((resolve) =>
      client.Register({ instance_id: 'stranger', group_id: 'web', agent_version: 'test', address: '' }, (e) => resolve(e)));
    expect(err).toMatchObject({ code: grpc.status.PERMISSION_DENIED, details: 'instance "stranger" is not known to this controller (it launched or adopted no such instance)' });
    expect(new InstanceStore(db).get('stranger')).toBeUndefined();
    expect(handle.stats()).toMatchObject({ sessions: 0, refused: { registerUnknown: 1 } });
  });

  it('refuses an instance the controller terminated (FAILED_PRECONDITION), and one registering under another group', async () => {
    new GroupStore(db).upsert({ ...spec, id: 'api' }, 0);
    const instances = new InstanceStore(db);
    instances.insertPending('i-gone', 'web', 'test', clock.now());
    instances.setState('i-gone', 'terminated', 'scale in', clock.now());
    const gone = await register('i-gone').catch((e: grpc.ServiceError) => e);
    expect(gone).toMatchObject({ code: grpc.status.FAILED_PRECONDITION, details: 'instance "i-gone" is terminated; it may not register again' });
    await register('i-web');
    const moved = await register('i-web', 'api').catch((e: grpc.ServiceError) => e);
    expect(moved).toMatchObject({ code: grpc.status.FAILED_PRECONDITION, details: 'instance "i-web" belongs to group "web", not "api"' });
  });

  it('refuses oversized messages with RESOURCE_EXHAUSTED and keeps serving', async () => {
    const err = await register('i-1', 'web', 'x'.repeat(10_000)).catch((e: grpc.ServiceError) => e);
    expect(err).toMatchObject({ code: grpc.status.RESOURCE_EXHAUSTED });
    await expect(register('i-1')).resolves.toMatchObject({ heartbeat_interval_ms: 1_000 });
  });

  it('refuses a heartbeat stream without a valid session', async () => {
    const s = openStream('not-a-session');
    await waitFor('stream error', () => s.error());
    expect(s.error()).toMatchObject({ code: grpc.status.FAILED_PRECONDITION });
  });

  it('stores heartbeats in batches and acks with the persisted sequence and the group view', async () => {
    new SimLoadStore(db).set('web', { kind: 'constant', value: 150 }, clock.now());
    const reg = await register('i-1');
    expect(reg.last_seq).toBe('0');
    const s = openStream(reg.session_id);
    for (let seq = 1; seq <= 200; seq++) s.stream.write(hb(seq, seq % 100));
    await waitFor('ack of 200', () => s.acks.some((a) => a.persisted_seq === '200'));
    // Acks are batched: one per flush, not one per heartbeat.
    expect(s.acks.length).toBeLessThan(200);
    // The group view rides on the first ack, and again only when it changes.
    expect(s.acks[0]?.group).toMatchObject({ live_instances: 1, demand_percent: 150 });
    expect(s.acks.slice(1).every((a) => a.group === null)).toBe(true);
    expect(db.prepare('SELECT COUNT(*) AS n FROM samples').get()).toEqual({ n: 200 });
    expect(new InstanceStore(db).get('i-1')).toMatchObject({ state: 'running', seq: 200, cpu: 0 });
    s.stream.end();
  });

  it.each([
    { name: 'CPU above 100', beat: { cpu_percent: 140 }, reason: /cpu_percent must be within 0\.\.100/ },
    { name: 'negative memory', beat: { mem_percent: -1 }, reason: /mem_percent must be within 0\.\.100/ },
    { name: 'NaN CPU', beat: { cpu_percent: Number.NaN }, reason: /cpu_percent/ },
    { name: 'sample from the far future', beat: { sample_time_ms: 1_700_000_000_000 + 3_600_000 }, reason: /from server time/ },
  ])('refuses out-of-range metrics ($name) without losing the stream', async ({ beat, reason }) => {
    const reg = await register('i-1');
    const s = openStream(reg.session_id);
    s.stream.write(hb(1));
    s.stream.write({ ...hb(2), ...beat });
    s.stream.write(hb(3));
    const ack = await waitFor('ack of 3', () => s.acks.find((a) => a.persisted_seq === '3'));
    const rejected = s.acks.reduce((n, a) => n + a.rejected, 0);
    expect(rejected).toBe(1);
    expect(s.acks.find((a) => a.rejected > 0)?.reject_reason).toMatch(reason);
    expect(ack).toBeDefined();
    expect(db.prepare('SELECT seq FROM samples ORDER BY seq').all()).toEqual([{ seq: 1 }, { seq: 3 }]);
    expect(s.error()).toBeUndefined();
    s.stream.end();
  });

  it('a replay after reconnecting stores nothing twice and resumes after the stored sequence', async () => {
    const first = await register('i-1');
    const a = openStream(first.session_id);
    for (let seq = 1; seq <= 5; seq++) a.stream.write(hb(seq));
    await waitFor('ack of 5', () => a.acks.some((x) => x.persisted_seq === '5'));
    a.stream.cancel();
    const second = await register('i-1');
    expect(second.last_seq).toBe('5');
    const b = openStream(second.session_id);
    for (let seq = 3; seq <= 8; seq++) b.stream.write(hb(seq));
    await waitFor('ack of 8', () => b.acks.some((x) => x.persisted_seq === '8'));
    expect(db.prepare('SELECT seq FROM samples ORDER BY seq').all().map((r) => (r as { seq: number }).seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    b.stream.end();
  });

  it('marks a silent instance suspect then dead, and running again when it speaks', async () => {
    const reg = await register('i-1');
    const s = openStream(reg.session_id);
    s.stream.write(hb(1));
    await waitFor('ack', () => s.acks.length > 0);
    const instances = new InstanceStore(db);
    clock.advance(2_600);
    await waitFor('suspect', () => instances.get('i-1')?.state === 'suspect');
    clock.advance(2_000);
    await waitFor('dead', () => instances.get('i-1')?.state === 'dead');
    expect(instances.get('i-1')?.stateReason).toMatch(/no heartbeat for 4600 ms/);
    s.stream.write(hb(2));
    await waitFor('running again', () => instances.get('i-1')?.state === 'running');
    s.stream.end();
  });

  it('a dropped stream makes the instance suspect at once; Deregister makes it dead with the reason', async () => {
    const instances = new InstanceStore(db);
    const one = await register('i-1');
    const s = openStream(one.session_id);
    s.stream.write(hb(1));
    await waitFor('ack', () => s.acks.length > 0);
    s.stream.cancel();
    await waitFor('suspect', () => instances.get('i-1')?.state === 'suspect');
    const two = await register('i-1');
    await new Promise<void>((resolve, reject) => client.Deregister({ session_id: two.session_id, instance_id: 'i-1', reason: 'SIGTERM' }, (err) => (err ? reject(err) : resolve())));
    expect(instances.get('i-1')).toMatchObject({ state: 'dead', stateReason: 'deregistered: SIGTERM' });
    const err = await new Promise<grpc.ServiceError | null>((resolve) => client.Deregister({ session_id: 'nope', instance_id: 'i-1', reason: '' }, (e) => resolve(e)));
    expect(err).toMatchObject({ code: grpc.status.NOT_FOUND });
  });
});

describe('monitor server over HTTP', () => {
  const get = (path: string, method = 'GET') => fetch(`http://127.0.0.1:${handle.httpPort}${path}`, { method });

  it.each([
    { name: 'health', path: '/healthz', method: 'GET', status: 200, body: { status: 'ok' } },
    { name: 'status', path: '/api/status', method: 'GET', status: 200, body: { groups: [{ id: 'web', minSize: 1, maxSize: 4 }] } },
    { name: 'unknown route', path: '/nope', method: 'GET', status: 404, body: { error: 'no route /nope' } },
    { name: 'wrong method', path: '/healthz', method: 'POST', status: 405, body: { error: 'method not allowed' } },
  ])('$name', async ({ path, method, status, body }) => {
    const res = await get(path, method);
    expect(res.status).toBe(status);
    expect(await res.json()).toMatchObject(body);
  });
});
