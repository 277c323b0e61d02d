import type { HeartbeatAck } from '../lib/proto.js';

/** The writable side of a heartbeat stream, as far as acks need it. */
export interface AckSink {
  write(ack: HeartbeatAck): boolean;
  once(event: 'drain', listener: () => void): unknown;
  readonly writableLength: number;
}

const MAX_UINT32 = 0xffff_ffff;

/** Combine two acks into one that says the same: newest seq and view, rejections summed. */
export function mergeAcks(older: HeartbeatAck, newer: HeartbeatAck): HeartbeatAck {
  const seq = (a: HeartbeatAck) => Number(a.persisted_seq ?? 0);
  return {
    persisted_seq: Math.max(seq(older), seq(newer)),
    rejected: Math.min(MAX_UINT32, (older.rejected ?? 0) + (newer.rejected ?? 0)),
    reject_reason: newer.reject_reason || older.reject_reason || '',
    group: newer.group ?? older.group,
  };
}

/**
 * Acks on one stream, respecting write backpressure: when `write()` returns false the next acks
 * are coalesced into one pending ack (acks are cumulative, so only the newest matters) and sent on
 * 'drain'. A client that never reads thus costs at most the stream's high-water mark plus one ack.
 */
export class AckSender {
  private pending: HeartbeatAck | undefined;
  private blocked = false;

  /** `onCoalesce` is called for every ack merged into a pending one instead of written. */
  constructor(private readonly sink: AckSink, private readonly onCoalesce: () => void = () => {}) {}

  send(ack: HeartbeatAck): void {
    if (this.blocked) {
      if (this.pending !== undefined) this.onCoalesce();
      this.pending = this.pending === undefined ? ack : mergeAcks(this.pending, ack);
      return;
    }
    if (!this.sink.write(ack)) {
      this.blocked = true;
      this.sink.once('drain', () => this.onDrain());
    }
  }

  /** 0 or 1: acks waiting for 'drain'. */
  get pendingCount(): number {
    return this.pending === undefined ? 0 : 1;
  }

  /** Messages buffered in the stream plus the pending one. */
  get backlog(): number {
    return this.sink.writableLength + this.pendingCount;
  }

  private onDrain(): void {
    this.blocked = false;
    const p = this.pending;
    this.pending = undefined;
    if (p !== undefined) this.send(p);
  }
}
