import type { Logger } from '../lib/logger.js';
import type { SampleRecord, TelemetryStore } from '../store/telemetry.js';

/** Server-side queue bound: past it the oldest unpersisted rows go and their senders must replay. */
export const DEFAULT_MAX_QUEUED_ROWS = 200_000;

/** Result of one flush: which instances now have which sequence durably stored. */
export interface FlushResult {
  readonly rows: number;
  /** Highest seq persisted per instance in this flush. */
  readonly persisted: ReadonlyMap<string, number>;
}

/**
 * Batched writer: heartbeats are queued in memory and written in one transaction every
 * `flushIntervalMs` or as soon as `flushMaxRows` are waiting. A failed write (disk full, lock held
 * past the busy timeout) keeps the batch for the next attempt; nothing is acked until it is stored.
 */
export class IngestQueue {
  private queue: SampleRecord[] = [];
  private dropped = 0;
  /** Set while a flush failed and has not yet succeeded; /healthz reports it. */
  lastError: Error | undefined;
  lastFlushAt = 0;
  totalRows = 0;

  constructor(
    private readonly telemetry: TelemetryStore,
    private readonly log: Logger,
    private readonly opts: { flushMaxRows: number; maxQueuedRows?: number },
  ) {}

  get length(): number {
    return this.queue.length;
  }

  /** Queue a sample; returns true when the queue is full enough to flush now. */
  push(s: SampleRecord): boolean {
    this.queue.push(s);
    const max = this.opts.maxQueuedRows ?? DEFAULT_MAX_QUEUED_ROWS;
    if (this.queue.length > max) {
      const excess = this.queue.length - max;
      this.queue.splice(0, excess);
      this.dropped += excess;
    }
    return this.queue.length >= this.opts.flushMaxRows;
  }

  /** Rows dropped since the last call (the senders have them buffered and must replay). */
  takeDropped(): number {
    const d = this.dropped;
    this.dropped = 0;
    return d;
  }

  /** Write everything queued. Returns undefined when the write failed (the rows stay queued). */
  flush(now: number): FlushResult | undefined {
    if (this.queue.length === 0) {
      this.lastFlushAt = now;
      return { rows: 0, persisted: new Map() };
    }
    const batch = this.queue;
    this.queue = [];
    try {
      this.telemetry.writeBatch(batch);
    } catch (err) {
      this.queue = batch.concat(this.queue);
      if (this.lastError === undefined) this.log.error({ err, rows: batch.length }, 'batch write failed; will retry');
      this.lastError = err as Error;
      return undefined;
    }
    if (this.lastError !== undefined) this.log.info({ rows: batch.length }, 'batch write recovered');
    this.lastError = undefined;
    this.lastFlushAt = now;
    this.totalRows += batch.length;
    const persisted = new Map<string, number>();
    for (const s of batch) persisted.set(s.instanceId, Math.max(persisted.get(s.instanceId) ?? 0, s.seq));
    return { rows: batch.length, persisted };
  }
}
