import { z } from 'zod';
import { PHI_DEFAULTS } from '../domain/liveness.js';
import { isLoopbackHost, redactingSecrets, tokenProblem } from '../lib/tls.js';
import { API_CHECKS, API_SECRET_KEYS, API_SHAPE, apiConfig, type ApiConfig } from './api.js';
import { DEFAULT_DB_PATH, bool, compileConfig, type CrossCheck, int, logLevel, num, port, str, type ConfigSources } from './shared.js';

/** Heartbeat interval announced to agents. */
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 1_000;
/** Silent this long: suspect (still counted as capacity, its metric is not used). */
export const DEFAULT_SUSPECT_AFTER_MS = 2_500;
/** Silent this long: dead (the controller replaces it). 4.5 intervals, so detection lands within 5. */
export const DEFAULT_DEAD_AFTER_MS = 4_500;
/** Batched writes: flush at least this often, or at this many rows. */
/**
 * 100 ms: a heartbeat reaches `latest` within one flush. At 5,000 agents this gave `latest` p99
 * 190 ms against 276 ms at 200 ms, for the same CPU per heartbeat (bench/fleet.ts
 * --monitor-env): a write's cost is in its rows, and a flush looks only at the streams it acks.
 */
export const DEFAULT_FLUSH_INTERVAL_MS = 100;
export const DEFAULT_FLUSH_MAX_ROWS = 1_000;
/**
 * Raw samples are kept this long (1 h); the latest state is kept forever and the per-minute
 * rollups for DEFAULT_ROLLUP_RETENTION_MS. At least 1 min.
 */
export const DEFAULT_SAMPLE_RETENTION_MS = 3_600_000;
/** Per-instance 1-minute rollups of the samples are kept this long (14 days). At least 1 h. */
export const DEFAULT_ROLLUP_RETENTION_MS = 14 * 86_400_000;
/** Largest gRPC message accepted; heartbeats are ~40 bytes. */
export const DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024;
/**
 * After a restart, instances the store says are live get this long to reconnect before silence
 * counts against them (agents back off up to 10 s), so a monitor outage never looks like a dead fleet.
 */
export const DEFAULT_STARTUP_GRACE_MS = 15_000;
/**
 * Ingest queue capacity, rows. When it is full the server stops reading heartbeat streams (HTTP/2
 * flow control) until a write drains it; nothing is dropped. About 14 s of a 3,600-instance fleet.
 */
export const DEFAULT_MAX_QUEUED_ROWS = 50_000;
/**
 * A heartbeat seq more than this far above the instance's highest accepted seq is refused (never
 * stored): 10 M is 115 days of heartbeats at 1 s that the server never saw.
 */
export const DEFAULT_MAX_SEQ_AHEAD = 10_000_000;
/** A session whose Heartbeats stream is not opened within this time after Register expires. */
export const DEFAULT_SESSION_OPEN_TIMEOUT_MS = 30_000;
/** Per-instance heartbeat rate, sustained (messages per second), and burst (a reconnect replay). */
export const DEFAULT_MAX_HEARTBEATS_PER_SEC = 50;
export const DEFAULT_HEARTBEAT_BURST = 2_000;
/** Largest heartbeat message accepted, bytes (a heartbeat is about 30 bytes). */
export const DEFAULT_MAX_HEARTBEAT_BYTES = 1_024;
/** Refused input is logged at most once per instance (or per reason) per this interval, with a count of the rest. */
export const DEFAULT_REFUSED_LOG_INTERVAL_MS = 10_000;
/**
 * Each stream is acked at most this often (sooner when it has refusals to report, its group view
 * changed, or a replay is waiting). Acks are cumulative and the agent keeps what is not acked, so
 * this only sets how long heartbeats sit in the agent's buffer; `latest` gets them at the write.
 */
export const DEFAULT_ACK_INTERVAL_MS = 5_000;
/** `/api/status` is rebuilt at most this often; requests in between are served from the cache. */
export const DEFAULT_STATUS_CACHE_MS = 1_000;

const shape = {
  AUTOSCALER_DB: str(DEFAULT_DB_PATH),
  MONITOR_GRPC_HOST: str('127.0.0.1'),
  MONITOR_GRPC_PORT: port(50051),
  MONITOR_HTTP_HOST: str('127.0.0.1'),
  MONITOR_HTTP_PORT: port(8080),
  MONITOR_HEARTBEAT_INTERVAL_MS: int(DEFAULT_HEARTBEAT_INTERVAL_MS, 10, 600_000),
  MONITOR_SUSPECT_AFTER_MS: int(DEFAULT_SUSPECT_AFTER_MS, 10, 3_600_000),
  MONITOR_DEAD_AFTER_MS: int(DEFAULT_DEAD_AFTER_MS, 10, 3_600_000),
  MONITOR_FAILURE_DETECTOR: z.enum(['phi', 'timeout'], { error: 'must be phi or timeout' }).default('phi'),
  MONITOR_PHI_THRESHOLD: num(PHI_DEFAULTS.phiThreshold, 1, 100),
  MONITOR_PHI_ACCEPTABLE_PAUSE_MS: int(PHI_DEFAULTS.acceptablePauseMs, 0, 600_000),
  MONITOR_PHI_MIN_STD_MS: int(PHI_DEFAULTS.minStdDevMs, 1, 60_000),
  MONITOR_FLUSH_INTERVAL_MS: int(DEFAULT_FLUSH_INTERVAL_MS, 1, 60_000),
  MONITOR_FLUSH_MAX_ROWS: int(DEFAULT_FLUSH_MAX_ROWS, 1, 1_000_000),
  MONITOR_ACK_INTERVAL_MS: int(DEFAULT_ACK_INTERVAL_MS, 0, 60_000),
  MONITOR_SAMPLE_RETENTION_MS: int(DEFAULT_SAMPLE_RETENTION_MS, 60_000),
  MONITOR_ROLLUP_RETENTION_MS: int(DEFAULT_ROLLUP_RETENTION_MS, 3_600_000),
  MONITOR_MAX_MESSAGE_BYTES: int(DEFAULT_MAX_MESSAGE_BYTES, 256, 4 * 1024 * 1024),
  MONITOR_STARTUP_GRACE_MS: int(DEFAULT_STARTUP_GRACE_MS, 0, 3_600_000),
  MONITOR_MAX_QUEUED_ROWS: int(DEFAULT_MAX_QUEUED_ROWS, 1, 10_000_000),
  MONITOR_MAX_SEQ_AHEAD: int(DEFAULT_MAX_SEQ_AHEAD, 1, 2 ** 47),
  MONITOR_SESSION_OPEN_TIMEOUT_MS: int(DEFAULT_SESSION_OPEN_TIMEOUT_MS, 100, 3_600_000),
  MONITOR_MAX_HEARTBEATS_PER_SEC: int(DEFAULT_MAX_HEARTBEATS_PER_SEC, 1, 1_000_000),
  MONITOR_HEARTBEAT_BURST: int(DEFAULT_HEARTBEAT_BURST, 1, 10_000_000),
  MONITOR_MAX_HEARTBEAT_BYTES: int(DEFAULT_MAX_HEARTBEAT_BYTES, 64, 4 * 1024 * 1024),
  MONITOR_REFUSED_LOG_INTERVAL_MS: int(DEFAULT_REFUSED_LOG_INTERVAL_MS, 100, 3_600_000),
  MONITOR_STATUS_CACHE_MS: int(DEFAULT_STATUS_CACHE_MS, 0, 600_000),
  MONITOR_TLS_CERT: str(''),
  MONITOR_TLS_KEY: str(''),
  MONITOR_TLS_CLIENT_CA: str(''),
  MONITOR_AUTH_TOKEN: z.string().default('')
    .transform((v) => v.split(',').map((t) => t.trim()).filter((t) => t !== ''))
    .check((ctx) => {
      for (const t of ctx.value) {
        const problem = tokenProblem(t);
        if (problem !== undefined) ctx.issues.push({ code: 'custom', message: `each comma-separated token ${problem}`, input: ctx.value });
      }
    }),
  MONITOR_INSECURE: bool(false),
  MONITOR_ALLOW_UNKNOWN_INSTANCES: bool(false),
  MONITOR_EC2_IDENTITY_CERTS: str(''),
  MONITOR_REQUIRE_EC2_IDENTITY: bool(false),
  MONITOR_REQUIRE_LAUNCH_TOKEN: bool(false),
  ...API_SHAPE,
  LOG_LEVEL: logLevel(),
};

/** Keys whose values are never echoed in error messages. */
const SECRET_KEYS = ['MONITOR_AUTH_TOKEN', ...API_SECRET_KEYS];

const checks: readonly CrossCheck<typeof shape>[] = [
  ...API_CHECKS,
  (c) => (c.MONITOR_SUSPECT_AFTER_MS !== undefined && c.MONITOR_HEARTBEAT_INTERVAL_MS !== undefined && c.MONITOR_SUSPECT_AFTER_MS <= c.MONITOR_HEARTBEAT_INTERVAL_MS
    ? ['MONITOR_SUSPECT_AFTER_MS', 'must be > MONITOR_HEARTBEAT_INTERVAL_MS'] : undefined),
  (c) => (c.MONITOR_FLUSH_MAX_ROWS !== undefined && c.MONITOR_MAX_QUEUED_ROWS !== undefined && c.MONITOR_MAX_QUEUED_ROWS < c.MONITOR_FLUSH_MAX_ROWS
    ? ['MONITOR_MAX_QUEUED_ROWS', 'must be >= MONITOR_FLUSH_MAX_ROWS'] : undefined),
  (c) => (c.MONITOR_DEAD_AFTER_MS !== undefined && c.MONITOR_SUSPECT_AFTER_MS !== undefined && c.MONITOR_DEAD_AFTER_MS <= c.MONITOR_SUSPECT_AFTER_MS
    ? ['MONITOR_DEAD_AFTER_MS', 'must be > MONITOR_SUSPECT_AFTER_MS'] : undefined),
  (c) => (c.MONITOR_ROLLUP_RETENTION_MS !== undefined && c.MONITOR_SAMPLE_RETENTION_MS !== undefined && c.MONITOR_ROLLUP_RETENTION_MS < c.MONITOR_SAMPLE_RETENTION_MS
    ? ['MONITOR_ROLLUP_RETENTION_MS', 'must be >= MONITOR_SAMPLE_RETENTION_MS (rollups outlive the samples they summarize)'] : undefined),
  (c) => (c.MONITOR_TLS_CERT && !c.MONITOR_TLS_KEY ? ['MONITOR_TLS_KEY', 'must be set with MONITOR_TLS_CERT (the private key of that certificate)'] : undefined),
  (c) => (c.MONITOR_TLS_KEY && !c.MONITOR_TLS_CERT ? ['MONITOR_TLS_CERT', 'must be set with MONITOR_TLS_KEY (the certificate of that key)'] : undefined),
  (c) => (c.MONITOR_TLS_CLIENT_CA && !c.MONITOR_TLS_CERT
    ? ['MONITOR_TLS_CLIENT_CA', 'needs MONITOR_TLS_CERT and MONITOR_TLS_KEY: mutual TLS is TLS first'] : undefined),
  (c) => (c.MONITOR_INSECURE === true && c.MONITOR_TLS_CERT
    ? ['MONITOR_INSECURE', 'is true but MONITOR_TLS_CERT is set, so TLS is used anyway: unset one of the two'] : undefined),
  // Plaintext beyond this host lets anyone on the path read and forge heartbeats: only on request.
  (c) => (c.MONITOR_GRPC_HOST !== undefined && !c.MONITOR_TLS_CERT && c.MONITOR_INSECURE === false && !isLoopbackHost(c.MONITOR_GRPC_HOST)
    ? ['MONITOR_GRPC_HOST', 'is not a loopback address and the gRPC listener has no TLS: set MONITOR_TLS_CERT and MONITOR_TLS_KEY '
      + '(`autoscaler certs init DIR` makes them; add MONITOR_TLS_CLIENT_CA for mutual TLS), or MONITOR_INSECURE=true to allow plaintext'] : undefined),
  (c) => (c.MONITOR_REQUIRE_EC2_IDENTITY === true && !c.MONITOR_EC2_IDENTITY_CERTS
    ? ['MONITOR_REQUIRE_EC2_IDENTITY', 'is true but MONITOR_EC2_IDENTITY_CERTS is not set: give the PEM file of the AWS public certificates (RSA) of your regions'] : undefined),
];

/** PEM files of the gRPC listener's TLS; re-read by reloadTls() (SIGHUP). */
export interface MonitorTlsFiles {
  /** Server certificate (chain, leaf first). */
  readonly certFile: string;
  /** Its unencrypted private key. */
  readonly keyFile: string;
  /** CA bundle that client certificates must chain to; set: mutual TLS is required. */
  readonly clientCaFile: string | undefined;
}

/** Fully-defaulted, frozen monitor server configuration. */
export interface MonitorServerConfig {
  /** SQLite file shared with the controller. Default ./data/autoscaler.db. */
  readonly dbPath: string;
  /** gRPC listen address; port 0 lets the OS choose. Default 127.0.0.1:50051. */
  readonly grpcHost: string;
  readonly grpcPort: number;
  /** HTTP (/healthz, /api/status) listen address. Default 127.0.0.1:8080. */
  readonly httpHost: string;
  readonly httpPort: number;
  /** Interval announced to agents, ms. Default 1000. */
  readonly heartbeatIntervalMs: number;
  /** Silence before suspect / dead, ms. Defaults 2500 / 4500. */
  readonly suspectAfterMs: number;
  /** The `timeout` detector's dead threshold, ms. Default 4500. */
  readonly deadAfterMs: number;
  /** `phi` (phi accrual, adaptive; default) or `timeout` (dead after deadAfterMs of silence). */
  readonly detector: 'phi' | 'timeout';
  /** Phi accrual: φ at which an instance is dead (default 8), pause tolerated on top of the mean interval (default 3000 ms), floor of the standard deviation (default 100 ms). */
  readonly phiThreshold: number;
  readonly acceptablePauseMs: number;
  readonly minStdDevMs: number;
  /** Batched writer limits. Defaults 100 ms / 1000 rows. */
  readonly flushIntervalMs: number;
  readonly flushMaxRows: number;
  /** A stream is acked at most this often unless something must be said at once, ms (0: every flush). Default 5 000. */
  readonly ackIntervalMs: number;
  /** Raw sample retention, ms. Default 3 600 000 (1 h), at least 60 000. */
  readonly sampleRetentionMs: number;
  /** Per-instance 1-minute rollup retention, ms. Default 1 209 600 000 (14 days), at least 3 600 000 and the raw retention. */
  readonly rollupRetentionMs: number;
  /** Largest accepted gRPC message, bytes. Default 16 KiB. */
  readonly maxMessageBytes: number;
  /** Reconnect grace for instances already known at start, ms. Default 15 000. */
  readonly startupGraceMs: number;
  /** Ingest queue capacity, rows; when full, streams are paused until a write drains it. Default 50 000. */
  readonly maxQueuedRows: number;
  /** Largest accepted distance of a heartbeat seq above the instance's highest accepted one. Default 10 000 000. */
  readonly maxSeqAhead: number;
  /** Registered sessions without a Heartbeats stream expire after this, ms. Default 30 000. */
  readonly sessionOpenTimeoutMs: number;
  /** Per-instance heartbeat rate limit: sustained messages per second. Default 50. */
  readonly maxHeartbeatsPerSec: number;
  /** Per-instance heartbeat burst (token bucket size), messages. Default 2 000. */
  readonly heartbeatBurst: number;
  /** Largest heartbeat message, bytes; larger ones are refused. Default 1 024. */
  readonly maxHeartbeatBytes: number;
  /** Refused input is logged once per instance or reason per this interval, ms. Default 10 000. */
  readonly refusedLogIntervalMs: number;
  /** `/api/status` cache lifetime, ms (0: rebuild per request). Default 1 000. */
  readonly statusCacheMs: number;
  /** TLS on the gRPC listener (MONITOR_TLS_CERT/KEY/CLIENT_CA); undefined: plaintext. Default none. */
  readonly tls: MonitorTlsFiles | undefined;
  /** Shared tokens accepted as `authorization: Bearer <token>` (MONITOR_AUTH_TOKEN, comma-separated); empty: none asked. */
  readonly authTokens: readonly string[];
  /** Plaintext allowed on a non-loopback gRPC address. Default false. */
  readonly insecure: boolean;
  /** Register accepted for ids the store does not know (standalone agents without a controller). Default false. */
  readonly allowUnknownInstances: boolean;
  /**
   * PEM file with AWS's public certificates for instance identity document signatures (the RSA
   * ones, for the regions in use; shipped as config, never fetched). Empty: documents are not
   * checked. Default empty.
   */
  readonly ec2IdentityCertsFile: string | undefined;
  /** Register without a valid EC2 instance identity document is refused UNAUTHENTICATED. Default false. */
  readonly requireEc2Identity: boolean;
  /** Register without the local provider's launch token for the instance is refused PERMISSION_DENIED. Default false. */
  readonly requireLaunchToken: boolean;
  /** The HTTP API: tokens, who may read, HTTPS, the event stream (config/api.ts). */
  readonly api: ApiConfig;
  readonly logLevel: z.output<ReturnType<typeof logLevel>>;
}

/** Every key this process reads, for docs and the example file. */
export const MONITOR_SERVER_CONFIG_KEYS: readonly string[] = Object.keys(shape);

export function loadMonitorServerConfig(sources: ConfigSources): MonitorServerConfig {
  const c = redactingSecrets(SECRET_KEYS, () => compileConfig(shape, sources, checks));
  return Object.freeze({
    dbPath: c.AUTOSCALER_DB,
    grpcHost: c.MONITOR_GRPC_HOST,
    grpcPort: c.MONITOR_GRPC_PORT,
    httpHost: c.MONITOR_HTTP_HOST,
    httpPort: c.MONITOR_HTTP_PORT,
    heartbeatIntervalMs: c.MONITOR_HEARTBEAT_INTERVAL_MS,
    suspectAfterMs: c.MONITOR_SUSPECT_AFTER_MS,
    deadAfterMs: c.MONITOR_DEAD_AFTER_MS,
    detector: c.MONITOR_FAILURE_DETECTOR,
    phiThreshold: c.MONITOR_PHI_THRESHOLD,
    acceptablePauseMs: c.MONITOR_PHI_ACCEPTABLE_PAUSE_MS,
    minStdDevMs: c.MONITOR_PHI_MIN_STD_MS,
    flushIntervalMs: c.MONITOR_FLUSH_INTERVAL_MS,
    flushMaxRows: c.MONITOR_FLUSH_MAX_ROWS,
    ackIntervalMs: c.MONITOR_ACK_INTERVAL_MS,
    sampleRetentionMs: c.MONITOR_SAMPLE_RETENTION_MS,
    rollupRetentionMs: c.MONITOR_ROLLUP_RETENTION_MS,
    maxMessageBytes: c.MONITOR_MAX_MESSAGE_BYTES,
    startupGraceMs: c.MONITOR_STARTUP_GRACE_MS,
    maxQueuedRows: c.MONITOR_MAX_QUEUED_ROWS,
    maxSeqAhead: c.MONITOR_MAX_SEQ_AHEAD,
    sessionOpenTimeoutMs: c.MONITOR_SESSION_OPEN_TIMEOUT_MS,
    maxHeartbeatsPerSec: c.MONITOR_MAX_HEARTBEATS_PER_SEC,
    heartbeatBurst: c.MONITOR_HEARTBEAT_BURST,
    maxHeartbeatBytes: c.MONITOR_MAX_HEARTBEAT_BYTES,
    refusedLogIntervalMs: c.MONITOR_REFUSED_LOG_INTERVAL_MS,
    statusCacheMs: c.MONITOR_STATUS_CACHE_MS,
    tls: c.MONITOR_TLS_CERT
      ? Object.freeze({ certFile: c.MONITOR_TLS_CERT, keyFile: c.MONITOR_TLS_KEY, clientCaFile: c.MONITOR_TLS_CLIENT_CA || undefined })
      : undefined,
    authTokens: Object.freeze([...c.MONITOR_AUTH_TOKEN]),
    insecure: c.MONITOR_INSECURE,
    allowUnknownInstances: c.MONITOR_ALLOW_UNKNOWN_INSTANCES,
    ec2IdentityCertsFile: c.MONITOR_EC2_IDENTITY_CERTS || undefined,
    requireEc2Identity: c.MONITOR_REQUIRE_EC2_IDENTITY,
    requireLaunchToken: c.MONITOR_REQUIRE_LAUNCH_TOKEN,
    api: apiConfig(c),
    logLevel: c.LOG_LEVEL,
  });
}
