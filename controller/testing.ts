/** Test doubles for the controller (not part of the build). */
import type { Clock } from '../lib/clock.js';
import {
  ProviderError,
  type InstanceProvider,
  type LaunchRequest,
  type LaunchResult,
  type ProviderErrorCode,
  type ProviderInstance,
  type ProviderListing,
  type TerminateRequest,
  type TerminateResult,
} from './providers/types.js';

interface FakeInstance {
  id: string;
  groupId: string;
  state: ProviderInstance['state'];
  detail: string;
  token: string;
  launchedAt: number;
  zone: string;
}

/**
 * An in-memory cloud on an injected clock: launches are accepted at once and named by the
 * provider; the listing can lag launches (eventual consistency); tests can fail calls with a
 * code, lose instances, or add strangers.
 */
export class FakeProvider implements InstanceProvider {
  readonly name = 'fake';
  readonly instancesEndWithController = false;
  readonly instances = new Map<string, FakeInstance>();
  /** Every call, e.g. "launch 2 tok-1", "terminate web-1,web-2", "list". */
  readonly calls: string[] = [];
  /** Next launches / terminations / lists fail with this code while set. */
  failLaunch: ProviderErrorCode | undefined;
  failTerminate: ProviderErrorCode | undefined;
  failList: ProviderErrorCode | undefined;
  /** A launch accepted this long ago or less is not listed yet, ms. */
  listingLagMs = 0;
  /** Zones handed out in turn. */
  zones: readonly string[] = ['zone-a', 'zone-b'];
  /** Cloud-owned lifecycle (an ASG): desired count and its bounds. */
  desired = 0;
  blocked: string | undefined;
  private seq = 0;
  private readonly byToken = new Map<string, string[]>();

  constructor(private readonly clock: Clock, readonly lifecycle: 'controller' | 'cloud' = 'controller', private readonly prefix = 'web') {}

  async verify(): Promise<void> {}

  async launch(req: LaunchRequest): Promise<LaunchResult> {
    this.calls.push(`launch ${req.count} ${req.token}`);
    if (this.failLaunch !== undefined) throw new ProviderError(`launch failed: ${this.failLaunch}`, this.failLaunch, req.groupId, { cloudCode: this.failLaunch, action: 'fake:Launch' });
    const known = this.byToken.get(req.token);
    if (known !== undefined) return { instances: known.map((id) => this.view(this.instances.get(id) as FakeInstance)) };
    const ids: string[] = [];
    for (let n = 0; n < req.count; n++) ids.push(this.add(req.groupId, req.token).id);
    this.byToken.set(req.token, ids);
    return { instances: ids.map((id) => this.view(this.instances.get(id) as FakeInstance)) };
  }

  /** An instance the cloud runs (launched by someone else when `token` is empty). */
  add(groupId: string, token = '', launchedAt = this.clock.now()): FakeInstance {
    const id = `${this.prefix}-${++this.seq}`;
    const i: FakeInstance = { id, groupId, state: 'running', detail: 'running', token, launchedAt, zone: this.zones[(this.seq - 1) % this.zones.length] ?? 'zone-a' };
    this.instances.set(id, i);
    return i;
  }

  async terminate(req: TerminateRequest): Promise<TerminateResult> {
    this.calls.push(`terminate ${req.ids.join(',')}${this.lifecycle === 'cloud' ? (req.decrement ? ' decrement' : ' keep') : ''}`);
    if (this.failTerminate !== undefined) {
      const error = new ProviderError(`terminate failed: ${this.failTerminate}`, this.failTerminate, req.groupId, { cloudCode: this.failTerminate, action: 'fake:Terminate' });
      return { accepted: [], failed: req.ids.map((id) => ({ id, error })) };
    }
    for (const id of req.ids) {
      const i = this.instances.get(id);
      if (i !== undefined) i.state = 'gone';
      if (this.lifecycle === 'cloud' && req.decrement) this.desired = Math.max(0, this.desired - 1);
    }
    return { accepted: [...req.ids], failed: [] };
  }

  async setDesiredCapacity(req: { groupId: string; desired: number }): Promise<void> {
    this.calls.push(`set-desired ${req.desired}`);
    this.desired = req.desired;
  }

  /** Cloud lifecycle: launch up to the desired count, as an ASG does between two listings. */
  converge(groupId: string): void {
    const live = [...this.instances.values()].filter((i) => i.groupId === groupId && i.state !== 'gone');
    for (let n = live.length; n < this.desired; n++) this.add(groupId, '');
  }

  async list(groupId: string): Promise<ProviderListing> {
    this.calls.push('list');
    if (this.failList !== undefined) throw new ProviderError(`list failed: ${this.failList}`, this.failList, groupId, { action: 'fake:Describe' });
    const now = this.clock.now();
    const instances = [...this.instances.values()]
      .filter((i) => i.groupId === groupId && now - i.launchedAt >= this.listingLagMs)
      .map((i) => this.view(i));
    return {
      instances,
      ...(this.lifecycle === 'cloud' ? { capacity: { desired: this.desired, min: 0, max: 100 } } : {}),
      blocked: this.blocked,
    };
  }

  private view(i: FakeInstance): ProviderInstance {
    return { id: i.id, groupId: i.groupId, state: i.state, detail: i.detail, launchToken: i.token || undefined, launchedAt: i.launchedAt, zone: i.zone };
  }

  /** The instance vanished outside the controller (crashed, terminated by hand). */
  lose(id: string, detail = 'terminated outside the controller'): void {
    const i = this.instances.get(id);
    if (i !== undefined) Object.assign(i, { state: 'gone', detail });
  }

  /** Ids the cloud still runs (not gone) for a group. */
  live(groupId = 'web'): string[] {
    return [...this.instances.values()].filter((i) => i.groupId === groupId && i.state !== 'gone').map((i) => i.id);
  }

  async close(): Promise<void> {}
}
