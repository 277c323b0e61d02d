import { performance } from 'node:perf_hooks';
import type { Logger } from '../lib/logger.js';
import type { SampleRecord, TelemetryStore } from '../store/telemetry.js';
import { RingBuffer } from './ring-buffer.js';

/** Result of one flush. */
export interface FlushResult {
  /** Rows written. */
  readonly rows: number;
}

/**
 * Batched writer over a bounded queue: heartbeats are queued in memory and written in one
 * transaction every `flushIntervalMs` or as soon as `flushMaxRows` are waiting. A row leaves the
 * queue only by being stored: a failed write (disk full, lock held past the busy timeout) keeps
 * the rows for the next attempt, and a full queue refuses new rows (`push` returns false) instead
 * of dropping old ones, so the server can push back on its senders.
 */
export class IngestQueue {
  private readonly queue: RingBuffer<SampleRecord>;
  /** Set while a flush failed and has not yet succeeded; /healthz reports it. */
  lastError: Error | undefined;
  lastFlushAt = 0;
  totalRows = 0;
  /** Batched writes that failed since start. */
  failedWrites = 0;

  constructor(
    private readonly telemetry: TelemetryStore,
    private readonly log: Logger,
    private readonly opts: {
      readonly flushMaxRows: number;
      readonly maxQueuedRows: number;
      /** Called after each committed batch with its rows and the write's duration, seconds (metrics). */
      readonly onBatch?: (rows: number, seconds: number) => void;
    },
  ) {
    this.queue = new RingBuffer<SampleRecord>(opts.maxQueuedRows);
  }

  get length(): number {
    return this.queue.length;
  }

  get capacity(): number {
    return this.queue.capacity;
  }

  /** No room for another row until a flush succeeds. */
  get isFull(): boolean {
    return this.queue.isFull;
  }

  /** Enough rows wait that a flush should run now. */
  get flushDue(): boolean {
    return this.queue.length >= this.opts.flushMaxRows;
  }

  /** Queue a sample; false when the queue is full (the row is not taken: its sender must retry). */
  push(s: SampleRecord): boolean {
    return this.queue.push(s);
  }

  /** Write everything queued. Returns undefined when the write failed (the rows stay queued). */
  flush(now: number): FlushResult | undefined {
    if (this.queue.length === 0) {
      this.lastFlushAt = now;
      return { rows: 0 };
    }
    const batch = this.queue.peek(this.queue.length);
    const started = performance.now();
    try {
      this.telemetry.writeBatch(batch);
    } catch (err) {
      this.failedWrites++;
      if (this.lastError === undefined) this.log.error({ err, rows: batch.length }, 'batch write failed; will retry');
      this.lastError = err as Error;
      return undefined;
    }
    this.queue.drop(batch.length);
    if (this.lastError !== undefined) this.log.info({ rows: batch.length }, 'batch write recovered');
    this.lastError = undefined;
    this.lastFlushAt = now;
    this.totalRows += batch.length;
    this.opts.onBatch?.(batch.length, (performance.now() - started) / 1_000);
    return { rows: batch.length };
  }
}
