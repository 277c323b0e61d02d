/**
 * Our policy engine under simulation: the fleet → the real observe() → the real decide() (every
 * registered policy, then combine()), every tick, with the policy state carried from one tick to
 * the next as the controller's store carries it. Not a copy: the same functions the controller's
 * loop calls.
 */
import { demandOf } from '../controller/policy/combine.js';
import { decide } from '../controller/policy/engine.js';
import { observe, type ObservedInstance } from '../controller/policy/observe.js';
import { EMPTY_POLICY_STATE, type MinuteSample, type PolicyState, type ScheduleWindow } from '../controller/policy/types.js';
import type { PolicyDocument } from '../domain/policy.js';
import type { FleetView, SimPolicy } from './types.js';

/** The controller's evaluation interval (CONTROLLER_INTERVAL_MS default): 5 s. */
export const DEFAULT_TICK_S = 5;
/** Predictive scaling reads this much history beyond a season and its lead (as controller/loop.ts). */
const HISTORY_MARGIN_MS = 3_600_000;

export interface EnginePolicyOptions {
  /** Shown in tables. Default "default". */
  readonly name?: string;
  /** Seconds between evaluations. Default 5. */
  readonly tickS?: number;
  /** Open scheduled windows at `now` (the CLI passes controller/schedules.ts openWindows). Default none. */
  readonly windows?: (now: number) => ScheduleWindow[];
  /**
   * `auto` (default): per-minute history is kept and passed only when predictive scaling may act
   * (`forecast-and-scale`): a `forecast-only` forecast lands in the state, which no rule reads, so
   * decisions are the same without it and a week runs in seconds. `always`: as the controller,
   * whenever predictive is not off.
   */
  readonly history?: 'auto' | 'always';
}

/** A SimPolicy that runs `policy` through the engine. */
export function enginePolicy(policy: PolicyDocument, opts: EnginePolicyOptions = {}): SimPolicy {
  const tickS = opts.tickS ?? DEFAULT_TICK_S;
  const windows = opts.windows ?? (() => []);
  const mode = policy.predictive.mode;
  const keepHistory = mode === 'forecast-and-scale' || (mode === 'forecast-only' && opts.history === 'always');
  const historyMs = policy.predictive.seasonMs + policy.predictive.leadMs + HISTORY_MARGIN_MS;
  let state: PolicyState = EMPTY_POLICY_STATE;
  const minutes: { minute: number; ready: number; capacity: number; cpu: number; mem: number; samples: number }[] = [];
  let oldest = 0;
  return {
    name: opts.name ?? 'default',
    intervalS: tickS,
    decide(view: FleetView): number {
      const now = view.now;
      const instances: ObservedInstance[] = view.instances().map((i) => ({
        id: i.id, state: 'running', cpu: i.cpu, mem: i.mem, sampleAt: now, registeredAt: i.readyAt,
      }));
      for (let k = 0; k < view.launching; k++) instances.push({ id: `launching-${k}`, state: 'pending', cpu: null, mem: null, sampleAt: null, registeredAt: null });
      for (let k = 0; k < view.suspect; k++) instances.push({ id: `suspect-${k}`, state: 'suspect', cpu: null, mem: null, sampleAt: null, registeredAt: null });
      let history: MinuteSample[] = [];
      if (keepHistory) {
        while (oldest < minutes.length && (minutes[oldest] as { minute: number }).minute < now - historyMs) oldest++;
        history = minutes.slice(oldest);
      }
      const obs = observe({
        instances, inFlight: 0, minSize: view.minSize, maxSize: view.maxSize, warmupMs: policy.warmupMs,
        metricMaxAgeMs: Number.MAX_SAFE_INTEGER, history, schedules: windows(now), now,
      });
      const decided = decide(obs, policy, state, now);
      state = decided.state;
      if (keepHistory) {
        // As store/minutes.ts: each evaluation folds into its minute as a running average.
        const minute = now - (now % 60_000);
        const s = { ready: obs.ready.length, capacity: obs.current, cpu: demandOf(obs), mem: obs.ready.reduce((a, i) => a + i.mem, 0) };
        const last = minutes.at(-1);
        if (last !== undefined && last.minute === minute) {
          const n = last.samples;
          last.ready = (last.ready * n + s.ready) / (n + 1);
          last.capacity = (last.capacity * n + s.capacity) / (n + 1);
          last.cpu = (last.cpu * n + s.cpu) / (n + 1);
          last.mem = (last.mem * n + s.mem) / (n + 1);
          last.samples = n + 1;
        } else {
          minutes.push({ minute, ...s, samples: 1 });
        }
      }
      return decided.decision.desired;
    },
  };
}
