import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { testGroup } from '../lib/testing.js';
import { openStore } from './db.js';
import { EventStore } from './events.js';
import { GroupStore } from './groups.js';
import { HistoryReader, MAX_POINTS } from './history.js';
import { InstanceStore } from './instances.js';
import { TelemetryStore } from './telemetry.js';

const T0 = 1_700_000_040_000; // a whole minute

function seeded() {
  const db = openStore(join(mkdtempSync(join(tmpdir(), 'autoscaler-history-')), 'a.db'));
  const g = new GroupStore(db).upsert(testGroup(), 0);
  new InstanceStore(db).insertLaunched('web', [{ id: 'a', providerState: 'running' }, { id: 'b', providerState: 'running' }], 'launched', 'test', T0);
  const rows = [];
  // 10 minutes at 1 Hz: a at 20 %, b at 60 % (b only in the second half).
  for (let s = 0; s < 600; s++) {
    rows.push({ instanceId: 'a', seq: s + 1, sampleAt: T0 + s * 1_000, receivedAt: T0 + s * 1_000, cpu: 20, mem: 10 });
    if (s >= 300) rows.push({ instanceId: 'b', seq: s + 1, sampleAt: T0 + s * 1_000, receivedAt: T0 + s * 1_000, cpu: 60, mem: 30 });
  }
  new TelemetryStore(db).writeBatch(rows);
  const events = new EventStore(db);
  events.recordDecision('web', { current: 1, desired: 2, reason: 'ScaleOut', message: 'up', trail: [], details: {} }, T0 + 290_000);
  return { db, g };
}

describe('group history', () => {
  it('raw samples (30 s steps) and rollups (1 min steps) give the same figures', () => {
    const { db, g } = seeded();
    const h = new HistoryReader(db);
    const fine = h.group(g, { from: T0, to: T0 + 600_000, stepMs: 30_000, load: undefined });
    const coarse = h.group(g, { from: T0, to: T0 + 600_000, stepMs: 60_000, load: undefined });
    expect(fine.ts).toHaveLength(20);
    expect(coarse.ts).toHaveLength(10);
    expect(coarse.avgCpu).toEqual([20, 20, 20, 20, 20, 40, 40, 40, 40, 40]);
    expect(fine.avgCpu.filter((_, i) => i % 2 === 0)).toEqual(coarse.avgCpu);
    expect(coarse.reporting).toEqual([1, 1, 1, 1, 1, 2, 2, 2, 2, 2]);
    expect(coarse.instances.map((i) => i.id)).toEqual(['a', 'b']);
    expect(coarse.instances[1]?.cpu).toEqual([null, null, null, null, null, 60, 60, 60, 60, 60]);
    // The decision at 290 s: capacity 2 from the bucket it falls in.
    expect(coarse.desired).toEqual([null, null, null, null, 2, 2, 2, 2, 2, 2]);
    expect(coarse.decisions.map((d) => d.message)).toEqual(['up']);
    db.close();
  });

  it('widens a step that would give more than MAX_POINTS buckets', () => {
    const { db, g } = seeded();
    const h = new HistoryReader(db).group(g, { from: T0 - 86_400_000, to: T0, stepMs: 1_000, load: undefined });
    expect(h.ts.length).toBeLessThanOrEqual(MAX_POINTS + 1);
    expect(h.stepMs).toBe(60_000);
    db.close();
  });

  it('simulated demand in the middle of each bucket, from the profile', () => {
    const { db, g } = seeded();
    const h = new HistoryReader(db).group(g, { from: T0, to: T0 + 120_000, stepMs: 60_000, load: { groupId: 'web', profile: { kind: 'constant', value: 150 }, startedAt: T0, updatedAt: T0 } });
    expect(h.demand).toEqual([150, 150]);
    db.close();
  });
});
