/**
 * A group's recent history for charts (the dashboard, `GET /api/v1/groups/{id}/metrics`): CPU and
 * memory per time bucket (the group average and each instance), how many instances reported,
 * the capacity the controller decided on, the simulated demand, and the decisions in the window.
 * Steps of whole minutes read the per-instance 1-minute rollups (kept for days); finer steps read
 * raw samples (kept for MONITOR_SAMPLE_RETENTION_MS, 1 h by default). Bounded: at most MAX_POINTS
 * buckets and MAX_SERIES instances.
 */
import { demandAt } from '../sim/profile.js';
import type { Db } from './db.js';
import { toDecision, type DecisionRow, type RawDecision } from './events.js';
import { MINUTE_MS, RollupStore } from './rollups.js';
import type { GroupRow } from './groups.js';
import type { SimLoadRow } from './simload.js';

/** Most buckets in one answer; a finer step is widened to fit. */
export const MAX_POINTS = 1_440;
/** Most per-instance series in one answer (the busiest are kept). */
export const MAX_SERIES = 200;
/** Most decisions in one answer (the newest are kept). */
export const MAX_DECISIONS = 500;

export interface GroupHistory {
  readonly groupId: string;
  /** Window [from, to), epoch ms; `from` is aligned to `stepMs`. */
  readonly from: number;
  readonly to: number;
  /** Bucket width, ms (possibly wider than asked, to fit MAX_POINTS). */
  readonly stepMs: number;
  /** Bucket start times, epoch ms, oldest first; every series below is aligned to it. */
  readonly ts: readonly number[];
  /** Average CPU over the instances that reported in the bucket, percent; null when none did. */
  readonly avgCpu: readonly (number | null)[];
  readonly avgMem: readonly (number | null)[];
  /** Instances with at least one sample in the bucket. */
  readonly reporting: readonly number[];
  /** The capacity decided (the latest decision at or before the bucket's end); null before any. */
  readonly desired: readonly (number | null)[];
  /** Simulated demand in the middle of the bucket, percent of one instance (the current profile); null without one. */
  readonly demand: readonly (number | null)[];
  /** The group's CPU target, percent; null without a CPU target-tracking rule. */
  readonly cpuTarget: number | null;
  /** Each instance's average CPU per bucket, percent; null where it did not report. */
  readonly instances: readonly { readonly id: string; readonly cpu: readonly (number | null)[] }[];
  /** Decisions in the window, oldest first. */
  readonly decisions: readonly DecisionRow[];
}

interface Bucketed { instance_id: string; b: number; cpu: number; mem: number }

export class HistoryReader {
  private readonly bucketsStmt;
  private readonly decisionsStmt;
  private readonly beforeStmt;
  private readonly rollups: RollupStore;

  constructor(db: Db) {
    this.rollups = new RollupStore(db);
    this.bucketsStmt = db.prepare<{ group: string; from: number; to: number; step: number }, Bucketed>(`
      SELECT s.instance_id AS instance_id, CAST((s.ts - @from) / @step AS INTEGER) AS b, AVG(s.cpu) AS cpu, AVG(s.mem) AS mem
      FROM samples s JOIN instances i ON i.id = s.instance_id
      WHERE s.ts >= @from AND s.ts < @to AND i.group_id = @group
      GROUP BY s.instance_id, b`);
    this.decisionsStmt = db.prepare<[string, number, number, number], RawDecision>(
      'SELECT * FROM decisions WHERE group_id = ? AND ts >= ? AND ts < ? ORDER BY id DESC LIMIT ?');
    this.beforeStmt = db.prepare<[string, number], { to_count: number }>('SELECT to_count FROM decisions WHERE group_id = ? AND ts < ? ORDER BY id DESC LIMIT 1');
  }

  /** Per instance and bucket: mean CPU and memory (rollups weighted by their sample counts). */
  private *buckets(groupId: string, from: number, to: number, stepMs: number): Generator<Bucketed> {
    if (stepMs % MINUTE_MS !== 0) {
      yield* this.bucketsStmt.iterate({ group: groupId, from, to, step: stepMs });
      return;
    }
    const acc = new Map<string, { n: number; cpu: number; mem: number }>();
    for (const m of this.rollups.instanceMinutes(groupId, from, to)) {
      const key = `${Math.floor((m.minute - from) / stepMs)}\u0000${m.instanceId}`;
      const a = acc.get(key) ?? { n: 0, cpu: 0, mem: 0 };
      a.n += m.n;
      a.cpu += m.cpuAvg * m.n;
      a.mem += m.memAvg * m.n;
      acc.set(key, a);
    }
    for (const [key, a] of acc) {
      const cut = key.indexOf('\u0000');
      yield { instance_id: key.slice(cut + 1), b: Number(key.slice(0, cut)), cpu: a.cpu / a.n, mem: a.mem / a.n };
    }
  }

  group(g: GroupRow, q: { from: number; to: number; stepMs: number; load: SimLoadRow | undefined }): GroupHistory {
    const span = Math.max(1, q.to - q.from);
    const stepMs = Math.max(q.stepMs, Math.ceil(span / MAX_POINTS / 1_000) * 1_000);
    const from = q.from - (q.from % stepMs);
    const n = Math.ceil((q.to - from) / stepMs);
    const ts = Array.from({ length: n }, (_, i) => from + i * stepMs);

    const perInstance = new Map<string, { cpu: (number | null)[]; total: number }>();
    const cpuSum = new Array<number>(n).fill(0);
    const memSum = new Array<number>(n).fill(0);
    const reporting = new Array<number>(n).fill(0);
    for (const r of this.buckets(g.id, from, q.to, stepMs)) {
      if (r.b < 0 || r.b >= n) continue;
      let s = perInstance.get(r.instance_id);
      if (s === undefined) {
        s = { cpu: new Array<number | null>(n).fill(null), total: 0 };
        perInstance.set(r.instance_id, s);
      }
      s.cpu[r.b] = round(r.cpu);
      s.total += r.cpu;
      cpuSum[r.b] = (cpuSum[r.b] ?? 0) + r.cpu;
      memSum[r.b] = (memSum[r.b] ?? 0) + r.mem;
      reporting[r.b] = (reporting[r.b] ?? 0) + 1;
    }
    const instances = [...perInstance.entries()]
      .sort((a, b) => b[1].total - a[1].total || a[0].localeCompare(b[0]))
      .slice(0, MAX_SERIES)
      .sort((a, b) => a[0].localeCompare(b[0]))
      .map(([id, s]) => ({ id, cpu: s.cpu }));

    const decisions = this.decisionsStmt.all(g.id, from, q.to, MAX_DECISIONS).reverse().map(toDecision);
    let current: number | null = this.beforeStmt.get(g.id, from)?.to_count ?? null;
    const desired: (number | null)[] = [];
    let d = 0;
    for (const t of ts) {
      while (d < decisions.length && (decisions[d] as DecisionRow).ts < t + stepMs) current = (decisions[d++] as DecisionRow).to;
      desired.push(current);
    }

    const load = q.load;
    const demand = ts.map((t) => {
      const mid = t + stepMs / 2;
      return load === undefined || mid < load.startedAt ? null : round(demandAt(load.profile, mid - load.startedAt));
    });
    const cpuRule = g.policy.targetTracking.find((r) => r.metric === 'cpu');
    return {
      groupId: g.id, from, to: q.to, stepMs, ts,
      avgCpu: cpuSum.map((s, i) => ((reporting[i] ?? 0) === 0 ? null : round(s / (reporting[i] as number)))),
      avgMem: memSum.map((s, i) => ((reporting[i] ?? 0) === 0 ? null : round(s / (reporting[i] as number)))),
      reporting, desired, demand, cpuTarget: cpuRule?.target ?? null, instances, decisions,
    };
  }
}

const round = (v: number) => Math.round(v * 100) / 100;
