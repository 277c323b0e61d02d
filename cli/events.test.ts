import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { testGroup } from '../lib/testing.js';
import { openStore } from '../store/db.js';
import { EventStore } from '../store/events.js';
import { GroupStore } from '../store/groups.js';
import { EventFollower, formatEntry, recentEvents } from './events.js';

describe('event log', () => {
  it('merges decisions and activities by time, and follows only what is new for its group', () => {
    const db = openStore(join(mkdtempSync(join(tmpdir(), 'autoscaler-events-')), 'a.db'));
    const groups = new GroupStore(db);
    groups.upsert(testGroup(), 0);
    groups.upsert(testGroup({ id: 'api' }), 0);
    const events = new EventStore(db);
    const decide = (group: string, ts: number, from: number, to: number) =>
      events.recordDecision(group, { current: from, desired: to, reason: to > from ? 'ScaleOut' : 'WithinTolerance', message: `to ${to}`, trail: [], details: {} }, ts);
    decide('web', 1_000, 1, 2);
    events.recordActivity({ ts: 1_000, groupId: 'web', instanceId: 'web-2', action: 'launch', cause: 'scale out to 2: ScaleOut', outcome: 'ok', error: null });
    decide('api', 500, 1, 1);
    const all = recentEvents(db, { limit: 10 });
    expect(all.map((e) => `${e.kind}:${e.groupId}:${e.ts}`)).toEqual(['change:web:0', 'change:api:0', 'decision:api:500', 'decision:web:1000', 'activity:web:1000']);
    expect(formatEntry(all[4] as (typeof all)[number])).toMatch(/^web {2}launch {4}\S+ web-2 \(scale out to 2: ScaleOut\) ok$/);
    expect(formatEntry(all[0] as (typeof all)[number])).toMatch(/^web {2}created {3}\S+ by test: created: min 1 max 4$/);
    expect(recentEvents(db, { groupId: 'web', limit: 1 })).toHaveLength(1);

    const follower = EventFollower.fromNow(db, 'web');
    expect(all.every((e) => follower.seen(e))).toBe(true);
    decide('api', 2_000, 1, 2);
    decide('web', 3_000, 2, 3);
    events.recordActivity({ ts: 3_000, groupId: 'web', instanceId: 'web-3', action: 'launch', cause: 'x', outcome: 'failed', error: 'boom' });
    groups.setPaused('web', true, 3_000, 'ops', 'maintenance');
    const fresh = follower.poll();
    expect(fresh.map((e) => `${e.kind}:${e.groupId}:${e.ts}`)).toEqual(['change:web:3000', 'decision:web:3000', 'activity:web:3000']);
    expect(formatEntry(fresh[0] as (typeof fresh)[number])).toMatch(/^web {2}pause {5}\S+ by ops: paused: maintenance$/);
    expect(formatEntry(fresh[2] as (typeof fresh)[number])).toContain('FAILED: boom');
    expect(follower.poll()).toEqual([]);
    db.close();
  });
});
