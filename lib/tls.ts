/**
 * Credential files for the gRPC link between agents and the monitor server: PEM loading with
 * errors that name the config key and the file, and the metadata keys both sides send.
 * Every problem is a ConfigError, so a daemon exits 78 (configuration) naming what to fix.
 */
import { X509Certificate, createHash, createPrivateKey, timingSafeEqual, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { ConfigError } from '../config/errors.js';

/** Metadata key of the shared token: `authorization: Bearer <token>` (RFC 6750 style). */
export const AUTHORIZATION_METADATA_KEY = 'authorization';
/**
 * Metadata key of the agent key: a random value an agent process draws once and sends with every
 * Register. The server binds a live session to it, so a second client that knows only the
 * instance id (or holds the same shared token or group certificate) cannot take the session over.
 */
export const AGENT_KEY_METADATA_KEY = 'agent-key';
/** SAN URI prefixes naming what a client certificate may speak for. */
export const INSTANCE_URI_PREFIX = 'autoscaler://instance/';
export const GROUP_URI_PREFIX = 'autoscaler://group/';
/** Shortest accepted shared token: 16 characters (a `certs init` token is 43). */
export const MIN_TOKEN_LENGTH = 16;

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n[\s\S]*?-----END \1-----/g;

function readPem(key: string, path: string): { text: string; blocks: { label: string; pem: string }[] } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new ConfigError([`${key}: cannot read ${path} (${code})`], { cause: err });
  }
  const blocks = [...text.matchAll(PEM_BLOCK)].map((m) => ({ label: m[1] ?? '', pem: m[0] }));
  if (blocks.length === 0) throw new ConfigError([`${key}: ${path} is not a PEM file (no -----BEGIN ...----- block)`]);
  return { text, blocks };
}

/** A certificate file (one certificate or a chain, leaf first), parsed. */
export interface CertificateFile {
  readonly pem: Buffer;
  /** The first certificate in the file (the leaf of a chain). */
  readonly leaf: X509Certificate;
  readonly all: readonly X509Certificate[];
}

/**
 * Load PEM certificates from `path`; `key` is the config key named in errors. Refuses files
 * without a certificate, certificates that do not parse, and (with `now`) expired or not yet
 * valid leaves.
 */
export function loadCertificates(key: string, path: string, now?: number): CertificateFile {
  const { blocks } = readPem(key, path);
  const certs = blocks.filter((b) => b.label === 'CERTIFICATE');
  if (certs.length === 0) throw new ConfigError([`${key}: ${path} holds no CERTIFICATE block (found ${blocks.map((b) => b.label).join(', ')})`]);
  const all: X509Certificate[] = [];
  for (const [i, b] of certs.entries()) {
    try {
      all.push(new X509Certificate(b.pem));
    } catch (err) {
      throw new ConfigError([`${key}: certificate ${i + 1} in ${path} does not parse (${(err as Error).message})`], { cause: err });
    }
  }
  const leaf = all[0] as X509Certificate;
  if (now !== undefined) {
    if (Date.parse(leaf.validTo) < now) throw new ConfigError([`${key}: the certificate in ${path} expired on ${leaf.validTo}`]);
    if (Date.parse(leaf.validFrom) > now) throw new ConfigError([`${key}: the certificate in ${path} is not valid before ${leaf.validFrom}`]);
  }
  return { pem: Buffer.from(certs.map((b) => b.pem).join('\n') + '\n'), leaf, all };
}

/** Load an unencrypted PEM private key. */
export function loadPrivateKey(key: string, path: string): { pem: Buffer; key: KeyObject } {
  const { blocks } = readPem(key, path);
  const block = blocks.find((b) => b.label.endsWith('PRIVATE KEY'));
  if (block === undefined) throw new ConfigError([`${key}: ${path} holds no PRIVATE KEY block (found ${blocks.map((b) => b.label).join(', ')})`]);
  if (block.label === 'ENCRYPTED PRIVATE KEY') throw new ConfigError([`${key}: ${path} is encrypted; give an unencrypted key readable only by the service user`]);
  try {
    return { pem: Buffer.from(block.pem + '\n'), key: createPrivateKey(block.pem) };
  } catch (err) {
    throw new ConfigError([`${key}: the private key in ${path} does not parse (${(err as Error).message})`], { cause: err });
  }
}

/** A certificate and its private key, checked to belong together. */
export interface KeyPair {
  readonly cert: CertificateFile;
  readonly keyPem: Buffer;
}

/** Load a certificate and its key; refuses a key that does not match the certificate. */
export function loadKeyPair(certKey: string, certPath: string, keyKey: string, keyPath: string, now?: number): KeyPair {
  const problems: string[] = [];
  let cert: CertificateFile | undefined;
  let key: { pem: Buffer; key: KeyObject } | undefined;
  try { cert = loadCertificates(certKey, certPath, now); } catch (err) { problems.push(...problemsOf(err)); }
  try { key = loadPrivateKey(keyKey, keyPath); } catch (err) { problems.push(...problemsOf(err)); }
  if (cert !== undefined && key !== undefined && !cert.leaf.checkPrivateKey(key.key)) {
    problems.push(`${keyKey}: the key in ${keyPath} does not belong to the certificate in ${certPath} (${certKey})`);
  }
  if (problems.length > 0 || cert === undefined || key === undefined) throw new ConfigError(problems);
  return { cert, keyPem: key.pem };
}

/** The problems of a ConfigError, or the error itself as one problem (programmer errors rethrown). */
export function problemsOf(err: unknown): readonly string[] {
  if (err instanceof ConfigError) return err.problems;
  throw err;
}

/** The names a certificate's SAN URIs give (`autoscaler://instance/<id>`, `autoscaler://group/<g>`). */
export function certificateNames(subjectAltName: string | undefined): { instances: string[]; groups: string[] } {
  const instances: string[] = [];
  const groups: string[] = [];
  // Node prints SAN entries as "URI:x, DNS:y"; entries with special characters come quoted and
  // therefore never match the prefixes below.
  for (const entry of (subjectAltName ?? '').split(', ')) {
    if (!entry.startsWith('URI:')) continue;
    const uri = entry.slice(4);
    if (uri.startsWith(INSTANCE_URI_PREFIX)) instances.push(uri.slice(INSTANCE_URI_PREFIX.length));
    else if (uri.startsWith(GROUP_URI_PREFIX)) groups.push(uri.slice(GROUP_URI_PREFIX.length));
  }
  return { instances, groups };
}

/** True for loopback addresses: 127.0.0.0/8, ::1 (bracketed or not), localhost. */
export function isLoopbackHost(host: string): boolean {
  const h = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (h.toLowerCase() === 'localhost') return true;
  if (isIP(h) === 4) return h.split('.')[0] === '127';
  if (isIP(h) === 6) {
    const lower = h.toLowerCase();
    if (lower === '::1' || lower === '0:0:0:0:0:0:0:1') return true;
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(lower);
    return mapped !== null && isLoopbackHost(mapped[1] as string);
  }
  return false;
}

/** The host of a host:port (IPv6 hosts keep no brackets). */
export function hostOf(hostPort: string): string {
  const i = hostPort.lastIndexOf(':');
  const host = i < 0 ? hostPort : hostPort.slice(0, i);
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

/**
 * Compare a presented secret with the accepted ones in constant time: both sides are hashed to
 * equal-length SHA-256 digests first, so neither the content nor the length leaks through timing.
 * Returns the index of the matching secret, or -1.
 */
export function matchSecret(presented: string, accepted: readonly string[]): number {
  const p = createHash('sha256').update(presented).digest();
  let found = -1;
  // Every candidate is compared, so the time does not tell which one matched.
  for (const [i, a] of accepted.entries()) {
    if (timingSafeEqual(p, createHash('sha256').update(a).digest()) && found < 0) found = i;
  }
  return found;
}

/** Visible ASCII without commas or spaces: what an HTTP/2 header value carries unescaped. */
const TOKEN_CHARS = /^[\x21-\x2b\x2d-\x7e]+$/;

/** Why a shared token is unusable, or undefined. Never repeats the token. */
export function tokenProblem(token: string): string | undefined {
  if (!TOKEN_CHARS.test(token)) return 'must be visible ASCII characters without spaces or commas';
  if (token.length < MIN_TOKEN_LENGTH) return `must be at least ${MIN_TOKEN_LENGTH} characters (autoscaler certs init writes one: token.txt)`;
  return undefined;
}

/**
 * Run a config loader and strip the `(got "...")` echo from problems about secret keys, so a bad
 * token never reaches a terminal or a journal.
 */
export function redactingSecrets<T>(secretKeys: readonly string[], load: () => T): T {
  try {
    return load();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const redacted = err.problems.map((p) => (secretKeys.some((k) => p.startsWith(`${k}:`)) ? p.replace(/ \(got "[\s\S]*"\)$/, ' (value not shown)') : p));
    throw new ConfigError(redacted, { cause: err.cause });
  }
}
