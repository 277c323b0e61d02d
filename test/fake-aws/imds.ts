/**
 * A loopback EC2 Instance Metadata Service (IMDSv2) for tests: one per simulated instance.
 *
 * Behaves like IMDS with HttpTokens=required (AWS EC2 user guide, "Use the Instance Metadata
 * Service to access instance metadata"): `PUT /latest/api/token` needs
 * `X-aws-ec2-metadata-token-ttl-seconds` in 1..21600 (else 400) and answers with a token and
 * its TTL; `GET /latest/meta-data/...` needs a live token in `X-aws-ec2-metadata-token` (else
 * 401). Unknown paths are 404, other methods 405. `/latest/dynamic/instance-identity/document` and
 * `.../signature` serve a JSON identity document and its base64 RSA SHA-256 signature (AWS EC2 user
 * guide, "Instance identity documents"), under the same token rules.
 */
import { generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeImdsOptions {
  /** Served at /latest/meta-data/instance-id. */
  readonly instanceId: string;
  /** Served at placement/availability-zone. Default us-east-1a. */
  readonly availabilityZone?: string;
  /** Served at instance-type. Default t3.micro. */
  readonly instanceType?: string;
  /** Served at local-ipv4; null answers 404 there (an IPv6-only instance). Default 10.0.0.10. */
  readonly localIpv4?: string | null;
  /** HttpTokens=required: a GET without a valid token is 401. false = IMDSv1 allowed. Default true. */
  readonly requireToken?: boolean;
  /** Refuse a token PUT whose TTL header is missing or outside 1..21600 (400). Default true. */
  readonly tokenTtlCheck?: boolean;
  /** Hold every answer this long, ms (to provoke client timeouts). Default 0. */
  readonly delayMs?: number;
  /** Apply `delayMs` only to the first N requests, then answer at once. Default: every request. */
  readonly delayCount?: number;
  /** Address to listen on. Default 127.0.0.1 (port 0). */
  readonly host?: string;
  /** RSA private key that signs the identity document. Default: a fresh key no one trusts. */
  readonly signingKey?: KeyObject;
  /** Served as the identity document instead of the generated one (bytes as given). */
  readonly identityDocument?: string;
  /** Served as the signature instead of the document's real one (base64). */
  readonly identitySignature?: string;
}

/** The identity document AWS would serve for these facts (pretty-printed JSON, as IMDS does). */
export function identityDocumentFor(opts: { instanceId: string; availabilityZone?: string; instanceType?: string; privateIp?: string; pendingTime?: string }): string {
  const zone = opts.availabilityZone ?? 'us-east-1a';
  return JSON.stringify({
    accountId: '123456789012', architecture: 'x86_64', availabilityZone: zone, billingProducts: null, devpayProductCodes: null,
    marketplaceProductCodes: null, imageId: 'ami-0123456789abcdef0', instanceId: opts.instanceId, instanceType: opts.instanceType ?? 't3.micro',
    kernelId: null, pendingTime: opts.pendingTime ?? '2026-01-01T00:00:00Z', privateIp: opts.privateIp ?? '10.0.0.10', ramdiskId: null,
    region: zone.replace(/[a-z]$/, ''), version: '2017-09-30',
  }, null, 2);
}

/** Base64 RSA SHA-256 signature of `document` with `key`, as IMDS's `signature` endpoint serves it. */
export function signIdentityDocument(document: string | Buffer, key: KeyObject): string {
  return sign('sha256', Buffer.from(document), key).toString('base64');
}

/** What the fake saw. */
export interface FakeImdsCounters {
  /** Tokens issued (PUT 200). */
  tokens: number;
  /** Token PUTs refused (400). */
  tokenRefusals: number;
  /** Metadata GETs answered 200. */
  gets: number;
  /** Metadata GETs answered 401. */
  unauthorized: number;
  /** Every request received. */
  requests: number;
  /** TTL of the last token PUT, seconds. */
  lastTtlSeconds: number | undefined;
}

export interface FakeImds {
  /** Base URL for AGENT_IMDS_ENDPOINT, e.g. http://127.0.0.1:41234. */
  readonly url: string;
  readonly port: number;
  readonly counters: FakeImdsCounters;
  /** Invalidate every token issued so far (the next GET with one gets 401). */
  expireTokens(): void;
  /** Change the answer delay, ms; `count` limits it to the next N requests. */
  setDelay(ms: number, count?: number): void;
  /** Answer the next `count` requests with `status` (default 503: IMDS overloaded at boot). */
  failNext(count: number, status?: number): void;
  close(): Promise<void>;
}

const MAX_TTL_SECONDS = 21_600;

export async function startFakeImds(opts: FakeImdsOptions): Promise<FakeImds> {
  const meta: Record<string, string | null> = {
    'instance-id': opts.instanceId,
    'placement/availability-zone': opts.availabilityZone ?? 'us-east-1a',
    'instance-type': opts.instanceType ?? 't3.micro',
    'local-ipv4': opts.localIpv4 === undefined ? '10.0.0.10' : opts.localIpv4,
  };
  const key = opts.signingKey ?? generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  const document = opts.identityDocument ?? identityDocumentFor({
    instanceId: opts.instanceId, ...(opts.availabilityZone !== undefined ? { availabilityZone: opts.availabilityZone } : {}),
    ...(opts.instanceType !== undefined ? { instanceType: opts.instanceType } : {}), ...(typeof opts.localIpv4 === 'string' ? { privateIp: opts.localIpv4 } : {}),
  });
  const dynamic: Record<string, string> = {
    'instance-identity/document': document,
    'instance-identity/signature': opts.identitySignature ?? signIdentityDocument(document, key),
  };
  const requireToken = opts.requireToken ?? true;
  const ttlCheck = opts.tokenTtlCheck ?? true;
  let delayMs = opts.delayMs ?? 0;
  let delayLeft = opts.delayCount ?? Number.POSITIVE_INFINITY;
  /** token -> expiry (ms since epoch) */
  const tokens = new Map<string, number>();
  const counters: FakeImdsCounters = { tokens: 0, tokenRefusals: 0, gets: 0, unauthorized: 0, requests: 0, lastTtlSeconds: undefined };
  const pending = new Set<NodeJS.Timeout>();
  let failLeft = 0;
  let failStatus = 503;

  const answer = (res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}) => {
    if (res.destroyed) return;
    res.writeHead(status, { 'content-type': 'text/plain', ...headers }).end(body);
  };

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    if (failLeft > 0) {
      failLeft--;
      return answer(res, failStatus, 'Service Unavailable');
    }
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (path === '/latest/api/token') {
      if (req.method !== 'PUT') return answer(res, 405, 'Method Not Allowed');
      const raw = req.headers['x-aws-ec2-metadata-token-ttl-seconds'];
      const ttl = typeof raw === 'string' && /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
      if (ttlCheck && !(ttl >= 1 && ttl <= MAX_TTL_SECONDS)) {
        counters.tokenRefusals++;
        return answer(res, 400, 'Bad Request');
      }
      const seconds = Number.isNaN(ttl) ? MAX_TTL_SECONDS : ttl;
      const token = randomBytes(28).toString('base64');
      tokens.set(token, Date.now() + seconds * 1000);
      counters.tokens++;
      counters.lastTtlSeconds = seconds;
      return answer(res, 200, token, { 'x-aws-ec2-metadata-token-ttl-seconds': String(seconds) });
    }
    const isMeta = path.startsWith('/latest/meta-data/');
    if (!isMeta && !path.startsWith('/latest/dynamic/')) return answer(res, 404, 'Not Found');
    if (req.method !== 'GET') return answer(res, 405, 'Method Not Allowed');
    const given = req.headers['x-aws-ec2-metadata-token'];
    const expiry = typeof given === 'string' ? tokens.get(given) : undefined;
    const valid = expiry !== undefined && expiry > Date.now();
    // A token that is sent must be valid even when IMDSv1 is allowed (as on EC2).
    if ((requireToken || given !== undefined) && !valid) {
      counters.unauthorized++;
      return answer(res, 401, 'Unauthorized');
    }
    const value = isMeta ? meta[path.slice('/latest/meta-data/'.length)] : dynamic[path.slice('/latest/dynamic/'.length)];
    if (value === undefined || value === null) return answer(res, 404, 'Not Found');
    counters.gets++;
    return answer(res, 200, value);
  };

  const server = createServer((req, res) => {
    counters.requests++;
    req.resume();
    const delay = delayLeft > 0 ? delayMs : 0;
    if (delayLeft > 0) delayLeft--;
    if (delay <= 0) {
      handle(req, res);
      return;
    }
    const t = setTimeout(() => {
      pending.delete(t);
      handle(req, res);
    }, delay);
    pending.add(t);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, opts.host ?? '127.0.0.1', () => resolve());
  });
  const { port, address, family } = server.address() as AddressInfo;
  const host = family === 'IPv6' ? `[${address}]` : address;
  return {
    url: `http://${host}:${port}`,
    port,
    counters,
    expireTokens: () => tokens.clear(),
    setDelay: (ms, count) => {
      delayMs = ms;
      delayLeft = count ?? Number.POSITIVE_INFINITY;
    },
    failNext: (count, status = 503) => {
      failLeft = count;
      failStatus = status;
    },
    close: async () => {
      for (const t of pending) clearTimeout(t);
      pending.clear();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
