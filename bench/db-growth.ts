/**
 * Database growth under steady load, in virtual time: a fleet reporting at a fixed rate, written
 * through the real store code (TelemetryStore.writeBatch, the monitor server's hot path, in
 * batches as its flush timer would make them) and pruned as the monitor server prunes
 * (TelemetryStore.pruneExpired every PRUNE_EVERY_MS with the configured retentions). Batches
 * are one virtual second of samples (`--flush-ms`; the server's 100 ms flush makes smaller ones of
 * the same rows, which only costs wall time here). Prints, per
 * virtual hour, the rows and bytes of the raw samples and of the rollups, and the file size
 * (page_count × page_size, plus the WAL). Past the raw retention the samples' share is flat;
 * the rollups grow until their own retention (14 days by default) and are flat after it, which
 * `--rollup-retention-h` shows in a short run. Bounded: stops after `--max-wall-s` real seconds.
 *
 *   npm run build && node dist/bench/db-growth.js [--instances 200] [--hz 1] [--hours 6]
 *     [--sample-retention-h 1] [--rollup-retention-h 336] [--flush-ms 1000] [--max-wall-s 110]
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { DEFAULT_ROLLUP_RETENTION_MS, DEFAULT_SAMPLE_RETENTION_MS } from '../config/monitor-server.js';
import { parseGroup } from '../domain/policy.js';
import { PRUNE_BUDGET_MS, PRUNE_CHUNK, PRUNE_EVERY_MS } from '../monitor-server/server.js';
import { mulberry32 } from '../sim/random.js';
import { openStore, type Db } from '../store/db.js';
import { GroupStore } from '../store/groups.js';
import { InstanceStore } from '../store/instances.js';
import { TelemetryStore, type SampleRecord } from '../store/telemetry.js';

const HOUR_MS = 3_600_000;
const MIB = 1024 * 1024;
/** Instances per group, as a fleet of several groups would have them. */
const INSTANCES_PER_GROUP = 50;
/** Virtual start: any fixed time, so runs compare. */
const START = Date.UTC(2026, 11, 1);

const { values } = parseArgs({
  options: {
    instances: { type: 'string', default: '200' },
    hz: { type: 'string', default: '1' },
    hours: { type: 'string', default: '6' },
    'sample-retention-h': { type: 'string', default: String(DEFAULT_SAMPLE_RETENTION_MS / HOUR_MS) },
    'rollup-retention-h': { type: 'string', default: String(DEFAULT_ROLLUP_RETENTION_MS / HOUR_MS) },
    'flush-ms': { type: 'string', default: '1000' },
    'max-wall-s': { type: 'string', default: '110' },
  },
});

function positive(name: keyof typeof values): number {
  const v = Number(values[name]);
  if (!(v > 0) || !Number.isFinite(v)) throw new TypeError(`--${name} must be a number > 0 (got ${values[name]})`);
  return v;
}

const instances = Math.round(positive('instances'));
const hz = positive('hz');
const hours = Math.round(positive('hours'));
const sampleRetentionMs = positive('sample-retention-h') * HOUR_MS;
const rollupRetentionMs = positive('rollup-retention-h') * HOUR_MS;
const flushMs = Math.round(positive('flush-ms'));
const maxWallMs = positive('max-wall-s') * 1000;

/** Bytes of a table (with its indexes) from dbstat. */
function tableBytes(db: Db, table: string): number {
  const r = db.prepare<[string, string], { b: number | null }>("SELECT SUM(pgsize) AS b FROM dbstat WHERE name = ? OR name IN (SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = ?)")
    .get(table, table);
  return r?.b ?? 0;
}

function fileBytes(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

function main(): void {
  const dir = mkdtempSync(join(tmpdir(), 'autoscaler-db-growth-'));
  const dbPath = join(dir, 'a.db');
  const db = openStore(dbPath);
  const ids = Array.from({ length: instances }, (_, i) => `i-${String(i).padStart(5, '0')}`);
  const groups = new GroupStore(db);
  const inst = new InstanceStore(db);
  for (let g = 0; g * INSTANCES_PER_GROUP < instances; g++) {
    const parsed = parseGroup({ id: `g-${g}`, minSize: 0, maxSize: 10_000 });
    if (!parsed.ok) throw new Error('bench group document is invalid');
    groups.upsert(parsed.value, START);
    inst.insertLaunched(`g-${g}`, ids.slice(g * INSTANCES_PER_GROUP, (g + 1) * INSTANCES_PER_GROUP).map((id) => ({ id, providerState: 'running' })), 'launched', 'bench', START);
  }
  const telemetry = new TelemetryStore(db);
  const random = mulberry32(1);
  const cpu = ids.map(() => 20 + random() * 60);
  const seqs = ids.map(() => 0);
  const intervalMs = 1000 / hz;
  // Agents are spread over the interval; each flush stores what arrived since the last one.
  const phase = ids.map(() => random() * intervalMs);
  const next = phase.slice();
  const pageSize = db.pragma('page_size', { simple: true }) as number;

  process.stdout.write(`db-growth: ${instances} instances at ${hz} Hz, ${hours} virtual h, raw retention ${sampleRetentionMs / HOUR_MS} h, `
    + `rollup retention ${rollupRetentionMs / HOUR_MS} h, flush every ${flushMs} ms, prune every ${PRUNE_EVERY_MS} ms\n`);
  process.stdout.write('| virtual h | raw rows | raw MiB | rollup rows | rollup MiB | free pages | file MiB | WAL MiB | file + WAL MiB | wall s |\n');
  process.stdout.write('|---|---|---|---|---|---|---|---|---|---|\n');
  const wallStart = performance.now();
  const end = START + hours * HOUR_MS;
  let nextPrune = START + PRUNE_EVERY_MS;
  let nextReport = START + HOUR_MS;
  let rows = 0;
  let pruneMs = 0;
  let prunes = 0;
  for (let now = START + flushMs; now <= end; now += flushMs) {
    const batch: SampleRecord[] = [];
    for (let i = 0; i < ids.length; i++) {
      for (let guard = 0; (next[i] as number) + START <= now && guard < 1_000; guard++) {
        const at = START + Math.floor(next[i] as number);
        const c = Math.min(100, Math.max(0, (cpu[i] as number) + (random() - 0.5) * 4));
        cpu[i] = c;
        seqs[i] = (seqs[i] as number) + 1;
        batch.push({ instanceId: ids[i] as string, seq: seqs[i] as number, sampleAt: at, receivedAt: at, cpu: c, mem: 30 + c / 4 });
        next[i] = (next[i] as number) + intervalMs;
      }
    }
    telemetry.writeBatch(batch);
    rows += batch.length;
    if (now >= nextPrune) {
      nextPrune += PRUNE_EVERY_MS;
      const t = performance.now();
      telemetry.pruneExpired({ samplesBefore: now - sampleRetentionMs, rollupsBefore: now - rollupRetentionMs, chunk: PRUNE_CHUNK, budgetMs: PRUNE_BUDGET_MS });
      pruneMs += performance.now() - t;
      prunes++;
    }
    if (now >= nextReport) {
      nextReport += HOUR_MS;
      const count = (table: string) => (db.prepare(`SELECT COUNT(*) AS n FROM ${table}`).get() as { n: number }).n;
      const pages = db.pragma('page_count', { simple: true }) as number;
      const free = db.pragma('freelist_count', { simple: true }) as number;
      const file = pages * pageSize;
      const wal = fileBytes(`${dbPath}-wal`);
      const f = (b: number) => (b / MIB).toFixed(1);
      process.stdout.write(`| ${Math.round((now - START) / HOUR_MS)} | ${count('samples')} | ${f(tableBytes(db, 'samples'))} | ${count('sample_minutes')} | ${f(tableBytes(db, 'sample_minutes'))} `
        + `| ${free} | ${f(file)} | ${f(wal)} | ${f(file + wal)} | ${((performance.now() - wallStart) / 1000).toFixed(1)} |\n`);
    }
    if (performance.now() - wallStart > maxWallMs) {
      process.stdout.write(`stopped at virtual ${((now - START) / HOUR_MS).toFixed(2)} h: over --max-wall-s\n`);
      break;
    }
  }
  const wallS = (performance.now() - wallStart) / 1000;
  const rollupRows = (db.prepare('SELECT COUNT(*) AS n FROM sample_minutes').get() as { n: number }).n;
  const perRollupRow = rollupRows > 0 ? tableBytes(db, 'sample_minutes') / rollupRows : 0;
  const steadyRollups = instances * (rollupRetentionMs / 60_000) * perRollupRow;
  process.stdout.write(`${rows} samples in ${wallS.toFixed(1)} s wall (${Math.round(rows / wallS)} rows/s with pruning); `
    + `${prunes} prune runs, ${(pruneMs / Math.max(1, prunes)).toFixed(2)} ms each on average\n`);
  process.stdout.write(`rollups: ${perRollupRow.toFixed(1)} bytes per instance-minute; at ${rollupRetentionMs / HOUR_MS} h of retention `
    + `${instances} instances hold ${(steadyRollups / MIB).toFixed(0)} MiB of rollups\n`);
  db.close();
  rmSync(dir, { recursive: true, force: true });
}

main();
