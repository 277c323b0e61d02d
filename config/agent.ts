/**
 * The agent's configuration. It is validated with config/fields.ts, not zod: the agent is the one
 * process that runs on every machine of a fleet, and zod would be ~4 MiB of its resident memory
 * (bench/agent-rss.ts). Keys, defaults, bounds and messages read as config/shared.ts's builders do.
 */
import { hostOf, isLoopbackHost, redactingSecrets, tokenProblem } from '../lib/tls.js';
import { LOG_LEVELS, type LogLevel } from '../lib/logger.js';
import { address, bool, checked, compileFields, type FieldCheck, id, int, matching, num, oneOf, str } from './fields.js';
import type { ConfigSources } from './sources.js';

/** Monitor server the agent dials. */
export const DEFAULT_AGENT_SERVER = '127.0.0.1:50051';
/** First reconnect delay; doubles up to the maximum, with jitter. */
export const DEFAULT_RECONNECT_MIN_MS = 250;
export const DEFAULT_RECONNECT_MAX_MS = 10_000;
/** Heartbeats kept while the server is unreachable (10 min at 1 Hz); the oldest are dropped first. */
export const DEFAULT_BUFFER_SIZE = 600;
/** Heartbeat interval used until the server announces its own. */
export const DEFAULT_AGENT_INTERVAL_MS = 1_000;
/** The IPv4 IMDS endpoint (AWS EC2 user guide, "Access instance metadata"); IPv6: http://[fd00:ec2::254]. */
export const DEFAULT_IMDS_ENDPOINT = 'http://169.254.169.254';
/** Timeout of each IMDS request, ms. */
export const DEFAULT_IMDS_TIMEOUT_MS = 1_000;
/** Tries per IMDS request (timeouts, refused connections and 5xx are tried again); at boot IMDS may be slow. */
export const DEFAULT_IMDS_ATTEMPTS = 3;

/**
 * Where the agent's instance id comes from: `static` = AGENT_INSTANCE_ID; `imds` = the EC2
 * Instance Metadata Service (IMDSv2); `hostname` = the host name, made safe as an id.
 */
export const IDENTITY_SOURCES = ['static', 'imds', 'hostname'] as const;
export type IdentitySource = (typeof IDENTITY_SOURCES)[number];

/** AGENT_TLS_CA value that trusts the system's CA store instead of a file. */
export const SYSTEM_TRUST = 'system';
/** A DNS name as it appears in a certificate's SAN. */
const SERVER_NAME = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*$/;

/** http://host[:port] with no path: IPv4, [IPv6] or a name. */
const IMDS_ENDPOINT = /^http:\/\/(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?\/?$/;

const shape = {
  AGENT_SERVER: address(DEFAULT_AGENT_SERVER),
  AGENT_GROUP: id('default'),
  AGENT_INSTANCE_ID: id(''),
  AGENT_ADDRESS: str(''),
  // No default here: it depends on AGENT_INSTANCE_ID (see loadAgentConfig). It never defaults to imds.
  AGENT_IDENTITY: oneOf(IDENTITY_SOURCES, undefined),
  AGENT_IMDS_ENDPOINT: matching(IMDS_ENDPOINT, DEFAULT_IMDS_ENDPOINT, 'must be http://host[:port] (e.g. http://169.254.169.254 or http://[fd00:ec2::254])',
    (v) => v.replace(/\/$/, '')),
  AGENT_IMDS_TIMEOUT_MS: int(DEFAULT_IMDS_TIMEOUT_MS, 10, 60_000),
  AGENT_IMDS_ATTEMPTS: int(DEFAULT_IMDS_ATTEMPTS, 1, 10),
  AGENT_SIMULATE: bool(false),
  AGENT_RECONNECT_MIN_MS: int(DEFAULT_RECONNECT_MIN_MS, 10, 60_000),
  AGENT_RECONNECT_MAX_MS: int(DEFAULT_RECONNECT_MAX_MS, 10, 600_000),
  AGENT_BUFFER_SIZE: int(DEFAULT_BUFFER_SIZE, 1, 1_000_000),
  AGENT_INTERVAL_MS: int(DEFAULT_AGENT_INTERVAL_MS, 10, 3_600_000),
  AGENT_SIM_NOISE_PERCENT: num(2, 0, 50),
  AGENT_SIM_SLEW_PERCENT_PER_S: num(25, 0.1, 1_000),
  AGENT_EXIT_WITH_PARENT: bool(false),
  AGENT_TLS_CA: str(''),
  AGENT_TLS_CERT: str(''),
  AGENT_TLS_KEY: str(''),
  AGENT_TLS_SERVER_NAME: matching(SERVER_NAME, undefined, 'must be a DNS name (the name in the monitor server certificate)'),
  AGENT_AUTH_TOKEN: checked('', tokenProblem),
  AGENT_INSECURE: bool(false),
  AGENT_LAUNCH_TOKEN: matching(/^([0-9a-f]{64})?$/, '', 'must be 64 hex digits (the local provider sets it)'),
  LOG_LEVEL: oneOf(LOG_LEVELS, 'info'),
};

/** Keys whose values are never echoed in error messages. */
const SECRET_KEYS = ['AGENT_AUTH_TOKEN', 'AGENT_LAUNCH_TOKEN'];

const checks: readonly FieldCheck<typeof shape>[] = [
  (c) => (c.AGENT_RECONNECT_MAX_MS !== undefined && c.AGENT_RECONNECT_MIN_MS !== undefined && c.AGENT_RECONNECT_MAX_MS < c.AGENT_RECONNECT_MIN_MS
    ? ['AGENT_RECONNECT_MAX_MS', 'must be >= AGENT_RECONNECT_MIN_MS'] : undefined),
  (c) => (c.AGENT_IDENTITY === 'static' && !c.AGENT_INSTANCE_ID
    ? ['AGENT_IDENTITY', 'static needs AGENT_INSTANCE_ID (set it, or use AGENT_IDENTITY=imds on EC2 or hostname)'] : undefined),
  // Two sources of truth for one id is a mistake waiting to register a stranger row.
  (c) => (c.AGENT_IDENTITY !== undefined && c.AGENT_IDENTITY !== 'static' && c.AGENT_INSTANCE_ID
    ? ['AGENT_INSTANCE_ID', `is set but AGENT_IDENTITY=${c.AGENT_IDENTITY} ignores it: unset one of the two`] : undefined),
  (c) => (c.AGENT_TLS_CERT && !c.AGENT_TLS_KEY ? ['AGENT_TLS_KEY', 'must be set with AGENT_TLS_CERT (the private key of that certificate)'] : undefined),
  (c) => (c.AGENT_TLS_KEY && !c.AGENT_TLS_CERT ? ['AGENT_TLS_CERT', 'must be set with AGENT_TLS_KEY (the certificate of that key)'] : undefined),
  (c) => (!c.AGENT_TLS_CA && (c.AGENT_TLS_CERT || c.AGENT_TLS_KEY || c.AGENT_TLS_SERVER_NAME)
    ? ['AGENT_TLS_CA', `must be set when ${c.AGENT_TLS_CERT ? 'AGENT_TLS_CERT' : c.AGENT_TLS_KEY ? 'AGENT_TLS_KEY' : 'AGENT_TLS_SERVER_NAME'} is: the CA file that signed the monitor server certificate, or "${SYSTEM_TRUST}"`] : undefined),
  (c) => (c.AGENT_INSECURE === true && c.AGENT_TLS_CA
    ? ['AGENT_INSECURE', 'is true but AGENT_TLS_CA is set, so TLS is used anyway: unset one of the two'] : undefined),
  // Plaintext beyond this host lets anyone on the path read and forge heartbeats: only on request.
  (c) => (c.AGENT_SERVER !== undefined && !c.AGENT_TLS_CA && c.AGENT_INSECURE === false && !isLoopbackHost(hostOf(c.AGENT_SERVER))
    ? ['AGENT_SERVER', `is not a loopback address and no TLS is configured: set AGENT_TLS_CA (the CA of the monitor server certificate, or "${SYSTEM_TRUST}"), or AGENT_INSECURE=true to allow plaintext`] : undefined),
];

/** TLS towards the monitor server. */
export interface AgentTlsConfig {
  /** CA file that signed the server certificate, or `system` for the system CA store. */
  readonly caFile: string;
  /** Client certificate and key for mutual TLS; undefined: none presented. */
  readonly certFile: string | undefined;
  readonly keyFile: string | undefined;
  /** Name expected in the server certificate instead of AGENT_SERVER's host. */
  readonly serverName: string | undefined;
}

/** Fully-defaulted, frozen agent configuration. */
export interface AgentConfig {
  /** host:port of the monitor server's gRPC endpoint. Default 127.0.0.1:50051. */
  readonly server: string;
  /** Scaling group this instance belongs to. Default "default". */
  readonly groupId: string;
  /**
   * Where the instance id comes from. Default `static` when AGENT_INSTANCE_ID is set, else
   * `hostname`; `imds` is never a default (laptops and tests have no IMDS).
   */
  readonly identity: IdentitySource;
  /** Instance id for `static`; empty otherwise. */
  readonly instanceId: string;
  /** IMDS base URL for `imds`. Default http://169.254.169.254 (IPv6: http://[fd00:ec2::254]). */
  readonly imdsEndpoint: string;
  /** Timeout of each IMDS request, ms. Default 1000. */
  readonly imdsTimeoutMs: number;
  /** Tries per IMDS request, with backoff 250 ms doubling. Default 3. */
  readonly imdsAttempts: number;
  /** Address reported for operators; empty means IMDS's local-ipv4 (imds) or the hostname. */
  readonly address: string;
  /** Report simulated load driven by the group's demand instead of real CPU. Default false. */
  readonly simulate: boolean;
  /** Reconnect backoff bounds, ms. Defaults 250 and 10 000. */
  readonly reconnectMinMs: number;
  readonly reconnectMaxMs: number;
  /** Heartbeats buffered while disconnected. Default 600. */
  readonly bufferSize: number;
  /** Sampling interval until the server announces one, ms. Default 1000. */
  readonly intervalMs: number;
  /** Simulated load: bounded noise amplitude, CPU points. Default 2. */
  readonly simNoisePercent: number;
  /** Simulated load: largest change per second, CPU points. Default 25. */
  readonly simSlewPercentPerS: number;
  /** Exit when the parent process goes away (set by the local provider). Default false. */
  readonly exitWithParent: boolean;
  /** TLS to the monitor server (AGENT_TLS_*); undefined: plaintext (loopback, or AGENT_INSECURE=true). */
  readonly tls: AgentTlsConfig | undefined;
  /** Shared token sent as `authorization: Bearer <token>` (AGENT_AUTH_TOKEN); empty: none. */
  readonly authToken: string;
  /** Plaintext allowed to a non-loopback server. Default false. */
  readonly insecure: boolean;
  /** Per-launch secret the local provider gives each agent (AGENT_LAUNCH_TOKEN), sent with Register; empty: none. */
  readonly launchToken: string;
  /** pino level. Default info. */
  readonly logLevel: LogLevel;
}

/** Every key this process reads, for docs and the example file. */
export const AGENT_CONFIG_KEYS: readonly string[] = Object.keys(shape);

export function loadAgentConfig(sources: ConfigSources): AgentConfig {
  const c = redactingSecrets(SECRET_KEYS, () => compileFields(shape, sources, checks));
  return Object.freeze({
    server: c.AGENT_SERVER,
    groupId: c.AGENT_GROUP,
    identity: c.AGENT_IDENTITY ?? (c.AGENT_INSTANCE_ID ? 'static' : 'hostname'),
    instanceId: c.AGENT_INSTANCE_ID,
    imdsEndpoint: c.AGENT_IMDS_ENDPOINT,
    imdsTimeoutMs: c.AGENT_IMDS_TIMEOUT_MS,
    imdsAttempts: c.AGENT_IMDS_ATTEMPTS,
    address: c.AGENT_ADDRESS,
    simulate: c.AGENT_SIMULATE,
    reconnectMinMs: c.AGENT_RECONNECT_MIN_MS,
    reconnectMaxMs: c.AGENT_RECONNECT_MAX_MS,
    bufferSize: c.AGENT_BUFFER_SIZE,
    intervalMs: c.AGENT_INTERVAL_MS,
    simNoisePercent: c.AGENT_SIM_NOISE_PERCENT,
    simSlewPercentPerS: c.AGENT_SIM_SLEW_PERCENT_PER_S,
    exitWithParent: c.AGENT_EXIT_WITH_PARENT,
    tls: c.AGENT_TLS_CA
      ? Object.freeze({ caFile: c.AGENT_TLS_CA, certFile: c.AGENT_TLS_CERT || undefined, keyFile: c.AGENT_TLS_KEY || undefined, serverName: c.AGENT_TLS_SERVER_NAME })
      : undefined,
    authToken: c.AGENT_AUTH_TOKEN,
    insecure: c.AGENT_INSECURE,
    launchToken: c.AGENT_LAUNCH_TOKEN,
    logLevel: c.LOG_LEVEL,
  });
}
