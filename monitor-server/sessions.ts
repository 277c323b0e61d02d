import type { DuplexCall } from '../lib/grpc-server.js';
import type { Heartbeat__Output, HeartbeatAck } from '../lib/proto.js';
import { AckSender } from './acks.js';

export type HeartbeatCall = DuplexCall<Heartbeat__Output, HeartbeatAck>;

/** One Register: the id the agent sends on its stream, and what its stream has handled. */
export interface Session {
  readonly id: string;
  readonly instanceId: string;
  readonly groupId: string;
  /** Who registered it (identity.ts sessionIdentity): a later Register by another identity is refused while this one is live. */
  readonly identity: string;
  /** The client certificate that registered it; its stream must come with the same one. */
  readonly certFingerprint: string | undefined;
  /** When Register answered (server clock), ms. */
  readonly createdAt: number;
  call: HeartbeatCall | undefined;
  acks: AckSender | undefined;
  /** Highest seq handled (queued, duplicate, or refused for its content) since the last ack. */
  receivedSeq: number;
  ackedSeq: number;
  rejected: number;
  rejectReason: string;
  /** When the last ack went out (server clock, ms); undefined before the first. */
  lastAckAt?: number | undefined;
  /** The group view the last ack carried, to send it again only when it changed. */
  lastView?: GroupView | undefined;
  /** Its ack interval passed with nothing to ack: what it handles next is acked at the next write. */
  ackDue?: boolean | undefined;
}

/** What an ack tells a stream of its group: live instances, and the simulated demand (-1: none). */
export interface GroupView {
  readonly live: number;
  readonly demand: number;
}

const EMPTY: ReadonlySet<Session> = new Set();

/**
 * Live sessions by id, by instance (one current session per instance) and by group. A session that
 * registered but never opened its stream expires after `openTimeoutMs`.
 */
export class SessionTable {
  private readonly byId = new Map<string, Session>();
  private readonly byInstance = new Map<string, string>();
  private readonly byGroup = new Map<string, Set<Session>>();

  get size(): number {
    return this.byId.size;
  }

  get(id: string): Session | undefined {
    return this.byId.get(id);
  }

  /** The current session of an instance. */
  current(instanceId: string): Session | undefined {
    const id = this.byInstance.get(instanceId);
    return id === undefined ? undefined : this.byId.get(id);
  }

  /** Add a session; it becomes its instance's current one. */
  add(s: Session): void {
    this.byId.set(s.id, s);
    this.byInstance.set(s.instanceId, s.id);
    let g = this.byGroup.get(s.groupId);
    if (g === undefined) this.byGroup.set(s.groupId, (g = new Set()));
    g.add(s);
  }

  /** Remove a session; returns true when it was its instance's current one. */
  remove(s: Session): boolean {
    if (this.byId.get(s.id) !== s) return false;
    this.byId.delete(s.id);
    const g = this.byGroup.get(s.groupId);
    if (g !== undefined && g.delete(s) && g.size === 0) this.byGroup.delete(s.groupId);
    if (this.byInstance.get(s.instanceId) !== s.id) return false;
    this.byInstance.delete(s.instanceId);
    return true;
  }

  has(s: Session): boolean {
    return this.byId.get(s.id) === s;
  }

  values(): IterableIterator<Session> {
    return this.byId.values();
  }

  /** Groups with at least one session. */
  groups(): IterableIterator<string> {
    return this.byGroup.keys();
  }

  /** The sessions of a group. */
  inGroup(groupId: string): ReadonlySet<Session> {
    return this.byGroup.get(groupId) ?? EMPTY;
  }

  /** Sessions that have had no stream for `openTimeoutMs` since Register (the caller removes them). */
  expired(now: number, openTimeoutMs: number): Session[] {
    const out: Session[] = [];
    for (const s of this.byId.values()) if (s.call === undefined && now - s.createdAt >= openTimeoutMs) out.push(s);
    return out;
  }

  /** Number of sessions with an open stream. */
  streams(): number {
    let n = 0;
    for (const s of this.byId.values()) if (s.call !== undefined) n++;
    return n;
  }
}
