/**
 * The controller's loop driving the real AWS providers, whose real SDK clients talk to the
 * loopback EC2 and Auto Scaling fakes. One manual clock moves the controller and the fakes
 * together, so minutes of boot time and listing lag take milliseconds. The monitor server's side
 * of the store (its heartbeat, agent registrations, samples) is written directly, as in
 * controller/loop.test.ts.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadControllerConfig } from '../config/controller.js';
import { Controller } from '../controller/loop.js';
import { AsgProvider } from '../controller/providers/aws-asg.js';
import { Ec2Provider } from '../controller/providers/aws-ec2.js';
import type { InstanceProvider } from '../controller/providers/types.js';
import { ManualClock, captureLogger } from '../lib/testing.js';
import { ComponentStore } from '../store/components.js';
import { openStore, type Db } from '../store/db.js';
import { EventStore } from '../store/events.js';
import { InstanceStore } from '../store/instances.js';
import { TelemetryStore } from '../store/telemetry.js';
import { startFakeAutoScaling, type FakeAutoScaling } from './fake-aws/autoscaling.js';
import { startFakeEc2, type FakeEc2Options } from './fake-aws/ec2.js';

const credentials = { accessKeyId: 'test', secretAccessKey: 'test' };
const TEMPLATE = 'lt-0123456789abcdef0';
const INTERVAL = 5_000;

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

interface Harness {
  readonly db: Db;
  readonly clock: ManualClock;
  readonly controller: Controller;
  readonly instances: InstanceStore;
  readonly events: EventStore;
  /** Advance the clock, keep the monitor fresh, evaluate once. */
  step(ms?: number): Promise<void>;
  /** Every instance of the group registers (if new) and reports this CPU. */
  report(cpu: number, ids?: readonly string[]): void;
  reasons(): string[];
}

function harness(clock: ManualClock, provider: InstanceProvider, env: Record<string, string>): Harness {
  const db = openStore(join(mkdtempSync(join(tmpdir(), 'autoscaler-aws-')), 'a.db'));
  cleanup.push(() => { db.close(); });
  const cfg = loadControllerConfig({ env: {
    GROUP_ID: 'web', GROUP_MIN_SIZE: '1', GROUP_MAX_SIZE: '6', GROUP_SCALE_IN_STABILIZATION_MS: '0', CONTROLLER_INTERVAL_MS: String(INTERVAL),
    AWS_REGION: 'us-east-1', ...env,
  } });
  const controller = new Controller(cfg, db, provider, clock, captureLogger('warn').log);
  controller.init();
  cleanup.push(() => provider.close());
  const instances = new InstanceStore(db);
  const events = new EventStore(db);
  const telemetry = new TelemetryStore(db);
  let seq = 0;
  const beat = () => new ComponentStore(db).beat({ name: 'monitor-server', pid: 1, startedAt: 0, info: {} }, clock.now());
  return {
    db, clock, controller, instances, events,
    async step(ms = INTERVAL) {
      clock.advance(ms);
      beat();
      await controller.tick();
    },
    report(cpu, ids) {
      for (const i of instances.listGroup('web').filter((r) => ids === undefined || ids.includes(r.id))) {
        if (i.state === 'terminating') continue;
        if (i.state !== 'running') instances.register({ id: i.id, groupId: 'web', address: '', agentVersion: 'test' }, clock.now());
        telemetry.writeBatch([{ instanceId: i.id, seq: ++seq, sampleAt: clock.now(), receivedAt: clock.now(), cpu, mem: 10 }]);
      }
    },
    reasons: () => events.recentDecisions('web', 200).map((d) => d.reason).reverse(),
  };
}

async function ec2Harness(fakeOpts: FakeEc2Options, env: Record<string, string> = {}, ec2Opts: { instanceTypes?: string[] } = {}) {
  const clock = new ManualClock();
  const ec2 = await startFakeEc2({ now: () => clock.now(), ...fakeOpts });
  cleanup.push(() => ec2.close());
  ec2.addLaunchTemplate({ id: TEMPLATE, name: 'web', instanceType: 'm7g.large' });
  ec2.addSubnet({ id: 'subnet-0aaaaaaaaaaaaaaa1', zone: 'us-east-1a' });
  ec2.addSubnet({ id: 'subnet-0bbbbbbbbbbbbbbb2', zone: 'us-east-1b' });
  const provider = new Ec2Provider({
    aws: { region: 'us-east-1', endpoint: ec2.endpoint, maxAttempts: 3 }, credentials,
    launchTemplate: { id: TEMPLATE, name: '', version: '$Default' }, instanceTypes: ec2Opts.instanceTypes ?? [],
    subnetIds: ['subnet-0aaaaaaaaaaaaaaa1', 'subnet-0bbbbbbbbbbbbbbb2'], tags: {}, log: captureLogger('warn').log,
  });
  const h = harness(clock, provider, { CONTROLLER_PROVIDER: 'aws-ec2', EC2_LAUNCH_TEMPLATE_ID: TEMPLATE, ...env });
  const live = () => ec2.instances().filter((i) => i.state === 'pending' || i.state === 'running');
  return { ...h, ec2, live, runs: () => ec2.calls.filter((c) => c.action === 'RunInstances' && c.params.get('DryRun') !== 'true') };
}

describe('controller + aws-ec2 (real SDK, loopback EC2)', () => {
  it('a 10 s listing lag: no duplicate launch, no false "gone"', async () => {
    const h = await ec2Harness({ pendingMs: 30_000, listingLagMs: 10_000 }, { GROUP_MIN_SIZE: '2', CONTROLLER_BOOT_TIMEOUT_MS: '600000', CONTROLLER_LISTING_GRACE_MS: '120000' });
    for (let t = 0; t < 6; t++) await h.step(3_000);
    expect(h.runs()).toHaveLength(1);
    expect(h.live()).toHaveLength(2);
    expect(h.instances.listGroup('web').map((r) => r.state)).toEqual(['pending', 'pending']);
    expect(h.reasons()).not.toContain('ReplaceUnhealthy');
  });

  it('boots of 3 minutes with the AWS defaults: no freeze, the group reaches its desired size', async () => {
    const h = await ec2Harness({ pendingMs: 170_000, listingLagMs: 5_000 }, { GROUP_MIN_SIZE: '2' }); // default boot timeout 600 s
    await h.step();
    h.report(90);
    for (let t = 0; t < 36; t++) await h.step(); // 3 minutes; only the first two report until the rest boot
    h.report(50);
    await h.step();
    expect(h.reasons()).not.toContain('ReplaceUnhealthy');
    const rows = h.instances.listGroup('web');
    expect(rows.map((r) => r.id).sort()).toEqual(h.live().map((i) => i.id).sort());
    expect(rows.length).toBeGreaterThanOrEqual(3);
    expect(rows.every((r) => r.state === 'running')).toBe(true);
    expect(h.reasons().at(-1)).toBe('WithinTolerance');
  });

  it('the old contract\'s freeze is gone: boots longer than a 60 s timeout would have been killed forever', async () => {
    const h = await ec2Harness({ pendingMs: 1_000 }, { GROUP_MIN_SIZE: '1', CONTROLLER_BOOT_TIMEOUT_MS: '60000' });
    await h.step();
    for (let t = 0; t < 13; t++) await h.step(); // 65 s: the agent has not registered
    expect(h.reasons()).toContain('ReplaceUnhealthy'); // a boot timeout still replaces…
    h.report(50);
    await h.step();
    expect(h.runs()).toHaveLength(2); // …once, and the replacement is kept once it registers
    for (let t = 0; t < 20; t++) await h.step();
    h.report(50);
    await h.step();
    expect(h.runs()).toHaveLength(2);
  });

  it('throttled, then accepted: the SDK retries, one set of instances', async () => {
    const h = await ec2Harness({});
    h.ec2.failNext('RunInstances', 'RequestLimitExceeded', 2);
    await h.step();
    expect(h.ec2.calls.filter((c) => c.action === 'RunInstances').length).toBeGreaterThanOrEqual(3);
    expect(h.live()).toHaveLength(1);
    expect(h.events.recentActivities('web', 5)[0]).toMatchObject({ action: 'launch', outcome: 'ok' });
  });

  it('throttled beyond the retries: recorded with its code, the controller backs off, then launches once', async () => {
    const h = await ec2Harness({});
    h.ec2.failNext('RunInstances', 'RequestLimitExceeded', 3);
    await h.step();
    expect(h.events.recentActivities('web', 5)[0]).toMatchObject({ action: 'launch', outcome: 'failed', error: expect.stringContaining('Throttled') });
    await h.step(1_000);
    expect(h.reasons().at(-1)).toBe('ProviderBackoff');
    await h.step();
    expect(h.live()).toHaveLength(1);
  });

  it('InsufficientInstanceCapacity for the first type: launched with the next one', async () => {
    const h = await ec2Harness({ insufficientCapacity: new Set(['m7g.large']) }, {}, { instanceTypes: ['m7g.large', 'm6g.large'] });
    await h.step();
    expect(h.live().map((i) => i.instanceType)).toEqual(['m6g.large']);
    expect(h.instances.listGroup('web')[0]).toMatchObject({ instanceType: 'm6g.large', state: 'pending' });
  });

  it('UnauthorizedOperation: a clear error naming the IAM action, as an activity and a log line', async () => {
    const h = await ec2Harness({});
    h.ec2.failNext('RunInstances', 'UnauthorizedOperation', 10);
    await h.step();
    const a = h.events.recentActivities('web', 5)[0];
    expect(a).toMatchObject({ action: 'launch', outcome: 'failed' });
    expect(a?.error).toMatch(/^PermissionDenied: ec2:RunInstances was refused \(UnauthorizedOperation\): allow ec2:RunInstances/);
    expect(h.live()).toHaveLength(0);
  });

  it('an instance EC2 ends on its own (spot interruption) is replaced', async () => {
    const h = await ec2Harness({ terminateMs: 1_000 });
    await h.step();
    h.report(50);
    const [victim] = h.live();
    h.ec2.interrupt(victim?.id ?? '', 'Server.SpotInstanceTermination');
    await h.step();
    const replace = h.events.recentDecisions('web', 5).find((d) => d.reason === 'ReplaceUnhealthy');
    expect(replace?.message).toContain(`${victim?.id} dead (instance gone`);
    expect(h.live().filter((i) => i.id !== victim?.id)).toHaveLength(1);
  });
});

describe('controller + aws-asg (real SDK, loopback Auto Scaling)', () => {
  async function asgHarness(desired: number, env: Record<string, string> = {}) {
    const clock = new ManualClock();
    const fake: FakeAutoScaling = await startFakeAutoScaling({ now: () => clock.now(), pendingMs: 60_000, terminateMs: 10_000 });
    cleanup.push(() => fake.close());
    fake.addGroup({ name: 'web-asg', min: 0, max: 10, desired, zones: ['us-east-1a', 'us-east-1b'] });
    const provider = new AsgProvider({ aws: { region: 'us-east-1', endpoint: fake.endpoint, maxAttempts: 2 }, credentials, asgName: () => 'web-asg', log: captureLogger('warn').log });
    await provider.verify('web', { minSize: 1, maxSize: 6 });
    const h = harness(clock, provider, { CONTROLLER_PROVIDER: 'aws-asg', ASG_NAME: 'web-asg', ...env });
    return { ...h, fake, calls: (action: string) => fake.calls.filter((c) => c.action === action) };
  }

  it('end to end: adopt the ASG\'s instances, scale out by desired capacity, scale in by chosen victims with decrement', async () => {
    const h = await asgHarness(2);
    await h.step();
    expect(h.instances.listGroup('web').map((r) => r.origin)).toEqual(['adopted', 'adopted']);
    h.report(80);
    await h.step();
    expect(h.calls('SetDesiredCapacity').map((c) => c.params.get('DesiredCapacity'))).toEqual(['4']);
    await h.step(); // the ASG launched two: adopted, pending
    expect(h.instances.listGroup('web')).toHaveLength(4);
    h.clock.advance(60_000);
    h.report(20);
    await h.step();
    const terminations = h.calls('TerminateInstanceInAutoScalingGroup');
    expect(terminations.length).toBeGreaterThanOrEqual(1);
    expect(terminations.every((c) => c.params.get('ShouldDecrementDesiredCapacity') === 'true')).toBe(true);
    expect(h.fake.group('web-asg')?.desired).toBe(4 - terminations.length);
    expect(h.events.recentActivities('web', 20).find((a) => a.action === 'terminate')?.cause).toMatch(/az-balance-oldest: i-/);
  });

  it('a dead instance is terminated without decrement: the ASG launches the replacement', async () => {
    const h = await asgHarness(2, { CONTROLLER_UNREACHABLE_REPLACE_MS: '0' });
    await h.step();
    h.report(50);
    const [dead] = h.instances.listGroup('web');
    h.instances.setLiveness(dead?.id ?? '', 'dead', 'no heartbeat for 9000 ms', h.clock.now());
    await h.step();
    const t = h.calls('TerminateInstanceInAutoScalingGroup');
    expect(t.map((c) => [c.params.get('InstanceId'), c.params.get('ShouldDecrementDesiredCapacity')])).toEqual([[dead?.id, 'false']]);
    expect(h.fake.group('web-asg')?.desired).toBe(2);
    await h.step();
    expect(h.instances.listGroup('web').filter((r) => r.state === 'pending' && r.origin === 'adopted')).toHaveLength(1);
  });

  it('an instance refresh holds every action', async () => {
    const h = await asgHarness(1);
    h.fake.setInstanceRefresh('web-asg', 'InProgress');
    await h.step();
    h.report(100);
    await h.step();
    expect(h.reasons().at(-1)).toBe('ProviderBlocked');
    expect(h.calls('SetDesiredCapacity')).toEqual([]);
  });
});
