import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadMonitorServerConfig } from '../config/monitor-server.js';
import { LocalProvider } from '../controller/providers/local.js';
import { ProviderError } from '../controller/providers/types.js';
import { systemClock } from '../lib/clock.js';
import { cliEntry } from '../lib/paths.js';
import { captureLogger, testGroup } from '../lib/testing.js';
import { MonitorServer } from '../monitor-server/server.js';
import { openStore } from '../store/db.js';
import { GroupStore } from '../store/groups.js';
import { InstanceStore } from '../store/instances.js';
import { isAlive, tempDir, waitFor } from './helpers.js';

const spec = testGroup();

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function setup(terminateTimeoutMs = 3_000) {
  const dir = tempDir();
  const dbPath = join(dir, 'a.db');
  const db = openStore(dbPath);
  cleanup.push(() => { db.close(); });
  new GroupStore(db).upsert(spec, Date.now());
  const cfg = loadMonitorServerConfig({ env: { AUTOSCALER_DB: dbPath, MONITOR_GRPC_PORT: '0', MONITOR_HTTP_PORT: '0', MONITOR_HEARTBEAT_INTERVAL_MS: '100', MONITOR_SUSPECT_AFTER_MS: '1000', MONITOR_DEAD_AFTER_MS: '3000' } });
  const server = await new MonitorServer(cfg, db, systemClock, captureLogger('warn').log).start();
  cleanup.push(() => server.close());
  const provider = new LocalProvider({
    command: [process.execPath, cliEntry()],
    agentServer: () => `127.0.0.1:${server.grpcPort}`,
    terminateTimeoutMs,
    logDir: join(dir, 'instances'),
    agentEnv: {},
    log: captureLogger('warn').log,
  });
  cleanup.push(() => provider.close());
  return { db, provider, instances: new InstanceStore(db) };
}

describe('local provider (real child processes)', () => {
  it('launches agents that register, lists them, and terminates with SIGTERM (agent deregisters)', async () => {
    const { provider, instances } = await setup();
    const a = await provider.launch({ groupId: 'web', instanceId: 'web-a' });
    await provider.launch({ groupId: 'web', instanceId: 'web-b' });
    expect(a.providerId).toMatch(/^pid:\d+$/);
    await waitFor('both registered', () => instances.get('web-a')?.state === 'running' && instances.get('web-b')?.state === 'running', 15_000);
    expect((await provider.list('web')).map((p) => [p.instanceId, p.state])).toEqual([['web-a', 'running'], ['web-b', 'running']]);
    expect(await provider.list('other')).toEqual([]);
    await provider.terminate({ groupId: 'web', instanceId: 'web-a', providerId: a.providerId });
    expect((await provider.list('web')).map((p) => p.instanceId)).toEqual(['web-b']);
    expect(instances.get('web-a')).toMatchObject({ state: 'dead', stateReason: 'deregistered: signal' });
    await provider.terminate({ groupId: 'web', instanceId: 'never-existed', providerId: null });
  });

  it('reports an agent killed with SIGKILL as gone', async () => {
    const { provider, instances } = await setup();
    const { providerId } = await provider.launch({ groupId: 'web', instanceId: 'web-a' });
    await waitFor('registered', () => instances.get('web-a')?.state === 'running', 15_000);
    process.kill(Number(providerId.slice(4)), 'SIGKILL');
    const gone = await waitFor('gone', async () => (await provider.list('web')).find((p) => p.state === 'gone'));
    expect(gone).toMatchObject({ instanceId: 'web-a', detail: 'exited with signal SIGKILL' });
  });

  it('SIGKILLs an instance that ignores SIGTERM, after the timeout', async () => {
    const { log, lines } = captureLogger('warn');
    const logDir = tempDir();
    const provider = new LocalProvider({
      // A stand-in for a wedged agent: it ignores SIGTERM.
      command: [process.execPath, '-e', "process.on('SIGTERM', () => {}); console.log('ready'); setInterval(() => {}, 1000)", '--'],
      agentServer: () => '127.0.0.1:1', terminateTimeoutMs: 200, logDir, agentEnv: {}, log,
    });
    cleanup.push(() => provider.close());
    const { providerId } = await provider.launch({ groupId: 'web', instanceId: 'wedged' });
    const pid = Number(providerId.slice(4));
    await waitFor('SIGTERM handler installed', () => existsSync(join(logDir, 'wedged.log')) && readFileSync(join(logDir, 'wedged.log'), 'utf8').includes('ready'));
    await provider.terminate({ groupId: 'web', instanceId: 'wedged', providerId });
    expect(isAlive(pid)).toBe(false);
    expect(lines.find((l) => l.msg === 'instance ignored SIGTERM; sending SIGKILL')).toMatchObject({ instanceId: 'wedged', timeoutMs: 200 });
  });

  it('fails a launch with ProviderError when the monitor server address is unknown', async () => {
    const provider = new LocalProvider({
      command: [process.execPath, cliEntry()],
      agentServer: () => { throw new Error('monitor server address unknown'); },
      terminateTimeoutMs: 1_000, logDir: tempDir(), agentEnv: {}, log: captureLogger('warn').log,
    });
    await expect(provider.launch({ groupId: 'web', instanceId: 'x' })).rejects.toBeInstanceOf(ProviderError);
  });

  it('close() leaves no child process behind', async () => {
    const { provider } = await setup();
    await provider.launch({ groupId: 'web', instanceId: 'web-a' });
    await provider.launch({ groupId: 'web', instanceId: 'web-b' });
    const pids = provider.pids();
    expect(pids).toHaveLength(2);
    await provider.close();
    expect(pids.filter(isAlive)).toEqual([]);
  });
});
