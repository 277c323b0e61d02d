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
  const instances = new InstanceStore(db);
  // What the controller does with a launch result: record the rows (the monitor server refuses unknown ids).
  const launch = async (req: { groupId: string; token: string; count: number }) => {
    const r = await provider.launch(req);
    instances.insertLaunched(req.groupId, r.instances.map((i) => ({ id: i.id, providerState: i.state })), 'launched', 'test', Date.now());
    return r;
  };
  return { db, provider, instances, launch };
}

describe('local provider (real child processes)', () => {
  it('launches agents under ids it chooses, which they register with; lists them; terminates with SIGTERM', async () => {
    const { provider, instances, launch } = await setup();
    const launched = await launch({ groupId: 'web', token: 'tok-1', count: 2 });
    const [a, b] = launched.instances.map((i) => i.id) as [string, string];
    expect(a).toMatch(/^web-[0-9a-f]{8}$/);
    expect(launched.instances[0]).toMatchObject({ state: 'running', launchToken: 'tok-1', zone: 'local' });
    await waitFor('both registered', () => instances.get(a)?.state === 'running' && instances.get(b)?.state === 'running', 15_000);
    expect((await provider.list('web')).instances.map((p) => [p.id, p.state])).toEqual([[a, 'running'], [b, 'running']]);
    expect((await provider.list('other')).instances).toEqual([]);
    expect(await provider.terminate({ groupId: 'web', ids: [a, 'never-existed'], decrement: true })).toEqual({ accepted: [a, 'never-existed'], failed: [] });
    expect((await provider.list('web')).instances.find((p) => p.id === a)?.state).toBe('terminating');
    await provider.exited(a);
    const after = (await provider.list('web')).instances;
    expect(after.map((p) => [p.id, p.state, p.detail])).toEqual([[b, 'running', expect.stringContaining('running')], [a, 'gone', 'terminated']]);
    expect((await provider.list('web')).instances.map((p) => p.id)).toEqual([b]); // a gone instance is reported once
    expect(instances.get(a)).toMatchObject({ state: 'dead', stateReason: 'deregistered: signal' });
  });

  it('launches nothing twice for the same token', async () => {
    const { provider } = await setup();
    const first = await provider.launch({ groupId: 'web', token: 'tok-1', count: 1 });
    const again = await provider.launch({ groupId: 'web', token: 'tok-1', count: 1 });
    expect(again.instances.map((i) => i.id)).toEqual(first.instances.map((i) => i.id));
    expect(provider.pids()).toHaveLength(1);
  });

  it('reports an agent killed with SIGKILL as gone', async () => {
    const { provider, instances, launch } = await setup();
    const [a] = (await launch({ groupId: 'web', token: 't', count: 1 })).instances;
    await waitFor('registered', () => instances.get(a?.id ?? '')?.state === 'running', 15_000);
    process.kill(provider.pids()[0] as number, 'SIGKILL');
    const gone = await waitFor('gone', async () => (await provider.list('web')).instances.find((p) => p.state === 'gone'));
    expect(gone).toMatchObject({ id: a?.id, detail: 'exited with signal SIGKILL' });
  });

  it('SIGKILLs an instance that ignores SIGTERM, after the timeout', async () => {
    const { log, lines } = captureLogger('warn');
    const logDir = tempDir();
    const provider = new LocalProvider({
      // A stand-in for a wedged agent: it ignores SIGTERM.
      command: [process.execPath, '-e', "process.on('SIGTERM', () => {}); console.log('ready'); setInterval(() => {}, 1000)", '--'],
      agentServer: () => '127.0.0.1:1', terminateTimeoutMs: 200, logDir, agentEnv: {}, log, newId: () => 'wedged',
    });
    cleanup.push(() => provider.close());
    await provider.launch({ groupId: 'web', token: 't', count: 1 });
    const pid = provider.pids()[0] as number;
    await waitFor('SIGTERM handler installed', () => existsSync(join(logDir, 'wedged.log')) && readFileSync(join(logDir, 'wedged.log'), 'utf8').includes('ready'));
    await provider.terminate({ groupId: 'web', ids: ['wedged'], decrement: true });
    await provider.exited('wedged');
    expect(isAlive(pid)).toBe(false);
    expect(lines.find((l) => l.msg === 'instance ignored SIGTERM; sending SIGKILL')).toMatchObject({ instanceId: 'wedged', timeoutMs: 200 });
  });

  it('fails a launch with a typed ProviderError when the monitor server address is unknown', async () => {
    const provider = new LocalProvider({
      command: [process.execPath, cliEntry()],
      agentServer: () => { throw new Error('monitor server address unknown'); },
      terminateTimeoutMs: 1_000, logDir: tempDir(), agentEnv: {}, log: captureLogger('warn').log,
    });
    const err = await provider.launch({ groupId: 'web', token: 't', count: 1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProviderError);
    expect(err).toMatchObject({ code: 'Unavailable', retryable: true });
  });

  it('close() leaves no child process behind', async () => {
    const { provider } = await setup();
    await provider.launch({ groupId: 'web', token: 't', count: 2 });
    const pids = provider.pids();
    expect(pids).toHaveLength(2);
    await provider.close();
    expect(pids.filter(isAlive)).toEqual([]);
  });
});
