/**
 * The `aws-asg` provider: drives an existing EC2 Auto Scaling group. The cloud owns the lifecycle
 * (it launches and replaces instances to keep its desired count); the controller sets that count
 * and, on scale-in, picks which instances go (TerminateInstanceInAutoScalingGroup with
 * decrement). Reads: DescribeAutoScalingGroups and DescribeInstanceRefreshes.
 */
import {
  AutoScalingClient,
  DescribeAutoScalingGroupsCommand,
  DescribeInstanceRefreshesCommand,
  SetDesiredCapacityCommand,
  TerminateInstanceInAutoScalingGroupCommand,
  type AutoScalingClientConfig,
  type AutoScalingGroup,
  type Instance,
} from '@aws-sdk/client-auto-scaling';
import type { Logger } from '../../lib/logger.js';
import { classifyAwsError, sdkClientConfig, type AwsClientSettings } from './aws-common.js';
import {
  ProviderError,
  type InstanceProvider,
  type LaunchResult,
  type ProviderInstance,
  type ProviderListing,
  type TerminateRequest,
  type TerminateResult,
} from './types.js';

/** TerminateInstanceInAutoScalingGroup calls in flight at once, per terminate(). */
export const DEFAULT_TERMINATE_CONCURRENCY = 4;
/** Pages of DescribeAutoScalingGroups read while looking for one group (one name: one page). */
const MAX_DESCRIBE_PAGES = 10;
/** The newest instance refreshes looked at: an active one is always the newest. */
const REFRESH_RECORDS = 5;
/** Processes whose suspension stops the controller from acting. */
const BLOCKING_PROCESSES: ReadonlySet<string> = new Set(['Launch', 'Terminate', 'AlterDesiredCapacity']);
/** Instance refresh states during which the ASG replaces instances itself. */
const ACTIVE_REFRESH: ReadonlySet<string> = new Set(['Pending', 'InProgress', 'Cancelling', 'RollbackInProgress', 'Baking']);

/** Auto Scaling's LifecycleState in our vocabulary; null: not listed (warm pool, not capacity). */
function mapLifecycle(state: string): ProviderInstance['state'] | null {
  if (state.startsWith('Warmed:')) return null;
  switch (state) {
    case 'InService':
      return 'running';
    case 'Terminating':
    case 'Terminating:Wait':
    case 'Terminating:Proceed':
    case 'Terminating:Retained':
    case 'Detaching':
    case 'EnteringStandby':
      return 'terminating';
    case 'Terminated':
    case 'Detached':
    case 'Standby':
      return 'gone';
    default:
      // Pending, Pending:Wait, Pending:Proceed, and states this code does not know yet
      // (ReplacingRootVolume…, Quarantined): in the group, not serving.
      return 'pending';
  }
}

/** Credentials for the SDK client, as the SDK takes them (static or a provider function). */
export type AsgCredentials = NonNullable<AutoScalingClientConfig['credentials']>;

export interface AsgProviderOptions {
  /** Region, endpoint override and attempts per call (adaptive retries). */
  readonly aws: AwsClientSettings;
  /** SDK credentials. Default: the SDK's default chain (the instance profile on EC2). Tests pass static ones. */
  readonly credentials?: AsgCredentials | undefined;
  /** The ASG name of one of our groups (config ASG_NAME). Default: the group id itself. */
  readonly asgName?: ((groupId: string) => string) | undefined;
  /** TerminateInstanceInAutoScalingGroup calls in flight at once, at least 1. Default 4. */
  readonly terminateConcurrency?: number | undefined;
  /** The provider logs through one child: `{ component: 'provider', provider: 'aws-asg' }`. */
  readonly log: Logger;
}

/** Run `fn` over `items` with at most `limit` calls pending at once; `fn` must not throw. */
async function forEachBounded<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

interface SdkMetadata {
  $metadata?: { attempts?: number; totalRetryDelay?: number };
}

/** Drives an existing Auto Scaling group; see the file comment. */
export class AsgProvider implements InstanceProvider {
  readonly name = 'aws-asg';
  readonly lifecycle = 'cloud';
  readonly instancesEndWithController = false;
  readonly #client: AutoScalingClient;
  readonly #log: Logger;
  readonly #asgName: (groupId: string) => string;
  readonly #terminateConcurrency: number;

  constructor(opts: AsgProviderOptions) {
    const concurrency = opts.terminateConcurrency ?? DEFAULT_TERMINATE_CONCURRENCY;
    if (!Number.isInteger(concurrency) || concurrency < 1) throw new TypeError(`terminateConcurrency must be an integer >= 1, got ${concurrency}`);
    this.#terminateConcurrency = concurrency;
    this.#asgName = opts.asgName ?? ((groupId) => groupId);
    this.#log = opts.log.child({ component: 'provider', provider: 'aws-asg' });
    this.#client = new AutoScalingClient({ ...sdkClientConfig(opts.aws), ...(opts.credentials !== undefined ? { credentials: opts.credentials } : {}) });
  }

  async verify(groupId: string, bounds: { readonly minSize: number; readonly maxSize: number }): Promise<void> {
    const asg = await this.#describe(groupId);
    // Also proves the role may read instance refreshes, which every list() needs.
    await this.#activeRefresh(groupId);
    const problems: string[] = [];
    const min = asg.MinSize ?? 0;
    const max = asg.MaxSize ?? 0;
    if (bounds.minSize < min) problems.push(`GROUP_MIN_SIZE=${bounds.minSize} is below the ASG's MinSize ${min}`);
    if (bounds.maxSize > max) problems.push(`GROUP_MAX_SIZE=${bounds.maxSize} is above the ASG's MaxSize ${max}`);
    if (problems.length > 0) {
      throw new ProviderError(
        `group ${groupId} does not fit ASG ${this.#asgName(groupId)} (MinSize ${min}, MaxSize ${max}): ${problems.join('; ')}`,
        'InvalidRequest', groupId, { action: 'autoscaling:DescribeAutoScalingGroups' },
      );
    }
  }

  async launch(): Promise<LaunchResult> {
    throw new TypeError('aws-asg: the Auto Scaling group launches its own instances; call setDesiredCapacity');
  }

  async list(groupId: string): Promise<ProviderListing> {
    const asg = await this.#describe(groupId);
    const name = this.#asgName(groupId);
    const blocked: string[] = [];
    if (asg.Status) blocked.push(`ASG ${name} is "${asg.Status}"`);
    const suspended = (asg.SuspendedProcesses ?? []).map((p) => p.ProcessName ?? '').filter((p) => BLOCKING_PROCESSES.has(p));
    if (suspended.length === 1) blocked.push(`process ${suspended[0]} is suspended on ASG ${name}`);
    else if (suspended.length > 1) blocked.push(`processes ${suspended.join(', ')} are suspended on ASG ${name}`);
    const refresh = await this.#activeRefresh(groupId);
    if (refresh !== undefined) blocked.push(`instance refresh ${refresh.id} is ${refresh.status} on ASG ${name}`);
    const instances: ProviderInstance[] = [];
    for (const i of asg.Instances ?? []) {
      const mapped = this.#instance(groupId, i);
      if (mapped !== undefined) instances.push(mapped);
    }
    return {
      instances,
      capacity: { desired: asg.DesiredCapacity ?? 0, min: asg.MinSize ?? 0, max: asg.MaxSize ?? 0 },
      blocked: blocked.length > 0 ? blocked.join('; ') : undefined,
    };
  }

  async setDesiredCapacity(req: { readonly groupId: string; readonly desired: number }): Promise<void> {
    if (!Number.isInteger(req.desired) || req.desired < 0) throw new TypeError(`desired must be an integer >= 0, got ${req.desired}`);
    const name = this.#asgName(req.groupId);
    await this.#send(req.groupId, 'SetDesiredCapacity',
      () => this.#client.send(new SetDesiredCapacityCommand({ AutoScalingGroupName: name, DesiredCapacity: req.desired, HonorCooldown: false })));
    this.#log.info({ groupId: req.groupId, asg: name, desired: req.desired }, 'desired capacity set');
  }

  async terminate(req: TerminateRequest): Promise<TerminateResult> {
    const ids = [...new Set(req.ids)];
    if (ids.length === 0) return { accepted: [], failed: [] };
    const inGroup = await this.#liveIds(req.groupId);
    const accepted = ids.filter((id) => !inGroup.has(id));
    const failed: { id: string; error: ProviderError }[] = [];
    await forEachBounded(ids.filter((id) => inGroup.has(id)), this.#terminateConcurrency, async (id) => {
      try {
        await this.#send(req.groupId, 'TerminateInstanceInAutoScalingGroup',
          () => this.#client.send(new TerminateInstanceInAutoScalingGroupCommand({ InstanceId: id, ShouldDecrementDesiredCapacity: req.decrement })));
        accepted.push(id);
      } catch (err) {
        failed.push({ id, error: err as ProviderError });
      }
    });
    let stillFailed = failed;
    if (failed.length > 0) {
      // An instance that left the group between the listing and the call fails with a
      // ValidationError; it is gone, which is what was asked. Decided by the listing, not the message.
      const now = await this.#liveIds(req.groupId).catch(() => undefined);
      if (now !== undefined) {
        stillFailed = failed.filter((f) => now.has(f.id));
        for (const f of failed) if (!now.has(f.id)) accepted.push(f.id);
      }
    }
    this.#log.info({
      groupId: req.groupId, asg: this.#asgName(req.groupId), decrement: req.decrement, accepted, failed: stillFailed.map((f) => ({ id: f.id, code: f.error.code })),
    }, 'terminate requested');
    return { accepted, failed: stillFailed };
  }

  async close(): Promise<void> {
    this.#client.destroy();
  }

  /** Ids of the group's instances that are neither gone nor already terminating. */
  async #liveIds(groupId: string): Promise<Set<string>> {
    const asg = await this.#describe(groupId);
    const out = new Set<string>();
    for (const i of asg.Instances ?? []) {
      const state = mapLifecycle(i.LifecycleState ?? '');
      if (i.InstanceId && state !== 'gone' && state !== 'terminating') out.add(i.InstanceId);
    }
    return out;
  }

  #instance(groupId: string, i: Instance): ProviderInstance | undefined {
    const lifecycle = i.LifecycleState ?? 'unknown';
    const state = mapLifecycle(lifecycle);
    if (state === null || !i.InstanceId) return undefined;
    return {
      id: i.InstanceId,
      groupId,
      state,
      detail: i.HealthStatus === 'Unhealthy' ? `${lifecycle}, Unhealthy (the ASG will replace it)` : lifecycle,
      zone: i.AvailabilityZone,
      instanceType: i.InstanceType,
    };
  }

  /** The group's ASG; NotFound naming ASG_NAME when there is none. */
  async #describe(groupId: string): Promise<AutoScalingGroup> {
    const name = this.#asgName(groupId);
    let token: string | undefined;
    for (let page = 0; page < MAX_DESCRIBE_PAGES; page++) {
      const out = await this.#send(groupId, 'DescribeAutoScalingGroups',
        () => this.#client.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [name], NextToken: token })));
      const asg = out.AutoScalingGroups?.find((g) => g.AutoScalingGroupName === name);
      if (asg !== undefined) return asg;
      token = out.NextToken;
      if (!token) break;
    }
    throw new ProviderError(
      `ASG "${name}" does not exist in this region (ASG_NAME maps group ${groupId} to "${name}"): create it or fix ASG_NAME`,
      'NotFound', groupId, { action: 'autoscaling:DescribeAutoScalingGroups' },
    );
  }

  /** The group's active instance refresh, if any. */
  async #activeRefresh(groupId: string): Promise<{ id: string; status: string } | undefined> {
    const name = this.#asgName(groupId);
    const out = await this.#send(groupId, 'DescribeInstanceRefreshes',
      () => this.#client.send(new DescribeInstanceRefreshesCommand({ AutoScalingGroupName: name, MaxRecords: REFRESH_RECORDS })));
    const r = (out.InstanceRefreshes ?? []).find((x) => ACTIVE_REFRESH.has(x.Status ?? ''));
    return r === undefined ? undefined : { id: r.InstanceRefreshId ?? '?', status: r.Status ?? '?' };
  }

  /** One SDK call; failures become ProviderErrors, throttling and retries are logged. */
  async #send<T extends SdkMetadata>(groupId: string, action: string, call: () => Promise<T>): Promise<T> {
    const iam = `autoscaling:${action}`;
    let out: T;
    try {
      out = await call();
    } catch (err) {
      const error = classifyAwsError(err, groupId, iam);
      if (error.code === 'Throttled') {
        const meta = (err as SdkMetadata).$metadata;
        this.#log.warn({ groupId, action: iam, cloudCode: error.details.cloudCode, attempts: meta?.attempts, totalRetryDelayMs: meta?.totalRetryDelay }, 'aws api throttled');
      }
      throw error;
    }
    const attempts = out.$metadata?.attempts ?? 1;
    if (attempts > 1) {
      this.#log.warn({ groupId, action: iam, attempts, totalRetryDelayMs: out.$metadata?.totalRetryDelay }, 'aws call succeeded after retries');
    }
    return out;
  }
}
