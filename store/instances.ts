import type { Db } from './db.js';

export const INSTANCE_STATES = ['pending', 'running', 'suspect', 'dead', 'terminating', 'terminated'] as const;
export type InstanceState = (typeof INSTANCE_STATES)[number];
/** States the monitor server's failure detector moves between. */
export const LIVENESS_STATES = ['running', 'suspect', 'dead'] as const satisfies readonly InstanceState[];
export type LivenessState = (typeof LIVENESS_STATES)[number];

/** An instance with its latest sample, as status and the controller read it. */
export interface InstanceRow {
  readonly id: string;
  readonly groupId: string;
  readonly providerId: string | null;
  readonly state: InstanceState;
  readonly stateReason: string | null;
  readonly stateChangedAt: number;
  readonly launchedAt: number | null;
  readonly registeredAt: number | null;
  readonly lastSeenAt: number | null;
  readonly terminatedAt: number | null;
  readonly address: string | null;
  readonly agentVersion: string | null;
  /** Latest sample, null before the first one. */
  readonly cpu: number | null;
  readonly mem: number | null;
  readonly sampleAt: number | null;
  readonly seq: number;
  /** Token of the launch that made it (also its tag at the provider); null when not launched by us. */
  readonly launchToken: string | null;
  /** Availability zone and instance type, as the provider reports them. */
  readonly zone: string | null;
  readonly instanceType: string | null;
  /** launched: by this controller; adopted: found at the provider; registered: its agent spoke first. */
  readonly origin: InstanceOrigin;
  /** The provider's last word on it (pending, running, terminating, gone) and when it said so. */
  readonly providerState: string | null;
  readonly providerSeenAt: number | null;
  /** When the controller asked the provider to terminate it. */
  readonly terminateRequestedAt: number | null;
}

export type InstanceOrigin = 'launched' | 'adopted' | 'registered';

/** What the provider reported about an instance, for insertLaunched and observe. */
export interface ProviderFacts {
  readonly id: string;
  readonly providerState: string;
  readonly launchToken?: string | undefined;
  readonly launchedAt?: number | undefined;
  readonly zone?: string | undefined;
  readonly instanceType?: string | undefined;
  readonly address?: string | undefined;
}

interface RawInstance {
  id: string; group_id: string; provider_id: string | null; state: InstanceState; state_reason: string | null;
  state_changed_at: number; launched_at: number | null; registered_at: number | null; last_seen_at: number | null;
  terminated_at: number | null; address: string | null; agent_version: string | null;
  cpu: number | null; mem: number | null; sample_at: number | null; seq: number | null; seen_at: number | null;
  launch_token: string | null; zone: string | null; instance_type: string | null; origin: InstanceOrigin;
  provider_state: string | null; provider_seen_at: number | null; terminate_requested_at: number | null;
}

function toRow(r: RawInstance): InstanceRow {
  return {
    id: r.id, groupId: r.group_id, providerId: r.provider_id, state: r.state, stateReason: r.state_reason,
    stateChangedAt: r.state_changed_at, launchedAt: r.launched_at, registeredAt: r.registered_at,
    lastSeenAt: r.seen_at, terminatedAt: r.terminated_at, address: r.address, agentVersion: r.agent_version,
    cpu: r.cpu, mem: r.mem, sampleAt: r.sample_at, seq: r.seq ?? 0,
    launchToken: r.launch_token, zone: r.zone, instanceType: r.instance_type, origin: r.origin,
    providerState: r.provider_state, providerSeenAt: r.provider_seen_at, terminateRequestedAt: r.terminate_requested_at,
  };
}

// Last seen: set at Register (instances.last_seen_at) and by every stored sample (latest.received_at,
// so the ingest hot path never writes `instances`); the later of the two.
const SELECT = `SELECT i.*, l.cpu, l.mem, l.sample_at, l.seq,
  COALESCE(MAX(i.last_seen_at, l.received_at), i.last_seen_at, l.received_at) AS seen_at
  FROM instances i LEFT JOIN latest l ON l.instance_id = i.id`;

/** Outcome of a registration attempt. */
export type RegisterOutcome =
  | { readonly ok: true; readonly lastSeq: number; readonly known: boolean }
  | { readonly ok: false; readonly code: 'UnknownGroup' | 'Terminated' | 'GroupMismatch'; readonly message: string };

export class InstanceStore {
  private readonly db: Db;
  private readonly getStmt;
  private readonly byGroupStmt;
  private readonly activeStmt;
  private readonly insertPendingStmt;
  private readonly setProviderIdStmt;
  private readonly setStateStmt;
  private readonly livenessStmt;
  private readonly groupExistsStmt;
  private readonly registerInsertStmt;
  private readonly registerUpdateStmt;
  private readonly upsertLaunchedStmt;
  private readonly observeStmt;
  private readonly requestTerminateStmt;

  constructor(db: Db) {
    this.db = db;
    this.getStmt = db.prepare<[string], RawInstance>(`${SELECT} WHERE i.id = ?`);
    this.byGroupStmt = db.prepare<[string], RawInstance>(`${SELECT} WHERE i.group_id = ? AND i.state != 'terminated' ORDER BY i.launched_at, i.id`);
    this.activeStmt = db.prepare<[], RawInstance>(`${SELECT} WHERE i.state IN ('running','suspect','dead') ORDER BY i.id`);
    this.insertPendingStmt = db.prepare(`INSERT INTO instances (id, group_id, state, state_reason, state_changed_at, launched_at)
      VALUES (?, ?, 'pending', ?, ?, ?)`);
    this.setProviderIdStmt = db.prepare('UPDATE instances SET provider_id = ? WHERE id = ?');
    this.setStateStmt = db.prepare(`UPDATE instances SET state = @state, state_reason = @reason, state_changed_at = @now,
      terminated_at = CASE WHEN @state = 'terminated' THEN @now ELSE terminated_at END
      WHERE id = @id AND state != 'terminated'`);
    // The failure detector never overrides the controller's terminating/terminated.
    this.livenessStmt = db.prepare(`UPDATE instances SET state = @state, state_reason = @reason, state_changed_at = @now
      WHERE id = @id AND state IN ('pending','running','suspect','dead') AND state != @state`);
    this.groupExistsStmt = db.prepare<[string], { id: string }>('SELECT id FROM groups WHERE id = ?');
    this.registerInsertStmt = db.prepare(`INSERT INTO instances
      (id, group_id, state, state_reason, state_changed_at, registered_at, last_seen_at, address, agent_version, origin)
      VALUES (@id, @group, 'running', 'registered', @now, @now, @now, @address, @version, 'registered')`);
    // A launch result or a listing: a new row is pending; a row its agent created first learns its launch.
    this.upsertLaunchedStmt = db.prepare(`INSERT INTO instances
      (id, group_id, provider_id, state, state_reason, state_changed_at, launched_at, launch_token, zone, instance_type,
       address, origin, provider_state, provider_seen_at)
      VALUES (@id, @group, @id, 'pending', @reason, @now, @launchedAt, @token, @zone, @type, @address, @origin, @providerState, @now)
      ON CONFLICT(id) DO UPDATE SET provider_id = excluded.provider_id,
        launch_token = COALESCE(instances.launch_token, excluded.launch_token),
        launched_at = COALESCE(instances.launched_at, excluded.launched_at),
        zone = COALESCE(excluded.zone, instances.zone), instance_type = COALESCE(excluded.instance_type, instances.instance_type),
        address = COALESCE(instances.address, excluded.address),
        provider_state = excluded.provider_state, provider_seen_at = excluded.provider_seen_at
      WHERE instances.group_id = excluded.group_id`);
    this.observeStmt = db.prepare(`UPDATE instances SET provider_id = @id, provider_state = @providerState, provider_seen_at = @now,
      zone = COALESCE(@zone, zone), instance_type = COALESCE(@type, instance_type), launch_token = COALESCE(launch_token, @token),
      launched_at = COALESCE(launched_at, @launchedAt)
      WHERE id = @id`);
    this.requestTerminateStmt = db.prepare(`UPDATE instances SET state = 'terminating', state_reason = @reason,
      state_changed_at = CASE WHEN state = 'terminating' THEN state_changed_at ELSE @now END, terminate_requested_at = @now
      WHERE id = @id AND state != 'terminated'`);
    this.registerUpdateStmt = db.prepare(`UPDATE instances SET
      state = 'running', state_reason = 'registered', state_changed_at = CASE WHEN state = 'running' THEN state_changed_at ELSE @now END,
      registered_at = @now, last_seen_at = @now, address = @address, agent_version = @version
      WHERE id = @id`);
  }

  get(id: string): InstanceRow | undefined {
    const r = this.getStmt.get(id);
    return r === undefined ? undefined : toRow(r);
  }

  /** Every instance of a group that is not terminated, oldest launch first. */
  listGroup(groupId: string): InstanceRow[] {
    return this.byGroupStmt.all(groupId).map(toRow);
  }

  /** Instances the failure detector watches (running, suspect, dead), all groups. */
  listWatched(): InstanceRow[] {
    return this.activeStmt.all().map(toRow);
  }

  /** The controller records a launch before asking the provider, so a crash leaves a trace. */
  insertPending(id: string, groupId: string, reason: string, now: number): void {
    this.insertPendingStmt.run(id, groupId, reason, now, now);
  }

  setProviderId(id: string, providerId: string): void {
    this.setProviderIdStmt.run(providerId, id);
  }

  /**
   * Record instances the provider accepted or listed: new ones as `pending` with their origin; a
   * row that its agent created first (it registered before the controller heard of the launch)
   * learns its launch token, zone and type. Rows of another group are left alone.
   */
  insertLaunched(groupId: string, facts: readonly ProviderFacts[], origin: 'launched' | 'adopted', reason: string, now: number): void {
    this.db.transaction(() => {
      for (const f of facts) {
        this.upsertLaunchedStmt.run({
          id: f.id, group: groupId, reason, now, launchedAt: f.launchedAt ?? now, token: f.launchToken ?? null,
          zone: f.zone ?? null, type: f.instanceType ?? null, address: f.address ?? null, origin, providerState: f.providerState,
        });
      }
    })();
  }

  /** What the provider's listing says of a known instance. */
  observe(f: ProviderFacts, now: number): void {
    this.observeStmt.run({
      id: f.id, providerState: f.providerState, now, zone: f.zone ?? null, type: f.instanceType ?? null,
      token: f.launchToken ?? null, launchedAt: f.launchedAt ?? null,
    });
  }

  /** The provider accepted a termination: `terminating` until its listing shows the instance gone. */
  requestTerminate(id: string, reason: string, now: number): boolean {
    return this.requestTerminateStmt.run({ id, reason, now }).changes > 0;
  }

  /** Controller-side transition (terminating, terminated). No-op on terminated rows. */
  setState(id: string, state: InstanceState, reason: string, now: number): boolean {
    return this.setStateStmt.run({ id, state, reason, now }).changes > 0;
  }

  /** Failure-detector transition; returns false when the controller already took the instance away. */
  setLiveness(id: string, state: LivenessState, reason: string, now: number): boolean {
    return this.livenessStmt.run({ id, state, reason, now }).changes > 0;
  }

  /** Register an agent: a known pending/live instance becomes running; an unknown one is adopted. */
  register(req: { id: string; groupId: string; address: string; agentVersion: string }, now: number): RegisterOutcome {
    return this.db.transaction((): RegisterOutcome => {
      if (this.groupExistsStmt.get(req.groupId) === undefined) {
        return { ok: false, code: 'UnknownGroup', message: `group "${req.groupId}" is not configured on this controller` };
      }
      const existing = this.getStmt.get(req.id);
      const params = { id: req.id, group: req.groupId, now, address: req.address, version: req.agentVersion };
      if (existing === undefined) {
        this.registerInsertStmt.run(params);
        return { ok: true, lastSeq: 0, known: false };
      }
      if (existing.group_id !== req.groupId) {
        return { ok: false, code: 'GroupMismatch', message: `instance "${req.id}" belongs to group "${existing.group_id}", not "${req.groupId}"` };
      }
      if (existing.state === 'terminating' || existing.state === 'terminated') {
        return { ok: false, code: 'Terminated', message: `instance "${req.id}" is ${existing.state}; it may not register again` };
      }
      this.registerUpdateStmt.run(params);
      return { ok: true, lastSeq: existing.seq ?? 0, known: true };
    }).immediate();
  }
}
