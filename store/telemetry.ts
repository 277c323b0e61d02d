import { performance } from 'node:perf_hooks';
import type { Db } from './db.js';
import { minuteStart, toHundredths } from './rollups.js';

/** One accepted heartbeat, ready to persist. */
export interface SampleRecord {
  readonly instanceId: string;
  readonly seq: number;
  /** Agent's sample time, ms. */
  readonly sampleAt: number;
  /** Server receive time, ms: what liveness is judged on. */
  readonly receivedAt: number;
  readonly cpu: number;
  readonly mem: number;
}

/** What one retention run deletes, and how long it may take. */
export interface PruneLimits {
  /** Raw samples whose sample time is before this go, Unix epoch ms. */
  readonly samplesBefore: number;
  /** Rollup minutes that start before this go, Unix epoch ms. */
  readonly rollupsBefore: number;
  /** Rows per delete statement (each is its own short write transaction). */
  readonly chunk: number;
  /** Stop starting new chunks after this long, ms; each table still gets one chunk per run. */
  readonly budgetMs: number;
}

/** Rows one retention run deleted, per table. */
export interface PruneResult {
  readonly samples: number;
  readonly rollups: number;
}

/** One instance-minute of a batch, folded before it is added to its `sample_minutes` row; values in hundredths of a percent. */
interface MinuteFold {
  readonly instanceId: string;
  readonly minute: number;
  n: number;
  cpuSum: number;
  cpuMax: number;
  memSum: number;
  memMax: number;
}

/**
 * The monitor server's hot path: a batch of samples written in one transaction (append to
 * `samples`, fold each newly stored sample into its instance-minute in `sample_minutes`, upsert
 * `latest`, whose `received_at` is the instance's "last seen"). Three statements a row, positional
 * parameters; `instances` is only read (the rollup's group), never written here. Batching is
 * what makes this cheap: `npm run bench store` prints the figures. A sample is folded into the minute of its own sample time however
 * late it arrives (an agent replaying its buffer after an outage), and only if it was not
 * already stored, so rollups stay exact under replays.
 */
export class TelemetryStore {
  private readonly insertSample;
  private readonly upsertLatest;
  private readonly pruneStmt;
  private readonly upsertMinute;
  private readonly firstRollupGroup;
  private readonly nextRollupGroup;
  private readonly pruneRollupGroup;
  private readonly writeBatchTx;

  constructor(db: Db) {
    // Positional parameters throughout: binding from an object by name costs a lookup per column per row.
    this.insertSample = db.prepare<[number, string, number, number, number]>('INSERT OR IGNORE INTO samples (ts, instance_id, seq, cpu, mem) VALUES (?, ?, ?, ?, ?)');
    // `received_at` is when a sample of the instance was last stored (its "last seen": the
    // instance readers take the later of it and `instances.last_seen_at`, set at Register), even
    // a replayed older one; the values follow the highest seq only.
    this.upsertLatest = db.prepare<[string, number, number, number, number, number]>(`INSERT INTO latest (instance_id, seq, sample_at, received_at, cpu, mem)
      VALUES (?, ?, ?, ?, ?, ?)
      ON CONFLICT(instance_id) DO UPDATE SET received_at = MAX(latest.received_at, excluded.received_at),
        seq = CASE WHEN excluded.seq > latest.seq THEN excluded.seq ELSE latest.seq END,
        sample_at = CASE WHEN excluded.seq > latest.seq THEN excluded.sample_at ELSE latest.sample_at END,
        cpu = CASE WHEN excluded.seq > latest.seq THEN excluded.cpu ELSE latest.cpu END,
        mem = CASE WHEN excluded.seq > latest.seq THEN excluded.mem ELSE latest.mem END`);
    this.pruneStmt = db.prepare('DELETE FROM samples WHERE (ts, instance_id, seq) IN (SELECT ts, instance_id, seq FROM samples WHERE ts < ? ORDER BY ts LIMIT ?)');
    // The group comes from the instance's row, which exists for every stored sample (`latest` references it).
    this.upsertMinute = db.prepare<[number, string, number, number, number, number, number, string]>(`INSERT INTO sample_minutes (group_id, minute, instance_id, n, cpu_sum, cpu_max, mem_sum, mem_max)
      SELECT group_id, ?, ?, ?, ?, ?, ?, ? FROM instances WHERE id = ?
      ON CONFLICT (group_id, minute, instance_id) DO UPDATE SET n = n + excluded.n,
        cpu_sum = cpu_sum + excluded.cpu_sum, cpu_max = MAX(cpu_max, excluded.cpu_max),
        mem_sum = mem_sum + excluded.mem_sum, mem_max = MAX(mem_max, excluded.mem_max)`);
    // Retention walks the groups (a loose index scan of the key's first column) and deletes each one's oldest minutes.
    this.firstRollupGroup = db.prepare<[], { g: string | null }>('SELECT MIN(group_id) AS g FROM sample_minutes');
    this.nextRollupGroup = db.prepare<[string], { g: string | null }>('SELECT MIN(group_id) AS g FROM sample_minutes WHERE group_id > ?');
    this.pruneRollupGroup = db.prepare(`DELETE FROM sample_minutes WHERE (group_id, minute, instance_id) IN
      (SELECT group_id, minute, instance_id FROM sample_minutes WHERE group_id = ? AND minute < ? ORDER BY minute LIMIT ?)`);
    this.writeBatchTx = db.transaction((batch: readonly SampleRecord[]) => {
      const minutes = new Map<string, MinuteFold>();
      for (const s of batch) {
        if (this.insertSample.run(s.sampleAt, s.instanceId, s.seq, s.cpu, s.mem).changes > 0) fold(minutes, s);
        this.upsertLatest.run(s.instanceId, s.seq, s.sampleAt, s.receivedAt, s.cpu, s.mem);
      }
      for (const m of minutes.values()) this.upsertMinute.run(m.minute, m.instanceId, m.n, m.cpuSum, m.cpuMax, m.memSum, m.memMax, m.instanceId);
    });
  }

  /** Persist a batch atomically; throws (and writes nothing) on failure. */
  writeBatch(batch: readonly SampleRecord[]): void {
    if (batch.length > 0) this.writeBatchTx(batch);
  }

  /** Delete up to `limit` samples older than `before`; returns how many went. */
  prune(before: number, limit: number): number {
    return this.pruneStmt.run(before, limit).changes;
  }

  /**
   * One retention run, as the monitor server does every PRUNE_EVERY_MS: old raw samples, then old
   * rollups, in chunks of `chunk` rows until none are left or `budgetMs` has passed. Each table
   * gets at least one chunk, so a backlog of raw samples never starves the rollups.
   */
  pruneExpired(limits: PruneLimits): PruneResult {
    const started = performance.now();
    const drain = (step: (limit: number) => number): number => {
      let removed = 0;
      for (;;) {
        const n = step(limits.chunk);
        removed += n;
        if (n < limits.chunk || performance.now() - started > limits.budgetMs) return removed;
      }
    };
    const samples = drain((limit) => this.prune(limits.samplesBefore, limit));
    const rollups = drain((limit) => this.pruneRollups(limits.rollupsBefore, limit));
    return { samples, rollups };
  }

  /**
   * Delete up to `limit` per-instance minute rollups whose minute starts before `before` (ms),
   * oldest first within each group; returns how many went (fewer than `limit`: none are left).
   */
  pruneRollups(before: number, limit: number): number {
    let removed = 0;
    for (let g = this.firstRollupGroup.get()?.g ?? null; g !== null && removed < limit; g = this.nextRollupGroup.get(g)?.g ?? null) {
      removed += this.pruneRollupGroup.run(g, before, limit - removed).changes;
    }
    return removed;
  }
}

function fold(minutes: Map<string, MinuteFold>, s: SampleRecord): void {
  const minute = minuteStart(s.sampleAt);
  const key = `${s.instanceId}\n${minute}`;
  const cpu = toHundredths(s.cpu);
  const mem = toHundredths(s.mem);
  const m = minutes.get(key);
  if (m === undefined) {
    minutes.set(key, { instanceId: s.instanceId, minute, n: 1, cpuSum: cpu, cpuMax: cpu, memSum: mem, memMax: mem });
    return;
  }
  m.n++;
  m.cpuSum += cpu;
  m.cpuMax = Math.max(m.cpuMax, cpu);
  m.memSum += mem;
  m.memMax = Math.max(m.memMax, mem);
}
