import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadControllerConfig, type ControllerConfig } from '../config/controller.js';
import { ManualClock, captureLogger, configProblems } from '../lib/testing.js';
import { ComponentStore } from '../store/components.js';
import { openStore, type Db } from '../store/db.js';
import { EventStore } from '../store/events.js';
import { GroupStore } from '../store/groups.js';
import { InstanceStore } from '../store/instances.js';
import { IntentStore } from '../store/intents.js';
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
let tokens = 0;

const env = {
  GROUP_ID: 'web', GROUP_MIN_SIZE: '1', GROUP_MAX_SIZE: '4', GROUP_SCALE_IN_STABILIZATION_MS: '0',
  CONTROLLER_BOOT_TIMEOUT_MS: '30000', CONTROLLER_MONITOR_STALE_MS: '15000', CONTROLLER_LISTING_GRACE_MS: '20000',
};
const cfg = loadControllerConfig({ env });

/** A controller; a config other than the default is applied to the store, as an operator would (seeds never overwrite). */
function makeController(c: ControllerConfig = cfg, p: FakeProvider = provider): Controller {
  if (c !== cfg) new GroupStore(db).apply(c.group, 'test', clock.now());
  const ctl = new Controller(c, db, p, clock, captureLogger('warn').log, () => `tok-${++tokens}`);
  ctl.init();
  return ctl;
}

beforeEach(() => {
  db = openStore(join(mkdtempSync(join(tmpdir(), 'autoscaler-loop-')), 'a.db'));
  clock = new ManualClock();
  provider = new FakeProvider(clock);
  tokens = 0;
  controller = makeController();
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
/** The agent of `id` registers (with the provider's id, as the identity rule says) and reports. */
function reportCpu(id: string, cpu: number): void {
  instances.register({ id, groupId: 'web', address: '', agentVersion: '' }, clock.now());
  sample(id, cpu);
}
/** Advance, keep the monitor server fresh, and evaluate. */
async function step(ms: number, c: Controller = controller): Promise<void> {
  clock.advance(ms);
  monitorBeat();
  await c.tick();
}
const reasons = () => events.recentDecisions('web', 50).map((d) => d.reason).reverse();
const launches = () => provider.calls.filter((c) => c.startsWith('launch'));
const rows = () => instances.listGroup('web');

describe('Controller.tick', () => {
  it('holds every action while the monitor server has never reported', async () => {
    await controller.tick();
    expect(reasons()).toEqual(['MonitorUnavailable']);
    expect(launches()).toEqual([]);
  });

  it('holds when the monitor server goes silent, and resumes when it is back', async () => {
    monitorBeat();
    await controller.tick();
    expect(launches()).toEqual(['launch 1 tok-1']);
    clock.advance(16_000);
    await controller.tick();
    expect(events.recentDecisions('web', 1)[0]).toMatchObject({ reason: 'MonitorUnavailable', message: expect.stringContaining('silent for 16s') });
    monitorBeat();
    reportCpu('web-1', 50);
    await controller.tick();
    expect(reasons().at(-1)).toBe('WithinTolerance');
  });

  it('raises an empty group to its minimum: one intent, the row named by the provider, the intent closed', async () => {
    monitorBeat();
    await controller.tick();
    expect(reasons()).toEqual(['ClampedToMin']);
    expect(instances.get('web-1')).toMatchObject({ state: 'pending', providerId: 'web-1', launchToken: 'tok-1', zone: 'zone-a', origin: 'launched' });
    expect(new IntentStore(db).get('tok-1')).toMatchObject({ status: 'done', count: 1, attempts: 1 });
    expect(events.recentActivities('web', 5)).toMatchObject([{ action: 'launch', instanceId: 'web-1', outcome: 'ok' }]);
    expect(new GroupStore(db).get('web')?.desired).toBe(1);
  });

  it('scales out with one batched launch and records one row for a steady state', async () => {
    monitorBeat();
    await controller.tick();
    reportCpu('web-1', 80);
    await controller.tick();
    expect(reasons()).toEqual(['ClampedToMin', 'ScaleOut']);
    expect(launches()).toEqual(['launch 1 tok-1', 'launch 1 tok-2']);
    reportCpu('web-1', 80);
    reportCpu('web-2', 80);
    await step(1_000);
    expect(launches().at(-1)).toBe('launch 2 tok-3'); // 2 → 4: one call for both
    for (const id of ['web-1', 'web-2', 'web-3', 'web-4']) reportCpu(id, 50);
    await step(1_000);
    await step(1_000);
    expect(reasons()).toEqual(['ClampedToMin', 'ScaleOut', 'ScaleOut', 'WithinTolerance']);
    expect(rows().map((r) => r.id)).toEqual(['web-1', 'web-2', 'web-3', 'web-4']);
  });

  it('a launch refused for capacity closes its intent, is recorded with its code, backs off, then retries', async () => {
    monitorBeat();
    provider.failLaunch = 'InsufficientCapacity';
    await controller.tick();
    expect(new IntentStore(db).get('tok-1')).toMatchObject({ status: 'failed', error: expect.stringContaining('InsufficientCapacity') });
    expect(events.recentActivities('web', 5)[0]).toMatchObject({ action: 'launch', outcome: 'failed', error: expect.stringContaining('InsufficientCapacity') });
    provider.failLaunch = undefined;
    await step(1_000);
    expect(reasons().at(-1)).toBe('ProviderBackoff');
    expect(launches()).toEqual(['launch 1 tok-1']);
    await step(5_000);
    expect(launches()).toEqual(['launch 1 tok-1', 'launch 1 tok-2']);
    expect(rows()).toMatchObject([{ id: 'web-1', state: 'pending' }]);
  });

  it('an ambiguous launch failure (timeout, 5xx) keeps the intent open and retries it with the same token', async () => {
    monitorBeat();
    provider.failLaunch = 'Unavailable';
    await controller.tick();
    expect(new IntentStore(db).get('tok-1')).toMatchObject({ status: 'open' });
    provider.failLaunch = undefined;
    await step(6_000);
    expect(launches()).toEqual(['launch 1 tok-1', 'launch 1 tok-1']);
    expect(new IntentStore(db).get('tok-1')).toMatchObject({ status: 'done', attempts: 2 });
    expect(provider.live()).toEqual(['web-1']);
  });

  it('replaces a launch that never registers within the boot timeout', async () => {
    monitorBeat();
    await controller.tick();
    await step(31_000);
    const replace = events.recentDecisions('web', 5).find((d) => d.reason === 'ReplaceUnhealthy');
    expect(replace?.message).toContain('web-1 did not register within 30s of launch');
    expect(provider.calls.filter((c) => !c.startsWith('list'))).toEqual(['launch 1 tok-1', 'terminate web-1', 'launch 1 tok-2']);
    expect(instances.get('web-1')?.state).toBe('terminating');
    await step(1_000);
    expect(instances.get('web-1')?.state).toBe('terminated'); // the listing now says gone
  });

  it('an instance declared dead that the provider still runs is unreachable: replaced after CONTROLLER_UNREACHABLE_REPLACE_MS', async () => {
    monitorBeat();
    await controller.tick();
    reportCpu('web-1', 50);
    instances.setLiveness('web-1', 'dead', 'no heartbeat for 4600 ms', clock.now());
    await step(4_000); // within the default 5 s (local): the provider says it runs, so wait
    expect(events.recentDecisions('web', 5).find((d) => d.reason === 'ReplaceUnhealthy')).toBeUndefined();
    await step(1_000);
    expect(events.recentDecisions('web', 5).find((d) => d.reason === 'ReplaceUnhealthy')?.message).toBe('replacing 1 instance(s): web-1 unreachable for 5s (no heartbeat for 4600 ms; fake still runs it)');
    expect(instances.get('web-1')?.state).toBe('terminating');
    expect(instances.get('web-2')?.state).toBe('pending');
  });

  it('an instance declared dead that the provider no longer lists is replaced at once', async () => {
    monitorBeat();
    await controller.tick();
    reportCpu('web-1', 50);
    instances.setLiveness('web-1', 'dead', 'no heartbeat for 4600 ms', clock.now());
    provider.lose('web-1', 'terminated');
    await controller.tick();
    expect(events.recentDecisions('web', 5).find((d) => d.reason === 'ReplaceUnhealthy')?.message).toContain('web-1 dead');
  });

  it('fail static: half the group silent at once terminates nothing and does not scale in; an event says why', async () => {
    for (let n = 0; n < 4; n++) provider.add('web', 'x');
    monitorBeat();
    await controller.tick();
    for (const id of ['web-1', 'web-2', 'web-3', 'web-4']) reportCpu(id, 10);
    instances.setLiveness('web-1', 'dead', 'no heartbeat for 9000 ms', clock.now());
    instances.setLiveness('web-2', 'suspect', 'no heartbeat for 3000 ms', clock.now());
    await step(60_000);
    for (const id of ['web-3', 'web-4']) reportCpu(id, 10);
    await step(1_000);
    expect(provider.calls.filter((c) => c.startsWith('terminate'))).toEqual([]);
    expect(events.recentDecisions('web', 1)[0]).toMatchObject({ reason: 'FailStatic', message: expect.stringContaining('2 of 4 instances silent at once') });
    instances.register({ id: 'web-1', groupId: 'web', address: '', agentVersion: '' }, clock.now());
    instances.register({ id: 'web-2', groupId: 'web', address: '', agentVersion: '' }, clock.now());
    for (const id of ['web-1', 'web-2', 'web-3', 'web-4']) sample(id, 10);
    await step(1_000); // they are back: normal operation, the low load scales in
    expect(events.recentDecisions('web', 1)[0]).toMatchObject({ reason: 'ScaleIn' });
  });

  it('replacements of instances that may still serve: at most 10 % of the group at a time, at least one', async () => {
    const big = loadControllerConfig({ env: { ...env, GROUP_MIN_SIZE: '10', GROUP_MAX_SIZE: '20', CONTROLLER_UNREACHABLE_REPLACE_MS: '0', CONTROLLER_FAIL_STATIC_SHARE: '0.9' } });
    const c = makeController(big);
    for (let n = 0; n < 10; n++) provider.add('web', 'x');
    monitorBeat();
    await c.tick();
    const ids = rows().map((r) => r.id);
    for (const id of ids) reportCpu(id, 50);
    for (const id of ids.slice(0, 3)) instances.setLiveness(id, 'dead', 'no heartbeat for 9000 ms', clock.now());
    await step(1_000, c);
    expect(events.recentDecisions('web', 5).find((d) => d.reason === 'ReplaceUnhealthy')?.message).toMatch(/^replacing 1 instance\(s\): web-1 unreachable .*; 2 more wait \(at most 1 at a time\)$/);
    await step(1_000, c); // the replacement is still launching: the others wait
    expect(provider.calls.filter((x) => x.startsWith('terminate'))).toEqual(['terminate web-1']);
  });

  it('marks an instance the provider reports gone as dead at once and replaces it', async () => {
    monitorBeat();
    await controller.tick();
    reportCpu('web-1', 50);
    provider.lose('web-1', 'exited with signal SIGKILL');
    await controller.tick();
    expect(events.recentDecisions('web', 5).find((d) => d.reason === 'ReplaceUnhealthy')?.message).toContain('instance gone: exited with signal SIGKILL');
    expect(launches().at(-1)).toBe('launch 1 tok-2');
    await step(1_000);
    expect(instances.get('web-1')?.state).toBe('terminated');
  });

  it('leaves an instance terminating when the provider refuses, and finishes once it is gone', async () => {
    monitorBeat();
    await controller.tick();
    reportCpu('web-1', 50);
    instances.setLiveness('web-1', 'dead', 'silent', clock.now());
    provider.failTerminate = 'Throttled';
    await step(5_000); // unreachable long enough to be replaced
    expect(instances.get('web-1')?.state).toBe('terminating');
    expect(events.recentActivities('web', 5).find((a) => a.action === 'terminate')).toMatchObject({ outcome: 'failed', error: expect.stringContaining('Throttled') });
    provider.failTerminate = undefined;
    provider.lose('web-1');
    await step(1_000);
    expect(instances.get('web-1')?.state).toBe('terminated');
  });

  it('asks again for a termination the provider accepted but never carried out', async () => {
    monitorBeat();
    await controller.tick();
    reportCpu('web-1', 50);
    instances.requestTerminate('web-1', 'test', clock.now()); // accepted earlier, still running
    await step(1_000);
    reportCpu('web-2', 50); // its replacement
    await step(59_000);
    expect(provider.calls.filter((c) => c.startsWith('terminate'))).toEqual([]);
    reportCpu('web-2', 50);
    await step(61_000);
    expect(provider.calls.filter((c) => c.startsWith('terminate'))).toEqual(['terminate web-1']);
  });

  it('does nothing for a paused group but say so', async () => {
    monitorBeat();
    new GroupStore(db).setPaused('web', true, clock.now());
    await controller.tick();
    expect(reasons()).toEqual(['Paused']);
    expect(launches()).toEqual([]);
  });

  it('does not scale in on the low CPU of an instance still warming up', async () => {
    const warm = loadControllerConfig({ env: { ...env, GROUP_WARMUP_MS: '10000' } });
    const c = makeController(warm);
    provider.add('web', 'old'); // web-1, launched earlier
    provider.add('web', 'new'); // web-2
    monitorBeat();
    reportCpu('web-1', 30);
    await step(60_000, c);
    sample('web-1', 30);
    reportCpu('web-2', 0); // registered now: warming up, still taking on load
    await step(0, c);
    expect(events.recentDecisions('web', 1)[0]).toMatchObject({ from: 2, to: 2, message: expect.stringContaining('ceil(2 × 0.80) = 2') });
    expect(provider.calls.filter((x) => x.startsWith('terminate'))).toEqual([]);
    clock.advance(11_000);
    sample('web-1', 30);
    sample('web-2', 0);
    await step(0, c); // warmed up and still idle: now it may go
    expect(events.recentDecisions('web', 1)[0]).toMatchObject({ reason: 'ScaleIn', from: 2, to: 1 });
  });

  it('does not use a metric older than CONTROLLER_METRIC_MAX_AGE_MS', async () => {
    monitorBeat();
    await controller.tick();
    reportCpu('web-1', 100);
    await step(31_000); // the sample is 31 s old: no ready instance
    expect(events.recentDecisions('web', 1)[0]).toMatchObject({ reason: 'NoData' });
    expect(launches()).toEqual(['launch 1 tok-1']);
  });
});

describe('clouds: lag, slow boots, strangers, crashes', () => {
  it('a listing that lags launches by 10 s causes no duplicate launch and no false "gone"', async () => {
    provider.listingLagMs = 10_000;
    monitorBeat();
    await controller.tick();
    for (let t = 0; t < 4; t++) await step(3_000);
    expect(launches()).toEqual(['launch 1 tok-1']);
    expect(instances.get('web-1')).toMatchObject({ state: 'pending' });
    reportCpu('web-1', 50);
    await step(3_000);
    expect(instances.get('web-1')).toMatchObject({ state: 'running', providerState: 'running' });
    expect(reasons()).not.toContain('ReplaceUnhealthy');
  });

  it('a stored instance missing from the listing past the grace is gone and replaced', async () => {
    monitorBeat();
    await controller.tick();
    reportCpu('web-1', 50);
    provider.instances.delete('web-1'); // vanished without a trace
    await step(10_000);
    expect(instances.get('web-1')?.state).toBe('running'); // within the 20 s grace
    await step(11_000);
    expect(events.recentDecisions('web', 5).find((d) => d.reason === 'ReplaceUnhealthy')?.message).toContain('web-1 dead (instance gone: not listed by fake)');
  });

  it('boots of 3 minutes with AWS-style timeouts: no freeze, the group reaches its desired size', async () => {
    const slow = loadControllerConfig({ env: { ...env, GROUP_MIN_SIZE: '3', CONTROLLER_BOOT_TIMEOUT_MS: '600000', CONTROLLER_LISTING_GRACE_MS: '120000' } });
    const c = makeController(slow);
    monitorBeat();
    await c.tick();
    for (let t = 0; t < 36; t++) await step(5_000, c); // 180 s of boot, no agent yet
    expect(launches()).toEqual(['launch 3 tok-1']);
    for (const id of ['web-1', 'web-2', 'web-3']) reportCpu(id, 50);
    await step(5_000, c);
    expect(rows().map((r) => r.state)).toEqual(['running', 'running', 'running']);
    expect(reasons()).toEqual(['ClampedToMin', 'NoData', 'WithinTolerance']);
  });

  it.each([
    { name: 'adopt (default): counted as capacity and shown', setting: 'adopt', want: { state: 'pending', origin: 'adopted' }, terminated: [] as string[] },
    { name: 'terminate: asked to go', setting: 'terminate', want: undefined, terminated: ['terminate web-1'] },
  ])('an instance of the group the store does not know: $name', async ({ setting, want, terminated }) => {
    const c = makeController(loadControllerConfig({ env: { ...env, CONTROLLER_UNKNOWN_INSTANCES: setting } }));
    provider.add('web'); // web-1, launched by hand
    monitorBeat();
    await c.tick();
    if (want === undefined) expect(instances.get('web-1')).toBeUndefined();
    else expect(instances.get('web-1')).toMatchObject(want);
    expect(provider.calls.filter((x) => x.startsWith('terminate'))).toEqual(terminated);
    expect(launches()).toEqual(want === undefined ? ['launch 1 tok-1'] : []);
  });

  it('crash after the intent row, before the provider call: the restarted controller launches it once', async () => {
    monitorBeat();
    new IntentStore(db).create('tok-crash', 'web', 2, 'ScaleOut: test', clock.now()); // what the dead controller left
    await step(1_000, makeController());
    expect(launches()).toEqual(['launch 2 tok-crash']);
    expect(rows().map((r) => r.launchToken)).toEqual(['tok-crash', 'tok-crash']);
    await step(1_000);
    expect(launches()).toEqual(['launch 2 tok-crash']);
  });

  it('crash after the provider accepted, before the store recorded it: found by its token, nothing launched twice', async () => {
    monitorBeat();
    new IntentStore(db).create('tok-crash', 'web', 1, 'ClampedToMin: test', clock.now());
    await provider.launch({ groupId: 'web', token: 'tok-crash', count: 1 }); // the call that succeeded
    provider.calls.length = 0;
    await step(1_000, makeController());
    expect(launches()).toEqual([]);
    expect(instances.get('web-1')).toMatchObject({ launchToken: 'tok-crash', origin: 'launched' });
    expect(new IntentStore(db).get('tok-crash')?.status).toBe('done');
  });

  it('crash after the provider accepted, listing still lagging: the retry with the same token returns the same instance', async () => {
    provider.listingLagMs = 10_000;
    monitorBeat();
    new IntentStore(db).create('tok-crash', 'web', 1, 'ClampedToMin: test', clock.now());
    await provider.launch({ groupId: 'web', token: 'tok-crash', count: 1 });
    await step(1_000, makeController());
    expect(provider.live()).toEqual(['web-1']);
    expect(rows().map((r) => r.id)).toEqual(['web-1']);
  });

  it('an agent that registers before the controller recorded its launch is one row, not a stranger', async () => {
    monitorBeat();
    new IntentStore(db).create('tok-crash', 'web', 1, 'ClampedToMin: test', clock.now());
    await provider.launch({ groupId: 'web', token: 'tok-crash', count: 1 });
    reportCpu('web-1', 50); // the agent was quicker than the restarted controller
    await step(1_000, makeController());
    expect(rows()).toMatchObject([{ id: 'web-1', state: 'running', launchToken: 'tok-crash', origin: 'registered' }]);
    expect(launches()).toEqual(['launch 1 tok-crash']);
  });

  it('an intent with no instance past the boot timeout is closed as failed', async () => {
    monitorBeat();
    new IntentStore(db).create('tok-old', 'web', 1, 'test', clock.now() - 31_000);
    provider.failLaunch = 'Unavailable';
    await controller.tick();
    expect(new IntentStore(db).get('tok-old')).toMatchObject({ status: 'failed', error: 'no instance seen within the boot timeout' });
  });

  it('scale-in names its victims and the order that chose them (az-balance-oldest)', async () => {
    for (let n = 0; n < 3; n++) provider.add('web', 'x', clock.now() + n); // web-1 zone-a, web-2 zone-b, web-3 zone-a
    monitorBeat();
    await controller.tick();
    for (const id of ['web-1', 'web-2', 'web-3']) reportCpu(id, 10);
    await step(1_000);
    const terminate = events.recentActivities('web', 10).filter((a) => a.action === 'terminate');
    expect(terminate.map((a) => a.instanceId).sort()).toEqual(['web-1', 'web-3']);
    expect(terminate[0]?.cause).toContain('az-balance-oldest: web-1 (zone-a, 2 of 3 there, oldest)');
  });

  it('a failed listing holds every action and says why', async () => {
    monitorBeat();
    provider.failList = 'PermissionDenied';
    await controller.tick();
    expect(events.recentDecisions('web', 1)[0]).toMatchObject({ reason: 'ProviderUnavailable', message: expect.stringContaining('PermissionDenied') });
    expect(launches()).toEqual([]);
  });

  it('a provider that forbids acting now (instance refresh) holds', async () => {
    monitorBeat();
    provider.blocked = 'instance refresh in progress on ASG web';
    await controller.tick();
    expect(events.recentDecisions('web', 1)[0]).toMatchObject({ reason: 'ProviderBlocked', message: 'instance refresh in progress on ASG web: holding every action' });
    expect(launches()).toEqual([]);
  });
});

describe('cloud-owned lifecycle (an Auto Scaling group)', () => {
  let asg: FakeProvider;
  let c: Controller;
  beforeEach(() => {
    asg = new FakeProvider(clock, 'cloud');
    c = makeController(cfg, asg);
  });

  it('scales out by raising the desired count; the cloud launches and the controller adopts', async () => {
    monitorBeat();
    await c.tick();
    expect(asg.calls.filter((x) => x !== 'list')).toEqual(['set-desired 1']);
    asg.converge('web');
    await step(1_000, c);
    expect(rows()).toMatchObject([{ id: 'web-1', origin: 'adopted', state: 'pending' }]);
    reportCpu('web-1', 80);
    await step(1_000, c);
    expect(asg.calls.filter((x) => x !== 'list')).toEqual(['set-desired 1', 'set-desired 2']);
  });

  it('scales in by terminating chosen victims with decrement, replaces the dead without', async () => {
    asg.desired = 3;
    asg.converge('web');
    monitorBeat();
    await c.tick();
    for (const id of ['web-1', 'web-2', 'web-3']) reportCpu(id, 40);
    instances.setLiveness('web-3', 'dead', 'silent', clock.now());
    await step(5_000, c);
    expect(asg.calls.filter((x) => x.startsWith('terminate'))).toEqual(['terminate web-3 keep']);
    reportCpu('web-1', 10);
    reportCpu('web-2', 10);
    await step(1_000, c);
    expect(asg.calls.filter((x) => x.startsWith('terminate')).at(-1)).toMatch(/^terminate web-[12] decrement$/);
    expect(asg.calls).not.toContain('launch');
  });
});

describe('groups and policies live in the store', () => {
  const groups = () => new GroupStore(db);

  it('config seeds a group only when it does not exist: a restart keeps an operator\'s change', async () => {
    const g = groups().get('web');
    groups().apply({ id: 'web', minSize: 2, maxSize: 8, policy: g!.policy }, 'ops', clock.now());
    makeController(); // a restart with the same env config
    expect(groups().get('web')).toMatchObject({ minSize: 2, maxSize: 8, revision: 2 });
    expect(groups().events('web', 5).map((e) => [e.kind, e.actor, e.message])).toEqual([
      ['applied', 'ops', 'revision 2: minSize 1 → 2, maxSize 4 → 8'],
      ['created', 'controller (config)', 'created: min 1 max 4'],
    ]);
  });

  it('one controller evaluates every group in the store', async () => {
    const g = groups().get('web')!;
    groups().apply({ id: 'api', minSize: 2, maxSize: 3, policy: g.policy }, 'ops', clock.now());
    monitorBeat();
    await controller.tick();
    expect(launches()).toEqual(['launch 2 tok-1', 'launch 1 tok-2']); // api (2), then web (1): by id
    expect(instances.listGroup('api')).toHaveLength(2);
  });

  it('a policy change applies at the next evaluation', async () => {
    monitorBeat();
    await controller.tick();
    reportCpu('web-1', 70);
    await step(1_000);
    expect(reasons().at(-1)).toBe('ScaleOut'); // 70 vs 50
    reportCpu('web-1', 70);
    reportCpu('web-2', 35);
    const g = groups().get('web')!;
    groups().apply({ ...g, policy: { ...g.policy, targetTracking: [{ metric: 'cpu', target: 80, toleranceUp: 0.1, toleranceDown: 0.1 }] } }, 'ops', clock.now());
    await step(1_000);
    expect(events.recentDecisions('web', 1)[0]?.message).toContain('target 80%');
  });

  it('a restart keeps the stabilization history: the next decision is the one it would have been', async () => {
    const g = groups().get('web')!;
    groups().apply({ ...g, policy: { ...g.policy, behavior: { ...g.policy.behavior, scaleDown: { ...g.policy.behavior.scaleDown, stabilizationMs: 60_000 } } } }, 'ops', clock.now());
    provider.add('web', 'x');
    provider.add('web', 'x');
    provider.add('web', 'x');
    monitorBeat();
    await controller.tick();
    for (const id of ['web-1', 'web-2', 'web-3']) reportCpu(id, 50);
    await step(1_000); // recommendation 3
    for (const id of ['web-1', 'web-2', 'web-3']) reportCpu(id, 10);
    const restarted = makeController(); // the old controller is gone; its state is in the store
    await step(10_000, restarted);
    expect(events.recentDecisions('web', 1)[0]).toMatchObject({ reason: 'ScaleInStabilized', to: 3 });
  });

  it('saturation: at 100 % with capacity on its way, scale out anyway at the highest allowed rate', async () => {
    const g = groups().get('web')!;
    groups().apply({ ...g, maxSize: 20 }, 'ops', clock.now());
    for (let n = 0; n < 4; n++) provider.add('web', 'x');
    monitorBeat();
    await controller.tick();
    for (const id of ['web-1', 'web-2', 'web-3', 'web-4']) reportCpu(id, 100);
    await step(1_000);
    expect(events.recentDecisions('web', 1)[0]).toMatchObject({ from: 4, to: 8 }); // 100/50 → ×2 anyway
    for (const id of ['web-1', 'web-2', 'web-3', 'web-4']) reportCpu(id, 100);
    await step(16_000); // 4 launching, the ready ones still at 100 %: not held
    expect(events.recentDecisions('web', 1)[0]).toMatchObject({ reason: 'Saturated', from: 8, to: 16 });
  });

  it('dry-run records what it would do and does nothing', async () => {
    groups().setDryRun('web', true, clock.now(), 'ops');
    monitorBeat();
    await controller.tick();
    expect(events.recentDecisions('web', 1)[0]).toMatchObject({ from: 0, to: 0, message: expect.stringMatching(/^dry-run, would go 0 → 1/) });
    expect(launches()).toEqual([]);
  });

  it('a manual capacity for a while wins over the policies, then they decide again', async () => {
    monitorBeat();
    await controller.tick();
    reportCpu('web-1', 50);
    groups().setOverride('web', { desired: 3, until: clock.now() + 60_000 }, clock.now(), 'ops');
    await step(1_000);
    expect(events.recentDecisions('web', 1)[0]).toMatchObject({ reason: 'ManualOverride', to: 3 });
    clock.advance(61_000);
    for (const id of rows().map((r) => r.id)) reportCpu(id, 5);
    await step(0);
    expect(events.recentDecisions('web', 1)[0]).toMatchObject({ reason: 'ScaleIn', from: 3, to: 1 });
  });
});

describe('dry-run leaves no trace in the policy state', () => {
  it('a dry run spends no rate-limit allowance: turned off, the group scales at once', async () => {
    const groups = new GroupStore(db);
    for (let n = 0; n < 2; n++) provider.add('web', 'x');
    monitorBeat();
    await controller.tick();
    groups.setDryRun('web', true, clock.now(), 'ops');
    for (const id of ['web-1', 'web-2']) reportCpu(id, 80);
    await step(1_000);
    expect(events.recentDecisions('web', 1)[0]?.message).toMatch(/^dry-run, would go 2 → 4/);
    groups.setDryRun('web', false, clock.now(), 'ops');
    for (const id of ['web-1', 'web-2']) reportCpu(id, 80);
    await step(1_000);
    expect(events.recentDecisions('web', 1)[0]).toMatchObject({ reason: 'ScaleOut', from: 2, to: 4 });
  });
});

describe('event log retention', () => {
  it('prunes decisions, activities and operator changes older than CONTROLLER_HISTORY_RETENTION_MS, and keeps newer ones', async () => {
    const c = loadControllerConfig({ env: { ...env, CONTROLLER_HISTORY_RETENTION_MS: String(86_400_000) } });
    const ctl = makeController(c);
    const old = clock.now();
    events.recordDecision('web', { current: 1, desired: 1, reason: 'WithinTolerance', message: 'old', trail: [], details: {} }, old);
    events.recordActivity({ ts: old, groupId: 'web', instanceId: 'x', action: 'launch', cause: 'old', outcome: 'ok', error: null });
    new GroupStore(db).setPaused('web', false, old, 'ops', 'old');
    // A day and a bit later (the prune runs at most every 10 minutes).
    await step(86_400_000 + 11 * 60_000, ctl);
    events.recordDecision('web', { current: 1, desired: 1, reason: 'WithinTolerance', message: 'new', trail: [], details: {} }, clock.now());
    await step(11 * 60_000, ctl);
    const messages = events.recentDecisions('web', 1_000).map((d) => d.message);
    expect(messages).not.toContain('old');
    expect(messages).toContain('new');
    expect(events.recentActivities('web', 1_000).map((a) => a.cause)).not.toContain('old');
    expect(new GroupStore(db).events('web', 1_000).map((e) => e.message)).not.toContain('resumed: old');
  });

  it('refuses a retention under a day, naming the key', () => {
    expect(configProblems(() => loadControllerConfig({ env: { ...env, CONTROLLER_HISTORY_RETENTION_MS: '1000' } })).join('\n')).toContain('CONTROLLER_HISTORY_RETENTION_MS');
  });
});
