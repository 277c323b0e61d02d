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

  it('a stream whose interval passed with nothing to ack has its next heartbeat acked at the next write', async () => {
    const s = await open('i-1');
    const other = await open('i-2'); // in the same group, joined first: no view change below
    s.send(1);
    other.send(1);
    await waitFor('first acks', () => s.acks.length === 1 && other.acks.length === 1);
    clock.advance(6_000); // the interval passes; only i-2 has something to ack
    other.send(2);
    await waitFor('i-2 acked at its interval', () => other.acks.length === 2);
    expect(s.acks).toHaveLength(1);
    s.send(2);
    await waitFor('ack of seq 2 without waiting another interval', () => s.acks.length === 2);
    expect(Number(s.acks[1]?.persisted_seq)).toBe(2);
    s.stream.end();
    other.stream.end();
  });

  it('an ack sent early (a refusal) restarts the interval: the stream is next acked an interval after it', async () => {
    const s = await open('i-1');
    s.send(1);
    await waitFor('first ack', () => s.acks.length === 1);
    clock.advance(4_000);
    s.send(2, 150); // refused: acked at once
    await waitFor('refusal ack', () => s.acks.length === 2);
    clock.advance(1_000); // 5 s after the first ack, 1 s after the refusal's
    s.send(3);
    await waitFor('seq 3 stored', () => latestSeq('i-1') === 3);
    expect(s.acks).toHaveLength(2);
    clock.advance(4_000);
    await waitFor('paced ack', () => s.acks.length === 3);
    expect(Number(s.acks[2]?.persisted_seq)).toBe(3);
    s.stream.end();
  });

  it('a stream with nothing to ack when its group view changed hears the new view with its next heartbeat', async () => {
    const a = await open('i-1');
    a.send(1);
    await waitFor('first ack of i-1', () => a.acks.length === 1);
    expect(a.acks[0]?.group).toMatchObject({ live_instances: 1 });
    const b = await open('i-2'); // a second live instance: the group view changes
    b.send(1);
    await waitFor('first ack of i-2', () => b.acks.length === 1);
    expect(b.acks[0]?.group).toMatchObject({ live_instances: 2 });
    expect(a.acks).toHaveLength(1); // nothing to ack on i-1 at that write
    clock.advance(100); // well within i-1's interval
    a.send(2);
    await waitFor('i-1 acked at once with the new view', () => a.acks.length === 2);
    expect(a.acks[1]).toMatchObject({ group: { live_instances: 2 } });
    expect(Number(a.acks[1]?.persisted_seq)).toBe(2);
    a.stream.end();
    b.stream.end();
  });

  it('a clock that went back does not hold acks for the length of the jump', async () => {
    const s = await open('i-1');
    s.send(1);
    await waitFor('first ack', () => s.acks.length === 1);
    clock.advance(-60_000); // NTP step back: the last ack now lies in the future
    s.send(2);
    await waitFor('ack of seq 2', () => s.acks.length === 2);
    expect(Number(s.acks[1]?.persisted_seq)).toBe(2);
    s.stream.end();
  });

  it('paces many streams independently: each is acked once per interval, however many share the writes', async () => {
    const streams: Awaited<ReturnType<typeof open>>[] = [];
    for (let i = 0; i < 20; i++) streams.push(await open(`i-${i}`));
    for (const s of streams) s.send(1);
    await waitFor('first acks', () => streams.every((s) => s.acks.length >= 1));
    const before = streams.map((s) => s.acks.length);
    for (let seq = 2; seq <= 5; seq++) {
      clock.advance(1_000);
      for (const s of streams) s.send(seq);
      await waitFor(`seq ${seq} stored`, () => streams.every((_, i) => latestSeq(`i-${i}`) === seq));
    }
    // Views may have changed while the streams joined (live count); after that, nothing until the interval.
    expect(streams.map((s) => s.acks.length)).toEqual(before);
    clock.advance(1_000);
    await waitFor('one paced ack each', () => streams.every((s, i) => s.acks.length === (before[i] as number) + 1));
    for (const s of streams) expect(Number(s.acks.at(-1)?.persisted_seq)).toBe(5);
    for (const s of streams) s.stream.end();
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
