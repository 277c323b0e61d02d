import type { StatusReader, StatusReport } from '../store/status.js';

/** Most decisions (and activities) per group a request may ask for. */
export const MAX_STATUS_DECISIONS = 200;
/** Distinct (group, decisions) bodies kept per snapshot. */
const MAX_BODIES = 32;

interface Snapshot {
  readonly builtAt: number;
  readonly report: StatusReport;
  /** Per group: its fields up to `demand` as a JSON object missing its closing brace, and its instances as JSON. */
  readonly groupHeads: ReadonlyMap<string, string>;
  readonly groupInstances: ReadonlyMap<string, string>;
  readonly components: string;
  readonly extra: string;
  readonly bodies: Map<string, Buffer>;
}

/**
 * `/api/status` without stalling ingest: the report is read from the store at most once per
 * `ttlMs` (one synchronous read serves every request in that window, instead of one per request:
 * 1,000 concurrent requests for a 3,600-instance fleet used to stall acks for 18.6 s). The big
 * parts are serialized once per snapshot; a request only assembles strings, and bodies are kept
 * per (group, decisions) so a repeated query is a buffer copy.
 */
export class StatusCache {
  private snapshot: Snapshot | undefined;
  /** Snapshots read from the store since start. */
  builds = 0;

  constructor(
    private readonly reader: StatusReader,
    private readonly now: () => number,
    private readonly ttlMs: number,
    /** Extra top-level field `monitor` (counters), captured with each snapshot. */
    private readonly extra: () => Record<string, unknown>,
  ) {}

  /** The JSON body for `GET /api/status?group=…&decisions=…`. */
  body(groupId: string | undefined, decisions: number): Buffer {
    const snap = this.current();
    const key = `${decisions}:${groupId ?? ''}`;
    let body = snap.bodies.get(key);
    if (body === undefined) {
      body = Buffer.from(this.assemble(snap, groupId, decisions), 'utf8');
      if (snap.bodies.size >= MAX_BODIES) {
        const oldest = snap.bodies.keys().next();
        if (oldest.done !== true) snap.bodies.delete(oldest.value);
      }
      snap.bodies.set(key, body);
    }
    return body;
  }

  /** The report behind the current snapshot (at most `ttlMs` old). */
  report(): StatusReport {
    return this.current().report;
  }

  private current(): Snapshot {
    const now = this.now();
    const s = this.snapshot;
    if (s !== undefined && now - s.builtAt < this.ttlMs && now >= s.builtAt) return s;
    const report = this.reader.report(now, { decisions: MAX_STATUS_DECISIONS });
    this.builds++;
    const groupHeads = new Map<string, string>();
    const groupInstances = new Map<string, string>();
    for (const g of report.groups) {
      const head: Record<string, unknown> = { ...g };
      delete head.instances;
      delete head.decisions;
      delete head.activities;
      groupHeads.set(g.id, JSON.stringify(head).slice(0, -1));
      groupInstances.set(g.id, JSON.stringify(g.instances));
    }
    const snap: Snapshot = {
      builtAt: now, report, groupHeads, groupInstances,
      components: JSON.stringify(report.components), extra: JSON.stringify(this.extra()), bodies: new Map(),
    };
    this.snapshot = snap;
    return snap;
  }

  private assemble(snap: Snapshot, groupId: string | undefined, decisions: number): string {
    const groups = snap.report.groups.filter((g) => groupId === undefined || g.id === groupId).map((g) =>
      `${snap.groupHeads.get(g.id) ?? '{'},"instances":${snap.groupInstances.get(g.id) ?? '[]'},"decisions":${JSON.stringify(g.decisions.slice(0, decisions))},"activities":${JSON.stringify(g.activities.slice(0, decisions))}}`);
    return `{"generatedAt":${snap.report.generatedAt},"components":${snap.components},"groups":[${groups.join(',')}],"monitor":${snap.extra}}`;
  }
}
