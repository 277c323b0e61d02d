/**
 * A bounded database (issue 10, item 4): per-instance 1-minute rollups written with each batch of
 * raw samples, exact under late and replayed samples; retention of raw samples (1 h), rollups
 * (14 days) and the audit trail; the config keys; the migration of an existing database.
 */
import Database from 'better-sqlite3';
import * as grpc from '@grpc/grpc-js';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_ROLLUP_RETENTION_MS, DEFAULT_SAMPLE_RETENTION_MS, loadMonitorServerConfig } from '../config/monitor-server.js';
import { SESSION_METADATA_KEY, monitorProto } from '../lib/proto.js';
import { ManualClock, captureLogger, configProblems, testGroup } from '../lib/testing.js';
import { MonitorServer } from '../monitor-server/server.js';
import { openStore, type Db } from '../store/db.js';
import { EventStore } from '../store/events.js';
import { GroupStore } from '../store/groups.js';
import { InstanceStore } from '../store/instances.js';
import { IntentStore } from '../store/intents.js';
import { MIGRATIONS } from '../store/migrations.js';
import { HistoryRetention } from '../store/retention.js';
import { RollupStore } from '../store/rollups.js';
import { TelemetryStore, type SampleRecord } from '../store/telemetry.js';
import { tempDir, waitFor } from './helpers.js';

const MIN = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;
/** A minute boundary, so offsets below read as "second s of minute m". */
const T0 = Date.UTC(2026, 11, 1, 12, 0);
const at = (minute: number, second = 0) => T0 + minute * MIN + second * 1_000;

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

function fresh(): { db: Db; dbPath: string } {
  const dbPath = join(tempDir('autoscaler-rollups-'), 'a.db');
  const db = openStore(dbPath);
  cleanup.push(() => { db.close(); });
  return { db, dbPath };
}

/** Groups web (i-1, i-2) and api (a-1), launched. */
function seeded(): { db: Db; dbPath: string; telemetry: TelemetryStore; rollups: RollupStore } {
  const { db, dbPath } = fresh();
  const groups = new GroupStore(db);
  const instances = new InstanceStore(db);
  groups.upsert(testGroup({ id: 'web' }), T0);
  groups.upsert(testGroup({ id: 'api' }), T0);
  instances.insertLaunched('web', [{ id: 'i-1', providerState: 'running' }, { id: 'i-2', providerState: 'running' }], 'launched', 'test', T0);
  instances.insertLaunched('api', [{ id: 'a-1', providerState: 'running' }], 'launched', 'test', T0);
  return { db, dbPath, telemetry: new TelemetryStore(db), rollups: new RollupStore(db) };
}

const seqs = new Map<string, number>();
/** A sample of `instanceId` taken at `sampleAt`, with the next sequence number unless `seq`, received at `receivedAt` (default: when taken). */
function sample(instanceId: string, sampleAt: number, cpu: number, mem: number, o: { seq?: number; receivedAt?: number } = {}): SampleRecord {
  const s = o.seq ?? (seqs.get(instanceId) ?? 0) + 1;
  seqs.set(instanceId, Math.max(s, seqs.get(instanceId) ?? 0));
  return { instanceId, seq: s, sampleAt, receivedAt: o.receivedAt ?? sampleAt, cpu, mem };
}

const count = (db: Db, table: string) => (db.prepare(`SELECT COUNT(*) AS n FROM ${table}`).get() as { n: number }).n;

describe('per-instance 1-minute rollups', () => {
  it('are exact for a known set of samples, per instance and over the group', () => {
    const { telemetry, rollups } = seeded();
    telemetry.writeBatch([
      sample('i-1', at(0, 1), 10, 40), sample('i-1', at(0, 2), 20, 41), sample('i-1', at(0, 59), 30.75, 42),
      sample('i-2', at(0, 5), 50, 60), sample('i-2', at(0, 6), 70.5, 61),
      sample('i-1', at(1, 0), 90, 10),
      sample('a-1', at(0, 3), 99, 99),
    ]);
    expect(rollups.instanceMinutes('web', at(0), at(2))).toEqual([
      { instanceId: 'i-1', minute: at(0), n: 3, cpuAvg: 20.25, cpuMax: 30.75, memAvg: 41, memMax: 42 },
      { instanceId: 'i-2', minute: at(0), n: 2, cpuAvg: 60.25, cpuMax: 70.5, memAvg: 60.5, memMax: 61 },
      { instanceId: 'i-1', minute: at(1), n: 1, cpuAvg: 90, cpuMax: 90, memAvg: 10, memMax: 10 },
    ]);
    expect(rollups.groupMinutes('web', at(0), at(2))).toEqual([
      { minute: at(0), instances: 2, n: 5, cpuAvg: 40.25, cpuMax: 70.5, memAvg: 50.75, memMax: 61 },
      { minute: at(1), instances: 1, n: 1, cpuAvg: 90, cpuMax: 90, memAvg: 10, memMax: 10 },
    ]);
    expect(rollups.groupMinutes('api', at(0), at(2))).toEqual([{ minute: at(0), instances: 1, n: 1, cpuAvg: 99, cpuMax: 99, memAvg: 99, memMax: 99 }]);
  });

  it.each([
    {
      name: 'a late sample (replayed after an outage, with its old time) folds into its own minute',
      later: () => [sample('i-1', at(30, 0), 80, 80), sample('i-1', at(0, 30), 50, 50, { receivedAt: at(30, 1) })],
      want: [{ minute: at(0), n: 3, cpuAvg: 30, cpuMax: 50, memAvg: 40, memMax: 50 }, { minute: at(30), n: 1, cpuAvg: 80, cpuMax: 80, memAvg: 80, memMax: 80 }],
    },
    {
      name: 'a sample already stored (its ack was lost) is not counted twice',
      later: () => [sample('i-1', at(0, 1), 10, 30, { seq: 1 }), sample('i-1', at(0, 2), 30, 40, { seq: 2 })],
      want: [{ minute: at(0), n: 2, cpuAvg: 20, cpuMax: 30, memAvg: 35, memMax: 40 }],
    },
    {
      name: 'a replay mixing stored and new samples of an old minute counts only the new ones',
      later: () => [sample('i-1', at(0, 2), 30, 40, { seq: 2 }), sample('i-1', at(0, 3), 50, 20, { seq: 3 }), sample('i-1', at(0, 4), 60, 90, { seq: 4 })],
      want: [{ minute: at(0), n: 4, cpuAvg: 37.5, cpuMax: 60, memAvg: 45, memMax: 90 }],
    },
  ])('$name', ({ later, want }) => {
    const { telemetry, rollups } = seeded();
    seqs.clear();
    telemetry.writeBatch([sample('i-1', at(0, 1), 10, 30), sample('i-1', at(0, 2), 30, 40)]);
    telemetry.writeBatch(later());
    expect(rollups.instanceMinutes('web', at(0), at(60)).map(({ instanceId: _, ...r }) => r)).toEqual(want);
  });

  it('reads the minutes that start in [from, to), oldest first, at most `limit` rows', () => {
    const { telemetry, rollups } = seeded();
    telemetry.writeBatch([0, 1, 2, 3].flatMap((m) => [sample('i-1', at(m, 10), 10, 10), sample('i-2', at(m, 10), 20, 20)]));
    expect(rollups.instanceMinutes('web', at(1), at(3)).map((r) => [r.minute, r.instanceId])).toEqual([[at(1), 'i-1'], [at(1), 'i-2'], [at(2), 'i-1'], [at(2), 'i-2']]);
    expect(rollups.instanceMinutes('web', at(1) + 1, at(3)).map((r) => r.minute)).toEqual([at(2), at(2)]);
    expect(rollups.instanceMinutes('web', at(0), at(4), { limit: 3 })).toHaveLength(3);
    expect(rollups.groupMinutes('web', at(0), at(4), { limit: 2 }).map((r) => r.minute)).toEqual([at(0), at(1)]);
    expect(() => rollups.groupMinutes('web', 0, 1, { limit: 0 })).toThrow(TypeError);
  });
});

describe('retention', () => {
  it('deletes raw samples older than the window and keeps their rollups', () => {
    const { db, telemetry, rollups } = seeded();
    telemetry.writeBatch([sample('i-1', at(0, 1), 10, 10), sample('i-1', at(0, 2), 20, 20), sample('i-1', at(90, 0), 30, 30)]);
    const removed = telemetry.pruneExpired({ samplesBefore: at(90) - HOUR, rollupsBefore: at(90) - 14 * DAY, chunk: 100, budgetMs: 1_000 });
    expect(removed).toEqual({ samples: 2, rollups: 0 });
    expect(db.prepare('SELECT ts FROM samples').all()).toEqual([{ ts: at(90) }]);
    expect(rollups.instanceMinutes('web', at(0), at(91)).map((r) => [r.minute, r.n])).toEqual([[at(0), 2], [at(90), 1]]);
  });

  it('deletes rollups older than their retention in every group, in bounded chunks', () => {
    const { db, telemetry, rollups } = seeded();
    const old = at(0) - 15 * DAY;
    telemetry.writeBatch([
      ...[0, 1, 2].map((m) => sample('i-1', old + m * MIN, 10, 10)), sample('a-1', old, 10, 10), sample('a-1', old + MIN, 10, 10),
      sample('i-1', at(0), 50, 50), sample('a-1', at(0), 60, 60),
    ]);
    expect(count(db, 'sample_minutes')).toBe(7);
    const limits = { samplesBefore: 0, rollupsBefore: at(0) - 14 * DAY, budgetMs: 1_000 };
    // A call of 4 rows: api's 2 old minutes and 2 of web's 3; a run loops until a short chunk.
    expect(telemetry.pruneRollups(limits.rollupsBefore, 4)).toBe(4);
    expect(telemetry.pruneExpired({ ...limits, chunk: 4 })).toEqual({ samples: 0, rollups: 1 });
    expect(telemetry.pruneExpired({ ...limits, chunk: 4 })).toEqual({ samples: 0, rollups: 0 });
    expect(rollups.groupMinutes('web', 0, at(1)).map((r) => r.minute)).toEqual([at(0)]);
    expect(rollups.groupMinutes('api', 0, at(1)).map((r) => r.minute)).toEqual([at(0)]);
  });

  it('the monitor server prunes both with its configured retentions, and rolls up what agents send', async () => {
    const { db, dbPath, telemetry, rollups } = seeded();
    const clock = new ManualClock(at(0, 30) + 15 * DAY);
    const now = clock.now();
    seqs.clear();
    telemetry.writeBatch([
      sample('i-1', now - 15 * DAY, 10, 10), // rollup past 14 days: goes
      sample('i-1', now - 2 * HOUR, 20, 20), // raw past 1 h: goes, its rollup stays
      sample('i-1', now - 10 * MIN, 30, 30), // stays
    ]);
    const cfg = loadMonitorServerConfig({ env: { AUTOSCALER_DB: dbPath, MONITOR_GRPC_PORT: '0', MONITOR_HTTP_PORT: '0', MONITOR_FLUSH_INTERVAL_MS: '20' } });
    const handle = await new MonitorServer(cfg, db, clock, captureLogger('warn').log).start();
    cleanup.push(() => handle.close());
    const client = new (monitorProto().monitor.v1.Monitor)(`127.0.0.1:${handle.grpcPort}`, grpc.credentials.createInsecure());
    cleanup.push(() => client.close());
    const reg = await new Promise<{ session_id: string; last_seq: string }>((resolve, reject) =>
      client.Register({ instance_id: 'i-1', group_id: 'web', agent_version: 'test', address: '' }, (err, res) => (err || !res ? reject(err) : resolve(res))));
    const md = new grpc.Metadata();
    md.set(SESSION_METADATA_KEY, reg.session_id);
    const stream = client.Heartbeats(md);
    stream.on('error', () => {});
    cleanup.push(() => { stream.cancel(); });
    const first = Number(reg.last_seq) + 1;
    stream.write({ seq: first, sample_time_ms: now - 60_000, cpu_percent: 40, mem_percent: 25 }); // a minute late
    stream.write({ seq: first + 1, sample_time_ms: now, cpu_percent: 60, mem_percent: 35 });
    // The prune timer runs every PRUNE_EVERY_MS (5 s) of real time.
    await waitFor('old samples and rollups pruned', () => count(db, 'samples') === 3 && count(db, 'sample_minutes') === 4, 15_000);
    expect(db.prepare('SELECT ts FROM samples ORDER BY ts').all()).toEqual([{ ts: now - 10 * MIN }, { ts: now - 60_000 }, { ts: now }]);
    expect(rollups.instanceMinutes('web', 0, now + MIN).map((r) => [r.minute, r.n, r.cpuAvg])).toEqual([
      [now - 2 * HOUR - 30_000, 1, 20], [now - 10 * MIN - 30_000, 1, 30], [now - 90_000, 1, 40], [now - 30_000, 1, 60],
    ]);
  }, 20_000);

  it('deletes decisions, activities, group events and closed launch intents past the window; keeps open intents and young rows', () => {
    const { db } = fresh();
    const events = new EventStore(db);
    const groups = new GroupStore(db);
    const intents = new IntentStore(db);
    const decision = { current: 1, desired: 2, reason: 'ScaleOut' as const, message: 'up', trail: ['ScaleOut' as const], details: {} };
    const old = T0 - 31 * DAY;
    groups.upsert(testGroup({ id: 'web' }), old); // its 'created' event
    groups.setPaused('web', true, old + 1, 'test');
    groups.setPaused('web', false, T0, 'test');
    for (const ts of [old, old + 1, T0]) {
      events.recordDecision('web', decision, ts);
      events.recordActivity({ ts, groupId: 'web', instanceId: 'i-1', action: 'launch', cause: 'test', outcome: 'ok', error: null });
    }
    intents.create('t-done', 'web', 1, 'test', old);
    intents.close('t-done', 'done', null, old);
    intents.create('t-open', 'web', 1, 'test', old);
    intents.create('t-late', 'web', 1, 'test', old);
    intents.close('t-late', 'failed', 'x', T0);
    const history = new HistoryRetention(db);
    expect(history.prune(T0 - 30 * DAY, 1)).toEqual({ decisions: 1, activities: 1, groupEvents: 1, launchIntents: 1 });
    expect(history.prune(T0 - 30 * DAY, 100)).toEqual({ decisions: 1, activities: 1, groupEvents: 1, launchIntents: 0 });
    expect(history.prune(T0 - 30 * DAY, 100)).toEqual({ decisions: 0, activities: 0, groupEvents: 0, launchIntents: 0 });
    expect(db.prepare('SELECT ts FROM decisions').all()).toEqual([{ ts: T0 }]);
    expect(db.prepare('SELECT ts FROM activities').all()).toEqual([{ ts: T0 }]);
    expect(db.prepare('SELECT ts, kind FROM group_events').all()).toEqual([{ ts: T0, kind: 'resume' }]);
    expect(db.prepare('SELECT token FROM launch_intents ORDER BY token').all()).toEqual([{ token: 't-late' }, { token: 't-open' }]);
  });
});

describe('retention keys', () => {
  it('default to 1 h of raw samples and 14 days of rollups', () => {
    expect(loadMonitorServerConfig({ env: {} })).toMatchObject({ sampleRetentionMs: HOUR, rollupRetentionMs: 14 * DAY });
    expect([DEFAULT_SAMPLE_RETENTION_MS, DEFAULT_ROLLUP_RETENTION_MS]).toEqual([HOUR, 14 * DAY]);
    expect(loadMonitorServerConfig({ env: { MONITOR_ROLLUP_RETENTION_MS: String(HOUR) } }).rollupRetentionMs).toBe(HOUR);
  });

  it.each([
    { name: 'rollups kept under an hour', env: { MONITOR_ROLLUP_RETENTION_MS: '3599999' }, want: /^MONITOR_ROLLUP_RETENTION_MS: must be >= 3600000/ },
    { name: 'rollups kept for "two weeks"', env: { MONITOR_ROLLUP_RETENTION_MS: 'two weeks' }, want: /^MONITOR_ROLLUP_RETENTION_MS: must be a number/ },
    { name: 'rollups kept a fraction of a ms', env: { MONITOR_ROLLUP_RETENTION_MS: '3600000.5' }, want: /^MONITOR_ROLLUP_RETENTION_MS: must be a whole number/ },
    { name: 'rollups shorter than the raw samples', env: { MONITOR_SAMPLE_RETENTION_MS: String(3 * HOUR), MONITOR_ROLLUP_RETENTION_MS: String(2 * HOUR) }, want: /^MONITOR_ROLLUP_RETENTION_MS: must be >= MONITOR_SAMPLE_RETENTION_MS/ },
    { name: 'raw samples kept under a minute', env: { MONITOR_SAMPLE_RETENTION_MS: '59999' }, want: /^MONITOR_SAMPLE_RETENTION_MS: must be >= 60000/ },
  ])('refuses $name, naming the key', ({ env, want }) => {
    expect(configProblems(() => loadMonitorServerConfig({ env }))).toEqual([expect.stringMatching(want)]);
  });
});

describe('migration to rollups', () => {
  it('migrates a database of the previous version, keeps its rows, and rolls up the raw samples it had', () => {
    const version = MIGRATIONS.findIndex((m) => m.includes('CREATE TABLE sample_minutes'));
    expect(version).toBeGreaterThan(0);
    const dbPath = join(tempDir('autoscaler-rollups-'), 'old.db');
    const old = new Database(dbPath);
    for (const m of MIGRATIONS.slice(0, version)) old.exec(m);
    old.pragma(`user_version = ${version}`);
    old.exec(`
      INSERT INTO groups (id, min_size, max_size, desired, policy, created_at, updated_at) VALUES ('web', 1, 4, 2, '{}', 1, 1);
      INSERT INTO instances (id, group_id, state, state_changed_at) VALUES ('i-1', 'web', 'running', 1), ('i-2', 'web', 'running', 1);
      INSERT INTO latest (instance_id, seq, sample_at, received_at, cpu, mem) VALUES ('i-1', 3, ${at(1, 5)}, ${at(1, 5)}, 70, 20);
      INSERT INTO samples (ts, instance_id, seq, cpu, mem) VALUES
        (${at(0, 1)}, 'i-1', 1, 10, 40), (${at(0, 2)}, 'i-1', 2, 20.5, 42), (${at(1, 5)}, 'i-1', 3, 70, 20), (${at(0, 9)}, 'i-2', 1, 50, 30);
      INSERT INTO decisions (ts, group_id, from_count, to_count, reason, message, details) VALUES (1, 'web', 1, 2, 'ScaleOut', 'up', '{}');
      INSERT INTO group_minutes (group_id, minute, ready, capacity, cpu, mem, samples) VALUES ('web', ${at(0)}, 2, 2, 80, 70, 1);
    `);
    old.close();

    const db = openStore(dbPath);
    cleanup.push(() => { db.close(); });
    expect(db.pragma('user_version', { simple: true })).toBe(MIGRATIONS.length);
    expect([count(db, 'samples'), count(db, 'latest'), count(db, 'instances'), count(db, 'decisions'), count(db, 'group_minutes')]).toEqual([4, 1, 2, 1, 1]);
    expect(new RollupStore(db).instanceMinutes('web', 0, at(2))).toEqual([
      { instanceId: 'i-1', minute: at(0), n: 2, cpuAvg: 15.25, cpuMax: 20.5, memAvg: 41, memMax: 42 },
      { instanceId: 'i-2', minute: at(0), n: 1, cpuAvg: 50, cpuMax: 50, memAvg: 30, memMax: 30 },
      { instanceId: 'i-1', minute: at(1), n: 1, cpuAvg: 70, cpuMax: 70, memAvg: 20, memMax: 20 },
    ]);
    // Written after the migration: folded into the backfilled minute.
    new TelemetryStore(db).writeBatch([{ instanceId: 'i-1', seq: 4, sampleAt: at(1, 30), receivedAt: at(1, 30), cpu: 90, mem: 40 }]);
    expect(new RollupStore(db).instanceMinutes('web', at(1), at(2))).toEqual([{ instanceId: 'i-1', minute: at(1), n: 2, cpuAvg: 80, cpuMax: 90, memAvg: 30, memMax: 40 }]);
  });
});
