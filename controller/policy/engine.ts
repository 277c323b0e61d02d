/**
 * The policy engine: the registry of pure policies and decide(), which runs each on the
 * observation, then combine(). Pure: the controller's loop and the simulator (sim/) call the same
 * function with the same inputs and get the same decision.
 */
import type { PolicyDocument } from '../../domain/policy.js';
import { combine } from './combine.js';
import { predictive } from './predictive.js';
import { stepScaling } from './step.js';
import { trackTarget } from './target-tracking.js';
import type { Observation, PolicyState, Proposal, ScalingDecision } from './types.js';

/** One registered policy: its proposals for this observation (none: no opinion), and its state. */
export interface PolicyModule {
  readonly name: string;
  evaluate(obs: Observation, policy: PolicyDocument, state: PolicyState, now: number): { proposals: readonly Proposal[]; state?: Partial<PolicyState> };
}

export const POLICIES: readonly PolicyModule[] = [
  {
    name: 'target-tracking',
    evaluate: (obs, policy) => ({ proposals: policy.targetTracking.map((rule) => trackTarget(obs, rule)) }),
  },
  {
    name: 'step',
    evaluate: (obs, policy, state, now) => ({
      proposals: policy.step.flatMap((p) => {
        const proposal = stepScaling(obs, p, state.stepLastAction[p.name], now);
        return proposal === undefined ? [] : [proposal];
      }),
    }),
  },
  {
    name: 'predictive',
    evaluate: (obs, policy, _state, now) => {
      const r = predictive(obs, policy.predictive, now);
      return {
        proposals: r.proposal === undefined ? [] : [r.proposal],
        state: r.forecast === undefined ? {} : { forecast: { at: r.forecast.at, forAt: r.forecast.forAt, demand: r.forecast.demand, desired: r.forecast.desired } },
      };
    },
  },
];

export interface DecideResult {
  readonly decision: ScalingDecision;
  /** The state to pass next time (and to persist). */
  readonly state: PolicyState;
  /** Every proposal, for the decision's details and `autoscaler policy show`. */
  readonly proposals: readonly Proposal[];
}

/** Run every policy, then combine. The same input gives the same output. */
export function decide(obs: Observation, policy: PolicyDocument, state: PolicyState, now: number): DecideResult {
  let next: PolicyState = state;
  const proposals: Proposal[] = [];
  for (const m of POLICIES) {
    const r = m.evaluate(obs, policy, state, now);
    proposals.push(...r.proposals);
    if (r.state !== undefined) next = { ...next, ...r.state };
  }
  const combined = combine(obs, proposals, policy, next, now);
  return { decision: combined.decision, state: combined.state, proposals };
}
