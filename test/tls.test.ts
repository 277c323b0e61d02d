/**
 * Transport security of the gRPC listener (issue 7, item 1): TLS, mutual TLS, the shared token,
 * reload in place, `certs init`, and the configuration rules that keep plaintext on loopback.
 * Real servers on 127.0.0.1:0, real certificates made by `certsInit` (openssl) in temp dirs.
 */
import { configProblems } from '../lib/testing.js';
import * as grpc from '@grpc/grpc-js';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runAgent } from '../agent/main.js';
import { serverLink } from '../agent/reporter.js';
import { certsInit } from '../cli/certs.js';
import { loadAgentConfig } from '../config/agent.js';
import { loadMonitorServerConfig } from '../config/monitor-server.js';
import { systemClock } from '../lib/clock.js';
import { SESSION_METADATA_KEY, monitorProto, type HeartbeatAck__Output, type MonitorClient } from '../lib/proto.js';
import { captureLogger, ManualClock, testGroup } from '../lib/testing.js';
import { AGENT_KEY_METADATA_KEY, AUTHORIZATION_METADATA_KEY, isLoopbackHost, loadCertificates, loadKeyPair } from '../lib/tls.js';
import { MonitorServer, type MonitorServerHandle } from '../monitor-server/server.js';
import { openStore, type Db } from '../store/db.js';
import { GroupStore } from '../store/groups.js';
import { InstanceStore } from '../store/instances.js';
import { killAll, runCli, startCli, tempDir, waitFor } from './helpers.js';

const TOKEN = 'a-shared-token-of-32-characters!';

// Made now (table rows name files in them); filled by certsInit before the first test.
const pki = tempDir('autoscaler-pki-');
const otherPki = tempDir('autoscaler-pki-other-');
let written: string[] = [];

beforeAll(async () => {
  written = await certsInit({ dir: pki, instances: ['i-1', 'i-2'], groups: ['web'], hosts: ['monitor.internal', '10.0.0.5'] });
  await certsInit({ dir: otherPki, instances: ['i-1'] });
}, 60_000);

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});
afterAll(() => killAll());

const file = (name: string, dir = pki) => join(dir, name);

const problems = configProblems;

describe('autoscaler certs init', () => {
  it('writes a CA, a server certificate for loopback and --host names, and client certificates naming instances and groups', () => {
    const names = written.map((w) => w.slice(pki.length + 1)).sort();
    expect(names).toEqual(['ca.crt', 'ca.key', 'group-web.crt', 'group-web.key', 'instance-i-1.crt', 'instance-i-1.key',
      'instance-i-2.crt', 'instance-i-2.key', 'server.crt', 'server.key', 'token.txt']);
    const ca = new X509Certificate(readFileSync(file('ca.crt')));
    const server = new X509Certificate(readFileSync(file('server.crt')));
    expect(ca.ca).toBe(true);
    expect(server.ca).toBe(false);
    expect(server.verify(ca.publicKey)).toBe(true);
    expect(server.subjectAltName).toBe('DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, DNS:monitor.internal, IP Address:10.0.0.5');
    expect(new X509Certificate(readFileSync(file('instance-i-1.crt'))).subjectAltName).toBe('URI:autoscaler://instance/i-1');
    expect(new X509Certificate(readFileSync(file('group-web.crt'))).subjectAltName).toBe('URI:autoscaler://group/web');
    for (const key of ['ca.key', 'server.key', 'instance-i-1.key', 'token.txt']) expect(statSync(file(key)).mode & 0o077).toBe(0);
    expect(readFileSync(file('token.txt'), 'utf8').trim()).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it('a second run keeps the CA and the token and adds certificates under the same CA', async () => {
    const dir = tempDir('autoscaler-pki-again-');
    await certsInit({ dir, instances: ['a'] });
    const caBefore = readFileSync(join(dir, 'ca.crt'), 'utf8');
    const again = await certsInit({ dir, instances: ['b'] });
    expect(again.map((w) => w.slice(dir.length + 1)).sort()).toEqual(['instance-b.crt', 'instance-b.key', 'server.crt', 'server.key']);
    expect(readFileSync(join(dir, 'ca.crt'), 'utf8')).toBe(caBefore);
    expect(new X509Certificate(readFileSync(join(dir, 'instance-b.crt'))).verify(new X509Certificate(caBefore).publicKey)).toBe(true);
  }, 30_000);

  it.each([
    { name: 'an instance id with a slash', opts: { instances: ['../x'] }, want: /--instance "\.\.\/x": must be/ },
    { name: 'a host that is no name', opts: { hosts: ['a b'] }, want: /--host "a b": must be a DNS name or an IP address/ },
    { name: 'zero days', opts: { days: 0 }, want: /--days 0: must be/ },
  ])('refuses $name before running openssl', async ({ opts, want }) => {
    await expect(certsInit({ dir: tempDir(), ...opts })).rejects.toThrow(want);
  });
});

describe('PEM loading (lib/tls.ts)', () => {
  it.each([
    { name: 'a missing file', run: () => loadCertificates('MONITOR_TLS_CERT', '/nonexistent/x.crt'), want: 'MONITOR_TLS_CERT: cannot read /nonexistent/x.crt (ENOENT)' },
    { name: 'a file that is not PEM', run: () => loadCertificates('AGENT_TLS_CA', file('token.txt')), want: `AGENT_TLS_CA: ${file('token.txt')} is not a PEM file (no -----BEGIN ...----- block)` },
    { name: 'a key given as the certificate', run: () => loadCertificates('MONITOR_TLS_CERT', file('server.key')), want: `MONITOR_TLS_CERT: ${file('server.key')} holds no CERTIFICATE block (found PRIVATE KEY)` },
    {
      name: 'a key that belongs to another certificate',
      run: () => loadKeyPair('MONITOR_TLS_CERT', file('server.crt'), 'MONITOR_TLS_KEY', file('instance-i-1.key')),
      want: `MONITOR_TLS_KEY: the key in ${file('instance-i-1.key')} does not belong to the certificate in ${file('server.crt')} (MONITOR_TLS_CERT)`,
    },
    {
      name: 'an expired certificate',
      run: () => loadKeyPair('MONITOR_TLS_CERT', file('server.crt'), 'MONITOR_TLS_KEY', file('server.key'), Date.now() + 400 * 86_400_000),
      want: /^MONITOR_TLS_CERT: the certificate in .* expired on /,
    },
  ])('$name is a ConfigError naming the key and the file', ({ run, want }) => {
    const p = problems(run);
    expect(p).toHaveLength(1);
    if (typeof want === 'string') expect(p[0]).toBe(want);
    else expect(p[0]).toMatch(want);
  });
});

describe('configuration: plaintext only on loopback unless asked for', () => {
  it.each([
    { name: '127.0.0.1', host: '127.0.0.1', want: true },
    { name: '127.8.9.10', host: '127.8.9.10', want: true },
    { name: '::1', host: '::1', want: true },
    { name: '[::1]', host: '[::1]', want: true },
    { name: 'localhost', host: 'localhost', want: true },
    { name: 'IPv4-mapped loopback', host: '::ffff:127.0.0.1', want: true },
    { name: '0.0.0.0', host: '0.0.0.0', want: false },
    { name: '::', host: '::', want: false },
    { name: 'a private address', host: '10.0.0.5', want: false },
    { name: 'a name', host: 'monitor.internal', want: false },
    { name: 'a name that starts with 127', host: '127.example.com', want: false },
  ])('isLoopbackHost($name) = $want', ({ host, want }) => {
    expect(isLoopbackHost(host)).toBe(want);
  });

  it.each([
    {
      name: 'plaintext on 0.0.0.0', env: { MONITOR_GRPC_HOST: '0.0.0.0' },
      want: ['MONITOR_GRPC_HOST: is not a loopback address and the gRPC listener has no TLS: set MONITOR_TLS_CERT and MONITOR_TLS_KEY (`autoscaler certs init DIR` makes them; add MONITOR_TLS_CLIENT_CA for mutual TLS), or MONITOR_INSECURE=true to allow plaintext (got "0.0.0.0")'],
    },
    { name: 'a token does not make plaintext private', env: { MONITOR_GRPC_HOST: '10.0.0.5', MONITOR_AUTH_TOKEN: TOKEN }, want: [expect.stringMatching(/^MONITOR_GRPC_HOST: is not a loopback address/)] },
    { name: 'a certificate without its key', env: { MONITOR_TLS_CERT: '/x.crt' }, want: ['MONITOR_TLS_KEY: must be set with MONITOR_TLS_CERT (the private key of that certificate)'] },
    { name: 'mutual TLS without TLS', env: { MONITOR_TLS_CLIENT_CA: '/ca.crt' }, want: ['MONITOR_TLS_CLIENT_CA: needs MONITOR_TLS_CERT and MONITOR_TLS_KEY: mutual TLS is TLS first (got "/ca.crt")'] },
    { name: 'TLS and insecure at once', env: { MONITOR_TLS_CERT: '/x.crt', MONITOR_TLS_KEY: '/x.key', MONITOR_INSECURE: 'true' }, want: ['MONITOR_INSECURE: is true but MONITOR_TLS_CERT is set, so TLS is used anyway: unset one of the two (got "true")'] },
    { name: 'a short token, not echoed', env: { MONITOR_AUTH_TOKEN: 'hunter2' }, want: ['MONITOR_AUTH_TOKEN: each comma-separated token must be at least 16 characters (autoscaler certs init writes one: token.txt) (value not shown)'] },
  ])('monitor server: $name', ({ env, want }) => {
    expect(problems(() => loadMonitorServerConfig({ env }))).toEqual(want);
  });

  it.each([
    { name: 'loopback plaintext (the demo)', env: {}, want: { tls: undefined, insecure: false, authTokens: [], allowUnknownInstances: false } },
    { name: 'plaintext elsewhere when asked', env: { MONITOR_GRPC_HOST: '0.0.0.0', MONITOR_INSECURE: 'true' }, want: { tls: undefined, insecure: true } },
    { name: 'TLS on 0.0.0.0', env: { MONITOR_GRPC_HOST: '0.0.0.0', MONITOR_TLS_CERT: '/s.crt', MONITOR_TLS_KEY: '/s.key' }, want: { tls: { certFile: '/s.crt', keyFile: '/s.key', clientCaFile: undefined } } },
    { name: 'two tokens (rotation)', env: { MONITOR_AUTH_TOKEN: `${TOKEN}, ${TOKEN}-next` }, want: { authTokens: [TOKEN, `${TOKEN}-next`] } },
  ])('monitor server accepts $name', ({ env, want }) => {
    expect(loadMonitorServerConfig({ env })).toMatchObject(want);
  });

  it.each([
    {
      name: 'plaintext to a private address', env: { AGENT_SERVER: '10.0.0.5:50051' },
      want: ['AGENT_SERVER: is not a loopback address and no TLS is configured: set AGENT_TLS_CA (the CA of the monitor server certificate, or "system"), or AGENT_INSECURE=true to allow plaintext (got "10.0.0.5:50051")'],
    },
    { name: 'a client certificate without a CA', env: { AGENT_TLS_CERT: '/c.crt', AGENT_TLS_KEY: '/c.key' }, want: ['AGENT_TLS_CA: must be set when AGENT_TLS_CERT is: the CA file that signed the monitor server certificate, or "system"'] },
    { name: 'a key without its certificate', env: { AGENT_TLS_CA: '/ca.crt', AGENT_TLS_KEY: '/c.key' }, want: ['AGENT_TLS_CERT: must be set with AGENT_TLS_KEY (the certificate of that key)'] },
    { name: 'a server name that is no name', env: { AGENT_TLS_CA: '/ca.crt', AGENT_TLS_SERVER_NAME: 'a b' }, want: ['AGENT_TLS_SERVER_NAME: must be a DNS name (the name in the monitor server certificate) (got "a b")'] },
    { name: 'a token with a space, not echoed', env: { AGENT_AUTH_TOKEN: 'secret secret secret' }, want: ['AGENT_AUTH_TOKEN: must be visible ASCII characters without spaces or commas (value not shown)'] },
  ])('agent: $name', ({ env, want }) => {
    expect(problems(() => loadAgentConfig({ env }))).toEqual(want);
  });

  it('`autoscaler monitor-server` exits 78 naming the keys for plaintext on a non-loopback address, without binding it', async () => {
    const { code, output } = await runCli(['monitor-server'], { AUTOSCALER_DB: join(tempDir(), 'a.db'), MONITOR_GRPC_HOST: '0.0.0.0', MONITOR_GRPC_PORT: '0', MONITOR_HTTP_PORT: '0' });
    expect(output).toContain('MONITOR_GRPC_HOST: is not a loopback address');
    for (const key of ['MONITOR_TLS_CERT', 'MONITOR_TLS_KEY', 'MONITOR_INSECURE']) expect(output).toContain(key);
    expect(code).toBe(78);
  });

  it('`autoscaler agent` exits 78 naming AGENT_TLS_CA when the CA file is missing', async () => {
    const { code, output } = await runCli(['agent', '--simulate'], { AGENT_INSTANCE_ID: 'i-1', AGENT_TLS_CA: '/nonexistent/ca.crt' });
    expect(output).toContain('AGENT_TLS_CA: cannot read /nonexistent/ca.crt (ENOENT)');
    expect(code).toBe(78);
  });
});

// ---- live servers ----------------------------------------------------------------------------

interface Live {
  readonly db: Db;
  readonly handle: MonitorServerHandle;
  readonly clock: ManualClock;
}

async function startServer(env: Record<string, string>): Promise<Live> {
  const dbPath = join(tempDir(), 'a.db');
  const db = openStore(dbPath);
  new GroupStore(db).upsert(testGroup(), 0);
  const clock = new ManualClock(Date.now());
  const instances = new InstanceStore(db);
  instances.insertLaunched('web', [{ id: 'i-1', providerState: 'running' }, { id: 'i-2', providerState: 'running' }], 'launched', 'test', clock.now());
  const cfg = loadMonitorServerConfig({ env: { AUTOSCALER_DB: dbPath, MONITOR_GRPC_PORT: '0', MONITOR_HTTP_PORT: '0', MONITOR_FLUSH_INTERVAL_MS: '20', MONITOR_ACK_INTERVAL_MS: '0', ...env } });
  const handle = await new MonitorServer(cfg, db, clock, captureLogger('warn').log).start();
  cleanup.push(async () => { await handle.close(); db.close(); });
  return { db, handle, clock };
}

interface ClientOpts {
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
  readonly token?: string;
  readonly plaintext?: boolean;
}

function client(port: number, o: ClientOpts): { c: MonitorClient; md: () => grpc.Metadata } {
  const link = o.plaintext ? serverLink({ tls: undefined, authToken: o.token ?? '' }, Date.now()) : serverLink({
    tls: { caFile: o.ca ?? file('ca.crt'), certFile: o.cert, keyFile: o.key, serverName: undefined }, authToken: o.token ?? '',
  }, Date.now());
  const c = new (monitorProto().monitor.v1.Monitor)(`127.0.0.1:${port}`, link.credentials, link.options);
  cleanup.push(() => c.close());
  const md = () => {
    const m = new grpc.Metadata();
    if (link.token) m.set(AUTHORIZATION_METADATA_KEY, `Bearer ${link.token}`);
    m.set(AGENT_KEY_METADATA_KEY, 'k'.repeat(32));
    return m;
  };
  return { c, md };
}

function register(k: { c: MonitorClient; md: () => grpc.Metadata }, instanceId: string): Promise<{ ok: true; sessionId: string } | { ok: false; code: number; details: string }> {
  return new Promise((resolve) => {
    k.c.Register({ instance_id: instanceId, group_id: 'web', agent_version: 'test', address: '127.0.0.1' }, k.md(), { deadline: Date.now() + 5_000 }, (err, res) =>
      resolve(err || !res ? { ok: false, code: err?.code ?? -1, details: err?.details ?? '' } : { ok: true, sessionId: res.session_id }));
  });
}

const ca = (dir: string) => join(dir, 'ca.crt');

describe('TLS on the gRPC listener', () => {
  const tlsEnv = () => ({ MONITOR_TLS_CERT: file('server.crt'), MONITOR_TLS_KEY: file('server.key') });

  it.each([
    { name: 'a plaintext client', opts: { plaintext: true }, want: { ok: false, code: grpc.status.UNAVAILABLE } },
    { name: 'a client trusting another CA', opts: { ca: ca(otherPki) as string | undefined }, want: { ok: false, code: grpc.status.UNAVAILABLE } },
    { name: 'a client trusting our CA', opts: {}, want: { ok: true } },
  ])('TLS server: $name', async ({ opts, want }) => {
    const { handle } = await startServer(tlsEnv());
    expect(await register(client(handle.grpcPort, opts), 'i-1')).toMatchObject(want);
  });

  it.each([
    { name: 'a TLS client without a certificate', opts: {}, id: 'i-1', want: { ok: false, code: grpc.status.UNAVAILABLE } },
    { name: 'a certificate from another CA', opts: { cert: file('instance-i-1.crt', otherPki), key: file('instance-i-1.key', otherPki) }, id: 'i-1', want: { ok: false, code: grpc.status.UNAVAILABLE } },
    { name: "another instance's certificate", opts: { cert: file('instance-i-2.crt'), key: file('instance-i-2.key') }, id: 'i-1', want: { ok: false, code: grpc.status.PERMISSION_DENIED, details: 'the client certificate names instance i-2, not instance "i-1" of group "web"' } },
    { name: 'the instance certificate', opts: { cert: file('instance-i-1.crt'), key: file('instance-i-1.key') }, id: 'i-1', want: { ok: true } },
    { name: 'a group certificate for an instance of the group', opts: { cert: file('group-web.crt'), key: file('group-web.key') }, id: 'i-2', want: { ok: true } },
  ])('mutual TLS server: $name', async ({ opts, id, want }) => {
    const { handle } = await startServer({ ...tlsEnv(), MONITOR_TLS_CLIENT_CA: file('ca.crt') });
    expect(await register(client(handle.grpcPort, opts), id)).toMatchObject(want);
  });

  it('a valid mTLS client registers and streams; its heartbeats are stored', async () => {
    const { handle, db, clock } = await startServer({ ...tlsEnv(), MONITOR_TLS_CLIENT_CA: file('ca.crt') });
    const k = client(handle.grpcPort, { cert: file('instance-i-1.crt'), key: file('instance-i-1.key') });
    const reg = await register(k, 'i-1');
    if (!reg.ok) throw new Error(`register failed: ${reg.details}`);
    const md = k.md();
    md.set(SESSION_METADATA_KEY, reg.sessionId);
    const stream = k.c.Heartbeats(md);
    const acks: HeartbeatAck__Output[] = [];
    stream.on('data', (a: HeartbeatAck__Output) => acks.push(a));
    stream.on('error', () => {});
    for (let seq = 1; seq <= 5; seq++) stream.write({ seq, sample_time_ms: clock.now(), cpu_percent: 30, mem_percent: 20 });
    await waitFor('ack of 5', () => acks.some((a) => a.persisted_seq === '5'));
    expect(db.prepare("SELECT COUNT(*) AS n FROM samples WHERE instance_id = 'i-1'").get()).toEqual({ n: 5 });
    stream.end();
  });

  it.each([
    { name: 'no token', token: undefined, want: { ok: false, code: grpc.status.UNAUTHENTICATED, details: 'missing "authorization: Bearer <token>" metadata' } },
    { name: 'a wrong token', token: `${TOKEN}x`, want: { ok: false, code: grpc.status.UNAUTHENTICATED, details: 'wrong token' } },
    { name: 'the right token', token: TOKEN, want: { ok: true } },
    { name: 'the second of two tokens', token: `${TOKEN}-next`, want: { ok: true } },
  ])('shared token: $name', async ({ token, want }) => {
    const { handle } = await startServer({ MONITOR_AUTH_TOKEN: `${TOKEN},${TOKEN}-next` });
    expect(await register(client(handle.grpcPort, { plaintext: true, ...(token ? { token } : {}) }), 'i-1')).toMatchObject(want);
    expect(handle.stats().refused.unauthenticated).toBe(want.ok ? 0 : 1);
  });

  it('a heartbeat stream without the token is refused UNAUTHENTICATED even with a valid session id', async () => {
    const { handle } = await startServer({ MONITOR_AUTH_TOKEN: TOKEN });
    const reg = await register(client(handle.grpcPort, { plaintext: true, token: TOKEN }), 'i-1');
    if (!reg.ok) throw new Error(reg.details);
    const intruder = client(handle.grpcPort, { plaintext: true });
    const md = new grpc.Metadata();
    md.set(SESSION_METADATA_KEY, reg.sessionId);
    const stream = intruder.c.Heartbeats(md);
    const err = await new Promise<grpc.ServiceError>((resolve) => stream.on('error', resolve));
    expect(err.code).toBe(grpc.status.UNAUTHENTICATED);
  });

  it('reloadTls swaps the certificates in place: new connections use the new CA; bad files keep the old ones', async () => {
    const live = tempDir('autoscaler-live-');
    for (const f of ['server.crt', 'server.key']) copyFileSync(file(f), join(live, f));
    const { handle } = await startServer({ MONITOR_TLS_CERT: join(live, 'server.crt'), MONITOR_TLS_KEY: join(live, 'server.key') });
    expect(await register(client(handle.grpcPort, {}), 'i-1')).toMatchObject({ ok: true });

    for (const f of ['server.crt', 'server.key']) copyFileSync(file(f, otherPki), join(live, f));
    await handle.reloadTls();
    expect(await register(client(handle.grpcPort, { ca: ca(otherPki) }), 'i-2')).toMatchObject({ ok: true });
    expect(await register(client(handle.grpcPort, {}), 'i-2')).toMatchObject({ ok: false, code: grpc.status.UNAVAILABLE });

    // A half-written rotation (the new key, the old certificate) is refused and changes nothing.
    copyFileSync(file('server.key'), join(live, 'server.key'));
    await expect(handle.reloadTls()).rejects.toThrow(/MONITOR_TLS_KEY: the key in .* does not belong to the certificate/);
    writeFileSync(join(live, 'server.crt'), 'garbage');
    await expect(handle.reloadTls()).rejects.toThrow(/MONITOR_TLS_CERT: .* is not a PEM file/);
    expect(await register(client(handle.grpcPort, { ca: ca(otherPki) }), 'i-2')).toMatchObject({ ok: true });
  });
});

describe('agent TLS reload', () => {
  it('reloadTls re-reads the client certificate: bad files are refused and kept out; good ones are used from the next connection', async () => {
    const live = tempDir('autoscaler-agent-live-');
    for (const f of ['instance-i-1.crt', 'instance-i-1.key']) copyFileSync(file(f), join(live, f));
    const dbPath = join(tempDir(), 'a.db');
    const db = openStore(dbPath);
    cleanup.push(() => { db.close(); });
    new GroupStore(db).upsert(testGroup(), Date.now());
    new InstanceStore(db).insertLaunched('web', [{ id: 'i-1', providerState: 'running' }], 'launched', 'test', Date.now());
    const serverEnv = (port: number) => ({
      AUTOSCALER_DB: dbPath, MONITOR_GRPC_PORT: String(port), MONITOR_HTTP_PORT: '0', MONITOR_FLUSH_INTERVAL_MS: '20', MONITOR_HEARTBEAT_INTERVAL_MS: '40',
      MONITOR_TLS_CERT: file('server.crt'), MONITOR_TLS_KEY: file('server.key'), MONITOR_TLS_CLIENT_CA: file('ca.crt'),
    });
    const first = captureLogger('info');
    let server = await new MonitorServer(loadMonitorServerConfig({ env: serverEnv(0) }), db, systemClock, first.log).start();
    const port = server.grpcPort;
    cleanup.push(() => server.close());
    const agent = runAgent(loadAgentConfig({ env: {
      AGENT_SERVER: `127.0.0.1:${port}`, AGENT_GROUP: 'web', AGENT_INSTANCE_ID: 'i-1', AGENT_SIMULATE: 'true', AGENT_INTERVAL_MS: '40',
      AGENT_RECONNECT_MIN_MS: '20', AGENT_RECONNECT_MAX_MS: '200', AGENT_TLS_CA: file('ca.crt'),
      AGENT_TLS_CERT: join(live, 'instance-i-1.crt'), AGENT_TLS_KEY: join(live, 'instance-i-1.key'),
    } }), captureLogger('warn').log);
    cleanup.push(() => agent.stop('test over'));
    await waitFor('acked', () => agent.reporter.stats.acked >= 2);
    const registered = (lines: Record<string, unknown>[]) => lines.filter((l) => l.msg === 'agent registered').map((l) => l.cert);
    const oldFingerprint = new X509Certificate(readFileSync(file('instance-i-1.crt'))).fingerprint256;
    expect(registered(first.lines)).toEqual([oldFingerprint]);

    writeFileSync(join(live, 'instance-i-1.key'), 'not a key');
    await expect(agent.reloadTls()).rejects.toThrow(/AGENT_TLS_KEY: .* is not a PEM file/);
    // A new certificate for the same instance (a rotation): accepted, used at the next connection.
    const rotated = tempDir('autoscaler-rotated-');
    for (const f of ['ca.crt', 'ca.key']) copyFileSync(file(f), join(rotated, f));
    await certsInit({ dir: rotated, instances: ['i-1'] });
    for (const f of ['instance-i-1.crt', 'instance-i-1.key']) copyFileSync(join(rotated, f), join(live, f));
    await agent.reloadTls();
    const newFingerprint = new X509Certificate(readFileSync(join(live, 'instance-i-1.crt'))).fingerprint256;
    expect(newFingerprint).not.toBe(oldFingerprint);

    await server.close();
    const second = captureLogger('info');
    server = await new MonitorServer(loadMonitorServerConfig({ env: serverEnv(port) }), db, systemClock, second.log).start();
    await waitFor('registered again', () => registered(second.lines).length > 0, 10_000);
    expect(registered(second.lines)).toEqual([newFingerprint]);
  }, 30_000);
});

describe('a real agent process over mutual TLS', () => {
  it('`autoscaler agent --simulate` with AGENT_TLS_* registers with `autoscaler monitor-server` with MONITOR_TLS_* and its samples are stored', async () => {
    const dbPath = join(tempDir(), 'a.db');
    const db = openStore(dbPath);
    cleanup.push(() => { db.close(); });
    new GroupStore(db).upsert(testGroup(), Date.now());
    new InstanceStore(db).insertLaunched('web', [{ id: 'i-1', providerState: 'running' }], 'launched', 'test', Date.now());
    const monitor = startCli(['monitor-server'], {
      AUTOSCALER_DB: dbPath, MONITOR_GRPC_PORT: '0', MONITOR_HTTP_PORT: '0', MONITOR_HEARTBEAT_INTERVAL_MS: '100', MONITOR_FLUSH_INTERVAL_MS: '20',
      MONITOR_TLS_CERT: file('server.crt'), MONITOR_TLS_KEY: file('server.key'), MONITOR_TLS_CLIENT_CA: file('ca.crt'), LOG_LEVEL: 'info',
    });
    cleanup.push(() => monitor.stop());
    const listening = await waitFor('monitor server listening', () => monitor.logs().find((l) => l.msg === 'monitor server listening'), 15_000);
    expect(listening).toMatchObject({ transport: 'mtls' });
    const agent = startCli(['agent', '--simulate'], {
      AGENT_SERVER: String(listening.grpcAddress), AGENT_GROUP: 'web', AGENT_INSTANCE_ID: 'i-1', LOG_LEVEL: 'info',
      AGENT_TLS_CA: file('ca.crt'), AGENT_TLS_CERT: file('instance-i-1.crt'), AGENT_TLS_KEY: file('instance-i-1.key'), AGENT_TLS_SERVER_NAME: 'localhost',
    });
    cleanup.push(() => agent.stop());
    await waitFor('samples of i-1 stored', () => (db.prepare("SELECT COUNT(*) AS n FROM samples WHERE instance_id = 'i-1'").get() as { n: number }).n >= 3, 15_000);
    expect(agent.logs().find((l) => l.msg === 'agent starting')).toMatchObject({ transport: 'mtls' });
    expect(monitor.logs().find((l) => l.msg === 'agent registered')).toMatchObject({ instanceId: 'i-1', auth: 'instance-cert' });
  }, 30_000);
});
