/**
 * The `aws-ec2` provider: the controller launches and terminates plain EC2 instances from a launch
 * template (lifecycle `controller`). Launches are idempotent by EC2's ClientToken, derived from
 * the controller's launch token; every instance carries the group, managed-by and launch-token
 * tags, and `list` finds the group by its tag.
 */
import { createHash } from 'node:crypto';
import {
  DescribeInstancesCommand, DescribeLaunchTemplatesCommand, DescribeSubnetsCommand, EC2Client, RunInstancesCommand,
  TerminateInstancesCommand, type _InstanceType, type EC2ClientConfig, type Instance, type RunInstancesCommandInput,
} from '@aws-sdk/client-ec2';
import type { Logger } from '../../lib/logger.js';
import { classifyAwsError, sdkClientConfig, type AwsClientSettings } from './aws-common.js';
import { ProviderError, type InstanceProvider, type LaunchRequest, type LaunchResult, type ProviderInstance, type ProviderListing, type TerminateRequest, type TerminateResult } from './types.js';

/** Tag keys set on every instance and volume the controller launches. */
export const EC2_TAGS = {
  group: 'autoscaler:group',
  managedBy: 'autoscaler:managed-by',
  launchToken: 'autoscaler:launch-token',
} as const;

/** DescribeInstances page size (EC2 allows 5–1000). */
export const DEFAULT_EC2_PAGE_SIZE = 500;
/** `list` gives up after this many pages rather than loop on a misbehaving API. */
export const DEFAULT_EC2_MAX_PAGES = 100;
/** TerminateInstances takes at most this many ids per call. */
const TERMINATE_BATCH = 1000;
/** EC2's ClientToken limit, characters. */
const CLIENT_TOKEN_MAX = 64;
/** Every state, so that ended instances are reported as gone rather than vanishing. */
const LISTED_STATES = ['pending', 'running', 'shutting-down', 'stopping', 'stopped', 'terminated'];

export interface Ec2ProviderOptions {
  /** Region, endpoint override and attempts per call (adaptive retries). */
  readonly aws: AwsClientSettings;
  /**
   * Static credentials or a credential provider. Undefined (production): the SDK's default
   * chain, i.e. the instance profile when the controller runs on EC2. Tests pass static ones.
   */
  readonly credentials?: EC2ClientConfig['credentials'] | undefined;
  /**
   * The launch template: exactly one of `id` (EC2_LAUNCH_TEMPLATE_ID) and `name`
   * (EC2_LAUNCH_TEMPLATE_NAME) is non-empty. `version`: "$Default", "$Latest" or a number;
   * empty means "$Default".
   */
  readonly launchTemplate: { readonly id: string; readonly name: string; readonly version: string };
  /** Instance type overrides in order of preference (fallback on InsufficientCapacity). Empty: the template's type. */
  readonly instanceTypes: readonly string[];
  /** Subnets to launch into, ideally one per availability zone. Empty: the template's (or the default VPC's). */
  readonly subnetIds: readonly string[];
  /** Extra tags on every instance and volume, besides the autoscaler:* ones (which win on a clash). */
  readonly tags: Readonly<Record<string, string>>;
  readonly log: Logger;
  /** DescribeInstances page size, 5–1000. Default 500 (DEFAULT_EC2_PAGE_SIZE). */
  readonly pageSize?: number | undefined;
  /** At most this many DescribeInstances pages per `list`; more is an error. Default 100 (DEFAULT_EC2_MAX_PAGES). */
  readonly maxPages?: number | undefined;
}

/** One RunInstances attempt: an instance type and a subnet (undefined: the template's). */
interface Placement {
  readonly instanceType?: string | undefined;
  readonly subnetId?: string | undefined;
}

/**
 * The ClientToken of attempt `attempt` (0, 1, … over the type × subnet combinations) of a launch:
 * `<token>.<attempt>`. Each attempt has other parameters, and EC2 refuses a token reused with
 * other parameters, so each needs its own; the same launch retried (after a crash or a timeout)
 * yields the same tokens, so EC2 returns the instances it already launched. When that would
 * exceed 64 characters (tokens over 61), the token is replaced by as many hex digits of its
 * SHA-256 as fit: `<sha256(token) prefix>.<attempt>`, still deterministic.
 */
export function ec2ClientToken(token: string, attempt: number): string {
  const suffix = `.${attempt}`;
  if (token.length + suffix.length <= CLIENT_TOKEN_MAX) return `${token}${suffix}`;
  return `${createHash('sha256').update(token).digest('hex').slice(0, CLIENT_TOKEN_MAX - suffix.length)}${suffix}`;
}

/**
 * An EC2 state in the contract's words: pending → pending, running → running,
 * shutting-down/stopping → terminating, stopped/terminated → gone. `detail` is EC2's state name,
 * with the state reason when EC2 gives one. An unknown state counts as pending.
 */
export function mapEc2State(name: string | undefined, reason?: string | undefined): Pick<ProviderInstance, 'state' | 'detail'> {
  const detail = `${name ?? 'unknown'}${reason ? ` (${reason})` : ''}`;
  switch (name) {
    case 'running': return { state: 'running', detail };
    case 'shutting-down':
    case 'stopping': return { state: 'terminating', detail };
    case 'stopped':
    case 'terminated': return { state: 'gone', detail };
    default: return { state: 'pending', detail };
  }
}

/**
 * Plain EC2 instances from a launch template.
 *
 * Launch fallback order: instance types in order of preference, and for each type every subnet,
 * so that a less preferred type is used only when no zone has the preferred one. The first subnet
 * tried is chosen by a hash of the launch token (deterministic across retries of one launch,
 * spread across zones over many launches). One RunInstances per attempt launches all `count`
 * instances (MinCount 1) in one subnet.
 */
export class Ec2Provider implements InstanceProvider {
  readonly name = 'aws-ec2';
  readonly lifecycle = 'controller' as const;
  readonly instancesEndWithController = false;
  private readonly client: EC2Client;
  private readonly log: Logger;
  private readonly pageSize: number;
  private readonly maxPages: number;
  private readonly template: NonNullable<RunInstancesCommandInput['LaunchTemplate']>;

  constructor(private readonly opts: Ec2ProviderOptions) {
    const { id, name, version } = opts.launchTemplate;
    if ((id === '') === (name === '')) throw new TypeError('Ec2Provider needs exactly one of launchTemplate.id and launchTemplate.name');
    this.pageSize = opts.pageSize ?? DEFAULT_EC2_PAGE_SIZE;
    this.maxPages = opts.maxPages ?? DEFAULT_EC2_MAX_PAGES;
    if (!Number.isInteger(this.pageSize) || this.pageSize < 5 || this.pageSize > 1000) throw new TypeError(`Ec2Provider pageSize must be 5-1000, got ${this.pageSize}`);
    if (!Number.isInteger(this.maxPages) || this.maxPages < 1) throw new TypeError(`Ec2Provider maxPages must be at least 1, got ${this.maxPages}`);
    this.template = { ...(id ? { LaunchTemplateId: id } : { LaunchTemplateName: name }), Version: version || '$Default' };
    this.log = opts.log.child({ component: 'provider', provider: 'aws-ec2' });
    this.client = new EC2Client({ ...sdkClientConfig(opts.aws), ...(opts.credentials ? { credentials: opts.credentials } : {}) });
  }

  async verify(groupId: string, _bounds: { readonly minSize: number; readonly maxSize: number }): Promise<void> {
    const { id, name, version } = this.opts.launchTemplate;
    const key = id ? 'EC2_LAUNCH_TEMPLATE_ID' : 'EC2_LAUNCH_TEMPLATE_NAME';
    const value = id || name;
    const missing = (e: ProviderError | undefined, what: string, action = 'ec2:DescribeLaunchTemplates'): ProviderError =>
      new ProviderError(`${what}${e ? ` (${e.message})` : ''}`, e?.code === 'InvalidRequest' ? 'InvalidRequest' : 'NotFound', groupId,
        { cloudCode: e?.details.cloudCode, action: e?.details.action ?? action }, { cause: e });
    let templates;
    try {
      templates = await this.send(groupId, 'DescribeLaunchTemplates', (c) => c.send(new DescribeLaunchTemplatesCommand(id ? { LaunchTemplateIds: [id] } : { LaunchTemplateNames: [name] })));
    } catch (err) {
      const e = err as ProviderError;
      if (e.code === 'NotFound' || e.code === 'InvalidRequest') throw missing(e, `launch template ${key}=${value} not found`);
      throw e;
    }
    const t = templates.LaunchTemplates?.[0];
    if (t === undefined) throw missing(undefined, `launch template ${key}=${value} not found`);
    if (/^\d+$/.test(version) && t.LatestVersionNumber !== undefined && Number(version) > t.LatestVersionNumber) {
      throw missing(undefined, `EC2_LAUNCH_TEMPLATE_VERSION=${version} not found: ${key}=${value} has versions 1-${t.LatestVersionNumber}`);
    }
    const subnetIds = this.opts.subnetIds;
    if (subnetIds.length > 0) {
      const what = `subnet of EC2_SUBNET_IDS=${subnetIds.join(',')} not found`;
      let subnets;
      try {
        subnets = await this.send(groupId, 'DescribeSubnets', (c) => c.send(new DescribeSubnetsCommand({ SubnetIds: [...subnetIds] })));
      } catch (err) {
        const e = err as ProviderError;
        if (e.code === 'NotFound' || e.code === 'InvalidRequest') throw missing(e, what);
        throw e;
      }
      const found = new Set((subnets.Subnets ?? []).map((s) => s.SubnetId));
      const absent = subnetIds.filter((s) => !found.has(s));
      if (absent.length > 0) throw missing(undefined, `${what}: ${absent.join(',')}`, 'ec2:DescribeSubnets');
    }
    // A dry run proves ec2:RunInstances (and iam:PassRole for the template's profile) is allowed.
    const first = this.placements('')[0] ?? {};
    try {
      await this.send(groupId, 'RunInstances', (c) => c.send(new RunInstancesCommand({ ...this.runInput(groupId, '', 1, first), DryRun: true })));
    } catch (err) {
      // EC2's answer to an allowed dry run is this error.
      if ((err as ProviderError).details.cloudCode === 'DryRunOperation') return;
      throw err;
    }
    throw new ProviderError('ec2:RunInstances with DryRun launched instead of answering DryRunOperation', 'Unknown', groupId, { action: 'ec2:RunInstances' });
  }

  async launch(req: LaunchRequest): Promise<LaunchResult> {
    const { groupId, token, count } = req;
    if (!Number.isInteger(count) || count < 1) throw new TypeError(`launch count must be a positive integer, got ${count}`);
    if (token.length < 1 || token.length > CLIENT_TOKEN_MAX) throw new TypeError('launch token must be 1-64 characters');
    const placements = this.placements(token);
    let last: ProviderError | undefined;
    for (const [attempt, placement] of placements.entries()) {
      const clientToken = ec2ClientToken(token, attempt);
      try {
        const out = await this.send(groupId, 'RunInstances', (c) => c.send(new RunInstancesCommand({ ...this.runInput(groupId, token, count, placement), ClientToken: clientToken })));
        const instances = (out.Instances ?? []).flatMap((i) => this.toInstance(i, groupId, token));
        this.log.info({ groupId, token, count, accepted: instances.length, instanceType: placement.instanceType, subnetId: placement.subnetId, ids: instances.map((i) => i.id) }, 'instances launched');
        return this.result(groupId, count, instances, placement);
      } catch (err) {
        const e = err as ProviderError;
        if (e.code === 'IdempotencyMismatch') {
          // The token was used with other parameters (config changed across a crash): that launch happened.
          const earlier = await this.findByClientToken(groupId, clientToken);
          if (earlier.length === 0) throw e;
          this.log.warn({ groupId, token, clientToken, ids: earlier.map((i) => i.id) }, 'launch token already used with other parameters; returning its instances');
          return this.result(groupId, count, earlier, placement);
        }
        if (e.code !== 'InsufficientCapacity') throw e;
        this.log.info({ groupId, token, attempt, instanceType: placement.instanceType, subnetId: placement.subnetId, cloudCode: e.details.cloudCode }, 'no capacity; trying the next instance type or subnet');
        last = e;
      }
    }
    throw last ?? new ProviderError('no launch attempt was made', 'Unknown', groupId);
  }

  async terminate(req: TerminateRequest): Promise<TerminateResult> {
    const accepted: string[] = [];
    const failed: { id: string; error: ProviderError }[] = [];
    const ids = [...new Set(req.ids)];
    for (let i = 0; i < ids.length; i += TERMINATE_BATCH) await this.terminateBatch(req.groupId, ids.slice(i, i + TERMINATE_BATCH), accepted, failed);
    if (accepted.length > 0) this.log.info({ groupId: req.groupId, ids: accepted }, 'termination accepted');
    return { accepted, failed };
  }

  async setDesiredCapacity(_req: { readonly groupId: string; readonly desired: number }): Promise<void> {
    throw new TypeError('aws-ec2 has a controller lifecycle: the controller launches and terminates, there is no desired capacity to set');
  }

  async list(groupId: string): Promise<ProviderListing> {
    const found = new Map<string, ProviderInstance>();
    let nextToken: string | undefined;
    for (let page = 0; page < this.maxPages; page++) {
      const out = await this.send(groupId, 'DescribeInstances', (c) => c.send(new DescribeInstancesCommand({
        Filters: [{ Name: `tag:${EC2_TAGS.group}`, Values: [groupId] }, { Name: 'instance-state-name', Values: LISTED_STATES }],
        MaxResults: this.pageSize,
        NextToken: nextToken,
      })));
      for (const r of out.Reservations ?? []) for (const i of r.Instances ?? []) for (const p of this.toInstance(i, groupId)) found.set(p.id, p);
      nextToken = out.NextToken;
      if (!nextToken) return { instances: [...found.values()] };
    }
    throw new ProviderError(`ec2:DescribeInstances for group ${groupId} returned more than ${this.maxPages} pages of ${this.pageSize}`, 'Unknown', groupId, { action: 'ec2:DescribeInstances' });
  }

  async close(): Promise<void> {
    this.client.destroy();
  }

  /** Type × subnet combinations, types outer (preference), subnets inner starting at a token-chosen one. */
  private placements(token: string): Placement[] {
    const types = this.opts.instanceTypes.length > 0 ? this.opts.instanceTypes : [undefined];
    const subnets = this.opts.subnetIds;
    const start = subnets.length > 0 ? createHash('sha256').update(token).digest().readUInt32BE(0) % subnets.length : 0;
    const rotated = subnets.length > 0 ? [...subnets.slice(start), ...subnets.slice(0, start)] : [undefined];
    return types.flatMap((instanceType) => rotated.map((subnetId) => ({ instanceType, subnetId })));
  }

  private runInput(groupId: string, token: string, count: number, p: Placement): RunInstancesCommandInput {
    const tags = Object.entries({ ...this.opts.tags, [EC2_TAGS.group]: groupId, [EC2_TAGS.managedBy]: 'autoscaler', ...(token ? { [EC2_TAGS.launchToken]: token } : {}) })
      .map(([Key, Value]) => ({ Key, Value }));
    return {
      MinCount: 1,
      MaxCount: count,
      LaunchTemplate: this.template,
      // Config validates the shape; EC2 judges the name (any string goes on the wire).
      ...(p.instanceType ? { InstanceType: p.instanceType as _InstanceType } : {}),
      ...(p.subnetId ? { SubnetId: p.subnetId } : {}),
      TagSpecifications: [{ ResourceType: 'instance', Tags: tags }, { ResourceType: 'volume', Tags: tags }],
    };
  }

  private result(groupId: string, count: number, instances: readonly ProviderInstance[], p: Placement): LaunchResult {
    if (instances.length >= count) return { instances };
    const where = [p.instanceType, p.subnetId].filter(Boolean).join(' in ');
    return {
      instances,
      shortfall: new ProviderError(`ec2:RunInstances accepted ${instances.length} of ${count} instances${where ? ` (${where})` : ''}: not enough capacity`, 'InsufficientCapacity', groupId, { action: 'ec2:RunInstances' }),
    };
  }

  private async findByClientToken(groupId: string, clientToken: string): Promise<ProviderInstance[]> {
    const out = await this.send(groupId, 'DescribeInstances', (c) => c.send(new DescribeInstancesCommand({ Filters: [{ Name: 'client-token', Values: [clientToken] }] })));
    return (out.Reservations ?? []).flatMap((r) => (r.Instances ?? []).flatMap((i) => this.toInstance(i, groupId)));
  }

  /** Terminate a batch; when an id is unknown (EC2 fails the whole call), halve it until the unknown ids stand alone. */
  private async terminateBatch(groupId: string, ids: readonly string[], accepted: string[], failed: { id: string; error: ProviderError }[]): Promise<void> {
    try {
      await this.send(groupId, 'TerminateInstances', (c) => c.send(new TerminateInstancesCommand({ InstanceIds: [...ids] })));
      accepted.push(...ids);
    } catch (err) {
      const e = err as ProviderError;
      const idProblem = e.details.cloudCode === 'InvalidInstanceID.NotFound' || e.details.cloudCode === 'InvalidInstanceID.Malformed';
      if (idProblem && ids.length > 1) {
        const half = Math.ceil(ids.length / 2);
        await this.terminateBatch(groupId, ids.slice(0, half), accepted, failed);
        await this.terminateBatch(groupId, ids.slice(half), accepted, failed);
      } else if (e.details.cloudCode === 'InvalidInstanceID.NotFound') {
        this.log.debug({ groupId, id: ids[0] }, 'instance unknown to EC2; counted as terminated');
        accepted.push(...ids);
      } else {
        for (const id of ids) failed.push({ id, error: e });
      }
    }
  }

  private toInstance(i: Instance, groupId: string, token?: string): ProviderInstance[] {
    if (!i.InstanceId) return [];
    const tag = (key: string) => i.Tags?.find((t) => t.Key === key)?.Value;
    return [{
      id: i.InstanceId,
      groupId,
      ...mapEc2State(i.State?.Name, i.StateReason?.Message),
      launchToken: tag(EC2_TAGS.launchToken) ?? token,
      launchedAt: i.LaunchTime?.getTime(),
      zone: i.Placement?.AvailabilityZone,
      instanceType: i.InstanceType,
      address: i.PrivateIpAddress,
    }];
  }

  /** One SDK call; failures classified (the SDK has already retried), throttling logged. */
  private async send<O>(groupId: string, action: string, call: (c: EC2Client) => Promise<O>): Promise<O> {
    try {
      return await call(this.client);
    } catch (err) {
      const e = classifyAwsError(err, groupId, `ec2:${action}`);
      if (e.code === 'Throttled') {
        const attempts = (err as { $metadata?: { attempts?: number } }).$metadata?.attempts;
        this.log.warn({ groupId, action: e.details.action, cloudCode: e.details.cloudCode, attempts }, 'ec2 call throttled');
      }
      throw e;
    }
  }
}
