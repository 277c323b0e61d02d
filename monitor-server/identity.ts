/**
 * Who is calling, and what it may speak for. Every gRPC call is authenticated here (shared token,
 * client certificate); Register is then authorized for one instance, and the session it opens is
 * bound to the caller's identity so that nobody else can take it over while it is live.
 * docs/security.md describes what each mode defends against.
 */
import * as grpc from '@grpc/grpc-js';
import { verify, type X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import { AGENT_KEY_METADATA_KEY, AUTHORIZATION_METADATA_KEY, certificateNames, matchSecret } from '../lib/tls.js';

/** A call as far as authentication goes (unary and streaming calls alike). */
export interface AuthenticatedCall {
  readonly metadata: grpc.Metadata;
  getPeer(): string;
  getAuthContext(): { readonly sslPeerCertificate?: PeerCertificate | undefined };
}

/** What proved who the caller is. */
export type CallerKind = 'instance-cert' | 'group-cert' | 'token' | 'anonymous';

export interface Caller {
  readonly kind: CallerKind;
  /** Instance ids and groups the client certificate names (empty without one). */
  readonly instances: readonly string[];
  readonly groups: readonly string[];
  /** SHA-256 fingerprint of the client certificate, if any. */
  readonly certFingerprint: string | undefined;
  /** The agent key the caller sent (agent-key metadata), if any. */
  readonly agentKey: string | undefined;
  /** The caller's address without its port. */
  readonly peerHost: string;
}

export type AuthOutcome =
  | { readonly ok: true; readonly caller: Caller }
  | { readonly ok: false; readonly code: grpc.status; readonly details: string };

/** An agent key: 16 to 128 URL-safe characters (our agents send 32 hex digits). */
const AGENT_KEY = /^[A-Za-z0-9_-]{16,128}$/;
const BEARER = /^Bearer ([\x21-\x7e]+)$/;

/** "1.2.3.4:5678" → "1.2.3.4"; "[::1]:5678" or "::1:5678" → "::1"; anything else as is. */
export function peerHost(peer: string): string {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(peer);
  if (bracketed) return bracketed[1] as string;
  const i = peer.lastIndexOf(':');
  return i > 0 && /^\d+$/.test(peer.slice(i + 1)) ? peer.slice(0, i) : peer;
}

export class Authenticator {
  constructor(private readonly opts: { readonly tokens: readonly string[]; readonly mutualTls: boolean }) {}

  /** Check the token and the client certificate of a call. Refusals are UNAUTHENTICATED. */
  authenticate(call: AuthenticatedCall): AuthOutcome {
    if (this.opts.tokens.length > 0) {
      const header = call.metadata.get(AUTHORIZATION_METADATA_KEY);
      const m = header.length === 1 && typeof header[0] === 'string' ? BEARER.exec(header[0]) : null;
      if (m === null) return { ok: false, code: grpc.status.UNAUTHENTICATED, details: 'missing "authorization: Bearer <token>" metadata' };
      if (matchSecret(m[1] as string, this.opts.tokens) < 0) return { ok: false, code: grpc.status.UNAUTHENTICATED, details: 'wrong token' };
    }
    const rawKey = call.metadata.get(AGENT_KEY_METADATA_KEY);
    let agentKey: string | undefined;
    if (rawKey.length > 0) {
      const k = rawKey[0];
      if (rawKey.length > 1 || typeof k !== 'string' || !AGENT_KEY.test(k)) {
        return { ok: false, code: grpc.status.INVALID_ARGUMENT, details: `${AGENT_KEY_METADATA_KEY} metadata must be one value of 16-128 letters, digits, "_" or "-"` };
      }
      agentKey = k;
    }
    const host = peerHost(call.getPeer());
    const cert = this.opts.mutualTls ? call.getAuthContext().sslPeerCertificate : undefined;
    if (this.opts.mutualTls && cert === undefined) {
      // The handshake already refuses these; this is the belt to its braces.
      return { ok: false, code: grpc.status.UNAUTHENTICATED, details: 'a client certificate is required' };
    }
    if (cert !== undefined) {
      const names = certificateNames(cert.subjectaltname);
      const cn = typeof cert.subject?.CN === 'string' ? cert.subject.CN : undefined;
      // The common name counts only on certificates that carry no autoscaler:// names.
      const instances = names.instances.length + names.groups.length === 0 && cn !== undefined ? [cn] : names.instances;
      return {
        ok: true,
        caller: { kind: instances.length > 0 ? 'instance-cert' : 'group-cert', instances, groups: names.groups, certFingerprint: cert.fingerprint256, agentKey, peerHost: host },
      };
    }
    return {
      ok: true,
      caller: { kind: this.opts.tokens.length > 0 ? 'token' : 'anonymous', instances: [], groups: [], certFingerprint: undefined, agentKey, peerHost: host },
    };
  }
}

/**
 * May `caller` speak for `instanceId` of `groupId` (the group the store has for it, or the one
 * requested when unknown instances are allowed)? Without a client certificate anyone who passed
 * authentication may; with one, it must name the instance or its group.
 */
export function authorize(caller: Caller, instanceId: string, groupId: string): string | undefined {
  if (caller.kind === 'token' || caller.kind === 'anonymous') return undefined;
  if (caller.instances.includes(instanceId) || caller.groups.includes(groupId)) return undefined;
  const named = [...caller.instances.map((i) => `instance ${i}`), ...caller.groups.map((g) => `group ${g}`)].join(', ');
  return `the client certificate names ${named || 'nothing'}, not instance "${instanceId}" of group "${groupId}"`;
}

/**
 * The identity a session is bound to. A second Register for an instance with a live session is
 * accepted only with the same identity (the agent reconnecting), and refused otherwise.
 * - a certificate that names the instance: the instance itself (any certificate naming it);
 * - otherwise (group certificate, shared token, no authentication): the agent key the agent
 *   process drew at start, with the certificate's fingerprint when there is one;
 * - a client that sends no agent key: its address and agent version (weak: any process on that
 *   host can claim it; our agents always send a key).
 */
export function sessionIdentity(caller: Caller, instanceId: string, agentVersion: string): string {
  if (caller.kind === 'instance-cert' && caller.instances.includes(instanceId)) return `cert-instance:${instanceId}`;
  const base = `${caller.kind}:${caller.certFingerprint ?? '-'}`;
  return caller.agentKey !== undefined ? `${base}:key:${caller.agentKey}` : `${base}:peer:${caller.peerHost}:version:${agentVersion}`;
}

/*
 * Identity proofs a Register may carry beyond authentication (docs/security.md, "Identity
 * proofs"): an EC2 instance identity document with its signature and the agent's nonce, and the
 * local provider's launch token. The keys are the wire contract with agent/reporter.ts.
 */

/** Metadata: base64 of the instance identity document's bytes, exactly as IMDS served them. */
export const IID_DOCUMENT_METADATA_KEY = 'x-aws-iid-document';
/** Metadata: the document's `signature` (base64 RSA SHA-256), as IMDS served it without whitespace. */
export const IID_SIGNATURE_METADATA_KEY = 'x-aws-iid-signature';
/** Metadata: the agent's nonce (16-128 URL-safe characters), bound to the instance at its first Register. */
export const IID_NONCE_METADATA_KEY = 'x-aws-iid-nonce';
/** Metadata: the local provider's per-launch secret (AGENT_LAUNCH_TOKEN, 64 hex digits). */
export const LAUNCH_TOKEN_METADATA_KEY = 'x-launch-token';
/** Largest identity document accepted, bytes (real ones are about 500). */
export const MAX_IID_DOCUMENT_BYTES = 4_096;
/** A document whose pendingTime is further than this in the future is refused, ms. */
export const MAX_IID_PENDING_SKEW_MS = 5 * 60_000;

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const NONCE = AGENT_KEY;

/** An identity document the agent sent, decoded but not yet verified. */
export interface IdentityDocumentProof {
  /** The document's bytes, as IMDS served them (the signature covers exactly these). */
  readonly document: Buffer;
  /** Raw RSA signature bytes. */
  readonly signature: Buffer;
  readonly nonce: string;
}

/** The fields of the document we check. */
export interface IdentityDocumentFields {
  readonly instanceId: string;
  readonly region: string | undefined;
  readonly accountId: string | undefined;
  readonly pendingTime: string | undefined;
}

/** Proofs read from a Register's metadata. Malformed ones are an INVALID_ARGUMENT refusal. */
export type ProofsOutcome =
  | { readonly ok: true; readonly document: IdentityDocumentProof | undefined; readonly launchToken: string | undefined }
  | { readonly ok: false; readonly details: string };

function single(md: grpc.Metadata, key: string): string | undefined | null {
  const v = md.get(key);
  if (v.length === 0) return undefined;
  return v.length === 1 && typeof v[0] === 'string' ? v[0] : null;
}

/** Read the identity proofs of a Register: all three document keys or none; the launch token. */
export function readProofs(md: grpc.Metadata): ProofsOutcome {
  const doc = single(md, IID_DOCUMENT_METADATA_KEY);
  const sig = single(md, IID_SIGNATURE_METADATA_KEY);
  const nonce = single(md, IID_NONCE_METADATA_KEY);
  const token = single(md, LAUNCH_TOKEN_METADATA_KEY);
  if (doc === null || sig === null || nonce === null || token === null) return { ok: false, details: 'identity proof metadata must be one text value per key' };
  if (token !== undefined && !/^[0-9a-f]{64}$/.test(token)) return { ok: false, details: `${LAUNCH_TOKEN_METADATA_KEY} metadata must be 64 hex digits` };
  if (doc === undefined && sig === undefined && nonce === undefined) return { ok: true, document: undefined, launchToken: token };
  if (doc === undefined || sig === undefined || nonce === undefined) {
    return { ok: false, details: `${IID_DOCUMENT_METADATA_KEY}, ${IID_SIGNATURE_METADATA_KEY} and ${IID_NONCE_METADATA_KEY} go together: send all three or none` };
  }
  if (!NONCE.test(nonce)) return { ok: false, details: `${IID_NONCE_METADATA_KEY} metadata must be 16-128 letters, digits, "_" or "-"` };
  if (doc.length > Math.ceil(MAX_IID_DOCUMENT_BYTES / 3) * 4 || !BASE64.test(doc) || !BASE64.test(sig) || sig.length > 2_048) {
    return { ok: false, details: `${IID_DOCUMENT_METADATA_KEY} and ${IID_SIGNATURE_METADATA_KEY} must be base64 (a document of at most ${MAX_IID_DOCUMENT_BYTES} bytes)` };
  }
  return { ok: true, document: { document: Buffer.from(doc, 'base64'), signature: Buffer.from(sig, 'base64'), nonce }, launchToken: token };
}

export type DocumentVerdict =
  | { readonly ok: true; readonly fields: IdentityDocumentFields }
  | { readonly ok: false; readonly details: string };

/**
 * Verify an instance identity document as the AWS EC2 user guide ("Verify the instance identity
 * document") describes: the `signature` is RSA with SHA-256 over the document's bytes, checked
 * against the public certificates of the regions in use (config, never fetched); any one that
 * verifies will do. The document must name `instanceId`, and its pendingTime (when present) must
 * not lie in the future beyond a small skew.
 */
export function verifyIdentityDocument(proof: IdentityDocumentProof, certs: readonly X509Certificate[], instanceId: string, now: number): DocumentVerdict {
  const signed = certs.some((c) => {
    try {
      return verify('sha256', proof.document, c.publicKey, proof.signature);
    } catch {
      return false; // a key type that cannot verify this signature (e.g. a DSA certificate)
    }
  });
  if (!signed) return { ok: false, details: 'the instance identity document signature does not verify with the configured AWS certificates' };
  let parsed: unknown;
  try {
    parsed = JSON.parse(proof.document.toString('utf8'));
  } catch {
    return { ok: false, details: 'the instance identity document is not JSON' };
  }
  if (typeof parsed !== 'object' || parsed === null) return { ok: false, details: 'the instance identity document is not a JSON object' };
  const o = parsed as Record<string, unknown>;
  const str = (k: string) => (typeof o[k] === 'string' ? (o[k] as string) : undefined);
  const docId = str('instanceId');
  if (docId !== instanceId) return { ok: false, details: `the instance identity document is for instance "${(docId ?? '').slice(0, 64)}", not "${instanceId}"` };
  const pendingTime = str('pendingTime');
  if (pendingTime !== undefined) {
    const t = Date.parse(pendingTime);
    if (Number.isNaN(t) || t > now + MAX_IID_PENDING_SKEW_MS) return { ok: false, details: 'the instance identity document has an invalid or future pendingTime' };
  }
  return { ok: true, fields: { instanceId: docId, region: str('region'), accountId: str('accountId'), pendingTime } };
}
