import { describe, expect, it } from 'vitest';
import { BUILTIN_START, TRACE_NAMES, TraceError, builtinTrace, parseCsvTrace, traceFromMinutes, truncate } from './traces.js';

describe('parseCsvTrace', () => {
  it.each([
    { name: 'a word for a demand', text: 'time,demand\n0,100\n60,abc\n', lines: ['line 3: demand "abc"'] },
    { name: 'a time going backwards', text: '0,100\n60,200\n30,100\n', lines: ['line 3: time 30 is not after'] },
    { name: 'a missing field', text: '0,100\n60\n', lines: ['line 2: expected 2 fields'] },
    { name: 'a negative demand and a bad time', text: '# comment\n0,100\n\n-5,100\n90,-1\n', lines: ['line 4: time "-5"', 'line 5: demand "-1"'] },
    { name: 'a bad header', text: 'time,load\n0,100\n', lines: ['line 1: the header must be "time,demand"'] },
    { name: 'a demand above the maximum', text: '0,100\n10,20000\n', lines: ['line 2: demand "20000"'] },
  ])('$name: the error names the line', ({ text, lines }) => {
    let caught: unknown;
    try {
      parseCsvTrace(text, 'my.csv');
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(TraceError);
    const e = caught as TraceError;
    expect(e.problems).toHaveLength(lines.length);
    for (const [i, l] of lines.entries()) {
      expect(e.problems[i]).toContain(l);
      expect(e.message).toContain(l);
    }
    expect(e.message).toContain('my.csv');
  });

  it('lists at most ten bad lines, then counts the rest', () => {
    const text = Array.from({ length: 15 }, (_, i) => `${i},x`).join('\n');
    expect(() => parseCsvTrace(text, 'bad.csv')).toThrow(/line 10:[\s\S]*and 5 more bad line/);
  });

  it('holds each demand until the next row; the last lasts as long as the gap before it', () => {
    const t = parseCsvTrace('time,demand\r\n10,100\r\n13,250.5\r\n15,0\r\n', 'ok.csv');
    expect([...t.demand]).toEqual([100, 100, 100, 250.5, 250.5, 0, 0]);
    expect(t.startAt).toBe(BUILTIN_START);
  });

  it('refuses a file with no rows', () => {
    expect(() => parseCsvTrace('time,demand\n# nothing\n', 'empty.csv')).toThrow(/no data rows/);
  });
});

describe('traceFromMinutes', () => {
  it('each minute holds for 60 s, a missing minute holds the one before, second 0 is the first minute', () => {
    const t0 = 1_700_000_040_000;
    const t = traceFromMinutes([{ minute: t0, cpu: 120 }, { minute: t0 + 60_000, cpu: 240 }, { minute: t0 + 180_000, cpu: 60 }], 'web');
    expect(t.demand.length).toBe(240);
    expect([t.demand[0], t.demand[59], t.demand[60], t.demand[179], t.demand[180], t.demand[239]]).toEqual([120, 120, 240, 240, 60, 60]);
    expect(t.startAt).toBe(t0);
    expect(t.name).toBe('db:web');
  });
  it('refuses an empty history', () => {
    expect(() => traceFromMinutes([], 'web')).toThrow(/no recorded history/);
  });
});

describe('built-in traces', () => {
  it.each(TRACE_NAMES.map((name) => ({ name })))('$name: non-negative demand, deterministic in the seed', ({ name }) => {
    const a = builtinTrace(name, 9);
    expect(a.demand.length).toBeGreaterThanOrEqual(7_200);
    expect(a.demand.every((d) => d >= 0 && d <= 10_000 && Number.isFinite(d))).toBe(true);
    expect(Buffer.from(builtinTrace(name, 9).demand.buffer).equals(Buffer.from(a.demand.buffer))).toBe(true);
    expect(Buffer.from(builtinTrace(name, 10).demand.buffer).equals(Buffer.from(a.demand.buffer))).toBe(false);
    for (const s of a.stepsUp) expect(a.demand[s + 60] as number).toBeGreaterThan((a.demand[s - 60] as number) * 2);
  });

  it('the week has a quieter weekend', () => {
    const w = builtinTrace('week', 1);
    const peak = (day: number) => Math.max(...w.demand.subarray(day * 86_400, (day + 1) * 86_400));
    expect(peak(5)).toBeLessThan(peak(0) * 0.6);
    expect(peak(6)).toBeLessThan(peak(4) * 0.6);
  });

  it('an unknown name lists the built-ins', () => {
    expect(() => builtinTrace('nope', 1)).toThrow(/diurnal, week, flash-crowd/);
  });

  it('truncate keeps the first seconds and the steps within them', () => {
    const t = truncate(builtinTrace('batch', 1), 4_000);
    expect(t.demand.length).toBe(4_000);
    expect(t.stepsUp).toEqual([900]);
  });
});
