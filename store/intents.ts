import type { Db } from './db.js';

/**
 * A launch the controller decided on, written before the provider is called. Its token is the
 * provider's idempotency key and a tag on what it launched, so a crash between "decided" and
 * "recorded the instances" is recovered by retrying with the same token or finding the tag.
 */
export interface LaunchIntent {
  readonly token: string;
  readonly groupId: string;
  /** Instances asked for. */
  readonly count: number;
  readonly cause: string;
  readonly createdAt: number;
  /** Provider calls made for it so far. */
  readonly attempts: number;
  readonly status: 'open' | 'done' | 'failed';
  readonly error: string | null;
}

interface RawIntent {
  token: string; group_id: string; count: number; cause: string; created_at: number; attempts: number;
  status: 'open' | 'done' | 'failed'; error: string | null;
}

const toIntent = (r: RawIntent): LaunchIntent => ({
  token: r.token, groupId: r.group_id, count: r.count, cause: r.cause, createdAt: r.created_at,
  attempts: r.attempts, status: r.status, error: r.error,
});

export class IntentStore {
  private readonly createStmt;
  private readonly openStmt;
  private readonly getStmt;
  private readonly attemptStmt;
  private readonly closeStmt;

  constructor(db: Db) {
    this.createStmt = db.prepare(`INSERT INTO launch_intents (token, group_id, count, cause, created_at, status)
      VALUES (?, ?, ?, ?, ?, 'open')`);
    this.openStmt = db.prepare<[string], RawIntent>(`SELECT * FROM launch_intents WHERE group_id = ? AND status = 'open' ORDER BY created_at, token`);
    this.getStmt = db.prepare<[string], RawIntent>('SELECT * FROM launch_intents WHERE token = ?');
    this.attemptStmt = db.prepare('UPDATE launch_intents SET attempts = attempts + 1 WHERE token = ?');
    this.closeStmt = db.prepare(`UPDATE launch_intents SET status = @status, error = @error, closed_at = @now WHERE token = @token AND status = 'open'`);
  }

  create(token: string, groupId: string, count: number, cause: string, now: number): void {
    this.createStmt.run(token, groupId, count, cause, now);
  }

  /** Open intents of a group, oldest first. */
  open(groupId: string): LaunchIntent[] {
    return this.openStmt.all(groupId).map(toIntent);
  }

  get(token: string): LaunchIntent | undefined {
    const r = this.getStmt.get(token);
    return r === undefined ? undefined : toIntent(r);
  }

  /** Counted before each provider call, so a crash mid-call still shows an attempt. */
  attempt(token: string): void {
    this.attemptStmt.run(token);
  }

  /** Close an open intent: done (its instances are recorded) or failed (with why). */
  close(token: string, status: 'done' | 'failed', error: string | null, now: number): boolean {
    return this.closeStmt.run({ token, status, error, now }).changes > 0;
  }
}
