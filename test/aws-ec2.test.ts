/**
 * The aws-ec2 provider with the real @aws-sdk/client-ec2 against the loopback EC2 fake: launch,
 * list (paging, lag, states), terminate, retries, capacity fallback, idempotency, verify.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Ec2Provider, ec2ClientToken, mapEc2State, type Ec2ProviderOptions } from '../controller/providers/aws-ec2.js';
import { ProviderError } from '../controller/providers/types.js';
import { captureLogger, ManualClock, waitFor } from '../lib/testing.js';
import { startFakeEc2, type FakeEc2, type FakeEc2Options, type FakeInstance } from './fake-aws/ec2.js';

const LT_ID = 'lt-0123456789abcdef0';
const LT_NAME = 'web-template';
const SUBNET_A = 'subnet-0aaaaaaaaaaaaaaa1';
const SUBNET_B = 'subnet-0bbbbbbbbbbbbbbb2';

const open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  for (const x of open.splice(0).reverse()) await x.close();
});

interface Setup {
  fake: FakeEc2;
  clock: ManualClock;
  lines: Record<string, unknown>[];
  provider: (over?: Partial<Ec2ProviderOptions>) => Ec2Provider;
}

async function setup(fakeOpts: FakeEc2Options = {}, maxAttempts = 3): Promise<Setup> {
  const clock = new ManualClock();
  const fake = await startFakeEc2({ now: () => clock.now(), ...fakeOpts });
  open.push(fake);
  fake.addLaunchTemplate({ id: LT_ID, name: LT_NAME, instanceType: 't3.micro', latestVersion: 3 });
  fake.addSubnet({ id: SUBNET_A, zone: 'us-east-1a' });
  fake.addSubnet({ id: SUBNET_B, zone: 'us-east-1b' });
  const { log, lines } = captureLogger();
  const provider = (over: Partial<Ec2ProviderOptions> = {}): Ec2Provider => {
    const p = new Ec2Provider({
      aws: { region: 'us-east-1', endpoint: fake.endpoint, maxAttempts },
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
      launchTemplate: { id: LT_ID, name: '', version: '' },
      instanceTypes: [],
      subnetIds: [],
      tags: {},
      log,
      ...over,
    });
    open.push(p);
    return p;
  };
  return { fake, clock, lines, provider };
}

const callsOf = (fake: FakeEc2, action: string) => fake.calls.filter((c) => c.action === action);

async function rejection(p: Promise<unknown>): Promise<ProviderError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(ProviderError);
  return err as ProviderError;
}

describe('Ec2Provider launch', () => {
  it('launch 3 → one RunInstances, tags set on instances and volumes, listed once the lag passed', async () => {
    const { fake, clock, provider } = await setup({ listingLagMs: 30_000 });
    const p = provider({ tags: { team: 'web' }, subnetIds: [SUBNET_A] });
    const res = await p.launch({ groupId: 'web', token: 'launch-1', count: 3 });

    expect(res.shortfall).toBeUndefined();
    expect(res.instances).toHaveLength(3);
    for (const i of res.instances) {
      expect(i).toMatchObject({ groupId: 'web', state: 'pending', detail: 'pending', launchToken: 'launch-1', launchedAt: clock.now(), zone: 'us-east-1a', instanceType: 't3.micro' });
      expect(i.id).toMatch(/^i-[0-9a-f]{17}$/);
      expect(i.address).toMatch(/^10\.0\.\d+\.\d+$/);
    }
    const run = callsOf(fake, 'RunInstances');
    expect(run).toHaveLength(1);
    expect(Object.fromEntries(run[0]?.params ?? [])).toMatchObject({
      MinCount: '1', MaxCount: '3', ClientToken: 'launch-1.0', SubnetId: SUBNET_A,
      'LaunchTemplate.LaunchTemplateId': LT_ID, 'LaunchTemplate.Version': '$Default',
    });
    const wantTags = { team: 'web', 'autoscaler:group': 'web', 'autoscaler:managed-by': 'autoscaler', 'autoscaler:launch-token': 'launch-1' };
    for (const i of fake.instances()) {
      expect(i.tags).toEqual(wantTags);
      expect(i.volumeTags).toEqual(wantTags);
    }

    expect((await p.list('web')).instances).toEqual([]);
    clock.advance(30_000);
    const listed = (await p.list('web')).instances;
    expect(listed.map((i) => i.id).sort()).toEqual(res.instances.map((i) => i.id).sort());
    expect(listed.every((i) => i.state === 'running' && i.launchToken === 'launch-1')).toBe(true);
  });

  it('launch by template name and version', async () => {
    const { fake, provider } = await setup();
    await provider({ launchTemplate: { id: '', name: LT_NAME, version: '2' } }).launch({ groupId: 'web', token: 't', count: 1 });
    expect(Object.fromEntries(callsOf(fake, 'RunInstances')[0]?.params ?? [])).toMatchObject({ 'LaunchTemplate.LaunchTemplateName': LT_NAME, 'LaunchTemplate.Version': '2' });
    expect(fake.instances()[0]?.launchTemplateId).toBe(LT_ID);
  });

  it('throttling twice then success → the SDK retries: 3 RunInstances calls, one set of instances', async () => {
    const { fake, provider } = await setup({}, 3);
    fake.failNext('RunInstances', 'RequestLimitExceeded', 2);
    const res = await provider().launch({ groupId: 'web', token: 'tok', count: 2 });
    expect(res.instances).toHaveLength(2);
    const run = callsOf(fake, 'RunInstances');
    expect(run).toHaveLength(3);
    expect(run.map((c) => c.params.get('ClientToken'))).toEqual(['tok.0', 'tok.0', 'tok.0']);
    expect(fake.instances()).toHaveLength(2);
  });

  it('throttling beyond maxAttempts → ProviderError Throttled, retryable, logged at warn', async () => {
    const { fake, provider, lines } = await setup({}, 2);
    fake.failNext('RunInstances', 'RequestLimitExceeded', 5);
    const err = await rejection(provider().launch({ groupId: 'web', token: 'tok', count: 1 }));
    expect(err).toMatchObject({ code: 'Throttled', retryable: true, groupId: 'web', details: { cloudCode: 'RequestLimitExceeded', action: 'ec2:RunInstances' } });
    expect(callsOf(fake, 'RunInstances')).toHaveLength(2);
    expect(fake.instances()).toEqual([]);
    expect(lines).toContainEqual(expect.objectContaining({ level: 40, msg: 'ec2 call throttled', groupId: 'web', action: 'ec2:RunInstances', cloudCode: 'RequestLimitExceeded', attempts: 2 }));
  });

  it('InsufficientInstanceCapacity on the first type → launched with the next type (own ClientToken)', async () => {
    const { fake, provider } = await setup({ insufficientCapacity: new Set(['m5.large']) }, 2);
    const res = await provider({ instanceTypes: ['m5.large', 'm5a.large'] }).launch({ groupId: 'web', token: 'tok', count: 2 });
    expect(res.instances.map((i) => i.instanceType)).toEqual(['m5a.large', 'm5a.large']);
    // EC2 answers InsufficientInstanceCapacity with HTTP 500, which the SDK retries before we see it.
    expect(callsOf(fake, 'RunInstances').map((c) => `${c.params.get('InstanceType')} ${c.params.get('ClientToken')}`))
      .toEqual(['m5.large tok.0', 'm5.large tok.0', 'm5a.large tok.1']);
  });

  it('no capacity in one zone → the next subnet with the preferred type, before any other type', async () => {
    const { fake, provider } = await setup({ insufficientCapacity: new Set(['m5.large@us-east-1a']) }, 1);
    const p = provider({ instanceTypes: ['m5.large', 'm5a.large'], subnetIds: [SUBNET_A, SUBNET_B] });
    for (const token of ['a', 'b', 'c', 'd', 'e', 'f']) {
      const res = await p.launch({ groupId: 'web', token, count: 1 });
      expect(res.instances[0]).toMatchObject({ instanceType: 'm5.large', zone: 'us-east-1b' });
    }
    const tried = callsOf(fake, 'RunInstances').map((c) => `${c.params.get('InstanceType')}@${c.params.get('SubnetId')}`);
    // The first subnet depends on the token (spread over zones): some launches met the short zone first.
    expect(tried).toContain(`m5.large@${SUBNET_A}`);
    expect(tried.filter((t) => t === `m5.large@${SUBNET_B}`)).toHaveLength(6);
    expect(tried.some((t) => t.startsWith('m5a.large'))).toBe(false);
  });

  it('all types short → ProviderError InsufficientCapacity (the last one)', async () => {
    const { fake, provider } = await setup({ insufficientCapacity: new Set(['m5.large', 'm5a.large']) }, 1);
    const err = await rejection(provider({ instanceTypes: ['m5.large', 'm5a.large'] }).launch({ groupId: 'web', token: 'tok', count: 1 }));
    expect(err).toMatchObject({ code: 'InsufficientCapacity', retryable: true, details: { cloudCode: 'InsufficientInstanceCapacity', action: 'ec2:RunInstances' } });
    expect(err.message).toContain('m5a.large');
    expect(callsOf(fake, 'RunInstances').map((c) => c.params.get('ClientToken'))).toEqual(['tok.0', 'tok.1']);
  });

  it('fewer accepted than asked → the instances and a shortfall', async () => {
    const { provider } = await setup({ maxPerRequest: 2 });
    const res = await provider().launch({ groupId: 'web', token: 'tok', count: 5 });
    expect(res.instances).toHaveLength(2);
    expect(res.shortfall).toMatchObject({ code: 'InsufficientCapacity', retryable: true });
    expect(res.shortfall?.message).toContain('2 of 5');
  });

  it('UnauthorizedOperation → ProviderError PermissionDenied naming ec2:RunInstances, not retried', async () => {
    const { fake, provider } = await setup();
    fake.failNext('RunInstances', 'UnauthorizedOperation');
    const err = await rejection(provider().launch({ groupId: 'web', token: 'tok', count: 1 }));
    expect(err).toMatchObject({ code: 'PermissionDenied', retryable: false });
    expect(err.message).toContain('ec2:RunInstances');
    expect(callsOf(fake, 'RunInstances')).toHaveLength(1);
  });

  it('same token twice → exactly one set of instances (idempotent)', async () => {
    const { fake, provider } = await setup();
    const p = provider();
    const first = await p.launch({ groupId: 'web', token: 'once', count: 2 });
    const second = await p.launch({ groupId: 'web', token: 'once', count: 2 });
    expect(second.instances.map((i) => i.id)).toEqual(first.instances.map((i) => i.id));
    expect(fake.instances()).toHaveLength(2);
    expect(callsOf(fake, 'RunInstances')).toHaveLength(2);
  });

  it.each([
    { name: 'found by client-token → the earlier instances, nothing new', listingLagMs: 0, found: true },
    { name: 'not (yet) listed → ProviderError IdempotencyMismatch, not retryable', listingLagMs: 60_000, found: false },
  ])('IdempotentParameterMismatch (config changed across a crash): $name', async ({ listingLagMs, found }) => {
    const { fake, provider } = await setup({ listingLagMs });
    const before = await provider({ instanceTypes: ['m5.large'] }).launch({ groupId: 'web', token: 'crash', count: 2 });
    const after = provider({ instanceTypes: ['c5.large'] }).launch({ groupId: 'web', token: 'crash', count: 2 });
    if (found) {
      const res = await after;
      expect(res.instances.map((i) => i.id).sort()).toEqual(before.instances.map((i) => i.id).sort());
      expect(res.instances.every((i) => i.instanceType === 'm5.large' && i.launchToken === 'crash')).toBe(true);
    } else {
      expect(await rejection(after)).toMatchObject({ code: 'IdempotencyMismatch', retryable: false, details: { cloudCode: 'IdempotentParameterMismatch' } });
    }
    expect(fake.instances()).toHaveLength(2);
    const lookup = callsOf(fake, 'DescribeInstances');
    expect(lookup).toHaveLength(1);
    expect(Object.fromEntries(lookup[0]?.params ?? [])).toMatchObject({ 'Filter.1.Name': 'client-token', 'Filter.1.Value.1': 'crash.0' });
  });

  it('rejects a bad count or token as a programmer error', async () => {
    const { fake, provider } = await setup();
    const p = provider();
    await expect(p.launch({ groupId: 'web', token: 'x', count: 0 })).rejects.toBeInstanceOf(TypeError);
    await expect(p.launch({ groupId: 'web', token: '', count: 1 })).rejects.toBeInstanceOf(TypeError);
    expect(fake.calls).toEqual([]);
  });
});

describe('Ec2Provider list', () => {
  it('describe with paging: 25 instances, page size 10 → 3 pages, all found, other groups left out', async () => {
    const { fake, provider } = await setup();
    const p = provider({ pageSize: 10 });
    const web = await p.launch({ groupId: 'web', token: 'w', count: 25 });
    await p.launch({ groupId: 'batch', token: 'b', count: 2 });
    const listed = await p.list('web');
    expect(listed.instances.map((i) => i.id).sort()).toEqual(web.instances.map((i) => i.id).sort());
    const pages = callsOf(fake, 'DescribeInstances');
    expect(pages).toHaveLength(3);
    expect(pages.map((c) => c.params.get('MaxResults'))).toEqual(['10', '10', '10']);
    expect(pages.map((c) => c.params.get('NextToken') !== null)).toEqual([false, true, true]);
    expect(Object.fromEntries(pages[0]?.params ?? [])).toMatchObject({
      'Filter.1.Name': 'tag:autoscaler:group', 'Filter.1.Value.1': 'web', 'Filter.2.Name': 'instance-state-name',
    });
  });

  it('more pages than maxPages → an error rather than a partial listing', async () => {
    const { provider } = await setup();
    const p = provider({ pageSize: 5, maxPages: 2 });
    await p.launch({ groupId: 'web', token: 'w', count: 11 });
    expect(await rejection(p.list('web'))).toMatchObject({ code: 'Unknown', details: { action: 'ec2:DescribeInstances' } });
  });

  it('listing lag → empty before the lag, present after (ManualClock)', async () => {
    const { clock, provider } = await setup({ listingLagMs: 90_000 });
    const p = provider();
    const { instances } = await p.launch({ groupId: 'web', token: 'lag', count: 1 });
    clock.advance(89_999);
    expect((await p.list('web')).instances).toEqual([]);
    clock.advance(1);
    expect((await p.list('web')).instances.map((i) => i.id)).toEqual([instances[0]?.id]);
  });

  it('pending → running after pendingMs, and the onRunning hook fires once', async () => {
    const running: FakeInstance[] = [];
    const { fake, clock, provider } = await setup({ pendingMs: 20_000, onRunning: (i) => running.push(i) });
    const p = provider();
    await p.launch({ groupId: 'web', token: 'boot', count: 1 });
    expect((await p.list('web')).instances[0]).toMatchObject({ state: 'pending', detail: 'pending' });
    clock.advance(20_000);
    fake.poll();
    expect(running.map((i) => i.state)).toEqual(['running']);
    expect((await p.list('web')).instances[0]).toMatchObject({ state: 'running', detail: 'running' });
    expect(running).toHaveLength(1);
  });

  it('a throttled list → Throttled and a warn line naming ec2:DescribeInstances', async () => {
    const { fake, provider, lines } = await setup({}, 1);
    fake.failNext('DescribeInstances', 'RequestLimitExceeded');
    expect(await rejection(provider().list('web'))).toMatchObject({ code: 'Throttled', retryable: true });
    expect(lines).toContainEqual(expect.objectContaining({ level: 40, action: 'ec2:DescribeInstances', cloudCode: 'RequestLimitExceeded' }));
  });
});

describe('Ec2Provider terminate', () => {
  it('terminate → accepted, then listed as terminating, then gone; onTerminated fires', async () => {
    const ended: string[] = [];
    const { clock, provider } = await setup({ terminateMs: 60_000, onTerminated: (i) => ended.push(i.id) });
    const p = provider();
    const { instances } = await p.launch({ groupId: 'web', token: 't', count: 2 });
    const [a, b] = instances.map((i) => i.id) as [string, string];
    expect(await p.terminate({ groupId: 'web', ids: [a], decrement: true })).toEqual({ accepted: [a], failed: [] });

    const byId = async () => new Map((await p.list('web')).instances.map((i) => [i.id, i]));
    let now = await byId();
    expect(now.get(a)).toMatchObject({ state: 'terminating', detail: 'shutting-down (Client.UserInitiatedShutdown: User initiated shutdown)' });
    expect(now.get(b)?.state).toBe('running');
    clock.advance(60_000);
    now = await byId();
    expect(now.get(a)).toMatchObject({ state: 'gone', detail: 'terminated (Client.UserInitiatedShutdown: User initiated shutdown)' });
    expect(ended).toEqual([a]);
  });

  it('terminate with an unknown id mixed in → others accepted, unknown counted as accepted', async () => {
    const { fake, provider } = await setup({ terminateMs: 60_000 });
    const p = provider();
    const ids = (await p.launch({ groupId: 'web', token: 't', count: 3 })).instances.map((i) => i.id);
    const unknown = 'i-0ffffffffffffffff';
    const res = await p.terminate({ groupId: 'web', ids: [ids[0] ?? '', unknown, ids[1] ?? '', ids[2] ?? ''], decrement: true });
    expect(res.failed).toEqual([]);
    expect([...res.accepted].sort()).toEqual([...ids, unknown].sort());
    expect(fake.instances().map((i) => i.state)).toEqual(['shutting-down', 'shutting-down', 'shutting-down']);
  });

  it('terminate with a malformed id → that id failed (InvalidRequest), the others accepted', async () => {
    const { provider } = await setup();
    const p = provider();
    const [a] = (await p.launch({ groupId: 'web', token: 't', count: 1 })).instances.map((i) => i.id) as [string];
    const res = await p.terminate({ groupId: 'web', ids: [a, 'pid:1234'], decrement: true });
    expect(res.accepted).toEqual([a]);
    expect(res.failed.map((f) => [f.id, f.error.code])).toEqual([['pid:1234', 'InvalidRequest']]);
  });

  it('terminate refused → every id failed with the error', async () => {
    const { fake, provider } = await setup();
    const p = provider();
    const ids = (await p.launch({ groupId: 'web', token: 't', count: 2 })).instances.map((i) => i.id);
    fake.failNext('TerminateInstances', 'UnauthorizedOperation');
    const res = await p.terminate({ groupId: 'web', ids, decrement: true });
    expect(res.accepted).toEqual([]);
    expect(res.failed.map((f) => f.error.code)).toEqual(['PermissionDenied', 'PermissionDenied']);
    expect(res.failed[0]?.error.message).toContain('ec2:TerminateInstances');
  });

  it('1001 ids → two TerminateInstances calls (1000 + 1)', async () => {
    const { fake, provider } = await setup();
    const p = provider();
    const ids = (await p.launch({ groupId: 'web', token: 'big', count: 1001 })).instances.map((i) => i.id);
    const res = await p.terminate({ groupId: 'web', ids, decrement: true });
    expect(res.accepted).toHaveLength(1001);
    expect(callsOf(fake, 'TerminateInstances').map((c) => c.params.has('InstanceId.1000') ? 1000 : 1)).toEqual([1000, 1]);
  });
});

describe('Ec2Provider verify', () => {
  it.each([
    { name: 'template id missing', over: { launchTemplate: { id: 'lt-0000000000000000f', name: '', version: '' } }, code: 'NotFound', says: 'EC2_LAUNCH_TEMPLATE_ID=lt-0000000000000000f' },
    { name: 'template name missing', over: { launchTemplate: { id: '', name: 'nope', version: '' } }, code: 'NotFound', says: 'EC2_LAUNCH_TEMPLATE_NAME=nope' },
    { name: 'template version missing', over: { launchTemplate: { id: LT_ID, name: '', version: '7' } }, code: 'NotFound', says: 'EC2_LAUNCH_TEMPLATE_VERSION=7' },
    { name: 'subnet missing', over: { subnetIds: [SUBNET_A, 'subnet-0cccccccccccccccc'] }, code: 'NotFound', says: 'EC2_SUBNET_IDS=' },
  ])('verify: $name → $code naming the key', async ({ over, code, says }) => {
    const { provider } = await setup();
    const err = await rejection(provider(over).verify('web', { minSize: 1, maxSize: 4 }));
    expect(err.code).toBe(code);
    expect(err.message).toContain(says);
  });

  it.each([
    { name: 'DescribeLaunchTemplates denied', action: 'DescribeLaunchTemplates' },
    { name: 'RunInstances dry run denied', action: 'RunInstances' },
  ])('verify: $name → PermissionDenied naming the IAM action', async ({ action }) => {
    const { fake, provider } = await setup();
    fake.failNext(action, 'UnauthorizedOperation');
    const err = await rejection(provider().verify('web', { minSize: 1, maxSize: 4 }));
    expect(err.code).toBe('PermissionDenied');
    expect(err.message).toContain(`ec2:${action}`);
  });

  it('verify: all present → resolves after a dry-run RunInstances that launches nothing', async () => {
    const { fake, provider } = await setup();
    await provider({ subnetIds: [SUBNET_A, SUBNET_B], instanceTypes: ['m5.large'] }).verify('web', { minSize: 1, maxSize: 4 });
    expect(fake.calls.map((c) => c.action)).toEqual(['DescribeLaunchTemplates', 'DescribeSubnets', 'RunInstances']);
    expect(callsOf(fake, 'RunInstances')[0]?.params.get('DryRun')).toBe('true');
    expect(fake.instances()).toEqual([]);
  });

  it('setDesiredCapacity is a programmer error (controller lifecycle)', async () => {
    const { provider } = await setup();
    await expect(provider().setDesiredCapacity({ groupId: 'web', desired: 3 })).rejects.toBeInstanceOf(TypeError);
  });
});

describe('EC2 state mapping', () => {
  it.each([
    { name: 'pending', ec2: 'pending', reason: undefined, want: { state: 'pending', detail: 'pending' } },
    { name: 'running', ec2: 'running', reason: undefined, want: { state: 'running', detail: 'running' } },
    { name: 'shutting-down', ec2: 'shutting-down', reason: undefined, want: { state: 'terminating', detail: 'shutting-down' } },
    { name: 'stopping', ec2: 'stopping', reason: 'Client.UserInitiatedShutdown', want: { state: 'terminating', detail: 'stopping (Client.UserInitiatedShutdown)' } },
    { name: 'stopped', ec2: 'stopped', reason: undefined, want: { state: 'gone', detail: 'stopped' } },
    { name: 'terminated with a reason', ec2: 'terminated', reason: 'Server.SpotInstanceTermination', want: { state: 'gone', detail: 'terminated (Server.SpotInstanceTermination)' } },
    { name: 'unknown state counts as pending', ec2: undefined, reason: undefined, want: { state: 'pending', detail: 'unknown' } },
  ])('$name', ({ ec2, reason, want }) => {
    expect(mapEc2State(ec2, reason)).toEqual(want);
  });

  it('an interrupted instance is listed as terminating with the cloud reason', async () => {
    const { fake, provider } = await setup({ terminateMs: 1_000 });
    const p = provider();
    const [a] = (await p.launch({ groupId: 'web', token: 't', count: 1 })).instances.map((i) => i.id) as [string];
    fake.interrupt(a);
    expect((await p.list('web')).instances[0]).toMatchObject({ id: a, state: 'terminating', detail: 'shutting-down (Server.SpotInstanceTermination: Spot instance termination)' });
  });
});

describe('ClientToken rule', () => {
  it.each([
    { name: 'short token → token.attempt', token: 'abc', attempt: 3, want: 'abc.3' },
    { name: '56-character token fits', token: 'x'.repeat(56), attempt: 12, want: `${'x'.repeat(56)}.12` },
  ])('$name', ({ token, attempt, want }) => {
    expect(ec2ClientToken(token, attempt)).toBe(want);
  });

  it('a 64-character token → a deterministic 64-character hash form, distinct per attempt', () => {
    const t = 'y'.repeat(64);
    expect(ec2ClientToken(t, 0)).toHaveLength(64);
    expect(ec2ClientToken(t, 10)).toHaveLength(64);
    expect(ec2ClientToken(t, 0)).toBe(ec2ClientToken(t, 0));
    expect(ec2ClientToken(t, 0)).not.toBe(ec2ClientToken(t, 1));
  });
});

describe('fake EC2', () => {
  it('ids are deterministic per seed and look like EC2 ids', async () => {
    const first = async (idSeed: string) => {
      const { provider } = await setup({ idSeed });
      return (await provider().launch({ groupId: 'web', token: 't', count: 1 })).instances[0]?.id;
    };
    const a = await first('one');
    expect(a).toMatch(/^i-[0-9a-f]{17}$/);
    expect(await first('one')).toBe(a);
    expect(await first('two')).not.toBe(a);
  });

  it('with the real clock, the internal timer moves states and fires onRunning without traffic', async () => {
    const running: string[] = [];
    const fake = await startFakeEc2({ pollMs: 10, onRunning: (i) => running.push(i.id) });
    open.push(fake);
    fake.addLaunchTemplate({ id: LT_ID, name: LT_NAME });
    const res = await fetch(fake.endpoint, { method: 'POST', body: new URLSearchParams({ Action: 'RunInstances', MinCount: '1', MaxCount: '1', 'LaunchTemplate.LaunchTemplateId': LT_ID }) });
    expect(res.status).toBe(200);
    const callsBefore = fake.calls.length;
    await waitFor('onRunning', () => running.length === 1);
    expect(fake.calls.length).toBe(callsBefore);
  });

  it('refuses an unknown DescribeInstances filter, as EC2 does', async () => {
    const { fake } = await setup();
    const res = await fetch(fake.endpoint, { method: 'POST', body: new URLSearchParams({ Action: 'DescribeInstances', 'Filter.1.Name': 'tag-value-typo', 'Filter.1.Value.1': 'x' }) });
    expect(res.status).toBe(400);
    expect(await res.text()).toContain('<Code>InvalidParameterValue</Code>');
  });
});
