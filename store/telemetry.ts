import type { Db } from './db.js';

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

/**
 * The monitor server's hot path: a batch of samples written in one transaction (append to
 * `samples`, upsert `latest`, bump `instances.last_seen_at`). Batching is what makes this cheap:
 * see bench/ingest.ts for the figures.
 */
export class TelemetryStore {
  private readonly insertSample;
  private readonly upsertLatest;
  private readonly touchInstance;
  private readonly pruneStmt;
  private readonly writeBatchTx;

  constructor(db: Db) {
    this.insertSample = db.prepare('INSERT OR IGNORE INTO samples (ts, instance_id, seq, cpu, mem) VALUES (?, ?, ?, ?, ?)');
    this.upsertLatest = db.prepare(`INSERT INTO latest (instance_id, seq, sample_at, received_at, cpu, mem)
      VALUES (@instanceId, @seq, @sampleAt, @receivedAt, @cpu, @mem)
      ON CONFLICT(instance_id) DO UPDATE SET seq = excluded.seq, sample_at = excluded.sample_at,
        received_at = excluded.received_at, cpu = excluded.cpu, mem = excluded.mem
      WHERE excluded.seq > latest.seq`);
    this.touchInstance = db.prepare('UPDATE instances SET last_seen_at = MAX(COALESCE(last_seen_at, 0), ?) WHERE id = ?');
    this.pruneStmt = db.prepare('DELETE FROM samples WHERE (ts, instance_id, seq) IN (SELECT ts, instance_id, seq FROM samples WHERE ts < ? ORDER BY ts LIMIT ?)');
    this.writeBatchTx = db.transaction((batch: readonly SampleRecord[]) => {
      const lastSeen = new Map<string, number>();
      for (const s of batch) {
        this.insertSample.run(s.sampleAt, s.instanceId, s.seq, s.cpu, s.mem);
        this.upsertLatest.run(s);
        lastSeen.set(s.instanceId, Math.max(lastSeen.get(s.instanceId) ?? 0, s.receivedAt));
      }
      for (const [id, at] of lastSeen) this.touchInstance.run(at, id);
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
}
