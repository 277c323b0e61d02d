import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ManualClock, testGroup } from '../lib/testing.js';
import { openStore } from '../store/db.js';
import { EventStore } from '../store/events.js';
import { GroupStore } from '../store/groups.js';
import { InstanceStore } from '../store/instances.js';
import { StatusReader } from '../store/status.js';
import { tempDir } from '../test/helpers.js';
import { StatusCache } from './status-cache.js';

describe('StatusCache', () => {
  it('reads the store once per TTL and serves the same JSON the reader builds', () => {
    const db = openStore(join(tempDir(), 'a.db'));
    const clock = new ManualClock();
    new GroupStore(db).upsert(testGroup(), 0);
    new GroupStore(db).upsert(testGroup({ id: 'api' }), 0);
    new InstanceStore(db).register({ id: 'i-1', groupId: 'web', address: '', agentVersion: '' }, clock.now());
    const events = new EventStore(db);
    for (let i = 0; i < 5; i++) events.recordDecision('web', { current: 1, desired: 2, reason: 'ScaleOut', message: `m${i}`, trail: ['ScaleOut'], details: {} }, clock.now());
    const reader = new StatusReader(db);
    const cache = new StatusCache(reader, () => clock.now(), 1_000, () => ({ refused: { x: 1 } }));
    const want = { ...reader.report(clock.now(), { decisions: 3, groupId: 'web' }), monitor: { refused: { x: 1 } } };
    expect(JSON.parse(cache.body('web', 3).toString('utf8'))).toEqual(want);
    expect(JSON.parse(cache.body(undefined, 10).toString('utf8')).groups.map((g: { id: string }) => g.id)).toEqual(['api', 'web']);
    new InstanceStore(db).register({ id: 'i-2', groupId: 'web', address: '', agentVersion: '' }, clock.now());
    expect(JSON.parse(cache.body('web', 3).toString('utf8')).groups[0].instances).toHaveLength(1); // cached
    expect(cache.builds).toBe(1);
    clock.advance(1_000);
    expect(JSON.parse(cache.body('web', 3).toString('utf8')).groups[0].instances).toHaveLength(2);
    expect(cache.builds).toBe(2);
    db.close();
  });
});
