/**
 * The dashboard in headless Chromium (Debian's package: `apt-get install chromium`) against a real
 * monitor server on 127.0.0.1:0 with a temp-file SQLite store and a tokens file. The store is
 * seeded through the store classes with 20 minutes of history (samples every 10 s, decisions) on
 * a manual clock, so the page's /metrics answer and the test's are the same document. Under CI a
 * missing browser fails the file; on a laptop without one it is skipped with a message.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadMonitorServerConfig } from '../config/monitor-server.js';
import { ManualClock, captureLogger, testGroup, waitFor } from '../lib/testing.js';
import { MonitorServer, type MonitorServerHandle } from '../monitor-server/server.js';
import { openStore, type Db } from '../store/db.js';
import { EventStore } from '../store/events.js';
import { GroupStore } from '../store/groups.js';
import type { GroupHistory } from '../store/history.js';
import { InstanceStore } from '../store/instances.js';
import { SimLoadStore } from '../store/simload.js';
import { TelemetryStore } from '../store/telemetry.js';
import { TimelineReader, formatCursor } from '../store/timeline.js';
import { CHROMIUM_ARGS, findChromium, tempDir } from './helpers.js';

const executablePath = findChromium('dashboard tests');

const WRITE = 'dashboard-write-0123456789abcdef';
const READ = 'dashboard-read-0123456789abcdef';
/** Not on a 10 s boundary: the first bucket of the window is partial. */
const T0 = 1_700_000_003_000;
const MIN = 60_000;
const XSS = '<img src=x onerror="window.__xss=1">';

let dir: string;
let db: Db;
let clock: ManualClock;
let server: MonitorServerHandle;
let browser: Browser;
let base: string;
let seq = 1_000;

/** 20 minutes of samples every 10 s for web-a and web-b, three decisions, a constant demand. */
function seed(dbPath: string): void {
  db = openStore(dbPath);
  const groups = new GroupStore(db);
  groups.upsert(testGroup(), T0 - 30 * MIN);
  groups.upsert(testGroup({ id: 'batch', minSize: 0, maxSize: 3 }), T0 - 30 * MIN);
  const instances = new InstanceStore(db);
  for (const [id, zone] of [['web-a', 'zone-a'], ['web-b', 'zone-b']] as const) {
    instances.insertLaunched('web', [{ id, providerState: 'running', zone }], 'launched', 'scale out', T0 - 21 * MIN);
    instances.register({ id, groupId: 'web', address: '127.0.0.1', agentVersion: 'test' }, T0 - 21 * MIN);
  }
  // Terminating: the monitor server's failure detector leaves the reason alone.
  instances.setState('web-b', 'terminating', XSS, T0 - 20 * MIN);
  const samples = [];
  for (let k = 0; k <= 120; k++) {
    const t = T0 - 20 * MIN + k * 10_000;
    samples.push({ instanceId: 'web-a', seq: k + 1, sampleAt: t, receivedAt: t, cpu: Math.round(4000 + 2000 * Math.sin(k / 9)) / 100, mem: 40 });
    samples.push({ instanceId: 'web-b', seq: k + 1, sampleAt: t, receivedAt: t, cpu: Math.round(3000 + 1500 * Math.cos(k / 7)) / 100, mem: 30 });
  }
  new TelemetryStore(db).writeBatch(samples);
  const events = new EventStore(db);
  events.recordDecision('web', { current: 1, desired: 2, reason: 'ScaleOut', message: 'avg CPU 80% vs target 50% <b>bold</b>', trail: ['ScaleOut'], details: {} }, T0 - 18 * MIN);
  events.recordDecision('web', { current: 2, desired: 3, reason: 'ScaleOut', message: 'avg CPU 75% vs target 50%', trail: ['ScaleOut'], details: {} }, T0 - 8 * MIN);
  events.recordDecision('web', { current: 3, desired: 2, reason: 'ScaleIn', message: 'avg CPU 30% vs target 50%', trail: ['ScaleIn'], details: {} }, T0 - 3 * MIN);
  new SimLoadStore(db).set('web', { kind: 'constant', value: 100 }, T0 - 25 * MIN);
}

interface Opened {
  readonly page: Page;
  /** Console errors and uncaught exceptions. */
  readonly errors: string[];
  /** Every URL the page asked for. */
  readonly requests: string[];
  close(): Promise<void>;
}

/** A fresh context (no sessionStorage), the page at `path`, drawn. */
async function open(path: string): Promise<Opened> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const errors: string[] = [];
  const requests: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('request', (r) => requests.push(r.url()));
  await page.goto(`${base}${path}`);
  // Selectors and page.evaluate, not waitForFunction: its polling compiles strings, which the page's CSP forbids.
  await page.locator('body[data-ready="true"]').waitFor({ timeout: 10_000 });
  return { page, errors, requests, close: () => context.close() };
}

async function api<T>(path: string): Promise<T> {
  const r = await fetch(`${base}${path}`);
  expect(r.status).toBe(200);
  return (await r.json()) as T;
}

interface ChartView { labels: string[]; data: (number | null)[][]; points: number; historyPoints: number; markers: number }

/** What a uPlot instance of the page holds, by series label. */
async function chart(page: Page, name: 'cpu' | 'capacity' | 'whatif'): Promise<ChartView> {
  return page.evaluate((n) => {
    interface El { readonly parentElement: El | null; getAttribute(name: string): string | null }
    const w = globalThis as unknown as { __dashboard: { charts: Record<string, { series: { label: string }[]; data: (number | null)[][]; root: El }> } };
    const u = w.__dashboard.charts[n];
    if (u === undefined) throw new Error(`no chart ${n}`);
    const el = u.root.parentElement as El;
    return {
      labels: u.series.map((s) => String(s.label)), data: u.data.map((a) => Array.from(a)),
      points: Number(el.getAttribute('data-points')), historyPoints: Number(el.getAttribute('data-history-points')), markers: Number(el.getAttribute('data-markers')),
    };
  }, name);
}

function column(c: ChartView, label: string): (number | null)[] {
  const i = c.labels.indexOf(label);
  if (i < 0) throw new Error(`no series "${label}" in ${c.labels.join(', ')}`);
  return c.data[i] as (number | null)[];
}

function onLoopback(requests: readonly string[]): string[] {
  return requests.filter((u) => new URL(u).hostname !== '127.0.0.1');
}

describe.skipIf(executablePath === undefined)('dashboard (headless Chromium)', () => {
  beforeAll(async () => {
    dir = tempDir();
    const dbPath = join(dir, 'a.db');
    seed(dbPath);
    clock = new ManualClock(T0);
    const tokens = join(dir, 'tokens');
    writeFileSync(tokens, `alice write ${WRITE}\nviewer read ${READ}\n`);
    const cfg = loadMonitorServerConfig({
      env: {
        AUTOSCALER_DB: dbPath, MONITOR_GRPC_PORT: '0', MONITOR_HTTP_PORT: '0', MONITOR_STARTUP_GRACE_MS: '600000',
        MONITOR_API_TOKENS_FILE: tokens, MONITOR_API_STREAM_MS: '200', MONITOR_STATUS_CACHE_MS: '0',
      },
    });
    server = await new MonitorServer(cfg, db, clock, captureLogger('warn').log).start();
    base = `http://127.0.0.1:${server.httpPort}`;
    browser = await chromium.launch({
      executablePath,
      args: [...CHROMIUM_ARGS],
    });
  }, 30_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    db?.close();
  });

  it('draws the history on open: every /metrics bucket, the instance table and the decisions, as text', async () => {
    const o = await open('/?group=web');
    const { page } = o;
    const want = await api<GroupHistory>('/api/v1/groups/web/metrics?window=1h&step=10s');
    // The page drew what /metrics answers (the clock stands still, so it is the same document).
    expect(await page.evaluate('window.__dashboard.history')).toEqual(want);
    expect(want.ts.length).toBe(361);
    const cpu = await chart(page, 'cpu');
    const n = want.ts.length;
    expect(cpu.historyPoints).toBe(n);
    expect(cpu.points).toBeGreaterThanOrEqual(n);
    expect(cpu.data[0]?.slice(0, n)).toEqual(want.ts);
    expect(column(cpu, 'avg CPU').slice(0, n)).toEqual(want.avgCpu);
    expect(column(cpu, 'target').slice(0, n)).toEqual(want.ts.map(() => 50));
    for (const i of want.instances) expect(column(cpu, i.id).slice(0, n)).toEqual(i.cpu);
    expect(want.instances.map((i) => i.id)).toEqual(['web-a', 'web-b']);
    const cap = await chart(page, 'capacity');
    expect(cap.historyPoints).toBe(n);
    expect(column(cap, 'desired').slice(0, n)).toEqual(want.desired);
    expect(column(cap, 'reporting').slice(0, n)).toEqual(want.reporting);
    expect(column(cap, 'demand ÷ 100').slice(0, n)).toEqual(want.demand.map((d) => (d === null ? null : d / 100)));
    expect(cap.markers).toBe(3);

    // The instance table: one row each, the zone, the latest CPU; a reason with markup stays text.
    await page.locator('#instances tr[data-instance]').nth(1).waitFor();
    expect(await page.locator('#instances tr[data-instance]').count()).toBe(2);
    const a = page.locator('#instances tr[data-instance="web-a"] td');
    expect(await a.nth(2).innerText()).toBe('zone-a');
    expect(await a.nth(3).innerText()).toContain(`${(new InstanceStore(db).get('web-a')?.cpu as number).toFixed(1)}%`);
    expect(await page.locator('#instances tr[data-instance="web-b"] td.reason').innerText()).toBe(XSS);
    expect(await page.locator('#instances tr[data-instance="web-b"]').getAttribute('data-state')).toBe('terminating');
    expect(await page.locator('#instances img').count()).toBe(0);

    // Decisions newest first, reasons shown, messages as text.
    const items = page.locator('#decisions li[data-decision-id]');
    expect(await items.count()).toBe(3);
    expect(await items.evaluateAll((ls) => ls.map((l) => l.getAttribute('data-reason')))).toEqual(['ScaleIn', 'ScaleOut', 'ScaleOut']);
    expect(await items.nth(2).innerText()).toContain('<b>bold</b>');
    expect(await page.locator('#decisions b').count()).toBe(0);

    expect(await page.locator('[data-kpi="target"] .v').innerText()).toBe('50%');
    expect(await page.locator('[data-kpi="demand"] .v').innerText()).toBe('100%');
    expect(await page.locator('#group option').allInnerTexts()).toEqual(['batch', 'web']);
    expect(await page.locator('#group-pick').isVisible()).toBe(true);
    expect(await page.evaluate('window.__xss')).toBeUndefined();
    expect(o.errors).toEqual([]);
    expect(onLoopback(o.requests)).toEqual([]);
    await o.close();
  });

  it('appends a sample from the stream to the charts and the table, without fetching the history again', async () => {
    const o = await open('/?group=web');
    const { page } = o;
    const n = (await chart(page, 'cpu')).historyPoints;
    // The first sample carries the clock's time, after the last (partial) bucket.
    await page.locator(`#cpu-chart[data-points="${n + 1}"]`).waitFor({ timeout: 10_000 });
    clock.advance(2_000);
    new TelemetryStore(db).writeBatch([{ instanceId: 'web-a', seq: ++seq, sampleAt: clock.now(), receivedAt: clock.now(), cpu: 91.5, mem: 55 }]);
    await waitFor('the sample drawn', async () => (await chart(page, 'cpu')).data[0]?.at(-1) === clock.now());
    const cpu = await chart(page, 'cpu');
    expect(column(cpu, 'web-a').at(-1)).toBe(91.5);
    // Two live points after the history; what fell out of the hour before the newest went.
    expect(cpu.points).toBe(cpu.data[0]?.length);
    expect(cpu.points).toBe(cpu.historyPoints + 2);
    expect(cpu.historyPoints).toBe(n - 1);
    expect(cpu.data[0]?.[0]).toBeGreaterThanOrEqual(clock.now() - 60 * MIN - 10_000);
    const cap = await chart(page, 'capacity');
    expect(cap.points).toBe(cpu.points);
    expect(column(cap, 'demand ÷ 100').at(-1)).toBe(1);
    await page.locator('#instances tr[data-instance="web-a"] td.cpu', { hasText: '91.5%' }).waitFor({ timeout: 5_000 });
    expect(await page.locator('#instances tr[data-instance="web-a"] td.mem').innerText()).toBe('55.0%');
    expect(await page.locator('#conn').getAttribute('data-state')).toBe('live');
    expect(o.requests.filter((u) => u.includes('/metrics'))).toHaveLength(1);
    expect(o.errors).toEqual([]);
    await o.close();
  });

  it('shows a decision from the stream at the top of the timeline', async () => {
    const o = await open('/?group=web');
    const { page } = o;
    await page.locator('#conn[data-state="live"]').waitFor({ timeout: 10_000 });
    new EventStore(db).recordDecision('web', { current: 2, desired: 4, reason: 'ScaleOut', message: 'streamed decision', trail: ['ScaleOut'], details: {} }, clock.now());
    await page.locator('#decisions li', { hasText: 'streamed decision' }).waitFor({ timeout: 10_000 });
    expect(await page.locator('#decisions li').first().innerText()).toContain('2 → 4');
    expect(await page.locator('#decisions li[data-decision-id]').count()).toBe(4);
    expect(o.errors).toEqual([]);
    await o.close();
  });

  it('reconnects after the stream ends, with Last-Event-ID, and gets what it missed', async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
    const streams: { lastEventId: string | undefined }[] = [];
    let cursor = '';
    await page.route('**/api/v1/stream?*', async (route) => {
      streams.push({ lastEventId: route.request().headers()['last-event-id'] });
      if (streams.length > 1) return route.continue();
      // The first stream says hello at the head of the log, and ends; a decision lands meanwhile.
      cursor = formatCursor(new TimelineReader(db).head());
      new EventStore(db).recordDecision('web', { current: 2, desired: 3, reason: 'ScaleOut', message: 'missed while away', trail: ['ScaleOut'], details: {} }, clock.now());
      return route.fulfill({ status: 200, contentType: 'text/event-stream', body: `retry: 2000\n\nevent: hello\ndata: {"cursor":"${cursor}","pollMs":200}\n\n` });
    });
    const metrics: string[] = [];
    page.on('request', (r) => { if (r.url().includes('/metrics')) metrics.push(r.url()); });
    await page.goto(`${base}/?group=web`);
    await page.locator('#decisions li', { hasText: 'missed while away' }).waitFor({ timeout: 15_000 });
    expect(streams.map((s) => s.lastEventId)).toEqual([undefined, cursor]);
    await page.locator('#conn[data-state="live"]').waitFor({ timeout: 10_000 });
    // After the gap the history is read once more, not on every sample.
    await waitFor('the history read again', () => metrics.length === 2);
    expect(errors).toEqual([]);
    await context.close();
  });

  it('with the token from the fragment, the policy form PATCHes only what changed and shows the new revision', async () => {
    const before = new GroupStore(db).get('web');
    const o = await open(`/?group=web#token=${WRITE}`);
    const { page } = o;
    // The token left the address bar, and is kept for the tab.
    expect(new URL(page.url()).hash).toBe('');
    expect(await page.evaluate("sessionStorage.getItem('autoscaler.token')")).toBe(WRITE);
    expect(await page.locator('#token-state').innerText()).toBe('token set');
    expect(await page.locator('#policy-form input[name="cpuTarget"]').inputValue()).toBe('50');
    expect(await page.locator('#revision').innerText()).toBe(String(before?.revision));

    await page.locator('#policy-form input[name="cpuTarget"]').fill('60');
    await page.locator('#policy-form input[name="warmupS"]').fill('4');
    const sent = page.waitForRequest((r) => r.method() === 'PATCH');
    await page.locator('#policy-form button[type="submit"]').click();
    const req = await sent;
    expect(req.headers().authorization).toBe(`Bearer ${WRITE}`);
    expect(req.postDataJSON()).toEqual({ set: { 'targetTracking.0.target': 60, warmupMs: 4_000 } });
    const revision = (before?.revision ?? 0) + 1;
    await page.locator('#policy-result.ok', { hasText: `revision ${revision}` }).waitFor({ timeout: 10_000 });
    expect(await page.locator('#policy-result').innerText()).toContain('policy.targetTracking.0.target 50 → 60');
    expect(await page.locator('#revision').innerText()).toBe(String(revision));
    const after = new GroupStore(db).get('web');
    expect(after?.policy.targetTracking[0]?.target).toBe(60);
    expect(after?.policy.warmupMs).toBe(4_000);
    expect(after?.revision).toBe(revision);
    // Refilled from the group's document; nothing marked as changed any more.
    await page.locator('[data-kpi="target"] .v', { hasText: '60%' }).waitFor({ timeout: 5_000 });
    expect(await page.locator('#policy-form input.changed').count()).toBe(0);
    // An invalid value is refused with the field named and marked.
    await page.locator('#policy-form input[name="cpuTarget"]').fill('500');
    await page.locator('#policy-form button[type="submit"]').click();
    await page.locator('#policy-result.error').waitFor({ timeout: 10_000 });
    expect(await page.locator('#policy-result li').allInnerTexts()).toContainEqual(expect.stringMatching(/^policy\.targetTracking\.0\.target: must be <= 100/));
    expect(await page.locator('#policy-form input[name="cpuTarget"]').getAttribute('aria-invalid')).toBe('true');
    expect(new GroupStore(db).get('web')?.revision).toBe(revision);
    expect(o.errors.filter((e) => !/status of 400/.test(e))).toEqual([]);
    expect(onLoopback(o.requests)).toEqual([]);
    await o.close();
  });

  it('without a token a write shows the 401 message; a pasted token then works, a read token gets the 403 message', async () => {
    const o = await open('/?group=web');
    const { page } = o;
    expect(await page.locator('#token-state').innerText()).toBe('no token: read only');
    const revision = new GroupStore(db).get('web')?.revision;
    await page.locator('#policy-form input[name="minSize"]').fill('2');
    await page.locator('#policy-form button[type="submit"]').click();
    await page.locator('#policy-result.error[data-status="401"]').waitFor({ timeout: 10_000 });
    const text = await page.locator('#policy-result').innerText();
    expect(text).toContain('missing token: this route changes the fleet and needs a bearer token with role write');
    expect(text).toContain('Paste a token with role write into the token field');
    expect(new GroupStore(db).get('web')?.revision).toBe(revision);

    await page.locator('#token').fill(READ);
    await page.locator('#token-form button[type="submit"]').click();
    await page.locator('#policy-form button[type="submit"]').click();
    await page.locator('#policy-result.error[data-status="403"]').waitFor({ timeout: 10_000 });
    expect(await page.locator('#policy-result').innerText()).toContain('token "viewer" has role read');

    await page.locator('#token').fill(WRITE);
    await page.locator('#token-form button[type="submit"]').click();
    expect(await page.locator('#token-state').innerText()).toBe('token set');
    await page.locator('#policy-form button[type="submit"]').click();
    await page.locator('#policy-result.ok', { hasText: 'minSize 1 → 2' }).waitFor({ timeout: 10_000 });
    expect(new GroupStore(db).get('web')?.minSize).toBe(2);
    // The browser reports each refused request as a failed resource load, and nothing else.
    expect(o.errors.filter((e) => !/status of 40[13]/.test(e))).toEqual([]);
    await o.close();
  });

  it('pauses, resumes, turns dry run on, scales for a while and clears, and sets the demand', async () => {
    const groups = new GroupStore(db);
    const o = await open(`/?group=web#token=${WRITE}`);
    const { page } = o;
    await page.locator('#pause').click();
    await page.locator('#ops-result.ok', { hasText: 'paused' }).waitFor({ timeout: 10_000 });
    expect(groups.get('web')?.paused).toBe(true);
    expect(await page.locator('[data-badge="paused"]').count()).toBe(1);
    expect(await page.locator('#pause').innerText()).toBe('resume');
    await page.locator('#pause').click();
    await page.locator('#ops-result.ok', { hasText: 'resumed' }).waitFor({ timeout: 10_000 });
    expect(groups.get('web')?.paused).toBe(false);

    await page.locator('#dry-run').check();
    await page.locator('#ops-result.ok', { hasText: 'dry run on' }).waitFor({ timeout: 10_000 });
    expect(groups.get('web')?.dryRun).toBe(true);
    await page.locator('#dry-run').uncheck();
    await page.locator('#ops-result.ok', { hasText: 'dry run off' }).waitFor({ timeout: 10_000 });
    expect(groups.get('web')?.dryRun).toBe(false);

    // Outside the bounds: refused, the field named and marked, nothing set.
    await page.locator('#scale-form input[name="desired"]').fill('9');
    await page.locator('#scale-form button[type="submit"]').click();
    await page.locator('#scale-result.error').waitFor({ timeout: 10_000 });
    expect(await page.locator('#scale-result').innerText()).toContain('outside the group\'s bounds');
    expect(await page.locator('#scale-form input[name="desired"]').getAttribute('aria-invalid')).toBe('true');
    expect(groups.get('web')?.override).toBeUndefined();
    await page.locator('#scale-form input[name="desired"]').fill('3');
    await page.locator('#scale-form input[name="for"]').fill('10m');
    await page.locator('#scale-form button[type="submit"]').click();
    await page.locator('#scale-result.ok', { hasText: 'manual capacity 3 until' }).waitFor({ timeout: 10_000 });
    expect(groups.get('web')?.override).toMatchObject({ desired: 3, until: clock.now() + 10 * MIN, by: 'api:alice' });
    expect(await page.locator('[data-badge="manual"]').innerText()).toContain('manual capacity 3');
    await page.locator('#scale-clear').click();
    await page.locator('#scale-result.ok', { hasText: 'cleared' }).waitFor({ timeout: 10_000 });
    expect(groups.get('web')?.override).toBeUndefined();

    expect(await page.locator('#load-form').isVisible()).toBe(true);
    await page.locator('#load-form input[name="spec"]').fill('step:30,200@60s');
    await page.locator('#load-form button[type="submit"]').click();
    await page.locator('#load-result.ok', { hasText: 'demand step:30,200@60s, now 30%' }).waitFor({ timeout: 10_000 });
    expect(new SimLoadStore(db).get('web')?.profile).toMatchObject({ kind: 'step' });
    expect(o.errors.filter((e) => !/status of 400/.test(e))).toEqual([]);
    await o.close();
  });

  it('runs a what-if and shows the runs and the capacity-vs-demand chart', async () => {
    const o = await open('/?group=web');
    const { page } = o;
    await page.locator('#whatif-trace').selectOption('flash-crowd');
    await page.locator('#whatif-boot').selectOption('60s');
    const asked = page.waitForRequest((r) => r.url().includes('/simulate'));
    await page.locator('#simulate').click();
    expect(new URL((await asked).url()).search).toBe('?trace=flash-crowd&boot=60s&compare=hpa%2Caws-target-tracking%2Coracle');
    await page.locator('#whatif-runs tr[data-policy]').nth(3).waitFor({ timeout: 30_000 });
    expect(await page.locator('#whatif-runs tr[data-policy]').evaluateAll((rs) => rs.map((r) => r.getAttribute('data-policy')))).toEqual(['policy', 'hpa', 'aws-target-tracking', 'oracle']);
    const c = await chart(page, 'whatif');
    expect(c.labels).toEqual(['time', 'demand ÷ 100', 'policy', 'hpa', 'aws-target-tracking', 'oracle']);
    expect(c.points).toBeGreaterThan(100);
    expect(column(c, 'oracle')).toHaveLength(c.points);
    expect(await page.locator('#whatif-about').innerText()).toContain('flash-crowd');
    expect(o.errors).toEqual([]);
    await o.close();
  }, 40_000);

  it('with many groups, picking another shows that group', async () => {
    const o = await open('/?group=web');
    const { page } = o;
    await page.locator('#group').selectOption('batch');
    await waitFor('the batch group drawn', () => page.evaluate("window.__dashboard.ready && window.__dashboard.group === 'batch' && window.__dashboard.history.groupId === 'batch'"));
    expect(new URL(page.url()).searchParams.get('group')).toBe('batch');
    await page.locator('#instances tr.empty').waitFor({ timeout: 5_000 });
    expect(await page.locator('#instances tr[data-instance]').count()).toBe(0);
    expect(await page.locator('#decisions li[data-decision-id]').count()).toBe(0);
    const cap = await chart(page, 'capacity');
    expect(cap.labels).toEqual(['time', 'desired', 'reporting']);
    await page.locator('#conn[data-state="live"]').waitFor({ timeout: 10_000 });
    expect(o.errors).toEqual([]);
    await o.close();
  });
});
