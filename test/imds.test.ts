import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { discoverIdentity } from '../agent/identity.js';
import { ImdsClient, ImdsError } from '../agent/imds.js';
import { runAgent } from '../agent/main.js';
import { loadAgentConfig } from '../config/agent.js';
import { loadMonitorServerConfig } from '../config/monitor-server.js';
import { ConfigError } from '../config/shared.js';
import { systemClock } from '../lib/clock.js';
import { captureLogger, testGroup } from '../lib/testing.js';
import { MonitorServer } from '../monitor-server/server.js';
import { openStore } from '../store/db.js';
import { GroupStore } from '../store/groups.js';
import { InstanceStore } from '../store/instances.js';
import { startFakeImds, type FakeImds, type FakeImdsOptions } from './fake-aws/imds.js';
import { killAll, runCli, startCli, tempDir, waitFor } from './helpers.js';

const ID = 'i-0123456789abcdef0';
const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  killAll();
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function fake(opts: Partial<FakeImdsOptions> = {}): Promise<FakeImds> {
  const f = await startFakeImds({ instanceId: ID, availabilityZone: 'eu-west-1b', instanceType: 'm7g.large', localIpv4: '10.1.2.3', ...opts });
  cleanup.push(() => f.close());
  return f;
}

/** A port on 127.0.0.1 where nothing listens: bound, then closed. */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Short timeouts and backoff so the failure rows finish in well under a second. */
const quick = (endpoint: string, extra: Partial<{ timeoutMs: number; attempts: number }> = {}) =>
  new ImdsClient({ endpoint, timeoutMs: 200, attempts: 3, backoffMs: 5, ...extra });

const agentEnv = (endpoint: string, extra: Record<string, string> = {}) => ({
  AGENT_IDENTITY: 'imds', AGENT_IMDS_ENDPOINT: endpoint, AGENT_IMDS_TIMEOUT_MS: '200', AGENT_IMDS_ATTEMPTS: '2', ...extra,
});

/** One plain HTTP request, for what the client itself never sends; resolves the status. */
function rawStatus(method: 'GET' | 'PUT', url: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    request(url, { method, headers }, (res) => { res.resume(); resolve(res.statusCode ?? 0); }).on('error', reject).end();
  });
}

describe('agent identity config', () => {
  it.each([
    { name: 'no id: hostname, never IMDS', env: {}, want: { identity: 'hostname' } },
    { name: 'an id: static', env: { AGENT_INSTANCE_ID: 'web-1' }, want: { identity: 'static', instanceId: 'web-1' } },
    { name: 'imds with defaults', env: { AGENT_IDENTITY: 'imds' }, want: { identity: 'imds', imdsEndpoint: 'http://169.254.169.254', imdsTimeoutMs: 1000, imdsAttempts: 3 } },
    { name: 'IPv6 endpoint', env: { AGENT_IDENTITY: 'imds', AGENT_IMDS_ENDPOINT: 'http://[fd00:ec2::254]/' }, want: { imdsEndpoint: 'http://[fd00:ec2::254]' } },
  ])('$name', ({ env, want }) => {
    expect(loadAgentConfig({ env })).toMatchObject(want);
  });

  it.each([
    { name: 'static without an id names both keys', env: { AGENT_IDENTITY: 'static' }, want: /AGENT_IDENTITY: static needs AGENT_INSTANCE_ID/ },
    { name: 'imds with an id is ambiguous', env: { AGENT_IDENTITY: 'imds', AGENT_INSTANCE_ID: 'x' }, want: /AGENT_INSTANCE_ID: is set but AGENT_IDENTITY=imds/ },
    { name: 'unknown source', env: { AGENT_IDENTITY: 'dns' }, want: /AGENT_IDENTITY: must be one of static, imds, hostname/ },
    { name: 'https endpoint', env: { AGENT_IDENTITY: 'imds', AGENT_IMDS_ENDPOINT: 'https://169.254.169.254' }, want: /AGENT_IMDS_ENDPOINT: must be http/ },
    { name: 'zero attempts', env: { AGENT_IMDS_ATTEMPTS: '0' }, want: /AGENT_IMDS_ATTEMPTS: must be >= 1/ },
  ])('$name', ({ env, want }) => {
    expect(() => loadAgentConfig({ env })).toThrow(ConfigError);
    expect(() => loadAgentConfig({ env })).toThrow(want);
  });
});

describe('IMDSv2 client against a loopback IMDS', () => {
  it('requires a token: a tokenless GET is 401, the client PUTs a 6 h token first and gets the identity', async () => {
    const f = await fake();
    expect(await rawStatus('GET', `${f.url}/latest/meta-data/instance-id`)).toBe(401);
    expect(await rawStatus('GET', `${f.url}/latest/meta-data/instance-id`, { 'x-aws-ec2-metadata-token': 'forged' })).toBe(401);
    expect(await quick(f.url).identity()).toEqual({ instanceId: ID, availabilityZone: 'eu-west-1b', instanceType: 'm7g.large', localIpv4: '10.1.2.3' });
    expect(f.counters).toMatchObject({ tokens: 1, lastTtlSeconds: 21_600, gets: 4, unauthorized: 2 });
  });

  it('an expired token is refreshed once, then the answer comes', async () => {
    const f = await fake();
    const client = quick(f.url);
    await client.identity();
    f.expireTokens();
    expect(await client.metadata('instance-id')).toBe(ID);
    expect(f.counters).toMatchObject({ tokens: 2, unauthorized: 1 });
  });

  it('a token refused even when fresh fails after one refresh, not in a loop', async () => {
    let puts = 0;
    const server: Server = createServer((req, res) => {
      if (req.method === 'PUT') puts++;
      res.writeHead(req.method === 'PUT' ? 200 : 401).end(req.method === 'PUT' ? 'tok' : '');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    cleanup.push(() => new Promise<void>((r) => server.close(() => r())));
    const err = await quick(`http://127.0.0.1:${(server.address() as AddressInfo).port}`).identity().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImdsError);
    expect(err).toMatchObject({ code: 'token-refused', status: 401 });
    expect(puts).toBe(2);
  });

  it.each([
    { name: 'TTL 0', headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '0' }, want: 400 },
    { name: 'TTL above 6 h', headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '21601' }, want: 400 },
    { name: 'no TTL header', headers: {} as Record<string, string>, want: 400 },
    { name: 'TTL 1 s', headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '1' }, want: 200 },
  ])('the fake checks the token TTL as IMDS does: $name', async ({ headers, want }) => {
    const f = await fake();
    expect(await rawStatus('PUT', `${f.url}/latest/api/token`, headers)).toBe(want);
  });

  it('an IMDS that never answers: a timeout error after every try', async () => {
    const f = await fake({ delayMs: 5_000 });
    const err = await quick(f.url, { timeoutMs: 50, attempts: 3 }).identity().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImdsError);
    expect(err).toMatchObject({ code: 'timeout', path: '/latest/api/token' });
    expect((err as Error).message).toMatch(/no answer within 50 ms \(3 tries\)/);
    expect(f.counters.requests).toBe(3);
  });

  it('a slow first answer (boot) is retried and succeeds', async () => {
    const f = await fake({ delayMs: 5_000, delayCount: 1 });
    expect((await quick(f.url, { timeoutMs: 100 }).identity()).instanceId).toBe(ID);
    expect(f.counters.tokens).toBe(1);
  });

  it('a 5xx is tried again; a 403 (IMDS disabled) is not', async () => {
    const f = await fake();
    f.failNext(2, 503);
    expect((await quick(f.url).identity()).instanceId).toBe(ID);
    f.failNext(1, 403);
    const err = await quick(f.url).identity().catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'http-status', status: 403 });
    expect((err as Error).message).toMatch(/IMDS is disabled/);
  });

  it.each([
    { name: 'not an instance id', opts: { instanceId: 'web-1' }, want: /returned "web-1" as instance-id/ },
    { name: 'too few hex digits', opts: { instanceId: 'i-0123456' }, want: /not an EC2 instance id/ },
    { name: 'an address that is not IPv4', opts: { localIpv4: 'fe80::1' }, want: /not an IPv4 address/ },
  ])('rejects a bad answer: $name', async ({ opts, want }) => {
    const f = await fake(opts);
    const err = await quick(f.url).identity().catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'invalid-response' });
    expect((err as Error).message).toMatch(want);
  });

  it('an IPv6-only instance (no local-ipv4) falls back to the hostname for the address', async () => {
    const f = await fake({ localIpv4: null, instanceId: 'i-0abc1234' });
    const id = await discoverIdentity(loadAgentConfig({ env: agentEnv(f.url) }), { host: 'ip-10-0-0-1', imds: { backoffMs: 5 } });
    expect(id).toEqual({ instanceId: 'i-0abc1234', groupId: 'default', address: 'ip-10-0-0-1', source: 'imds', zone: 'eu-west-1b', instanceType: 'm7g.large' });
  });
});

describe('discoverIdentity', () => {
  it('success: the IMDS instance id, zone, type and private address', async () => {
    const f = await fake();
    const id = await discoverIdentity(loadAgentConfig({ env: { ...agentEnv(f.url), AGENT_GROUP: 'web' } }), { host: 'h' });
    expect(id).toEqual({ instanceId: ID, groupId: 'web', address: '10.1.2.3', source: 'imds', zone: 'eu-west-1b', instanceType: 'm7g.large' });
  });

  it('an unreachable endpoint: a ConfigError naming the keys, the IMDS error as cause', async () => {
    const endpoint = `http://127.0.0.1:${await closedPort()}`;
    const err = await discoverIdentity(loadAgentConfig({ env: agentEnv(endpoint) }), { imds: { backoffMs: 5 } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    for (const key of ['AGENT_IDENTITY', 'AGENT_IMDS_ENDPOINT', 'AGENT_INSTANCE_ID']) expect((err as Error).message).toContain(key);
    expect((err as Error).message).toContain(endpoint);
    expect((err as ConfigError).cause).toMatchObject({ name: 'ImdsError', code: 'unreachable' });
  });

  it('the agent stopped while IMDS is still silent: done resolves, no reporter starts', async () => {
    const f = await fake({ delayMs: 5_000 });
    const agent = runAgent(loadAgentConfig({ env: agentEnv(f.url, { AGENT_IMDS_TIMEOUT_MS: '10000' }) }), captureLogger('warn').log);
    await waitFor('the token request in flight', () => f.counters.requests >= 1);
    await agent.stop('test');
    await expect(agent.done).resolves.toBeUndefined();
    await expect(agent.ready).rejects.toMatchObject({ code: 'aborted' });
    expect(() => agent.reporter).toThrow(/identity not known yet/);
  });
});

describe('autoscaler agent with AGENT_IDENTITY=imds (built CLI)', () => {
  it('registers with the monitor server under the instance id IMDS gives', async () => {
    const f = await fake();
    const dbPath = join(tempDir(), 'a.db');
    const db = openStore(dbPath);
    cleanup.push(() => { db.close(); });
    new GroupStore(db).upsert(testGroup(), Date.now());
    // The controller recorded the launch (the monitor server refuses ids it does not know).
    new InstanceStore(db).insertLaunched('web', [{ id: ID, providerState: 'running' }], 'launched', 'test', Date.now());
    const server = await new MonitorServer(loadMonitorServerConfig({ env: {
      AUTOSCALER_DB: dbPath, MONITOR_GRPC_PORT: '0', MONITOR_HTTP_PORT: '0', MONITOR_HEARTBEAT_INTERVAL_MS: '100', MONITOR_FLUSH_INTERVAL_MS: '20',
    } }), db, systemClock, captureLogger('warn').log).start();
    cleanup.push(() => server.close());
    const agent = startCli(['agent', '--simulate'], { ...agentEnv(f.url), AGENT_SERVER: `127.0.0.1:${server.grpcPort}`, AGENT_GROUP: 'web' });
    cleanup.push(() => agent.stop());
    const row = await waitFor('the IMDS id registered', () => db.prepare('SELECT id, address FROM instances WHERE id = ? AND registered_at IS NOT NULL').get(ID) as { id: string; address: string } | undefined);
    expect(row).toEqual({ id: ID, address: '10.1.2.3' });
    expect(db.prepare('SELECT COUNT(*) AS n FROM instances').get()).toEqual({ n: 1 });
    expect(agent.logs().find((l) => l.msg === 'agent starting')).toMatchObject({ instanceId: ID, identitySource: 'imds', zone: 'eu-west-1b', instanceType: 'm7g.large' });
  });

  it('exits 78 naming the keys when IMDS is unreachable', async () => {
    const { code, output } = await runCli(['agent', '--simulate'], agentEnv(`http://127.0.0.1:${await closedPort()}`, { AGENT_IMDS_ATTEMPTS: '1' }));
    expect(output).toMatch(/AGENT_IDENTITY: imds gave no instance identity/);
    expect(output).toMatch(/keys: AGENT_IDENTITY, AGENT_IMDS_ENDPOINT, AGENT_INSTANCE_ID/);
    expect(code).toBe(78);
  });
});
