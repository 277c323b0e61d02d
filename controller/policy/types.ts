/**
 * Types of the pure decision core. Nothing here does I/O or reads the clock: callers pass `now`.
 */

/** Target tracking on the average CPU of live instances (the shape of K8s HPA's CPU rule). */
export interface TargetTrackingPolicy {
  readonly kind: 'target-tracking';
  /** Average CPU the group aims for, percent (1..100). Default 50. */
  readonly targetCpu: number;
  /** No action while |avg / target − 1| ≤ tolerance. Default 0.1. */
  readonly tolerance: number;
  /** Scale-in uses the highest recommendation seen over this window, ms. Default 300 000. */
  readonly scaleInStabilizationMs: number;
  /** One scale-out adds at most max(step, ceil(current × percent / 100)). Defaults 4 and 100. */
  readonly scaleOutMaxStep: number;
  readonly scaleOutMaxPercent: number;
  /**
   * Instance warm-up, ms: for this long after registering, an instance counts as capacity but its
   * CPU is not used (it is still taking on load). Default 0 (off), as in AWS.
   */
  readonly warmupMs: number;
}

/** A scaling group as the decision core sees it. */
export interface GroupSpec {
  /** Group id, also the provider's group name. */
  readonly id: string;
  /** Bounds of the instance count. */
  readonly minSize: number;
  readonly maxSize: number;
  readonly policy: TargetTrackingPolicy;
}

/** Every reason a decision can carry; the events log and the status view show them. */
export type DecisionReason =
  | 'ScaleOut'
  | 'ScaleIn'
  | 'WithinTolerance'
  | 'ClampedToMin'
  | 'ClampedToMax'
  | 'StepLimited'
  | 'ScaleInStabilized'
  | 'ScaleOutInProgress'
  | 'NoData'
  | 'Paused'
  | 'MonitorUnavailable'
  | 'ReplaceUnhealthy'
  /** The provider's listing failed: nothing is decided on a view we do not have. */
  | 'ProviderUnavailable'
  /** The cloud forbids acting now (instance refresh, suspended process). */
  | 'ProviderBlocked'
  /** A provider call failed recently; actions wait for the backoff. */
  | 'ProviderBackoff';

/** The outcome of one evaluation: the number, why, and every rule that fired on the way. */
export interface ScalingDecision {
  /** Instances counted as capacity before the decision. */
  readonly current: number;
  /** Instances the group should have. */
  readonly desired: number;
  readonly reason: DecisionReason;
  /** Human sentence, e.g. "avg CPU 96.0% vs target 50% → ceil(2 × 1.92) = 4". */
  readonly message: string;
  /** Every rule that fired, in order. */
  readonly trail: readonly DecisionReason[];
  /** Inputs worth recording with the decision. */
  readonly details: Readonly<Record<string, number | string | null>>;
}

/** A past recommendation, kept for the scale-in stabilization window. */
export interface Recommendation {
  readonly at: number;
  readonly desired: number;
}
