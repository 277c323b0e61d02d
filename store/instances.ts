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
}

interface RawInstance {
  id: string; group_id: string; provider_id: string | null; state: InstanceState; state_reason: string | null;
  state_changed_at: number; launched_at: number | null; registered_at: number | null; last_seen_at: number | null;
  terminated_at: number | null; address: string | null; agent_version: string | null;
  cpu: number | null; mem: number | null; sample_at: number | null; seq: number | null;
}

function toRow(r: RawInstance): InstanceRow {
  return {
    id: r.id, groupId: r.group_id, providerId: r.provider_id, state: r.state, stateReason: r.state_reason,
    stateChangedAt: r.state_changed_at, launchedAt: r.launched_at, registeredAt: r.registered_at,
    lastSeenAt: r.last_seen_at, terminatedAt: r.terminated_at, address: r.address, agentVersion: r.agent_version,
    cpu: r.cpu, mem: r.mem, sampleAt: r.sample_at, seq: r.seq ?? 0,
  };
}

const SELECT = `SELECT i.*, l.cpu, l.mem, l.sample_at, l.seq FROM instances i LEFT JOIN latest l ON l.instance_id = i.id`;

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
      (id, group_id, state, state_reason, state_changed_at, registered_at, last_seen_at, address, agent_version)
      VALUES (@id, @group, 'running', 'registered', @now, @now, @now, @address, @version)`);
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
