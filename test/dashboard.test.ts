/**
 * The dashboard in headless Chromium (Debian's package: `apt-get install chromium`). Under CI a
 * missing browser fails the test; on a laptop without one it is skipped with a message.
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadMonitorServerConfig } from '../config/monitor-server.js';
import { systemClock } from '../lib/clock.js';
import { captureLogger, testGroup } from '../lib/testing.js';
import { MonitorServer, type MonitorServerHandle } from '../monitor-server/server.js';
import { openStore, type Db } from '../store/db.js';
import { EventStore } from '../store/events.js';
import { GroupStore } from '../store/groups.js';
import { InstanceStore } from '../store/instances.js';
import { SimLoadStore } from '../store/simload.js';
import { TelemetryStore } from '../store/telemetry.js';
import { tempDir } from './helpers.js';

const CANDIDATES = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].filter((p): p is string => !!p);
const executablePath = CANDIDATES.find((p) => existsSync(p));
if (executablePath === undefined) {
  if (process.env.CI === 'true') throw new Error(`Chromium not found (looked at ${CANDIDATES.join(', ')}); CI must install it: apt-get install -y chromium`);
  console.warn(`dashboard tests skipped: no Chromium at ${CANDIDATES.join(', ')} (apt-get install chromium, or set CHROMIUM_PATH)`);
}

const spec = testGroup();

let db: Db;
let server: MonitorServerHandle;
let browser: Browser;
const dir = tempDir();

describe.skipIf(executablePath === undefined)('dashboard (headless Chromium)', () => {
  beforeAll(async () => {
    const dbPath = join(dir, 'a.db');
    db = openStore(dbPath);
    const now = Date.now();
    new GroupStore(db).upsert(spec, now);
    const instances = new InstanceStore(db);
    for (const id of ['web-a', 'web-b']) instances.register({ id, groupId: 'web', address: '127.0.0.1', agentVersion: 'test' }, now);
    new TelemetryStore(db).writeBatch([
      { instanceId: 'web-a', seq: 1, sampleAt: now, receivedAt: now, cpu: 62.5, mem: 40 },
      { instanceId: 'web-b', seq: 1, sampleAt: now, receivedAt: now, cpu: 37.5, mem: 30 },
    ]);
    new SimLoadStore(db).set('web', { kind: 'constant', value: 100 }, now);
    new EventStore(db).recordDecision('web', { current: 1, desired: 2, reason: 'ScaleOut', message: 'avg CPU 100.0% vs target 50% → ceil(1 × 2.00) = 2 <b>', trail: ['ScaleOut'], details: {} }, now);
    const cfg = loadMonitorServerConfig({ env: { AUTOSCALER_DB: dbPath, MONITOR_GRPC_PORT: '0', MONITOR_HTTP_PORT: '0', MONITOR_STARTUP_GRACE_MS: '600000' } });
    server = await new MonitorServer(cfg, db, systemClock, captureLogger('warn').log).start();
    browser = await chromium.launch({
      executablePath,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  }, 30_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    db?.close();
  });

  it('shows the group, its instances with CPU, the decisions, and follows changes', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
    await page.goto(`http://127.0.0.1:${server.httpPort}/`);
    await page.locator('section[data-group="web"] tr[data-instance]').nth(1).waitFor({ timeout: 10_000 });
    const group = page.locator('section[data-group="web"]');
    expect(await group.locator('tr[data-instance="web-a"] td').nth(2).innerText()).toContain('62.5%');
    // Seeded without a stream, both are suspect (capacity, but no trusted metric): no average yet.
    const kpis = (await group.locator('.kpi').allInnerTexts()).map((t) => t.replace(/\s+/g, ' ').toLowerCase());
    expect(kpis).toEqual(expect.arrayContaining(['2 live', '2 suspect', '– avg cpu', '50% target', '100% demand']));
    const decision = await group.locator('ol.decisions li').first().innerText();
    expect(decision).toContain('ScaleOut');
    expect(decision).toContain('<b>'); // shown as text, not markup
    expect(await page.locator('#components').innerText()).toContain('monitor-server');

    // The page polls: a change in the store shows up without a reload, and the chart grows.
    new InstanceStore(db).setState('web-b', 'terminating', 'scale in', Date.now());
    await page.locator('tr[data-instance="web-b"] td.state.terminating').waitFor({ timeout: 10_000 });
    await page.waitForFunction("Number(document.querySelector('svg.chart')?.getAttribute('data-points')) >= 2", undefined, { timeout: 10_000 });
    expect(await page.locator('svg.chart path.series-live').count()).toBe(1);
    expect(await page.locator('svg.chart path.series-demand').count()).toBe(1);

    const shot = join(dir, 'dashboard.png');
    await page.screenshot({ path: shot, fullPage: true });
    expect(statSync(shot).size).toBeGreaterThan(10_000);
    expect(errors).toEqual([]);
  }, 30_000);
});
