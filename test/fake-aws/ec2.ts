/**
 * A stateful EC2 on 127.0.0.1 for the real @aws-sdk/client-ec2 (endpoint override): launch
 * templates, subnets, instances with a lifecycle driven by an injectable clock, ClientToken
 * idempotency, DescribeInstances filters and paging, listing lag, and injected faults.
 * Test-only code. Wire names checked against the SDK's own serializer and deserializer.
 *
 * States move lazily: every request, `instances()` and `poll()` first move each instance along
 * by `now()` (pending → running after `pendingMs`, shutting-down → terminated after
 * `terminateMs`) and fire `onRunning` / `onTerminated`. When `now` is not given, a small unref'd
 * timer also polls every `pollMs` so hooks fire without traffic; with an injected clock, call
 * `poll()` after moving the clock.
 */
import { createHash } from 'node:crypto';
import { ec2Reply, listParam, QueryFault, startQueryServer, structList, type QueryReply, type QueryServer, type XmlNode } from './query.js';

/** EC2's instance states (the fake models all but stopping/stopped transitions it is told to make). */
export type FakeInstanceState = 'pending' | 'running' | 'shutting-down' | 'terminated' | 'stopping' | 'stopped';

const STATE_CODE: Readonly<Record<FakeInstanceState, number>> = {
  pending: 0, running: 16, 'shutting-down': 32, terminated: 48, stopping: 64, stopped: 80,
};

/** One instance as the fake holds it (a snapshot when read through `instances()`). */
export interface FakeInstance {
  /** `i-` and 17 hex digits, deterministic per fake. */
  readonly id: string;
  readonly reservationId: string;
  readonly state: FakeInstanceState;
  /** Why it is in its state (set on termination), as EC2's StateReason. */
  readonly stateReason?: { readonly code: string; readonly message: string } | undefined;
  readonly instanceType: string;
  readonly zone: string;
  readonly subnetId?: string | undefined;
  readonly privateIp: string;
  /** The RunInstances ClientToken. */
  readonly clientToken: string;
  /** Instance tags (TagSpecification with ResourceType=instance). */
  readonly tags: Readonly<Record<string, string>>;
  /** Volume tags (TagSpecification with ResourceType=volume). */
  readonly volumeTags: Readonly<Record<string, string>>;
  readonly launchTemplateId: string;
  /** Epoch ms, from `now()`. */
  readonly launchedAt: number;
}

export interface FakeEc2Options {
  /** Clock, epoch ms. Default Date.now (and then the internal poll timer runs). */
  readonly now?: () => number;
  /** pending → running after this long, ms. Default 0 (running at the next poll). */
  readonly pendingMs?: number;
  /** A new instance is missing from DescribeInstances for this long after RunInstances, ms. Default 0. */
  readonly listingLagMs?: number;
  /** shutting-down → terminated after this long, ms. Default 0. */
  readonly terminateMs?: number;
  /** Instance types (`m5.large`) or type in a zone (`m5.large@us-east-1a`) that answer InsufficientInstanceCapacity. */
  readonly insufficientCapacity?: Set<string>;
  /** At most this many instances per RunInstances (fewer than MaxCount, at least MinCount, or InsufficientInstanceCapacity). Default unlimited. */
  readonly maxPerRequest?: number;
  /** Zone of instances launched without any subnet (none given, none in the template, none added). Default "us-east-1a". */
  readonly defaultZone?: string;
  /** Seeds the instance ids, so that two fakes in one test differ. Default "ec2". */
  readonly idSeed?: string;
  /** Interval of the internal poll timer when `now` is not given, ms; 0 disables it. Default 50. */
  readonly pollMs?: number;
  /** Called once when an instance becomes running. */
  readonly onRunning?: (i: FakeInstance) => void;
  /** Called once when an instance becomes terminated. */
  readonly onTerminated?: (i: FakeInstance) => void;
}

export interface FakeEc2 {
  /** e.g. "http://127.0.0.1:40123", for the SDK's `endpoint`. */
  readonly endpoint: string;
  /** Every call received, in order (injected faults included). */
  readonly calls: QueryServer['calls'];
  /** Register a launch template; RunInstances and DescribeLaunchTemplates know only these. */
  addLaunchTemplate(t: { readonly id: string; readonly name: string; readonly instanceType?: string; readonly subnetId?: string; readonly latestVersion?: number }): void;
  /** Register a subnet in a zone. */
  addSubnet(s: { readonly id: string; readonly zone: string }): void;
  /** Answer the next `times` calls of `action` with this error. Status default: 503 for RequestLimitExceeded/Unavailable, 500 for InternalError and Insufficient*, 403 for UnauthorizedOperation, else 400. */
  failNext(action: string, code: string, times?: number, status?: number): void;
  /** The live set of types (or `type@zone`) without capacity; mutate it to change capacity mid-test. */
  readonly insufficientCapacity: Set<string>;
  /** The cloud ends an instance on its own (a spot interruption, a host failure): shutting-down with this reason. */
  interrupt(id: string, reason?: string): void;
  /** Move every instance along by the clock and fire the hooks. */
  poll(): void;
  /** Snapshots of every instance ever launched, in launch order (after a poll). */
  instances(): FakeInstance[];
  close(): Promise<void>;
}

interface Template {
  readonly id: string;
  readonly name: string;
  readonly instanceType: string;
  readonly subnetId?: string | undefined;
  readonly latestVersion: number;
  readonly createdAt: number;
}

interface Inst {
  id: string;
  reservationId: string;
  state: FakeInstanceState;
  stateReason?: { code: string; message: string } | undefined;
  instanceType: string;
  zone: string;
  subnetId?: string | undefined;
  privateIp: string;
  clientToken: string;
  tags: Record<string, string>;
  volumeTags: Record<string, string>;
  launchTemplateId: string;
  launchedAt: number;
  /** When shutting-down began, epoch ms. */
  endingAt?: number | undefined;
}

interface Reservation {
  readonly id: string;
  /** Canonical parameters, for IdempotentParameterMismatch. */
  readonly paramsKey: string;
  readonly instanceIds: readonly string[];
}

const DEFAULT_STATUS: Readonly<Record<string, number>> = {
  RequestLimitExceeded: 503, Unavailable: 503, InternalError: 500, UnauthorizedOperation: 403,
  InsufficientInstanceCapacity: 500, InsufficientHostCapacity: 500, InsufficientReservedInstanceCapacity: 500,
};

/** The filters DescribeInstances understands; EC2 refuses unknown names, and so does the fake. */
const INSTANCE_FILTERS: Readonly<Record<string, (i: Inst) => string | undefined>> = {
  'instance-state-name': (i) => i.state,
  'client-token': (i) => i.clientToken,
  'instance-id': (i) => i.id,
  'instance-type': (i) => i.instanceType,
  'availability-zone': (i) => i.zone,
  'subnet-id': (i) => i.subnetId,
  'reservation-id': (i) => i.reservationId,
};

const MAX_TAGS = 50;

/** Start the fake on 127.0.0.1, port chosen by the OS. */
export async function startFakeEc2(opts: FakeEc2Options = {}): Promise<FakeEc2> {
  const now = opts.now ?? Date.now;
  const pendingMs = opts.pendingMs ?? 0;
  const listingLagMs = opts.listingLagMs ?? 0;
  const terminateMs = opts.terminateMs ?? 0;
  const insufficient = opts.insufficientCapacity ?? new Set<string>();
  const seed = opts.idSeed ?? 'ec2';
  const templates = new Map<string, Template>();
  const subnets = new Map<string, { id: string; zone: string }>();
  const instances = new Map<string, Inst>();
  const byToken = new Map<string, Reservation>();
  const faults = new Map<string, { code: string; status: number; left: number }[]>();
  let serial = 0;

  const hexId = (prefix: string): string => {
    serial++;
    return `${prefix}-0${createHash('sha256').update(`${seed}:${prefix}:${serial}`).digest('hex').slice(0, 16)}`;
  };

  const snapshot = (i: Inst): FakeInstance => ({
    id: i.id, reservationId: i.reservationId, state: i.state, stateReason: i.stateReason ? { ...i.stateReason } : undefined,
    instanceType: i.instanceType, zone: i.zone, subnetId: i.subnetId, privateIp: i.privateIp, clientToken: i.clientToken,
    tags: { ...i.tags }, volumeTags: { ...i.volumeTags }, launchTemplateId: i.launchTemplateId, launchedAt: i.launchedAt,
  });

  const poll = (): void => {
    const t = now();
    for (const i of instances.values()) {
      if (i.state === 'pending' && t >= i.launchedAt + pendingMs) {
        i.state = 'running';
        opts.onRunning?.(snapshot(i));
      }
      if (i.state === 'shutting-down' && i.endingAt !== undefined && t >= i.endingAt + terminateMs) {
        i.state = 'terminated';
        opts.onTerminated?.(snapshot(i));
      }
    }
  };

  const beginEnd = (i: Inst, reason: { code: string; message: string }): void => {
    if (i.state === 'pending' || i.state === 'running' || i.state === 'stopping') {
      i.state = 'shutting-down';
      i.endingAt = now();
      i.stateReason = reason;
    } else if (i.state === 'stopped') {
      i.state = 'terminated';
      i.stateReason = reason;
      opts.onTerminated?.(snapshot(i));
    }
  };

  const instanceXml = (i: Inst): XmlNode => ({
    instanceId: i.id,
    imageId: 'ami-0123456789abcdef0',
    instanceState: { code: STATE_CODE[i.state], name: i.state },
    privateDnsName: `ip-${i.privateIp.replace(/\./g, '-')}.ec2.internal`,
    amiLaunchIndex: 0,
    instanceType: i.instanceType,
    launchTime: new Date(i.launchedAt).toISOString(),
    placement: { availabilityZone: i.zone, tenancy: 'default' },
    subnetId: i.subnetId,
    privateIpAddress: i.privateIp,
    clientToken: i.clientToken,
    tagSet: Object.entries(i.tags).map(([key, value]) => ({ key, value })),
    stateReason: i.stateReason,
  });

  const handlers: Readonly<Record<string, (p: URLSearchParams) => QueryReply>> = {
    RunInstances: (p) => {
      const minCount = intParam(p, 'MinCount');
      const maxCount = intParam(p, 'MaxCount');
      if (minCount < 1 || maxCount < minCount) throw new QueryFault('InvalidParameterValue', `MinCount (${minCount}) must be at least 1 and at most MaxCount (${maxCount})`);
      const template = findTemplate(templates, p.get('LaunchTemplate.LaunchTemplateId'), p.get('LaunchTemplate.LaunchTemplateName'));
      checkVersion(template, p.get('LaunchTemplate.Version'));
      const instanceType = p.get('InstanceType') ?? template.instanceType;
      const subnetId = p.get('SubnetId') ?? template.subnetId ?? subnets.keys().next().value;
      let zone = opts.defaultZone ?? 'us-east-1a';
      if (subnetId !== undefined) {
        const s = subnets.get(subnetId);
        if (s === undefined) throw new QueryFault('InvalidSubnetID.NotFound', `The subnet ID '${subnetId}' does not exist`);
        zone = s.zone;
      }
      const specs = structList(p, 'TagSpecification');
      const tagsFor = (resource: string): Record<string, string> => {
        const out: Record<string, string> = {};
        specs.forEach((s, n) => {
          if (s.ResourceType !== resource) return;
          for (let k = 1; k <= MAX_TAGS + 1; k++) {
            const key = p.get(`TagSpecification.${n + 1}.Tag.${k}.Key`);
            if (key === null) break;
            if (k > MAX_TAGS) throw new QueryFault('TagLimitExceeded', `more than ${MAX_TAGS} tags for ${resource}`);
            out[key] = p.get(`TagSpecification.${n + 1}.Tag.${k}.Value`) ?? '';
          }
        });
        return out;
      };
      const tags = tagsFor('instance');
      const volumeTags = tagsFor('volume');
      if (p.get('DryRun') === 'true') throw new QueryFault('DryRunOperation', 'Request would have succeeded, but DryRun flag is set.', 412);

      const token = p.get('ClientToken') ?? '';
      if (token.length > 64) throw new QueryFault('InvalidParameterValue', 'ClientToken must be at most 64 characters');
      const paramsKey = [...p].filter(([k]) => k !== 'ClientToken' && k !== 'Version').map(([k, v]) => `${k}=${v}`).sort().join('&');
      const earlier = token === '' ? undefined : byToken.get(token);
      if (earlier !== undefined) {
        if (earlier.paramsKey !== paramsKey) throw new QueryFault('IdempotentParameterMismatch', 'Arguments on this idempotent request are inconsistent with arguments used in previous request(s).');
        return runReply(earlier, earlier.instanceIds.map((id) => instances.get(id)).filter((i): i is Inst => i !== undefined));
      }

      if (insufficient.has(instanceType) || insufficient.has(`${instanceType}@${zone}`)) {
        throw new QueryFault('InsufficientInstanceCapacity', `We currently do not have sufficient ${instanceType} capacity in the Availability Zone you requested (${zone}).`, 500);
      }
      const limit = opts.maxPerRequest ?? Number.POSITIVE_INFINITY;
      if (minCount > limit) throw new QueryFault('InsufficientInstanceCapacity', `We currently do not have sufficient ${instanceType} capacity for ${minCount} instances in ${zone}.`, 500);
      const n = Math.min(maxCount, limit);
      const reservationId = hexId('r');
      const launched: Inst[] = [];
      for (let k = 0; k < n; k++) {
        const id = hexId('i');
        const ipN = instances.size + 4;
        const inst: Inst = {
          id, reservationId, state: 'pending', instanceType, zone, subnetId,
          privateIp: `10.0.${Math.floor(ipN / 250) % 256}.${(ipN % 250) + 4}`,
          clientToken: token, tags: { ...tags }, volumeTags: { ...volumeTags }, launchTemplateId: template.id, launchedAt: now(),
        };
        instances.set(id, inst);
        launched.push(inst);
      }
      const reservation: Reservation = { id: reservationId, paramsKey, instanceIds: launched.map((i) => i.id) };
      if (token !== '') byToken.set(token, reservation);
      return runReply(reservation, launched);
    },

    DescribeInstances: (p) => {
      const ids = listParam(p, 'InstanceId');
      const maxResultsRaw = p.get('MaxResults');
      if (ids.length > 0 && maxResultsRaw !== null) throw new QueryFault('InvalidParameterCombination', 'The parameter instancesSet cannot be used with the parameter maxResults');
      const maxResults = maxResultsRaw === null ? Number.POSITIVE_INFINITY : Number(maxResultsRaw);
      if (maxResultsRaw !== null && !(Number.isInteger(maxResults) && maxResults >= 5 && maxResults <= 1000)) {
        throw new QueryFault('InvalidParameterValue', `Value ( ${maxResultsRaw} ) for parameter maxResults is invalid. Expecting a value between 5 and 1000.`);
      }
      const t = now();
      const visible = [...instances.values()].filter((i) => t >= i.launchedAt + listingLagMs);
      const unknown = ids.filter((id) => !visible.some((i) => i.id === id));
      if (unknown.length > 0) throw notFound(unknown);
      const filters = structList(p, 'Filter').map((f, n) => ({ name: f.Name ?? '', values: listParam(p, `Filter.${n + 1}.Value`) }));
      const matchers = filters.map(({ name, values }): ((i: Inst) => boolean) => {
        const patterns = values.map(glob);
        if (name === 'tag-key') return (i) => Object.keys(i.tags).some((k) => patterns.some((re) => re.test(k)));
        const get = name.startsWith('tag:') ? (i: Inst) => i.tags[name.slice(4)] : INSTANCE_FILTERS[name];
        if (get === undefined) throw new QueryFault('InvalidParameterValue', `The filter '${name}' is invalid`);
        return (i) => {
          const v = get(i);
          return v !== undefined && patterns.some((re) => re.test(v));
        };
      });
      const matching = visible.filter((i) => (ids.length === 0 || ids.includes(i.id)) && matchers.every((m) => m(i)));
      const token = p.get('NextToken');
      let start = 0;
      if (token !== null) {
        const m = /^page:(\d+)$/.exec(Buffer.from(token, 'base64').toString('utf8'));
        if (m === null) throw new QueryFault('InvalidParameterValue', 'Invalid NextToken');
        start = Number(m[1]);
      }
      const page = matching.slice(start, start + maxResults);
      const next = start + page.length < matching.length ? Buffer.from(`page:${start + page.length}`).toString('base64') : undefined;
      const groups: { reservationId: string; items: Inst[] }[] = [];
      for (const i of page) {
        const last = groups[groups.length - 1];
        if (last !== undefined && last.reservationId === i.reservationId) last.items.push(i);
        else groups.push({ reservationId: i.reservationId, items: [i] });
      }
      return ec2Reply('DescribeInstances', {
        reservationSet: groups.map((g) => ({ reservationId: g.reservationId, ownerId: '123456789012', groupSet: [], instancesSet: g.items.map(instanceXml) })),
        nextToken: next,
      });
    },

    TerminateInstances: (p) => {
      const ids = listParam(p, 'InstanceId');
      if (ids.length === 0) throw new QueryFault('MissingParameter', 'The request must contain the parameter InstanceId');
      if (ids.length > 1000) throw new QueryFault('InvalidParameterValue', 'at most 1000 instance ids per call');
      const malformed = ids.filter((id) => !/^i-[0-9a-f]{8}([0-9a-f]{9})?$/.test(id));
      if (malformed.length > 0) throw new QueryFault('InvalidInstanceID.Malformed', `Invalid id: "${malformed[0]}"`);
      const unknown = ids.filter((id) => !instances.has(id));
      // As EC2: one unknown id fails the whole call and nothing is terminated.
      if (unknown.length > 0) throw notFound(unknown);
      const changes = ids.map((id) => {
        const i = instances.get(id) as Inst;
        const previous = i.state;
        beginEnd(i, { code: 'Client.UserInitiatedShutdown', message: 'Client.UserInitiatedShutdown: User initiated shutdown' });
        return { instanceId: id, currentState: { code: STATE_CODE[i.state], name: i.state }, previousState: { code: STATE_CODE[previous], name: previous } };
      });
      return ec2Reply('TerminateInstances', { instancesSet: changes });
    },

    DescribeLaunchTemplates: (p) => {
      const ids = listParam(p, 'LaunchTemplateId');
      const names = listParam(p, 'LaunchTemplateName');
      const found: Template[] = [];
      for (const id of ids) found.push(findTemplate(templates, id, null));
      for (const name of names) found.push(findTemplate(templates, null, name));
      const list = ids.length === 0 && names.length === 0 ? [...templates.values()] : found;
      return ec2Reply('DescribeLaunchTemplates', {
        launchTemplates: list.map((t) => ({
          launchTemplateId: t.id, launchTemplateName: t.name, createTime: new Date(t.createdAt).toISOString(),
          createdBy: 'arn:aws:iam::123456789012:user/test', defaultVersionNumber: 1, latestVersionNumber: t.latestVersion,
        })),
      });
    },

    DescribeSubnets: (p) => {
      const ids = listParam(p, 'SubnetId');
      const unknown = ids.filter((id) => !subnets.has(id));
      if (unknown.length > 0) throw new QueryFault('InvalidSubnetID.NotFound', `The subnet ID '${unknown.join(', ')}' does not exist`);
      const list = ids.length === 0 ? [...subnets.values()] : ids.map((id) => subnets.get(id) as { id: string; zone: string });
      return ec2Reply('DescribeSubnets', {
        subnetSet: list.map((s, n) => ({
          subnetId: s.id, state: 'available', vpcId: 'vpc-0123456789abcdef0', cidrBlock: `10.0.${n}.0/24`,
          availableIpAddressCount: 250, availabilityZone: s.zone, defaultForAz: false,
        })),
      });
    },
  };

  const runReply = (r: Reservation, list: readonly Inst[]): QueryReply =>
    ec2Reply('RunInstances', { reservationId: r.id, ownerId: '123456789012', groupSet: [], instancesSet: list.map(instanceXml) });

  const server = await startQueryServer((action, params) => {
    poll();
    const queue = faults.get(action);
    const fault = queue?.[0];
    if (queue !== undefined && fault !== undefined) {
      fault.left--;
      if (fault.left <= 0) queue.shift();
      throw new QueryFault(fault.code, `injected ${fault.code}`, fault.status);
    }
    const handler = handlers[action];
    if (handler === undefined) throw new QueryFault('InvalidAction', `The action ${action} is not valid for this web service.`);
    return handler(params);
  }, 'ec2');

  const pollMs = opts.pollMs ?? 50;
  const timer = opts.now === undefined && pollMs > 0 ? setInterval(poll, pollMs) : undefined;
  timer?.unref();

  return {
    endpoint: server.endpoint,
    calls: server.calls,
    insufficientCapacity: insufficient,
    addLaunchTemplate: (t) => {
      templates.set(t.id, { id: t.id, name: t.name, instanceType: t.instanceType ?? 't3.micro', subnetId: t.subnetId, latestVersion: t.latestVersion ?? 1, createdAt: now() });
    },
    addSubnet: (s) => {
      subnets.set(s.id, { id: s.id, zone: s.zone });
    },
    failNext: (action, code, times = 1, status) => {
      const queue = faults.get(action) ?? [];
      queue.push({ code, status: status ?? DEFAULT_STATUS[code] ?? 400, left: times });
      faults.set(action, queue);
    },
    interrupt: (id, reason = 'Server.SpotInstanceTermination: Spot instance termination') => {
      const i = instances.get(id);
      if (i === undefined) throw new TypeError(`fake EC2 has no instance ${id}`);
      beginEnd(i, { code: reason.split(':')[0] ?? reason, message: reason });
    },
    poll,
    instances: () => {
      poll();
      return [...instances.values()].map(snapshot);
    },
    close: async () => {
      if (timer !== undefined) clearInterval(timer);
      await server.close();
    },
  };
}

function intParam(p: URLSearchParams, name: string): number {
  const v = p.get(name);
  if (v === null) throw new QueryFault('MissingParameter', `The request must contain the parameter ${name}`);
  const n = Number(v);
  if (!Number.isInteger(n)) throw new QueryFault('InvalidParameterValue', `Invalid value '${v}' for ${name}`);
  return n;
}

function findTemplate(templates: ReadonlyMap<string, Template>, id: string | null, name: string | null): Template {
  if ((id === null) === (name === null)) throw new QueryFault('InvalidParameterCombination', 'give exactly one of LaunchTemplateId and LaunchTemplateName');
  if (id !== null) {
    if (!/^lt-[0-9a-f]{8,17}$/.test(id)) throw new QueryFault('InvalidLaunchTemplateId.Malformed', `The specified ID for the launch template '${id}' is not valid.`);
    const t = templates.get(id);
    if (t === undefined) throw new QueryFault('InvalidLaunchTemplateId.NotFound', `The specified launch template, with template ID ${id}, does not exist.`);
    return t;
  }
  const t = [...templates.values()].find((x) => x.name === name);
  if (t === undefined) throw new QueryFault('InvalidLaunchTemplateName.NotFoundException', `The specified launch template, with template name ${name ?? ''}, does not exist.`);
  return t;
}

function checkVersion(t: Template, version: string | null): void {
  if (version === null || version === '$Default' || version === '$Latest') return;
  const n = Number(version);
  if (!Number.isInteger(n) || n < 1 || n > t.latestVersion) {
    throw new QueryFault('InvalidLaunchTemplateId.VersionNotFound', `Could not find launch template version ${version} for template ${t.id}.`);
  }
}

function notFound(ids: readonly string[]): QueryFault {
  return ids.length === 1
    ? new QueryFault('InvalidInstanceID.NotFound', `The instance ID '${ids[0] ?? ''}' does not exist`)
    : new QueryFault('InvalidInstanceID.NotFound', `The instance IDs '${ids.join(', ')}' do not exist`);
}

/** EC2 filter values may use `*` and `?`. */
function glob(pattern: string): RegExp {
  return new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
}
