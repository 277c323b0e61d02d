/**
 * The agent's footprint with the real sampler: `node dist/bench/agent-rss.js [--seconds 60]
 * [--flags="<node flags>"]… [--before <dir>] [--monitor-from <dir>]` (build first).
 *
 * Starts a real monitor server (a `dist/cli/main.js monitor-server` process on 127.0.0.1 port 0,
 * heartbeats at 1 Hz) and, side by side so that they share the machine's noise, one agent process
 * per variant, each reporting this machine's real CPU and memory (not --simulate): the lean entry
 * (dist/agent/cli/main.js) bare and with the Node flags of deploy/systemd/autoscaler-agent.service,
 * `dist/cli/main.js agent` bare and with those flags, and the lean entry with the
 * systeminformation sampler. Over one window it reads /proc/PID/stat (CPU ticks) and
 * /proc/PID/status (VmRSS, RssAnon and RssFile each second, VmHWM at the end), and prints a table.
 * RssFile is mostly pages of the node binary: shared with other node processes and evictable,
 * while RssAnon (heap, stacks, malloc) is the agent's own.
 *
 *   --flags="…"        adds the lean entry with these Node flags (words like MALLOC_ARENA_MAX=2 go
 *                      to its environment); repeatable
 *   --before <dir>     adds `<dir>/dist/cli/main.js agent`: an older build of this package
 *                      and, when that build has it, its lean entry with its own unit's Node flags
 *                      (`git archive <commit> | tar -x -C <dir>`, then build there)
 *   --monitor-from <dir>  runs the monitor server of that build instead of this one
 *
 * Bounded: 15 s to start, the window (default 60 s), 10 s to stop; a watchdog ends it all at 170 s.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { parseGroup } from '../domain/policy.js';
import { packageRoot } from '../lib/paths.js';
import { openStore } from '../store/db.js';
import { GroupStore } from '../store/groups.js';
import { InstanceStore } from '../store/instances.js';

/** Linux USER_HZ: /proc/PID/stat counts CPU time in these ticks. */
const CLK_TCK = 100;
/** The Node flags of deploy/systemd/autoscaler-agent.service's ExecStart (between node and the script). */
function unitNodeFlags(root = packageRoot()): string[] {
  const unit = readFileSync(join(root, 'deploy', 'systemd', 'autoscaler-agent.service'), 'utf8');
  const m = /^ExecStart=\S+\/node((?: --\S+)*) \S+$/m.exec(unit);
  if (m === null) throw new Error('cannot read the Node flags from the ExecStart of deploy/systemd/autoscaler-agent.service');
  return (m[1] ?? '').split(' ').filter(Boolean);
}
const START_TIMEOUT_MS = 15_000;
/** After the first stored heartbeat, before the window opens: connections up, start-up garbage collected. */
const WARMUP_MS = 5_000;
const STOP_TIMEOUT_MS = 10_000;
const WATCHDOG_MS = 170_000;
const GROUP = 'bench';

interface Variant {
  readonly name: string;
  /** Arguments after `node`. */
  readonly args: readonly string[];
  /** Extra environment (e.g. MALLOC_ARENA_MAX). */
  readonly env?: Readonly<Record<string, string>>;
}

interface Running extends Variant {
  readonly id: string;
  readonly child: ChildProcess;
  readonly log: string;
}

interface Row {
  readonly name: string;
  readonly sampler: string;
  readonly rssMedianMiB: number;
  readonly rssMaxMiB: number;
  /** Medians of RssAnon (private: heap, stacks, malloc) and RssFile (mapped files, mostly the node binary: shared and evictable). */
  readonly anonMedianMiB: number;
  readonly fileMedianMiB: number;
  readonly hwmMiB: number;
  readonly cpuPercent: number;
  readonly heartbeats: number;
}

interface Status {
  readonly rssKiB: number;
  readonly anonKiB: number;
  readonly fileKiB: number;
  readonly hwmKiB: number;
}

function status(pid: number): Status {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? Number.NaN);
  return { rssKiB: kib('VmRSS'), anonKiB: kib('RssAnon'), fileKiB: kib('RssFile'), hwmKiB: kib('VmHWM') };
}

function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]); // utime + stime
}

/** The environment without this machine's autoscaler settings, so every child sees the same. */
function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(AGENT_|MONITOR_|CONTROLLER_|GROUP_|LOCAL_|AUTOSCALER_|NODE_OPTIONS$)/.test(k)));
}

function spawnLogged(args: readonly string[], env: NodeJS.ProcessEnv, logPath: string, cwd: string): ChildProcess {
  const fd = openSync(logPath, 'a');
  const child = spawn(process.execPath, args, { env, cwd, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  return child;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}

/** A monitor server process on a port the OS picks; its gRPC port read from the store. */
async function startMonitor(dir: string, dbPath: string, root: string): Promise<{ child: ChildProcess; port: number }> {
  const env = { ...cleanEnv(), AUTOSCALER_DB: dbPath, MONITOR_GRPC_PORT: '0', MONITOR_HTTP_PORT: '0', LOG_LEVEL: 'warn',
    MONITOR_HEARTBEAT_INTERVAL_MS: '1000', MONITOR_SUSPECT_AFTER_MS: '600000', MONITOR_DEAD_AFTER_MS: '900000' };
  const child = spawnLogged([join(root, 'dist', 'cli', 'main.js'), 'monitor-server'], env, join(dir, 'monitor.log'), dir);
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    const db = openStore(dbPath, { readonly: true });
    const row = db.prepare("SELECT info FROM components WHERE name = 'monitor-server'").get() as { info: string } | undefined;
    db.close();
    if (row !== undefined) return { child, port: Number((JSON.parse(row.info) as { grpcAddress: string }).grpcAddress.split(':').pop()) };
    if (child.exitCode !== null) break;
    await sleep(100);
  }
  await stopChild(child);
  throw new Error(`monitor server did not start; see ${join(dir, 'monitor.log')}`);
}

/**
 * The lean entry with the systeminformation sampler in place of /proc: the same modules, plus
 * the sampler the agent used before, through runAgent's `sampler` option.
 */
function systemSamplerScript(): string {
  const dist = (p: string) => JSON.stringify(new URL(`file://${join(packageRoot(), 'dist', p)}`).href);
  return `
    const { loadAgentConfig } = await import(${dist('config/agent.js')});
    const { createLogger } = await import(${dist('lib/logger.js')});
    const { runAgent } = await import(${dist('agent/main.js')});
    const { SystemSampler } = await import(${dist('agent/sampler.js')});
    const cfg = loadAgentConfig({ env: process.env });
    const log = createLogger({ level: cfg.logLevel, process: 'agent' });
    const agent = runAgent(cfg, log, undefined, { sampler: new SystemSampler() });
    process.on('SIGTERM', () => void agent.stop('signal').then(() => process.exit()));
  `;
}

/** An older build: its `cli/main.js agent`, and its lean entry run as its own unit runs it. */
function beforeVariants(dir: string): Variant[] {
  const lean = join(dir, 'dist', 'agent', 'cli', 'main.js');
  const flags = existsSync(lean) ? unitNodeFlags(dir) : [];
  return [
    { name: `before: ${dir}/dist/cli/main.js agent`, args: [join(dir, 'dist', 'cli', 'main.js'), 'agent'] },
    ...(existsSync(lean) ? [{ name: `before: ${dir}/dist/agent/cli/main.js ${flags.join(' ')}`, args: [...flags, lean] }] : []),
  ];
}

function variants(extraFlags: readonly string[], before: string | undefined): Variant[] {
  const entry = join(packageRoot(), 'dist', 'agent', 'cli', 'main.js');
  const unitFlags = unitNodeFlags();
  return [
    { name: 'dist/agent/cli/main.js', args: [entry] },
    { name: `dist/agent/cli/main.js ${unitFlags.join(' ')} (the unit)`, args: [...unitFlags, entry] },
    ...extraFlags.map((flags): Variant => {
      const words = flags.split(/\s+/).filter(Boolean);
      const isEnv = (w: string) => /^[A-Z_][A-Z0-9_]*=/.test(w);
      const env = Object.fromEntries(words.filter(isEnv).map((w) => [w.slice(0, w.indexOf('=')), w.slice(w.indexOf('=') + 1)]));
      return { name: `dist/agent/cli/main.js ${flags}`, args: [...words.filter((w) => !isEnv(w)), entry], env };
    }),
    { name: 'dist/cli/main.js agent', args: [join(packageRoot(), 'dist', 'cli', 'main.js'), 'agent'] },
    { name: `dist/cli/main.js agent ${unitFlags.join(' ')}`, args: [...unitFlags, join(packageRoot(), 'dist', 'cli', 'main.js'), 'agent'] },
    { name: 'dist/agent/cli/main.js, systeminformation sampler', args: ['--input-type=module', '-e', systemSamplerScript()] },
    ...(before !== undefined ? beforeVariants(before) : []),
  ];
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? Number.NaN : ((s[Math.floor((s.length - 1) / 2)] ?? 0) + (s[Math.ceil((s.length - 1) / 2)] ?? 0)) / 2;
};

/** The sampler an agent says it runs, from its "agent starting" log line. */
function loggedSampler(logPath: string): string {
  for (const line of readFileSync(logPath, 'utf8').split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const o = JSON.parse(line) as { msg?: unknown; sampler?: unknown };
      if (o.msg === 'agent starting') return String(o.sampler);
    } catch { /* not a log line */ }
  }
  return '?';
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: {
    seconds: { type: 'string', default: '60' },
    flags: { type: 'string', multiple: true, default: [] },
    before: { type: 'string' },
    'monitor-from': { type: 'string' },
  } });
  const windowS = Number(values.seconds);
  if (!Number.isInteger(windowS) || windowS < 5 || windowS > 120) throw new Error('--seconds must be a whole number within 5..120');
  const dir = mkdtempSync(join(tmpdir(), 'autoscaler-agent-rss-'));
  const dbPath = join(dir, 'a.db');
  const list = variants(values.flags, values.before);
  const ids = list.map((_, i) => `agent-${i + 1}`);
  const parsed = parseGroup({ id: GROUP, minSize: 1, maxSize: 100 });
  if (!parsed.ok) throw new Error('bench group document is invalid');
  const db = openStore(dbPath);
  new GroupStore(db).upsert(parsed.value, Date.now());
  // The monitor server accepts only instances the controller recorded.
  new InstanceStore(db).insertLaunched(GROUP, ids.map((id) => ({ id, providerState: 'running' })), 'launched', 'bench', Date.now());
  db.close();

  const children: ChildProcess[] = [];
  const watchdog = setTimeout(() => {
    process.stderr.write(`agent-rss: over ${WATCHDOG_MS / 1000} s, giving up\n`);
    for (const c of children) c.kill('SIGKILL');
    process.exit(1);
  }, WATCHDOG_MS);
  watchdog.unref();
  const monitor = await startMonitor(dir, dbPath, values['monitor-from'] ?? packageRoot());
  children.push(monitor.child);
  let running: Running[] = [];
  let ok = false;
  try {
    running = list.map((v, i) => {
      const id = ids[i] ?? '';
      const env = { ...cleanEnv(), ...v.env, AGENT_SERVER: `127.0.0.1:${monitor.port}`, AGENT_GROUP: GROUP, AGENT_INSTANCE_ID: id, LOG_LEVEL: 'info' };
      const log = join(dir, `${id}.log`);
      const child = spawnLogged(v.args, env, log, dir);
      children.push(child);
      return { ...v, id, child, log };
    });
    const stored = (id: string): number => {
      const d = openStore(dbPath, { readonly: true });
      const n = (d.prepare('SELECT COUNT(*) AS n FROM samples WHERE instance_id = ?').get(id) as { n: number }).n;
      d.close();
      return n;
    };
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (const r of running) {
      while (stored(r.id) === 0) {
        if (Date.now() > deadline || r.child.exitCode !== null) throw new Error(`${r.name}: no heartbeat stored; see ${r.log}`);
        await sleep(100);
      }
    }
    await sleep(WARMUP_MS);
    const pids = running.map((r) => r.child.pid ?? 0);
    const before = pids.map((pid) => ({ ticks: cpuTicks(pid), stored: 0 }));
    const beforeStored = running.map((r) => stored(r.id));
    before.forEach((b, i) => { b.stored = beforeStored[i] ?? 0; });
    const rss: Status[][] = pids.map(() => []);
    const started = Date.now();
    for (let s = 0; s < windowS; s++) {
      pids.forEach((pid, i) => rss[i]?.push(status(pid)));
      await sleep(started + (s + 1) * 1_000 - Date.now());
    }
    const elapsedS = (Date.now() - started) / 1_000;
    const rows: Row[] = running.map((r, i) => {
      const pid = pids[i] ?? 0;
      const samples = rss[i] ?? [];
      return {
        name: r.name,
        sampler: loggedSampler(r.log),
        rssMedianMiB: median(samples.map((x) => x.rssKiB)) / 1024,
        rssMaxMiB: Math.max(...samples.map((x) => x.rssKiB)) / 1024,
        anonMedianMiB: median(samples.map((x) => x.anonKiB)) / 1024,
        fileMedianMiB: median(samples.map((x) => x.fileKiB)) / 1024,
        hwmMiB: status(pid).hwmKiB / 1024,
        cpuPercent: (((cpuTicks(pid) - (before[i]?.ticks ?? 0)) / CLK_TCK) / elapsedS) * 100,
        heartbeats: stored(r.id) - (before[i]?.stored ?? 0),
      };
    });
    const mb = (mib: number) => (mib * 1.048576).toFixed(1);
    process.stdout.write(`node ${process.version}, ${cpus().length} cores; ${windowS} s window at 1 Hz; MiB (MB)\n\n`);
    process.stdout.write('| agent | sampler | RSS median | RSS max | anon / file | VmHWM | CPU, % of a core | heartbeats stored |\n|---|---|---|---|---|---|---|---|\n');
    for (const r of rows) {
      process.stdout.write(`| ${r.name} | ${r.sampler} | ${r.rssMedianMiB.toFixed(1)} (${mb(r.rssMedianMiB)}) | ${r.rssMaxMiB.toFixed(1)} (${mb(r.rssMaxMiB)}) `
        + `| ${r.anonMedianMiB.toFixed(1)} / ${r.fileMedianMiB.toFixed(1)} | ${r.hwmMiB.toFixed(1)} (${mb(r.hwmMiB)}) | ${r.cpuPercent.toFixed(2)} | ${r.heartbeats} |\n`);
    }
    ok = true;
  } finally {
    await Promise.all(running.map((r) => stopChild(r.child)));
    await stopChild(monitor.child);
    clearTimeout(watchdog);
    // A failed run keeps its logs.
    if (ok) rmSync(dir, { recursive: true, force: true });
    else process.stderr.write(`agent-rss: logs kept in ${dir}\n`);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
