import { describe, expect, it } from 'vitest';
import { ScheduleSchema, type Schedule } from '../domain/policy.js';
import { checkSchedule, nextWindow, openWindows, scheduleProblem } from './schedules.js';

const HOUR = 3_600_000;
/** Fixed instants (not the clock); "Z" is UTC. Paris is UTC+2 in summer, UTC+1 in winter. */
const at = (iso: string) => Date.parse(iso);

const sched = (s: Partial<Schedule> & Pick<Schedule, 'cron' | 'durationMs'>): Schedule => ({ name: 's', timezone: 'UTC', desired: 4, ...s });

// Weekdays 08:00–18:00 Paris time.
const office = sched({ name: 'office', cron: '0 8 * * 1-5', timezone: 'Europe/Paris', durationMs: 10 * HOUR, minSize: 3, maxSize: 12, desired: undefined });
// Daily 02:30 Paris time, one hour: 02:30 does not exist on 30 March 2025 and occurs twice on 26 October 2025.
const night = sched({ name: 'night', cron: '30 2 * * *', timezone: 'Europe/Paris', durationMs: HOUR });

describe('openWindows', () => {
  it.each([
    { name: 'office: Monday 09:00 Paris (summer) is open', s: office, now: '2025-06-02T07:00:00Z', want: { startedAt: '2025-06-02T06:00:00Z', endsAt: '2025-06-02T16:00:00Z' } },
    { name: 'office: Monday 09:00 Paris (winter) is open', s: office, now: '2025-01-06T08:00:00Z', want: { startedAt: '2025-01-06T07:00:00Z', endsAt: '2025-01-06T17:00:00Z' } },
    { name: 'office: opens at 08:00 exactly', s: office, now: '2025-06-02T06:00:00Z', want: { startedAt: '2025-06-02T06:00:00Z', endsAt: '2025-06-02T16:00:00Z' } },
    { name: 'office: closed at 07:59 Paris', s: office, now: '2025-06-02T05:59:00Z', want: undefined },
    { name: 'office: closed at 18:00 exactly (the end is exclusive)', s: office, now: '2025-06-02T16:00:00Z', want: undefined },
    { name: 'office: closed at 19:00 Paris', s: office, now: '2025-06-02T17:00:00Z', want: undefined },
    { name: 'office: closed on Sunday at 09:00 Paris', s: office, now: '2025-06-01T07:00:00Z', want: undefined },
    { name: 'office: open on Friday at 17:59 Paris', s: office, now: '2025-06-06T15:59:00Z', want: { startedAt: '2025-06-06T06:00:00Z', endsAt: '2025-06-06T16:00:00Z' } },
    { name: 'DST spring forward: 02:30 Paris does not exist, the window opens at 03:00 CEST', s: night, now: '2025-03-30T01:10:00Z', want: { startedAt: '2025-03-30T01:00:00Z', endsAt: '2025-03-30T02:00:00Z' } },
    { name: 'DST: the day before, 02:30 CET', s: night, now: '2025-03-29T01:40:00Z', want: { startedAt: '2025-03-29T01:30:00Z', endsAt: '2025-03-29T02:30:00Z' } },
    { name: 'DST: the day after, 02:30 CEST', s: night, now: '2025-03-31T00:45:00Z', want: { startedAt: '2025-03-31T00:30:00Z', endsAt: '2025-03-31T01:30:00Z' } },
    { name: 'DST fall back: 02:30 occurs twice, the window opens once (the first)', s: night, now: '2025-10-26T00:45:00Z', want: { startedAt: '2025-10-26T00:30:00Z', endsAt: '2025-10-26T01:30:00Z' } },
    { name: 'DST fall back: no second window at the second 02:30', s: night, now: '2025-10-26T01:45:00Z', want: undefined },
    { name: 'a 30 h window that started yesterday is still open', s: sched({ cron: '0 8 * * 1', durationMs: 30 * HOUR }), now: '2025-06-03T10:00:00Z', want: { startedAt: '2025-06-02T08:00:00Z', endsAt: '2025-06-03T14:00:00Z' } },
    { name: 'the 30 h window is closed after 30 h', s: sched({ cron: '0 8 * * 1', durationMs: 30 * HOUR }), now: '2025-06-03T14:00:00Z', want: undefined },
    { name: 'overlapping windows: the most recent start gives the latest end', s: sched({ cron: '0 8 * * *', durationMs: 30 * HOUR }), now: '2025-06-03T10:00:00Z', want: { startedAt: '2025-06-03T08:00:00Z', endsAt: '2025-06-04T14:00:00Z' } },
    { name: 'every minute for 31 days: the latest minute, found without walking 44 640 runs', s: sched({ cron: '* * * * *', durationMs: 31 * 24 * HOUR }), now: '2025-06-03T10:00:30Z', want: { startedAt: '2025-06-03T10:00:00Z', endsAt: '2025-07-04T10:00:00Z' } },
    { name: 'a rare cron (29 February) within its window', s: sched({ cron: '0 0 29 2 *', durationMs: 31 * 24 * HOUR }), now: '2028-03-10T00:00:00Z', want: { startedAt: '2028-02-29T00:00:00Z', endsAt: '2028-03-31T00:00:00Z' } },
    { name: 'a rare cron (29 February) outside its window', s: sched({ cron: '0 0 29 2 *', durationMs: 31 * 24 * HOUR }), now: '2025-03-10T00:00:00Z', want: undefined },
  ])('$name', ({ s, now, want }) => {
    const got = openWindows([s], at(now));
    expect(got).toEqual(want === undefined ? [] : [{ name: s.name, startedAt: at(want.startedAt), endsAt: at(want.endsAt), minSize: s.minSize, maxSize: s.maxSize, desired: s.desired }]);
  });

  it('defaults to UTC', () => {
    const s = ScheduleSchema.parse({ name: 'utc', cron: '0 8 * * *', durationMs: HOUR, desired: 3 });
    expect(s.timezone).toBe('UTC');
    expect(openWindows([s], at('2025-06-02T08:30:00Z'))).toEqual([{ name: 'utc', startedAt: at('2025-06-02T08:00:00Z'), endsAt: at('2025-06-02T09:00:00Z'), minSize: undefined, maxSize: undefined, desired: 3 }]);
    expect(openWindows([s], at('2025-06-02T07:30:00Z'))).toEqual([]);
  });

  it('keeps the order of the schedules, carries their bounds, and skips an invalid one', () => {
    const now = at('2025-06-02T07:00:00Z'); // Monday 09:00 Paris
    const bad = sched({ name: 'bad', cron: '0 8 * * *', timezone: 'Mars/Olympus', durationMs: 24 * HOUR });
    const allDay = sched({ name: 'all-day', cron: '0 0 * * *', durationMs: 24 * HOUR, desired: 2 });
    expect(openWindows([allDay, bad, office, night], now)).toEqual([
      { name: 'all-day', startedAt: at('2025-06-02T00:00:00Z'), endsAt: at('2025-06-03T00:00:00Z'), minSize: undefined, maxSize: undefined, desired: 2 },
      { name: 'office', startedAt: at('2025-06-02T06:00:00Z'), endsAt: at('2025-06-02T16:00:00Z'), minSize: 3, maxSize: 12, desired: undefined },
    ]);
  });
});

describe('checkSchedule', () => {
  it.each([
    { name: 'valid Paris weekday schedule', s: office, field: undefined, want: undefined },
    { name: 'valid with the UTC default', s: sched({ cron: '0 8 * * *', durationMs: HOUR }), field: undefined, want: undefined },
    { name: 'minute out of range', s: sched({ cron: '61 8 * * *', durationMs: HOUR }), field: 'cron', want: 'invalid cron expression "61 8 * * *": Invalid value for minute: 61' },
    { name: 'four fields', s: sched({ cron: '0 8 * *', durationMs: HOUR }), field: 'cron', want: /^invalid cron expression "0 8 \* \*": / },
    { name: 'six fields (seconds) are refused: five-field cron only', s: sched({ cron: '0 0 8 * * *', durationMs: HOUR }), field: 'cron', want: /^invalid cron expression "0 0 8 \* \* \*": mode '5-part'/ },
    { name: 'words', s: sched({ cron: 'every day at eight', durationMs: HOUR }), field: 'cron', want: /^invalid cron expression/ },
    { name: 'a cron that never fires (30 February)', s: sched({ cron: '0 0 30 2 *', durationMs: HOUR }), field: 'cron', want: 'cron expression "0 0 30 2 *" never fires' },
    { name: 'unknown time zone', s: sched({ cron: '0 8 * * *', timezone: 'Mars/Olympus', durationMs: HOUR }), field: 'timezone', want: 'unknown time zone "Mars/Olympus": use an IANA name such as "Europe/Paris" or "UTC"' },
    { name: 'a city alone is not a zone name', s: sched({ cron: '0 8 * * *', timezone: 'Paris', durationMs: HOUR }), field: 'timezone', want: /^unknown time zone "Paris"/ },
  ])('$name', ({ s, field, want }) => {
    const message = checkSchedule(s);
    if (want === undefined) expect(message).toBeUndefined();
    else if (typeof want === 'string') expect(message).toBe(want);
    else expect(message).toMatch(want);
    expect(scheduleProblem(s)?.field).toBe(field);
  });
});

describe('nextWindow', () => {
  it.each([
    { name: 'Monday 19:00 Paris → Tuesday 08:00 Paris', s: office, now: '2025-06-02T17:00:00Z', want: { startsAt: '2025-06-03T06:00:00Z', endsAt: '2025-06-03T16:00:00Z' } },
    { name: 'Friday evening → Monday', s: office, now: '2025-06-06T17:00:00Z', want: { startsAt: '2025-06-09T06:00:00Z', endsAt: '2025-06-09T16:00:00Z' } },
    { name: 'while a window is open: the next one', s: office, now: '2025-06-02T07:00:00Z', want: { startsAt: '2025-06-03T06:00:00Z', endsAt: '2025-06-03T16:00:00Z' } },
    { name: 'at a start exactly: the next one (this one is open)', s: office, now: '2025-06-02T06:00:00Z', want: { startsAt: '2025-06-03T06:00:00Z', endsAt: '2025-06-03T16:00:00Z' } },
    { name: 'across the spring-forward gap', s: night, now: '2025-03-29T12:00:00Z', want: { startsAt: '2025-03-30T01:00:00Z', endsAt: '2025-03-30T02:00:00Z' } },
    { name: 'invalid time zone', s: sched({ cron: '0 8 * * *', timezone: 'Mars/Olympus', durationMs: HOUR }), now: '2025-06-02T17:00:00Z', want: undefined },
    { name: 'never fires', s: sched({ cron: '0 0 30 2 *', durationMs: HOUR }), now: '2025-06-02T17:00:00Z', want: undefined },
  ])('$name', ({ s, now, want }) => {
    expect(nextWindow(s, at(now))).toEqual(want === undefined ? undefined : { startsAt: at(want.startsAt), endsAt: at(want.endsAt) });
  });
});
