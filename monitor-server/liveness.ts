/**
 * The failure detector. Pure: no timers, no clock; the server calls `sweep(now)` periodically and
 * persists the transitions it returns.
 *
 *   running ──(silent ≥ suspectAfter, or stream dropped)──▶ suspect ──(dead rule)──▶ dead
 *      ▲                                                        │                      │
 *      └──────────────────────────── heartbeat ─────────────────┴──────────────────────┘
 *
 * Two dead rules:
 * - `phi` (default): phi accrual (Hayashibara et al., "The φ accrual failure detector", SRDS
 *   2004; as Akka and Cassandra use it). Each instance's heartbeat inter-arrival times are kept
 *   (up to `maxSamples`); φ(Δt) = −log10(1 − F(Δt)), F the normal CDF with the observed mean plus
 *   `acceptablePauseMs` and the observed standard deviation (at least `minStdDevMs`). Dead when
 *   φ ≥ `phiThreshold` and the silence is at least `suspectAfterMs`. It adapts to each agent's
 *   jitter: a steady agent is declared dead sooner than a jittery one, and a GC pause or a
 *   congested link within the acceptable pause is not a death. Akka's defaults: threshold 8,
 *   acceptable pause 3 s, minimum standard deviation 100 ms, first estimate the heartbeat
 *   interval. With 1 s heartbeats that declares a silent agent dead about 4.6 s after its last
 *   heartbeat, and never for a 3 s pause.
 * - `timeout`: dead after `deadAfterMs` of silence (the first build's rule).
 */

/** States the detector moves an instance between. */
export type LivenessState = 'running' | 'suspect' | 'dead';

export interface LivenessConfig {
  /** Silence before suspect, ms. */
  readonly suspectAfterMs: number;
  /** `timeout` detector: silence before dead, ms. */
  readonly deadAfterMs: number;
  /** Which dead rule. Default 'phi'. */
  readonly detector?: 'phi' | 'timeout' | undefined;
  /** The announced heartbeat interval: the first inter-arrival estimate, ms. Default 1000. */
  readonly heartbeatIntervalMs?: number | undefined;
  /** φ at which an instance is dead. Default 8 (Akka, Cassandra; 10–12 advised on EC2 for Cassandra). */
  readonly phiThreshold?: number | undefined;
  /** Pause tolerated on top of the mean interval, ms. Default 3000 (Akka). */
  readonly acceptablePauseMs?: number | undefined;
  /** Floor of the standard deviation, ms. Default 100 (Akka). */
  readonly minStdDevMs?: number | undefined;
  /** Inter-arrival samples kept per instance. Default 200 (Akka keeps 1000; 200 bounds memory at 10,000 agents). */
  readonly maxSamples?: number | undefined;
}

import { PHI_DEFAULTS } from '../domain/liveness.js';

export { PHI_DEFAULTS };

export interface Transition {
  readonly instanceId: string;
  readonly groupId: string;
  readonly from: LivenessState;
  readonly to: LivenessState;
  /** Why, for the instance's state_reason. */
  readonly reason: string;
}

/** Inter-arrival times in a ring, with running sums for O(1) mean and variance. */
class Intervals {
  private readonly values: Float64Array;
  private next = 0;
  private count = 0;
  private sum = 0;
  private sumSq = 0;

  constructor(capacity: number, first: number) {
    this.values = new Float64Array(capacity);
    // Bootstrap as Akka does: the first estimate, with a standard deviation of a quarter of it.
    this.add(first - first / 4);
    this.add(first + first / 4);
  }

  add(v: number): void {
    if (this.count === this.values.length) {
      const old = this.values[this.next] as number;
      this.sum -= old;
      this.sumSq -= old * old;
    } else {
      this.count++;
    }
    this.values[this.next] = v;
    this.next = (this.next + 1) % this.values.length;
    this.sum += v;
    this.sumSq += v * v;
  }

  get mean(): number {
    return this.sum / this.count;
  }

  get std(): number {
    const m = this.mean;
    return Math.sqrt(Math.max(0, this.sumSq / this.count - m * m));
  }
}

/**
 * φ for a silence of `silentMs` given inter-arrival mean and standard deviation, ms. Uses the
 * logistic approximation of the normal CDF that Akka uses (error < 0.02 %), in a form that
 * stays finite for long silences.
 */
export function phi(silentMs: number, mean: number, std: number): number {
  const y = (silentMs - mean) / std;
  // 1 − F(y) ≈ 1 / (1 + e^z) with z = y (1.5976 + 0.070566 y²); φ = log10(1 + e^z), computed without overflow.
  const z = y * (1.5976 + 0.070566 * y * y);
  return z > 0 ? z / Math.LN10 + Math.log10(1 + Math.exp(-z)) : Math.log10(1 + Math.exp(z));
}

interface Tracked {
  groupId: string;
  lastSeenAt: number;
  connected: boolean;
  state: LivenessState;
  intervals: Intervals | undefined;
}

/** Classify one instance with the timeout rule from the time since its last heartbeat. */
export function classify(silentMs: number, connected: boolean, cfg: LivenessConfig): LivenessState {
  // Negative silence: a startup grace (the seeded "last seen" lies in the future).
  if (silentMs >= cfg.deadAfterMs) return 'dead';
  if (silentMs >= cfg.suspectAfterMs || !connected) return 'suspect';
  return 'running';
}

export class FailureDetector {
  private readonly tracked = new Map<string, Tracked>();
  /** Live (running or suspect) instances per group, kept as states move: liveCount is read at every ingest flush. */
  private readonly live = new Map<string, number>();

  /** Watched instances by state (for /metrics), counted in memory. */
  counts(): Record<'running' | 'suspect' | 'dead', number> {
    const c = { running: 0, suspect: 0, dead: 0 };
    for (const t of this.tracked.values()) c[t.state]++;
    return c;
  }
  private readonly mode: 'phi' | 'timeout';
  private readonly p: { phiThreshold: number; acceptablePauseMs: number; minStdDevMs: number; maxSamples: number; heartbeatIntervalMs: number };

  constructor(private readonly cfg: LivenessConfig) {
    if (!(cfg.deadAfterMs > cfg.suspectAfterMs && cfg.suspectAfterMs > 0)) {
      throw new TypeError('FailureDetector needs 0 < suspectAfterMs < deadAfterMs');
    }
    this.mode = cfg.detector ?? 'phi';
    this.p = {
      phiThreshold: cfg.phiThreshold ?? PHI_DEFAULTS.phiThreshold,
      acceptablePauseMs: cfg.acceptablePauseMs ?? PHI_DEFAULTS.acceptablePauseMs,
      minStdDevMs: cfg.minStdDevMs ?? PHI_DEFAULTS.minStdDevMs,
      maxSamples: cfg.maxSamples ?? PHI_DEFAULTS.maxSamples,
      heartbeatIntervalMs: cfg.heartbeatIntervalMs ?? PHI_DEFAULTS.heartbeatIntervalMs,
    };
    if (!(this.p.phiThreshold > 0 && this.p.minStdDevMs > 0 && this.p.maxSamples >= 2 && this.p.heartbeatIntervalMs > 0 && this.p.acceptablePauseMs >= 0)) {
      throw new TypeError('FailureDetector needs phiThreshold > 0, minStdDevMs > 0, maxSamples >= 2, heartbeatIntervalMs > 0, acceptablePauseMs >= 0');
    }
  }

  /**
   * Start watching an instance (at registration, or at server start from the store). `state` is
   * what the store holds now, so that the first sweep reports only real changes.
   */
  watch(instanceId: string, groupId: string, lastSeenAt: number, state: LivenessState, connected: boolean): void {
    const old = this.tracked.get(instanceId);
    if (old !== undefined) this.countLive(old, -1);
    // A re-registration keeps what was learnt of the instance's rhythm.
    const t: Tracked = { groupId, lastSeenAt, connected, state, intervals: old?.intervals };
    this.tracked.set(instanceId, t);
    this.countLive(t, 1);
  }

  /** A heartbeat arrived. Returns the transition back to running, if any. */
  heartbeat(instanceId: string, now: number): Transition | undefined {
    const t = this.tracked.get(instanceId);
    if (t === undefined) return undefined;
    const gap = now - t.lastSeenAt;
    // Only gaps between heartbeats of a live stream teach the rhythm (not the startup grace, not a reconnect).
    if (this.mode === 'phi' && t.connected && t.state === 'running' && gap > 0) {
      t.intervals ??= new Intervals(this.p.maxSamples, this.p.heartbeatIntervalMs);
      t.intervals.add(gap);
    }
    t.lastSeenAt = Math.max(t.lastSeenAt, now);
    t.connected = true;
    return this.move(instanceId, t, 'running', 'heartbeat resumed');
  }

  /** The agent's stream ended without a Deregister: suspect at once, dead on the usual rule. */
  disconnected(instanceId: string): Transition | undefined {
    const t = this.tracked.get(instanceId);
    if (t === undefined) return undefined;
    t.connected = false;
    return t.state === 'running' ? this.move(instanceId, t, 'suspect', 'heartbeat stream closed') : undefined;
  }

  /** Stop watching (deregistered, or terminated by the controller). */
  forget(instanceId: string): void {
    const t = this.tracked.get(instanceId);
    if (t === undefined) return;
    this.countLive(t, -1);
    this.tracked.delete(instanceId);
  }

  /** Instances of a group counted as live (running or suspect); O(1). */
  liveCount(groupId: string): number {
    return this.live.get(groupId) ?? 0;
  }

  /** φ of an instance now (phi mode), for status and tests; undefined when not watched. */
  phiOf(instanceId: string, now: number): number | undefined {
    const t = this.tracked.get(instanceId);
    if (t === undefined) return undefined;
    const iv = t.intervals ?? new Intervals(this.p.maxSamples, this.p.heartbeatIntervalMs);
    return phi(now - t.lastSeenAt, iv.mean + this.p.acceptablePauseMs, Math.max(iv.std, this.p.minStdDevMs));
  }

  /** Re-classify everyone at `now`; returns the transitions. */
  sweep(now: number): Transition[] {
    const out: Transition[] = [];
    for (const [id, t] of this.tracked) {
      const silent = now - t.lastSeenAt;
      let next: LivenessState;
      let why: string;
      if (this.mode === 'timeout') {
        next = classify(silent, t.connected, this.cfg);
        why = next === 'running' ? 'heartbeat resumed' : silent < this.cfg.suspectAfterMs ? 'no heartbeat stream' : `no heartbeat for ${silent} ms`;
      } else {
        const f = silent >= this.cfg.suspectAfterMs ? (this.phiOf(id, now) as number) : 0;
        next = silent >= this.cfg.suspectAfterMs && f >= this.p.phiThreshold ? 'dead' : silent >= this.cfg.suspectAfterMs || !t.connected ? 'suspect' : 'running';
        why = next === 'running' ? 'heartbeat resumed' : next === 'dead' ? `no heartbeat for ${silent} ms (φ ${Math.min(f, 99).toFixed(1)} ≥ ${this.p.phiThreshold})`
          : silent < this.cfg.suspectAfterMs ? 'no heartbeat stream' : `no heartbeat for ${silent} ms`;
      }
      const tr = this.move(id, t, next, why);
      if (tr !== undefined) out.push(tr);
    }
    return out;
  }

  private countLive(t: Tracked, delta: 1 | -1): void {
    if (t.state === 'dead') return;
    const n = (this.live.get(t.groupId) ?? 0) + delta;
    if (n === 0) this.live.delete(t.groupId);
    else this.live.set(t.groupId, n);
  }

  private move(instanceId: string, t: Tracked, to: LivenessState, reason: string): Transition | undefined {
    if (t.state === to) return undefined;
    const from = t.state;
    this.countLive(t, -1);
    t.state = to;
    this.countLive(t, 1);
    return { instanceId, groupId: t.groupId, from, to, reason };
  }
}
