import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadControllerConfig } from '../config/controller.js';
import { ManualClock, captureLogger } from '../lib/testing.js';
import { ComponentStore } from '../store/components.js';
import { openStore, type Db } from '../store/db.js';
import { EventStore } from '../store/events.js';
import { GroupStore } from '../store/groups.js';
import { InstanceStore } from '../store/instances.js';
import { TelemetryStore } from '../store/telemetry.js';
import { Controller } from './loop.js';
import { FakeProvider } from './testing.js';

let db: Db;
let clock: ManualClock;
let provider: FakeProvider;
let controller: Controller;
let instances: InstanceStore;
let events: EventStore;
let seq = 0;

const cfg = loadControllerConfig({ env: {
  GROUP_ID: 'web', GROUP_MIN_SIZE: '1', GROUP_MAX_SIZE: '4', GROUP_SCALE_IN_STABILIZATION_MS: '0',
  CONTROLLER_LAUNCH_TIMEOUT_MS: '30000', CONTROLLER_MONITOR_STALE_MS: '15000',
} });

beforeEach(() => {
  db = openStore(join(mkdtempSync(join(tmpdir(), 'autoscaler-loop-')), 'a.db'));
  clock = new ManualClock();
  provider = new FakeProvider();
  let n = 0;
  controller = new Controller(cfg, db, provider, clock, captureLogger('warn').log, () => `web-${++n}`);
  controller.init();
  instances = new InstanceStore(db);
  events = new EventStore(db);
  seq = 0;
});
afterEach(() => db.close());

/** The monitor server's side of the store: its heartbeat, registrations and samples. */
function monitorBeat(): void {
  new ComponentStore(db).beat({ name: 'monitor-server', pid: 1, startedAt: 0, info: {} }, clock.now());
}
function sample(id: string, cpu: number): void {
  new TelemetryStore(db).writeBatch([{ instanceId: id, seq: ++seq, sampleAt: clock.now(), receivedAt: clock.now(), cpu, mem: 10 }]);
}
function reportCpu(id: string, cpu: number): void {
  instances.register({ id, groupId: 'web', address: '', agentVersion: '' }, clock.now());
  sample(id, cpu);
}
const reasons = () => events.recentDecisions('web', 50).map((d) => d.reason).reverse();

describe('Controller.tick', () => {
  it('holds every action while the monitor server has never reported', async () => {
    await controller.tick();
    expect(reasons()).toEqual(['MonitorUnavailable']);
    expect(provider.calls).toEqual([]);
  });

  it('holds when the monitor server goes silent, and resumes when it is back', async () => {
    monitorBeat();
    await controller.tick();
    expect(provider.calls).toEqual(['launch web-1']);
    clock.advance(16_000);
    await controller.tick();
    expect(events.recentDecisions('web', 1)[0]).toMatchObject({ reason: 'MonitorUnavailable', message: expect.stringContaining('silent for 16s') });
    monitorBeat();
    reportCpu('web-1', 50);
    await controller.tick();
    expect(reasons().at(-1)).toBe('WithinTolerance');
  });

  it('raises an empty group to its minimum and records the launch', async () => {
    monitorBeat();
    await controller.tick();
    expect(reasons()).toEqual(['ClampedToMin']);
    expect(instances.get('web-1')).toMatchObject({ state: 'pending', providerId: 'fake-1' });
    expect(events.recentActivities('web', 5)).toMatchObject([{ action: 'launch', instanceId: 'web-1', outcome: 'ok' }]);
    expect(new GroupStore(db).get('web')?.desired).toBe(1);
  });

  it('scales out on high CPU and records one row for a steady state', async () => {
    monitorBeat();
    await controller.tick();
    reportCpu('web-1', 100);
    await controller.tick();
    expect(reasons()).toEqual(['ClampedToMin', 'ScaleOut']);
    expect(provider.calls).toEqual(['launch web-1', 'launch web-2']);
    reportCpu('web-1', 50);
    reportCpu('web-2', 50);
    await controller.tick();
    await controller.tick();
    await controller.tick();
    expect(reasons()).toEqual(['ClampedToMin', 'ScaleOut', 'WithinTolerance']);
  });

  it('records a failed launch, keeps the failed instance out of capacity, and retries next time', async () => {
    monitorBeat();
    provider.failLaunch = 'InsufficientInstanceCapacity';
    await controller.tick();
    expect(instances.get('web-1')).toMatchObject({ state: 'terminated', stateReason: 'launch failed: InsufficientInstanceCapacity' });
    expect(events.recentActivities('web', 5)[0]).toMatchObject({ action: 'launch', outcome: 'failed', error: 'InsufficientInstanceCapacity' });
    provider.failLaunch = undefined;
    await controller.tick();
    expect(instances.get('web-2')).toMatchObject({ state: 'pending' });
  });

  it('replaces a launch that never registers', async () => {
    monitorBeat();
    await controller.tick();
    clock.advance(31_000);
    monitorBeat();
    await controller.tick();
    const replace = events.recentDecisions('web', 5).find((d) => d.reason === 'ReplaceUnhealthy');
    expect(replace?.message).toContain('web-1 did not register within 30s of launch');
    expect(provider.calls).toEqual(['launch web-1', 'terminate web-1', 'launch web-2']);
    expect(instances.get('web-1')?.state).toBe('terminated');
  });

  it('replaces an instance the monitor server declared dead', async () => {
    monitorBeat();
    await controller.tick();
    reportCpu('web-1', 50);
    instances.setLiveness('web-1', 'dead', 'no heartbeat for 4600 ms', clock.now());
    await controller.tick();
    expect(events.recentDecisions('web', 5).find((d) => d.reason === 'ReplaceUnhealthy')?.message).toBe('replacing 1 instance(s): web-1 dead (no heartbeat for 4600 ms)');
    expect(instances.get('web-1')?.state).toBe('terminated');
    expect(instances.get('web-2')?.state).toBe('pending');
  });

  it('marks an instance the provider lost as dead at once and replaces it', async () => {
    monitorBeat();
    await controller.tick();
    reportCpu('web-1', 50);
    provider.lose('web-1', 'exited with signal SIGKILL');
    await controller.tick();
    expect(instances.get('web-1')).toMatchObject({ state: 'terminated' });
    expect(events.recentDecisions('web', 5).find((d) => d.reason === 'ReplaceUnhealthy')?.message).toContain('instance gone: exited with signal SIGKILL');
    expect(provider.calls.at(-1)).toBe('launch web-2');
  });

  it('leaves an instance terminating when the provider fails to terminate it, and finishes once it is gone', async () => {
    monitorBeat();
    await controller.tick();
    reportCpu('web-1', 50);
    instances.setLiveness('web-1', 'dead', 'silent', clock.now());
    provider.failTerminate = 'RequestLimitExceeded';
    await controller.tick();
    expect(instances.get('web-1')?.state).toBe('terminating');
    expect(events.recentActivities('web', 5).find((a) => a.action === 'terminate')).toMatchObject({ outcome: 'failed', error: 'RequestLimitExceeded' });
    provider.failTerminate = undefined;
    provider.lose('web-1');
    await controller.tick();
    expect(instances.get('web-1')?.state).toBe('terminated');
  });

  it('does nothing for a paused group but say so', async () => {
    monitorBeat();
    new GroupStore(db).setPaused('web', true, clock.now());
    await controller.tick();
    expect(reasons()).toEqual(['Paused']);
    expect(provider.calls).toEqual([]);
  });

  it('does not scale in on the low CPU of an instance still warming up', async () => {
    const warm = loadControllerConfig({ env: { GROUP_ID: 'web', GROUP_MIN_SIZE: '1', GROUP_MAX_SIZE: '4', GROUP_SCALE_IN_STABILIZATION_MS: '0', GROUP_WARMUP_MS: '10000' } });
    const c = new Controller(warm, db, provider, clock, captureLogger('warn').log, () => 'web-w');
    c.init();
    monitorBeat();
    reportCpu('web-old', 30); // registered a minute before the evaluation: ready
    provider.instances.set('web-old', { groupId: 'web', state: 'running', detail: 'running' });
    clock.advance(60_000);
    monitorBeat();
    sample('web-old', 30);
    reportCpu('web-new', 0); // registered now: warming up, still taking on load
    provider.instances.set('web-new', { groupId: 'web', state: 'running', detail: 'running' });
    await c.tick();
    expect(events.recentDecisions('web', 1)[0]).toMatchObject({ from: 2, to: 2, message: expect.stringContaining('ceil(2 × 0.80) = 2') });
    expect(provider.calls.filter((x) => x.startsWith('terminate'))).toEqual([]);
    clock.advance(11_000);
    monitorBeat();
    sample('web-old', 30);
    sample('web-new', 0);
    await c.tick(); // warmed up and still idle: now it may go
    expect(events.recentDecisions('web', 1)[0]).toMatchObject({ reason: 'ScaleIn', from: 2, to: 1 });
  });
});
