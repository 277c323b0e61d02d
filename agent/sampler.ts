import { nextCpu, shareOf } from '../sim/share.js';

/** What the server last told us about the group (from acks). */
export interface GroupViewSnapshot {
  readonly liveInstances: number;
  /** Percent of one instance's CPU; negative when no demand is set. */
  readonly demandPercent: number;
}

export interface Sample {
  readonly cpu: number;
  readonly mem: number;
}

/**
 * Produces one sample per heartbeat. `proc`: /proc/stat and /proc/meminfo (Linux);
 * `system`: systeminformation (elsewhere); `simulated`: load from the group's demand.
 */
export interface Sampler {
  readonly kind: 'proc' | 'system' | 'simulated';
  /**
   * The sample for this heartbeat; undefined when there is none yet (the first CPU reading only
   * primes the counters): no heartbeat is sent for that interval. Rejects when the reading
   * failed; the reporter logs it and skips the heartbeat likewise.
   */
  sample(now: number, view: GroupViewSnapshot | undefined): Promise<Sample | undefined>;
  /** Release what the sampler holds open (file descriptors). */
  close?(): void;
}

/**
 * Real CPU and memory from systeminformation, the sampler off Linux (loaded lazily: agents on
 * Linux and simulated agents never pay for it).
 */
export class SystemSampler implements Sampler {
  readonly kind = 'system';
  private si: typeof import('systeminformation') | undefined;

  async sample(): Promise<Sample> {
    this.si ??= await import('systeminformation');
    const [load, mem] = await Promise.all([this.si.currentLoad(), this.si.mem()]);
    const clamp = (v: number) => (Number.isFinite(v) ? Math.max(0, Math.min(100, v)) : 0);
    return { cpu: clamp(load.currentLoad), mem: clamp(mem.total > 0 ? ((mem.total - mem.available) / mem.total) * 100 : 0) };
  }
}

/**
 * Simulated load: this instance's share of the group's demand, moving gradually towards it with
 * bounded noise. When the group grows, every instance's share falls, as behind a load balancer.
 */
export class SimulatedSampler implements Sampler {
  readonly kind = 'simulated';
  private trend = 0;
  private lastAt: number | undefined;

  constructor(
    private readonly opts: { noisePercent: number; slewPercentPerS: number; random?: () => number },
  ) {}

  async sample(now: number, view: GroupViewSnapshot | undefined): Promise<Sample> {
    const random = this.opts.random ?? Math.random;
    // Without a view (not connected yet), or without demand, hold the current trend.
    const target = view === undefined || view.demandPercent < 0 ? this.trend : shareOf(view.demandPercent, view.liveInstances);
    const elapsedMs = this.lastAt === undefined ? 1_000 : now - this.lastAt;
    this.lastAt = now;
    const step = nextCpu({ previous: this.trend, target, elapsedMs, slewPerSecond: this.opts.slewPercentPerS, noise: this.opts.noisePercent, random: random() });
    this.trend = step.trend;
    const mem = Math.max(0, Math.min(100, 20 + this.trend * 0.3 + (random() * 2 - 1) * this.opts.noisePercent));
    return { cpu: step.reported, mem };
  }
}
