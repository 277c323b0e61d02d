import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { captureLogger, testGroup } from '../lib/testing.js';
import { openStore } from '../store/db.js';
import { GroupStore } from '../store/groups.js';
import { InstanceStore } from '../store/instances.js';
import { TelemetryStore, type SampleRecord } from '../store/telemetry.js';
import { tempDir } from '../test/helpers.js';
import { IngestQueue } from './ingest.js';
import { RingBuffer } from './ring-buffer.js';

describe('RingBuffer', () => {
  it('is FIFO across wrap-around, refuses pushes when full, and peek does not remove', () => {
    const r = new RingBuffer<number>(3);
    expect([r.push(1), r.push(2), r.push(3), r.push(4)]).toEqual([true, true, true, false]);
    expect(r.isFull).toBe(true);
    expect(r.shift()).toBe(1);
    expect(r.push(5)).toBe(true); // wraps
    expect(r.peek(10)).toEqual([2, 3, 5]);
    expect(r.length).toBe(3);
    r.drop(2);
    expect(r.peek(10)).toEqual([5]);
    expect([r.shift(), r.shift()]).toEqual([5, undefined]);
  });

  it('pushing and draining 1,000,000 rows through a 1,000-slot buffer keeps every row in order', () => {
    const r = new RingBuffer<number>(1_000);
    let next = 0;
    let expected = 0;
    let outOfOrder = 0;
    while (expected < 1_000_000) {
      while (next < 1_000_000 && r.push(next)) next++;
      for (const v of r.peek(r.length)) if (v !== expected++) outOfOrder++;
      r.drop(r.length);
    }
    expect(outOfOrder).toBe(0);
    expect(r.length).toBe(0);
  });
});

describe('IngestQueue', () => {
  const sample = (seq: number): SampleRecord => ({ instanceId: 'i-1', seq, sampleAt: 1_000 + seq, receivedAt: 1_000 + seq, cpu: 10, mem: 10 });

  function setup(maxQueuedRows: number) {
    const db = openStore(join(tempDir(), 'a.db'));
    new GroupStore(db).upsert(testGroup(), 0);
    new InstanceStore(db).register({ id: 'i-1', groupId: 'web', address: '', agentVersion: '' }, 0);
    const telemetry = new TelemetryStore(db);
    return { db, telemetry, q: new IngestQueue(telemetry, captureLogger('warn').log, { flushMaxRows: 2, maxQueuedRows }) };
  }

  it('when full, refuses new rows instead of dropping queued ones', () => {
    const { db, q } = setup(3);
    expect([1, 2, 3, 4].map((s) => q.push(sample(s)))).toEqual([true, true, true, false]);
    expect(q.flush(0)).toEqual({ rows: 3 });
    expect(db.prepare('SELECT seq FROM samples ORDER BY seq').all()).toEqual([{ seq: 1 }, { seq: 2 }, { seq: 3 }]);
    expect(q.push(sample(4))).toBe(true);
    db.close();
  });

  it('a failed write keeps every row queued, in order, until a write succeeds', () => {
    const { db, telemetry, q } = setup(10);
    q.push(sample(1));
    q.push(sample(2));
    const real = telemetry.writeBatch.bind(telemetry);
    let fail = true;
    telemetry.writeBatch = (batch) => {
      if (fail) throw new Error('disk full');
      real(batch);
    };
    expect(q.flush(0)).toBeUndefined();
    expect(q.lastError?.message).toBe('disk full');
    expect(q.length).toBe(2);
    q.push(sample(3));
    fail = false;
    expect(q.flush(1)).toMatchObject({ rows: 3 });
    expect(q.lastError).toBeUndefined();
    expect(db.prepare('SELECT seq FROM samples ORDER BY seq').all()).toEqual([{ seq: 1 }, { seq: 2 }, { seq: 3 }]);
    db.close();
  });
});
