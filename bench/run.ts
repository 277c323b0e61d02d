/**
 * Benchmarks: `npm run bench` (or `node dist/bench/run.js [name…]`). Each prints its figures;
 * the README's performance table quotes them. Every loop is bounded in count and time, and all
 * traffic stays on 127.0.0.1.
 *
 *   store    batched sample writes to SQLite (rows/s by batch size)
 *   grpc     heartbeats through a real monitor-server process (throughput, server CPU per heartbeat, RSS)
 *   status   status report over 1,000 instances (ms)
 *   policy   observe + decide over 1,000 ready instances (µs each)
 *   agent    a simulated agent's footprint (RSS, CPU) at 1 Hz
 *   controller  one controller evaluation of 100 groups × 100 instances (ms)
 */
import * as grpc from '@grpc/grpc-js';
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { loadControllerConfig } from '../config/controller.js';
import { Controller } from '../controller/loop.js';
import { decide } from '../controller/policy/engine.js';
import type { InstanceProvider, ProviderInstance } from '../controller/providers/types.js';
import { createLogger } from '../lib/logger.js';
import { ComponentStore } from '../store/components.js';
import { observe } from '../controller/policy/observe.js';
import { EMPTY_POLICY_STATE, type PolicyState } from '../controller/policy/types.js';
import { parseGroup, type GroupDocument } from '../domain/policy.js';
import { cliEntry } from '../lib/paths.js';
import { SESSION_METADATA_KEY, monitorProto, type HeartbeatAck__Output } from '../lib/proto.js';
import { openStore } from '../store/db.js';
import { GroupStore } from '../store/groups.js';
import { InstanceStore } from '../store/instances.js';
import { StatusReader } from '../store/status.js';
import { TelemetryStore, type SampleRecord } from '../store/telemetry.js';

const parsedSpec = parseGroup({ id: 'bench', minSize: 1, maxSize: 10_000 });
if (!parsedSpec.ok) throw new Error('bench group document is invalid');
const spec: GroupDocument = parsedSpec.value;
const CLK_TCK = 100; // Linux USER_HZ
const results: { bench: string; metric: string; value: string }[] = [];
const report = (bench: string, metric: string, value: string) => {
  results.push({ bench, metric, value });
  process.stdout.write(`${bench.padEnd(8)} ${metric.padEnd(48)} ${value}\n`);
};

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'autoscaler-bench-'));
}

function procStats(pid: number): { cpuMs: number; rssMiB: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]); // utime + stime
  const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return { cpuMs: (ticks * 1000) / CLK_TCK, rssMiB: Number(rss?.[1] ?? 0) / 1024 };
}

/** The group and its instance rows, as the controller would have written them at launch (the monitor server refuses unknown ids). */
function seedGroup(dbPath: string, instances: number, ids: readonly string[] = []): void {
  const db = openStore(dbPath);
  new GroupStore(db).upsert(spec, Date.now());
  const all = [...Array.from({ length: instances }, (_, i) => `i-${i}`), ...ids];
  new InstanceStore(db).insertLaunched(spec.id, all.map((id) => ({ id, providerState: 'running' })), 'launched', 'bench', Date.now());
  db.close();
}

async function benchStore(): Promise<void> {
  const dir = tmp();
  const dbPath = join(dir, 'a.db');
  seedGroup(dbPath, 1_000);
  const db = openStore(dbPath);
  const t = new TelemetryStore(db);
  let seq = 0;
  for (const batchSize of [1, 100, 1_000]) {
    const total = batchSize === 1 ? 20_000 : 100_000;
    const start = performance.now();
    for (let done = 0; done < total; done += batchSize) {
      const batch: SampleRecord[] = [];
      for (let k = 0; k < batchSize; k++) {
        seq++;
        batch.push({ instanceId: `i-${seq % 1_000}`, seq, sampleAt: seq, receivedAt: seq, cpu: 50, mem: 30 });
      }
      t.writeBatch(batch);
    }
    const s = (performance.now() - start) / 1000;
    report('store', `sample + latest upsert, batches of ${batchSize}`, `${Math.round(total / s).toLocaleString('en-US')} rows/s`);
  }
  db.close();
  rmSync(dir, { recursive: true, force: true });
  benchStoreFleet();
}

/**
 * The ingest write as a 10,000-agent fleet makes it: 10,000 instances, batches of 2,000 rows (200 ms
 * of heartbeats at 10,000/s), each instance once per batch, one sample per second of sample time.
 * CPU time per row (this process's user + system), the median of 100 batches: less sensitive to a
 * busy machine than wall time.
 */
function benchStoreFleet(): void {
  const dir = tmp();
  const dbPath = join(dir, 'a.db');
  const instances = 10_000;
  const batchSize = 2_000;
  seedGroup(dbPath, instances);
  const db = openStore(dbPath);
  const t = new TelemetryStore(db);
  const perRow: number[] = [];
  let seq = 0;
  let at = Date.UTC(2026, 0, 1);
  for (let b = 0; b < 100; b++) {
    const batch: SampleRecord[] = [];
    for (let k = 0; k < batchSize; k++) {
      const i = (b * batchSize + k) % instances;
      if (i === 0) {
        seq++;
        at += 1_000;
      }
      batch.push({ instanceId: `i-${i}`, seq, sampleAt: at + k / 10, receivedAt: at + 5, cpu: 50 + (k % 40), mem: 30 });
    }
    const cpu0 = process.cpuUsage();
    t.writeBatch(batch);
    const d = process.cpuUsage(cpu0);
    perRow.push((d.user + d.system) / batchSize);
  }
  perRow.sort((x, y) => x - y);
  report('store', `fleet-shaped: ${instances.toLocaleString('en-US')} instances, batches of ${batchSize.toLocaleString('en-US')}, CPU per row (median of 100)`, `${(perRow[50] as number).toFixed(1)} µs`);
  db.close();
  rmSync(dir, { recursive: true, force: true });
}

async function startMonitor(dbPath: string): Promise<{ pid: number; port: number; stop: () => Promise<void> }> {
  const logFd = openSync(`${dbPath}.monitor.log`, 'a');
  const child = spawn(process.execPath, [cliEntry(), 'monitor-server'], {
    env: { ...process.env, AUTOSCALER_DB: dbPath, MONITOR_GRPC_PORT: '0', MONITOR_HTTP_PORT: '0', LOG_LEVEL: 'warn',
      MONITOR_SUSPECT_AFTER_MS: '600000', MONITOR_DEAD_AFTER_MS: '900000', MONITOR_HEARTBEAT_INTERVAL_MS: '1000' },
    stdio: ['ignore', logFd, logFd],
  });
  closeSync(logFd);
  // The listening line is logged at info; read the address from the store instead.
  const deadline = Date.now() + 15_000;
  for (;;) {
    const db = openStore(dbPath);
    const row = db.prepare("SELECT info FROM components WHERE name = 'monitor-server'").get() as { info: string } | undefined;
    db.close();
    if (row !== undefined) {
      const port = Number(String((JSON.parse(row.info) as { grpcAddress: string }).grpcAddress).split(':').pop());
      return {
        pid: child.pid as number,
        port,
        stop: () => new Promise((r) => { child.once('exit', () => r()); child.kill('SIGTERM'); }),
      };
    }
    if (Date.now() > deadline) throw new Error('monitor server did not start');
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function benchGrpc(streams = 500, perStream = 200): Promise<void> {
  const dir = tmp();
  const dbPath = join(dir, 'a.db');
  seedGroup(dbPath, streams);
  const monitor = await startMonitor(dbPath);
  const Ctor = monitorProto().monitor.v1.Monitor;
  const client = new Ctor(`127.0.0.1:${monitor.port}`, grpc.credentials.createInsecure());
  const sessions = await Promise.all(Array.from({ length: streams }, (_, i) => new Promise<string>((resolve, reject) =>
    client.Register({ instance_id: `i-${i}`, group_id: spec.id, agent_version: 'bench', address: '127.0.0.1' }, (err, res) => (err || !res ? reject(err) : resolve(res.session_id))))));
  const idle = procStats(monitor.pid);
  const start = performance.now();
  let acks = 0;
  await Promise.race([
    Promise.all(sessions.map((sid) => new Promise<void>((resolve, reject) => {
      const md = new grpc.Metadata();
      md.set(SESSION_METADATA_KEY, sid);
      const s = client.Heartbeats(md);
      s.on('data', (a: HeartbeatAck__Output) => {
        acks++;
        if (Number(a.persisted_seq) === perStream) { s.end(); resolve(); }
      });
      s.on('error', reject);
      const now = Date.now();
      for (let seq = 1; seq <= perStream; seq++) s.write({ seq, sample_time_ms: now, cpu_percent: 50, mem_percent: 30 });
    }))),
    new Promise((_, reject) => setTimeout(() => reject(new Error('grpc bench exceeded 120 s')), 120_000).unref()),
  ]);
  const seconds = (performance.now() - start) / 1000;
  const busy = procStats(monitor.pid);
  const total = streams * perStream;
  report('grpc', `${streams} streams × ${perStream} heartbeats, stored + acked`, `${Math.round(total / seconds).toLocaleString('en-US')} heartbeats/s`);
  report('grpc', 'monitor-server CPU per heartbeat', `${(((busy.cpuMs - idle.cpuMs) * 1000) / total).toFixed(1)} µs`);
  report('grpc', `acks sent for ${total.toLocaleString('en-US')} heartbeats (batched)`, acks.toLocaleString('en-US'));
  report('grpc', `monitor-server RSS with ${streams} streams`, `${busy.rssMiB.toFixed(0)} MiB`);
  client.close();
  await monitor.stop();
  rmSync(dir, { recursive: true, force: true });
}

async function benchStatus(): Promise<void> {
  const dir = tmp();
  const dbPath = join(dir, 'a.db');
  seedGroup(dbPath, 1_000);
  const db = openStore(dbPath);
  new TelemetryStore(db).writeBatch(Array.from({ length: 1_000 }, (_, i) => ({ instanceId: `i-${i}`, seq: 1, sampleAt: 1, receivedAt: 1, cpu: 50, mem: 30 })));
  const reader = new StatusReader(db);
  const n = 50;
  const start = performance.now();
  for (let i = 0; i < n; i++) reader.report(Date.now());
  report('status', 'status report, 1,000 instances (from `latest`)', `${((performance.now() - start) / n).toFixed(2)} ms`);
  db.close();
  rmSync(dir, { recursive: true, force: true });
}

async function benchPolicy(): Promise<void> {
  // observe() + decide() (every policy, then combine) over 1,000 ready instances, as the loop runs them.
  const rows = Array.from({ length: 1_000 }, (_, i) => ({ id: `i-${i}`, state: 'running', cpu: 30 + (i % 50), mem: 40, sampleAt: 0, registeredAt: 0 }));
  const n = 5_000;
  const start = performance.now();
  let state: PolicyState = EMPTY_POLICY_STATE;
  for (let i = 0; i < n; i++) {
    const now = 1_000_000 + i * 1_000;
    const obs = observe({ instances: rows.map((r) => ({ ...r, sampleAt: now })), inFlight: 0, minSize: 1, maxSize: 10_000, warmupMs: 0, metricMaxAgeMs: 30_000, now });
    state = decide(obs, spec.policy, state, now).state;
  }
  report('policy', 'observe + decide, 1,000 ready instances', `${(((performance.now() - start) * 1000) / n).toFixed(1)} µs/evaluation`);
}

async function benchAgent(): Promise<void> {
  const dir = tmp();
  const dbPath = join(dir, 'a.db');
  seedGroup(dbPath, 0, ['agent-bench']);
  const monitor = await startMonitor(dbPath);
  const agent = spawn(process.execPath, [cliEntry(), 'agent', '--simulate'], {
    env: { ...process.env, AGENT_SERVER: `127.0.0.1:${monitor.port}`, AGENT_GROUP: spec.id, AGENT_INSTANCE_ID: 'agent-bench', LOG_LEVEL: 'warn' },
    stdio: 'ignore',
  });
  await new Promise((r) => setTimeout(r, 3_000)); // warm up: registered, streaming
  const a = procStats(agent.pid as number);
  const windowMs = 30_000;
  await new Promise((r) => setTimeout(r, windowMs));
  const b = procStats(agent.pid as number);
  report('agent', 'simulated agent RSS at 1 Hz', `${b.rssMiB.toFixed(0)} MiB`);
  report('agent', 'simulated agent CPU at 1 Hz', `${(((b.cpuMs - a.cpuMs) / windowMs) * 100).toFixed(2)} % of a core`);
  await new Promise<void>((r) => { agent.once('exit', () => r()); agent.kill('SIGTERM'); });
  await monitor.stop();
  rmSync(dir, { recursive: true, force: true });
}

/** One controller evaluation of every group: 100 groups × 100 running instances, each with a fresh sample. */
async function benchController(): Promise<void> {
  const groups = 100;
  const per = 100;
  const dir = tmp();
  const db = openStore(join(dir, 'a.db'));
  const now = Date.now();
  const listing = new Map<string, ProviderInstance[]>();
  const groupStore = new GroupStore(db);
  const instances = new InstanceStore(db);
  const telemetry = new TelemetryStore(db);
  for (let g = 0; g < groups; g++) {
    const id = `g${g}`;
    groupStore.upsert({ ...spec, id, minSize: per, maxSize: per * 2 }, now);
    const rows: ProviderInstance[] = [];
    for (let i = 0; i < per; i++) rows.push({ id: `${id}-i${i}`, groupId: id, state: 'running', detail: 'running', zone: `z${i % 3}`, launchedAt: now });
    instances.insertLaunched(id, rows.map((r) => ({ id: r.id, providerState: 'running', zone: r.zone, launchedAt: now })), 'launched', 'bench', now);
    for (const r of rows) instances.register({ id: r.id, groupId: id, address: '127.0.0.1', agentVersion: 'bench' }, now);
    listing.set(id, rows);
  }
  // A provider that lists what it was told and accepts everything, so the bench measures the controller.
  const provider: InstanceProvider = {
    name: 'bench', lifecycle: 'controller', instancesEndWithController: false,
    verify: async () => {}, setDesiredCapacity: async () => {}, close: async () => {},
    launch: async () => ({ instances: [] }), terminate: async (r) => ({ accepted: [...r.ids], failed: [] }),
    list: async (groupId) => ({ instances: listing.get(groupId) ?? [] }),
  };
  const cfg = loadControllerConfig({ env: { AUTOSCALER_DB: join(dir, 'a.db'), CONTROLLER_GROUPS_FILE: '' } });
  const controller = new Controller({ ...cfg, seeds: [] }, db, provider, { now: () => Date.now() }, createLogger({ level: 'silent', process: 'bench' }));
  controller.init();
  const times: number[] = [];
  let seq = 0;
  for (let n = 0; n < 12; n++) {
    const at = Date.now();
    new ComponentStore(db).beat({ name: 'monitor-server', pid: 1, startedAt: 0, info: {} }, at);
    seq++;
    const batch: SampleRecord[] = [];
    for (const rows of listing.values()) for (const r of rows) batch.push({ instanceId: r.id, seq, sampleAt: at, receivedAt: at, cpu: 45 + (seq % 10), mem: 40 });
    telemetry.writeBatch(batch);
    const start = performance.now();
    await controller.tick();
    if (n >= 2) times.push(performance.now() - start); // the first two warm the JIT and the statement cache
  }
  times.sort((a, b) => a - b);
  report('controller', `evaluation, ${groups} groups × ${per} instances (median of ${times.length})`, `${(times[Math.floor(times.length / 2)] ?? 0).toFixed(1)} ms (min ${(times[0] ?? 0).toFixed(1)}, max ${(times.at(-1) ?? 0).toFixed(1)})`);
  db.close();
  rmSync(dir, { recursive: true, force: true });
}

const benches: Record<string, () => Promise<void>> = { store: benchStore, grpc: () => benchGrpc(), status: benchStatus, policy: benchPolicy, agent: benchAgent, controller: benchController };

async function main(): Promise<void> {
  const wanted = process.argv.slice(2);
  const names = wanted.length > 0 ? wanted : Object.keys(benches);
  process.stdout.write(`node ${process.version}, ${(await import('node:os')).cpus().length} cores\n`);
  for (const name of names) {
    const run = benches[name];
    if (run === undefined) throw new Error(`unknown bench "${name}": ${Object.keys(benches).join(', ')}`);
    await run();
  }
  process.stdout.write(`\n| bench | metric | value |\n|---|---|---|\n${results.map((r) => `| ${r.bench} | ${r.metric} | ${r.value} |`).join('\n')}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
