/**
 * Types of the pure decision core (read → decide → act: this is "decide"). Nothing here does I/O
 * or reads the clock: callers pass `now` and everything observed.
 */
import type { DecisionReason } from '../../domain/decision.js';
import type { Metric } from '../../domain/policy.js';

export type { DecisionReason, Recommendation, ScalingDecision } from '../../domain/decision.js';
export { EMPTY_POLICY_STATE, type MinuteSample, type PolicyState, type ScaleEvent } from '../../domain/state.js';
import type { MinuteSample } from '../../domain/state.js';

/** A ready instance's latest metrics, percent. */
export interface ReadyInstance {
  readonly id: string;
  readonly cpu: number;
  readonly mem: number;
}

/** A scheduled action whose window is open at `now` (computed outside the pure core from cron). */
export interface ScheduleWindow {
  readonly name: string;
  /** When this window opened and when it closes, epoch ms. */
  readonly startedAt: number;
  readonly endsAt: number;
  readonly minSize?: number | undefined;
  readonly maxSize?: number | undefined;
  /** A floor on desired capacity while the window is open. */
  readonly desired?: number | undefined;
}

/** An operator's manual capacity, until a time (`autoscaler scale GROUP --desired N --for 30m`). */
export interface CapacityOverride {
  readonly desired: number;
  /** Epoch ms; no end: until cleared. */
  readonly until: number | null;
  /** Who set it (OS user). */
  readonly by: string;
}

/** What the controller observed about a group at `now`: the input of every policy. */
export interface Observation {
  readonly now: number;
  /** The group's bounds (before schedules). */
  readonly minSize: number;
  readonly maxSize: number;
  /** Instances counted as capacity: ready + warming + launching + suspect + stale. */
  readonly current: number;
  /** Running, registered, past the warm-up, with a fresh sample. */
  readonly ready: readonly ReadyInstance[];
  /** Registered but within the warm-up: capacity, metric not used. */
  readonly warming: number;
  /** Launched (or launch requested) but not registered yet. */
  readonly launching: number;
  /** Missed heartbeats, not dead: capacity, metric not trusted. */
  readonly suspect: number;
  /** Running but whose latest sample is older than the freshness bound: metric not used. */
  readonly stale: number;
  /** The group's per-minute history, oldest first (predictive scaling reads it). */
  readonly history: readonly MinuteSample[];
  /** Scheduled actions whose window is open now. */
  readonly schedules: readonly ScheduleWindow[];
  /** A manual capacity in force, if any. */
  readonly override?: CapacityOverride | undefined;
}

/** What one policy proposes: an absolute count, with why. */
export interface Proposal {
  /** Which policy, e.g. "target-tracking cpu", "step high-cpu", "predictive". */
  readonly source: string;
  readonly desired: number;
  /**
   * `vote`: takes part in the out-if-any, in-only-if-all rule (a hold is a vote for the current
   * count). `out-only`: may raise the count, never lowers it and never blocks a scale-in
   * (predictive, as AWS's). Default vote.
   */
  readonly kind?: 'vote' | 'out-only' | undefined;
  readonly reason: DecisionReason;
  readonly message: string;
  /** Inputs worth recording. */
  readonly details?: Readonly<Record<string, number | string | null>> | undefined;
}

/** A metric of a ready instance. */
export function metricOf(i: ReadyInstance, m: Metric): number {
  return m === 'cpu' ? i.cpu : i.mem;
}
