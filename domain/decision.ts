/**
 * What a decision is, shared by the controller that makes it, the store that records it and
 * every surface that shows it. The lowest floor: imports nothing.
 */

/** Every reason a decision can carry; the events log, the status view and the dashboard show them. */
export type DecisionReason =
  | 'ScaleOut'
  | 'ScaleIn'
  | 'WithinTolerance'
  | 'ClampedToMin'
  | 'ClampedToMax'
  /** A rate limit of the behavior (instances or percent per period) cut the change. */
  | 'StepLimited'
  /** Scale-in held by the highest recommendation of the scale-down stabilization window. */
  | 'ScaleInStabilized'
  /** Scale-out held by the lowest recommendation of the scale-up stabilization window. */
  | 'ScaleOutStabilized'
  | 'ScaleOutInProgress'
  | 'NoData'
  /** Ready instances at the saturation level: demand unknown, scale out at the highest allowed rate. */
  | 'Saturated'
  /** Demand collapsed: scale-in waits (an upstream outage is usually followed by retries). */
  | 'OutageGuard'
  /** A step scaling policy fired. */
  | 'StepScaling'
  /** A scheduled action's window set the bounds or a floor. */
  | 'Scheduled'
  /** Predictive scaling, ahead of the forecast. */
  | 'Predictive'
  /** An operator's `autoscaler scale --desired N`. */
  | 'ManualOverride'
  /** The behavior disables scaling in this direction. */
  | 'ScalingDisabled'
  | 'Paused'
  | 'MonitorUnavailable'
  | 'ReplaceUnhealthy'
  /** A large share of the group went silent at once: no termination and no scale-in until it clears. */
  | 'FailStatic'
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

/** A past recommendation, kept for the stabilization windows. */
export interface Recommendation {
  readonly at: number;
  readonly desired: number;
}
