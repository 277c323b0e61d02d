import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { PolicyDocumentInput } from '../../domain/policy.js';
import { combine } from './combine.js';
import { decide } from './engine.js';
import { obsOf, policyOf } from './testing.js';
import { EMPTY_POLICY_STATE, type Observation, type PolicyState, type Proposal } from './types.js';

const now = 1_000_000;
/** Fixed, so that a run is repeatable; change it to explore new cases (a failure prints its own seed). */
const SEED = 20_261_202;
const p = (desired: number, extra: Partial<Proposal> = {}): Proposal => ({ source: 'test', desired, reason: desired > 4 ? 'ScaleOut' : desired < 4 ? 'ScaleIn' : 'WithinTolerance', message: `propose ${desired}`, ...extra });
const noWindows: PolicyDocumentInput = { behavior: { scaleDown: { stabilizationMs: 0 } }, outageGuard: { enabled: false } };
const four = obsOf([50, 50, 50, 50]);
const state = (s: Partial<PolicyState> = {}): PolicyState => ({ ...EMPTY_POLICY_STATE, ...s });

describe('combine: one named row per rule', () => {
  it.each([
    { name: 'votes: out if any (largest wins)', proposals: [p(4), p(6), p(5)], want: { desired: 6, reason: 'ScaleOut' } },
    { name: 'votes: in only if all (smallest reduction wins)', proposals: [p(2), p(3)], want: { desired: 3, reason: 'ScaleIn' } },
    { name: 'votes: a hold blocks scale-in', proposals: [p(2), p(4)], want: { desired: 4, reason: 'WithinTolerance' } },
    { name: 'votes: out-only proposals raise…', proposals: [p(4), p(7, { kind: 'out-only', reason: 'Predictive' })], want: { desired: 7, reason: 'Predictive' } },
    { name: 'votes: …but never block a scale-in', proposals: [p(2), p(3, { kind: 'out-only', reason: 'Predictive' })], want: { desired: 2, reason: 'ScaleIn' } },
    { name: 'no proposal: hold with NoData', proposals: [], want: { desired: 4, reason: 'NoData' } },
  ])('$name', ({ proposals, want }) => {
    expect(combine(four, proposals, policyOf(noWindows), state(), now).decision).toMatchObject(want);
  });

  it.each([
    {
      name: 'scale-down stabilization: the highest recommendation of the window holds',
      policy: { behavior: { scaleDown: { stabilizationMs: 60_000 } }, outageGuard: { enabled: false } },
      history: [{ at: now - 30_000, desired: 4 }], proposals: [p(2)], want: { desired: 4, reason: 'ScaleInStabilized' },
    },
    {
      name: 'scale-down stabilization: an old recommendation outside the window does not',
      policy: { behavior: { scaleDown: { stabilizationMs: 60_000 } }, outageGuard: { enabled: false } },
      history: [{ at: now - 90_000, desired: 4 }], proposals: [p(2)], want: { desired: 2, reason: 'ScaleIn' },
    },
    {
      name: 'scale-up stabilization: the lowest recommendation of the window holds',
      policy: { behavior: { scaleUp: { stabilizationMs: 60_000 } }, outageGuard: { enabled: false } },
      history: [{ at: now - 30_000, desired: 5 }], proposals: [p(8)], want: { desired: 5, reason: 'ScaleOut', trail: ['ScaleOut', 'ScaleOutStabilized'] },
    },
  ])('$name', ({ policy, history, proposals, want }) => {
    expect(combine(four, proposals, policyOf(policy), state({ recommendations: history }), now).decision).toMatchObject(want);
  });

  it.each([
    { name: 'instances per period (+4 per 15 s)', behavior: { scaleUp: { policies: [{ type: 'instances' as const, value: 2, periodMs: 15_000 }] } }, events: [], proposal: 20, want: 6 },
    { name: 'percent per period, rounded up (+50 % of 4)', behavior: { scaleUp: { policies: [{ type: 'percent' as const, value: 50, periodMs: 15_000 }] } }, events: [], proposal: 20, want: 6 },
    { name: 'select max: the most permissive (HPA default: max(4, 100 %))', behavior: {}, events: [], proposal: 20, want: 8 },
    { name: 'select min: the strictest', behavior: { scaleUp: { selectPolicy: 'min' as const } }, events: [], proposal: 20, want: 8 },
    { name: 'what was added within the period counts', behavior: { scaleUp: { policies: [{ type: 'instances' as const, value: 3, periodMs: 60_000 }] } }, events: [{ at: now - 10_000, delta: 2 }], proposal: 20, want: 5 },
    { name: 'disabled: no scale-up at all', behavior: { scaleUp: { selectPolicy: 'disabled' as const } }, events: [], proposal: 20, want: 4 },
    { name: 'scale-down percent (−50 % of 4)', behavior: { scaleDown: { stabilizationMs: 0, policies: [{ type: 'percent' as const, value: 50, periodMs: 15_000 }] } }, events: [], proposal: 1, want: 2 },
    { name: 'scale-down instances (−1 per 60 s), one already removed', behavior: { scaleDown: { stabilizationMs: 0, policies: [{ type: 'instances' as const, value: 1, periodMs: 60_000 }] } }, events: [{ at: now - 5_000, delta: -1 }], proposal: 1, want: 4 },
  ])('rate limits: $name', ({ behavior, events, proposal, want }) => {
    const policy = policyOf({ behavior: { scaleDown: { stabilizationMs: 0 }, ...behavior }, outageGuard: { enabled: false } });
    expect(combine(four, [p(proposal)], policy, state({ scaleEvents: events }), now).decision.desired).toBe(want);
  });

  it.each([
    { name: 'saturated with capacity on its way: scale out at the highest allowed rate anyway', o: obsOf([100, 100, 100, 98], { launching: 4, maxSize: 100 }), proposals: [p(8, { reason: 'WithinTolerance', desired: 8 })], want: { desired: 16, reason: 'Saturated' } },
    { name: 'saturated and the proposal holds: still out', o: obsOf([99, 97, 96]), proposals: [p(3)], want: { desired: 7, reason: 'Saturated' } },
    { name: 'not saturated below the level', o: obsOf([85, 85, 85]), proposals: [p(3)], want: { desired: 3 } },
    { name: 'saturation stops at max size', o: obsOf([100, 100, 100, 100, 100, 100, 100, 100]), proposals: [p(8)], want: { desired: 10, reason: 'Saturated' } },
  ])('saturation: $name', ({ o, proposals, want }) => {
    expect(combine(o, proposals, policyOf({ ...noWindows, behavior: { scaleDown: { stabilizationMs: 0 } } }), state(), now).decision).toMatchObject(want);
  });

  it.each([
    { name: 'partial data: a suspect instance blocks scale-in', o: obsOf([10, 10, 10], { suspect: 1 }), want: { desired: 4, reason: 'NoData' } },
    { name: 'stale data blocks scale-in', o: obsOf([10, 10, 10], { stale: 1 }), want: { desired: 4, reason: 'NoData' } },
    { name: 'no scale-in while launching', o: obsOf([10, 10, 10], { launching: 1 }), want: { desired: 4, reason: 'ScaleOutInProgress' } },
  ])('scale-in guards: $name', ({ o, want }) => {
    expect(combine(o, [p(1)], policyOf(noWindows), state(), now).decision).toMatchObject(want);
  });

  it('outage guard: demand collapsing by 80 % within a minute holds scale-in, then lets go', () => {
    const policy = policyOf({ behavior: { scaleDown: { stabilizationMs: 0 } }, outageGuard: { drop: 0.8, windowMs: 60_000, holdMs: 300_000 } });
    const before = state({ demand: [{ at: now - 20_000, value: 400 }] });
    const hit = combine(obsOf([5, 5, 5, 5]), [p(1)], policy, before, now);
    expect(hit.decision).toMatchObject({ desired: 4, reason: 'OutageGuard' });
    expect(hit.state.outageHoldUntil).toBe(now + 300_000);
    const during = combine(obsOf([5, 5, 5, 5], {}, now + 10_000), [p(1)], policy, hit.state, now + 10_000);
    expect(during.state.outageHoldUntil).toBe(now + 300_000); // not re-armed by the same collapse
    const later = combine(obsOf([5, 5, 5, 5], {}, now + 301_000), [p(1)], policy, during.state, now + 301_000);
    expect(later.decision).toMatchObject({ desired: 1, reason: 'ScaleIn' });
    const out = combine(obsOf([100, 100, 100, 100], {}, now + 1_000), [p(8)], policy, hit.state, now + 1_000);
    expect(out.decision.desired).toBe(8); // scale-out is never held
  });

  it.each([
    { name: 'a window raises min', windows: [{ name: 'day', startedAt: 0, endsAt: now + 1, minSize: 6 }], proposals: [p(4)], want: { desired: 6, reason: 'ClampedToMin' } },
    { name: 'a window lowers max', windows: [{ name: 'night', startedAt: 0, endsAt: now + 1, maxSize: 2 }], proposals: [p(4)], want: { desired: 2, reason: 'ClampedToMax' } },
    { name: 'a window sets a desired floor', windows: [{ name: 'launch', startedAt: 0, endsAt: now + 1, desired: 7 }], proposals: [p(3)], want: { desired: 7, reason: 'Scheduled' } },
  ])('schedules: $name', ({ windows, proposals, want }) => {
    const o: Observation = { ...four, schedules: windows };
    expect(combine(o, proposals, policyOf(noWindows), state(), now).decision).toMatchObject(want);
  });

  it.each([
    { name: 'a manual capacity wins over the policies', override: { desired: 9, until: now + 60_000, by: 'ops' }, want: { desired: 9, reason: 'ManualOverride' } },
    { name: 'still within max', override: { desired: 30, until: null, by: 'ops' }, want: { desired: 10, reason: 'ManualOverride', trail: ['WithinTolerance', 'ManualOverride', 'ClampedToMax'] } },
    { name: 'an expired one is ignored', override: { desired: 9, until: now - 1, by: 'ops' }, want: { desired: 4, reason: 'WithinTolerance' } },
  ])('override: $name', ({ override, want }) => {
    expect(combine({ ...four, override }, [p(4)], policyOf(noWindows), state(), now).decision).toMatchObject(want);
  });

  it('min and max come last', () => {
    expect(combine(obsOf([]), [p(0, { reason: 'NoData' })], policyOf(noWindows), state(), now).decision).toMatchObject({ current: 0, desired: 1, reason: 'ClampedToMin' });
  });

  it('a step policy that acted starts its cooldown', () => {
    const r = combine(four, [p(6, { source: 'step high-cpu', reason: 'StepScaling' })], policyOf(noWindows), state(), now);
    expect(r.decision.reason).toBe('StepScaling');
    expect(r.state.stepLastAction['high-cpu']).toBe(now);
  });
});

// Properties: for arbitrary fleets, policies and histories.
const cpus = fc.array(fc.double({ min: 0, max: 100, noNaN: true }), { maxLength: 30 });
const transit = fc.record({ warming: fc.nat(3), launching: fc.nat(3), suspect: fc.nat(3), stale: fc.nat(3) });
const bounds = fc.tuple(fc.nat(10), fc.nat(20)).map(([a, b]) => ({ minSize: Math.min(a, b), maxSize: Math.max(a, b, 1) }));
const policies = fc.record({
  target: fc.integer({ min: 10, max: 80 }),
  up: fc.integer({ min: 0, max: 600_000 }),
  down: fc.integer({ min: 0, max: 900_000 }),
  step: fc.integer({ min: 1, max: 10 }),
  percent: fc.integer({ min: 1, max: 200 }),
}).map((x) => policyOf({
  targetTracking: [{ target: x.target }],
  behavior: {
    scaleUp: { stabilizationMs: x.up, policies: [{ type: 'instances', value: x.step, periodMs: 15_000 }, { type: 'percent', value: x.percent, periodMs: 60_000 }] },
    scaleDown: { stabilizationMs: x.down },
  },
}));

function run(cpu: number[], t: { warming: number; launching: number; suspect: number; stale: number }, b: { minSize: number; maxSize: number }, policy: ReturnType<typeof policyOf>, s: PolicyState, at: number) {
  return decide(obsOf(cpu, { ...t, ...b }, at), policy, s, at);
}

describe('combine: properties (fast-check)', () => {
  it('desired stays within [min, max]', () => {
    fc.assert(fc.property(cpus, transit, bounds, policies, (cpu, t, b, policy) => {
      const d = run(cpu, t, b, policy, EMPTY_POLICY_STATE, now).decision;
      return d.desired >= b.minSize && d.desired <= b.maxSize;
    }), { numRuns: 500, seed: SEED });
  });

  it('no scale-in on partial or stale data', () => {
    fc.assert(fc.property(cpus, transit, policies, (cpu, t, policy) => {
      fc.pre(t.suspect + t.stale + t.launching > 0);
      const d = run(cpu, t, { minSize: 0, maxSize: 100 }, policy, EMPTY_POLICY_STATE, now).decision;
      return d.desired >= d.current;
    }), { numRuns: 500, seed: SEED });
  });

  it('the same input gives the same output', () => {
    fc.assert(fc.property(cpus, transit, bounds, policies, (cpu, t, b, policy) => {
      const a = run(cpu, t, b, policy, EMPTY_POLICY_STATE, now);
      const again = run([...cpu], { ...t }, { ...b }, policy, EMPTY_POLICY_STATE, now);
      return JSON.stringify(a) === JSON.stringify(again);
    }), { numRuns: 300, seed: SEED });
  });

  it('saturation never holds a scale-out', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 20 }), transit, policies, (n, t, policy) => {
      const d = run(Array.from({ length: n }, () => 100), { ...t, suspect: 0, stale: 0 }, { minSize: 0, maxSize: 1_000 }, policy, EMPTY_POLICY_STATE, now).decision;
      return d.desired > d.current;
    }), { numRuns: 300, seed: SEED });
  });

  it('rate limits hold over every window, and no reversal comes faster than the stabilization window allows', () => {
    fc.assert(fc.property(fc.array(fc.tuple(cpus, fc.integer({ min: 1_000, max: 60_000 })), { minLength: 2, maxLength: 40 }), policies, (steps, policy) => {
      let s = EMPTY_POLICY_STATE;
      let at = now;
      let current = 4;
      const events: { at: number; delta: number }[] = [];
      let lastUp = -Infinity;
      for (const [cpu, dt] of steps) {
        at += dt;
        const sized = Array.from({ length: current }, (_, k) => cpu[k % Math.max(1, cpu.length)] ?? 50);
        const r = run(sized, { warming: 0, launching: 0, suspect: 0, stale: 0 }, { minSize: 1, maxSize: 1_000 }, policy, s, at);
        s = r.state;
        const delta = r.decision.desired - current;
        if (delta > 0) {
          events.push({ at, delta });
          lastUp = at;
          // +step per 15 s or +percent per 60 s: the most permissive bounds the total added in any 15 s.
          const added15 = events.filter((e) => e.at > at - 15_000 && e.delta > 0).reduce((n, e) => n + e.delta, 0);
          const added60 = events.filter((e) => e.at > at - 60_000 && e.delta > 0).reduce((n, e) => n + e.delta, 0);
          const start15 = r.decision.desired - added15;
          const start60 = r.decision.desired - added60;
          const ok = added15 <= policy.behavior.scaleUp.policies[0]!.value || r.decision.desired <= Math.ceil(start60 * (1 + policy.behavior.scaleUp.policies[1]!.value / 100));
          if (!ok && start15 >= 0) return false;
        } else if (delta < 0) {
          events.push({ at, delta });
          // A scale-in right after a scale-out: only once the scale-down window has passed the higher recommendation.
          if (at - lastUp < policy.behavior.scaleDown.stabilizationMs && lastUp > -Infinity) return false;
        }
        current = r.decision.desired;
      }
      return true;
    }), { numRuns: 200, seed: SEED });
  });
});
