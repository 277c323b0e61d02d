import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadMonitorServerConfig } from '../config/monitor-server.js';
import { ManualClock, captureLogger, testGroup } from '../lib/testing.js';
import { MonitorServer } from '../monitor-server/server.js';
import { openStore } from '../store/db.js';
import { GroupStore } from '../store/groups.js';
import { InstanceStore } from '../store/instances.js';
import { tempDir, waitFor } from './helpers.js';

const spec = testGroup();

describe('monitor server restart', () => {
  it('gives known instances the startup grace to reconnect before declaring them dead', async () => {
    const dbPath = join(tempDir(), 'a.db');
    const db = openStore(dbPath);
    const clock = new ManualClock();
    new GroupStore(db).upsert(spec, 0);
    const instances = new InstanceStore(db);
    // Seen a minute ago, before the monitor server went away.
    instances.register({ id: 'i-1', groupId: 'web', address: '', agentVersion: '' }, clock.now() - 60_000);
    const cfg = loadMonitorServerConfig({ env: { AUTOSCALER_DB: dbPath, MONITOR_GRPC_PORT: '0', MONITOR_HTTP_PORT: '0', MONITOR_STARTUP_GRACE_MS: '15000', MONITOR_FAILURE_DETECTOR: 'timeout' } });
    const server = await new MonitorServer(cfg, db, clock, captureLogger('warn').log).start();
    try {
      await waitFor('suspect (no stream yet)', () => instances.get('i-1')?.state === 'suspect');
      expect(instances.get('i-1')?.stateReason).toBe('no heartbeat stream');
      clock.advance(15_000 + 4_000); // still inside grace + dead threshold
      // Observe a sweep that ran entirely at the new time (sweeps are synchronous, and the
      // counter moves at their end), then check it left the instance suspect.
      const sweeps = server.stats().sweeps;
      await waitFor('a sweep at grace + 4 s', () => server.stats().sweeps > sweeps);
      expect(instances.get('i-1')?.state).toBe('suspect');
      clock.advance(1_000);
      await waitFor('dead after grace', () => instances.get('i-1')?.state === 'dead');
    } finally {
      await server.close();
      db.close();
    }
  });
});
