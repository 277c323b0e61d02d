/** Source of "now" for the I/O shell; the pure core is passed `now` instead. */
export interface Clock {
  /** Unix epoch milliseconds. */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };
