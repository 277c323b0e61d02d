import { describe, expect, it } from 'vitest';
import { captureLogger } from '../lib/testing.js';
import { AckSender, mergeAcks, type AckSink } from './acks.js';
import { RateLimiter } from './rate-limit.js';
import { ThrottledLog } from './refusals.js';

describe('ThrottledLog', () => {
  it('writes one line per key per interval and reports what it held back', () => {
    const { log, lines } = captureLogger('warn');
    const t = new ThrottledLog(log, { intervalMs: 1_000, maxLinesPerInterval: 100, maxKeys: 100 });
    for (let i = 0; i < 50; i++) { t.warn('a', 0, { i }, 'refused'); t.warn('b', 0, { i }, 'refused'); }
    expect(lines.map((l) => [l.i, l.suppressed])).toEqual([[0, 0], [0, 0]]);
    expect(t.suppressedTotal).toBe(98);
    const summary: [string, number][] = [];
    t.prune(1_000, (k, n) => summary.push([k, n]));
    expect(summary).toEqual([['a', 49], ['b', 49]]);
    expect(t.size).toBe(0);
  });

  it('caps lines over all keys and the number of keys it tracks', () => {
    const { log, lines } = captureLogger('warn');
    const t = new ThrottledLog(log, { intervalMs: 1_000, maxLinesPerInterval: 5, maxKeys: 3 });
    for (let i = 0; i < 1_000; i++) t.warn(`k${i}`, 0, {}, 'refused');
    expect(lines).toHaveLength(3);
    expect(t.size).toBe(3);
    expect(t.suppressedTotal).toBe(997);
  });
});

describe('RateLimiter', () => {
  it('allows the burst, then the rate, per key', () => {
    const r = new RateLimiter(2, 3);
    expect([0, 0, 0, 0].map(() => r.take('a', 0))).toEqual([true, true, true, false]);
    expect(r.take('b', 0)).toBe(true);
    expect(r.take('a', 499)).toBe(false);
    expect(r.take('a', 500)).toBe(true); // one token after 0.5 s at 2/s
    r.prune(10_000);
    expect(r.size).toBe(0);
  });
});

class FakeSink implements AckSink {
  written: unknown[] = [];
  writableLength = 0;
  private drain: (() => void) | undefined;
  constructor(private readonly room: number) {}
  write(ack: unknown): boolean {
    this.written.push(ack);
    this.writableLength++;
    return this.writableLength < this.room;
  }
  once(_e: 'drain', l: () => void) { this.drain = l; }
  flushAll() { this.writableLength = 0; const d = this.drain; this.drain = undefined; d?.(); }
}

describe('AckSender', () => {
  it('after write() returns false, keeps only one merged ack until drain', () => {
    const sink = new FakeSink(2);
    let coalesced = 0;
    const a = new AckSender(sink, () => { coalesced++; });
    a.send({ persisted_seq: 1, rejected: 0, reject_reason: '' });
    a.send({ persisted_seq: 2, rejected: 1, reject_reason: 'x' }); // fills the sink
    for (let seq = 3; seq <= 100; seq++) a.send({ persisted_seq: seq, rejected: 1, reject_reason: seq === 50 ? 'y' : '' });
    expect(sink.written).toHaveLength(2);
    expect(a.pendingCount).toBe(1);
    expect(coalesced).toBe(97);
    sink.flushAll();
    expect(sink.written.at(-1)).toEqual({ persisted_seq: 100, rejected: 98, reject_reason: 'y', group: undefined });
    expect(a.pendingCount).toBe(0);
  });

  it('mergeAcks keeps the newest seq and view and sums rejections', () => {
    expect(mergeAcks({ persisted_seq: '5', rejected: 2, reject_reason: 'a', group: { live_instances: 1 } }, { persisted_seq: 7, rejected: 1, reject_reason: '' }))
      .toEqual({ persisted_seq: 7, rejected: 3, reject_reason: 'a', group: { live_instances: 1 } });
  });
});
