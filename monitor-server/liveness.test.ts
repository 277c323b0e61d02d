import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FailureDetector, classify, phi } from './liveness.js';

const cfg = { suspectAfterMs: 2_500, deadAfterMs: 4_500, detector: 'timeout' as const };

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

describe('phi accrual (the default detector)', () => {
  const phiCfg = { suspectAfterMs: 2_500, deadAfterMs: 4_500, heartbeatIntervalMs: 1_000, detector: 'phi' as const };
  /** An agent beating every second (with ±30 ms jitter) from t=0 to `until`, then silent; sweeps every 250 ms. */
  function run(d: FailureDetector, until: number, pauses: readonly { at: number; ms: number }[] = [], end = until + 30_000) {
    d.watch('i-1', 'g', 0, 'running', true);
    const transitions: { t: number; to: string; reason: string }[] = [];
    let next = 1_000;
    for (let t = 0; t <= end; t += 50) {
      const pause = pauses.find((p) => t >= p.at && t < p.at + p.ms);
      if (t >= next && t <= until && pause === undefined) {
        d.heartbeat('i-1', t);
        next = t + 1_000 + ((t / 1_000) % 3 === 0 ? 30 : -30);
      }
      if (t % 250 === 0) for (const x of d.sweep(t)) transitions.push({ t, to: x.to, reason: x.reason });
    }
    return transitions;
  }

  it.each([
    { name: 'a 3 s pause (GC, congested link) is never a death', pauses: [{ at: 20_000, ms: 3_000 }] },
    { name: 'nor are three 3 s pauses in a row of minutes', pauses: [{ at: 20_000, ms: 3_000 }, { at: 60_000, ms: 3_000 }, { at: 100_000, ms: 3_000 }] },
  ])('$name', ({ pauses }) => {
    const t = run(new FailureDetector(phiCfg), 150_000, pauses, 150_000);
    expect(t.filter((x) => x.to === 'dead')).toEqual([]);
    expect(t.some((x) => x.to === 'suspect')).toBe(true); // it was noticed, as suspect
  });

  it('a real death is declared within 10 s (about 4.6 s with 1 s heartbeats and the defaults)', () => {
    const t = run(new FailureDetector(phiCfg), 60_000);
    const dead = t.find((x) => x.to === 'dead');
    expect(dead).toBeDefined();
    // The last heartbeat came at most 1.03 s before 60 s (the run stops beating there).
    expect((dead?.t ?? Infinity) - 60_000).toBeLessThanOrEqual(10_000);
    expect((dead?.t ?? 0) - 60_000).toBeGreaterThan(3_000); // not before the acceptable pause
    expect(dead?.reason).toMatch(/^no heartbeat for \d+ ms \(φ \d+\.\d ≥ 8\)$/);
  });

  it('adapts: an agent that has always been jittery is given longer than a steady one', () => {
    const steady = new FailureDetector(phiCfg);
    const jittery = new FailureDetector(phiCfg);
    steady.watch('s', 'g', 0, 'running', true);
    jittery.watch('j', 'g', 0, 'running', true);
    let tj = 0;
    for (let n = 1; n <= 100; n++) {
      steady.heartbeat('s', n * 1_000);
      tj += n % 2 === 0 ? 400 : 1_600; // mean 1 s, std 0.6 s
      jittery.heartbeat('j', tj);
    }
    const silence = 5_000;
    expect(steady.phiOf('s', 100_000 + silence)).toBeGreaterThan(8);
    expect(jittery.phiOf('j', tj + silence)).toBeLessThan(8);
  });

  it.each([
    { name: 'at the mean', silent: 1_000, mean: 1_000, std: 100, lo: 0.29, hi: 0.31 },
    { name: 'two deviations above', silent: 1_200, mean: 1_000, std: 100, lo: 1.6, hi: 1.7 },
    { name: 'far above: finite, large', silent: 100_000, mean: 1_000, std: 100, lo: 1e6, hi: Infinity },
    { name: 'below the mean: near zero', silent: 0, mean: 1_000, std: 100, lo: 0, hi: 1e-6 },
  ])('phi(): $name', ({ silent, mean, std, lo, hi }) => {
    const v = phi(silent, mean, std);
    expect(Number.isFinite(v)).toBe(true);
    expect(v).toBeGreaterThanOrEqual(lo);
    expect(v).toBeLessThanOrEqual(hi);
  });
});

describe('FailureDetector.liveCount', () => {
  // liveCount is kept as states move (it is read at every ingest flush); it must always equal a
  // count of the watched instances that are not dead, whatever the order of events.
  const op = fc.oneof(
    fc.record({ k: fc.constant('watch' as const), id: fc.integer({ min: 0, max: 5 }), g: fc.constantFrom('a', 'b'), state: fc.constantFrom('running' as const, 'suspect' as const, 'dead' as const), connected: fc.boolean() }),
    fc.record({ k: fc.constant('heartbeat' as const), id: fc.integer({ min: 0, max: 5 }) }),
    fc.record({ k: fc.constant('disconnected' as const), id: fc.integer({ min: 0, max: 5 }) }),
    fc.record({ k: fc.constant('forget' as const), id: fc.integer({ min: 0, max: 5 }) }),
    fc.record({ k: fc.constant('sweep' as const), dt: fc.integer({ min: 0, max: 6_000 }) }),
  );
  it.each(['timeout', 'phi'] as const)('equals a count of the non-dead instances after any sequence of events (%s)', (detector) => {
    fc.assert(fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
      const d = new FailureDetector({ ...cfg, detector });
      const truth = new Map<string, { g: string; dead: boolean }>();
      let now = 0;
      const sync = (ts: { instanceId: string; to: string }[]) => { for (const t of ts) { const x = truth.get(t.instanceId); if (x !== undefined) x.dead = t.to === 'dead'; } };
      for (const o of ops) {
        const id = `i-${'id' in o ? o.id : 0}`;
        if (o.k === 'watch') { d.watch(id, o.g, now, o.state, o.connected); truth.set(id, { g: o.g, dead: o.state === 'dead' }); }
        else if (o.k === 'heartbeat') { now += 1; const t = d.heartbeat(id, now); if (t !== undefined) sync([t]); }
        else if (o.k === 'disconnected') { const t = d.disconnected(id); if (t !== undefined) sync([t]); }
        else if (o.k === 'forget') { d.forget(id); truth.delete(id); }
        else { now += o.dt; sync(d.sweep(now)); }
        for (const g of ['a', 'b']) expect(d.liveCount(g)).toBe([...truth.values()].filter((x) => x.g === g && !x.dead).length);
      }
    }), { numRuns: 300, seed: 10 });
  });
});
