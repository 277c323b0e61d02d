import { randomBytes } from 'node:crypto';
import type { ControllerConfig } from '../config/controller.js';
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import { version } from '../lib/version.js';
import { ComponentStore } from '../store/components.js';
import type { Db } from '../store/db.js';
import { EventStore } from '../store/events.js';
import { GroupStore, type GroupRow } from '../store/groups.js';
import { InstanceStore, type InstanceRow } from '../store/instances.js';
import { targetTracking } from './policy/target-tracking.js';
import type { GroupSpec, Recommendation, ScalingDecision } from './policy/types.js';
import type { InstanceProvider } from './providers/types.js';

/** How often the controller writes its own heartbeat to the store. */
export const CONTROLLER_BEAT_MS = 1_000;

/** Per-group memory between evaluations. */
interface GroupMemory {
  history: readonly Recommendation[];
  /** Key of the last recorded decision, so that a steady state is recorded once, not every tick. */
  lastKey: string | undefined;
}

/**
 * ControllerASG's loop (Nomad's policy handler): every interval, for each group, read the store,
 * reconcile with the provider, replace what died, decide with the pure policy, record the
 * decision with its reason, then act. A failed evaluation is logged once and the loop goes on.
 */
export class Controller {
  private readonly log: Logger;
  private readonly groups: GroupStore;
  private readonly instances: InstanceStore;
  private readonly events: EventStore;
  private readonly components: ComponentStore;
  private readonly memory = new Map<string, GroupMemory>();
  private timer: NodeJS.Timeout | undefined;
  private beatTimer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private readonly startedAt: number;
  /** Evaluations completed, for tests and the status view. */
  ticks = 0;

  constructor(
    private readonly cfg: ControllerConfig,
    db: Db,
    private readonly provider: InstanceProvider,
    private readonly clock: Clock,
    rootLog: Logger,
    private readonly newInstanceId: (groupId: string) => string = (g) => `${g.slice(0, 48)}-${randomBytes(4).toString('hex')}`,
  ) {
    this.log = rootLog.child({ component: 'controller' });
    this.groups = new GroupStore(db);
    this.instances = new InstanceStore(db);
    this.events = new EventStore(db);
    this.components = new ComponentStore(db);
    this.startedAt = clock.now();
  }

  /** Apply the configured group and start the loop; the first evaluation runs at once. */
  start(): void {
    this.init();
    this.beatTimer = setInterval(() => this.beat(), CONTROLLER_BEAT_MS);
    this.beatTimer.unref();
    this.schedule(0);
  }

  /** Apply the configured group to the store and load what the last run decided (tests call tick() after it). */
  init(): void {
    const now = this.clock.now();
    const g = this.groups.upsert(this.cfg.group, now);
    const last = this.events.recentDecisions(g.id, 1)[0];
    this.memory.set(g.id, { history: [], lastKey: last === undefined ? undefined : `${last.reason}:${last.from}:${last.to}` });
    this.log.info({ groupId: g.id, minSize: g.minSize, maxSize: g.maxSize, desired: g.desired, policy: g.policy, provider: this.provider.name, intervalMs: this.cfg.intervalMs }, 'controller starting');
    this.beat();
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.tick().finally(() => {
        this.running = undefined;
        this.schedule(this.cfg.intervalMs);
      });
    }, delayMs);
  }

  /** One evaluation of every group. Never throws. */
  async tick(): Promise<void> {
    for (const spec of [this.cfg.group]) {
      try {
        await this.evaluate(spec);
      } catch (err) {
        this.log.error({ err, groupId: spec.id }, 'evaluation failed');
      }
    }
    this.ticks++;
  }

  private async evaluate(spec: GroupSpec): Promise<void> {
    const group = this.groups.get(spec.id);
    if (group === undefined) throw new Error(`group ${spec.id} vanished from the store`);
    const mem = this.memory.get(group.id) ?? { history: [], lastKey: undefined };
    this.memory.set(group.id, mem);

    await this.reconcile(group);

    if (group.paused) {
      const current = this.capacity(this.instances.listGroup(group.id)).length;
      this.record(group, mem, hold(current, group.desired, 'Paused', 'group is paused: no scaling and no replacement'));
      return;
    }

    const now = this.clock.now();
    const monitor = this.components.get('monitor-server');
    const monitorAge = monitor === undefined ? undefined : now - monitor.heartbeatAt;
    if (monitorAge === undefined || monitorAge > this.cfg.monitorStaleMs) {
      const current = this.capacity(this.instances.listGroup(group.id)).length;
      const why = monitorAge === undefined ? 'monitor server has never reported' : `monitor server silent for ${Math.round(monitorAge / 1000)}s`;
      this.record(group, mem, hold(current, group.desired, 'MonitorUnavailable', `${why}: holding every action until it is back`));
      return;
    }

    await this.replaceUnhealthy(group, mem);

    const instances = this.instances.listGroup(group.id);
    const live = this.capacity(instances);
    // Ready: running, reporting, and past its warm-up. Launched or warming instances are capacity in transit.
    const warmSince = now - spec.policy.warmupMs;
    const ready = (i: InstanceRow) => i.state === 'running' && i.cpu !== null && (i.registeredAt ?? 0) <= warmSince;
    const observation = {
      readyCpu: live.filter(ready).map((i) => i.cpu as number),
      pending: live.filter((i) => i.state === 'pending' || (i.state === 'running' && !ready(i))).length,
      suspect: live.filter((i) => i.state === 'suspect').length,
    };
    const result = targetTracking({ group: spec, observation, history: mem.history, now });
    mem.history = result.history;
    const d = result.decision;
    this.log.info({ groupId: group.id, from: d.current, to: d.desired, reason: d.reason, trail: d.trail, avgCpu: d.details.avgCpu ?? null }, 'scaling decision');
    this.log.debug({ groupId: group.id, observation, details: d.details, message: d.message }, 'decision inputs');
    this.record(group, mem, d);
    if (d.desired !== group.desired) this.groups.setDesired(group.id, d.desired, now);
    await this.converge(group.id, live, d.desired, d.desired > live.length ? `scale out to ${d.desired}: ${d.reason}` : `scale in to ${d.desired}: ${d.reason}`);
  }

  /** Instances that count as capacity: launched and not dead or on their way out. */
  private capacity(instances: readonly InstanceRow[]): InstanceRow[] {
    return instances.filter((i) => i.state === 'pending' || i.state === 'running' || i.state === 'suspect');
  }

  /** Align the store with what the provider actually runs. */
  private async reconcile(group: GroupRow): Promise<void> {
    const now = this.clock.now();
    const provided = new Map((await this.provider.list(group.id)).map((p) => [p.instanceId, p]));
    for (const i of this.instances.listGroup(group.id)) {
      const p = provided.get(i.id);
      if (p !== undefined && p.state === 'running') continue;
      if (i.state === 'pending' && i.providerId === null) {
        // Recorded but never handed to the provider (the controller stopped mid-launch).
        if (now - (i.launchedAt ?? now) > this.cfg.launchTimeoutMs) this.instances.setState(i.id, 'terminated', 'launch never completed', now);
        continue;
      }
      const detail = p?.detail ?? `not found at provider ${this.provider.name}`;
      if (i.state === 'terminating') {
        this.instances.setState(i.id, 'terminated', `terminated (${detail})`, now);
      } else if (i.state !== 'dead') {
        // The provider says it is gone: no need to wait for heartbeats to time out.
        this.instances.setState(i.id, 'dead', `instance gone: ${detail}`, now);
        this.log.warn({ groupId: group.id, instanceId: i.id, detail }, 'instance gone at provider');
      }
    }
  }

  /** Terminate dead instances and launches that never registered; launch their replacements. */
  private async replaceUnhealthy(group: GroupRow, mem: GroupMemory): Promise<void> {
    const now = this.clock.now();
    const instances = this.instances.listGroup(group.id);
    const unhealthy = instances
      .map((i) => {
        if (i.state === 'dead') return { i, cause: `dead (${i.stateReason ?? 'no heartbeat'})` };
        if (i.state === 'pending' && now - (i.launchedAt ?? now) > this.cfg.launchTimeoutMs) {
          return { i, cause: `did not register within ${Math.round(this.cfg.launchTimeoutMs / 1000)}s of launch` };
        }
        return undefined;
      })
      .filter((x) => x !== undefined);
    if (unhealthy.length === 0) return;
    const remaining = this.capacity(instances).filter((i) => !unhealthy.some((u) => u.i.id === i.id));
    const target = Math.max(group.minSize, Math.min(group.maxSize, group.desired));
    const message = unhealthy.map((u) => `${u.i.id} ${u.cause}`).join('; ');
    this.record(group, mem, {
      current: remaining.length, desired: target, reason: 'ReplaceUnhealthy',
      message: `replacing ${unhealthy.length} instance(s): ${message}`, trail: ['ReplaceUnhealthy'],
      details: { replaced: unhealthy.map((u) => u.i.id).join(',') },
    });
    await Promise.all(unhealthy.map((u) => this.terminateOne(group.id, u.i, `replace: ${u.cause}`)));
    await this.converge(group.id, remaining, target, `replace ${unhealthy.map((u) => u.i.id).join(', ')}`);
  }

  /** Launch or terminate until `live` matches `desired`. */
  private async converge(groupId: string, live: readonly InstanceRow[], desired: number, cause: string): Promise<void> {
    if (desired > live.length) {
      const n = desired - live.length;
      await Promise.all(Array.from({ length: n }, () => this.launchOne(groupId, cause)));
    } else if (desired < live.length) {
      // Scale in: the least useful first: suspect, then still launching, then the newest.
      const rank = (i: InstanceRow) => (i.state === 'suspect' ? 0 : i.state === 'pending' ? 1 : 2);
      const victims = [...live]
        .sort((a, b) => rank(a) - rank(b) || (b.launchedAt ?? b.registeredAt ?? 0) - (a.launchedAt ?? a.registeredAt ?? 0))
        .slice(0, live.length - desired);
      await Promise.all(victims.map((v) => this.terminateOne(groupId, v, cause)));
    }
  }

  private async launchOne(groupId: string, cause: string): Promise<void> {
    const id = this.newInstanceId(groupId);
    const now = this.clock.now();
    // Recorded before the provider call, so a crash in between leaves a trace to clean up.
    this.instances.insertPending(id, groupId, cause, now);
    try {
      const { providerId } = await this.provider.launch({ groupId, instanceId: id });
      this.instances.setProviderId(id, providerId);
      this.events.recordActivity({ ts: this.clock.now(), groupId, instanceId: id, action: 'launch', cause, outcome: 'ok', error: null });
    } catch (err) {
      const msg = (err as Error).message;
      this.instances.setState(id, 'terminated', `launch failed: ${msg}`, this.clock.now());
      this.events.recordActivity({ ts: this.clock.now(), groupId, instanceId: id, action: 'launch', cause, outcome: 'failed', error: msg });
      this.log.error({ err, groupId, instanceId: id }, 'launch failed');
    }
  }

  private async terminateOne(groupId: string, i: InstanceRow, cause: string): Promise<void> {
    this.instances.setState(i.id, 'terminating', cause, this.clock.now());
    try {
      await this.provider.terminate({ groupId, instanceId: i.id, providerId: i.providerId });
      this.instances.setState(i.id, 'terminated', cause, this.clock.now());
      this.events.recordActivity({ ts: this.clock.now(), groupId, instanceId: i.id, action: 'terminate', cause, outcome: 'ok', error: null });
    } catch (err) {
      // Stays `terminating`; reconcile finishes the job once the provider reports it gone.
      const msg = (err as Error).message;
      this.events.recordActivity({ ts: this.clock.now(), groupId, instanceId: i.id, action: 'terminate', cause, outcome: 'failed', error: msg });
      this.log.error({ err, groupId, instanceId: i.id }, 'terminate failed');
    }
  }

  /** Record a decision unless it repeats the last one recorded for the group. */
  private record(group: GroupRow, mem: GroupMemory, d: ScalingDecision): void {
    const key = `${d.reason}:${d.current}:${d.desired}`;
    if (key === mem.lastKey) return;
    mem.lastKey = key;
    this.events.recordDecision(group.id, d, this.clock.now());
  }

  private beat(): void {
    try {
      this.components.beat({ name: 'controller', pid: process.pid, startedAt: this.startedAt, info: { provider: this.provider.name, version: version(), ticks: this.ticks, intervalMs: this.cfg.intervalMs } }, this.clock.now());
    } catch (err) {
      this.log.warn({ err }, 'cannot write component heartbeat');
    }
  }

  /** Stop the loop after the evaluation in flight, then close the provider. */
  async close(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.beatTimer);
    await this.running;
    const live = this.instances.listGroup(this.cfg.group.id);
    await this.provider.close();
    if (this.provider.instancesEndWithController) {
      const now = this.clock.now();
      for (const i of live) this.instances.setState(i.id, 'terminated', `controller stopped (${this.provider.name} instances end with it)`, now);
    }
    try {
      this.components.remove('controller', process.pid);
    } catch (err) {
      this.log.warn({ err }, 'cannot clear component row');
    }
    this.log.info({ ticks: this.ticks }, 'controller stopped');
  }
}

function hold(current: number, desired: number, reason: 'Paused' | 'MonitorUnavailable', message: string): ScalingDecision {
  return { current, desired, reason, message, trail: [reason], details: {} };
}
