import { describe, expect, it } from 'vitest';
import { escapeXml, renderChart, renderReport } from './chart.js';
import { compareRuns, formatMarkdown, formatTable, measure, TABLE_HEADER, tableCells } from './metrics.js';
import type { RunResult } from './runner.js';
import type { Trace } from './traces.js';

const trace = (demand: number[], stepsUp: number[] = []): Trace => ({ name: 'hand', description: 'by hand', startAt: 0, demand: Float64Array.from(demand), stepsUp });
const run = (policy: string, ready: number[], capacity: number[], actions: RunResult['actions'] = []): RunResult => ({
  policy, trace: 'hand', bootS: 2, seed: 1, ready: Uint16Array.from(ready), capacity: Uint16Array.from(capacity), actions, failures: 0,
});

describe('measure', () => {
  it('cost, under-provisioning and unserved demand, second by second', () => {
    const t = trace([100, 300, 300, 0]);
    const m = measure(t, run('p', [2, 2, 4, 4], [2, 4, 4, 4]));
    expect(m.costInstanceHours).toBeCloseTo(14 / 3_600, 12);
    // 300 % on 2 ready = 150 % each: under-provisioned, and 100 % of it unserved.
    expect(m.underProvisionedPct).toBe(25);
    expect(m.unservedPct).toBeCloseTo((100 * 100) / 700, 9);
    expect(m.aboveTargetPct).toBe(50); // 150 % and 75 % per ready instance
    expect(m.peakCapacity).toBe(4);
  });

  it('no ready instance under demand is under-provisioned; no demand is not', () => {
    const m = measure(trace([0, 50]), run('p', [0, 0], [1, 1]));
    expect(m.underProvisionedPct).toBe(50);
    expect(m.unservedPct).toBe(100);
  });

  it('reversals: the other way within 10 minutes', () => {
    const actions = [{ t: 0, from: 2, to: 4 }, { t: 100, from: 4, to: 3 }, { t: 900, from: 3, to: 5 }, { t: 950, from: 5, to: 6 }];
    const m = measure(trace(Array.from({ length: 1_000 }, () => 100)), run('p', Array(1_000).fill(2), Array(1_000).fill(2), actions));
    expect(m.reversals).toBe(1);
    expect(m.actions).toBe(4);
  });

  it('reaction and recovery from a step', () => {
    const demand = [...Array(10).fill(100), ...Array(20).fill(400)];
    const ready = [...Array(16).fill(2), ...Array(14).fill(8)];
    const m = measure(trace(demand, [10]), run('p', ready, Array(30).fill(8), [{ t: 13, from: 2, to: 8 }]));
    expect(m.reactionS).toBe(3);
    expect(m.recoveryS).toBe(6);
  });

  it('costRatio is against the oracle when it ran', () => {
    const t = trace([100, 100]);
    const rows = compareRuns(t, [run('a', [3, 3], [3, 3]), run('oracle', [2, 2], [2, 2])]);
    expect(rows.map((r) => r.metrics.costRatio)).toEqual([1.5, 1]);
    expect(compareRuns(t, [run('a', [3, 3], [3, 3])])[0]?.metrics.costRatio).toBeNull();
  });
});

describe('tables and charts', () => {
  const t = trace([100, 200, 300, 200]);
  const rows = compareRuns(t, [run('default', [2, 4, 6, 4], [2, 4, 6, 4]), run('oracle', [2, 4, 6, 4], [2, 4, 6, 4])]);
  it('formats a row with fixed decimals', () => {
    expect(tableCells(rows[0] as (typeof rows)[number])).toEqual(['default', '0.00', '1.00', '0.00 %', '0.00 %', '0', '0', '—', '—']);
    const text = formatTable(TABLE_HEADER, rows.map(tableCells));
    expect(text.split('\n')[0]).toMatch(/^policy\s+cost \(inst-h\)/);
    expect(formatMarkdown(['a', 'b'], [['x', '1']])).toBe('| a | b |\n|---|---:|\n| x | 1 |');
  });
  it('the chart has the demand area, one line per run and a legend; the report embeds it', () => {
    const svg = renderChart(t, [run('default', [2, 4, 6, 4], [2, 4, 6, 4]), run('<o&>', [1, 1, 1, 1], [1, 1, 1, 1])]);
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.match(/<polyline /g)).toHaveLength(2);
    expect(svg).toContain('<polygon ');
    expect(svg).toContain('&lt;o&amp;&gt;');
    const html = renderReport({ trace: t, bootS: 120, seed: 1, tickS: 5, policyName: 'default' }, rows, svg);
    expect(html).toContain('<table>');
    expect(html).toContain(svg);
    expect(escapeXml('"a"')).toBe('&quot;a&quot;');
  });
});
