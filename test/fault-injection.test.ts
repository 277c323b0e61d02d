/**
 * Fault injection with real processes (issue 7, Acceptance): 20 `autoscaler agent --simulate`
 * processes and one `autoscaler monitor-server` process on a temp SQLite file.
 *   1. A TCP proxy between the agents and the server drops, stalls and resets connections on a
 *      bounded schedule, then runs clean until every agent has caught up.
 *   2. The monitor server is killed with SIGKILL while the agents stream, and restarted on the same
 *      file and port.
 * Either way every sample an agent was told is stored must be in `samples` exactly once, the
 * sequence of each instance has no gap (nothing taken was lost) and what agents buffered during
 * the outages was replayed after they reconnected (counted from their `registered` log lines).
 * Needs `npm run build` first (npm test does it).
 */
import { mulberry32 } from '../sim/random.js';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { testGroup } from '../lib/testing.js';
import { openStore, type Db } from '../store/db.js';
import { GroupStore } from '../store/groups.js';
import { InstanceStore } from '../store/instances.js';
import { killAll, startCli, tempDir, waitFor, type CliProcess } from './helpers.js';

const GROUP = 'chaos';
const AGENTS = 20;
/** Heartbeat interval announced by the server: many samples in a short test. */
const HEARTBEAT_MS = 250;
/** How long the proxy injects faults. */
const CHAOS_MS = 15_000;
/** Pause between two injected faults, ms (drawn uniformly). */
const FAULT_GAP_MS = [150, 600] as const;
/** How long a stalled connection forwards nothing, ms. */
const STALL_MS = [2_000, 3_000] as const;
/** How long the killed server stays down. A fault parameter, not a wait for a state. */
const DOWN_MS = 2_000;

afterAll(killAll);

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

/** Seeded: the fault schedule is the same on every run. */
const prng = mulberry32;

const between = (rand: () => number, [lo, hi]: readonly [number, number]) => Math.round(lo + (hi - lo) * rand());
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A port nothing listens on right now (bound on port 0, then closed). */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const addr = s.address();
  await new Promise<void>((r) => s.close(() => r()));
  if (addr === null || typeof addr !== 'object') throw new Error('no port');
  return addr.port;
}

interface Link { readonly client: Socket; readonly upstream: Socket; stalled: boolean }

/** Counts of what the proxy did. */
interface ChaosCounts { accepted: number; dropped: number; stalled: number; reset: number }

/**
 * A TCP proxy on 127.0.0.1 that forwards bytes both ways and, when told, drops a connection
 * (destroy), stalls it (stops reading both sides) or resets it (RST).
 */
class ChaosProxy {
  readonly counts: ChaosCounts = { accepted: 0, dropped: 0, stalled: 0, reset: 0 };
  private readonly links = new Set<Link>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private server: Server | undefined;

  async start(targetPort: number): Promise<number> {
    const server = createServer((client) => this.accept(client, targetPort));
    this.server = server;
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const addr = server.address();
    if (addr === null || typeof addr !== 'object') throw new Error('no proxy port');
    return addr.port;
  }

  private accept(client: Socket, targetPort: number): void {
    this.counts.accepted++;
    const upstream = connect(targetPort, '127.0.0.1');
    const link: Link = { client, upstream, stalled: false };
    this.links.add(link);
    const forward = (from: Socket, to: Socket) => {
      from.on('data', (b: Buffer) => {
        if (!to.write(b)) from.pause();
      });
      to.on('drain', () => {
        if (!link.stalled) from.resume();
      });
    };
    forward(client, upstream);
    forward(upstream, client);
    const close = () => {
      this.links.delete(link);
      client.destroy();
      upstream.destroy();
    };
    for (const s of [client, upstream]) {
      s.on('error', close);
      s.on('close', close);
      s.on('end', close);
    }
  }

  /** Open connections not stalled right now. */
  live(): Link[] {
    return [...this.links].filter((l) => !l.stalled && !l.client.destroyed);
  }

  drop(l: Link): void {
    this.counts.dropped++;
    l.client.destroy();
    l.upstream.destroy();
  }

  reset(l: Link): void {
    this.counts.reset++;
    // Node 20 has resetAndDestroy (RST instead of FIN); fall back to destroy elsewhere.
    for (const s of [l.client, l.upstream]) {
      if (typeof s.resetAndDestroy === 'function') s.resetAndDestroy();
      else s.destroy();
    }
  }

  stall(l: Link, ms: number): void {
    this.counts.stalled++;
    l.stalled = true;
    l.client.pause();
    l.upstream.pause();
    const t = setTimeout(() => {
      this.timers.delete(t);
      l.stalled = false;
      l.client.resume();
      l.upstream.resume();
    }, ms);
    this.timers.add(t);
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    for (const l of this.links) this.drop(l);
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}

/** A temp store with the group and one launched instance row per agent (unknown ids are refused). */
function seedStore(ids: readonly string[]): { db: Db; dbPath: string } {
  const dbPath = join(tempDir('autoscaler-chaos-'), 'a.db');
  const db = openStore(dbPath);
  cleanup.push(() => { db.close(); });
  const now = Date.now();
  new GroupStore(db).upsert(testGroup({ id: GROUP, minSize: 0, maxSize: AGENTS }), now);
  new InstanceStore(db).insertLaunched(GROUP, ids.map((id) => ({ id, providerState: 'running' })), 'launched', 'test', now);
  return { db, dbPath };
}

async function startMonitor(dbPath: string, grpcPort: number): Promise<{ proc: CliProcess; port: number }> {
  const proc = startCli(['monitor-server'], {
    AUTOSCALER_DB: dbPath, MONITOR_GRPC_PORT: String(grpcPort), MONITOR_HTTP_PORT: '0',
    MONITOR_HEARTBEAT_INTERVAL_MS: String(HEARTBEAT_MS), MONITOR_FLUSH_INTERVAL_MS: '50',
    // Stalls of 3 s must not make anyone dead: this test is about data, not liveness.
    MONITOR_SUSPECT_AFTER_MS: '10000', MONITOR_DEAD_AFTER_MS: '20000', LOG_LEVEL: 'info',
  });
  cleanup.push(() => proc.stop());
  const listening = await waitFor('monitor server listening', () => proc.logs().find((l) => l.msg === 'monitor server listening'), 15_000);
  const port = Number(String(listening.grpcAddress).split(':').pop());
  return { proc, port };
}

function startAgents(ids: readonly string[], server: string): CliProcess[] {
  return ids.map((id) => {
    const agent = startCli(['agent', '--simulate', '--exit-with-parent'], {
      AGENT_SERVER: server, AGENT_GROUP: GROUP, AGENT_INSTANCE_ID: id,
      AGENT_INTERVAL_MS: String(HEARTBEAT_MS), AGENT_RECONNECT_MIN_MS: '50', AGENT_RECONNECT_MAX_MS: '500',
      // Large enough that no outage here overflows it: a drop would be a gap.
      AGENT_BUFFER_SIZE: '100000', LOG_LEVEL: 'info',
    });
    cleanup.push(() => agent.stop());
    return agent;
  });
}

interface SeqSummary { instance_id: string; n: number; distinct_seqs: number; min_seq: number; max_seq: number }

const seqSummary = (db: Db): SeqSummary[] => db.prepare(`SELECT instance_id, COUNT(*) AS n, COUNT(DISTINCT seq) AS distinct_seqs,
  MIN(seq) AS min_seq, MAX(seq) AS max_seq FROM samples GROUP BY instance_id ORDER BY instance_id`).all() as SeqSummary[];

/** Wait until every instance has a stored sample taken at or after `t`: each agent has caught up. */
async function caughtUp(db: Db, ids: readonly string[], t: number, what: string): Promise<void> {
  const stmt = db.prepare<[number], { n: number }>('SELECT COUNT(*) AS n FROM latest WHERE sample_at >= ?');
  await waitFor(what, () => stmt.get(t)?.n === ids.length, 30_000, 100);
}

interface ReporterSummary { sampled: number; acked: number; dropped: number; buffered: number; connects: number; lastPersistedSeq: number }

/** SIGTERM every agent and read the counters its reporter logs when it stops. */
async function stopAgents(agents: readonly CliProcess[]): Promise<ReporterSummary[]> {
  await Promise.all(agents.map((a) => a.stop(10_000)));
  return agents.map((a, k) => {
    const line = a.logs().find((l) => l.msg === 'reporter stopped');
    if (line === undefined) throw new Error(`agent ${k} logged no "reporter stopped" line:\n${a.output().slice(-2_000)}`);
    return line as unknown as ReporterSummary;
  });
}

/** Samples replayed after a reconnection: the `replaying` count of every registration but the first of each agent. */
function replayed(agents: readonly CliProcess[], after = 1): { reconnects: number; replayedSamples: number } {
  let reconnects = 0;
  let replayedSamples = 0;
  for (const a of agents) {
    const regs = a.logs().filter((l) => l.msg === 'registered');
    for (const r of regs.slice(after)) {
      reconnects++;
      replayedSamples += Number(r.replaying ?? 0);
    }
  }
  return { reconnects, replayedSamples };
}

/**
 * The exactly-once check. Per instance: no seq twice, seqs exactly 1..N (no gap: nothing the agent
 * took was lost), everything the agent was acked is stored (lastPersistedSeq ≤ N), and everything
 * it no longer holds is stored (N ≥ sampled − buffered; no sample was dropped from its buffer).
 */
function expectExactlyOnce(db: Db, ids: readonly string[], reporters: readonly ReporterSummary[]): number {
  const rows = seqSummary(db);
  expect(rows.map((r) => r.instance_id)).toEqual([...ids].sort());
  const byId = new Map(rows.map((r) => [r.instance_id, r]));
  let stored = 0;
  ids.forEach((id, k) => {
    const r = byId.get(id) as SeqSummary;
    const rep = reporters[k] as ReporterSummary;
    const facts = { id, ...r, ...rep };
    expect(r.n, `duplicate seq: ${JSON.stringify(facts)}`).toBe(r.distinct_seqs);
    expect(r.min_seq, `missing first seqs: ${JSON.stringify(facts)}`).toBe(1);
    expect(r.max_seq, `gap in seqs: ${JSON.stringify(facts)}`).toBe(r.n);
    expect(rep.dropped, `agent dropped samples: ${JSON.stringify(facts)}`).toBe(0);
    expect(rep.lastPersistedSeq, `acked but not stored: ${JSON.stringify(facts)}`).toBeLessThanOrEqual(r.max_seq);
    expect(r.n, `sampled, not buffered, not stored: ${JSON.stringify(facts)}`).toBeGreaterThanOrEqual(rep.sampled - rep.buffered);
    expect(r.n).toBeLessThanOrEqual(rep.sampled);
    stored += r.n;
  });
  return stored;
}

const instanceIds = (prefix: string) => Array.from({ length: AGENTS }, (_, k) => `${prefix}-${String(k + 1).padStart(2, '0')}`);

describe('fault injection with real processes', () => {
  it('a proxy that drops, stalls and resets connections: every acked sample stored exactly once, buffered ones replayed', async () => {
    const ids = instanceIds('px');
    const { db, dbPath } = seedStore(ids);
    const monitor = await startMonitor(dbPath, 0);
    const proxy = new ChaosProxy();
    cleanup.push(() => proxy.close());
    const proxyPort = await proxy.start(monitor.port);
    const agents = startAgents(ids, `127.0.0.1:${proxyPort}`);
    await caughtUp(db, ids, 0, 'every agent storing samples');

    const rand = prng(7);
    const chaosEnd = Date.now() + CHAOS_MS;
    const maxFaults = Math.ceil(CHAOS_MS / FAULT_GAP_MS[0]);
    for (let n = 0; n < maxFaults && Date.now() < chaosEnd; n++) {
      await sleep(between(rand, FAULT_GAP_MS));
      const live = proxy.live();
      const pick = live[Math.floor(rand() * live.length)];
      if (pick === undefined) continue;
      const roll = rand();
      // One in ten: every open connection at once (a monitor-side blip for the whole fleet).
      if (roll < 0.1) for (const l of live) proxy.reset(l);
      else if (roll < 0.4) proxy.drop(pick);
      else if (roll < 0.7) proxy.stall(pick, between(rand, STALL_MS));
      else proxy.reset(pick);
    }
    const cleanFrom = Date.now() + STALL_MS[1];
    await caughtUp(db, ids, cleanFrom + HEARTBEAT_MS, 'every agent caught up after the faults');
    const reporters = await stopAgents(agents);
    await monitor.proc.stop();
    const stored = expectExactlyOnce(db, ids, reporters);
    const { reconnects, replayedSamples } = replayed(agents);
    console.log(JSON.stringify({
      test: 'proxy', connections: proxy.counts, reconnects, replayedSamples, stored,
      acked: reporters.reduce((n, r) => n + r.acked, 0), sampled: reporters.reduce((n, r) => n + r.sampled, 0),
    }));
    // The faults happened and were felt: agents reconnected and replayed what they held.
    expect(proxy.counts.dropped + proxy.counts.reset).toBeGreaterThan(AGENTS);
    expect(proxy.counts.stalled).toBeGreaterThanOrEqual(4);
    expect(reconnects).toBeGreaterThan(AGENTS);
    expect(replayedSamples).toBeGreaterThan(0);
  }, 90_000);

  it('kill -9 of the monitor server while 20 agents stream, restarted on the same file and port: the same', async () => {
    const ids = instanceIds('kx');
    const { db, dbPath } = seedStore(ids);
    const port = await freePort();
    const first = await startMonitor(dbPath, port);
    const agents = startAgents(ids, `127.0.0.1:${port}`);
    const atLeast = db.prepare<[number], { n: number }>('SELECT COUNT(*) AS n FROM latest WHERE seq >= ?');
    await waitFor('every agent has 10 samples stored', () => atLeast.get(10)?.n === AGENTS, 30_000, 100);

    first.proc.child.kill('SIGKILL');
    expect(await first.proc.exited).toMatchObject({ signal: 'SIGKILL' });
    const storedAtKill = seqSummary(db).reduce((n, r) => n + r.n, 0);
    await sleep(DOWN_MS);
    const second = await startMonitor(dbPath, port);
    const restartedAt = Date.now();
    await caughtUp(db, ids, restartedAt + HEARTBEAT_MS, 'every agent caught up after the restart');
    const reporters = await stopAgents(agents);
    await second.proc.stop();
    const stored = expectExactlyOnce(db, ids, reporters);
    // Registrations after the restart are the second of each agent (no other fault here).
    const { reconnects, replayedSamples } = replayed(agents);
    console.log(JSON.stringify({
      test: 'kill-9', storedAtKill, reconnects, replayedSamples, stored,
      acked: reporters.reduce((n, r) => n + r.acked, 0), sampled: reporters.reduce((n, r) => n + r.sampled, 0),
    }));
    expect(reconnects).toBeGreaterThanOrEqual(AGENTS);
    // Two seconds down at four samples a second: every agent had something to replay.
    expect(replayedSamples).toBeGreaterThanOrEqual(AGENTS * 2);
    expect(stored).toBeGreaterThan(storedAtKill + replayedSamples / 2);
  }, 60_000);
});
