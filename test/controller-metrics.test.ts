/**
 * The controller's /metrics and /healthz, from a real `autoscaler controller` process: the text
 * parses as Prometheus exposition format and the counters move when decisions and provider
 * calls happen.
 */
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { killAll, startCli, tempDir, waitFor } from './helpers.js';
import { parsePrometheus } from './prometheus.js';

afterAll(killAll);

describe('controller /metrics and /healthz', () => {
  it('serves Prometheus text whose counters move with decisions and provider calls', async () => {
    const dir = tempDir();
    const db = join(dir, 'a.db');
    const monitor = startCli(['monitor-server'], { AUTOSCALER_DB: db, MONITOR_GRPC_PORT: '0', MONITOR_HTTP_PORT: '0' });
    await waitFor('monitor listening', () => monitor.logs().find((l) => l.msg === 'monitor server listening'), 15_000);
    const controller = startCli(['controller'], { AUTOSCALER_DB: db, CONTROLLER_INTERVAL_MS: '200', GROUP_ID: 'web', GROUP_MIN_SIZE: '2', GROUP_MAX_SIZE: '3', LOCAL_TERMINATE_TIMEOUT_MS: '1000' });
    try {
      const listening = await waitFor('metrics listening', () => controller.logs().find((l) => l.msg === 'controller metrics listening'), 15_000);
      const url = `http://${String(listening.address)}`;
      const scrape = async () => parsePrometheus(await (await fetch(`${url}/metrics`)).text());
      const m = await waitFor('a launch and a decision counted', async () => {
        const f = await scrape();
        const launches = f.get('autoscaler_provider_calls_total')?.samples.find((s) => s.labels.operation === 'launch' && s.labels.outcome === 'ok');
        return launches !== undefined && launches.value >= 1 ? f : undefined;
      }, 15_000, 100);
      expect(m.get('autoscaler_decisions_total')?.samples.find((s) => s.labels.group === 'web' && s.labels.reason === 'ClampedToMin')?.value).toBe(1);
      expect(m.get('autoscaler_group_desired')?.samples).toEqual([{ labels: { group: 'web' }, value: 2 }]);
      expect(m.get('autoscaler_group_max')?.samples).toEqual([{ labels: { group: 'web' }, value: 3 }]);
      expect(m.get('autoscaler_provider_call_seconds')?.type).toBe('histogram');
      expect(m.get('autoscaler_controller_nodejs_eventloop_lag_seconds')?.type).toBe('gauge');
      const lists = (f: ReturnType<typeof parsePrometheus>) => f.get('autoscaler_provider_calls_total')?.samples.find((s) => s.labels.operation === 'list')?.value ?? 0;
      const before = lists(m);
      await waitFor('more evaluations counted', async () => lists(await scrape()) > before, 10_000, 100);
      const health = await fetch(`${url}/healthz`);
      expect(health.status).toBe(200);
      expect(await health.json()).toMatchObject({ status: 'ok' });
      expect((await fetch(`${url}/nope`)).status).toBe(404);
      expect((await fetch(`${url}/metrics`, { method: 'POST' })).status).toBe(405);
    } finally {
      await controller.stop();
      await monitor.stop();
    }
  }, 60_000);
});
