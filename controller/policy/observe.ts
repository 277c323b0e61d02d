/**
 * observe(): stored rows → what the policies see. Pure: the caller passes the rows, the open
 * launch intents, the history and `now`.
 */
import type { CapacityOverride, MinuteSample, Observation, ReadyInstance, ScheduleWindow } from './types.js';

/** The fields of a stored instance that observation reads (store/instances.ts InstanceRow has them). */
export interface ObservedInstance {
  readonly id: string;
  /** pending, running, suspect, dead, terminating, terminated. */
  readonly state: string;
  readonly cpu: number | null;
  readonly mem: number | null;
  /** When the latest sample was taken, epoch ms. */
  readonly sampleAt: number | null;
  readonly registeredAt: number | null;
}

export interface ObserveInput {
  readonly instances: readonly ObservedInstance[];
  /** Instances asked for in launches not yet recorded (open intents). */
  readonly inFlight: number;
  readonly minSize: number;
  readonly maxSize: number;
  /** Instance warm-up, ms. */
  readonly warmupMs: number;
  /** Samples older than this are not used, ms. */
  readonly metricMaxAgeMs: number;
  readonly history?: readonly MinuteSample[] | undefined;
  readonly schedules?: readonly ScheduleWindow[] | undefined;
  readonly override?: CapacityOverride | undefined;
  readonly now: number;
}

/**
 * Capacity is what is launched and not dead or on its way out (pending, running, suspect). A
 * running instance is ready when it is past its warm-up and its sample is fresh; otherwise it is
 * warming or stale: capacity whose metric is not used.
 */
export function observe(input: ObserveInput): Observation {
  const { now } = input;
  const ready: ReadyInstance[] = [];
  let warming = 0;
  let launching = input.inFlight;
  let suspect = 0;
  let stale = 0;
  for (const i of input.instances) {
    if (i.state === 'pending') launching++;
    else if (i.state === 'suspect') suspect++;
    else if (i.state === 'running') {
      if ((i.registeredAt ?? now) > now - input.warmupMs) warming++;
      else if (i.cpu === null || i.mem === null || i.sampleAt === null) warming++; // registered, no sample yet
      else if (i.sampleAt < now - input.metricMaxAgeMs) stale++;
      else ready.push({ id: i.id, cpu: i.cpu, mem: i.mem });
    }
  }
  return {
    now, minSize: input.minSize, maxSize: input.maxSize,
    current: ready.length + warming + launching + suspect + stale,
    ready, warming, launching, suspect, stale,
    history: input.history ?? [], schedules: input.schedules ?? [], override: input.override,
  };
}
