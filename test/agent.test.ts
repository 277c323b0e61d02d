import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runAgent, type AgentHandle } from '../agent/main.js';
import { ProcSampleError } from '../agent/proc-sampler.js';
import type { Sample, Sampler } from '../agent/sampler.js';
import { loadAgentConfig } from '../config/agent.js';
import { loadMonitorServerConfig } from '../config/monitor-server.js';
import { systemClock } from '../lib/clock.js';
import { captureLogger, testGroup } from '../lib/testing.js';
import { MonitorServer, type MonitorServerHandle } from '../monitor-server/server.js';
import { openStore, type Db } from '../store/db.js';
import { GroupStore } from '../store/groups.js';
import { InstanceStore } from '../store/instances.js';
import { SimLoadStore } from '../store/simload.js';
import { tempDir, waitFor } from './helpers.js';

const spec = testGroup();

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function startServer(db: Db, dbPath: string, port = 0): Promise<MonitorServerHandle> {
  const cfg = loadMonitorServerConfig({ env: {
    AUTOSCALER_DB: dbPath, MONITOR_GRPC_PORT: String(port), MONITOR_HTTP_PORT: '0',
    MONITOR_HEARTBEAT_INTERVAL_MS: '40', MONITOR_SUSPECT_AFTER_MS: '2000', MONITOR_DEAD_AFTER_MS: '4000', MONITOR_FLUSH_INTERVAL_MS: '20',
  } });
  return new MonitorServer(cfg, db, systemClock, captureLogger('warn').log).start();
}

function startAgent(port: number, extra: Record<string, string> = {}, opts: { sampler?: Sampler; log?: ReturnType<typeof captureLogger>['log'] } = {}): AgentHandle {
  const cfg = loadAgentConfig({ env: {
    AGENT_SERVER: `127.0.0.1:${port}`, AGENT_GROUP: 'web', AGENT_INSTANCE_ID: 'agent-1', AGENT_SIMULATE: 'true',
    AGENT_INTERVAL_MS: '40', AGENT_RECONNECT_MIN_MS: '20', AGENT_RECONNECT_MAX_MS: '200', ...extra,
  } });
  const agent = runAgent(cfg, opts.log ?? captureLogger('warn').log, systemClock, opts.sampler ? { sampler: opts.sampler } : {});
  cleanup.push(() => agent.stop('test over'));
  return agent;
}

/** A temp store holding the test group and its instance agent-1, closed after the test. */
function freshStore(): { db: Db; dbPath: string } {
  const dbPath = join(tempDir(), 'a.db');
  const db = openStore(dbPath);
  cleanup.push(() => { db.close(); });
  new GroupStore(db).upsert(spec, Date.now());
  // The monitor server accepts only instances the controller recorded (launched or adopted).
  new InstanceStore(db).insertLaunched('web', [{ id: 'agent-1', providerState: 'running' }], 'launched', 'test', Date.now());
  return { db, dbPath };
}

/**
 * A sampler that plays a script: `undefined` (nothing yet), a failure, or a reading, one entry per
 * heartbeat; after the script it reads 50 % / 40 %.
 */
class ScriptedSampler implements Sampler {
  readonly kind = 'proc';
  calls = 0;
  closed = false;
  constructor(private readonly script: readonly ('none' | 'fail' | Sample)[]) {}
  async sample(): Promise<Sample | undefined> {
    const step = this.script[this.calls++] ?? { cpu: 50, mem: 40 };
    if (step === 'fail') throw new ProcSampleError('/proc/stat: the first line is not the aggregate "cpu" line (got "")', '/proc/stat');
    return step === 'none' ? undefined : step;
  }
  close(): void {
    this.closed = true;
  }
}

const seqs = (db: Db) => (db.prepare('SELECT seq FROM samples ORDER BY seq').all() as { seq: number }[]).map((r) => r.seq);

describe('agent ↔ monitor server', () => {
  it('survives a monitor server restart and replays what it buffered: no gap, no duplicate', async () => {
    const { db, dbPath } = freshStore();
    new SimLoadStore(db).set('web', { kind: 'constant', value: 80 }, Date.now());
    let server = await startServer(db, dbPath);
    const port = server.grpcPort;
    const agent = startAgent(port);
    await waitFor('10 stored samples', () => seqs(db).length >= 10);
    expect(agent.reporter.groupView).toMatchObject({ liveInstances: 1, demandPercent: 80 });

    await server.close();
    const storedBefore = seqs(db).length;
    const sampledAtStop = agent.reporter.stats.sampled;
    await waitFor('samples buffered while the server is down', () => agent.reporter.stats.sampled >= sampledAtStop + 10);
    expect(agent.reporter.stats.buffered).toBeGreaterThanOrEqual(10);

    server = await startServer(db, dbPath, port);
    cleanup.push(() => server.close());
    await waitFor('buffer replayed', () => agent.reporter.stats.connects >= 2 && agent.reporter.stats.buffered <= 2 && seqs(db).length > storedBefore + 10, 10_000);
    const stored = seqs(db);
    expect(stored).toEqual(Array.from({ length: stored.length }, (_, k) => k + 1));
    expect(agent.reporter.stats.dropped).toBe(0);
  });

  it('with the monitor server down it keeps sampling into a bounded buffer, then delivers what it kept', async () => {
    const { db, dbPath } = freshStore();
    // Reserve a port, then free it: nothing listens there until we start the server.
    const probe = await startServer(db, dbPath);
    const port = probe.grpcPort;
    await probe.close();
    const agent = startAgent(port, { AGENT_BUFFER_SIZE: '5' });
    await waitFor('buffer overflow', () => agent.reporter.stats.dropped >= 3);
    expect(agent.reporter.stats.buffered).toBe(5);
    const server = await startServer(db, dbPath, port);
    cleanup.push(() => server.close());
    await waitFor('delivered', () => agent.reporter.stats.connects >= 1 && seqs(db).length >= 8);
    const stored = seqs(db);
    // The oldest were dropped by the bound, but what was kept is numbered from 1 and contiguous.
    expect(stored).toEqual(Array.from({ length: stored.length }, (_, k) => k + 1));
  });

  it('deregisters on stop so the instance stops counting at once', async () => {
    const { db, dbPath } = freshStore();
    const server = await startServer(db, dbPath);
    cleanup.push(() => server.close());
    const agent = startAgent(server.grpcPort);
    await waitFor('registered', () => agent.reporter.stats.connects === 1 && seqs(db).length > 0);
    await agent.stop('SIGTERM');
    const row = db.prepare("SELECT state, state_reason FROM instances WHERE id = 'agent-1'").get();
    expect(row).toEqual({ state: 'dead', state_reason: 'deregistered: SIGTERM' });
  });

  it('skips the heartbeats whose sample failed or was not ready (never a 0): contiguous seqs, one warning per run of failures', async () => {
    const { db, dbPath } = freshStore();
    const server = await startServer(db, dbPath);
    cleanup.push(() => server.close());
    const sampler = new ScriptedSampler(['none', { cpu: 10, mem: 20 }, 'fail', 'fail', 'fail', { cpu: 30, mem: 40 }, 'fail']);
    const cap = captureLogger('info');
    const agent = startAgent(server.grpcPort, { AGENT_SIMULATE: 'false' }, { sampler, log: cap.log });
    await waitFor('4 stored samples', () => seqs(db).length >= 4);
    const rows = db.prepare('SELECT seq, cpu, mem FROM samples ORDER BY seq LIMIT 3').all();
    expect(rows).toEqual([{ seq: 1, cpu: 10, mem: 20 }, { seq: 2, cpu: 30, mem: 40 }, { seq: 3, cpu: 50, mem: 40 }]);
    expect(agent.reporter.stats.sampleErrors).toBe(4);
    const msgs = cap.lines.filter((l) => typeof l.msg === 'string' && /^sampling/.test(l.msg)).map((l) => ({ msg: l.msg, failed: l.failed }));
    expect(msgs).toEqual([
      { msg: 'sampling failed; no heartbeat this interval', failed: 1 },
      { msg: 'sampling recovered', failed: 3 },
      { msg: 'sampling failed; no heartbeat this interval', failed: 1 },
      { msg: 'sampling recovered', failed: 1 },
    ]);
    expect(cap.lines.find((l) => l.msg === 'sampling failed; no heartbeat this interval')).toMatchObject({ err: { type: 'ProcSampleError' } });
    await agent.stop('test over');
    expect(sampler.closed).toBe(true);
  });
});
