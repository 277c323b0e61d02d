import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatEntry } from '../cli/events.js';
import { testGroup } from '../lib/testing.js';
import { openStore, type Db } from './db.js';
import { EventStore } from './events.js';
import { GroupStore } from './groups.js';
import { START_CURSOR, TimelineReader, formatCursor, parseCursor, type TimelineEntry } from './timeline.js';

const key = (e: TimelineEntry) => `${e.kind}:${e.groupId}:${e.ts}`;

function seeded(): { db: Db; groups: GroupStore; events: EventStore; decide: (group: string, ts: number, from: number, to: number) => void } {
  const db = openStore(join(mkdtempSync(join(tmpdir(), 'autoscaler-timeline-')), 'a.db'));
  const groups = new GroupStore(db);
  groups.upsert(testGroup(), 0);
  groups.upsert(testGroup({ id: 'api' }), 0);
  const events = new EventStore(db);
  const decide = (group: string, ts: number, from: number, to: number) => {
    events.recordDecision(group, { current: from, desired: to, reason: to > from ? 'ScaleOut' : 'WithinTolerance', message: `to ${to}`, trail: [], details: {} }, ts);
  };
  return { db, groups, events, decide };
}

describe('the event log as one timeline', () => {
  it('merges decisions, activities and changes by time, and follows only what is new for its group', () => {
    const { db, groups, events, decide } = seeded();
    decide('web', 1_000, 1, 2);
    events.recordActivity({ ts: 1_000, groupId: 'web', instanceId: 'web-2', action: 'launch', cause: 'scale out to 2: ScaleOut', outcome: 'ok', error: null });
    decide('api', 500, 1, 1);
    const reader = new TimelineReader(db);
    const all = reader.latest({ limit: 10 }).entries;
    expect(all.map(key)).toEqual(['change:web:0', 'change:api:0', 'decision:api:500', 'decision:web:1000', 'activity:web:1000']);
    expect(formatEntry(all[4] as TimelineEntry)).toMatch(/^web {2}launch {4}\S+ web-2 \(scale out to 2: ScaleOut\) ok$/);
    expect(formatEntry(all[0] as TimelineEntry)).toMatch(/^web {2}created {3}\S+ by test: created: min 1 max 4$/);
    expect(reader.latest({ groupId: 'web', limit: 1 }).entries.map(key)).toEqual(['activity:web:1000']);

    let cursor = reader.latest({ groupId: 'web', limit: 1 }).cursor;
    decide('api', 2_000, 1, 2);
    decide('web', 3_000, 2, 3);
    events.recordActivity({ ts: 3_000, groupId: 'web', instanceId: 'web-3', action: 'launch', cause: 'x', outcome: 'failed', error: 'boom' });
    groups.setPaused('web', true, 3_000, 'ops', 'maintenance');
    const fresh = reader.after(cursor, { groupId: 'web', limit: 100 });
    expect(fresh.entries.map(key)).toEqual(['change:web:3000', 'decision:web:3000', 'activity:web:3000']);
    expect(formatEntry(fresh.entries[0] as TimelineEntry)).toMatch(/^web {2}pause {5}\S+ by ops: paused: maintenance$/);
    expect(formatEntry(fresh.entries[2] as TimelineEntry)).toContain('FAILED: boom');
    cursor = fresh.cursor;
    expect(reader.after(cursor, { groupId: 'web', limit: 100 }).entries).toEqual([]);
    db.close();
  });

  it('pages forward through a mix of kinds without losing or repeating an entry', () => {
    const { db, events, decide } = seeded();
    for (let i = 0; i < 30; i++) {
      decide(i % 3 === 0 ? 'api' : 'web', 1_000 + i * 10, 1, 2);
      if (i % 2 === 0) events.recordActivity({ ts: 1_000 + i * 10, groupId: 'web', instanceId: `web-${i}`, action: 'launch', cause: 'c', outcome: 'ok', error: null });
    }
    const reader = new TimelineReader(db);
    const everything = reader.after(START_CURSOR, { limit: 1_000 }).entries.map(key);
    expect(everything).toHaveLength(2 + 30 + 15);
    const paged: string[] = [];
    let cursor = START_CURSOR;
    for (let page = 0; page < 100; page++) {
      const p = reader.after(cursor, { limit: 7 });
      if (p.entries.length === 0) break;
      paged.push(...p.entries.map(key));
      cursor = p.cursor;
    }
    expect(paged).toEqual(everything);
    expect(parseCursor(formatCursor(cursor))).toEqual(cursor);
    db.close();
  });

  it('since a time: only entries at or after it, and paging on from there skips nothing before it', () => {
    const { db, decide, events } = seeded();
    decide('web', 1_000, 1, 2);
    events.recordActivity({ ts: 1_500, groupId: 'web', instanceId: 'old', action: 'launch', cause: 'c', outcome: 'ok', error: null });
    decide('web', 2_000, 2, 3);
    decide('web', 3_000, 3, 4);
    const reader = new TimelineReader(db);
    const first = reader.since(2_000, { groupId: 'web', limit: 1 });
    expect(first.entries.map(key)).toEqual(['decision:web:2000']);
    expect(reader.after(first.cursor, { groupId: 'web', limit: 10 }).entries.map(key)).toEqual(['decision:web:3000']);
    db.close();
  });

  it.each([
    { name: 'three ids', text: '1.2.3', ok: true },
    { name: 'two ids', text: '1.2', ok: false },
    { name: 'negative', text: '-1.2.3', ok: false },
    { name: 'too long', text: `${'9'.repeat(16)}.0.0`, ok: false },
    { name: 'letters', text: 'a.b.c', ok: false },
  ])('cursor text: $name', ({ text, ok }) => {
    expect(parseCursor(text) !== undefined).toBe(ok);
  });
});
