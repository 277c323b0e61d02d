/**
 * A small EC2 Instance Metadata Service (IMDSv2) client on node:http.
 *
 * IMDSv2 (AWS EC2 user guide, "Use the Instance Metadata Service to access instance metadata"):
 * `PUT /latest/api/token` with `X-aws-ec2-metadata-token-ttl-seconds` (1-21600) returns a session
 * token; every `GET /latest/meta-data/...` carries it in `X-aws-ec2-metadata-token`. An expired or
 * missing token gets 401. The service is a link-local HTTP endpoint (169.254.169.254, or
 * [fd00:ec2::254] on Nitro instances with the IPv6 endpoint enabled); it is not IAM.
 */
import { request, type IncomingHttpHeaders } from 'node:http';
import { isIPv4 } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { DEFAULT_IMDS_ATTEMPTS, DEFAULT_IMDS_ENDPOINT, DEFAULT_IMDS_TIMEOUT_MS } from '../config/agent.js';

/** First pause between tries, ms; doubles each time (250, 500, ...). At boot IMDS may be slow. */
export const DEFAULT_IMDS_BACKOFF_MS = 250;
/** Session token lifetime asked for: the largest IMDS allows (6 h). */
export const IMDS_TOKEN_TTL_SECONDS = 21_600;
/** IMDS answers are a few bytes; anything larger is not IMDS. */
const MAX_BODY_BYTES = 64 * 1024;

/** EC2 instance ids: `i-` then 8 (older) or 17 hex digits. */
export const EC2_INSTANCE_ID_PATTERN = /^i-(?:[0-9a-f]{8}|[0-9a-f]{17})$/;
const ZONE_PATTERN = /^[a-z0-9-]{1,64}$/;
const INSTANCE_TYPE_PATTERN = /^[a-z0-9][a-z0-9.-]{0,63}$/;

/** What went wrong, for callers that react differently (all end in the agent's ConfigError today). */
export type ImdsErrorCode =
  /** No answer within the timeout, on every try. */
  | 'timeout'
  /** No connection (refused, unreachable, reset), on every try. */
  | 'unreachable'
  /** IMDS answered with an error status that retrying will not fix (403: IMDS disabled, 404, 400). */
  | 'http-status'
  /** 401 again after a fresh token. */
  | 'token-refused'
  /** An answer that is not what IMDS sends (bad instance id shape, oversized body, ...). */
  | 'invalid-response'
  /** The caller aborted. */
  | 'aborted';

/** A failed IMDS call. `cause` holds the last underlying error when there was one. */
export class ImdsError extends Error {
  override name = 'ImdsError';
  constructor(
    message: string,
    readonly code: ImdsErrorCode,
    /** The endpoint asked, e.g. http://169.254.169.254. */
    readonly endpoint: string,
    /** The path asked, e.g. /latest/meta-data/instance-id. */
    readonly path: string,
    /** HTTP status of the last answer, when there was one. */
    readonly status?: number,
    opts?: ErrorOptions,
  ) {
    super(message, opts);
  }
}

/** The instance facts the agent needs. */
export interface ImdsIdentity {
  /** EC2 instance id, e.g. i-0123456789abcdef0. */
  readonly instanceId: string;
  /** Availability zone, e.g. eu-west-1a. */
  readonly availabilityZone: string;
  /** Instance type, e.g. t3.small. */
  readonly instanceType: string;
  /** Primary private IPv4 address; undefined on IPv6-only instances (IMDS answers 404 there). */
  readonly localIpv4: string | undefined;
}

/**
 * The signed instance identity document (AWS EC2 user guide, "Instance identity documents" and
 * "Verify the instance identity document"): the JSON document's bytes exactly as served (the
 * signature covers them), and its `signature`: base64 of an RSA SHA-256 signature.
 */
export interface InstanceIdentityDocument {
  readonly document: Buffer;
  /** Base64, whitespace removed. */
  readonly signature: string;
  /** The document's instanceId. */
  readonly instanceId: string;
}

/** Where IMDS serves the document and its signatures. */
export const IID_DOCUMENT_PATH = '/latest/dynamic/instance-identity/document';
export const IID_SIGNATURE_PATH = '/latest/dynamic/instance-identity/signature';

export interface ImdsClientOptions {
  /** Base URL, http only, no path. Default http://169.254.169.254. */
  readonly endpoint?: string;
  /** Timeout of each HTTP request (connect to last byte), ms. Default 1000. */
  readonly timeoutMs?: number;
  /** Tries per request, >= 1. Default 3. */
  readonly attempts?: number;
  /** First pause between tries, ms, doubling. Default 250. */
  readonly backoffMs?: number;
  /** Aborts every request and pause in flight. */
  readonly signal?: AbortSignal;
}

interface Answer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  readonly bytes: Buffer;
}

/** A failure worth another try (timeouts, connection errors, 5xx), with what to report. */
class Transient extends Error {
  constructor(readonly code: 'timeout' | 'unreachable' | 'http-status', message: string, readonly status?: number, opts?: ErrorOptions) {
    super(message, opts);
  }
}

/**
 * IMDSv2 session: one token, reused until IMDS refuses it (401), then fetched again once per
 * request. Every request has its own timeout and is tried `attempts` times with backoff.
 */
export class ImdsClient {
  readonly endpoint: string;
  private readonly timeoutMs: number;
  private readonly attempts: number;
  private readonly backoffMs: number;
  private readonly signal: AbortSignal | undefined;
  private token: string | undefined;

  constructor(opts: ImdsClientOptions = {}) {
    this.endpoint = (opts.endpoint ?? DEFAULT_IMDS_ENDPOINT).replace(/\/+$/, '');
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_IMDS_TIMEOUT_MS;
    this.attempts = Math.max(1, opts.attempts ?? DEFAULT_IMDS_ATTEMPTS);
    this.backoffMs = opts.backoffMs ?? DEFAULT_IMDS_BACKOFF_MS;
    this.signal = opts.signal;
    if (!/^http:\/\/[^/?#]+$/.test(this.endpoint)) throw new TypeError(`IMDS endpoint must be http://host[:port], got ${this.endpoint}`);
  }

  /** The instance id, zone, type and private IPv4 address. */
  async identity(): Promise<ImdsIdentity> {
    const instanceId = await this.metadata('instance-id');
    if (!EC2_INSTANCE_ID_PATTERN.test(instanceId)) {
      throw new ImdsError(`IMDS at ${this.endpoint} returned "${instanceId.slice(0, 80)}" as instance-id, not an EC2 instance id (i- and 8 or 17 hex digits)`,
        'invalid-response', this.endpoint, '/latest/meta-data/instance-id');
    }
    const availabilityZone = await this.checked('placement/availability-zone', ZONE_PATTERN);
    const instanceType = await this.checked('instance-type', INSTANCE_TYPE_PATTERN);
    const ip = await this.metadata('local-ipv4', { missingOk: true });
    if (ip !== undefined && !isIPv4(ip)) {
      throw new ImdsError(`IMDS at ${this.endpoint} returned "${ip.slice(0, 80)}" as local-ipv4, not an IPv4 address`, 'invalid-response', this.endpoint, '/latest/meta-data/local-ipv4');
    }
    return { instanceId, availabilityZone, instanceType, localIpv4: ip };
  }

  /**
   * The instance identity document and its RSA signature. The document must be JSON naming an
   * EC2 instance id and the signature base64; the server verifies the signature.
   */
  async identityDocument(): Promise<InstanceIdentityDocument> {
    const doc = await this.get(IID_DOCUMENT_PATH);
    const sig = (await this.get(IID_SIGNATURE_PATH)).body.replace(/\s+/g, '');
    let instanceId: unknown;
    try {
      instanceId = (JSON.parse(doc.body) as { instanceId?: unknown }).instanceId;
    } catch {
      instanceId = undefined;
    }
    if (typeof instanceId !== 'string' || !EC2_INSTANCE_ID_PATTERN.test(instanceId)) {
      throw new ImdsError(`IMDS at ${this.endpoint} returned an instance identity document without an EC2 instanceId`, 'invalid-response', this.endpoint, IID_DOCUMENT_PATH);
    }
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(sig)) {
      throw new ImdsError(`IMDS at ${this.endpoint} returned a signature that is not base64`, 'invalid-response', this.endpoint, IID_SIGNATURE_PATH);
    }
    return { document: doc.bytes, signature: sig, instanceId };
  }

  /** GET /latest/meta-data/<path> with the session token; a 401 fetches a new token once. */
  metadata(path: string): Promise<string>;
  metadata(path: string, opts: { missingOk: true }): Promise<string | undefined>;
  async metadata(path: string, opts: { missingOk?: boolean } = {}): Promise<string | undefined> {
    const answer = await this.get(`/latest/meta-data/${path}`, opts.missingOk ?? false);
    return answer === undefined ? undefined : answer.body.trim();
  }

  /** GET `full` with the session token; a 401 fetches a new token once; 404 is undefined when `missingOk`. */
  private get(full: string): Promise<Answer>;
  private get(full: string, missingOk: boolean): Promise<Answer | undefined>;
  private async get(full: string, missingOk = false): Promise<Answer | undefined> {
    let answer = await this.send('GET', full, { 'x-aws-ec2-metadata-token': await this.sessionToken() });
    if (answer.status === 401) {
      // The token expired or this IMDS did not accept it: one fresh token, one more try.
      this.token = undefined;
      answer = await this.send('GET', full, { 'x-aws-ec2-metadata-token': await this.sessionToken() });
      if (answer.status === 401) {
        throw new ImdsError(`IMDS at ${this.endpoint} refused a fresh session token for ${full} (401)`, 'token-refused', this.endpoint, full, 401);
      }
    }
    if (answer.status === 404 && missingOk) return undefined;
    if (answer.status !== 200) throw this.statusError('GET', full, answer.status);
    return answer;
  }

  private async checked(path: string, pattern: RegExp): Promise<string> {
    const value = await this.metadata(path);
    if (!pattern.test(value)) {
      throw new ImdsError(`IMDS at ${this.endpoint} returned "${value.slice(0, 80)}" for ${path}`, 'invalid-response', this.endpoint, `/latest/meta-data/${path}`);
    }
    return value;
  }

  private async sessionToken(): Promise<string> {
    if (this.token !== undefined) return this.token;
    const path = '/latest/api/token';
    const answer = await this.send('PUT', path, { 'x-aws-ec2-metadata-token-ttl-seconds': String(IMDS_TOKEN_TTL_SECONDS) });
    if (answer.status !== 200) throw this.statusError('PUT', path, answer.status);
    const token = answer.body.trim();
    if (token === '') throw new ImdsError(`IMDS at ${this.endpoint} returned an empty session token`, 'invalid-response', this.endpoint, path, 200);
    this.token = token;
    return token;
  }

  private statusError(method: string, path: string, status: number): ImdsError {
    const hint = status === 403 ? ' (IMDS is disabled for this instance, or the request was refused)' : '';
    return new ImdsError(`IMDS at ${this.endpoint} answered ${method} ${path} with HTTP ${status}${hint}`, 'http-status', this.endpoint, path, status);
  }

  /** One request, tried up to `attempts` times on timeouts, connection errors and 5xx. */
  private async send(method: 'GET' | 'PUT', path: string, headers: Record<string, string>): Promise<Answer> {
    let last: Transient | undefined;
    for (let attempt = 1; attempt <= this.attempts; attempt++) {
      if (attempt > 1) await this.pause(this.backoffMs * 2 ** (attempt - 2), path);
      try {
        const answer = await this.once(method, path, headers);
        if (answer.status < 500) return answer;
        last = new Transient('http-status', `HTTP ${answer.status}`, answer.status);
      } catch (err) {
        if (!(err instanceof Transient)) throw err;
        last = err;
      }
    }
    const what = last?.code === 'timeout' ? `no answer within ${this.timeoutMs} ms` : (last?.message ?? 'failed');
    throw new ImdsError(`IMDS at ${this.endpoint}: ${method} ${path}: ${what} (${this.attempts} ${this.attempts === 1 ? 'try' : 'tries'})`,
      last?.code ?? 'unreachable', this.endpoint, path, last?.status, { cause: last?.cause ?? last });
  }

  private async pause(ms: number, path: string): Promise<void> {
    try {
      await sleep(ms, undefined, this.signal ? { signal: this.signal } : {});
    } catch (err) {
      throw new ImdsError(`IMDS request ${path} aborted`, 'aborted', this.endpoint, path, undefined, { cause: err });
    }
  }

  private once(method: 'GET' | 'PUT', path: string, headers: Record<string, string>): Promise<Answer> {
    return new Promise<Answer>((resolve, reject) => {
      if (this.signal?.aborted) {
        reject(new ImdsError(`IMDS request ${path} aborted`, 'aborted', this.endpoint, path));
        return;
      }
      let settled = false;
      const finish = (fn: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.signal?.removeEventListener('abort', onAbort);
        fn();
      };
      const req = request(new URL(path, this.endpoint), { method, headers, agent: false });
      // One deadline for connect, headers and body: a half-open IMDS must not hang the agent.
      const timer = setTimeout(() => {
        finish(() => reject(new Transient('timeout', `no answer within ${this.timeoutMs} ms`)));
        req.destroy();
      }, this.timeoutMs);
      const onAbort = () => {
        finish(() => reject(new ImdsError(`IMDS request ${path} aborted`, 'aborted', this.endpoint, path)));
        req.destroy();
      };
      this.signal?.addEventListener('abort', onAbort, { once: true });
      req.on('error', (err: NodeJS.ErrnoException) => {
        finish(() => reject(new Transient('unreachable', err.code ?? err.message, undefined, { cause: err })));
      });
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (b: Buffer) => {
          size += b.length;
          if (size > MAX_BODY_BYTES) {
            finish(() => reject(new ImdsError(`IMDS at ${this.endpoint} sent more than ${MAX_BODY_BYTES} bytes for ${path}`, 'invalid-response', this.endpoint, path, res.statusCode)));
            req.destroy();
            return;
          }
          chunks.push(b);
        });
        res.on('end', () => finish(() => {
          const bytes = Buffer.concat(chunks);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: bytes.toString('utf8'), bytes });
        }));
        res.on('error', (err: NodeJS.ErrnoException) => finish(() => reject(new Transient('unreachable', err.code ?? err.message, undefined, { cause: err }))));
      });
      req.end();
    });
  }
}

/** Convenience: one client, one identity. */
export function fetchImdsIdentity(opts: ImdsClientOptions = {}): Promise<ImdsIdentity> {
  return new ImdsClient(opts).identity();
}
