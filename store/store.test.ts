import Database from 'better-sqlite3';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openStore, StoreError, type Db } from './db.js';
import { EventStore } from './events.js';
import { GroupStore } from './groups.js';
import { InstanceStore } from './instances.js';
import { MIGRATIONS } from './migrations.js';
import { SimLoadStore } from './simload.js';
import { StatusReader } from './status.js';
import { TelemetryStore } from './telemetry.js';
import { testGroup } from '../lib/testing.js';

const spec = testGroup();

const open: Db[] = [];
function fresh(): { db: Db; path: string } {
  const path = join(mkdtempSync(join(tmpdir(), 'autoscaler-store-')), 'nested', 'a.db');
  const db = openStore(path);
  open.push(db);
  return { db, path };
}
/** The test group with these instances registered at t=1. */
function withInstances(db: Db, ids: readonly string[]): InstanceStore {
  new GroupStore(db).upsert(spec, 1);
  const instances = new InstanceStore(db);
  for (const id of ids) instances.register({ id, groupId: 'web', address: '', agentVersion: '' }, 1);
  return instances;
}

afterEach(() => {
  for (const db of open.splice(0)) if (db.open) db.close();
});

describe('openStore', () => {
  it('creates the file with WAL and the current schema, and reopens idempotently', () => {
    const { db, path } = fresh();
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.pragma('user_version', { simple: true })).toBe(MIGRATIONS.length);
    const again = openStore(path);
    open.push(again);
    expect(again.pragma('user_version', { simple: true })).toBe(MIGRATIONS.length);
  });

  it('refuses a database from a newer build', () => {
    const { db, path } = fresh();
    db.pragma(`user_version = ${MIGRATIONS.length + 1}`);
    expect(() => openStore(path)).toThrow(/newer than this build/);
  });

  it('refuses to open a missing file read-only', () => {
    expect(() => openStore(join(tmpdir(), 'definitely-missing-autoscaler.db'), { readonly: true })).toThrow(StoreError);
  });
});

describe('groups and instances', () => {
  it('upsert keeps the decided capacity within new bounds', () => {
    const { db } = fresh();
    const groups = new GroupStore(db);
    expect(groups.upsert(spec, 1).desired).toBe(1);
    groups.setDesired('web', 4, 2);
    expect(groups.upsert({ ...spec, maxSize: 3 }, 3)).toMatchObject({ desired: 3, maxSize: 3 });
    expect(groups.setPaused('nope', true, 4)).toBe(false);
  });

  it.each([
    { name: 'unknown group', setup: () => {}, req: { id: 'i-1', groupId: 'other' }, want: { ok: false, code: 'UnknownGroup' } },
    { name: 'new instance is adopted', setup: () => {}, req: { id: 'i-1', groupId: 'web' }, want: { ok: true, known: false, lastSeq: 0 } },
    { name: 'launched instance registers', setup: (s: InstanceStore) => s.insertPending('i-1', 'web', 'test', 1), req: { id: 'i-1', groupId: 'web' }, want: { ok: true, known: true } },
    { name: 'terminated instance is refused', setup: (s: InstanceStore) => { s.insertPending('i-1', 'web', 'test', 1); s.setState('i-1', 'terminated', 'x', 2); }, req: { id: 'i-1', groupId: 'web' }, want: { ok: false, code: 'Terminated' } },
    { name: 'wrong group is refused', setup: (s: InstanceStore) => s.insertPending('i-1', 'web', 'test', 1), req: { id: 'i-1', groupId: 'api' }, want: { ok: false, code: 'GroupMismatch' } },
  ])('register: $name', ({ setup, req, want }) => {
    const { db } = fresh();
    const groups = new GroupStore(db);
    groups.upsert(spec, 1);
    groups.upsert({ ...spec, id: 'api' }, 1);
    const s = new InstanceStore(db);
    setup(s);
    expect(s.register({ ...req, address: '127.0.0.1', agentVersion: '0.1.0' }, 10)).toMatchObject(want);
  });

  it('liveness never overrides the controller', () => {
    const { db } = fresh();
    new GroupStore(db).upsert(spec, 1);
    const s = new InstanceStore(db);
    s.insertPending('i-1', 'web', 'test', 1);
    s.register({ id: 'i-1', groupId: 'web', address: '', agentVersion: '' }, 2);
    expect(s.setLiveness('i-1', 'suspect', 'quiet', 3)).toBe(true);
    expect(s.setLiveness('i-1', 'suspect', 'quiet', 4)).toBe(false); // no change, no write
    expect(s.setState('i-1', 'terminating', 'scale in', 5)).toBe(true);
    expect(s.setLiveness('i-1', 'dead', 'silent', 6)).toBe(false);
    expect(s.get('i-1')).toMatchObject({ state: 'terminating', stateReason: 'scale in' });
    expect(s.setState('i-1', 'terminated', 'done', 7)).toBe(true);
    expect(s.setState('i-1', 'running', 'zombie', 8)).toBe(false);
    expect(s.get('i-1')).toMatchObject({ state: 'terminated', terminatedAt: 7 });
  });
});

describe('telemetry', () => {
  it('writes a batch atomically, keeps the newest sample as latest, and ignores replays', () => {
    const { db } = fresh();
    const instances = withInstances(db, ['i-1']);
    const t = new TelemetryStore(db);
    const row = (seq: number, cpu: number) => ({ instanceId: 'i-1', seq, sampleAt: 1_000 + seq, receivedAt: 2_000 + seq, cpu, mem: 10 });
    t.writeBatch([row(1, 10), row(2, 20), row(3, 30)]);
    t.writeBatch([row(2, 99), row(3, 99)]); // replay after a lost ack
    expect(db.prepare('SELECT COUNT(*) AS n FROM samples').get()).toEqual({ n: 3 });
    expect(instances.get('i-1')).toMatchObject({ cpu: 30, seq: 3, lastSeenAt: 2_003 });
    expect(instances.register({ id: 'i-1', groupId: 'web', address: '', agentVersion: '' }, 5_000)).toMatchObject({ ok: true, lastSeq: 3 });
  });

  it('last seen is the later of Register and the newest stored sample, a late replay included; latest keeps the highest seq', () => {
    const { db } = fresh();
    const instances = withInstances(db, ['i-1']);
    const t = new TelemetryStore(db);
    instances.register({ id: 'i-1', groupId: 'web', address: '', agentVersion: '' }, 10_000);
    expect(instances.get('i-1')?.lastSeenAt).toBe(10_000); // no sample yet: Register's time
    t.writeBatch([{ instanceId: 'i-1', seq: 5, sampleAt: 9_000, receivedAt: 9_500, cpu: 50, mem: 10 }]);
    expect(instances.get('i-1')?.lastSeenAt).toBe(10_000); // a sample received before the Register does not move it back
    t.writeBatch([{ instanceId: 'i-1', seq: 6, sampleAt: 11_000, receivedAt: 11_100, cpu: 60, mem: 10 }]);
    // An older seq replayed later (the agent's buffer after an outage): a sign of life, not the latest value.
    t.writeBatch([{ instanceId: 'i-1', seq: 4, sampleAt: 8_000, receivedAt: 12_000, cpu: 99, mem: 99 }]);
    expect(instances.get('i-1')).toMatchObject({ lastSeenAt: 12_000, seq: 6, cpu: 60, mem: 10, sampleAt: 11_000 });
    expect(db.prepare('SELECT COUNT(*) AS n FROM samples').get()).toEqual({ n: 3 });
    // The ingest path never writes `instances` (the row the controller and the detector update).
    expect(db.prepare("SELECT last_seen_at AS at FROM instances WHERE id = 'i-1'").get()).toEqual({ at: 10_000 });
  });

  it('a failing batch writes nothing', () => {
    const { db } = fresh();
    withInstances(db, ['i-1']);
    const t = new TelemetryStore(db);
    // `latest` references instances: an unknown instance fails the whole transaction.
    expect(() => t.writeBatch([
      { instanceId: 'i-1', seq: 1, sampleAt: 1, receivedAt: 1, cpu: 1, mem: 1 },
      { instanceId: 'ghost', seq: 1, sampleAt: 1, receivedAt: 1, cpu: 1, mem: 1 },
    ])).toThrow(/FOREIGN KEY/);
    expect(db.prepare('SELECT COUNT(*) AS n FROM samples').get()).toEqual({ n: 0 });
  });

  it('prunes old samples in bounded chunks', () => {
    const { db } = fresh();
    withInstances(db, ['i-1']);
    const t = new TelemetryStore(db);
    t.writeBatch(Array.from({ length: 10 }, (_, k) => ({ instanceId: 'i-1', seq: k + 1, sampleAt: k * 100, receivedAt: k * 100, cpu: 1, mem: 1 })));
    expect(t.prune(500, 3)).toBe(3);
    expect(t.prune(500, 100)).toBe(2);
    expect(db.prepare('SELECT MIN(ts) AS m FROM samples').get()).toEqual({ m: 500 });
  });
});

describe('status', () => {
  it('reports groups with counts, average CPU, demand and decisions', () => {
    const { db } = fresh();
    withInstances(db, ['i-1', 'i-2']);
    new TelemetryStore(db).writeBatch([
      { instanceId: 'i-1', seq: 1, sampleAt: 1, receivedAt: 1, cpu: 40, mem: 1 },
      { instanceId: 'i-2', seq: 1, sampleAt: 1, receivedAt: 1, cpu: 60, mem: 1 },
    ]);
    new SimLoadStore(db).set('web', { kind: 'constant', value: 100 }, 0);
    new EventStore(db).recordDecision('web', { current: 2, desired: 2, reason: 'WithinTolerance', message: 'ok', trail: ['WithinTolerance'], details: { avgCpu: 50 } }, 5);
    const r = new StatusReader(db).report(10);
    expect(r.groups[0]).toMatchObject({ id: 'web', avgCpu: 50, counts: { running: 2 }, demand: { profile: 'constant:100', value: 100 } });
    expect(r.groups[0]?.decisions[0]).toMatchObject({ reason: 'WithinTolerance', details: { trail: ['WithinTolerance'], avgCpu: 50 } });
  });
});

describe('two processes, one file', () => {
  it('a second connection sees committed writes (WAL) and waits for the write lock', () => {
    const { db, path } = fresh();
    new GroupStore(db).upsert(spec, 1);
    const other = new Database(path);
    open.push(other);
    expect(other.prepare('SELECT id FROM groups').all()).toEqual([{ id: 'web' }]);
    expect(other.pragma('journal_mode', { simple: true })).toBe('wal');
  });
});
