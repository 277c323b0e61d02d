import { describe, expect, it } from 'vitest';
import { formatProblems, parseGroup, parsePolicy } from './policy.js';

describe('policy document', () => {
  it('an empty document gets the documented defaults (HPA behavior, target 50 % CPU)', () => {
    const r = parsePolicy({});
    expect(r.ok && r.value).toMatchObject({
      version: 1, warmupMs: 0,
      targetTracking: [{ metric: 'cpu', target: 50, toleranceUp: 0.1, toleranceDown: 0.1 }],
      behavior: {
        scaleUp: { stabilizationMs: 0, selectPolicy: 'max', policies: [{ type: 'instances', value: 4, periodMs: 15_000 }, { type: 'percent', value: 100, periodMs: 15_000 }] },
        scaleDown: { stabilizationMs: 300_000, selectPolicy: 'max', policies: [{ type: 'percent', value: 100, periodMs: 15_000 }] },
      },
      saturation: { enabled: true, level: 90 }, step: [], schedules: [], predictive: { mode: 'forecast-only' }, outageGuard: { enabled: true, drop: 0.95 },
    });
  });

  it.each([
    { name: 'target × (1 + tolerance) ≥ 100', doc: { targetTracking: [{ target: 95 }] }, want: 'targetTracking.0.toleranceUp: target × (1 + toleranceUp) must be below 100' },
    { name: 'target 60 with tolerance 0.9', doc: { targetTracking: [{ target: 60, toleranceUp: 0.9 }] }, want: 'targetTracking.0.toleranceUp: target × (1 + toleranceUp) must be below 100' },
    { name: 'unknown field', doc: { targetTrackin: [] }, want: '(document): Unrecognized key: "targetTrackin"' },
    { name: 'bad enum', doc: { behavior: { scaleUp: { selectPolicy: 'most' } } }, want: 'behavior.scaleUp.selectPolicy: must be max, min or disabled' },
    { name: 'step without steps', doc: { step: [{ comparison: 'gt', threshold: 70, steps: [] }] }, want: 'step.0.steps: needs at least one step' },
    { name: 'schedule that sets nothing', doc: { schedules: [{ name: 'x', cron: '0 8 * * 1-5', durationMs: 3_600_000 }] }, want: 'schedules.0: sets none of minSize, maxSize, desired' },
    { name: 'wrong version', doc: { version: 2 }, want: 'version: must be 1' },
  ])('refused: $name, naming the field', ({ doc, want }) => {
    const r = parsePolicy(doc);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(formatProblems(r.problems)).toContain(want);
  });

  it('a group document checks its bounds', () => {
    const r = parseGroup({ id: 'web', minSize: 3, maxSize: 2 });
    expect(r.ok ? '' : formatProblems(r.problems)).toBe('maxSize: must be >= minSize');
  });
});

describe('policy document: step policies', () => {
  it('names must be unique (each has its own cooldown)', () => {
    const step = { comparison: 'gt', threshold: 70, steps: [{ lower: 0, adjustment: 1 }] };
    const r = parsePolicy({ step: [{ ...step, name: 'hot' }, { ...step, name: 'hot' }] });
    expect(r.ok ? '' : formatProblems(r.problems)).toBe('step: step policy names must be unique (each has its own cooldown)');
  });
});
