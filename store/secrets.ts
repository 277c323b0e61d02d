/**
 * Secrets the controller and the monitor server share through the store, and the identity
 * bindings of EC2 instance identity documents (docs/security.md, "Identity proofs").
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Db } from './db.js';

/** Name of the key the local provider's launch tokens are derived from. */
export const LAUNCH_KEY_NAME = 'local-launch-key';
/** Size of a generated secret, bytes (256 bits). */
const SECRET_BYTES = 32;

/** `secrets` table: random values created once, by whichever process needs them first. */
export class SecretStore {
  private readonly insertStmt;
  private readonly getStmt;
  private readonly cache = new Map<string, Buffer>();

  constructor(db: Db) {
    this.insertStmt = db.prepare('INSERT OR IGNORE INTO secrets (name, value, created_at) VALUES (?, ?, ?)');
    this.getStmt = db.prepare<[string], { value: Buffer }>('SELECT value FROM secrets WHERE name = ?');
  }

  /**
   * The secret `name`, created with 32 random bytes if it does not exist. Two processes racing
   * both end with the value that was inserted first (INSERT OR IGNORE, then read). Cached.
   */
  getOrCreate(name: string, now: number = Date.now()): Buffer {
    const cached = this.cache.get(name);
    if (cached !== undefined) return cached;
    this.insertStmt.run(name, randomBytes(SECRET_BYTES), now);
    const row = this.getStmt.get(name);
    if (row === undefined) throw new Error(`secret ${name} vanished after insert`);
    const value = Buffer.from(row.value);
    this.cache.set(name, value);
    return value;
  }

  /** AGENT_LAUNCH_TOKEN for `instanceId`: hex HMAC-SHA256 of the id under the launch key. */
  launchToken(instanceId: string): string {
    return launchTokenFor(this.getOrCreate(LAUNCH_KEY_NAME), instanceId);
  }
}

/** Hex HMAC-SHA256(key, instanceId): the per-launch secret of the local provider (64 hex digits). */
export function launchTokenFor(key: Buffer, instanceId: string): string {
  return createHmac('sha256', key).update(instanceId, 'utf8').digest('hex');
}

/** Constant-time comparison of two strings of any length (compares their SHA-256 digests). */
export function secretsEqual(a: string, b: string): boolean {
  return timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest());
}

/** SHA-256 of a nonce, hex: what is stored (never the nonce itself). */
export function nonceDigest(nonce: string): string {
  return createHash('sha256').update(nonce, 'utf8').digest('hex');
}

/** Outcome of checking a nonce against an instance's binding. */
export type BindingCheck = 'unbound' | 'match' | 'mismatch';

/** A stored binding, for operators. */
export interface IdentityBinding {
  readonly instanceId: string;
  /** SHA-256 of the bound nonce, hex. */
  readonly nonceSha256: string;
  /** First and latest Register that presented it, epoch ms. */
  readonly firstSeenAt: number;
  readonly lastSeenAt: number;
}

/** `identity_bindings`: the nonce the first verified identity document of each instance came with. */
export class IdentityBindingStore {
  private readonly getStmt;
  private readonly bindStmt;
  private readonly touchStmt;
  private readonly clearStmt;

  constructor(db: Db) {
    this.getStmt = db.prepare<[string], { instance_id: string; nonce_sha256: string; first_seen_at: number; last_seen_at: number }>(
      'SELECT * FROM identity_bindings WHERE instance_id = ?');
    this.bindStmt = db.prepare('INSERT OR IGNORE INTO identity_bindings (instance_id, nonce_sha256, first_seen_at, last_seen_at) VALUES (?, ?, ?, ?)');
    this.touchStmt = db.prepare('UPDATE identity_bindings SET last_seen_at = ? WHERE instance_id = ? AND nonce_sha256 = ?');
    this.clearStmt = db.prepare('DELETE FROM identity_bindings WHERE instance_id = ?');
  }

  get(instanceId: string): IdentityBinding | undefined {
    const r = this.getStmt.get(instanceId);
    return r === undefined ? undefined : { instanceId: r.instance_id, nonceSha256: r.nonce_sha256, firstSeenAt: r.first_seen_at, lastSeenAt: r.last_seen_at };
  }

  /** Does `nonceSha256` match the instance's binding (constant time), is there none, or another? */
  check(instanceId: string, nonceSha256: string): BindingCheck {
    const b = this.get(instanceId);
    if (b === undefined) return 'unbound';
    return secretsEqual(b.nonceSha256, nonceSha256) ? 'match' : 'mismatch';
  }

  /** Bind the nonce if the instance has no binding yet, else record that the bound one was seen. */
  bind(instanceId: string, nonceSha256: string, now: number): void {
    const inserted = this.bindStmt.run(instanceId, nonceSha256, now, now).changes > 0;
    if (!inserted) this.touchStmt.run(now, instanceId, nonceSha256);
  }

  /** Forget the binding (an operator reauthorizing a restarted agent); true if there was one. */
  clear(instanceId: string): boolean {
    return this.clearStmt.run(instanceId).changes > 0;
  }
}
