/** Builders for policy tests (not part of the build). */
export { defaultPolicy as policyOf } from '../../lib/testing.js';
import type { Observation, ReadyInstance } from './types.js';

/** An observation: ready instances at these CPUs (memory 30 %), plus instances in transit. */
export function obsOf(cpu: readonly number[], more: Partial<Omit<Observation, 'ready'>> = {}, now = 1_000_000): Observation {
  const ready: ReadyInstance[] = cpu.map((c, n) => ({ id: `i-${n}`, cpu: c, mem: 30 }));
  const o = { warming: 0, launching: 0, suspect: 0, stale: 0, ...more };
  return {
    now, minSize: 1, maxSize: 10, history: [], schedules: [], override: undefined, ...o, ready,
    current: more.current ?? ready.length + o.warming + o.launching + o.suspect + o.stale,
  };
}
