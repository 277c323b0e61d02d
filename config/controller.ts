import { z } from 'zod';
import type { GroupSpec } from '../controller/policy/types.js';
import { DEFAULT_DB_PATH, compileConfig, type CrossCheck, isHostPort, id, int, logLevel, num, str, type ConfigSources } from './shared.js';

/** How often the controller evaluates every group. */
export const DEFAULT_CONTROLLER_INTERVAL_MS = 5_000;
/** Hold all actions when the monitor server has not written its heartbeat for this long. */
export const DEFAULT_MONITOR_STALE_MS = 15_000;
/** A launched instance that has not registered by then is terminated and replaced. */
export const DEFAULT_LAUNCH_TIMEOUT_MS = 60_000;
/** Local provider: SIGTERM, then SIGKILL after this long. */
export const DEFAULT_TERMINATE_TIMEOUT_MS = 10_000;
/** Target tracking defaults (HPA's: tolerance 10 %, scale-in stabilization 5 min, +max(4, 100 %)). */
export const DEFAULT_TARGET_CPU = 50;
export const DEFAULT_TOLERANCE = 0.1;
export const DEFAULT_SCALE_IN_STABILIZATION_MS = 300_000;
export const DEFAULT_SCALE_OUT_MAX_STEP = 4;
export const DEFAULT_SCALE_OUT_MAX_PERCENT = 100;
/** Instance warm-up: a newly registered instance's CPU is not trusted for this long (AWS: off by default). */
export const DEFAULT_WARMUP_MS = 0;

export const PROVIDERS = ['local'] as const;
export type ProviderName = (typeof PROVIDERS)[number];

const shape = {
  AUTOSCALER_DB: str(DEFAULT_DB_PATH),
  CONTROLLER_INTERVAL_MS: int(DEFAULT_CONTROLLER_INTERVAL_MS, 50, 3_600_000),
  CONTROLLER_PROVIDER: z.enum(PROVIDERS, { error: `must be one of: ${PROVIDERS.join(', ')}` }).default('local'),
  CONTROLLER_MONITOR_STALE_MS: int(DEFAULT_MONITOR_STALE_MS, 100, 3_600_000),
  CONTROLLER_LAUNCH_TIMEOUT_MS: int(DEFAULT_LAUNCH_TIMEOUT_MS, 100, 3_600_000),
  GROUP_ID: id('default'),
  GROUP_MIN_SIZE: int(1, 0, 10_000),
  GROUP_MAX_SIZE: int(4, 1, 10_000),
  GROUP_TARGET_CPU: num(DEFAULT_TARGET_CPU, 1, 100),
  GROUP_TOLERANCE: num(DEFAULT_TOLERANCE, 0, 0.9),
  GROUP_SCALE_IN_STABILIZATION_MS: int(DEFAULT_SCALE_IN_STABILIZATION_MS, 0, 86_400_000),
  GROUP_SCALE_OUT_MAX_STEP: int(DEFAULT_SCALE_OUT_MAX_STEP, 1, 10_000),
  GROUP_SCALE_OUT_MAX_PERCENT: num(DEFAULT_SCALE_OUT_MAX_PERCENT, 0, 10_000),
  GROUP_WARMUP_MS: int(DEFAULT_WARMUP_MS, 0, 3_600_000),
  LOCAL_AGENT_SERVER: z.string().refine((v) => v === 'auto' || isHostPort(v), { error: 'must be host:port or "auto"' }).default('auto'),
  LOCAL_TERMINATE_TIMEOUT_MS: int(DEFAULT_TERMINATE_TIMEOUT_MS, 0, 600_000),
  LOCAL_LOG_DIR: str(''),
  LOCAL_AGENT_ENV: str(''),
  LOG_LEVEL: logLevel(),
};

const checks: readonly CrossCheck<typeof shape>[] = [
  (c) => (c.GROUP_MAX_SIZE !== undefined && c.GROUP_MIN_SIZE !== undefined && c.GROUP_MAX_SIZE < c.GROUP_MIN_SIZE
    ? ['GROUP_MAX_SIZE', `must be >= GROUP_MIN_SIZE (${c.GROUP_MIN_SIZE})`] : undefined),
];

/** Fully-defaulted, frozen controller configuration. */
export interface ControllerConfig {
  /** SQLite file shared with the monitor server. Default ./data/autoscaler.db. */
  readonly dbPath: string;
  /** Evaluation period, ms. Default 5000. */
  readonly intervalMs: number;
  /** Where instances come from. Default "local". */
  readonly provider: ProviderName;
  /** Monitor heartbeat age beyond which every action is held, ms. Default 15 000. */
  readonly monitorStaleMs: number;
  /** Pending instances older than this are replaced, ms. Default 60 000. */
  readonly launchTimeoutMs: number;
  /** The group this controller manages (one per controller for now). */
  readonly group: GroupSpec;
  readonly local: LocalProviderConfig;
  readonly logLevel: z.output<ReturnType<typeof logLevel>>;
}

export interface LocalProviderConfig {
  /** host:port agents dial, or "auto": read the monitor server's address from the store. */
  readonly agentServer: string;
  /** SIGTERM → SIGKILL delay, ms. Default 10 000. */
  readonly terminateTimeoutMs: number;
  /** Where each agent's log goes; empty: `instances/` beside the database. */
  readonly logDir: string;
  /** Extra KEY=VALUE pairs (comma-separated) passed to every agent, e.g. AGENT_SIM_NOISE_PERCENT=1. */
  readonly agentEnv: Readonly<Record<string, string>>;
}

function parseKeyValues(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of text.split(',').map((p) => p.trim()).filter(Boolean)) {
    const eq = pair.indexOf('=');
    if (eq > 0) out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return out;
}

/** Every key this process reads, for docs and the example file. */
export const CONTROLLER_CONFIG_KEYS: readonly string[] = Object.keys(shape);

export function loadControllerConfig(sources: ConfigSources): ControllerConfig {
  const c = compileConfig(shape, sources, checks);
  return Object.freeze({
    dbPath: c.AUTOSCALER_DB,
    intervalMs: c.CONTROLLER_INTERVAL_MS,
    provider: c.CONTROLLER_PROVIDER,
    monitorStaleMs: c.CONTROLLER_MONITOR_STALE_MS,
    launchTimeoutMs: c.CONTROLLER_LAUNCH_TIMEOUT_MS,
    group: Object.freeze({
      id: c.GROUP_ID,
      minSize: c.GROUP_MIN_SIZE,
      maxSize: c.GROUP_MAX_SIZE,
      policy: Object.freeze({
        kind: 'target-tracking' as const,
        targetCpu: c.GROUP_TARGET_CPU,
        tolerance: c.GROUP_TOLERANCE,
        scaleInStabilizationMs: c.GROUP_SCALE_IN_STABILIZATION_MS,
        scaleOutMaxStep: c.GROUP_SCALE_OUT_MAX_STEP,
        scaleOutMaxPercent: c.GROUP_SCALE_OUT_MAX_PERCENT,
        warmupMs: c.GROUP_WARMUP_MS,
      }),
    }),
    local: Object.freeze({
      agentServer: c.LOCAL_AGENT_SERVER,
      terminateTimeoutMs: c.LOCAL_TERMINATE_TIMEOUT_MS,
      logDir: c.LOCAL_LOG_DIR,
      agentEnv: Object.freeze(parseKeyValues(c.LOCAL_AGENT_ENV)),
    }),
    logLevel: c.LOG_LEVEL,
  });
}
