/**
 * Scheduled actions: which cron windows are open at `now` (AWS scheduled actions, with a
 * duration). Cron is read by croner (a kept library with IANA time zones and no dependencies),
 * never by hand. Not a pure room, as it imports croner, but it reads no clock: `now` is passed.
 */
import { Cron } from 'croner';
import type { Schedule } from '../domain/policy.js';
import type { ScheduleWindow } from './policy/types.js';

/** A fixed reference for `checkSchedule`'s "does it ever fire" test (2000-01-01T00:00Z): no clock. */
const CHECK_FROM = 946_684_800_000;

/** A schedule's field at fault and why, for the policy validator ("schedules.0.cron: …"). */
export interface ScheduleProblem {
  readonly field: 'cron' | 'timezone';
  readonly message: string;
}

function validTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** croner's messages start with its class name ("CronPattern: Invalid value for minute: 61"). */
const cronerMessage = (err: unknown) => (err instanceof Error ? err.message : String(err)).replace(/^Cron[A-Za-z]*:\s*/, '');

/** Five-field cron (minute hour day-of-month month day-of-week), day-of-month OR day-of-week as in Vixie cron. */
function cronOf(s: Schedule): Cron {
  return new Cron(s.cron, { timezone: s.timezone, mode: '5-part', domAndDow: false });
}

/** The cron job of a valid schedule, or undefined (the validator reports invalid ones). */
function tryCron(s: Schedule): Cron | undefined {
  if (!validTimeZone(s.timezone)) return undefined;
  try {
    return cronOf(s);
  } catch {
    return undefined;
  }
}

/** What is wrong with a schedule's cron expression or time zone, naming the field; undefined when valid. */
export function scheduleProblem(s: Schedule): ScheduleProblem | undefined {
  if (!validTimeZone(s.timezone)) {
    return { field: 'timezone', message: `unknown time zone "${s.timezone}": use an IANA name such as "Europe/Paris" or "UTC"` };
  }
  let cron: Cron;
  try {
    cron = cronOf(s);
  } catch (err) {
    return { field: 'cron', message: `invalid cron expression "${s.cron}": ${cronerMessage(err)}` };
  }
  if (cron.nextRun(new Date(CHECK_FROM)) === null) {
    return { field: 'cron', message: `cron expression "${s.cron}" never fires` };
  }
  return undefined;
}

/**
 * The message for an invalid cron expression or time zone, or undefined when the schedule can be
 * evaluated (the caller prefixes the path; {@link scheduleProblem} also says which field).
 */
export function checkSchedule(s: Schedule): string | undefined {
  return scheduleProblem(s)?.message;
}

/**
 * The window of `s` open at `now`, if any: from its most recent start (cron in its time zone) at
 * or before `now`, open while now < start + durationMs.
 *
 * Bounded search: croner first finds the first start after now − durationMs (a start at or
 * before that cannot be open); if it is later than `now`, nothing is open. Otherwise a start lies
 * within durationMs (≤ 31 days) before `now`, and croner's backward search from `now` stops at
 * the most recent one, which gives the latest end when windows overlap.
 */
function openWindow(s: Schedule, cron: Cron, now: number): ScheduleWindow | undefined {
  const first = cron.nextRun(new Date(now - s.durationMs));
  if (first === null || first.getTime() > now) return undefined;
  // previousRuns excludes a run exactly at its reference; +1 ms makes "at or before now".
  const startedAt = cron.previousRuns(1, new Date(now + 1))[0]?.getTime() ?? first.getTime();
  const endsAt = startedAt + s.durationMs;
  // Cannot happen when croner's forward and backward searches agree; a guard, not a branch.
  if (now >= endsAt) return undefined;
  return { name: s.name, startedAt, endsAt, minSize: s.minSize, maxSize: s.maxSize, desired: s.desired };
}

/**
 * The scheduled actions whose window is open at `now` (epoch ms), in the order of `schedules`.
 * A schedule whose cron expression or time zone is invalid is skipped: the policy validator
 * ({@link checkSchedule}) refuses it before it is stored.
 */
export function openWindows(schedules: readonly Schedule[], now: number): ScheduleWindow[] {
  const open: ScheduleWindow[] = [];
  for (const s of schedules) {
    const cron = tryCron(s);
    const w = cron === undefined ? undefined : openWindow(s, cron, now);
    if (w !== undefined) open.push(w);
  }
  return open;
}

/**
 * The next window of `s` that starts after `now` (strictly; one open at `now` is
 * {@link openWindows}'), for `autoscaler policy show`. Undefined when the schedule is invalid or
 * never fires again.
 */
export function nextWindow(s: Schedule, now: number): { startsAt: number; endsAt: number } | undefined {
  const next = tryCron(s)?.nextRun(new Date(now));
  if (next === undefined || next === null) return undefined;
  const startsAt = next.getTime();
  return { startsAt, endsAt: startsAt + s.durationMs };
}
