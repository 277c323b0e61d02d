/**
 * A stateful loopback Auto Scaling for tests: the real @aws-sdk/client-auto-scaling talks to it
 * through its endpoint override (awsQuery protocol, see query.ts). It converges like AWS does:
 * it launches instances until the group's count matches its desired capacity (Pending, then
 * InService after `pendingMs`) and removes terminated ones (Terminating, then gone after
 * `terminateMs`); a termination without decrement is replaced. States move lazily, on each
 * request and on `poll()`, by the injected clock. Test-only code.
 */
import { randomUUID } from 'node:crypto';
import { listParam, QueryFault, queryReply, startQueryServer, type QueryReply, type XmlNode } from './query.js';

const NAMESPACE = 'http://autoscaling.amazonaws.com/doc/2011-01-01/';
/** AWS's default and largest page of DescribeAutoScalingGroups / DescribeInstanceRefreshes. */
const DEFAULT_MAX_RECORDS = 50;
const LARGEST_MAX_RECORDS = 100;
/** Every scaling process SuspendProcesses knows (an empty list suspends all of them). */
const PROCESSES = ['Launch', 'Terminate', 'AddToLoadBalancer', 'AlarmNotification', 'AZRebalance', 'HealthCheck', 'InstanceRefresh', 'ReplaceUnhealthy', 'ScheduledActions'] as const;
/** HTTP status Auto Scaling answers each error code with, when failNext is not told. */
const FAULT_STATUS: Readonly<Record<string, number>> = {
  Throttling: 400, AccessDenied: 403, ScalingActivityInProgress: 400, ResourceContention: 500, InternalFailure: 500, ServiceUnavailable: 503,
};

/** One instance of a fake group. */
export interface FakeAsgInstance {
  /** e.g. "i-00000000000000001", deterministic per fake. */
  readonly id: string;
  /** The group it belongs to. */
  readonly group: string;
  /** Auto Scaling's LifecycleState, e.g. "Pending", "InService", "Terminating", "Warmed:Stopped". */
  readonly lifecycleState: string;
  /** "Healthy" or "Unhealthy". */
  readonly health: string;
  readonly zone: string;
  readonly instanceType: string;
  /** When the fake launched it, epoch ms of the fake's clock. */
  readonly launchedAt: number;
}

/** A snapshot of one fake group. */
export interface FakeAsgGroup {
  readonly name: string;
  readonly min: number;
  readonly max: number;
  readonly desired: number;
  readonly zones: readonly string[];
  readonly instances: readonly FakeAsgInstance[];
  /** Suspended process names, e.g. ["Launch"]. */
  readonly suspended: readonly string[];
  /** The group's Status, e.g. "Delete in progress"; undefined when normal. */
  readonly status: string | undefined;
  /** The latest instance refresh's status, e.g. "InProgress"; undefined when none. */
  readonly refresh: string | undefined;
}

export interface FakeAsgOptions {
  /** How long a launched instance stays Pending before it is InService, ms of `now`. Default 1000. */
  readonly pendingMs?: number;
  /** How long a terminated instance stays Terminating before it leaves the group, ms of `now`. Default 1000. */
  readonly terminateMs?: number;
  /** The fake's clock, epoch ms. Default Date.now; pass a ManualClock's `now` to move states by hand. */
  readonly now?: () => number;
  /** Instance type of launched instances. Default "t3.micro". */
  readonly instanceType?: string;
  /** Called when the fake launches an instance (addGroup's initial instances included). */
  readonly onLaunch?: (instance: FakeAsgInstance) => void;
  /** Called when an instance enters Terminating (a TerminateInstanceInAutoScalingGroup or a scale-in). */
  readonly onTerminate?: (instance: FakeAsgInstance) => void;
}

export interface FakeAutoScaling {
  /** e.g. "http://127.0.0.1:40123", for the SDK's `endpoint`. */
  readonly endpoint: string;
  /** Every call received, in order: its Action and parameters. */
  readonly calls: readonly { readonly action: string; readonly params: URLSearchParams }[];
  /**
   * Add an existing group. Its first `desired` instances are InService at once (onLaunch is called
   * for each). Zones default to ["eu-west-1a", "eu-west-1b"].
   */
  addGroup(g: { name: string; min: number; max: number; desired: number; zones?: readonly string[] }): FakeAsgGroup;
  /** Suspend a scaling process ("Launch", "Terminate", "AlterDesiredCapacity"…). */
  suspend(name: string, process: string): void;
  /** Resume a suspended process. */
  resume(name: string, process: string): void;
  /** Set the status of the group's instance refresh ("Pending", "InProgress", "Successful"…), creating it if there is none. */
  setInstanceRefresh(name: string, status: string): void;
  /** Set the group's Status ("Delete in progress"), or clear it with undefined. */
  setStatus(name: string, status: string | undefined): void;
  /** Force an instance's LifecycleState and/or HealthStatus (forced states other than Pending/Terminating do not move). */
  setInstance(name: string, id: string, change: { lifecycleState?: string; health?: string }): void;
  /**
   * The next `times` calls of `action` fail with `code`. Status defaults to Auto Scaling's own
   * (Throttling 400, AccessDenied 403, ScalingActivityInProgress 400, others 400).
   */
  failNext(action: string, code: string, times?: number, status?: number): void;
  /** Hold calls of `action` until the returned function is called (for concurrency checks). */
  hold(action: string): () => void;
  /** Calls of `action` being handled now. */
  inFlight(action: string): number;
  /** The most calls of `action` ever handled at once. */
  peakInFlight(action: string): number;
  /** Move every group's states to the clock's now (also done on each request). */
  poll(): void;
  /** A snapshot of a group; throws when there is none. */
  group(name: string): FakeAsgGroup;
  close(): Promise<void>;
}

interface Instance {
  id: string;
  group: string;
  lifecycleState: string;
  health: string;
  zone: string;
  instanceType: string;
  launchedAt: number;
  /** When it entered its current state, epoch ms. */
  since: number;
}

interface Group {
  name: string;
  min: number;
  max: number;
  desired: number;
  zones: string[];
  instances: Instance[];
  suspended: Map<string, string>;
  status: string | undefined;
  refreshes: { id: string; status: string; startedAt: number }[];
  createdAt: number;
}

/** States that count towards the desired capacity (AWS: everything but the way out and the warm pool). */
function counts(i: Instance): boolean {
  return !i.lifecycleState.startsWith('Terminat') && !i.lifecycleState.startsWith('Detach') && !i.lifecycleState.startsWith('Warmed:')
    && i.lifecycleState !== 'Standby' && i.lifecycleState !== 'EnteringStandby';
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** Start the fake on 127.0.0.1, port chosen by the OS. */
export async function startFakeAutoScaling(opts: FakeAsgOptions = {}): Promise<FakeAutoScaling> {
  const now = opts.now ?? Date.now;
  const pendingMs = opts.pendingMs ?? 1_000;
  const terminateMs = opts.terminateMs ?? 1_000;
  const instanceType = opts.instanceType ?? 't3.micro';
  const groups = new Map<string, Group>();
  const faults = new Map<string, { code: string; status: number; left: number }[]>();
  const holds = new Map<string, Promise<void>>();
  const inFlight = new Map<string, number>();
  const peak = new Map<string, number>();
  let nextId = 1;

  const view = (i: Instance): FakeAsgInstance => ({
    id: i.id, group: i.group, lifecycleState: i.lifecycleState, health: i.health, zone: i.zone, instanceType: i.instanceType, launchedAt: i.launchedAt,
  });

  const mustGroup = (name: string): Group => {
    const g = groups.get(name);
    if (g === undefined) throw new Error(`fake Auto Scaling has no group ${name}`);
    return g;
  };

  const launch = (g: Group, state: 'Pending' | 'InService'): void => {
    const t = now();
    // Balance zones, as AWS does: the zone with the fewest counted instances, first listed on a tie.
    const perZone = g.zones.map((z) => g.instances.filter((i) => i.zone === z && counts(i)).length);
    const zone = g.zones[perZone.indexOf(Math.min(...perZone))] ?? 'eu-west-1a';
    const inst: Instance = {
      id: `i-0${(nextId++).toString(16).padStart(16, '0')}`, group: g.name, lifecycleState: state, health: 'Healthy', zone, instanceType, launchedAt: t, since: t,
    };
    g.instances.push(inst);
    opts.onLaunch?.(view(inst));
  };

  const startTerminating = (i: Instance): void => {
    i.lifecycleState = 'Terminating';
    i.since = now();
    opts.onTerminate?.(view(i));
  };

  const converge = (g: Group): void => {
    const t = now();
    for (const i of g.instances) {
      if (i.lifecycleState === 'Pending' && t - i.since >= pendingMs) {
        i.lifecycleState = 'InService';
        i.since = t;
      }
    }
    g.instances = g.instances.filter((i) => !(i.lifecycleState === 'Terminating' && t - i.since >= terminateMs));
    if (g.status !== undefined) return;
    const counted = g.instances.filter(counts);
    if (counted.length < g.desired && !g.suspended.has('Launch')) {
      for (let n = counted.length; n < g.desired; n++) launch(g, 'Pending');
    } else if (counted.length > g.desired && !g.suspended.has('Terminate')) {
      // Newest first: enough for a fake (AWS's default policy weighs zones and templates first).
      for (const i of counted.slice(g.desired).reverse()) startTerminating(i);
    }
  };

  const poll = (): void => {
    for (const g of groups.values()) converge(g);
  };

  const page = <T>(items: readonly T[], params: URLSearchParams): { items: T[]; nextToken: string | undefined } => {
    const maxRaw = params.get('MaxRecords');
    const max = maxRaw === null ? DEFAULT_MAX_RECORDS : Number(maxRaw);
    if (!Number.isInteger(max) || max < 1 || max > LARGEST_MAX_RECORDS) throw new QueryFault('ValidationError', `MaxRecords must be 1..${LARGEST_MAX_RECORDS}`);
    const token = params.get('NextToken');
    let start = 0;
    if (token !== null && token !== '') {
      const m = /^fake-token-(\d+)$/.exec(Buffer.from(token, 'base64').toString('utf8'));
      if (m === null) throw new QueryFault('InvalidNextToken', 'The token is invalid.');
      start = Number(m[1]);
    }
    const end = start + max;
    return { items: items.slice(start, end), nextToken: end < items.length ? Buffer.from(`fake-token-${end}`).toString('base64') : undefined };
  };

  const groupXml = (g: Group): XmlNode => ({
    AutoScalingGroupName: g.name,
    AutoScalingGroupARN: `arn:aws:autoscaling:eu-west-1:123456789012:autoScalingGroup:00000000-0000-4000-8000-000000000000:autoScalingGroupName/${g.name}`,
    MinSize: g.min,
    MaxSize: g.max,
    DesiredCapacity: g.desired,
    DefaultCooldown: 300,
    AvailabilityZones: g.zones,
    HealthCheckType: 'EC2',
    HealthCheckGracePeriod: 300,
    CreatedTime: iso(g.createdAt),
    Instances: g.instances.map((i) => ({
      InstanceId: i.id,
      InstanceType: i.instanceType,
      AvailabilityZone: i.zone,
      LifecycleState: i.lifecycleState,
      HealthStatus: i.health,
      ProtectedFromScaleIn: false,
    })),
    SuspendedProcesses: [...g.suspended].map(([p, reason]) => ({ ProcessName: p, SuspensionReason: reason })),
    Status: g.status,
    TerminationPolicies: ['Default'],
    NewInstancesProtectedFromScaleIn: false,
  });

  const numberParam = (params: URLSearchParams, key: string): number => {
    const v = params.get(key);
    const n = v === null ? NaN : Number(v);
    if (!Number.isInteger(n)) throw new QueryFault('ValidationError', `1 validation error detected: Value at '${key}' failed to satisfy constraint: Member must not be null`);
    return n;
  };

  const namedGroup = (params: URLSearchParams): Group => {
    const name = params.get('AutoScalingGroupName') ?? '';
    const g = groups.get(name);
    if (g === undefined) throw new QueryFault('ValidationError', `AutoScalingGroup name not found - AutoScalingGroup '${name}' not found`);
    return g;
  };

  const terminateOne = (id: string, decrement: boolean, only: Group | undefined): XmlNode => {
    let g: Group | undefined;
    let inst: Instance | undefined;
    for (const cand of only ? [only] : groups.values()) {
      inst = cand.instances.find((i) => i.id === id);
      if (inst !== undefined) {
        g = cand;
        break;
      }
    }
    if (g === undefined || inst === undefined) throw new QueryFault('ValidationError', `Instance Id not found - No managed instance found for instance ID: ${id}`);
    if (decrement && inst.lifecycleState !== 'Terminating') {
      if (g.desired - 1 < g.min) {
        throw new QueryFault('ValidationError', `Currently, desiredSize equals minSize (${g.min}). Terminating instance without replacement will violate group's min size constraint. Either set shouldDecrementDesiredCapacity flag to false or lower group's min size.`);
      }
      g.desired -= 1;
    }
    if (inst.lifecycleState !== 'Terminating') startTerminating(inst);
    converge(g);
    const t = now();
    return {
      ActivityId: randomUUID(),
      AutoScalingGroupName: g.name,
      Description: `Terminating EC2 instance: ${id}`,
      Cause: `At ${iso(t)} instance ${id} was taken out of service in response to a user request${decrement ? ', shrinking the capacity from ' + (g.desired + 1) + ' to ' + g.desired : ''}.`,
      StartTime: iso(t),
      StatusCode: 'InProgress',
      Progress: 0,
      Details: '{}',
    };
  };

  const handle = (action: string, params: URLSearchParams): QueryReply => {
    switch (action) {
      case 'DescribeAutoScalingGroups': {
        const names = listParam(params, 'AutoScalingGroupNames.member');
        const all = [...groups.values()].filter((g) => names.length === 0 || names.includes(g.name));
        const { items, nextToken } = page(all, params);
        return queryReply(action, NAMESPACE, { AutoScalingGroups: items.map(groupXml), NextToken: nextToken });
      }
      case 'SetDesiredCapacity': {
        const g = namedGroup(params);
        const desired = numberParam(params, 'DesiredCapacity');
        if (desired < g.min || desired > g.max) {
          throw new QueryFault('ValidationError', `New SetDesiredCapacity value ${desired} is ${desired < g.min ? 'below min' : 'above max'} value ${desired < g.min ? g.min : g.max} for the AutoScalingGroup.`);
        }
        g.desired = desired;
        converge(g);
        return queryReply(action, NAMESPACE, undefined);
      }
      case 'TerminateInstanceInAutoScalingGroup': {
        const decrement = params.get('ShouldDecrementDesiredCapacity') === 'true';
        const single = params.get('InstanceId');
        if (single !== null) return queryReply(action, NAMESPACE, { Activity: terminateOne(single, decrement, undefined) });
        const g = namedGroup(params);
        const activities = listParam(params, 'InstanceIds.member').map((id) => terminateOne(id, decrement, g));
        return queryReply(action, NAMESPACE, { Activities: activities });
      }
      case 'DescribeInstanceRefreshes': {
        const g = groups.get(params.get('AutoScalingGroupName') ?? '');
        const newestFirst = g === undefined ? [] : [...g.refreshes].reverse();
        const { items, nextToken } = page(newestFirst, params);
        return queryReply(action, NAMESPACE, {
          InstanceRefreshes: items.map((r) => ({ InstanceRefreshId: r.id, AutoScalingGroupName: g?.name, Status: r.status, StartTime: iso(r.startedAt), PercentageComplete: 0, InstancesToUpdate: 0 })),
          NextToken: nextToken,
        });
      }
      case 'SuspendProcesses':
      case 'ResumeProcesses': {
        const g = namedGroup(params);
        const listed = listParam(params, 'ScalingProcesses.member');
        const which = listed.length > 0 ? listed : [...PROCESSES];
        for (const p of which) {
          if (action === 'SuspendProcesses') g.suspended.set(p, `User suspended at ${iso(now())}`);
          else g.suspended.delete(p);
        }
        converge(g);
        return queryReply(action, NAMESPACE, undefined);
      }
      default:
        throw new QueryFault('InvalidAction', `The action ${action} is not valid for this web service.`);
    }
  };

  const server = await startQueryServer(async (action, params) => {
    const n = (inFlight.get(action) ?? 0) + 1;
    inFlight.set(action, n);
    peak.set(action, Math.max(peak.get(action) ?? 0, n));
    try {
      const held = holds.get(action);
      if (held !== undefined) await held;
      const queue = faults.get(action);
      const fault = queue?.[0];
      if (queue !== undefined && fault !== undefined) {
        if (--fault.left <= 0) queue.shift();
        throw new QueryFault(fault.code, fault.code === 'AccessDenied'
          ? `User: arn:aws:sts::123456789012:assumed-role/autoscaler/test is not authorized to perform: autoscaling:${action}`
          : `${fault.code} (injected by the fake)`, fault.status);
      }
      poll();
      return handle(action, params);
    } finally {
      inFlight.set(action, (inFlight.get(action) ?? 1) - 1);
    }
  }, 'query');

  const snapshot = (g: Group): FakeAsgGroup => ({
    name: g.name, min: g.min, max: g.max, desired: g.desired, zones: [...g.zones], instances: g.instances.map(view),
    suspended: [...g.suspended.keys()], status: g.status, refresh: g.refreshes.at(-1)?.status,
  });

  return {
    endpoint: server.endpoint,
    calls: server.calls,
    addGroup({ name, min, max, desired, zones }) {
      if (groups.has(name)) throw new Error(`fake Auto Scaling already has group ${name}`);
      if (!(min <= desired && desired <= max)) throw new Error(`bad bounds for ${name}: ${min} <= ${desired} <= ${max}`);
      const g: Group = {
        name, min, max, desired, zones: [...(zones ?? ['eu-west-1a', 'eu-west-1b'])], instances: [], suspended: new Map(), status: undefined, refreshes: [], createdAt: now(),
      };
      groups.set(name, g);
      for (let n = 0; n < desired; n++) launch(g, 'InService');
      return snapshot(g);
    },
    suspend(name, process) {
      mustGroup(name).suspended.set(process, `User suspended at ${iso(now())}`);
    },
    resume(name, process) {
      const g = mustGroup(name);
      g.suspended.delete(process);
      converge(g);
    },
    setInstanceRefresh(name, status) {
      const g = mustGroup(name);
      const last = g.refreshes.at(-1);
      if (last === undefined || ['Successful', 'Failed', 'Cancelled', 'RollbackSuccessful', 'RollbackFailed'].includes(last.status)) {
        g.refreshes.push({ id: randomUUID(), status, startedAt: now() });
      } else {
        last.status = status;
      }
    },
    setStatus(name, status) {
      mustGroup(name).status = status;
    },
    setInstance(name, id, change) {
      const inst = mustGroup(name).instances.find((i) => i.id === id);
      if (inst === undefined) throw new Error(`fake group ${name} has no instance ${id}`);
      if (change.lifecycleState !== undefined) {
        inst.lifecycleState = change.lifecycleState;
        inst.since = now();
      }
      if (change.health !== undefined) inst.health = change.health;
    },
    failNext(action, code, times = 1, status) {
      const queue = faults.get(action) ?? [];
      queue.push({ code, status: status ?? FAULT_STATUS[code] ?? 400, left: times });
      faults.set(action, queue);
    },
    hold(action) {
      let release!: () => void;
      holds.set(action, new Promise<void>((resolve) => { release = resolve; }));
      return () => {
        holds.delete(action);
        release();
      };
    },
    inFlight: (action) => inFlight.get(action) ?? 0,
    peakInFlight: (action) => peak.get(action) ?? 0,
    poll,
    group: (name) => snapshot(mustGroup(name)),
    close: () => server.close(),
  };
}
