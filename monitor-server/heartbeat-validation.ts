/**
 * What a heartbeat must satisfy before it is stored or counts as a sign of life. Pure: the server
 * passes `now` and the instance's highest accepted seq.
 *
 * Seq rule: a seq is accepted when 1 ≤ seq ≤ MAX_SEQ and seq ≤ acceptedSeq + maxSeqAhead.
 * MAX_SEQ (2^48) is out of reach of a real agent (8,900 years at one heartbeat per millisecond)
 * and far below 2^53, so arithmetic on it stays exact; the "ahead" bound stops one message from
 * moving an instance's sequence so far that its real heartbeats look like replays. A seq refused
 * by these rules is never stored, never moves the accepted seq and is not covered by an ack's
 * `persisted_seq` (acking it would tell the agent everything below it is stored).
 */
import type { Heartbeat__Output } from '../lib/proto.js';

/** Highest seq the server accepts. */
export const MAX_SEQ = 2 ** 48;
/** Samples stamped further than this from server time are refused (clock far off, or garbage). */
export const MAX_CLOCK_SKEW_MS = 5 * 60_000;

/** Why a heartbeat was refused; also the key of its counter. */
export type HeartbeatRefusal = 'seqInvalid' | 'seqAboveMax' | 'seqTooFarAhead' | 'oversized' | 'cpuOutOfRange' | 'memOutOfRange' | 'clockSkew';

export type HeartbeatVerdict =
  | { readonly ok: true; readonly seq: number; readonly sampleAt: number }
  | {
    readonly ok: false;
    readonly reason: HeartbeatRefusal;
    /** For the agent (`reject_reason`) and the log; contains only numbers the agent sent. */
    readonly problem: string;
    /** The seq, when the seq itself is acceptable: the ack may then cover it (it is handled). */
    readonly seq: number | undefined;
  };

export interface HeartbeatContext {
  /** Server time, ms. */
  readonly now: number;
  /** Highest seq accepted for this instance (queued or stored), 0 if none. */
  readonly acceptedSeq: number;
  readonly maxSeqAhead: number;
  /** Serialized size of this message, bytes (undefined when unknown). */
  readonly bytes: number | undefined;
  readonly maxBytes: number;
}

const short = (v: string) => (v.length > 24 ? `${v.slice(0, 24)}…` : v);

export function checkHeartbeat(hb: Heartbeat__Output, ctx: HeartbeatContext): HeartbeatVerdict {
  const seq = Number(hb.seq);
  if (!(seq >= 1) || !Number.isInteger(seq)) return { ok: false, reason: 'seqInvalid', problem: `seq must be a positive integer (got ${short(String(hb.seq))})`, seq: undefined };
  if (seq > MAX_SEQ) return { ok: false, reason: 'seqAboveMax', problem: `seq must be at most 2^48 (got ${short(String(hb.seq))})`, seq: undefined };
  if (seq > ctx.acceptedSeq + ctx.maxSeqAhead) {
    return { ok: false, reason: 'seqTooFarAhead', problem: `seq ${seq} is more than ${ctx.maxSeqAhead} above the last accepted (${ctx.acceptedSeq})`, seq: undefined };
  }
  const refuse = (reason: HeartbeatRefusal, problem: string): HeartbeatVerdict => ({ ok: false, reason, problem, seq });
  if (ctx.bytes !== undefined && ctx.bytes > ctx.maxBytes) return refuse('oversized', `heartbeat is ${ctx.bytes} bytes; at most ${ctx.maxBytes}`);
  if (!(hb.cpu_percent >= 0 && hb.cpu_percent <= 100)) return refuse('cpuOutOfRange', `cpu_percent must be within 0..100 (got ${hb.cpu_percent})`);
  if (!(hb.mem_percent >= 0 && hb.mem_percent <= 100)) return refuse('memOutOfRange', `mem_percent must be within 0..100 (got ${hb.mem_percent})`);
  const sampleAt = Number(hb.sample_time_ms);
  if (!(Math.abs(sampleAt - ctx.now) <= MAX_CLOCK_SKEW_MS)) return refuse('clockSkew', `sample_time_ms is more than ${MAX_CLOCK_SKEW_MS / 1000}s from server time`);
  return { ok: true, seq, sampleAt };
}
