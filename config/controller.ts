import { z } from 'zod';
import { readFileSync } from 'node:fs';
import { SCALE_IN_ORDERS, type ScaleInOrder } from '../domain/scale-in.js';
import { formatProblems, parseGroup, type GroupDocument, type RateLimit } from '../domain/policy.js';
import { ConfigError, DEFAULT_DB_PATH, compileConfig, port, type CrossCheck, isHostPort, id, int, logLevel, num, str, type ConfigSources } from './shared.js';

/** How often the controller evaluates every group. */
/** The event log (decisions, activities, operators' changes, closed launch intents) is kept 30 days. */
export const DEFAULT_HISTORY_RETENTION_MS = 30 * 86_400_000;
export const DEFAULT_CONTROLLER_INTERVAL_MS = 5_000;
/** Hold all actions when the monitor server has not written its heartbeat for this long. */
export const DEFAULT_MONITOR_STALE_MS = 15_000;
/**
 * A launched instance whose agent has not registered by then is terminated and replaced. Local
 * children start in about a second; an EC2 boot plus agent start takes 60–180 s, so AWS
 * providers wait 10 minutes.
 */
export const DEFAULT_BOOT_TIMEOUT_MS = { local: 60_000, aws: 600_000 } as const;
/**
 * A stored instance missing from the provider's listing is gone only this long after it was
 * launched or first seen: EC2's DescribeInstances lags RunInstances (eventual consistency).
 */
export const DEFAULT_LISTING_GRACE_MS = { local: 5_000, aws: 120_000 } as const;
/**
 * An instance the monitor declares dead while the provider still runs it is "unreachable"
 * (a partition, a wedged agent, a monitor-side stall): replaced only after this long. On EC2 a
 * replacement costs minutes of capacity and money, so AWS waits 5 minutes.
 */
export const DEFAULT_UNREACHABLE_REPLACE_MS = { local: 5_000, aws: 300_000 } as const;
/** At least this share of a group silent at once (and at least 2): fail static. */
export const DEFAULT_FAIL_STATIC_SHARE = 0.5;
/** Replace at most this percent of a group at a time, at least one (AWS: 10 %). */
export const DEFAULT_MAX_REPLACE_PERCENT = 10;
/** A sample older than this is not used for decisions (the instance counts as not ready). */
export const DEFAULT_METRIC_MAX_AGE_MS = 30_000;
/** SDK attempts per AWS call (first included), adaptive retry mode. */
export const DEFAULT_AWS_MAX_ATTEMPTS = 5;
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

export const PROVIDERS = ['local', 'aws-ec2', 'aws-asg'] as const;
export type ProviderName = (typeof PROVIDERS)[number];

const shape = {
  AUTOSCALER_DB: str(DEFAULT_DB_PATH),
  CONTROLLER_INTERVAL_MS: int(DEFAULT_CONTROLLER_INTERVAL_MS, 50, 3_600_000),
  CONTROLLER_PROVIDER: z.enum(PROVIDERS, { error: `must be one of: ${PROVIDERS.join(', ')}` }).default('local'),
  CONTROLLER_MONITOR_STALE_MS: int(DEFAULT_MONITOR_STALE_MS, 100, 3_600_000),
  CONTROLLER_BOOT_TIMEOUT_MS: optionalInt(1_000, 86_400_000),
  CONTROLLER_LISTING_GRACE_MS: optionalInt(0, 86_400_000),
  CONTROLLER_HTTP_HOST: z.string().min(1).default('127.0.0.1'),
  CONTROLLER_HTTP_PORT: port(9102),
  CONTROLLER_METRIC_MAX_AGE_MS: int(DEFAULT_METRIC_MAX_AGE_MS, 100, 3_600_000),
  CONTROLLER_UNREACHABLE_REPLACE_MS: optionalInt(0, 86_400_000),
  CONTROLLER_HISTORY_RETENTION_MS: int(DEFAULT_HISTORY_RETENTION_MS, 86_400_000, 10 * 365 * 86_400_000),
  CONTROLLER_FAIL_STATIC_SHARE: num(DEFAULT_FAIL_STATIC_SHARE, 0.01, 1),
  CONTROLLER_MAX_REPLACE_PERCENT: num(DEFAULT_MAX_REPLACE_PERCENT, 1, 100),
  CONTROLLER_UNKNOWN_INSTANCES: z.enum(['adopt', 'terminate'], { error: 'must be adopt or terminate' }).default('adopt'),
  CONTROLLER_SCALE_IN_ORDER: z.enum(SCALE_IN_ORDERS, { error: `must be one of: ${SCALE_IN_ORDERS.join(', ')}` }).default('az-balance-oldest'),
  AWS_REGION: z.string().regex(/^$|^[a-z]{2}(-[a-z]+)+-\d+$/, { error: 'must be a region name such as eu-west-1' }).default(''),
  AWS_ENDPOINT: z.string().refine((v) => v === '' || /^https?:\/\/[^\s/]+/.test(v), { error: 'must be an http(s) URL' }).default(''),
  AWS_MAX_ATTEMPTS: int(DEFAULT_AWS_MAX_ATTEMPTS, 1, 20),
  EC2_LAUNCH_TEMPLATE_ID: z.string().regex(/^$|^lt-[0-9a-f]{8,17}$/, { error: 'must look like lt-0123456789abcdef0' }).default(''),
  EC2_LAUNCH_TEMPLATE_NAME: z.string().regex(/^$|^[A-Za-z0-9()./_-]{3,128}$/, { error: 'must be 3-128 letters, digits or ()./_-' }).default(''),
  EC2_LAUNCH_TEMPLATE_VERSION: z.string().regex(/^(\$Default|\$Latest|\d+)$/, { error: 'must be $Default, $Latest or a version number' }).default('$Default'),
  EC2_INSTANCE_TYPES: list(/^[a-z0-9-]+\.[a-z0-9]+$/, 'instance types such as m7g.large'),
  EC2_SUBNET_IDS: list(/^subnet-[0-9a-f]{8,17}$/, 'subnet ids such as subnet-0123456789abcdef0'),
  EC2_TAGS: str(''),
  ASG_NAME: z.string().regex(/^$|^[^\s:][^:]{0,254}$/, { error: 'must be 1-255 characters without ":"' }).default(''),
  GROUP_ID: id('default'),
  GROUP_MIN_SIZE: int(1, 0, 10_000),
  GROUP_MAX_SIZE: int(4, 1, 10_000),
  GROUP_TARGET_CPU: num(DEFAULT_TARGET_CPU, 1, 100),
  GROUP_TOLERANCE: num(DEFAULT_TOLERANCE, 0, 0.9),
  GROUP_SCALE_IN_STABILIZATION_MS: int(DEFAULT_SCALE_IN_STABILIZATION_MS, 0, 86_400_000),
  GROUP_SCALE_OUT_MAX_STEP: int(DEFAULT_SCALE_OUT_MAX_STEP, 1, 10_000),
  GROUP_SCALE_OUT_MAX_PERCENT: num(DEFAULT_SCALE_OUT_MAX_PERCENT, 0, 10_000),
  CONTROLLER_GROUPS_FILE: str(''),
  GROUP_WARMUP_MS: int(DEFAULT_WARMUP_MS, 0, 3_600_000),
  LOCAL_AGENT_SERVER: z.string().refine((v) => v === 'auto' || isHostPort(v), { error: 'must be host:port or "auto"' }).default('auto'),
  LOCAL_TERMINATE_TIMEOUT_MS: int(DEFAULT_TERMINATE_TIMEOUT_MS, 0, 600_000),
  LOCAL_LOG_DIR: str(''),
  LOCAL_AGENT_ENV: str(''),
  LOG_LEVEL: logLevel(),
};

const isAws = (p: ProviderName | undefined) => p === 'aws-ec2' || p === 'aws-asg';

const checks: readonly CrossCheck<typeof shape>[] = [
  (c) => (isAws(c.CONTROLLER_PROVIDER) && c.AWS_REGION === '' ? ['AWS_REGION', `is required with CONTROLLER_PROVIDER=${c.CONTROLLER_PROVIDER}`] : undefined),
  (c) => (c.CONTROLLER_PROVIDER === 'aws-ec2' && c.EC2_LAUNCH_TEMPLATE_ID === '' && c.EC2_LAUNCH_TEMPLATE_NAME === ''
    ? ['EC2_LAUNCH_TEMPLATE_ID', 'or EC2_LAUNCH_TEMPLATE_NAME is required with CONTROLLER_PROVIDER=aws-ec2'] : undefined),
  (c) => (c.EC2_LAUNCH_TEMPLATE_ID && c.EC2_LAUNCH_TEMPLATE_NAME
    ? ['EC2_LAUNCH_TEMPLATE_NAME', 'give EC2_LAUNCH_TEMPLATE_ID or EC2_LAUNCH_TEMPLATE_NAME, not both'] : undefined),
  (c) => (c.EC2_TAGS !== undefined && parseTags(c.EC2_TAGS) === undefined
    ? ['EC2_TAGS', 'must be key=value pairs separated by commas; keys 1-128 characters, not starting with aws: or autoscaler:'] : undefined),
  (c) => (c.GROUP_TARGET_CPU !== undefined && c.GROUP_TOLERANCE !== undefined && c.GROUP_TARGET_CPU * (1 + c.GROUP_TOLERANCE) >= 100
    ? ['GROUP_TOLERANCE', `GROUP_TARGET_CPU × (1 + GROUP_TOLERANCE) must be below 100 (got ${c.GROUP_TARGET_CPU} × ${1 + c.GROUP_TOLERANCE} = ${Math.round(c.GROUP_TARGET_CPU * (1 + c.GROUP_TOLERANCE) * 10) / 10}): a fleet at 100% would be "within tolerance" forever`] : undefined),
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
  /** Launched instances whose agent has not registered by then are replaced, ms. Default 60 000 local, 600 000 AWS. */
  readonly bootTimeoutMs: number;
  /** An instance missing from the provider's listing is gone only this long after its launch, ms. Default 5 000 local, 120 000 AWS. */
  readonly listingGraceMs: number;
  /** A silent instance the provider still runs is replaced only after this long, ms. Default 5 000 local, 300 000 AWS. */
  readonly unreachableReplaceMs: number;
  /** Decisions, activities, operators' changes and closed launch intents are kept this long, ms. Default 30 days. */
  readonly historyRetentionMs: number;
  /** At least this share of a group silent at once (and at least 2): no termination, no scale-in. Default 0.5. */
  readonly failStaticShare: number;
  /** Replacements of instances that may still serve: at most this percent of the group at a time (at least 1). Default 10. */
  readonly maxReplacePercent: number;
  /** The controller's `/metrics` and `/healthz` listener. Default 127.0.0.1:9102 (0: any free port). */
  readonly http: { readonly host: string; readonly port: number };
  /** Samples older than this are not used: the instance counts as not ready, ms. Default 30 000. */
  readonly metricMaxAgeMs: number;
  /** What to do with a provider instance of the group that the store does not know. Default adopt. */
  readonly unknownInstances: 'adopt' | 'terminate';
  /** Which instances go first on scale-in. Default az-balance-oldest. */
  readonly scaleInOrder: ScaleInOrder;
  readonly aws: AwsConfig;
  /**
   * Groups to create in the store when they do not exist yet (config seeds, the store rules:
   * a restart never overwrites what an operator changed). From CONTROLLER_GROUPS_FILE when set,
   * else the one group of the GROUP_* keys.
   */
  readonly seeds: readonly GroupDocument[];
  /** The GROUP_* group (the first seed), for the provider's per-group defaults. */
  readonly group: GroupDocument;
  readonly local: LocalProviderConfig;
  readonly logLevel: z.output<ReturnType<typeof logLevel>>;
}

export interface AwsConfig {
  /** Region of the EC2 / Auto Scaling API. Required for aws-* providers. */
  readonly region: string;
  /** Endpoint override (any EC2-compatible API); empty: AWS's own. */
  readonly endpoint: string;
  /** SDK attempts per call, adaptive retries. Default 5. */
  readonly maxAttempts: number;
  readonly ec2: {
    /** Launch template, by id or by name (exactly one), and its version. Default version $Default. */
    readonly launchTemplate: { readonly id: string; readonly name: string; readonly version: string };
    /** Instance types to try in order when one has no capacity; empty: the template's. */
    readonly instanceTypes: readonly string[];
    /** Subnets (one per zone) to spread launches over; empty: the template's. */
    readonly subnetIds: readonly string[];
    /** Extra tags on every instance. */
    readonly tags: Readonly<Record<string, string>>;
  };
  /** Name of the Auto Scaling group the aws-asg provider drives. Default: the group id. */
  readonly asgName: string;
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

/** The period of the GROUP_SCALE_OUT_MAX_* rate limits (the HPA's default period). */
export const SCALE_OUT_PERIOD_MS = 15_000;

/** Group documents from a JSON file: one, or an array. Every problem names the file, the group and the field. */
export function readGroupsFile(path: string): GroupDocument[] {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    const why = err instanceof SyntaxError ? `not valid JSON (${err.message})` : ((err as NodeJS.ErrnoException).code ?? String(err));
    throw new ConfigError([`CONTROLLER_GROUPS_FILE: ${path}: ${why}`], { cause: err });
  }
  const docs = Array.isArray(raw) ? raw : [raw];
  const problems: string[] = [];
  const out: GroupDocument[] = [];
  const seen = new Set<string>();
  docs.forEach((d, n) => {
    const r = parseGroup(d);
    if (!r.ok) problems.push(...formatProblems(r.problems).split('\n').map((l) => `CONTROLLER_GROUPS_FILE: ${path}: group ${n}: ${l}`));
    else if (seen.has(r.value.id)) problems.push(`CONTROLLER_GROUPS_FILE: ${path}: group ${n}: id "${r.value.id}" appears twice`);
    else {
      seen.add(r.value.id);
      out.push(deepFreeze(r.value));
    }
  });
  if (out.length === 0 && problems.length === 0) problems.push(`CONTROLLER_GROUPS_FILE: ${path}: holds no group`);
  if (problems.length > 0) throw new ConfigError(problems);
  return out;
}

function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null) {
    for (const x of Object.values(v)) deepFreeze(x);
    Object.freeze(v);
  }
  return v;
}

/** A whole number whose default depends on other keys (unset: undefined). */
function optionalInt(min: number, max: number) {
  return z.coerce.number({ error: 'must be a number' }).int({ error: 'must be a whole number' })
    .min(min, { error: `must be >= ${min}` }).max(max, { error: `must be <= ${max}` }).optional();
}

/** A comma-separated list whose items match `pattern`. */
function list(pattern: RegExp, what: string) {
  return z.string().default('')
    .transform((v) => v.split(',').map((x) => x.trim()).filter(Boolean))
    .refine((items) => items.every((x) => pattern.test(x)), { error: `must be a comma-separated list of ${what}` });
}

/** EC2 tags from k=v,k=v; undefined when malformed or reserved. */
export function parseTags(text: string): Record<string, string> | undefined {
  const out: Record<string, string> = {};
  for (const pair of text.split(',').map((p) => p.trim()).filter(Boolean)) {
    const eq = pair.indexOf('=');
    const key = eq > 0 ? pair.slice(0, eq).trim() : '';
    if (key === '' || key.length > 128 || /^(aws|autoscaler):/i.test(key)) return undefined;
    const value = pair.slice(eq + 1).trim();
    if (value.length > 256) return undefined;
    out[key] = value;
  }
  return out;
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
  const aws = isAws(c.CONTROLLER_PROVIDER);
  const limits: RateLimit[] = [{ type: 'instances', value: c.GROUP_SCALE_OUT_MAX_STEP, periodMs: SCALE_OUT_PERIOD_MS }];
  if (c.GROUP_SCALE_OUT_MAX_PERCENT >= 1) limits.push({ type: 'percent', value: c.GROUP_SCALE_OUT_MAX_PERCENT, periodMs: SCALE_OUT_PERIOD_MS });
  const parsed = parseGroup({
    id: c.GROUP_ID, minSize: c.GROUP_MIN_SIZE, maxSize: c.GROUP_MAX_SIZE,
    policy: {
      warmupMs: c.GROUP_WARMUP_MS,
      targetTracking: [{ metric: 'cpu', target: c.GROUP_TARGET_CPU, toleranceUp: c.GROUP_TOLERANCE, toleranceDown: c.GROUP_TOLERANCE }],
      behavior: { scaleUp: { policies: limits }, scaleDown: { stabilizationMs: c.GROUP_SCALE_IN_STABILIZATION_MS } },
    },
  });
  if (!parsed.ok) throw new ConfigError(parsed.problems.map((p) => `GROUP_*: ${p.path}: ${p.message}`));
  const envGroup = deepFreeze(parsed.value);
  return Object.freeze({
    dbPath: c.AUTOSCALER_DB,
    intervalMs: c.CONTROLLER_INTERVAL_MS,
    provider: c.CONTROLLER_PROVIDER,
    monitorStaleMs: c.CONTROLLER_MONITOR_STALE_MS,
    bootTimeoutMs: c.CONTROLLER_BOOT_TIMEOUT_MS ?? DEFAULT_BOOT_TIMEOUT_MS[aws ? 'aws' : 'local'],
    listingGraceMs: c.CONTROLLER_LISTING_GRACE_MS ?? DEFAULT_LISTING_GRACE_MS[aws ? 'aws' : 'local'],
    http: Object.freeze({ host: c.CONTROLLER_HTTP_HOST, port: c.CONTROLLER_HTTP_PORT }),
    metricMaxAgeMs: c.CONTROLLER_METRIC_MAX_AGE_MS,
    unreachableReplaceMs: c.CONTROLLER_UNREACHABLE_REPLACE_MS ?? DEFAULT_UNREACHABLE_REPLACE_MS[aws ? 'aws' : 'local'],
    historyRetentionMs: c.CONTROLLER_HISTORY_RETENTION_MS,
    failStaticShare: c.CONTROLLER_FAIL_STATIC_SHARE,
    maxReplacePercent: c.CONTROLLER_MAX_REPLACE_PERCENT,
    unknownInstances: c.CONTROLLER_UNKNOWN_INSTANCES,
    scaleInOrder: c.CONTROLLER_SCALE_IN_ORDER,
    aws: Object.freeze({
      region: c.AWS_REGION,
      endpoint: c.AWS_ENDPOINT,
      maxAttempts: c.AWS_MAX_ATTEMPTS,
      ec2: Object.freeze({
        launchTemplate: Object.freeze({ id: c.EC2_LAUNCH_TEMPLATE_ID, name: c.EC2_LAUNCH_TEMPLATE_NAME, version: c.EC2_LAUNCH_TEMPLATE_VERSION }),
        instanceTypes: Object.freeze([...c.EC2_INSTANCE_TYPES]),
        subnetIds: Object.freeze([...c.EC2_SUBNET_IDS]),
        tags: Object.freeze(parseTags(c.EC2_TAGS) ?? {}),
      }),
      asgName: c.ASG_NAME || c.GROUP_ID,
    }),
    group: envGroup,
    seeds: Object.freeze(c.CONTROLLER_GROUPS_FILE ? readGroupsFile(c.CONTROLLER_GROUPS_FILE) : [envGroup]),
    local: Object.freeze({
      agentServer: c.LOCAL_AGENT_SERVER,
      terminateTimeoutMs: c.LOCAL_TERMINATE_TIMEOUT_MS,
      logDir: c.LOCAL_LOG_DIR,
      agentEnv: Object.freeze(parseKeyValues(c.LOCAL_AGENT_ENV)),
    }),
    logLevel: c.LOG_LEVEL,
  });
}
