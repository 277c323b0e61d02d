import type { Db } from './db.js';

/** Length of a rollup bucket, ms. */
export const MINUTE_MS = 60_000;

/** Most rows one read returns unless the caller asks for another limit: 1,000 instances × 100 minutes. */
export const DEFAULT_ROLLUP_READ_LIMIT = 100_000;

/** A percentage as the rollups store it: whole hundredths of a percent (12.345 % → 1235). */
export function toHundredths(percent: number): number {
  return Math.round(percent * 100);
}

/** Start of the minute holding `ts` (Unix epoch ms), ms. */
export function minuteStart(ts: number): number {
  return Math.floor(ts / MINUTE_MS) * MINUTE_MS;
}

/**
 * One instance's samples in one minute (by the agent's sample time). CPU and memory in percent,
 * from samples rounded to 0.01 percentage points.
 */
export interface InstanceMinute {
  readonly instanceId: string;
  /** Start of the minute, Unix epoch ms. */
  readonly minute: number;
  /** Samples stored for the instance in this minute (1 per second at the default interval: 60). */
  readonly n: number;
  /** Mean and largest CPU of those samples, percent of the instance. */
  readonly cpuAvg: number;
  readonly cpuMax: number;
  /** Mean and largest memory of those samples, percent of the instance. */
  readonly memAvg: number;
  readonly memMax: number;
}

/** A group's instances in one minute, from their per-instance rollups. CPU and memory in percent. */
export interface GroupMinute {
  /** Start of the minute, Unix epoch ms. */
  readonly minute: number;
  /** Instances with at least one sample in this minute. */
  readonly instances: number;
  /** Samples over all those instances. */
  readonly n: number;
  /** Mean over the instances of each one's mean CPU (every instance weighs the same), percent. */
  readonly cpuAvg: number;
  /** Largest CPU of any sample of any instance, percent. */
  readonly cpuMax: number;
  /** Mean over the instances of each one's mean memory, percent. */
  readonly memAvg: number;
  /** Largest memory of any sample of any instance, percent. */
  readonly memMax: number;
}

/** Options of a rollup read. */
export interface RollupReadOptions {
  /** Most rows returned (the oldest ones); a result of exactly this length may be cut. Default DEFAULT_ROLLUP_READ_LIMIT. */
  readonly limit?: number;
}

/**
 * Reads of the per-instance 1-minute rollups (`sample_minutes`) that the monitor server writes
 * with each batch of raw samples (store/telemetry.ts) and keeps MONITOR_ROLLUP_RETENTION_MS
 * (default 14 days), long after the raw samples are gone. Both reads are one range of the
 * table's key (group, minute, instance).
 */
export class RollupStore {
  private readonly instanceStmt;
  private readonly groupStmt;

  constructor(db: Db) {
    this.instanceStmt = db.prepare<[string, number, number, number], InstanceMinute>(`SELECT instance_id AS instanceId, minute, n,
      cpu_sum / (100.0 * n) AS cpuAvg, cpu_max / 100.0 AS cpuMax, mem_sum / (100.0 * n) AS memAvg, mem_max / 100.0 AS memMax
      FROM sample_minutes WHERE group_id = ? AND minute >= ? AND minute < ? ORDER BY minute, instance_id LIMIT ?`);
    this.groupStmt = db.prepare<[string, number, number, number], GroupMinute>(`SELECT minute, COUNT(*) AS instances, SUM(n) AS n,
      AVG(cpu_sum / (100.0 * n)) AS cpuAvg, MAX(cpu_max) / 100.0 AS cpuMax, AVG(mem_sum / (100.0 * n)) AS memAvg, MAX(mem_max) / 100.0 AS memMax
      FROM sample_minutes WHERE group_id = ? AND minute >= ? AND minute < ? GROUP BY minute ORDER BY minute LIMIT ?`);
  }

  /**
   * Per instance and minute, for the minutes of `groupId` that start in [from, to) (Unix epoch ms);
   * oldest first, then by instance id. "The last hour": `instanceMinutes(g, now - 3_600_000, now)`.
   */
  instanceMinutes(groupId: string, from: number, to: number, opts: RollupReadOptions = {}): InstanceMinute[] {
    return this.instanceStmt.all(groupId, from, to, readLimit(opts));
  }

  /** Per minute over the group's reporting instances, for the minutes that start in [from, to) (ms); oldest first. */
  groupMinutes(groupId: string, from: number, to: number, opts: RollupReadOptions = {}): GroupMinute[] {
    return this.groupStmt.all(groupId, from, to, readLimit(opts));
  }
}

function readLimit(opts: RollupReadOptions): number {
  const limit = opts.limit ?? DEFAULT_ROLLUP_READ_LIMIT;
  if (!Number.isInteger(limit) || limit < 1) throw new TypeError(`limit must be a whole number >= 1 (got ${limit})`);
  return limit;
}
