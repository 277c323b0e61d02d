/**
 * State you can recover (issue 7, item 6): `db backup` while the monitor server ingests, `db check`
 * on good and damaged files, and the monitor server while its file is locked by another process
 * or its disk is full: /healthz says 503 with the reason, nothing is acked that is not stored, and
 * when the fault clears everything buffered is stored and /healthz is 200 again.
 * The lock case runs the built CLI (`npm run build` first; npm test does it).
 */
import Database from 'better-sqlite3';
import * as grpc from '@grpc/grpc-js';
import { copyFileSync, existsSync, openSync, readFileSync, closeSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { dbBackup, dbCheck } from '../cli/db.js';
import { loadMonitorServerConfig } from '../config/monitor-server.js';
import { systemClock } from '../lib/clock.js';
import { SESSION_METADATA_KEY, monitorProto, type HeartbeatAck__Output, type MonitorClient } from '../lib/proto.js';
import { captureLogger, testGroup } from '../lib/testing.js';
import { MonitorServer, type MonitorServerHandle } from '../monitor-server/server.js';
import { BUSY_TIMEOUT_MS, openStore, type Db } from '../store/db.js';
import { GroupStore } from '../store/groups.js';
import { InstanceStore } from '../store/instances.js';
import { MIGRATIONS } from '../store/migrations.js';
import { TelemetryStore } from '../store/telemetry.js';
import { killAll, startCli, tempDir, waitFor } from './helpers.js';

afterAll(killAll);
const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

/** A temp store with group web and these launched instances; closed after the test. */
function seed(ids: readonly string[]): { db: Db; dbPath: string; dir: string } {
  const dir = tempDir('autoscaler-db-');
  const dbPath = join(dir, 'a.db');
  const db = openStore(dbPath);
  cleanup.push(() => { db.close(); });
  new GroupStore(db).upsert(testGroup({ id: 'web' }), Date.now());
  new InstanceStore(db).insertLaunched('web', ids.map((id) => ({ id, providerState: 'running' })), 'launched', 'test', Date.now());
  return { db, dbPath, dir };
}

const SERVER_ENV = {
  MONITOR_GRPC_PORT: '0', MONITOR_HTTP_PORT: '0', MONITOR_FLUSH_INTERVAL_MS: '20',
  // These tests are about storage; nobody may turn suspect while writes fail.
  MONITOR_SUSPECT_AFTER_MS: '60000', MONITOR_DEAD_AFTER_MS: '120000',
};

async function startInProcess(db: Db, dbPath: string): Promise<MonitorServerHandle> {
  const cfg = loadMonitorServerConfig({ env: { AUTOSCALER_DB: dbPath, ...SERVER_ENV } });
  const handle = await new MonitorServer(cfg, db, systemClock, captureLogger('warn').log).start();
  cleanup.push(() => handle.close());
  return handle;
}

function newClient(port: number): MonitorClient {
  const Ctor = monitorProto().monitor.v1.Monitor;
  const client = new Ctor(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  cleanup.push(() => client.close());
  return client;
}

/** Register `id` and open its heartbeat stream; `send(seq)` writes a valid heartbeat. */
async function agentStream(client: MonitorClient, id: string) {
  const reg = await new Promise<{ session_id: string }>((resolve, reject) =>
    client.Register({ instance_id: id, group_id: 'web', agent_version: 'test', address: '127.0.0.1' }, (err, res) => (err || !res ? reject(err) : resolve(res))));
  const md = new grpc.Metadata();
  md.set(SESSION_METADATA_KEY, reg.session_id);
  const stream = client.Heartbeats(md);
  const acks: HeartbeatAck__Output[] = [];
  stream.on('data', (a: HeartbeatAck__Output) => acks.push(a));
  stream.on('error', () => {});
  cleanup.push(() => { stream.cancel(); });
  return {
    acks,
    maxAck: () => acks.reduce((m, a) => Math.max(m, Number(a.persisted_seq)), 0),
    send: (seq: number) => stream.write({ seq, sample_time_ms: Date.now(), cpu_percent: 10 + (seq % 50), mem_percent: 30 }),
  };
}

const storedSeqs = (db: Db, id: string) => (db.prepare('SELECT seq FROM samples WHERE instance_id = ? ORDER BY seq').all(id) as { seq: number }[]).map((r) => r.seq);
const oneTo = (n: number) => Array.from({ length: n }, (_, k) => k + 1);

async function healthz(port: number): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(20_000) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('db backup', () => {
  it('copies a consistent snapshot while the monitor server ingests, and never overwrites unless told', async () => {
    const ids = ['b-1', 'b-2', 'b-3'];
    const { db, dbPath, dir } = seed(ids);
    const server = await startInProcess(db, dbPath);
    const client = newClient(server.grpcPort);
    const agents = await Promise.all(ids.map((id) => agentStream(client, id)));
    let seq = 0;
    const MAX_SEQ_SENT = 1_500;
    const writer = setInterval(() => {
      if (seq >= MAX_SEQ_SENT) return;
      seq++;
      for (const a of agents) a.send(seq);
    }, 2);
    cleanup.push(() => clearInterval(writer));
    const maxStored = db.prepare<[string], { m: number | null }>('SELECT MAX(seq) AS m FROM samples WHERE instance_id = ?');
    await waitFor('200 samples stored per instance', () => ids.every((id) => (maxStored.get(id)?.m ?? 0) >= 200));

    const before = ids.map((id) => maxStored.get(id)?.m ?? 0);
    const file = join(dir, 'backup.db');
    const line = await dbBackup(dbPath, file);
    const after = ids.map((id) => maxStored.get(id)?.m ?? 0);
    expect(line).toMatch(/^backed up .* to .*backup\.db: \d+ pages, .*, schema version \d+, in \d+ ms$/);
    // Still ingesting while the copy was made: the source moved on.
    await waitFor('ingest continues after the backup', () => ids.every((id, k) => (maxStored.get(id)?.m ?? 0) > (after[k] ?? 0)));
    clearInterval(writer);

    const copy = new Database(file, { readonly: true, fileMustExist: true });
    cleanup.push(() => { copy.close(); });
    expect(copy.pragma('integrity_check', { simple: true })).toBe('ok');
    expect(existsSync(`${file}-wal`)).toBe(false);
    ids.forEach((id, k) => {
      const seqs = storedSeqs(copy, id);
      // A snapshot: each instance's samples are 1..n, with n between the counts around the backup.
      expect(seqs).toEqual(oneTo(seqs.length));
      expect(seqs.length).toBeGreaterThanOrEqual(before[k] ?? 0);
      expect(seqs.length).toBeLessThanOrEqual(after[k] ?? 0);
    });
    console.log(JSON.stringify({ test: 'backup', maxSeqBefore: before, maxSeqInCopy: ids.map((id) => storedSeqs(copy, id).length), maxSeqAfter: after }));
    expect(copy.prepare('SELECT COUNT(*) AS n FROM instances').get()).toEqual({ n: 3 });
    expect(dbCheck(file).ok).toBe(true);

    const bytes = readFileSync(file);
    await expect(dbBackup(dbPath, file)).rejects.toThrow(/already exists; remove it or allow overwriting/);
    expect(readFileSync(file).equals(bytes)).toBe(true);
    await expect(dbBackup(dbPath, file, { overwrite: true })).resolves.toMatch(/^backed up/);
    expect(readFileSync(file).equals(bytes)).toBe(false);
    await expect(dbBackup(join(dir, 'nope.db'), join(dir, 'other.db'))).rejects.toThrow(/no database at/);
    await expect(dbBackup(dbPath, join(dir, 'missing-dir', 'b.db'))).rejects.toThrow(/directory .* does not exist/);
  });
});

/** A closed, checkpointed store file with rows in every table that matters. */
function goldenFile(): string {
  const { db, dbPath } = seed(['g-1', 'g-2']);
  const t0 = Date.now();
  const rows = Array.from({ length: 3_000 }, (_, k) => ({ instanceId: k % 2 ? 'g-1' : 'g-2', seq: Math.floor(k / 2) + 1, sampleAt: t0 + k, receivedAt: t0 + k, cpu: 40, mem: 20 }));
  new TelemetryStore(db).writeBatch(rows);
  db.close();
  return dbPath;
}

/** Overwrite `bytes` bytes at `offset` with seeded garbage. */
function scribble(path: string, offset: number, bytes: number): void {
  let x = 0x2545f491;
  const junk = Buffer.alloc(bytes, 0).map(() => {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    return x & 0xff;
  });
  const fd = openSync(path, 'r+');
  try {
    writeSync(fd, junk, 0, junk.length, offset);
  } finally {
    closeSync(fd);
  }
}

/** Change a copy with a plain connection (no migrations, foreign keys off). */
function alter(path: string, f: (db: Db) => void): void {
  const db = new Database(path);
  try {
    f(db);
  } finally {
    db.close();
  }
}

describe('db check', () => {
  it.each([
    { name: 'a sound database', damage: (_p: string) => {}, ok: true, want: /^result {8}ok$/m },
    {
      name: 'garbage over the pages of the samples table',
      damage: (p: string) => {
        const db = new Database(p, { readonly: true });
        const root = (db.prepare("SELECT rootpage FROM sqlite_schema WHERE name = 'samples'").get() as { rootpage: number }).rootpage;
        const pageSize = db.pragma('page_size', { simple: true }) as number;
        db.close();
        scribble(p, (root - 1) * pageSize, pageSize);
      },
      ok: false, want: /^problem: integrity check: .*(malformed|btreeInitPage|Tree \d+ page \d+|wrong # of entries|corrupt)/m,
    },
    { name: 'garbage over the file header', damage: (p: string) => scribble(p, 0, 100), ok: false, want: /^problem: cannot read: file is not a database$/m },
    {
      name: 'a schema newer than this build',
      damage: (p: string) => alter(p, (db) => db.pragma(`user_version = ${MIGRATIONS.length + 1}`)),
      ok: false, want: /^problem: schema version \d+ is newer than this build/m,
    },
    {
      name: 'an instance of a group that does not exist',
      damage: (p: string) => alter(p, (db) => {
        db.pragma('foreign_keys = OFF');
        db.prepare("INSERT INTO instances (id, group_id, state, state_changed_at) VALUES ('orphan', 'ghost', 'running', 0)").run();
      }),
      ok: false, want: /^problem: foreign key check: 1 row\(s\) point at missing parents, first: instances rowid \d+ → groups$/m,
    },
    { name: 'no file at all', damage: undefined, ok: false, want: /^problem: cannot open: no database at/m },
  ])('$name', ({ damage, ok, want }) => {
    const target = join(tempDir('autoscaler-check-'), 'copy.db');
    if (damage !== undefined) {
      copyFileSync(goldenFile(), target);
      damage(target);
    }
    const r = dbCheck(target);
    expect({ ok: r.ok, text: r.lines.join('\n') }).toMatchObject({ ok, text: expect.stringMatching(want) });
    if (ok) {
      expect(r.lines).toContain('integrity     ok');
      expect(r.lines.join('\n')).toMatch(/^rows {10}.*samples 3000/m);
      expect(r.report.schemaVersion).toBe(MIGRATIONS.length);
    }
  });
});

describe('the monitor server when the store cannot be written', () => {
  it(`file locked by another process for longer than the busy timeout (${BUSY_TIMEOUT_MS} ms): 503 with the reason, no ack, then all stored`, async () => {
    const { db, dbPath } = seed(['lk-1']);
    db.close();
    const monitor = startCli(['monitor-server'], { AUTOSCALER_DB: dbPath, ...SERVER_ENV, LOG_LEVEL: 'info' });
    cleanup.push(() => monitor.stop());
    const listening = await waitFor('monitor server listening', () => monitor.logs().find((l) => l.msg === 'monitor server listening'), 15_000);
    const port = (k: 'grpcAddress' | 'httpAddress') => Number(String(listening[k]).split(':').pop());
    const agent = await agentStream(newClient(port('grpcAddress')), 'lk-1');
    for (let s = 1; s <= 5; s++) agent.send(s);
    await waitFor('ack of 5', () => agent.maxAck() === 5);
    expect((await healthz(port('httpAddress'))).status).toBe(200);

    const locker = new Database(dbPath);
    cleanup.push(() => { if (locker.open) locker.close(); });
    locker.exec('BEGIN EXCLUSIVE');
    for (let s = 6; s <= 20; s++) agent.send(s);
    const degraded = await waitFor('healthz 503', async () => {
      const h = await healthz(port('httpAddress'));
      return h.status === 503 ? h : undefined;
    }, 40_000, 200);
    expect(degraded.body).toMatchObject({ status: 'degraded', error: expect.stringMatching(/database is locked/) });
    // Nothing could be written, so nothing beyond what was stored before the lock is acked.
    expect(agent.maxAck()).toBe(5);
    expect(storedSeqs(locker, 'lk-1')).toEqual(oneTo(5));
    locker.exec('COMMIT');
    locker.close();

    await waitFor('ack of 20 after the lock', () => agent.maxAck() === 20, 30_000);
    expect((await healthz(port('httpAddress'))).status).toBe(200);
    const check = openStore(dbPath, { readonly: true });
    cleanup.push(() => { check.close(); });
    expect(storedSeqs(check, 'lk-1')).toEqual(oneTo(20));
    expect(monitor.logs().some((l) => l.msg === 'batch write failed; will retry')).toBe(true);
    expect(monitor.logs().some((l) => l.msg === 'batch write recovered')).toBe(true);
  }, 90_000);

  it('disk full (max_page_count on the server\'s connection): 503 with the reason, nothing acked beyond what is stored, then all stored', async () => {
    const { db, dbPath } = seed(['df-1']);
    const server = await startInProcess(db, dbPath);
    const agent = await agentStream(newClient(server.grpcPort), 'df-1');
    for (let s = 1; s <= 10; s++) agent.send(s);
    await waitFor('ack of 10', () => agent.maxAck() === 10);
    expect((await healthz(server.httpPort)).status).toBe(200);

    // max_page_count is per connection: this is the connection the server writes with.
    const pages = db.pragma('page_count', { simple: true }) as number;
    db.pragma(`max_page_count = ${pages}`);
    const TOTAL = 1_510; // within the default burst of 2,000, and more than the free room of one page
    for (let s = 11; s <= TOTAL; s++) agent.send(s);
    const degraded = await waitFor('healthz 503', async () => {
      const h = await healthz(server.httpPort);
      return h.status === 503 ? h : undefined;
    }, 15_000, 50);
    expect(degraded.body).toMatchObject({ status: 'degraded', error: expect.stringMatching(/database or disk is full/) });
    const stored = storedSeqs(db, 'df-1');
    expect(stored).toEqual(oneTo(stored.length));
    expect(stored.length).toBeLessThan(TOTAL);
    expect(agent.maxAck()).toBeLessThanOrEqual(stored.length);
    expect(server.stats().queued).toBeGreaterThan(0);

    db.pragma('max_page_count = 4294967294');
    await waitFor(`ack of ${TOTAL} after space is back`, () => agent.maxAck() === TOTAL, 15_000);
    expect((await healthz(server.httpPort)).status).toBe(200);
    expect(storedSeqs(db, 'df-1')).toEqual(oneTo(TOTAL));
  });
});
