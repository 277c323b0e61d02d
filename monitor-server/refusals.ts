import type { Logger } from '../lib/logger.js';

/** Every kind of input the monitor server refuses; each has a counter. */
export const REFUSAL_REASONS = [
  // Heartbeats: HeartbeatRefusal in heartbeat-validation.ts.
  'seqInvalid', 'seqAboveMax', 'seqTooFarAhead', 'oversized', 'cpuOutOfRange', 'memOutOfRange', 'clockSkew',
  /** Heartbeat rate above the per-instance limit: stream ended with RESOURCE_EXHAUSTED. */
  'rateLimited',
  /** Ingest queue full while a stream still delivered: stream ended with RESOURCE_EXHAUSTED. */
  'queueFull',
  /** Heartbeats stream with an unknown (expired, superseded, made-up) session id. */
  'unknownSession',
  /** Second Heartbeats stream on one session. */
  'duplicateStream',
  /** A call without the right token or client certificate (UNAUTHENTICATED). */
  'unauthenticated',
  /** Register for an instance id the store does not know (PERMISSION_DENIED; never stored). */
  'registerUnknown',
  /** Register whose client certificate names neither the instance nor its group (PERMISSION_DENIED). */
  'registerForbidden',
  /** Register for an instance whose live session another identity holds (ALREADY_EXISTS). */
  'registerConflict',
  /** A stream or Deregister whose client certificate is not the one that registered the session (PERMISSION_DENIED). */
  'sessionForbidden',
  /** Register with malformed fields (INVALID_ARGUMENT). */
  'registerInvalid',
  /** Register refused by the store rules (unknown group, terminated, group mismatch). */
  'registerRefused',
  /** Deregister for a session that does not exist or names another instance. */
  'deregisterUnknown',
  /** HTTP request the parser or the router refused (400, 404, 405). */
  'httpBadRequest',
  /** A TLS handshake failed (no or untrusted client certificate, not TLS, too slow). */
  'tlsHandshake',
  /** A request that is not gRPC the server speaks: not POST, not application/grpc, unknown method, compressed, malformed framing, past its deadline. */
  'grpcProtocol',
  /** A message over MONITOR_MAX_MESSAGE_BYTES (RESOURCE_EXHAUSTED before it is buffered). */
  'messageTooLarge',
  /** A connection closed by the server: its keepalive PING went unanswered, or it held no call for 2 minutes. */
  'connectionClosed',
  /** A handler threw: answered INTERNAL / 500 and contained. */
  'internalError',
] as const;
export type RefusalReason = (typeof REFUSAL_REASONS)[number];
export type RefusalCounts = Record<RefusalReason, number>;

export function newRefusalCounts(): RefusalCounts {
  return Object.fromEntries(REFUSAL_REASONS.map((r) => [r, 0])) as RefusalCounts;
}

interface Window {
  startedAt: number;
  suppressed: number;
}

/**
 * Warn lines at a bounded rate: at most one line per key (an instance, a reason) per interval,
 * and at most `maxLinesPerInterval` lines overall; what was held back is counted and reported as
 * `suppressed` on the next line for that key or when its window is pruned. 20 streams of refused
 * heartbeats used to write 118 MiB of log a minute.
 */
export class ThrottledLog {
  private readonly windows = new Map<string, Window>();
  private globalStartedAt = Number.NEGATIVE_INFINITY;
  private globalLines = 0;
  /** Lines held back since start. */
  suppressedTotal = 0;

  constructor(
    private readonly log: Logger,
    private readonly opts: { readonly intervalMs: number; readonly maxLinesPerInterval: number; readonly maxKeys: number },
  ) {}

  warn(key: string, now: number, fields: Record<string, unknown>, msg: string): void {
    const w = this.windows.get(key);
    if (w !== undefined && now - w.startedAt < this.opts.intervalMs) {
      w.suppressed++;
      this.suppressedTotal++;
      return;
    }
    if (!this.budget(now) || (w === undefined && this.windows.size >= this.opts.maxKeys)) {
      this.suppressedTotal++;
      if (w !== undefined) w.suppressed++;
      return;
    }
    this.log.warn({ ...fields, suppressed: w?.suppressed ?? 0 }, msg);
    this.windows.set(key, { startedAt: now, suppressed: 0 });
  }

  /** Forget windows that have run out; report what they held back. */
  prune(now: number, summary: (key: string, suppressed: number) => void = () => {}): void {
    for (const [key, w] of this.windows) {
      if (now - w.startedAt < this.opts.intervalMs) continue;
      this.windows.delete(key);
      if (w.suppressed > 0 && this.budget(now)) summary(key, w.suppressed);
    }
  }

  /** Keys with an open window (for tests and health). */
  get size(): number {
    return this.windows.size;
  }

  private budget(now: number): boolean {
    if (now - this.globalStartedAt >= this.opts.intervalMs) {
      this.globalStartedAt = now;
      this.globalLines = 0;
    }
    if (this.globalLines >= this.opts.maxLinesPerInterval) return false;
    this.globalLines++;
    return true;
  }
}
