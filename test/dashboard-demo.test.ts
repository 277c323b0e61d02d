/**
 * The dashboard's acceptance: `autoscaler demo` as a child process (monitor server, controller
 * and real local agents), the page opened in headless Chromium with the token from the URL the
 * demo prints. The history is drawn on open and equals GET /api/v1/groups/demo/metrics for the
 * same window and step; the CPU target changed through the form is what `autoscaler policy show`
 * reads from the store; SIGINT stops the demo and every agent it started. Saves a screenshot to
 * test-artifacts/dashboard-demo.png; with UPDATE_SCREENSHOT=1 it lets the demo run longer and
 * writes docs/dashboard.png (1280×800) for the README. Needs `npm run build` (it runs dist/).
 */
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GroupHistory } from '../store/history.js';
import { CHROMIUM_ARGS, findChromium, isAlive, killAll, runCli, startCli, tempDir, type CliProcess, waitFor } from './helpers.js';

const executablePath = findChromium('dashboard demo test');

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const UPDATE = process.env.UPDATE_SCREENSHOT === '1';
const WINDOW = '5m';
const STEP = '2s';
const STEP_MS = 2_000;
/** A bucket this long past its end has every sample (agents report each second). */
const SETTLE_MS = 4_000;
/** Buckets with samples before the page opens (UPDATE_SCREENSHOT: enough for a readable picture). */
const BUCKETS = UPDATE ? 50 : 8;
const METRICS = `/api/v1/groups/demo/metrics?window=${WINDOW}&step=${STEP}`;

let demo: CliProcess;
let dataDir: string;
let browser: Browser;

interface ChartView { labels: string[]; data: (number | null)[][]; historyPoints: number }

async function chart(page: Page, name: 'cpu' | 'capacity'): Promise<ChartView> {
  return page.evaluate((n) => {
    interface El { readonly parentElement: El | null; getAttribute(name: string): string | null }
    const w = globalThis as unknown as { __dashboard: { charts: Record<string, { series: { label: string }[]; data: (number | null)[][]; root: El }> } };
    const u = w.__dashboard.charts[n];
    if (u === undefined) throw new Error(`no chart ${n}`);
    return { labels: u.series.map((s) => String(s.label)), data: u.data.map((a) => Array.from(a)), historyPoints: Number(u.root.parentElement?.getAttribute('data-history-points')) };
  }, name);
}

function column(c: ChartView, label: string): (number | null)[] {
  const i = c.labels.indexOf(label);
  if (i < 0) throw new Error(`no series "${label}" in ${c.labels.join(', ')}`);
  return c.data[i] as (number | null)[];
}

/** SIGINT, as Ctrl-C; SIGKILL if it has not exited within `graceMs`. */
async function interrupt(p: CliProcess, graceMs = 20_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGINT');
  const t = setTimeout(() => p.child.kill('SIGKILL'), graceMs);
  const r = await p.exited;
  clearTimeout(t);
  return r;
}

describe.skipIf(executablePath === undefined)('dashboard on the demo (headless Chromium)', () => {
  beforeAll(async () => {
    dataDir = tempDir('autoscaler-dashboard-demo-');
    demo = startCli(['demo', '--http-port', '0', '--duration', UPDATE ? '300s' : '120s', '--data-dir', dataDir, '--refresh', '30s']);
    browser = await chromium.launch({
      executablePath,
      args: [...CHROMIUM_ARGS],
    });
  }, 30_000);

  afterAll(async () => {
    await browser?.close();
    if (demo !== undefined) await interrupt(demo, 5_000);
    killAll();
  });

  it('draws the demo\'s history on open as /metrics has it, changes the CPU target through the form, and stops cleanly', async () => {
    const line = await waitFor('the dashboard URL on stdout', () => /dashboard: (http:\/\/127\.0\.0\.1:\d+)\/#token=([0-9a-f]+)/.exec(demo.output()) ?? undefined, 20_000, 50);
    const [, api, token] = line as unknown as [string, string, string];
    const get = async (path: string) => {
      const r = await fetch(`${api}${path}`);
      expect(r.status).toBe(200);
      return (await r.json()) as GroupHistory;
    };
    await waitFor(`${BUCKETS} buckets of ${STEP} with samples`, async () => (await get(METRICS)).avgCpu.filter((v) => v !== null).length >= BUCKETS, UPDATE ? 150_000 : 40_000, 250);

    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    const errors: string[] = [];
    const requests: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
    page.on('request', (r) => requests.push(r.url()));
    const answered = page.waitForResponse((r) => r.url().includes('/groups/demo/metrics?'));
    await page.goto(`${api}/?window=${WINDOW}&step=${STEP}#token=${token}`);
    const drawn = (await (await answered).json()) as GroupHistory;
    await page.locator('body[data-ready="true"]').waitFor({ timeout: 10_000 });
    expect(new URL(page.url()).hash).toBe('');
    expect(drawn.stepMs).toBe(STEP_MS);

    // On open: the history, every bucket of it, in both charts (live points follow it).
    const n = drawn.ts.length;
    const cpu = await chart(page, 'cpu');
    const cap = await chart(page, 'capacity');
    expect(cpu.historyPoints).toBe(n);
    expect(cpu.data[0]?.slice(0, n)).toEqual(drawn.ts);
    expect(column(cpu, 'avg CPU').slice(0, n)).toEqual(drawn.avgCpu);
    expect(column(cpu, 'target').slice(0, n)).toEqual(drawn.ts.map(() => 50));
    for (const i of drawn.instances) expect(column(cpu, i.id).slice(0, n)).toEqual(i.cpu);
    expect(cap.data[0]?.slice(0, n)).toEqual(drawn.ts);
    expect(column(cap, 'desired').slice(0, n)).toEqual(drawn.desired);
    expect(column(cap, 'reporting').slice(0, n)).toEqual(drawn.reporting);
    expect(column(cap, 'demand ÷ 100').slice(0, n)).toEqual(drawn.demand.map((d) => (d === null ? null : d / 100)));

    // And /metrics asked again for the same window and step agrees, bucket for bucket, wherever
    // both windows reach and every sample of the bucket had arrived when the page asked.
    const again = await get(METRICS);
    const settled = again.ts.map((t, j) => ({ t, j, k: drawn.ts.indexOf(t) })).filter(({ t, k }) => k >= 0 && t + STEP_MS + SETTLE_MS <= drawn.to);
    expect(settled.filter(({ j }) => again.avgCpu[j] !== null).length).toBeGreaterThanOrEqual(BUCKETS - 3);
    for (const { j, k } of settled) {
      expect([again.avgCpu[j], again.reporting[j], again.desired[j], again.demand[j]]).toEqual([drawn.avgCpu[k], drawn.reporting[k], drawn.desired[k], drawn.demand[k]]);
      for (const i of drawn.instances) expect(again.instances.find((x) => x.id === i.id)?.cpu[j] ?? null).toBe(i.cpu[k]);
    }
    expect(drawn.instances.length).toBeGreaterThanOrEqual(1);
    expect(await page.locator('#instances tr[data-instance]').count()).toBeGreaterThanOrEqual(1);

    // The CPU target through the form, with the fragment's token; the store has it.
    const before = Number(await page.locator('#revision').innerText());
    await page.locator('#policy-form input[name="cpuTarget"]').fill('65');
    await page.locator('#policy-form button[type="submit"]').click();
    await page.locator('#policy-result.ok', { hasText: `revision ${before + 1}` }).waitFor({ timeout: 10_000 });
    const show = await runCli(['policy', 'show', 'demo', '--db', join(dataDir, 'autoscaler.db')]);
    expect(show.code).toBe(0);
    expect(show.output).toContain(`group demo · revision ${before + 1}`);
    expect(show.output).toContain('target tracking: cpu 65%');
    await page.locator('[data-kpi="target"] .v', { hasText: '65%' }).waitFor({ timeout: 5_000 });
    // Live samples keep coming after the change.
    await page.locator('#conn[data-state="live"]').waitFor({ timeout: 10_000 });
    await waitFor('a live point after the history', async () => ((await chart(page, 'cpu')).data[0]?.length ?? 0) > n, 10_000, 100);

    mkdirSync(join(ROOT, 'test-artifacts'), { recursive: true });
    const shot = join(ROOT, 'test-artifacts', 'dashboard-demo.png');
    await page.screenshot({ path: shot, fullPage: true });
    expect(statSync(shot).size).toBeGreaterThan(20_000);
    if (UPDATE) await page.screenshot({ path: join(ROOT, 'docs', 'dashboard.png') });
    expect(errors).toEqual([]);
    expect(requests.filter((u) => new URL(u).hostname !== '127.0.0.1')).toEqual([]);
    await context.close();

    // Ctrl-C: the demo stops its controller, every agent, then the monitor server.
    const exit = await interrupt(demo);
    expect(exit).toEqual({ code: 0, signal: null });
    expect(demo.output()).toMatch(/all \d+ agent process\(es\) stopped/);
    const pids = readFileSync(join(dataDir, 'demo.log'), 'utf8').split('\n').filter((l) => l.includes('"instance launched"'))
      .map((l) => (JSON.parse(l) as { pid: number }).pid);
    expect(pids.length).toBeGreaterThanOrEqual(1);
    expect(pids.filter(isAlive)).toEqual([]);
  }, UPDATE ? 240_000 : 60_000);
});
