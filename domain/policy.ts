/**
 * A group's scaling policy: a versioned document, validated by one schema wherever it comes from
 * (the controller's config seeding a group, `autoscaler group apply FILE`, `autoscaler policy
 * set`). The lowest floor of the code: config/, store/, controller/ and sim/ import it; it imports
 * nothing but zod. Pure: no I/O, no clock.
 *
 * Defaults follow the systems they imitate, cited per field (docs/policies.md has the table):
 * the Kubernetes HPA (`autoscaling/v2` behavior), AWS EC2 Auto Scaling (step scaling, scheduled
 * actions, predictive scaling, instance warm-up) and the Nomad Autoscaler.
 */
import { z } from 'zod';

/** Metrics a policy can track; the agent reports these per instance, as percent. */
export const METRICS = ['cpu', 'mem'] as const;
export type Metric = (typeof METRICS)[number];

const ms = (max = 7 * 86_400_000) => z.number({ error: 'must be a number of milliseconds' }).int({ error: 'must be a whole number of milliseconds' }).min(0, { error: 'must be >= 0' }).max(max, { error: `must be <= ${max}` });
const percent = (min = 0, max = 100) => z.number({ error: 'must be a number' }).min(min, { error: `must be >= ${min}` }).max(max, { error: `must be <= ${max}` });
const count = () => z.number({ error: 'must be a number' }).int({ error: 'must be a whole number' }).min(0, { error: 'must be >= 0' }).max(10_000, { error: 'must be <= 10000' });

/** Target tracking on one metric (HPA's rule): desired = ceil(current × avg / target) outside the tolerance. */
export const TargetTrackingSchema = z.strictObject({
  metric: z.enum(METRICS, { error: `must be one of ${METRICS.join(', ')}` }).default('cpu'),
  /** Average the group aims for, percent. Default 50. */
  target: percent(1, 100).default(50),
  /** No scale-out while avg / target − 1 ≤ this. Default 0.1 (HPA; separate up/down since Kubernetes 1.33). */
  toleranceUp: percent(0, 0.9).default(0.1),
  /** No scale-in while 1 − avg / target ≤ this. Default 0.1. */
  toleranceDown: percent(0, 0.9).default(0.1),
}).refine((t) => t.target * (1 + t.toleranceUp) < 100, {
  error: (i) => `target × (1 + toleranceUp) must be below 100 (a fleet at 100% would then be "within tolerance" forever): got ${(i.input as { target: number }).target} × (1 + ${(i.input as { toleranceUp: number }).toleranceUp})`,
  path: ['toleranceUp'],
});
export type TargetTrackingPolicy = z.output<typeof TargetTrackingSchema>;

/** One rate limit (HPA HPAScalingPolicy): at most `value` instances or percent per `periodMs`. */
export const RateLimitSchema = z.strictObject({
  type: z.enum(['instances', 'percent'], { error: 'must be instances or percent' }),
  value: z.number({ error: 'must be a number' }).min(1, { error: 'must be >= 1' }).max(10_000, { error: 'must be <= 10000' }),
  periodMs: ms(3_600_000).refine((v) => v >= 1_000, { error: 'must be >= 1000' }),
});
export type RateLimit = z.output<typeof RateLimitSchema>;

/** One direction of HPA-style behavior. */
const direction = (stabilizationMs: number, policies: RateLimit[], select: 'max' | 'min' | 'disabled') => z.strictObject({
  /** Recommendations over this window are combined (min for up, max for down) before acting. */
  stabilizationMs: ms(3_600_000).default(stabilizationMs),
  /** `max`: the limit that allows the largest change; `min`: the smallest; `disabled`: no change in this direction. */
  selectPolicy: z.enum(['max', 'min', 'disabled'], { error: 'must be max, min or disabled' }).default(select),
  policies: z.array(RateLimitSchema).max(10, { error: 'at most 10 rate limits' }).default(policies),
});

/** HPA `behavior` defaults: up: no stabilization, max(+4 per 15 s, +100 % per 15 s); down: 300 s, −100 % per 15 s. */
export const BehaviorSchema = z.strictObject({
  scaleUp: direction(0, [{ type: 'instances', value: 4, periodMs: 15_000 }, { type: 'percent', value: 100, periodMs: 15_000 }], 'max').prefault({}),
  scaleDown: direction(300_000, [{ type: 'percent', value: 100, periodMs: 15_000 }], 'max').prefault({}),
});
export type Behavior = z.output<typeof BehaviorSchema>;

/** When ready instances report at or above `level`, demand is unknown: scale out at the highest allowed rate. */
export const SaturationSchema = z.strictObject({
  enabled: z.boolean({ error: 'must be true or false' }).default(true),
  metric: z.enum(METRICS, { error: `must be one of ${METRICS.join(', ')}` }).default('cpu'),
  /** Percent. Default 90. */
  level: percent(50, 100).default(90),
  /** Share of ready instances at or above the level that counts as saturated. Default 0.5. */
  share: z.number({ error: 'must be a number' }).gt(0, { error: 'must be > 0' }).max(1, { error: 'must be <= 1' }).default(0.5),
});

/** A step of step scaling, bounds relative to the threshold (AWS StepAdjustment). */
export const StepAdjustmentSchema = z.strictObject({
  /**
   * Bounds of (metric − threshold), as the AWS StepAdjustment: [lower, upper) for a `gt` alarm,
   * (lower, upper] for `lt` (where the breach is negative). Omitted: −∞ / +∞.
   */
  lower: z.number({ error: 'must be a number' }).optional(),
  /** Upper bound; omitted: +∞. */
  upper: z.number({ error: 'must be a number' }).optional(),
  /** Instances (ChangeInCapacity, ExactCapacity) or percent (PercentChangeInCapacity); negative to remove. */
  adjustment: z.number({ error: 'must be a number' }).int({ error: 'must be a whole number' }),
});

/** AWS step scaling: bands around a threshold on one metric. */
export const StepScalingSchema = z.strictObject({
  name: z.string().min(1).max(64).default('step'),
  metric: z.enum(METRICS, { error: `must be one of ${METRICS.join(', ')}` }).default('cpu'),
  /** The alarm: average above (`gt`) or below (`lt`) the threshold. */
  comparison: z.enum(['gt', 'lt'], { error: 'must be gt or lt' }),
  threshold: percent(0, 100),
  adjustmentType: z.enum(['ChangeInCapacity', 'ExactCapacity', 'PercentChangeInCapacity'], { error: 'must be ChangeInCapacity, ExactCapacity or PercentChangeInCapacity' }).default('ChangeInCapacity'),
  steps: z.array(StepAdjustmentSchema).min(1, { error: 'needs at least one step' }).max(20, { error: 'at most 20 steps' }),
  /** PercentChangeInCapacity only: change at least this many instances. */
  minAdjustmentMagnitude: count().optional(),
  /** After an action of this policy, it waits this long (AWS simple scaling default 300 s). */
  cooldownMs: ms(86_400_000).default(300_000),
});
export type StepScalingPolicy = z.output<typeof StepScalingSchema>;

/** A scheduled action: a cron window that sets bounds (AWS scheduled actions, with a duration). */
export const ScheduleSchema = z.strictObject({
  name: z.string().min(1, { error: 'must not be empty' }).max(64),
  /** Five-field cron expression for the window's start, e.g. "0 8 * * 1-5". */
  cron: z.string().min(9, { error: 'must be a cron expression such as "0 8 * * 1-5"' }).max(100),
  /** IANA time zone, e.g. "Europe/Paris". Default UTC. */
  timezone: z.string().min(1).max(64).default('UTC'),
  /** How long each window lasts. */
  durationMs: ms(31 * 86_400_000).refine((v) => v >= 60_000, { error: 'must be >= 60000' }),
  minSize: count().optional(),
  maxSize: count().optional(),
  /** A floor on desired capacity during the window. */
  desired: count().optional(),
}).refine((s) => s.minSize !== undefined || s.maxSize !== undefined || s.desired !== undefined, { error: 'sets none of minSize, maxSize, desired' })
  .refine((s) => s.minSize === undefined || s.maxSize === undefined || s.minSize <= s.maxSize, { error: 'minSize must be <= maxSize', path: ['maxSize'] });
export type Schedule = z.output<typeof ScheduleSchema>;

/** Predictive scaling from the stored per-minute history (AWS predictive scaling, simplified). */
export const PredictiveSchema = z.strictObject({
  /** `forecast-only` (AWS's default) records what it would do; `forecast-and-scale` acts (scale-out only). */
  mode: z.enum(['off', 'forecast-only', 'forecast-and-scale'], { error: 'must be off, forecast-only or forecast-and-scale' }).default('forecast-only'),
  metric: z.enum(METRICS, { error: `must be one of ${METRICS.join(', ')}` }).default('cpu'),
  /** Utilisation to plan for, percent. Default 50. */
  target: percent(1, 100).default(50),
  /** Scale out this far ahead of the forecast (the boot time). Default 300 000. */
  leadMs: ms(3_600_000).default(300_000),
  /** Seasonality. Default one day. */
  seasonMs: ms(28 * 86_400_000).refine((v) => v >= 3_600_000, { error: 'must be >= 3600000' }).default(86_400_000),
  /** History needed before it forecasts (AWS: 24 h). Default one season. */
  minHistoryMs: ms(28 * 86_400_000).optional(),
});
export type PredictivePolicy = z.output<typeof PredictiveSchema>;

/** After a collapse of the whole group's demand, scale-in waits (retries usually follow an upstream outage). */
export const OutageGuardSchema = z.strictObject({
  enabled: z.boolean({ error: 'must be true or false' }).default(true),
  /**
   * A drop of at least this share of demand… Default 0.95: an upstream outage takes demand to
   * about zero, while the end of a batch burst (a drop of 80–92 % in the built-in trace) is not
   * an outage and should scale in.
   */
  drop: z.number({ error: 'must be a number' }).gt(0, { error: 'must be > 0' }).max(1, { error: 'must be <= 1' }).default(0.95),
  /** …within this window… Default 60 000. */
  windowMs: ms(3_600_000).refine((v) => v >= 1_000, { error: 'must be >= 1000' }).default(60_000),
  /** …holds scale-in this long. Default 600 000. */
  holdMs: ms(86_400_000).default(600_000),
});

/** The current version of the policy document. */
export const POLICY_VERSION = 1;

export const PolicyDocumentSchema = z.strictObject({
  version: z.literal(POLICY_VERSION, { error: `must be ${POLICY_VERSION}` }).default(POLICY_VERSION),
  /** Instance warm-up: counted as capacity, metric not used. Default 0 (off, as in AWS). */
  warmupMs: ms(3_600_000).default(0),
  /** Target tracking rules; several: the largest proposal wins. Default one on CPU at 50 %. */
  targetTracking: z.array(TargetTrackingSchema).max(8, { error: 'at most 8 target tracking rules' }).default([{ metric: 'cpu', target: 50, toleranceUp: 0.1, toleranceDown: 0.1 }]),
  behavior: BehaviorSchema.prefault({}),
  saturation: SaturationSchema.prefault({}),
  step: z.array(StepScalingSchema).max(8, { error: 'at most 8 step policies' }).default([])
    .refine((steps) => new Set(steps.map((x) => x.name)).size === steps.length, { error: 'step policy names must be unique (each has its own cooldown)' }),
  schedules: z.array(ScheduleSchema).max(32, { error: 'at most 32 schedules' }).default([]),
  predictive: PredictiveSchema.prefault({}),
  outageGuard: OutageGuardSchema.prefault({}),
});
export type PolicyDocument = z.output<typeof PolicyDocumentSchema>;
/** What a user writes: every field optional, defaults filled by the schema. */
export type PolicyDocumentInput = z.input<typeof PolicyDocumentSchema>;

/** A group as applied from a file (`autoscaler group apply`) or seeded from config. */
export const GroupDocumentSchema = z.strictObject({
  id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, { error: 'must be 1-63 letters, digits, ".", "_" or "-"' }),
  minSize: count(),
  maxSize: count().refine((v) => v >= 1, { error: 'must be >= 1' }),
  policy: PolicyDocumentSchema.prefault({}),
}).refine((g) => g.maxSize >= g.minSize, { error: 'must be >= minSize', path: ['maxSize'] });
export type GroupDocument = z.output<typeof GroupDocumentSchema>;

/** A validation problem, with the dotted path of the field at fault. */
export interface PolicyProblem {
  readonly path: string;
  readonly message: string;
}

export type Parsed<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly problems: readonly PolicyProblem[] };

function parseWith<T>(schema: z.ZodType<T>, input: unknown): Parsed<T> {
  const r = schema.safeParse(input);
  if (r.success) return { ok: true, value: r.data };
  return { ok: false, problems: r.error.issues.map((i) => ({ path: i.path.map(String).join('.') || '(document)', message: i.message })) };
}

/** Validate a policy document, filling defaults; problems name the field (e.g. "targetTracking.0.target"). */
export function parsePolicy(input: unknown): Parsed<PolicyDocument> {
  return parseWith(PolicyDocumentSchema, input);
}

/** Validate a group document (bounds and policy). */
export function parseGroup(input: unknown): Parsed<GroupDocument> {
  return parseWith(GroupDocumentSchema, input);
}

/** One line per problem: "targetTracking.0.target: must be <= 100". */
export function formatProblems(problems: readonly PolicyProblem[]): string {
  return problems.map((p) => `${p.path}: ${p.message}`).join('\n');
}
