import { describe, expect, it } from 'vitest';
import { MAX_CLOCK_SKEW_MS, MAX_SEQ, checkHeartbeat } from './heartbeat-validation.js';

const now = 1_700_000_000_000;
const ctx = { now, acceptedSeq: 100, maxSeqAhead: 1_000, bytes: 30, maxBytes: 1_024 };
const hb = (o: Partial<{ seq: string; sample_time_ms: string; cpu_percent: number; mem_percent: number }> = {}) =>
  ({ seq: '101', sample_time_ms: String(now), cpu_percent: 50, mem_percent: 50, ...o });

describe('checkHeartbeat', () => {
  it.each([
    { name: 'a valid heartbeat', beat: hb(), bytes: 30, want: { ok: true, seq: 101 } },
    { name: 'a replay at or below the accepted seq is valid', beat: hb({ seq: '7' }), bytes: 30, want: { ok: true, seq: 7 } },
    { name: 'exactly acceptedSeq + maxSeqAhead', beat: hb({ seq: '1100' }), bytes: 30, want: { ok: true, seq: 1_100 } },
    { name: 'seq 0', beat: hb({ seq: '0' }), bytes: 30, want: { ok: false, reason: 'seqInvalid', seq: undefined } },
    { name: 'seq 2^53 - 1', beat: hb({ seq: String(2 ** 53 - 1) }), bytes: 30, want: { ok: false, reason: 'seqAboveMax', seq: undefined } },
    { name: 'seq uint64 max', beat: hb({ seq: '18446744073709551615' }), bytes: 30, want: { ok: false, reason: 'seqAboveMax', seq: undefined } },
    { name: 'seq MAX_SEQ + 1', beat: hb({ seq: String(MAX_SEQ + 1) }), bytes: 30, want: { ok: false, reason: 'seqAboveMax' } },
    { name: 'seq one past the ahead bound', beat: hb({ seq: '1101' }), bytes: 30, want: { ok: false, reason: 'seqTooFarAhead', seq: undefined } },
    { name: 'oversized', beat: hb(), bytes: 1_025, want: { ok: false, reason: 'oversized', seq: 101 } },
    { name: 'CPU NaN', beat: hb({ cpu_percent: Number.NaN }), bytes: 30, want: { ok: false, reason: 'cpuOutOfRange', seq: 101 } },
    { name: 'memory above 100', beat: hb({ mem_percent: 101 }), bytes: 30, want: { ok: false, reason: 'memOutOfRange', seq: 101 } },
    { name: 'sample too far in the past', beat: hb({ sample_time_ms: String(now - MAX_CLOCK_SKEW_MS - 1) }), bytes: 30, want: { ok: false, reason: 'clockSkew', seq: 101 } },
  ])('$name', ({ beat, bytes, want }) => {
    expect(checkHeartbeat(beat, { ...ctx, bytes })).toMatchObject(want);
  });
});
