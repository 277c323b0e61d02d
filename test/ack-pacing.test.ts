/**
 * Acks paced per stream (MONITOR_ACK_INTERVAL_MS): a real monitor server on 127.0.0.1:0 with a
 * manual clock, a real grpc-js client. Samples reach `latest` at every write whatever the acks
 * do; a stream is acked once per interval, and at once for its first ack, for refusals, for a
 * changed group view and for a replay backlog. The group view rides only on acks where it changed.
 */
import * as grpc from '@grpc/grpc-js';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadMonitorServerConfig } from '../config/monitor-server.js';
import { SESSION_METADATA_KEY, monitorProto, type HeartbeatAck__Output, type MonitorClient } from '../lib/proto.js';
import { ManualClock, captureLogger, testGroup } from '../lib/testing.js';
import { ACK_BACKLOG } from '../monitor-server/heartbeats.js';
import { MonitorServer, type MonitorServerHandle } from '../monitor-server/server.js';
import { openStore, type Db } from '../store/db.js';
import { GroupStore } from '../store/groups.js';
import { InstanceStore } from '../store/instances.js';
import { SimLoadStore } from '../store/simload.js';
import { tempDir, waitFor } from './helpers.js';

let db: Db;
let clock: ManualClock;
let handle: MonitorServerHandle;
let client: MonitorClient;

beforeEach(async () => {
  const dbPath = join(tempDir(), 'a.db');
  db = openStore(dbPath);
  new GroupStore(db).upsert(testGroup(), 0);
  clock = new ManualClock();
  const cfg = loadMonitorServerConfig({ env: { AUTOSCALER_DB: dbPath, MONITOR_GRPC_PORT: '0', MONITOR_HTTP_PORT: '0', MONITOR_FLUSH_INTERVAL_MS: '20', MONITOR_ACK_INTERVAL_MS: '5000', MONITOR_FAILURE_DETECTOR: 'timeout' } });
  handle = await new MonitorServer(cfg, db, clock, captureLogger('warn').log).start();
  client = new (monitorProto().monitor.v1.Monitor)(`127.0.0.1:${handle.grpcPort}`, grpc.credentials.createInsecure());
});

afterEach(async () => {
  client.close();
  await handle.close();
  db.close();
});

async function open(instanceId: string) {
  new InstanceStore(db).insertLaunched('web', [{ id: instanceId, providerState: 'running' }], 'launched', 'test', clock.now());
  const reg = await new Promise<{ session_id: string }>((resolve, reject) =>
    client.Register({ instance_id: instanceId, group_id: 'web', agent_version: 'test', address: '' }, (err, res) => (err || !res ? reject(err) : resolve(res))));
  const md = new grpc.Metadata();
  md.set(SESSION_METADATA_KEY, reg.session_id);
  const stream = client.Heartbeats(md);
  const acks: HeartbeatAck__Output[] = [];
  stream.on('data', (a: HeartbeatAck__Output) => acks.push(a));
  stream.on('error', () => undefined);
  const send = (seq: number, cpu = 40) => stream.write({ seq, sample_time_ms: clock.now(), cpu_percent: cpu, mem_percent: 10 });
  return { stream, acks, send };
}

const latestSeq = (id: string) => new InstanceStore(db).get(id)?.seq ?? 0;

describe('ack pacing', () => {
  it('acks the first heartbeat at once, then once per interval; every heartbeat is in `latest` at its write', async () => {
    const s = await open('i-1');
    s.send(1);
    await waitFor('first ack', () => s.acks.length === 1);
    expect(Number(s.acks[0]?.persisted_seq)).toBe(1);
    expect(s.acks[0]?.group).toMatchObject({ live_instances: 1 });
    // Four more within the interval: stored, not acked.
    for (let seq = 2; seq <= 5; seq++) {
      clock.advance(1_000);
      s.send(seq);
      await waitFor(`seq ${seq} in latest`, () => latestSeq('i-1') === seq);
    }
    expect(s.acks).toHaveLength(1);
    // The interval is up: the next flush sends one ack for all four, without the unchanged group view.
    clock.advance(1_000);
    await waitFor('second ack', () => s.acks.length === 2);
    expect(Number(s.acks[1]?.persisted_seq)).toBe(5);
    expect(s.acks[1]?.group).toBeNull();
    // And the next heartbeat waits for the next interval again.
    clock.advance(1_000);
    s.send(6);
    await waitFor('seq 6 in latest', () => latestSeq('i-1') === 6);
    expect(s.acks).toHaveLength(2);
    s.stream.end();
  });

  it('acks at once when heartbeats are refused, and when the group view changes', async () => {
    const s = await open('i-1');
    s.send(1);
    await waitFor('first ack', () => s.acks.length === 1);
    clock.advance(100);
    s.send(2, 150); // out of range: the agent must hear of it now
    await waitFor('refusal ack', () => s.acks.length === 2);
    expect(s.acks[1]).toMatchObject({ rejected: 1 });
    clock.advance(100);
    new SimLoadStore(db).set('web', { kind: 'constant', value: 180 }, clock.now());
    s.send(3);
    await waitFor('view ack', () => s.acks.length === 3);
    expect(s.acks[2]?.group).toMatchObject({ demand_percent: 180 });
    s.stream.end();
  });

  it(`acks a replay of ${ACK_BACKLOG} or more without waiting for the interval`, async () => {
    const s = await open('i-1');
    s.send(1);
    await waitFor('first ack', () => s.acks.length === 1);
    for (let seq = 2; seq <= ACK_BACKLOG + 1; seq++) s.send(seq);
    await waitFor('backlog ack', () => s.acks.some((a) => Number(a.persisted_seq) === ACK_BACKLOG + 1));
    s.stream.end();
  });
});
