/**
 * What the policy engine remembers and reads over time, shared by the controller (which computes
 * it), the store (which persists it) and the simulator. The lowest floor: imports nothing.
 */
import type { Recommendation } from './decision.js';

/**
 * One minute of a group's history, as the controller rolls it up each minute: sums over the
 * ready instances, so `cpu` is the demand in percent of one instance (3 instances at 50 % = 150).
 */
export interface MinuteSample {
  /** Start of the minute, epoch ms. */
  readonly minute: number;
  /** Ready instances (average over the minute). */
  readonly ready: number;
  /** Instances counted as capacity. */
  readonly capacity: number;
  readonly cpu: number;
  readonly mem: number;
}

/** A change the controller acted on, for the behavior's rate limits. */
export interface ScaleEvent {
  readonly at: number;
  /** Instances added (positive) or removed (negative). */
  readonly delta: number;
}

/**
 * Everything the policies remember between evaluations. Persisted by the controller after each
 * evaluation, so a restarted controller decides as the old one would have.
 */
export interface PolicyState {
  /** Recommendations within the longest stabilization window. */
  readonly recommendations: readonly Recommendation[];
  /** Changes within the longest rate-limit period. */
  readonly scaleEvents: readonly ScaleEvent[];
  /** Per step policy name, when it last acted (its cooldown runs from there). */
  readonly stepLastAction: Readonly<Record<string, number>>;
  /** The group's demand over the outage guard's window. */
  readonly demand: readonly { readonly at: number; readonly value: number }[];
  /** Scale-in waits until then (the outage guard fired). 0: not holding. */
  readonly outageHoldUntil: number;
  /** The last forecast (predictive scaling), for status and `forecast-only`. */
  readonly forecast?: {
    readonly at: number;
    /** The time the forecast is for (now + lead). */
    readonly forAt: number;
    readonly demand: number;
    readonly desired: number;
  } | undefined;
}

export const EMPTY_POLICY_STATE: PolicyState = Object.freeze({
  recommendations: [], scaleEvents: [], stepLastAction: {}, demand: [], outageHoldUntil: 0,
});
