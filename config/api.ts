/**
 * The monitor server's HTTP API and dashboard listener: who may read and write (bearer tokens),
 * TLS, the event stream. A fragment of the monitor server's config (config/monitor-server.ts
 * spreads it), kept here so the API's keys and their checks sit together.
 */
import { z } from 'zod';
import { isLoopbackHost } from '../lib/tls.js';
import { bool, int, str, type CrossCheck } from './shared.js';
import { parseTokenLines, type ApiTokenSpec } from './api-tokens.js';

/** `name:role:secret` → `name role secret` (the secret may hold colons). */
const colonsToFields = (t: string): string => {
  const a = t.indexOf(':');
  const b = a < 0 ? -1 : t.indexOf(':', a + 1);
  return b < 0 ? t : `${t.slice(0, a)} ${t.slice(a + 1, b)} ${t.slice(b + 1)}`;
};

/** The event stream polls the store this often while anyone listens. */
export const DEFAULT_API_STREAM_MS = 1_000;
/** Open event streams at once; more are answered 503. */
export const DEFAULT_API_MAX_STREAMS = 64;

export const API_SHAPE = {
  /** Inline tokens: `name:role:secret`, comma-separated; role read or write. Prefer the file. */
  MONITOR_API_TOKENS: z.string().default('').transform((v, ctx) => {
    const lines = v.split(',').map((t) => t.trim()).filter((t) => t !== '').map(colonsToFields);
    const r = parseTokenLines(lines);
    for (const p of r.problems) ctx.issues.push({ code: 'custom', message: `token ${p}`, input: '' });
    return r.tokens;
  }),
  MONITOR_API_TOKENS_FILE: str(''),
  MONITOR_API_READ: z.enum(['auto', 'open', 'token'], { error: 'must be auto, open or token' }).default('auto'),
  MONITOR_HTTP_TLS_CERT: str(''),
  MONITOR_HTTP_TLS_KEY: str(''),
  MONITOR_HTTP_INSECURE: bool(false),
  MONITOR_API_STREAM_MS: int(DEFAULT_API_STREAM_MS, 100, 60_000),
  MONITOR_API_MAX_STREAMS: int(DEFAULT_API_MAX_STREAMS, 1, 10_000),
};

/** Values never echoed in config errors. */
export const API_SECRET_KEYS = ['MONITOR_API_TOKENS'];

type Shape = typeof API_SHAPE & { MONITOR_HTTP_HOST: z.ZodDefault<z.ZodString> };

export const API_CHECKS: readonly CrossCheck<Shape>[] = [
  (c) => (c.MONITOR_HTTP_TLS_CERT && !c.MONITOR_HTTP_TLS_KEY ? ['MONITOR_HTTP_TLS_KEY', 'must be set with MONITOR_HTTP_TLS_CERT'] : undefined),
  (c) => (c.MONITOR_HTTP_TLS_KEY && !c.MONITOR_HTTP_TLS_CERT ? ['MONITOR_HTTP_TLS_CERT', 'must be set with MONITOR_HTTP_TLS_KEY'] : undefined),
  (c) => (c.MONITOR_HTTP_INSECURE === true && c.MONITOR_HTTP_TLS_CERT
    ? ['MONITOR_HTTP_INSECURE', 'is true but MONITOR_HTTP_TLS_CERT is set, so HTTPS is used anyway: unset one of the two'] : undefined),
  // Bearer tokens and fleet state in plaintext beyond this host: only on request.
  (c) => (c.MONITOR_HTTP_HOST !== undefined && !isLoopbackHost(c.MONITOR_HTTP_HOST) && !c.MONITOR_HTTP_TLS_CERT && c.MONITOR_HTTP_INSECURE === false
    ? ['MONITOR_HTTP_HOST', 'is not a loopback address and the HTTP listener has no TLS: set MONITOR_HTTP_TLS_CERT and MONITOR_HTTP_TLS_KEY '
      + '(`autoscaler certs init DIR` makes a server certificate), or MONITOR_HTTP_INSECURE=true to serve the API and its tokens in plaintext'] : undefined),
];

/** The API's settings, as the monitor server's config carries them. */
export interface ApiConfig {
  /** Tokens given inline (MONITOR_API_TOKENS). */
  readonly tokens: readonly ApiTokenSpec[];
  /** File of tokens, one `name role secret` per line; read at start and on SIGHUP. Empty: none. */
  readonly tokensFile: string | undefined;
  /** Reads need a token: `token`, `open`, or `auto` (a token unless the listener is on loopback). Default auto. */
  readonly readNeedsToken: boolean;
  /** HTTPS on the HTTP listener; undefined: plain HTTP. */
  readonly tls: { readonly certFile: string; readonly keyFile: string } | undefined;
  /** Event stream poll period, ms. Default 1 000. */
  readonly streamMs: number;
  /** Open event streams at once. Default 64. */
  readonly maxStreams: number;
}

export function apiConfig(c: { [K in keyof Shape]: z.output<Shape[K]> }): ApiConfig {
  return Object.freeze({
    tokens: Object.freeze([...c.MONITOR_API_TOKENS]),
    tokensFile: c.MONITOR_API_TOKENS_FILE || undefined,
    readNeedsToken: c.MONITOR_API_READ === 'token' || (c.MONITOR_API_READ === 'auto' && !isLoopbackHost(c.MONITOR_HTTP_HOST)),
    tls: c.MONITOR_HTTP_TLS_CERT ? Object.freeze({ certFile: c.MONITOR_HTTP_TLS_CERT, keyFile: c.MONITOR_HTTP_TLS_KEY }) : undefined,
    streamMs: c.MONITOR_API_STREAM_MS,
    maxStreams: c.MONITOR_API_MAX_STREAMS,
  });
}
