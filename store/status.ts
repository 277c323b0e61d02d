import { demandAt, formatProfile } from '../sim/profile.js';
import { ComponentStore, type ComponentRow } from './components.js';
import type { Db } from './db.js';
import { EventStore, type ActivityRow, type DecisionRow } from './events.js';
import { GroupStore, type GroupRow } from './groups.js';
import { INSTANCE_STATES, InstanceStore, type InstanceRow, type InstanceState } from './instances.js';
import { SimLoadStore } from './simload.js';

/** The fleet as `autoscaler status --json` and `GET /api/status` show it. */
export interface StatusReport {
  readonly generatedAt: number;
  readonly components: readonly (ComponentRow & { readonly ageMs: number })[];
  readonly groups: readonly GroupStatus[];
}

export interface GroupStatus extends GroupRow {
  /** Instances by state (terminated excluded). */
  readonly counts: Readonly<Record<InstanceState, number>>;
  /** Average CPU of running instances with a sample, percent; null if none. */
  readonly avgCpu: number | null;
  /** Simulated demand, if a profile is set. */
  readonly demand: { readonly profile: string; readonly value: number } | null;
  readonly instances: readonly InstanceRow[];
  /** Newest first. */
  readonly decisions: readonly DecisionRow[];
  readonly activities: readonly ActivityRow[];
}

/** Read-only view over the store; build once per connection and call `report(now)` as often as needed. */
export class StatusReader {
  private readonly groups: GroupStore;
  private readonly instances: InstanceStore;
  private readonly events: EventStore;
  private readonly components: ComponentStore;
  private readonly simLoad: SimLoadStore;

  constructor(db: Db) {
    this.groups = new GroupStore(db);
    this.instances = new InstanceStore(db);
    this.events = new EventStore(db);
    this.components = new ComponentStore(db);
    this.simLoad = new SimLoadStore(db);
  }

  report(now: number, opts: { decisions?: number; groupId?: string } = {}): StatusReport {
    const limit = opts.decisions ?? 10;
    const groups = this.groups.list().filter((g) => opts.groupId === undefined || g.id === opts.groupId);
    return {
      generatedAt: now,
      components: this.components.list().map((c) => ({ ...c, ageMs: now - c.heartbeatAt })),
      groups: groups.map((g) => {
        const instances = this.instances.listGroup(g.id);
        const counts = Object.fromEntries(INSTANCE_STATES.map((s) => [s, 0])) as Record<InstanceState, number>;
        for (const i of instances) counts[i.state]++;
        const cpus = instances.filter((i) => i.state === 'running' && i.cpu !== null).map((i) => i.cpu as number);
        const load = this.simLoad.get(g.id);
        return {
          ...g,
          counts,
          avgCpu: cpus.length === 0 ? null : cpus.reduce((a, b) => a + b, 0) / cpus.length,
          demand: load === undefined ? null : { profile: formatProfile(load.profile), value: demandAt(load.profile, now - load.startedAt) },
          instances,
          decisions: this.events.recentDecisions(g.id, limit),
          activities: this.events.recentActivities(g.id, limit),
        };
      }),
    };
  }
}
