/**
 * Who is calling, and what it may speak for. Every gRPC call is authenticated here (shared token,
 * client certificate); Register is then authorized for one instance, and the session it opens is
 * bound to the caller's identity so that nobody else can take it over while it is live.
 * docs/security.md describes what each mode defends against.
 */
import * as grpc from '@grpc/grpc-js';
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
