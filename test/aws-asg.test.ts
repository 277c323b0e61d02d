/**
 * The aws-asg provider with the real @aws-sdk/client-auto-scaling against the loopback Auto
 * Scaling fake (test/fake-aws/autoscaling.ts). Static credentials, endpoint on 127.0.0.1.
 */
import { AutoScalingClient, paginateDescribeAutoScalingGroups, ResumeProcessesCommand, SuspendProcessesCommand } from '@aws-sdk/client-auto-scaling';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AsgProvider, type AsgProviderOptions } from '../controller/providers/aws-asg.js';
import { ProviderError } from '../controller/providers/types.js';
import { captureLogger, ManualClock, waitFor } from '../lib/testing.js';
import { startFakeAutoScaling, type FakeAsgInstance, type FakeAutoScaling } from './fake-aws/autoscaling.js';

const credentials = { accessKeyId: 'test', secretAccessKey: 'test' };
const ASG = 'web-asg';

let clock: ManualClock;
let fake: FakeAutoScaling;
let capture: ReturnType<typeof captureLogger>;
let provider: AsgProvider;

function makeProvider(over: Partial<AsgProviderOptions> = {}): AsgProvider {
  return new AsgProvider({
    aws: { region: 'eu-west-1', endpoint: fake.endpoint, maxAttempts: 2 },
    credentials,
    asgName: (groupId) => `${groupId}-asg`,
    log: capture.log,
    ...over,
  });
}

function actions(name: string): number {
  return fake.calls.filter((c) => c.action === name).length;
}

async function rejection(p: Promise<unknown>): Promise<ProviderError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(ProviderError);
  return err as ProviderError;
}

beforeEach(async () => {
  clock = new ManualClock();
  fake = await startFakeAutoScaling({ now: () => clock.now(), pendingMs: 1_000, terminateMs: 1_000 });
  capture = captureLogger();
  provider = makeProvider();
});

afterEach(async () => {
  await provider.close();
  await fake.close();
});

describe('AsgProvider.list', () => {
  it.each([
    { name: 'Pending is pending', lifecycleState: 'Pending', want: 'pending' },
    { name: 'Pending:Wait (lifecycle hook) is pending', lifecycleState: 'Pending:Wait', want: 'pending' },
    { name: 'Pending:Proceed is pending', lifecycleState: 'Pending:Proceed', want: 'pending' },
    { name: 'InService is running', lifecycleState: 'InService', want: 'running' },
    { name: 'InService but Unhealthy is running, detail says so', lifecycleState: 'InService', health: 'Unhealthy', want: 'running', detail: /Unhealthy/ },
    { name: 'Terminating is terminating', lifecycleState: 'Terminating', want: 'terminating' },
    { name: 'Terminating:Wait is terminating', lifecycleState: 'Terminating:Wait', want: 'terminating' },
    { name: 'Terminating:Proceed is terminating', lifecycleState: 'Terminating:Proceed', want: 'terminating' },
    { name: 'Detaching is terminating', lifecycleState: 'Detaching', want: 'terminating' },
    { name: 'EnteringStandby is terminating', lifecycleState: 'EnteringStandby', want: 'terminating' },
    { name: 'Terminated is gone', lifecycleState: 'Terminated', want: 'gone' },
    { name: 'Detached is gone', lifecycleState: 'Detached', want: 'gone' },
    { name: 'Standby is gone', lifecycleState: 'Standby', want: 'gone' },
    { name: 'Warmed:Stopped (warm pool) is not listed', lifecycleState: 'Warmed:Stopped', want: undefined },
    { name: 'Warmed:Running (warm pool) is not listed', lifecycleState: 'Warmed:Running', want: undefined },
  ])('$name', async ({ lifecycleState, health, want, detail }) => {
    const g = fake.addGroup({ name: ASG, min: 0, max: 4, desired: 1, zones: ['eu-west-1c'] });
    // No replacements or removals while states are forced.
    fake.suspend(ASG, 'Launch');
    fake.suspend(ASG, 'Terminate');
    const id = g.instances[0]!.id;
    fake.setInstance(ASG, id, { lifecycleState, ...(health ? { health } : {}) });
    const listing = await provider.list('web');
    const inst = listing.instances.find((i) => i.id === id);
    expect(inst?.state).toBe(want);
    if (want !== undefined) {
      expect(inst).toMatchObject({ groupId: 'web', zone: 'eu-west-1c', instanceType: 't3.micro' });
      expect(inst?.detail).toMatch(detail ?? new RegExp(`^${lifecycleState}$`));
    }
  });

  it('reports the ASG capacity and the instances of an existing group, ids like i-0123456789abcdef0', async () => {
    fake.addGroup({ name: ASG, min: 1, max: 5, desired: 2 });
    const listing = await provider.list('web');
    expect(listing.capacity).toEqual({ desired: 2, min: 1, max: 5 });
    expect(listing.blocked).toBeUndefined();
    expect(listing.instances.map((i) => i.state)).toEqual(['running', 'running']);
    for (const i of listing.instances) expect(i.id).toMatch(/^i-[0-9a-f]{17}$/);
    expect(new Set(listing.instances.map((i) => i.zone))).toEqual(new Set(['eu-west-1a', 'eu-west-1b']));
  });

  it('uses the group id as the ASG name by default', async () => {
    fake.addGroup({ name: 'web', min: 0, max: 2, desired: 1 });
    const plain = makeProvider({ asgName: undefined });
    try {
      expect((await plain.list('web')).instances).toHaveLength(1);
    } finally {
      await plain.close();
    }
  });

  it('a missing ASG is NotFound', async () => {
    const err = await rejection(provider.list('web'));
    expect(err).toMatchObject({ code: 'NotFound', groupId: 'web', retryable: false });
  });

  it.each([
    { name: 'Launch suspended blocks', act: (f: FakeAutoScaling) => f.suspend(ASG, 'Launch'), want: /^process Launch is suspended on ASG web-asg$/ },
    { name: 'Terminate suspended blocks', act: (f: FakeAutoScaling) => f.suspend(ASG, 'Terminate'), want: /^process Terminate is suspended on ASG web-asg$/ },
    { name: 'AlterDesiredCapacity suspended blocks', act: (f: FakeAutoScaling) => f.suspend(ASG, 'AlterDesiredCapacity'), want: /process AlterDesiredCapacity is suspended/ },
    { name: 'an instance refresh in progress blocks', act: (f: FakeAutoScaling) => f.setInstanceRefresh(ASG, 'InProgress'), want: /^instance refresh \S+ is InProgress on ASG web-asg$/ },
    { name: 'a pending instance refresh blocks', act: (f: FakeAutoScaling) => f.setInstanceRefresh(ASG, 'Pending'), want: /instance refresh \S+ is Pending/ },
    { name: 'a cancelling instance refresh blocks', act: (f: FakeAutoScaling) => f.setInstanceRefresh(ASG, 'Cancelling'), want: /instance refresh \S+ is Cancelling/ },
    { name: 'a group being deleted blocks', act: (f: FakeAutoScaling) => f.setStatus(ASG, 'Delete in progress'), want: /^ASG web-asg is "Delete in progress"$/ },
    { name: 'HealthCheck suspended does not block', act: (f: FakeAutoScaling) => f.suspend(ASG, 'HealthCheck'), want: undefined },
    { name: 'a finished instance refresh does not block', act: (f: FakeAutoScaling) => f.setInstanceRefresh(ASG, 'Successful'), want: undefined },
  ])('$name', async ({ act, want }) => {
    fake.addGroup({ name: ASG, min: 0, max: 4, desired: 1 });
    act(fake);
    const { blocked } = await provider.list('web');
    if (want === undefined) expect(blocked).toBeUndefined();
    else expect(blocked).toMatch(want);
  });
});

describe('AsgProvider scaling', () => {
  it('setDesired 2→4: the ASG launches 2, listed pending then running', async () => {
    fake.addGroup({ name: ASG, min: 1, max: 6, desired: 2 });
    const before = new Set((await provider.list('web')).instances.map((i) => i.id));
    await provider.setDesiredCapacity({ groupId: 'web', desired: 4 });
    const sent = fake.calls.find((c) => c.action === 'SetDesiredCapacity')!.params;
    expect({ desired: sent.get('DesiredCapacity'), honor: sent.get('HonorCooldown') }).toEqual({ desired: '4', honor: 'false' });

    const pending = await provider.list('web');
    expect(pending.capacity?.desired).toBe(4);
    const added = pending.instances.filter((i) => !before.has(i.id));
    expect(added.map((i) => i.state)).toEqual(['pending', 'pending']);

    clock.advance(1_000);
    const running = await provider.list('web');
    expect(running.instances.map((i) => i.state)).toEqual(['running', 'running', 'running', 'running']);
  });

  it('setDesired outside the ASG bounds is InvalidRequest (ValidationError)', async () => {
    fake.addGroup({ name: ASG, min: 1, max: 3, desired: 2 });
    const err = await rejection(provider.setDesiredCapacity({ groupId: 'web', desired: 5 }));
    expect(err).toMatchObject({ code: 'InvalidRequest', retryable: false, details: { cloudCode: 'ValidationError', action: 'autoscaling:SetDesiredCapacity' } });
  });

  it('terminate with decrement: desired drops and nothing replaces the instance', async () => {
    const g = fake.addGroup({ name: ASG, min: 1, max: 4, desired: 3 });
    const victim = g.instances[1]!.id;
    const res = await provider.terminate({ groupId: 'web', ids: [victim], decrement: true });
    expect(res).toEqual({ accepted: [victim], failed: [] });
    expect(fake.calls.find((c) => c.action === 'TerminateInstanceInAutoScalingGroup')!.params.get('ShouldDecrementDesiredCapacity')).toBe('true');

    const during = await provider.list('web');
    expect(during.capacity?.desired).toBe(2);
    expect(during.instances.find((i) => i.id === victim)?.state).toBe('terminating');
    clock.advance(1_000);
    const after = await provider.list('web');
    expect(after.instances.map((i) => i.id).sort()).toEqual([g.instances[0]!.id, g.instances[2]!.id].sort());
  });

  it('terminate without decrement: the ASG launches a replacement', async () => {
    const g = fake.addGroup({ name: ASG, min: 1, max: 4, desired: 2 });
    const victim = g.instances[0]!.id;
    const res = await provider.terminate({ groupId: 'web', ids: [victim], decrement: false });
    expect(res.accepted).toEqual([victim]);
    const listing = await provider.list('web');
    expect(listing.capacity?.desired).toBe(2);
    const fresh = listing.instances.filter((i) => !g.instances.some((o) => o.id === i.id));
    expect(fresh.map((i) => i.state)).toEqual(['pending']);
    expect(listing.instances.find((i) => i.id === victim)?.state).toBe('terminating');
  });

  it('an id not in the group is accepted without a call', async () => {
    fake.addGroup({ name: ASG, min: 0, max: 4, desired: 1 });
    const res = await provider.terminate({ groupId: 'web', ids: ['i-0ffffffffffffffff'], decrement: true });
    expect(res).toEqual({ accepted: ['i-0ffffffffffffffff'], failed: [] });
    expect(actions('TerminateInstanceInAutoScalingGroup')).toBe(0);
  });

  it('an instance that leaves the group between the listing and the call is accepted', async () => {
    const g = fake.addGroup({ name: ASG, min: 0, max: 4, desired: 1 });
    fake.suspend(ASG, 'Launch');
    const id = g.instances[0]!.id;
    const release = fake.hold('TerminateInstanceInAutoScalingGroup');
    const done = provider.terminate({ groupId: 'web', ids: [id], decrement: false });
    try {
      await waitFor('the termination call', () => fake.inFlight('TerminateInstanceInAutoScalingGroup') === 1);
      // Someone else terminates it meanwhile; the held call then meets an unknown id (ValidationError).
      fake.setInstance(ASG, id, { lifecycleState: 'Terminating' });
      clock.advance(1_000);
      fake.poll();
    } finally {
      release();
    }
    expect(await done).toEqual({ accepted: [id], failed: [] });
    expect(actions('TerminateInstanceInAutoScalingGroup')).toBe(1);
  });

  it('a refused termination is failed with its error, the others accepted', async () => {
    const g = fake.addGroup({ name: ASG, min: 0, max: 4, desired: 2 });
    fake.failNext('TerminateInstanceInAutoScalingGroup', 'AccessDenied');
    const ids = g.instances.map((i) => i.id);
    const serial = makeProvider({ terminateConcurrency: 1 });
    const res = await serial.terminate({ groupId: 'web', ids, decrement: true }).finally(() => serial.close());
    expect(res.accepted).toEqual([ids[1]]);
    expect(res.failed.map((f) => ({ id: f.id, code: f.error.code }))).toEqual([{ id: ids[0], code: 'PermissionDenied' }]);
  });

  it('the terminate concurrency bound holds', async () => {
    const g = fake.addGroup({ name: ASG, min: 0, max: 10, desired: 6 });
    const bounded = makeProvider({ terminateConcurrency: 2 });
    const release = fake.hold('TerminateInstanceInAutoScalingGroup');
    const ids = g.instances.map((i) => i.id);
    const done = bounded.terminate({ groupId: 'web', ids, decrement: true });
    try {
      await waitFor('two terminations in flight', () => fake.inFlight('TerminateInstanceInAutoScalingGroup') >= 2);
    } finally {
      release();
    }
    const res = await done;
    await bounded.close();
    expect(res.accepted.slice().sort()).toEqual(ids.slice().sort());
    expect(actions('TerminateInstanceInAutoScalingGroup')).toBe(6);
    expect(fake.peakInFlight('TerminateInstanceInAutoScalingGroup')).toBe(2);
  });

  it('launch is a programmer error: the cloud owns launches', async () => {
    await expect(provider.launch()).rejects.toBeInstanceOf(TypeError);
  });
});

describe('AsgProvider errors', () => {
  it('throttling then success: the SDK retries', async () => {
    fake.addGroup({ name: ASG, min: 0, max: 4, desired: 1 });
    fake.failNext('DescribeAutoScalingGroups', 'Throttling');
    expect((await provider.list('web')).instances).toHaveLength(1);
    expect(actions('DescribeAutoScalingGroups')).toBe(2);
    expect(capture.lines).toContainEqual(expect.objectContaining({ level: 40, action: 'autoscaling:DescribeAutoScalingGroups', attempts: 2, msg: 'aws call succeeded after retries' }));
  });

  it('throttling past maxAttempts is a retryable Throttled, logged at warn', async () => {
    fake.addGroup({ name: ASG, min: 0, max: 4, desired: 1 });
    fake.failNext('SetDesiredCapacity', 'Throttling', 2);
    const err = await rejection(provider.setDesiredCapacity({ groupId: 'web', desired: 2 }));
    expect(err).toMatchObject({ code: 'Throttled', retryable: true, details: { cloudCode: 'Throttling' } });
    expect(capture.lines).toContainEqual(expect.objectContaining({ level: 40, action: 'autoscaling:SetDesiredCapacity', cloudCode: 'Throttling', msg: 'aws api throttled' }));
  });

  it('AccessDenied is PermissionDenied naming the IAM action', async () => {
    fake.addGroup({ name: ASG, min: 0, max: 4, desired: 1 });
    fake.failNext('SetDesiredCapacity', 'AccessDenied');
    const err = await rejection(provider.setDesiredCapacity({ groupId: 'web', desired: 2 }));
    expect(err).toMatchObject({ code: 'PermissionDenied', retryable: false, details: { action: 'autoscaling:SetDesiredCapacity' } });
    expect(err.message).toContain('autoscaling:SetDesiredCapacity');
  });

  it('ScalingActivityInProgress is a retryable Conflict', async () => {
    const g = fake.addGroup({ name: ASG, min: 0, max: 4, desired: 1 });
    fake.failNext('TerminateInstanceInAutoScalingGroup', 'ScalingActivityInProgress');
    const res = await provider.terminate({ groupId: 'web', ids: [g.instances[0]!.id], decrement: true });
    expect(res.failed.map((f) => ({ code: f.error.code, retryable: f.error.retryable }))).toEqual([{ code: 'Conflict', retryable: true }]);
  });
});

describe('AsgProvider.verify', () => {
  it('a missing ASG is NotFound naming ASG_NAME and the name', async () => {
    const err = await rejection(provider.verify('web', { minSize: 1, maxSize: 2 }));
    expect(err.code).toBe('NotFound');
    expect(err.message).toContain('ASG_NAME');
    expect(err.message).toContain('web-asg');
  });

  it.each([
    { name: 'our max above the ASG max', bounds: { minSize: 1, maxSize: 6 }, want: ['GROUP_MAX_SIZE=6', 'MaxSize 4'], not: 'GROUP_MIN_SIZE' },
    { name: 'our min below the ASG min', bounds: { minSize: 0, maxSize: 4 }, want: ['GROUP_MIN_SIZE=0', 'MinSize 1'], not: 'GROUP_MAX_SIZE' },
    { name: 'both outside', bounds: { minSize: 0, maxSize: 9 }, want: ['GROUP_MIN_SIZE=0', 'GROUP_MAX_SIZE=9'], not: undefined },
  ])('$name is InvalidRequest', async ({ bounds, want, not }) => {
    fake.addGroup({ name: ASG, min: 1, max: 4, desired: 1 });
    const err = await rejection(provider.verify('web', bounds));
    expect(err).toMatchObject({ code: 'InvalidRequest', retryable: false });
    for (const w of want) expect(err.message).toContain(w);
    if (not !== undefined) expect(err.message).not.toContain(not);
  });

  it('bounds inside the ASG pass', async () => {
    fake.addGroup({ name: ASG, min: 1, max: 4, desired: 1 });
    await expect(provider.verify('web', { minSize: 1, maxSize: 4 })).resolves.toBeUndefined();
    expect(actions('DescribeInstanceRefreshes')).toBe(1);
  });
});

describe('fake Auto Scaling wire format', () => {
  it('pages DescribeAutoScalingGroups with MaxRecords and NextToken', async () => {
    for (const name of ['a', 'b', 'c']) fake.addGroup({ name, min: 0, max: 2, desired: 1 });
    const client = new AutoScalingClient({ region: 'eu-west-1', endpoint: fake.endpoint, credentials, maxAttempts: 1 });
    try {
      const names: string[] = [];
      for await (const page of paginateDescribeAutoScalingGroups({ client, pageSize: 2 }, {})) {
        for (const g of page.AutoScalingGroups ?? []) names.push(g.AutoScalingGroupName ?? '');
      }
      expect(names).toEqual(['a', 'b', 'c']);
      expect(fake.calls.filter((c) => c.action === 'DescribeAutoScalingGroups').map((c) => c.params.get('MaxRecords'))).toEqual(['2', '2']);
    } finally {
      client.destroy();
    }
  });

  it('SuspendProcesses and ResumeProcesses through the SDK', async () => {
    fake.addGroup({ name: ASG, min: 0, max: 2, desired: 1 });
    const client = new AutoScalingClient({ region: 'eu-west-1', endpoint: fake.endpoint, credentials, maxAttempts: 1 });
    try {
      await client.send(new SuspendProcessesCommand({ AutoScalingGroupName: ASG, ScalingProcesses: ['Launch'] }));
      expect(fake.group(ASG).suspended).toEqual(['Launch']);
      expect((await provider.list('web')).blocked).toMatch(/process Launch is suspended/);
      await client.send(new ResumeProcessesCommand({ AutoScalingGroupName: ASG, ScalingProcesses: ['Launch'] }));
      expect(fake.group(ASG).suspended).toEqual([]);
    } finally {
      client.destroy();
    }
  });

  it('calls onLaunch for every instance it launches and onTerminate when one starts terminating', async () => {
    const launched: FakeAsgInstance[] = [];
    const terminated: FakeAsgInstance[] = [];
    const hooked = await startFakeAutoScaling({ now: () => clock.now(), onLaunch: (i) => launched.push(i), onTerminate: (i) => terminated.push(i) });
    try {
      const g = hooked.addGroup({ name: ASG, min: 0, max: 3, desired: 1 });
      const p = makeProvider({ aws: { region: 'eu-west-1', endpoint: hooked.endpoint, maxAttempts: 1 } });
      await p.setDesiredCapacity({ groupId: 'web', desired: 2 });
      await p.terminate({ groupId: 'web', ids: [g.instances[0]!.id], decrement: true });
      await p.close();
      expect(launched.map((i) => i.lifecycleState)).toEqual(['InService', 'Pending']);
      expect(terminated.map((i) => i.id)).toEqual([g.instances[0]!.id]);
    } finally {
      await hooked.close();
    }
  });
});
