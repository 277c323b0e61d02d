/**
 * The agent's own entry point (dist/agent/cli/main.js, built by `npm test`): a real process against a
 * real monitor server on 127.0.0.1 port 0, sampling this machine through /proc.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadMonitorServerConfig } from '../config/monitor-server.js';
import { AGENT_NODE_FLAGS, agentCommand } from '../controller/providers/local.js';
import { systemClock } from '../lib/clock.js';
import { cliEntry, packageRoot } from '../lib/paths.js';
import { captureLogger, testGroup } from '../lib/testing.js';
import { version } from '../lib/version.js';
import { MonitorServer, type MonitorServerHandle } from '../monitor-server/server.js';
import { openStore, type Db } from '../store/db.js';
import { GroupStore } from '../store/groups.js';
import { InstanceStore } from '../store/instances.js';
import { tempDir, waitFor } from './helpers.js';

const ENTRY = join(packageRoot(), 'dist', 'agent', 'cli', 'main.js');

/** The unit's ExecStart: the Node flags and the script it runs. */
function unitExecStart(): { flags: string[]; script: string } {
  const unit = readFileSync(join(packageRoot(), 'deploy', 'systemd', 'autoscaler-agent.service'), 'utf8');
  const m = /^ExecStart=\/usr\/bin\/node((?: --\S+)*) (\S+)$/m.exec(unit);
  if (m === null) throw new Error('no ExecStart=/usr/bin/node … line in the agent unit');
  return { flags: (m[1] ?? '').split(' ').filter(Boolean), script: m[2] ?? '' };
}

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

/** This process's environment without autoscaler settings, plus `env`. */
function env(extra: Record<string, string>): NodeJS.ProcessEnv {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(AGENT_|MONITOR_|CONTROLLER_|AUTOSCALER_|LOG_LEVEL$)/.test(k)));
  return { ...base, ...extra };
}

interface Agent {
  readonly child: ChildProcess;
  readonly logs: () => Record<string, unknown>[];
  readonly output: () => string;
  readonly exited: Promise<number | null>;
}

function startEntry(args: readonly string[], extra: Record<string, string>, nodeFlags: readonly string[] = []): Agent {
  const cwd = tempDir();
  const child = spawn(process.execPath, [...nodeFlags, ENTRY, ...args], { env: env(extra), cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (b: Buffer) => { out += b.toString('utf8'); });
  child.stderr?.on('data', (b: Buffer) => { out += b.toString('utf8'); });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  cleanup.push(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  const logs = () => out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
  return { child, logs, output: () => out, exited };
}

/** A monitor server on 127.0.0.1:0 with group web and instance agent-1 recorded. */
async function startServer(): Promise<{ db: Db; server: MonitorServerHandle }> {
  const dbPath = join(tempDir(), 'a.db');
  const db = openStore(dbPath);
  cleanup.push(() => { db.close(); });
  new GroupStore(db).upsert(testGroup(), Date.now());
  new InstanceStore(db).insertLaunched('web', [{ id: 'agent-1', providerState: 'running' }], 'launched', 'test', Date.now());
  const cfg = loadMonitorServerConfig({ env: {
    AUTOSCALER_DB: dbPath, MONITOR_GRPC_PORT: '0', MONITOR_HTTP_PORT: '0', MONITOR_HEARTBEAT_INTERVAL_MS: '50',
    MONITOR_SUSPECT_AFTER_MS: '5000', MONITOR_DEAD_AFTER_MS: '10000', MONITOR_FLUSH_INTERVAL_MS: '20',
  } });
  const server = await new MonitorServer(cfg, db, systemClock, captureLogger('warn').log).start();
  cleanup.push(() => server.close());
  return { db, server };
}

const samples = (db: Db) => db.prepare("SELECT seq, cpu, mem FROM samples WHERE instance_id = 'agent-1' ORDER BY seq").all() as { seq: number; cpu: number; mem: number }[];

describe('node dist/agent/cli/main.js', () => {
  it('is what the systemd unit runs', () => {
    expect(unitExecStart().script).toBe('/opt/autoscaler/dist/agent/cli/main.js');
  });

  it.each([
    { name: 'this package\'s CLI: the agent entry with the unit\'s Node flags', command: [process.execPath, cliEntry()],
      want: () => [process.execPath, ...unitExecStart().flags, ENTRY, '--simulate', '--exit-with-parent'] },
    { name: 'any other command: `agent` appended', command: ['/opt/node', '-e', 'x', '--'],
      want: () => ['/opt/node', '-e', 'x', '--', 'agent', '--simulate', '--exit-with-parent'] },
  ])('the local provider starts agents from $name', ({ command, want }) => {
    expect(AGENT_NODE_FLAGS).toEqual(unitExecStart().flags);
    expect(agentCommand(command)).toEqual(want());
  });

  it.runIf(process.platform === 'linux')('with the unit\'s Node flags: registers with a real monitor server, its /proc samples are stored; SIGTERM deregisters, exits 0', async () => {
    const { db, server } = await startServer();
    const { flags } = unitExecStart();
    const agent = startEntry([], { AGENT_SERVER: `127.0.0.1:${server.grpcPort}`, AGENT_GROUP: 'web', AGENT_INSTANCE_ID: 'agent-1', LOG_LEVEL: 'info' }, flags);
    const stored = await waitFor('5 stored samples', () => { const s = samples(db); return s.length >= 5 ? s : undefined; }, 15_000);
    expect(agent.logs().find((l) => l.msg === 'agent starting')).toMatchObject({ sampler: 'proc', identitySource: 'static', instanceId: 'agent-1' });
    expect(stored.map((s) => s.seq)).toEqual(Array.from({ length: stored.length }, (_, k) => k + 1));
    for (const s of stored) {
      expect(s.cpu).toBeGreaterThanOrEqual(0);
      expect(s.cpu).toBeLessThanOrEqual(100);
      expect(s.mem).toBeGreaterThan(0);
      expect(s.mem).toBeLessThan(100);
    }
    agent.child.kill('SIGTERM');
    expect(await agent.exited).toBe(0);
    expect(db.prepare("SELECT state, state_reason FROM instances WHERE id = 'agent-1'").get()).toEqual({ state: 'dead', state_reason: 'deregistered: signal' });
  });

  it('reads --config like `autoscaler agent` (the environment wins over the file)', async () => {
    const { db, server } = await startServer();
    const file = join(tempDir(), 'agent.env');
    writeFileSync(file, `AGENT_SERVER=127.0.0.1:${server.grpcPort}\nAGENT_GROUP=web\nAGENT_INSTANCE_ID=someone-else\nAGENT_SIMULATE=true\n`);
    const agent = startEntry(['--config', file], { AGENT_INSTANCE_ID: 'agent-1', LOG_LEVEL: 'info' });
    await waitFor('a stored sample', () => samples(db).length > 0, 15_000);
    expect(agent.logs().find((l) => l.msg === 'agent starting')).toMatchObject({ sampler: 'simulated', instanceId: 'agent-1', groupId: 'web' });
  });

  it.each<{ name: string; args: string[]; extra: Record<string, string>; code: number; output: RegExp }>([
    { name: 'an invalid setting exits 78 naming the key', args: [], extra: { AGENT_SERVER: 'nowhere' }, code: 78, output: /AGENT_SERVER: must be host:port/ },
    { name: 'a missing --config file exits 78', args: ['--config', '/nonexistent/agent.env'], extra: {}, code: 78, output: /config file \/nonexistent\/agent\.env: ENOENT/ },
    { name: 'an unknown option exits 2 with the usage', args: ['--simulat'], extra: {}, code: 2, output: /Unknown option '--simulat'[\s\S]*Usage: node dist\/agent\/cli\/main\.js/ },
    { name: 'a stray argument exits 2', args: ['agent'], extra: {}, code: 2, output: /Unexpected argument 'agent'/ },
    { name: '--help prints the usage and exits 0', args: ['--help'], extra: {}, code: 0, output: /--exit-with-parent/ },
    { name: '--version prints the package version', args: ['--version'], extra: {}, code: 0, output: new RegExp(`^${version().replaceAll('.', '\\.')}\\n$`) },
  ])('$name', ({ args, extra, code, output }) => {
    const r = spawnSync(process.execPath, [ENTRY, ...args], { env: env(extra), cwd: tempDir(), encoding: 'utf8', timeout: 15_000 });
    expect(r.status, r.stderr).toBe(code);
    expect(`${r.stdout}${r.stderr}`).toMatch(output);
  });

  it.runIf(process.platform === 'linux')('loads neither commander, zod, protobufjs, proto-loader nor systeminformation', async () => {
    const { db, server } = await startServer();
    // Import the entry in a process that lists the packages loaded once it streams: CommonJS ones
    // from the require cache, ES modules (zod) as a loader hook sees them.
    const hook = "export async function load(url, context, next) { if (url.includes('/node_modules/')) process._rawDebug('ESM ' + url); return next(url, context); }";
    const script = `
      import { createRequire, register } from 'node:module';
      register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(hook)}));
      const require = createRequire(import.meta.url);
      process.argv = [process.argv[0], ${JSON.stringify(ENTRY)}];
      await import(${JSON.stringify(new URL(`file://${ENTRY}`).href)});
      const t = setInterval(() => {
        if (!process.env.READY_FILE || !require('node:fs').existsSync(process.env.READY_FILE)) return;
        clearInterval(t);
        const pkgs = new Set(Object.keys(require.cache).map((k) => /node_modules\\/((?:@[^/]+\\/)?[^/]+)/.exec(k)?.[1]).filter(Boolean));
        process.stderr.write('PACKAGES ' + JSON.stringify([...pkgs].sort()) + '\\n');
        process.kill(process.pid, 'SIGTERM');
      }, 50);
    `;
    const ready = join(tempDir(), 'ready');
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      env: env({ AGENT_SERVER: `127.0.0.1:${server.grpcPort}`, AGENT_GROUP: 'web', AGENT_INSTANCE_ID: 'agent-1', LOG_LEVEL: 'warn', READY_FILE: ready }),
      cwd: tempDir(), stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stderr.on('data', (b: Buffer) => { out += b.toString('utf8'); });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    cleanup.push(async () => { child.kill('SIGKILL'); await exited; });
    await waitFor('a stored sample', () => samples(db).length > 0, 15_000);
    writeFileSync(ready, '');
    const line = await waitFor('the package list', () => /^PACKAGES (.*)$/m.exec(out)?.[1], 10_000);
    const esm = [...out.matchAll(/^ESM .*node_modules\/((?:@[^/]+\/)?[^/]+)\//gm)].map((m) => m[1] ?? '');
    const pkgs = [...JSON.parse(line) as string[], ...esm];
    expect(pkgs).toContain('@grpc/grpc-js');
    expect(esm).toContain('pino');
    expect(pkgs.filter((p) => ['commander', 'zod', 'protobufjs', '@grpc/proto-loader', 'systeminformation'].includes(p))).toEqual([]);
  });
});
