import type { Db } from './db.js';

/** A daemon's self-reported liveness and addresses. */
export interface ComponentRow {
  readonly name: string;
  readonly pid: number;
  readonly startedAt: number;
  readonly heartbeatAt: number;
  readonly info: Readonly<Record<string, unknown>>;
}

interface RawComponent { name: string; pid: number; started_at: number; heartbeat_at: number; info: string }

/** The monitor server and the controller each beat here, so each can tell whether the other runs. */
export class ComponentStore {
  private readonly upsertStmt;
  private readonly getStmt;
  private readonly listStmt;
  private readonly removeStmt;

  constructor(db: Db) {
    this.upsertStmt = db.prepare(`INSERT INTO components (name, pid, started_at, heartbeat_at, info) VALUES (@name, @pid, @startedAt, @now, @info)
      ON CONFLICT(name) DO UPDATE SET pid = @pid, started_at = @startedAt, heartbeat_at = @now, info = @info`);
    this.getStmt = db.prepare<[string], RawComponent>('SELECT * FROM components WHERE name = ?');
    this.listStmt = db.prepare<[], RawComponent>('SELECT * FROM components ORDER BY name');
    this.removeStmt = db.prepare('DELETE FROM components WHERE name = ? AND pid = ?');
  }

  beat(c: { name: string; pid: number; startedAt: number; info: Record<string, unknown> }, now: number): void {
    this.upsertStmt.run({ name: c.name, pid: c.pid, startedAt: c.startedAt, now, info: JSON.stringify(c.info) });
  }

  get(name: string): ComponentRow | undefined {
    const r = this.getStmt.get(name);
    return r === undefined ? undefined : { name: r.name, pid: r.pid, startedAt: r.started_at, heartbeatAt: r.heartbeat_at, info: JSON.parse(r.info) as Record<string, unknown> };
  }

  list(): ComponentRow[] {
    return this.listStmt.all().map((r) => ({ name: r.name, pid: r.pid, startedAt: r.started_at, heartbeatAt: r.heartbeat_at, info: JSON.parse(r.info) as Record<string, unknown> }));
  }

  /** A clean shutdown removes the row so readers see "stopped", not "stale". */
  remove(name: string, pid: number): void {
    this.removeStmt.run(name, pid);
  }
}
