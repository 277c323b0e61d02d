/**
 * The failure detector: a timeout detector over heartbeat arrival times. Pure: no timers, no
 * clock; the server calls `sweep(now)` periodically and persists the transitions it returns.
 *
 *   running ──(silent ≥ suspectAfter, or stream dropped)──▶ suspect ──(silent ≥ deadAfter)──▶ dead
 *      ▲                                                        │                             │
 *      └──────────────────────────── heartbeat ─────────────────┴─────────────────────────────┘
 *
 * With a 1 s interval and the defaults (suspect 2.5 s, dead 4.5 s) and a sweep every 250 ms, a
 * killed agent is declared dead at most 4.75 s after its last heartbeat: within 5 intervals.
 */

/** States the detector moves an instance between. */
export type LivenessState = 'running' | 'suspect' | 'dead';

export interface LivenessConfig {
  /** Silence before suspect, ms. */
  readonly suspectAfterMs: number;
  /** Silence before dead, ms. */
  readonly deadAfterMs: number;
}

export interface Transition {
  readonly instanceId: string;
  readonly groupId: string;
  readonly from: LivenessState;
  readonly to: LivenessState;
  /** Why, for the instance's state_reason. */
  readonly reason: string;
}

interface Tracked {
  groupId: string;
  lastSeenAt: number;
  connected: boolean;
  state: LivenessState;
}

/** Classify one instance from the time since its last heartbeat. */
export function classify(silentMs: number, connected: boolean, cfg: LivenessConfig): LivenessState {
  // Negative silence: a startup grace (the seeded "last seen" lies in the future).
  if (silentMs >= cfg.deadAfterMs) return 'dead';
  if (silentMs >= cfg.suspectAfterMs || !connected) return 'suspect';
  return 'running';
}

export class FailureDetector {
  private readonly tracked = new Map<string, Tracked>();

  constructor(private readonly cfg: LivenessConfig) {
    if (!(cfg.deadAfterMs > cfg.suspectAfterMs && cfg.suspectAfterMs > 0)) {
      throw new TypeError('FailureDetector needs 0 < suspectAfterMs < deadAfterMs');
    }
  }

  /**
   * Start watching an instance (at registration, or at server start from the store). `state` is
   * what the store holds now, so that the first sweep reports only real changes.
   */
  watch(instanceId: string, groupId: string, lastSeenAt: number, state: LivenessState, connected: boolean): void {
    this.tracked.set(instanceId, { groupId, lastSeenAt, connected, state });
  }

  /** A heartbeat arrived. Returns the transition back to running, if any. */
  heartbeat(instanceId: string, now: number): Transition | undefined {
    const t = this.tracked.get(instanceId);
    if (t === undefined) return undefined;
    t.lastSeenAt = Math.max(t.lastSeenAt, now);
    t.connected = true;
    return this.move(instanceId, t, 'running', 'heartbeat resumed');
  }

  /** The agent's stream ended without a Deregister: suspect at once, dead on the usual timeout. */
  disconnected(instanceId: string): Transition | undefined {
    const t = this.tracked.get(instanceId);
    if (t === undefined) return undefined;
    t.connected = false;
    return t.state === 'running' ? this.move(instanceId, t, 'suspect', 'heartbeat stream closed') : undefined;
  }

  /** Stop watching (deregistered, or terminated by the controller). */
  forget(instanceId: string): void {
    this.tracked.delete(instanceId);
  }

  /** Instances of a group counted as live (running or suspect). */
  liveCount(groupId: string): number {
    let n = 0;
    for (const t of this.tracked.values()) if (t.groupId === groupId && t.state !== 'dead') n++;
    return n;
  }

  /** Re-classify everyone at `now`; returns the transitions. */
  sweep(now: number): Transition[] {
    const out: Transition[] = [];
    for (const [id, t] of this.tracked) {
      const silent = now - t.lastSeenAt;
      const next = classify(silent, t.connected, this.cfg);
      const why = next === 'running' ? 'heartbeat resumed' : silent < this.cfg.suspectAfterMs ? 'no heartbeat stream' : `no heartbeat for ${silent} ms`;
      const tr = this.move(id, t, next, why);
      if (tr !== undefined) out.push(tr);
    }
    return out;
  }

  private move(instanceId: string, t: Tracked, to: LivenessState, reason: string): Transition | undefined {
    if (t.state === to) return undefined;
    const from = t.state;
    t.state = to;
    return { instanceId, groupId: t.groupId, from, to, reason };
  }
}
