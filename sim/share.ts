/**
 * What one simulated instance reports, given the group's demand and how many instances share it,
 * as behind a round-robin load balancer. Pure: the caller passes elapsed time and randomness.
 */

/** The CPU an instance would settle at: its share of the demand, at most 100 %. */
export function shareOf(demandPercent: number, liveInstances: number): number {
  if (!(demandPercent > 0)) return 0;
  return Math.min(100, demandPercent / Math.max(1, liveInstances));
}

export interface SimStep {
  /** CPU reported last time, percent. */
  readonly previous: number;
  /** Where the load is heading (shareOf). */
  readonly target: number;
  /** Time since the previous sample, ms. */
  readonly elapsedMs: number;
  /** Largest change per second, CPU points: load moves gradually, never jumps within a sample. */
  readonly slewPerSecond: number;
  /** Noise amplitude, CPU points (bounded: the result moves by at most this much around the trend). */
  readonly noise: number;
  /** A number in [0, 1), e.g. Math.random() from the caller. */
  readonly random: number;
}

/** The next smoothed value (without noise) and the value to report (with bounded noise), both in [0, 100]. */
export function nextCpu(s: SimStep): { readonly trend: number; readonly reported: number } {
  const maxMove = (s.slewPerSecond * Math.max(0, s.elapsedMs)) / 1000;
  const delta = Math.max(-maxMove, Math.min(maxMove, s.target - s.previous));
  const trend = clamp(s.previous + delta);
  const reported = clamp(trend + (s.random * 2 - 1) * s.noise);
  return { trend, reported };
}

function clamp(v: number): number {
  return Math.max(0, Math.min(100, v));
}
