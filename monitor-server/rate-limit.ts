/**
 * Per-key token buckets (one per instance): `ratePerSec` tokens a second, at most `burst` held.
 * Keys live across sessions, so reconnecting does not refill a bucket. Pure: the caller passes `now`.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(private readonly ratePerSec: number, private readonly burst: number) {
    if (!(ratePerSec > 0 && burst >= 1)) throw new TypeError('RateLimiter needs ratePerSec > 0 and burst >= 1');
  }

  /** Take one token for `key`; false when none is left. */
  take(key: string, now: number): boolean {
    let b = this.buckets.get(key);
    if (b === undefined) {
      b = { tokens: this.burst, at: now };
      this.buckets.set(key, b);
    } else if (now > b.at) {
      b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) * this.ratePerSec) / 1000);
      b.at = now;
    }
    if (b.tokens < 1) return false;
    b.tokens--;
    return true;
  }

  /** Drop buckets that have refilled (they hold nothing a new bucket would not). */
  prune(now: number): void {
    for (const [key, b] of this.buckets) {
      if (b.tokens + ((now - b.at) * this.ratePerSec) / 1000 >= this.burst) this.buckets.delete(key);
    }
  }

  get size(): number {
    return this.buckets.size;
  }
}
