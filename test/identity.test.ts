/**
 * Instance identity bound to the session (issue 7, item 2): regression tests for "anyone can be
 * any instance" (a second client registering a live instance's id) and "anyone can add
 * instances" (2,000 Registers with random ids). Real servers on 127.0.0.1:0, a real agent.
 */
import * as grpc from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runAgent, type AgentHandle } from '../agent/main.js';
import { serverLink } from '../agent/reporter.js';
import { certsInit } from '../cli/certs.js';
import { loadAgentConfig } from '../config/agent.js';
import { loadMonitorServerConfig } from '../config/monitor-server.js';
import { systemClock } from '../lib/clock.js';
import { SESSION_METADATA_KEY, monitorProto, type HeartbeatAck__Output, type MonitorClient } from '../lib/proto.js';
import { captureLogger, testGroup } from '../lib/testing.js';
import { AGENT_KEY_METADATA_KEY, AUTHORIZATION_METADATA_KEY } from '../lib/tls.js';
import { peerHost, sessionIdentity, type Caller } from '../monitor-server/identity.js';
import { MonitorServer, type MonitorServerHandle } from '../monitor-server/server.js';
import { openStore, type Db } from '../store/db.js';
import { GroupStore } from '../store/groups.js';
import { InstanceStore } from '../store/instances.js';
import { SimLoadStore } from '../store/simload.js';
import { tempDir, waitFor } from './helpers.js';

const TOKEN = 'a-shared-token-of-32-characters!';
const pki = tempDir('autoscaler-pki-');
beforeAll(async () => {
  await certsInit({ dir: pki, groups: ['web'] });
}, 60_000);

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

interface Live {
  readonly db: Db;
  readonly handle: MonitorServerHandle;
  readonly lines: Record<string, unknown>[];
}

async function startServer(env: Record<string, string> = {}): Promise<Live> {
  const dbPath = join(tempDir(), 'a.db');
  const db = openStore(dbPath);
  new GroupStore(db).upsert(testGroup(), Date.now());
  new InstanceStore(db).insertLaunched('web', [{ id: 'i-1', providerState: 'running' }], 'launched', 'test', Date.now());
  const { log, lines } = captureLogger('warn');
  const cfg = loadMonitorServerConfig({ env: {
    AUTOSCALER_DB: dbPath, MONITOR_GRPC_PORT: '0', MONITOR_HTTP_PORT: '0', MONITOR_FLUSH_INTERVAL_MS: '20',
    MONITOR_HEARTBEAT_INTERVAL_MS: '40', MONITOR_SUSPECT_AFTER_MS: '2000', MONITOR_DEAD_AFTER_MS: '4000', ...env,
  } });
  const handle = await new MonitorServer(cfg, db, systemClock, log).start();
  cleanup.push(async () => { await handle.close(); db.close(); });
  return { db, handle, lines };
}

/** How a mode authenticates: server keys, and the agent keys an honest agent and an intruder both hold. */
interface Mode {
  readonly name: string;
  readonly server: () => Record<string, string>;
  readonly agent: () => Record<string, string>;
}

const MODES: readonly Mode[] = [
  { name: 'plaintext on loopback, no authentication', server: () => ({}), agent: () => ({}) },
  { name: 'a shared token both hold', server: () => ({ MONITOR_AUTH_TOKEN: TOKEN }), agent: () => ({ AGENT_AUTH_TOKEN: TOKEN }) },
  {
    name: 'mutual TLS with a group certificate both hold',
    server: () => ({ MONITOR_TLS_CERT: join(pki, 'server.crt'), MONITOR_TLS_KEY: join(pki, 'server.key'), MONITOR_TLS_CLIENT_CA: join(pki, 'ca.crt') }),
    agent: () => ({ AGENT_TLS_CA: join(pki, 'ca.crt'), AGENT_TLS_CERT: join(pki, 'group-web.crt'), AGENT_TLS_KEY: join(pki, 'group-web.key') }),
  },
];

function startAgent(port: number, extra: Record<string, string>): AgentHandle {
  const cfg = loadAgentConfig({ env: {
    AGENT_SERVER: `127.0.0.1:${port}`, AGENT_GROUP: 'web', AGENT_INSTANCE_ID: 'i-1', AGENT_SIMULATE: 'true', AGENT_SIM_NOISE_PERCENT: '0',
    AGENT_INTERVAL_MS: '40', AGENT_RECONNECT_MIN_MS: '20', AGENT_RECONNECT_MAX_MS: '200', ...extra,
  } });
  const agent = runAgent(cfg, captureLogger('warn').log);
  cleanup.push(() => agent.stop('test over'));
  return agent;
}

/** A raw client with the same credentials as the agent (from the same agent keys), and its own agent key. */
function rawClient(port: number, agentEnv: Record<string, string>, agentKey = randomBytes(16).toString('hex')): { c: MonitorClient; md: () => grpc.Metadata } {
  const cfg = loadAgentConfig({ env: { AGENT_SERVER: `127.0.0.1:${port}`, AGENT_INSTANCE_ID: 'x', ...agentEnv } });
  const link = serverLink(cfg, Date.now());
  const c = new (monitorProto().monitor.v1.Monitor)(cfg.server, link.credentials, link.options);
  cleanup.push(() => c.close());
  return {
    c,
    md: () => {
      const m = new grpc.Metadata();
      if (link.token) m.set(AUTHORIZATION_METADATA_KEY, `Bearer ${link.token}`);
      m.set(AGENT_KEY_METADATA_KEY, agentKey);
      return m;
    },
  };
}

function register(k: { c: MonitorClient; md: () => grpc.Metadata }, instanceId: string, agentVersion = 'test'): Promise<{ ok: true; sessionId: string } | { ok: false; code: number; details: string }> {
  return new Promise((resolve) => {
    k.c.Register({ instance_id: instanceId, group_id: 'web', agent_version: agentVersion, address: '127.0.0.1' }, k.md(), { deadline: Date.now() + 5_000 }, (err, res) =>
      resolve(err || !res ? { ok: false, code: err?.code ?? -1, details: err?.details ?? '' } : { ok: true, sessionId: res.session_id }));
  });
}

function openStream(k: { c: MonitorClient; md: () => grpc.Metadata }, sessionId: string) {
  const md = k.md();
  md.set(SESSION_METADATA_KEY, sessionId);
  const stream = k.c.Heartbeats(md);
  const acks: HeartbeatAck__Output[] = [];
  let error: grpc.ServiceError | undefined;
  stream.on('data', (a: HeartbeatAck__Output) => acks.push(a));
  stream.on('error', (e: grpc.ServiceError) => { error = e; });
  return { stream, acks, error: () => error };
}

const cpus = (db: Db) => (db.prepare("SELECT cpu FROM samples WHERE instance_id = 'i-1'").all() as { cpu: number }[]).map((r) => r.cpu);

describe('a second client registering a live instance is refused; the real agent keeps its stream', () => {
  it.each(MODES)('$name', async (mode) => {
    const { db, handle } = await startServer(mode.server());
    new SimLoadStore(db).set('web', { kind: 'constant', value: 30 }, Date.now());
    const agent = startAgent(handle.grpcPort, mode.agent());
    await waitFor('the agent streams', () => agent.reporter.stats.acked >= 3);

    const intruder = rawClient(handle.grpcPort, mode.agent());
    const hijack = await register(intruder, 'i-1');
    expect(hijack).toEqual({ ok: false, code: grpc.status.ALREADY_EXISTS, details: 'instance "i-1" has a live session held by another agent; retry when it ends' });
    // Without a session the intruder's heartbeats have nowhere to go.
    const s = openStream(intruder, 'made-up-session');
    s.stream.write({ seq: 1_000, sample_time_ms: Date.now(), cpu_percent: 99, mem_percent: 99 });
    await waitFor('stream refused', () => s.error());
    expect(s.error()?.code).toBe(grpc.status.FAILED_PRECONDITION);

    const acked = agent.reporter.stats.acked;
    await waitFor('the agent still acked', () => agent.reporter.stats.acked >= acked + 3);
    expect(agent.reporter.stats.connects).toBe(1);
    expect(handle.stats().refused.registerConflict).toBe(1);
    // Only the agent's samples: its own sequence numbers, none of the intruder's "cpu 99".
    const stored = cpus(db);
    expect(stored).not.toContain(99);
    const maxSeq = (db.prepare("SELECT MAX(seq) AS m FROM samples WHERE instance_id = 'i-1'").get() as { m: number }).m;
    expect(maxSeq).toBeLessThan(1_000);
    expect(maxSeq).toBeGreaterThanOrEqual(agent.reporter.stats.lastPersistedSeq);
  });

  it('the same agent reconnecting (same agent key, new connection) supersedes its own live session', async () => {
    const { handle } = await startServer();
    const key = randomBytes(16).toString('hex');
    const first = rawClient(handle.grpcPort, {}, key);
    const a = await register(first, 'i-1');
    if (!a.ok) throw new Error(a.details);
    const sa = openStream(first, a.sessionId);
    sa.stream.write({ seq: 1, sample_time_ms: Date.now(), cpu_percent: 10, mem_percent: 10 });
    await waitFor('first stream acked', () => sa.acks.length > 0);
    const b = await register(rawClient(handle.grpcPort, {}, key), 'i-1');
    expect(b).toMatchObject({ ok: true });
    await waitFor('old stream aborted', () => sa.error());
    expect(sa.error()).toMatchObject({ code: grpc.status.ABORTED, details: 'superseded by a newer registration' });
  });

  it('once the live session has ended, a new agent process (a new agent key) may register', async () => {
    const { handle } = await startServer();
    const first = rawClient(handle.grpcPort, {});
    const a = await register(first, 'i-1');
    if (!a.ok) throw new Error(a.details);
    const sa = openStream(first, a.sessionId);
    sa.stream.write({ seq: 1, sample_time_ms: Date.now(), cpu_percent: 10, mem_percent: 10 });
    await waitFor('acked', () => sa.acks.length > 0);
    sa.stream.cancel();
    await waitFor('session ended', () => handle.stats().sessions === 0);
    expect(await register(rawClient(handle.grpcPort, {}), 'i-1')).toMatchObject({ ok: true });
  });
});

describe('unknown instances', () => {
  it('2,000 Registers with random ids are refused: no row stored, no session kept, log lines bounded', async () => {
    const { db, handle, lines } = await startServer();
    const k = rawClient(handle.grpcPort, {});
    const rowsBefore = db.prepare('SELECT COUNT(*) AS n FROM instances').get();
    const codes = new Map<number, number>();
    const N = 2_000;
    const CONCURRENCY = 50;
    for (let i = 0; i < N; i += CONCURRENCY) {
      const batch = await Promise.all(Array.from({ length: CONCURRENCY }, () => register(k, `i-${randomBytes(8).toString('hex')}`)));
      for (const r of batch) {
        const code = r.ok ? 0 : r.code;
        codes.set(code, (codes.get(code) ?? 0) + 1);
      }
    }
    expect(Object.fromEntries(codes)).toEqual({ [grpc.status.PERMISSION_DENIED]: N });
    expect(db.prepare('SELECT COUNT(*) AS n FROM instances').get()).toEqual(rowsBefore);
    expect(handle.stats()).toMatchObject({ sessions: 0, streams: 0, refused: { registerUnknown: N } });
    expect(lines.filter((l) => l.msg === 'registration refused: unknown instance').length).toBeLessThanOrEqual(1);
    // The known instance still registers.
    expect(await register(k, 'i-1')).toMatchObject({ ok: true });
  }, 60_000);

  it('MONITOR_ALLOW_UNKNOWN_INSTANCES=true adopts an unknown id (standalone agents without a controller)', async () => {
    const { db, handle } = await startServer({ MONITOR_ALLOW_UNKNOWN_INSTANCES: 'true' });
    expect(await register(rawClient(handle.grpcPort, {}), 'standalone-1')).toMatchObject({ ok: true });
    expect(new InstanceStore(db).get('standalone-1')).toMatchObject({ origin: 'registered', state: 'running' });
  });
});

describe('session identity', () => {
  const caller = (over: Partial<Caller>): Caller => ({ kind: 'anonymous', instances: [], groups: [], certFingerprint: undefined, agentKey: undefined, peerHost: '127.0.0.1', ...over });
  it.each([
    { name: 'an instance certificate: the instance, whatever the key', a: caller({ kind: 'instance-cert', instances: ['i-1'], agentKey: 'k1'.repeat(8) }), b: caller({ kind: 'instance-cert', instances: ['i-1'], agentKey: 'k2'.repeat(8), certFingerprint: 'other' }), same: true },
    { name: 'a group certificate: the agent key', a: caller({ kind: 'group-cert', groups: ['web'], certFingerprint: 'F', agentKey: 'k1'.repeat(8) }), b: caller({ kind: 'group-cert', groups: ['web'], certFingerprint: 'F', agentKey: 'k2'.repeat(8) }), same: false },
    { name: 'a token: the same agent key', a: caller({ kind: 'token', agentKey: 'k1'.repeat(8) }), b: caller({ kind: 'token', agentKey: 'k1'.repeat(8), peerHost: '10.0.0.9' }), same: true },
    { name: 'no agent key: the address and version', a: caller({}), b: caller({ peerHost: '127.0.0.2' }), same: false },
  ])('$name', ({ a, b, same }) => {
    expect(sessionIdentity(a, 'i-1', 'v1') === sessionIdentity(b, 'i-1', 'v1')).toBe(same);
  });

  it.each([
    { peer: '127.0.0.1:5000', host: '127.0.0.1' },
    { peer: '[::1]:5000', host: '::1' },
    { peer: '::1:5000', host: '::1' },
    { peer: 'unknown', host: 'unknown' },
  ])('peer $peer → $host', ({ peer, host }) => {
    expect(peerHost(peer)).toBe(host);
  });
});
