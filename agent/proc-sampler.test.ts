import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '../lib/testing.js';
import { cpuPercent, memPercent, parseMeminfo, parseProcStat, ProcSampleError, ProcSampler, type CpuTimes } from './proc-sampler.js';

/** /proc/stat of a 2-CPU Linux 6.x machine (the head of it; the rest is never parsed). */
const STAT = `cpu  591036 123 166652 1042645 3343 0 7902 17 5 0
cpu0 274385 67 79590 547219 621 0 3867 9 5 0
cpu1 316651 56 87062 495426 2721 0 4034 8 0 0
intr 95481833 0 9 0 0 0 0 0 0 0 0 0 0 156 0 0 0
ctxt 171716331
btime 1764640000
`;

/** /proc/meminfo of a Linux 6.x machine (abridged: the keys around the ones used). */
const MEMINFO = `MemTotal:       24683548 kB
MemFree:        23162872 kB
MemAvailable:   23677712 kB
Buffers:            9828 kB
Cached:           610996 kB
SwapCached:            0 kB
Active:           563524 kB
SReclaimable:     202352 kB
HugePages_Total:       0
Hugepagesize:       2048 kB
`;

/** A Linux 3.10 /proc/meminfo has no MemAvailable. */
const MEMINFO_OLD = `MemTotal:        1000000 kB
MemFree:          100000 kB
Buffers:           50000 kB
Cached:           200000 kB
SwapCached:        99999 kB
SReclaimable:      25000 kB
`;

const times = (o: Partial<CpuTimes> = {}): CpuTimes => ({ user: 0, nice: 0, system: 0, idle: 0, iowait: 0, irq: 0, softirq: 0, steal: 0, ...o });

describe('parseProcStat', () => {
  it.each([
    { name: 'a Linux 6.x line: guest and guest_nice are left out (already in user and nice)', text: STAT,
      want: { user: 591036, nice: 123, system: 166652, idle: 1042645, iowait: 3343, irq: 0, softirq: 7902, steal: 17 } },
    { name: 'a 2.4-era line with 4 fields: the others count as 0', text: 'cpu  10 20 30 40\n',
      want: times({ user: 10, nice: 20, system: 30, idle: 40 }) },
    { name: 'no trailing newline', text: 'cpu 1 2 3 4 5 6 7 8', want: { user: 1, nice: 2, system: 3, idle: 4, iowait: 5, irq: 6, softirq: 7, steal: 8 } },
    { name: 'tabs between fields', text: 'cpu\t1\t2\t3\t4\n', want: times({ user: 1, nice: 2, system: 3, idle: 4 }) },
  ])('$name', ({ text, want }) => {
    expect(parseProcStat(text)).toEqual(want);
  });

  it.each([
    { name: 'empty file', text: '', message: /first line is not the aggregate "cpu" line \(got ""\)/ },
    { name: 'a per-CPU line first', text: 'cpu0 1 2 3 4\n', message: /first line is not the aggregate "cpu" line/ },
    { name: 'another file', text: 'MemTotal: 1 kB\n', message: /first line is not the aggregate "cpu" line \(got "MemTotal: 1 kB"\)/ },
    { name: 'a word among the numbers', text: 'cpu  1 2 three 4\n', message: /field 3 of the "cpu" line is not an unsigned whole number/ },
    { name: 'a negative number', text: 'cpu  1 -2 3 4\n', message: /field 2 of the "cpu" line is not an unsigned whole number/ },
    { name: 'a fraction', text: 'cpu  1 2 3.5 4\n', message: /field 3 of the "cpu" line is not an unsigned whole number/ },
    { name: 'too few fields', text: 'cpu  1 2 3\n', message: /has 3 fields, at least 4 expected/ },
    { name: 'a number beyond 2^53', text: 'cpu  1 2 3 99999999999999999999\n', message: /field 4 of the "cpu" line is too large/ },
  ])('$name: a ProcSampleError naming the file', ({ text, message }) => {
    let caught: unknown;
    try { parseProcStat(text, '/fixture/stat'); } catch (err) { caught = err; }
    expect(caught).toBeInstanceOf(ProcSampleError);
    expect((caught as ProcSampleError).path).toBe('/fixture/stat');
    expect((caught as Error).message).toMatch(/^\/fixture\/stat: /);
    expect((caught as Error).message).toMatch(message);
  });
});

describe('cpuPercent', () => {
  it.each([
    { name: 'a quarter busy', prev: times({ user: 100, idle: 100 }), next: times({ user: 125, idle: 175 }), want: 25 },
    { name: 'iowait counts as idle', prev: times(), next: times({ system: 10, idle: 60, iowait: 30 }), want: 10 },
    { name: 'irq, softirq and steal count as busy', prev: times(), next: times({ irq: 5, softirq: 5, steal: 10, idle: 80 }), want: 20 },
    { name: 'fully busy', prev: times({ user: 5 }), next: times({ user: 105, nice: 100 }), want: 100 },
    { name: 'iowait decreasing while idle grows (proc(5)): the sum is diffed', prev: times({ user: 0, idle: 100, iowait: 50 }), next: times({ user: 50, idle: 190, iowait: 10 }), want: 50 },
    { name: 'one counter going backwards (a wrap, an offlined CPU) counts as 0, never negative', prev: times({ user: 1_000, system: 500, idle: 100 }), next: times({ user: 10, system: 550, idle: 150 }), want: 50 },
  ])('$name', ({ prev, next, want }) => {
    expect(cpuPercent(prev, next)).toBeCloseTo(want, 10);
  });

  it.each([
    { name: 'no tick passed', prev: times({ user: 7, idle: 9 }), next: times({ user: 7, idle: 9 }) },
    { name: 'every counter went backwards', prev: times({ user: 7, idle: 9 }), next: times({ user: 1, idle: 2 }) },
  ])('$name: undefined (no interval to average over)', ({ prev, next }) => {
    expect(cpuPercent(prev, next)).toBeUndefined();
  });
});

describe('parseMeminfo', () => {
  it.each([
    { name: 'MemAvailable when the kernel has it', text: MEMINFO, want: { totalKiB: 24683548, availableKiB: 23677712, availableFrom: 'MemAvailable' } },
    { name: 'without MemAvailable: MemFree + Buffers + Cached + SReclaimable (SwapCached is not Cached)', text: MEMINFO_OLD,
      want: { totalKiB: 1_000_000, availableKiB: 375_000, availableFrom: 'estimate' } },
    { name: 'without MemAvailable, only MemFree: the rest count as 0', text: 'MemTotal: 1000 kB\nMemFree: 400 kB\n', want: { totalKiB: 1000, availableKiB: 400, availableFrom: 'estimate' } },
    { name: 'MemAvailable above MemTotal is held at MemTotal', text: 'MemTotal: 1000 kB\nMemAvailable: 2000 kB\n', want: { totalKiB: 1000, availableKiB: 1000, availableFrom: 'MemAvailable' } },
    { name: 'MemTotal not first', text: 'Zswap: 0 kB\nMemTotal: 1000 kB\nMemAvailable: 250 kB', want: { totalKiB: 1000, availableKiB: 250, availableFrom: 'MemAvailable' } },
  ])('$name', ({ text, want }) => {
    expect(parseMeminfo(text)).toEqual(want);
  });

  it.each([
    { name: 'empty file', text: '', message: /no MemTotal/ },
    { name: 'MemTotal 0', text: 'MemTotal: 0 kB\nMemAvailable: 0 kB\n', message: /no MemTotal \(or MemTotal is 0/ },
    { name: 'another file', text: STAT, message: /no MemTotal/ },
    { name: 'neither MemAvailable nor MemFree', text: 'MemTotal: 1000 kB\nBuffers: 5 kB\n', message: /neither MemAvailable nor MemFree/ },
    { name: 'a word for a number', text: 'MemTotal: 1000 kB\nMemAvailable: lots kB\n', message: /MemAvailable is not "<number> kB" \(line "MemAvailable: lots kB"\)/ },
    { name: 'no unit', text: 'MemTotal: 1000\nMemAvailable: 10 kB\n', message: /MemTotal is not "<number> kB"/ },
    { name: 'a malformed fallback field is not skipped', text: 'MemTotal: 1000 kB\nMemFree: 10 kB\nCached: -5 kB\n', message: /Cached is not "<number> kB"/ },
  ])('$name: a ProcSampleError naming the file', ({ text, message }) => {
    expect(() => parseMeminfo(text, '/fixture/meminfo')).toThrow(ProcSampleError);
    expect(() => parseMeminfo(text, '/fixture/meminfo')).toThrow(message);
  });

  it('memPercent: the share not available', () => {
    expect(memPercent({ totalKiB: 2000, availableKiB: 500, availableFrom: 'MemAvailable' })).toBe(75);
  });
});

describe('ProcSampler', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  function fixture(): { statPath: string; meminfoPath: string } {
    const dir = mkdtempSync(join(tmpdir(), 'autoscaler-proc-'));
    dirs.push(dir);
    return { statPath: join(dir, 'stat'), meminfoPath: join(dir, 'meminfo') };
  }

  it('primes on the first reading (no sample), then reports the interval between readings', async () => {
    const f = fixture();
    writeFileSync(f.statPath, 'cpu  100 0 0 100 0 0 0 0 0 0\ncpu0 1 2 3 4\n');
    writeFileSync(f.meminfoPath, 'MemTotal: 1000 kB\nMemAvailable: 600 kB\n');
    const s = new ProcSampler(f);
    try {
      expect(await s.sample()).toBeUndefined();
      // The file is kept open and read again from offset 0: rewrite it in place.
      writeFileSync(f.statPath, 'cpu  130 0 10 160 0 0 0 0 0 0\ncpu0 1 2 3 4\n');
      expect(await s.sample()).toEqual({ cpu: 40, mem: 40 });
    } finally {
      s.close();
    }
  });

  it('a missing or malformed file rejects with a ProcSampleError; the next good reading recovers', async () => {
    const f = fixture();
    writeFileSync(f.statPath, 'cpu  100 0 0 100\n');
    const s = new ProcSampler(f);
    try {
      await expect(s.sample()).rejects.toThrow(`${f.meminfoPath}: cannot read (ENOENT)`);
      writeFileSync(f.meminfoPath, 'MemTotal: 1000 kB\nMemAvailable: 600 kB\n');
      expect(await s.sample()).toBeUndefined();
      writeFileSync(f.statPath, 'garbage\n');
      await expect(s.sample()).rejects.toThrow(new RegExp(`^${f.statPath}: the first line is not the aggregate "cpu" line`));
      writeFileSync(f.statPath, 'cpu  150 0 0 150\n');
      writeFileSync(f.meminfoPath, 'MemTotal: 1000 kB\nMemAvailable: 900 kB\n');
      // Measured from the last reading that parsed (100/100).
      expect(await s.sample()).toEqual({ cpu: 50, mem: 10 });
    } finally {
      s.close();
    }
  });

  it('no CPU time between two readings is an error, not a 0 % sample', async () => {
    const f = fixture();
    writeFileSync(f.statPath, 'cpu  100 0 0 100\n');
    writeFileSync(f.meminfoPath, MEMINFO);
    const s = new ProcSampler(f);
    try {
      await s.sample();
      await expect(s.sample()).rejects.toThrow(/no CPU time passed since the previous reading/);
    } finally {
      s.close();
    }
  });

  it.runIf(process.platform === 'linux')('reads this machine\'s /proc: percentages within 0..100', async () => {
    const s = new ProcSampler();
    try {
      expect(await s.sample()).toBeUndefined();
      // A second reading needs at least one CPU tick (10 ms) since the first.
      const got = await waitFor('a reading with CPU time since the first', () => s.sample().catch(() => undefined), 5_000, 20);
      expect(got.cpu).toBeGreaterThanOrEqual(0);
      expect(got.cpu).toBeLessThanOrEqual(100);
      expect(got.mem).toBeGreaterThan(0);
      expect(got.mem).toBeLessThan(100);
    } finally {
      s.close();
    }
  });
});
