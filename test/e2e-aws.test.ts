/**
 * End to end on "EC2" with real processes: `autoscaler monitor-server` and `autoscaler controller
 * --provider aws-ec2` as separate processes, the controller's real @aws-sdk/client-ec2 talking to a
 * loopback EC2 (test/fake-aws/ec2.ts) through AWS_ENDPOINT. For each instance the fake runs, the
 * test starts a loopback IMDSv2 and a real `autoscaler agent --simulate` that learns its
 * instance id from it, as user-data does on EC2. Launches take seconds to boot and
 * DescribeInstances lags RunInstances, as on EC2.
 */
import { writeFileSync } from 'node:fs';
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openStore, type Db } from '../store/db.js';
import { IntentStore } from '../store/intents.js';
import { StatusReader, type GroupStatus } from '../store/status.js';
import { startFakeEc2, type FakeEc2, type FakeInstance } from './fake-aws/ec2.js';
import { startFakeImds, type FakeImds } from './fake-aws/imds.js';
import { killAll, runCli, startCli, tempDir, waitFor, type CliProcess } from './helpers.js';

const GROUP = 'web';
const TEMPLATE = 'lt-0123456789abcdef0';
const SUBNETS = [{ id: 'subnet-0aaaaaaaaaaaaaaa1', zone: 'us-east-1a' }, { id: 'subnet-0bbbbbbbbbbbbbbb2', zone: 'us-east-1b' }];

/** Environment of a process that talks to the fake: static credentials, no IMDS probing. */
const awsEnv = (endpoint: string) => ({
  AWS_REGION: 'us-east-1', AWS_ENDPOINT: endpoint, AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test', AWS_EC2_METADATA_DISABLED: 'true',
});

/** One running "EC2 instance": its IMDS and its agent process. */
interface Machine { imds: FakeImds; agent: CliProcess | undefined }

class Fleet {
  readonly machines = new Map<string, Machine>();
  monitorGrpc = '';
  /** Boot an instance the fake reports running: IMDS first, then the agent, as user-data does. */
  async boot(i: FakeInstance): Promise<void> {
    const imds = await startFakeImds({ instanceId: i.id, availabilityZone: i.zone, instanceType: i.instanceType, localIpv4: '127.0.0.1' });
    const m: Machine = { imds, agent: undefined };
    this.machines.set(i.id, m);
    if (this.monitorGrpc === '') return;
    m.agent = startCli(['agent', '--simulate', '--exit-with-parent'], {
      AGENT_IDENTITY: 'imds', AGENT_IMDS_ENDPOINT: imds.url, AGENT_GROUP: i.tags['autoscaler:group'] ?? '', AGENT_SERVER: this.monitorGrpc,
      AGENT_SIM_NOISE_PERCENT: '1', AGENT_SIM_SLEW_PERCENT_PER_S: '100', LOG_LEVEL: 'info',
    });
  }
  /** The instance is shutting down or gone: its agent stops (systemd sends SIGTERM). */
  async halt(id: string): Promise<void> {
    const m = this.machines.get(id);
    if (m === undefined) return;
    this.machines.delete(id);
    await m.agent?.stop(3_000);
    await m.imds.close();
  }
  async closeAll(): Promise<void> {
    for (const id of [...this.machines.keys()]) await this.halt(id);
  }
}

/** Stop what a describe started, in order: controller, monitor server, the fleet's agents, the fake EC2. */
async function tearDown(p: { controller?: CliProcess; monitor?: CliProcess; fleet: Fleet; ec2?: FakeEc2; db?: Db }): Promise<void> {
  await p.controller?.stop();
  await p.monitor?.stop();
  await p.fleet.closeAll();
  await p.ec2?.close();
  p.db?.close();
  killAll();
}

describe('e2e on EC2 (loopback): the controller with aws-ec2, agents identified through IMDSv2', () => {
  let dir: string;
  let dbPath: string;
  let ec2: FakeEc2;
  const fleet = new Fleet();
  let monitor: CliProcess;
  let controller: CliProcess;
  let db: Db;
  let status: StatusReader;

  const group = (): GroupStatus => {
    const g = status.report(Date.now(), { groupId: GROUP, decisions: 200 }).groups[0];
    if (g === undefined) throw new Error('group not created yet');
    return g;
  };
  const running = () => group().instances.filter((i) => i.state === 'running');
  const liveAtEc2 = () => ec2.instances().filter((i) => i.state === 'pending' || i.state === 'running');

  beforeAll(async () => {
    dir = tempDir();
    dbPath = join(dir, 'fleet.db');
    ec2 = await startFakeEc2({
      pendingMs: 1_500, listingLagMs: 2_000, terminateMs: 500,
      onRunning: (i) => void fleet.boot(i),
      onTerminated: (i) => void fleet.halt(i.id),
    });
    ec2.addLaunchTemplate({ id: TEMPLATE, name: 'web-fleet', instanceType: 't3.micro' });
    for (const s of SUBNETS) ec2.addSubnet(s);
    monitor = startCli(['monitor-server'], {
      AUTOSCALER_DB: dbPath, LOG_LEVEL: 'info', MONITOR_GRPC_PORT: '0', MONITOR_HTTP_PORT: '0',
      MONITOR_HEARTBEAT_INTERVAL_MS: '500', MONITOR_SUSPECT_AFTER_MS: '1500', MONITOR_DEAD_AFTER_MS: '3000', MONITOR_FLUSH_INTERVAL_MS: '50',
    });
    const listening = await waitFor('monitor server listening', () => monitor.logs().find((l) => l.msg === 'monitor server listening'), 15_000);
    fleet.monitorGrpc = String(listening.grpcAddress).replace(/^0\.0\.0\.0:/, '127.0.0.1:');
    // The group as an operator would seed it: a 3 s scale-down window, a 5 s outage-guard hold.
    const groupsFile = join(dir, 'groups.json');
    writeFileSync(groupsFile, JSON.stringify({
      id: GROUP, minSize: 1, maxSize: 6,
      policy: { behavior: { scaleDown: { stabilizationMs: 3_000 } }, outageGuard: { holdMs: 5_000 } },
    }));
    controller = startCli(['controller'], {
      AUTOSCALER_DB: dbPath, LOG_LEVEL: 'info', ...awsEnv(ec2.endpoint),
      CONTROLLER_PROVIDER: 'aws-ec2', EC2_LAUNCH_TEMPLATE_ID: TEMPLATE, EC2_SUBNET_IDS: SUBNETS.map((s) => s.id).join(','),
      EC2_TAGS: 'team=e2e', CONTROLLER_INTERVAL_MS: '500', CONTROLLER_BOOT_TIMEOUT_MS: '30000', CONTROLLER_LISTING_GRACE_MS: '10000',
      CONTROLLER_GROUPS_FILE: groupsFile,
    });
    db = openStore(dbPath, { readonly: true });
    status = new StatusReader(db);
    await waitFor('first instance running', () => (running().length === 1 ? true : undefined), 30_000, 100);
  }, 60_000);

  afterAll(() => tearDown({ controller, monitor, fleet, ec2, db }));

  it('the first instance registered under its EC2 instance id, learnt through IMDSv2', () => {
    const [row] = running();
    const [instance] = liveAtEc2();
    expect(instance?.id).toMatch(/^i-[0-9a-f]{17}$/);
    expect(row).toMatchObject({ id: instance?.id });
    expect(instance?.tags).toMatchObject({ 'autoscaler:group': GROUP, 'autoscaler:managed-by': 'autoscaler', team: 'e2e' });
    expect(fleet.machines.get(instance?.id ?? '')?.imds.counters.tokens).toBeGreaterThanOrEqual(1);
  });

  it('demand up → scale out through RunInstances; one row per EC2 instance and no stranger', async () => {
    expect((await runCli(['load', 'set', GROUP, '200'], { AUTOSCALER_DB: dbPath })).code).toBe(0);
    await waitFor('4 running, avg CPU within 45..55', () => {
      const g = group();
      return running().length === 4 && g.counts.pending === 0 && g.avgCpu !== null && g.avgCpu >= 45 && g.avgCpu <= 55 ? g : undefined;
    }, 60_000, 100);
    const rows = group().instances.filter((i) => i.state !== 'terminated');
    const atEc2 = liveAtEc2();
    expect(rows.map((r) => r.id).sort()).toEqual(atEc2.map((i) => i.id).sort());
    // Each launch goes to one of the configured subnets (chosen from its token; fallback to the others on capacity errors).
    expect(atEc2.every((i) => SUBNETS.some((s) => s.id === i.subnetId && s.zone === i.zone))).toBe(true);
    // Batched: one RunInstances per scale-out decision, however many instances it adds.
    const runs = ec2.calls.filter((c) => c.action === 'RunInstances' && c.params.get('DryRun') !== 'true');
    const outs = group().decisions.filter((d) => d.to > d.from && d.reason !== 'ReplaceUnhealthy');
    expect(runs.length).toBe(outs.length);
    expect(runs.map((r) => Number(r.params.get('MaxCount')))).toEqual(outs.reverse().map((d) => d.to - d.from));
    const shown = await runCli(['status'], { AUTOSCALER_DB: dbPath });
    for (const i of atEc2) expect(shown.output).toContain(i.id);
  }, 90_000);

  it('demand down → scale in through TerminateInstances, balanced over zones; EC2 and the store agree', async () => {
    expect((await runCli(['load', 'set', GROUP, '20'], { AUTOSCALER_DB: dbPath })).code).toBe(0);
    await waitFor('back to 1 running, nothing terminating', () => {
      const g = group();
      return running().length === 1 && g.counts.pending + g.counts.suspect + g.counts.terminating === 0 && liveAtEc2().length === 1 ? g : undefined;
    }, 60_000, 100);
    expect(running()[0]?.id).toBe(liveAtEc2()[0]?.id);
    expect(ec2.calls.some((c) => c.action === 'TerminateInstances')).toBe(true);
    const text = await runCli(['events', '--group', GROUP, '--limit', '300'], { AUTOSCALER_DB: dbPath });
    expect(text.output).toMatch(/terminate .*i-[0-9a-f]{17} \(ScaleIn: scale in, az-balance-oldest: i-/);
  }, 90_000);
});

/**
 * A controller SIGKILLed in the middle of a launch, at the two points that matter, then started
 * again: exactly one set of instances per intent. A proxy between the controller and the fake
 * EC2 holds the RunInstances call: before EC2 saw it, or after EC2 accepted it but before the
 * answer reached the controller.
 */
describe('e2e on EC2 (loopback): the controller killed mid-launch', () => {
  const cleanup: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f();
    killAll();
  });

  it.each([
    { name: 'after the intent row, before RunInstances reached EC2', forward: false },
    { name: 'after EC2 accepted RunInstances, before the answer was recorded', forward: true },
  ])('$name → restart → exactly one instance per intent', async ({ forward }) => {
    const dir = tempDir();
    const dbPath = join(dir, 'fleet.db');
    const ec2 = await startFakeEc2({ pendingMs: 500, listingLagMs: 3_000 });
    cleanup.push(() => ec2.close());
    ec2.addLaunchTemplate({ id: TEMPLATE, name: 'web-fleet' });
    const proxy = await holdingProxy(new URL(ec2.endpoint), forward);
    cleanup.push(() => proxy.close());
    const monitor = startCli(['monitor-server'], { AUTOSCALER_DB: dbPath, MONITOR_GRPC_PORT: '0', MONITOR_HTTP_PORT: '0' });
    cleanup.push(() => monitor.stop());
    await waitFor('monitor server listening', () => monitor.logs().find((l) => l.msg === 'monitor server listening'), 15_000);
    const controllerEnv = (endpoint: string) => ({
      AUTOSCALER_DB: dbPath, ...awsEnv(endpoint), CONTROLLER_PROVIDER: 'aws-ec2', EC2_LAUNCH_TEMPLATE_ID: TEMPLATE,
      CONTROLLER_INTERVAL_MS: '300', CONTROLLER_BOOT_TIMEOUT_MS: '60000', AWS_MAX_ATTEMPTS: '1',
      GROUP_ID: GROUP, GROUP_MIN_SIZE: '2', GROUP_MAX_SIZE: '4',
    });
    const first = startCli(['controller'], controllerEnv(proxy.endpoint));
    cleanup.push(() => first.stop());
    await waitFor('RunInstances held at the proxy', () => proxy.held() > 0, 20_000);
    if (forward) await waitFor('EC2 accepted it', () => ec2.instances().length === 2, 10_000);
    first.child.kill('SIGKILL');
    await first.exited;

    const db = openStore(dbPath, { readonly: true });
    cleanup.push(() => { db.close(); });
    const open = db.prepare("SELECT token, count FROM launch_intents WHERE status = 'open'").all() as { token: string; count: number }[];
    expect(open).toEqual([{ token: expect.stringMatching(/^as-/), count: 2 }]);

    const second = startCli(['controller'], controllerEnv(ec2.endpoint));
    cleanup.push(() => second.stop());
    const intents = new IntentStore(db);
    await waitFor('the intent done', () => intents.get(open[0]?.token ?? '')?.status === 'done', 20_000);
    await waitFor('two instances recorded', () => (db.prepare("SELECT COUNT(*) AS n FROM instances WHERE state = 'pending'").get() as { n: number }).n === 2, 10_000);
    // A few more evaluations: still nothing launched twice.
    const ticks = (): number => second.logs().filter((l) => l.msg === 'scaling decision').length;
    const seen = ticks();
    await waitFor('three more evaluations', () => ticks() >= seen + 3, 10_000);
    expect(ec2.instances().map((i) => i.state).filter((s) => s !== 'terminated')).toHaveLength(2);
    expect(new Set(ec2.instances().map((i) => i.tags['autoscaler:launch-token']))).toEqual(new Set([open[0]?.token]));
    const rows = db.prepare('SELECT id, launch_token FROM instances ORDER BY id').all() as { id: string; launch_token: string }[];
    expect(rows.map((r) => r.id).sort()).toEqual(ec2.instances().map((i) => i.id).sort());
  }, 60_000);
});

/**
 * An HTTP proxy to the fake EC2 that holds every RunInstances call: without forwarding it
 * (`forward` false: EC2 never sees it), or forwarding it and keeping the answer.
 */
async function holdingProxy(target: URL, forward: boolean): Promise<{ endpoint: string; held: () => number; close: () => Promise<void> }> {
  let held = 0;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const params = new URLSearchParams(body.toString('utf8'));
      // The controller's start-up check is a DryRun RunInstances: let that one through.
      const isRun = params.get('Action') === 'RunInstances' && params.get('DryRun') !== 'true';
      if (isRun && !forward) {
        held++;
        return; // never answered: the controller is killed while waiting
      }
      const up = request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (r: IncomingMessage) => {
        const back: Buffer[] = [];
        r.on('data', (c: Buffer) => back.push(c));
        r.on('end', () => {
          if (isRun) {
            held++;
            return; // EC2 accepted it; the answer never reaches the controller
          }
          res.writeHead(r.statusCode ?? 502, r.headers);
          res.end(Buffer.concat(back));
        });
      });
      up.on('error', () => res.destroy());
      up.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    held: () => held,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

/**
 * Policies live in the store, with real processes on the loopback EC2 (whose instances, unlike
 * local children, outlive a controller restart): one controller manages two groups;
 * `autoscaler policy set` on the running controller changes its behaviour at its next
 * evaluation and shows as an event; a restarted controller keeps the stabilization history.
 */
describe('e2e on EC2 (loopback): two groups, a live policy change, a controller restart', () => {
  let dbPath: string;
  let ec2: FakeEc2;
  const fleet = new Fleet();
  let monitor: CliProcess;
  let controller: CliProcess;
  let controllerEnv: Record<string, string>;
  let db: Db;
  let status: StatusReader;
  const groupOf = (id: string): GroupStatus => {
    const g = status.report(Date.now(), { groupId: id, decisions: 200 }).groups[0];
    if (g === undefined) throw new Error(`group ${id} not created yet`);
    return g;
  };
  const runningIn = (id: string) => groupOf(id).instances.filter((i) => i.state === 'running').length;
  const cli = (...args: string[]) => runCli(args, { AUTOSCALER_DB: dbPath });

  beforeAll(async () => {
    const dir = tempDir();
    dbPath = join(dir, 'fleet.db');
    ec2 = await startFakeEc2({ pendingMs: 1_000, listingLagMs: 1_000, terminateMs: 300, idSeed: 'policies', onRunning: (i) => void fleet.boot(i), onTerminated: (i) => void fleet.halt(i.id) });
    ec2.addLaunchTemplate({ id: TEMPLATE, name: 'fleet' });
    monitor = startCli(['monitor-server'], {
      AUTOSCALER_DB: dbPath, MONITOR_GRPC_PORT: '0', MONITOR_HTTP_PORT: '0',
      MONITOR_HEARTBEAT_INTERVAL_MS: '500', MONITOR_SUSPECT_AFTER_MS: '1500', MONITOR_DEAD_AFTER_MS: '3000', MONITOR_FLUSH_INTERVAL_MS: '50',
      // A restarted controller must find its fleet still reporting, not suspect after a grace.
      MONITOR_STARTUP_GRACE_MS: '2000',
    });
    const listening = await waitFor('monitor server listening', () => monitor.logs().find((l) => l.msg === 'monitor server listening'), 15_000);
    fleet.monitorGrpc = String(listening.grpcAddress);
    const groupsFile = join(dir, 'groups.json');
    writeFileSync(groupsFile, JSON.stringify([
      { id: 'web', minSize: 1, maxSize: 6, policy: { behavior: { scaleDown: { stabilizationMs: 60_000 } }, outageGuard: { enabled: false } } },
      { id: 'api', minSize: 2, maxSize: 4 },
    ]));
    controllerEnv = {
      AUTOSCALER_DB: dbPath, LOG_LEVEL: 'info', ...awsEnv(ec2.endpoint), CONTROLLER_PROVIDER: 'aws-ec2', EC2_LAUNCH_TEMPLATE_ID: TEMPLATE,
      CONTROLLER_INTERVAL_MS: '500', CONTROLLER_BOOT_TIMEOUT_MS: '30000', CONTROLLER_LISTING_GRACE_MS: '10000', CONTROLLER_GROUPS_FILE: groupsFile,
    };
    controller = startCli(['controller'], controllerEnv);
    db = openStore(dbPath, { readonly: true });
    status = new StatusReader(db);
    await waitFor('web 1 and api 2 running', () => runningIn('web') === 1 && runningIn('api') === 2, 30_000, 100);
  }, 60_000);

  afterAll(() => tearDown({ controller, monitor, fleet, ec2, db }));

  it('one controller, two groups: each at its own minimum, each instance tagged with its group', () => {
    const byGroup = ec2.instances().filter((i) => i.state === 'running').map((i) => i.tags['autoscaler:group']).sort();
    expect(byGroup).toEqual(['api', 'api', 'web']);
  });

  it('policy set on the running controller: applied at its next evaluation, shown as an event with who did it', async () => {
    const set = await cli('policy', 'set', 'api', 'minSize=3');
    expect(set.code).toBe(0);
    const change = (db.prepare("SELECT ts FROM group_events WHERE group_id = 'api' AND kind = 'applied'").get() as { ts: number }).ts;
    await waitFor('api at 3', () => runningIn('api') === 3, 20_000, 100);
    const first = db.prepare("SELECT from_count, to_count, reason FROM decisions WHERE group_id = 'api' AND ts >= ? ORDER BY id LIMIT 1").get(change) as { from_count: number; to_count: number; reason: string };
    expect(first).toEqual({ from_count: 2, to_count: 3, reason: 'ClampedToMin' }); // the very next decision
    const events = await cli('events', '--group', 'api', '--limit', '50');
    expect(events.output).toMatch(new RegExp(`api {2}applied +\\S+ by ${userInfo().username}: revision 2: minSize 2 → 3`));
  }, 40_000);

  it('a restarted controller keeps the stabilization history: the next decision is the one it would have made', async () => {
    expect((await cli('load', 'set', 'web', '200')).code).toBe(0);
    await waitFor('web at 4', () => runningIn('web') === 4 && groupOf('web').counts.pending === 0, 40_000, 100);
    expect((await cli('load', 'set', 'web', '20')).code).toBe(0);
    await waitFor('scale-in held by the 60 s window', () => groupOf('web').decisions.find((d) => d.reason === 'ScaleInStabilized' && d.from === 4 && d.to === 4), 20_000, 100);
    await controller.stop();
    expect((await controller.exited).code).toBe(0);
    const before = (db.prepare("SELECT MAX(id) AS id FROM decisions WHERE group_id = 'web'").get() as { id: number }).id;
    controller = startCli(['controller'], controllerEnv);
    await waitFor('three evaluations by the new controller', () => controller.logs().filter((l) => l.msg === 'scaling decision' && l.groupId === 'web').length >= 3, 20_000, 100);
    const after = controller.logs().filter((l) => l.msg === 'scaling decision' && l.groupId === 'web');
    expect(after.every((l) => l.from === 4 && l.to === 4)).toBe(true);
    expect(after.map((l) => l.reason)).toContain('ScaleInStabilized');
    expect(runningIn('web')).toBe(4);
    const newer = db.prepare("SELECT reason FROM decisions WHERE group_id = 'web' AND id > ?").all(before) as { reason: string }[];
    expect(newer.map((r) => r.reason)).not.toContain('ScaleIn');
  }, 90_000);
});
