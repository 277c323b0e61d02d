import { hostname } from 'node:os';
import type { AgentConfig, IdentitySource } from '../config/agent.js';
import { ConfigError } from '../config/errors.js';
import { ImdsClient, ImdsError, type ImdsClientOptions, type InstanceIdentityDocument } from './imds.js';

export interface Identity {
  /** Id the agent registers under: AGENT_INSTANCE_ID, the EC2 instance id, or the hostname. */
  readonly instanceId: string;
  readonly groupId: string;
  /** Address shown to operators: AGENT_ADDRESS, else IMDS's local-ipv4, else the hostname. */
  readonly address: string;
  /** Where the instance id came from. */
  readonly source: IdentitySource;
  /** Availability zone (imds only), e.g. eu-west-1a. */
  readonly zone?: string;
  /** Instance type (imds only), e.g. t3.small. */
  readonly instanceType?: string;
}

/** Identity keys an operator can set, named in every identity error. */
const IDENTITY_KEYS = 'AGENT_IDENTITY, AGENT_IMDS_ENDPOINT, AGENT_INSTANCE_ID';

function safeHostId(host: string): string {
  return host.replace(/[^A-Za-z0-9_.-]/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 63) || 'agent';
}

/**
 * The identity of the `static` and `hostname` sources, which need no I/O: AGENT_INSTANCE_ID, or
 * the hostname made safe as an id. For `imds` use {@link discoverIdentity}; calling this with it
 * is a programming error (TypeError).
 */
export function resolveIdentity(cfg: AgentConfig, host = hostname()): Identity {
  if (cfg.identity === 'imds') throw new TypeError('resolveIdentity: AGENT_IDENTITY=imds needs discoverIdentity (async)');
  const source = cfg.identity;
  return {
    instanceId: source === 'static' ? cfg.instanceId : safeHostId(host),
    groupId: cfg.groupId,
    address: cfg.address || host,
    source,
  };
}

/** Test seams for {@link discoverIdentity}. */
export interface DiscoverOptions {
  readonly host?: string;
  /** Aborts the IMDS requests in flight (the agent stopped while booting). */
  readonly signal?: AbortSignal;
  /** IMDS client options beyond the config (tests shorten the backoff). */
  readonly imds?: Omit<ImdsClientOptions, 'endpoint' | 'timeoutMs' | 'attempts' | 'signal'>;
}

/**
 * The identity for any source. `imds` asks the EC2 Instance Metadata Service (IMDSv2) for the
 * instance id, zone, type and private address. When IMDS gives no usable answer it throws a
 * ConfigError naming AGENT_IDENTITY, AGENT_IMDS_ENDPOINT and AGENT_INSTANCE_ID (the CLI exits 78),
 * with the ImdsError as `cause`. An abort rethrows the ImdsError (code `aborted`).
 */
export async function discoverIdentity(cfg: AgentConfig, opts: DiscoverOptions = {}): Promise<Identity> {
  return (await discoverIdentityWithProof(cfg, opts)).identity;
}

/** An identity, and for `imds` the signed instance identity document that proves it. */
export interface ProvenIdentity {
  readonly identity: Identity;
  /** `imds` only: the document and its signature, sent with every Register. */
  readonly document: InstanceIdentityDocument | undefined;
}

/**
 * {@link discoverIdentity}, and with `imds` also the instance identity document and its
 * signature (one IMDS session for both). A document that is missing or names another instance
 * than instance-id fails like any other IMDS answer (ConfigError).
 */
export async function discoverIdentityWithProof(cfg: AgentConfig, opts: DiscoverOptions = {}): Promise<ProvenIdentity> {
  const host = opts.host ?? hostname();
  if (cfg.identity !== 'imds') return { identity: resolveIdentity(cfg, host), document: undefined };
  const client = new ImdsClient({
    ...opts.imds,
    endpoint: cfg.imdsEndpoint,
    timeoutMs: cfg.imdsTimeoutMs,
    attempts: cfg.imdsAttempts,
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  try {
    const id = await client.identity();
    const document = await client.identityDocument();
    if (document.instanceId !== id.instanceId) {
      throw new ImdsError(`IMDS at ${client.endpoint} returned an identity document for ${document.instanceId}, not ${id.instanceId}`, 'invalid-response', client.endpoint, '/latest/dynamic/instance-identity/document');
    }
    const identity: Identity = {
      instanceId: id.instanceId,
      groupId: cfg.groupId,
      address: cfg.address || id.localIpv4 || host,
      source: 'imds',
      zone: id.availabilityZone,
      instanceType: id.instanceType,
    };
    return { identity, document };
  } catch (err) {
    if (err instanceof ImdsError && err.code === 'aborted') throw err;
    const why = err instanceof Error ? err.message : String(err);
    throw new ConfigError([
      `AGENT_IDENTITY: imds gave no instance identity: ${why}. `
        + `Check AGENT_IMDS_ENDPOINT (${cfg.imdsEndpoint}; IPv6: http://[fd00:ec2::254]), the instance's metadata options `
        + '(HttpEndpoint enabled, HttpPutResponseHopLimit 2 in containers), AGENT_IMDS_TIMEOUT_MS and AGENT_IMDS_ATTEMPTS; '
        + `off EC2 set AGENT_INSTANCE_ID (AGENT_IDENTITY=static) or AGENT_IDENTITY=hostname [keys: ${IDENTITY_KEYS}]`,
    ], { cause: err });
  }
}
