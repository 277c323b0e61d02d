import { describe, expect, it } from 'vitest';
import { FailureDetector, classify } from './liveness.js';

const cfg = { suspectAfterMs: 2_500, deadAfterMs: 4_500 };

describe('classify', () => {
  it.each([
    { name: 'fresh', silent: 0, connected: true, want: 'running' },
    { name: 'one missed beat', silent: 1_900, connected: true, want: 'running' },
    { name: 'suspect threshold', silent: 2_500, connected: true, want: 'suspect' },
    { name: 'stream closed is suspect at once', silent: 10, connected: false, want: 'suspect' },
    { name: 'dead threshold', silent: 4_500, connected: true, want: 'dead' },
    { name: 'dead while disconnected', silent: 9_000, connected: false, want: 'dead' },
  ])('$name', ({ silent, connected, want }) => {
    expect(classify(silent, connected, cfg)).toBe(want);
  });
});

describe('FailureDetector', () => {
  it('moves running → suspect → dead and back on a heartbeat', () => {
    const d = new FailureDetector(cfg);
    d.watch('i-1', 'g', 0, 'running', true);
    expect(d.sweep(1_000)).toEqual([]);
    expect(d.sweep(2_600)).toMatchObject([{ instanceId: 'i-1', from: 'running', to: 'suspect' }]);
    expect(d.sweep(4_600)).toMatchObject([{ instanceId: 'i-1', from: 'suspect', to: 'dead', reason: 'no heartbeat for 4600 ms' }]);
    expect(d.liveCount('g')).toBe(0);
    expect(d.heartbeat('i-1', 5_000)).toMatchObject({ from: 'dead', to: 'running' });
    expect(d.liveCount('g')).toBe(1);
  });

  it('declares a silent agent dead within 5 intervals of its last heartbeat (1 s interval, 250 ms sweeps)', () => {
    const d = new FailureDetector(cfg);
    d.watch('i-1', 'g', 0, 'running', true);
    d.heartbeat('i-1', 7_000); // last heartbeat at 7 s, then silence
    let deadAt: number | undefined;
    for (let t = 7_000; t <= 20_000 && deadAt === undefined; t += 250) {
      if (d.sweep(t).some((x) => x.to === 'dead')) deadAt = t;
    }
    expect(deadAt).toBeDefined();
    expect((deadAt as number) - 7_000).toBeLessThanOrEqual(5 * 1_000);
  });

  it('a dropped stream is suspect at once, dead on the usual timeout', () => {
    const d = new FailureDetector(cfg);
    d.watch('i-1', 'g', 0, 'running', true);
    expect(d.disconnected('i-1')).toMatchObject({ to: 'suspect', reason: 'heartbeat stream closed' });
    expect(d.sweep(1_000)).toEqual([]);
    expect(d.sweep(4_500)).toMatchObject([{ to: 'dead' }]);
  });

  it('forgets and ignores unknown instances', () => {
    const d = new FailureDetector(cfg);
    d.watch('i-1', 'g', 0, 'running', true);
    d.forget('i-1');
    expect(d.heartbeat('i-1', 1)).toBeUndefined();
    expect(d.sweep(100_000)).toEqual([]);
  });

  it('rejects nonsensical thresholds', () => {
    expect(() => new FailureDetector({ suspectAfterMs: 5_000, deadAfterMs: 1_000 })).toThrow(TypeError);
  });
});
