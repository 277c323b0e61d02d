/**
 * The HTTP API (api/), against a real monitor server on 127.0.0.1:0 with a temp-file SQLite
 * store: every route with good input, bad input (the fields named), no token and a wrong token;
 * the OpenAPI document valid (the official 3.1 schema) and covering every route; the event
 * stream resumable without loss; and the CLI with --api giving the same answers and refusals as
 * the CLI on the store.
 */
import { Validator } from '@seriousme/openapi-schema-validator';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ROUTES } from '../api/routes.js';
import { loadMonitorServerConfig } from '../config/monitor-server.js';
import { ManualClock, captureLogger, testGroup } from '../lib/testing.js';
import { MonitorServer, type MonitorServerHandle } from '../monitor-server/server.js';
import { openStore, type Db } from '../store/db.js';
import { EventStore } from '../store/events.js';
import { GroupStore } from '../store/groups.js';
import { InstanceStore } from '../store/instances.js';
import { TelemetryStore } from '../store/telemetry.js';
import { killAll, runCli, tempDir } from './helpers.js';

const WRITE = 'write-token-0123456789abcdef';
const READ = 'read-token-0123456789abcdef';

let dir: string;
let dbPath: string;
let db: Db;
let clock: ManualClock;
let handle: MonitorServerHandle;
let base: string;

async function start(env: Record<string, string> = {}): Promise<void> {
  dir = tempDir();
  dbPath = join(dir, 'a.db');
  db = openStore(dbPath);
  new GroupStore(db).upsert(testGroup(), 0);
  new GroupStore(db).upsert(testGroup({ id: 'api', minSize: 1, maxSize: 6 }), 0);
  clock = new ManualClock(1_700_000_000_000);
  const tokens = join(dir, 'tokens');
  writeFileSync(tokens, `# name role secret\nalice write ${WRITE}\nviewer read ${READ}\n`);
  const cfg = loadMonitorServerConfig({
    env: { AUTOSCALER_DB: dbPath, MONITOR_GRPC_PORT: '0', MONITOR_HTTP_PORT: '0', MONITOR_API_TOKENS_FILE: tokens, MONITOR_API_STREAM_MS: '100', MONITOR_STATUS_CACHE_MS: '0', ...env },
  });
  handle = await new MonitorServer(cfg, db, clock, captureLogger('warn').log).start();
  base = `http://127.0.0.1:${handle.httpPort}`;
}

async function stop(): Promise<void> {
  await handle.close();
  db.close();
}

interface Call {
  readonly method: string;
  readonly path: string;
  readonly body?: unknown;
  readonly token?: string | null;
  readonly raw?: string;
  readonly type?: string;
}

async function call(c: Call): Promise<{ status: number; json: unknown; headers: Headers }> {
  const token = c.token === undefined ? WRITE : c.token;
  const res = await fetch(`${base}${c.path}`, {
    method: c.method,
    headers: {
      ...(token === null ? {} : { authorization: `Bearer ${token}` }),
      ...(c.body !== undefined || c.raw !== undefined ? { 'content-type': c.type ?? 'application/json' } : {}),
    },
    ...(c.raw !== undefined ? { body: c.raw } : c.body !== undefined ? { body: JSON.stringify(c.body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, json: text === '' ? null : JSON.parse(text), headers: res.headers };
}

type Err = { error: string; code: string; fields: { in?: string; path: string; message: string }[] };

afterAll(killAll);

describe('HTTP API', () => {
  beforeEach(() => start());
  afterEach(() => stop());

  it('serves an OpenAPI 3.1 document that is valid and lists every route, with no token', async () => {
    const r = await call({ method: 'GET', path: '/openapi.json', token: null });
    expect(r.status).toBe(200);
    const doc = r.json as { openapi: string; paths: Record<string, Record<string, { operationId: string; security: unknown[] }>> };
    const result = await new Validator().validate(doc as unknown as Parameters<Validator["validate"]>[0]);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(doc.openapi).toBe('3.1.0');
    const documented = Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`)).sort();
    expect(documented).toEqual(ROUTES.map((rt) => `${rt.method} ${rt.path}`).sort());
    // Writes name the bearer scheme; the request body schema is the zod schema's JSON Schema.
    expect(doc.paths['/api/v1/groups/{group}/capacity']?.put?.security).toEqual([{ bearer: [] }]);
    const body = (doc.paths['/api/v1/groups/{group}/capacity']?.put as unknown as { requestBody: { content: Record<string, { schema: { properties: Record<string, unknown>; required: string[] } }> } }).requestBody;
    expect(body.content['application/json']?.schema.required).toEqual(['desired']);
    expect(body.content['application/json']?.schema.properties.desired).toMatchObject({ type: 'integer', minimum: 0, maximum: 10_000 });
  });

  // Every route: one good call, and what it must answer. The coverage test below fails when a
  // route is added without a row here.
  const good: { op: string; call: Call; status?: number; check: (json: unknown) => void }[] = [
    { op: 'getStatus', call: { method: 'GET', path: '/api/v1/status?group=web&decisions=3' }, check: (j) => expect((j as { groups: { id: string }[] }).groups.map((g) => g.id)).toEqual(['web']) },
    { op: 'listGroups', call: { method: 'GET', path: '/api/v1/groups' }, check: (j) => expect((j as { id: string }[]).map((g) => g.id)).toEqual(['api', 'web']) },
    {
      op: 'applyGroups', call: { method: 'POST', path: '/api/v1/groups', body: [{ id: 'batch', minSize: 0, maxSize: 3 }, { id: 'web', minSize: 1, maxSize: 5 }] },
      check: (j) => {
        expect(j).toMatchObject([{ id: 'batch', created: true, changes: [] }, { id: 'web', created: false, revision: 2 }]);
        expect((j as { changes: unknown[] }[])[1]?.changes).toContainEqual({ path: 'maxSize', from: 4, to: 5 });
      },
    },
    { op: 'getGroup', call: { method: 'GET', path: '/api/v1/groups/web' }, check: (j) => expect(j).toMatchObject({ group: { id: 'web' }, document: { id: 'web', minSize: 1, maxSize: 4, policy: { warmupMs: 0 } }, forecast: null, schedules: [] }) },
    {
      op: 'setPolicy', call: { method: 'PATCH', path: '/api/v1/groups/web/policy', body: { set: { 'targetTracking.0.target': 60, maxSize: 8 } } },
      check: (j) => expect(j).toMatchObject({ id: 'web', revision: 2, changes: [{ path: 'maxSize', from: 4, to: 8 }, { path: 'policy.targetTracking.0.target', from: 50, to: 60 }] }),
    },
    { op: 'validatePolicy', call: { method: 'POST', path: '/api/v1/policies/validate', body: { warmupMs: 30_000 }, token: READ }, check: (j) => expect(j).toEqual({ kind: 'policy' }) },
    { op: 'policyHistory', call: { method: 'GET', path: '/api/v1/groups/web/history?limit=5' }, check: (j) => expect((j as { kind: string }[]).map((e) => e.kind)).toEqual(['created']) },
    { op: 'setCapacity', call: { method: 'PUT', path: '/api/v1/groups/web/capacity', body: { desired: 3, forMs: 60_000 } }, check: (j) => expect(j).toMatchObject({ id: 'web', override: { desired: 3, until: 1_700_000_060_000, by: 'api:alice' } }) },
    { op: 'clearCapacity', call: { method: 'DELETE', path: '/api/v1/groups/web/capacity' }, check: (j) => expect((j as { override?: unknown }).override).toBeUndefined() },
    { op: 'pauseGroup', call: { method: 'POST', path: '/api/v1/groups/web/pause', body: { reason: 'maintenance' } }, check: (j) => expect(j).toMatchObject({ id: 'web', paused: true }) },
    { op: 'resumeGroup', call: { method: 'POST', path: '/api/v1/groups/web/resume', body: {} }, check: (j) => expect(j).toMatchObject({ id: 'web', paused: false }) },
    { op: 'setDryRun', call: { method: 'PUT', path: '/api/v1/groups/web/dry-run', body: { enabled: true } }, check: (j) => expect(j).toMatchObject({ id: 'web', dryRun: true }) },
    { op: 'listInstances', call: { method: 'GET', path: '/api/v1/instances?group=web&state=running', token: READ }, check: (j) => expect((j as { id: string }[]).map((i) => i.id)).toEqual(['web-1']) },
    { op: 'listEvents', call: { method: 'GET', path: '/api/v1/events?group=web&limit=10' }, check: (j) => expect((j as { events: { kind: string }[]; next: string }).events.map((e) => e.kind)).toEqual(['change', 'decision']) },
    { op: 'streamEvents', call: { method: 'GET', path: '/api/v1/stream?group=web' }, check: () => undefined },
    {
      op: 'groupMetrics', call: { method: 'GET', path: '/api/v1/groups/web/metrics?window=10m&step=1m' },
      check: (j) => {
        const h = j as { stepMs: number; ts: number[]; avgCpu: (number | null)[]; reporting: number[]; desired: (number | null)[]; instances: { id: string; cpu: (number | null)[] }[] };
        expect(h.stepMs).toBe(60_000);
        // 10 minutes back from a time inside a minute: 11 aligned buckets, the last one partial.
        expect(h.ts).toHaveLength(11);
        expect(h.ts.every((t) => t % 60_000 === 0)).toBe(true);
        expect(h.avgCpu.at(-1)).toBe(40);
        expect(h.reporting.at(-1)).toBe(1);
        expect(h.desired.at(-1)).toBe(2);
        expect(h.instances).toEqual([{ id: 'web-1', cpu: [...new Array<null>(10).fill(null), 40] }]);
      },
    },
    {
      op: 'simulateGroup', call: { method: 'GET', path: '/api/v1/groups/web/simulate?trace=flash-crowd&boot=60s&compare=oracle', token: READ },
      check: (j) => {
        const r = j as { bootS: number; runs: { policy: string }[]; series: { stepS: number; demand: number[]; capacity: Record<string, number[]> } };
        expect(r.bootS).toBe(60);
        expect(r.runs.map((x) => x.policy)).toEqual(['policy', 'oracle']);
        expect(r.series.demand.length).toBeGreaterThan(10);
        expect(r.series.capacity.oracle).toHaveLength(r.series.demand.length);
      },
    },
    { op: 'getLoad', call: { method: 'GET', path: '/api/v1/groups/web/load' }, check: (j) => expect(j).toBeNull() },
    { op: 'setLoad', call: { method: 'PUT', path: '/api/v1/groups/web/load', body: { spec: 'step:30,200@60s' } }, check: (j) => expect(j).toMatchObject({ groupId: 'web', profile: 'step:30,200@60s', demand: 30 }) },
    { op: 'clearLoad', call: { method: 'DELETE', path: '/api/v1/groups/web/load' }, check: (j) => expect(j).toEqual({ cleared: false }) },
    { op: 'openapi', call: { method: 'GET', path: '/openapi.json', token: null }, check: (j) => expect(j).toHaveProperty('openapi') },
  ];

  it('has a good-input row for every route', () => {
    expect(good.map((g) => g.op).sort()).toEqual(ROUTES.map((r) => r.operationId).sort());
  });

  it.each(good.filter((g) => g.op !== 'streamEvents'))('$op: good input → $call.method $call.path', async ({ call: c, check, status }) => {
    // Something to show: a running instance with a sample, and a decision.
    new InstanceStore(db).insertLaunched('web', [{ id: 'web-1', providerState: 'running' }], 'launched', 'test', clock.now());
    new InstanceStore(db).register({ id: 'web-1', groupId: 'web', address: '127.0.0.1', agentVersion: 't' }, clock.now());
    new TelemetryStore(db).writeBatch([{ instanceId: 'web-1', seq: 1, sampleAt: clock.now() - 1_000, receivedAt: clock.now() - 1_000, cpu: 40, mem: 20 }]);
    new EventStore(db).recordDecision('web', { current: 1, desired: 2, reason: 'ScaleOut', message: 'to 2', trail: [], details: {} }, clock.now() - 500);
    const r = await call(c);
    expect(r.status, JSON.stringify(r.json)).toBe(status ?? 200);
    check(r.json);
  });

  // Bad input: the fields at fault are named, and nothing changes.
  it.each([
    { name: 'desired out of range', call: { method: 'PUT', path: '/api/v1/groups/web/capacity', body: { desired: -1 } }, field: 'desired', where: 'body' },
    { name: 'desired outside the group bounds', call: { method: 'PUT', path: '/api/v1/groups/web/capacity', body: { desired: 9 } }, field: 'desired', message: 'outside the group\'s bounds 1..4' },
    { name: 'unknown body field', call: { method: 'PUT', path: '/api/v1/groups/web/dry-run', body: { enabled: true, force: 1 } }, field: 'force', where: 'body' },
    { name: 'wrong type', call: { method: 'PUT', path: '/api/v1/groups/web/dry-run', body: { enabled: 'yes' } }, field: 'enabled', where: 'body' },
    { name: 'policy value out of range', call: { method: 'PATCH', path: '/api/v1/groups/web/policy', body: { set: { 'targetTracking.0.target': 500 } } }, field: 'policy.targetTracking.0.target' },
    { name: 'policy unknown field', call: { method: 'PATCH', path: '/api/v1/groups/web/policy', body: { set: { warmUp: 5 } } }, field: 'policy' },
    { name: 'bounds the wrong way', call: { method: 'POST', path: '/api/v1/groups', body: { id: 'x', minSize: 5, maxSize: 2 } }, field: 'maxSize' },
    { name: 'second document bad', call: { method: 'POST', path: '/api/v1/groups', body: [{ id: 'ok', minSize: 0, maxSize: 2 }, { id: 'bad', minSize: 0, maxSize: 2, policy: { warmupMs: -1 } }] }, field: 'policy.warmupMs', message: 'group document 1' },
    { name: 'bad cron', call: { method: 'POST', path: '/api/v1/policies/validate', body: { schedules: [{ name: 'n', cron: 'nope', durationMs: 60_000, minSize: 1 }] } }, field: 'schedules.0.cron' },
    { name: 'limit zero', call: { method: 'GET', path: '/api/v1/events?limit=0' }, field: 'limit', where: 'query' },
    { name: 'unknown query field', call: { method: 'GET', path: '/api/v1/events?limt=3' }, field: 'limt', where: 'query' },
    { name: 'bad cursor', call: { method: 'GET', path: '/api/v1/events?after=abc' }, field: 'after', where: 'query' },
    { name: 'since not a time', call: { method: 'GET', path: '/api/v1/events?since=yesterday' }, field: 'since', where: 'query' },
    { name: 'decisions out of range', call: { method: 'GET', path: '/api/v1/status?decisions=-1' }, field: 'decisions', where: 'query' },
    { name: 'bad state', call: { method: 'GET', path: '/api/v1/instances?state=sleeping' }, field: 'state', where: 'query' },
    { name: 'unknown trace', call: { method: 'GET', path: '/api/v1/groups/web/simulate?trace=nosuch' }, field: 'trace', message: 'unknown trace "nosuch"' },
    { name: 'recorded history missing', call: { method: 'GET', path: '/api/v1/groups/web/simulate' }, field: 'trace' },
    { name: 'bad window', call: { method: 'GET', path: '/api/v1/groups/web/metrics?window=5s' }, field: 'window', where: 'query' },
    { name: 'bad profile', call: { method: 'PUT', path: '/api/v1/groups/web/load', body: { spec: 'square:1' } }, field: 'spec', message: 'unknown profile "square"' },
    { name: 'bad group id', call: { method: 'GET', path: '/api/v1/groups/has%20space' }, field: 'group', where: 'path' },
    { name: 'not JSON', call: { method: 'PUT', path: '/api/v1/groups/web/dry-run', raw: '{"enabled":' }, field: '', message: 'not valid JSON' },
    { name: 'no body', call: { method: 'PUT', path: '/api/v1/groups/web/dry-run', raw: '' }, field: '', message: 'missing' },
  ] as { name: string; call: Call; field: string; where?: string; message?: string }[])('bad input → 400 naming the field: $name', async ({ call: c, field, where, message }) => {
    const before = new GroupStore(db).list();
    const r = await call(c);
    expect(r.status, JSON.stringify(r.json)).toBe(400);
    const e = r.json as Err;
    expect(e.code).toBe('invalid');
    expect(e.fields.map((f) => f.path)).toContain(field);
    if (where !== undefined) expect(e.fields.find((f) => f.path === field)?.in).toBe(where);
    if (message !== undefined) expect(e.error).toContain(message);
    expect(new GroupStore(db).list()).toEqual(before);
  });

  it.each([
    { name: 'wrong media type', call: { method: 'PUT', path: '/api/v1/groups/web/dry-run', raw: 'enabled=true', type: 'application/x-www-form-urlencoded' }, status: 415, code: 'unsupported' },
    { name: 'too large', call: { method: 'POST', path: '/api/v1/groups', raw: `[${'1,'.repeat(3 * 1024 * 1024)}1]` }, status: 413, code: 'too_large' },
    { name: 'wrong method', call: { method: 'DELETE', path: '/api/v1/groups' }, status: 405, code: 'method' },
    { name: 'no such route', call: { method: 'GET', path: '/api/v1/nothing' }, status: 404, code: 'not_found' },
  ] as { name: string; call: Call; status: number; code: string }[])('$name → $status', async ({ call: c, status, code }) => {
    const r = await call(c);
    expect(r.status).toBe(status);
    expect((r.json as Err).code).toBe(code);
    if (status === 405) expect(r.headers.get('allow')).toBe('GET, POST');
  });

  const groupRoutes = ROUTES.filter((r) => r.path.includes('{group}'));
  it.each(groupRoutes.map((r) => ({ op: r.operationId, method: r.method, path: r.path.replace('{group}', 'nope'), hasBody: r.body !== undefined })))(
    'unknown group → 404 with the same message: $op', async ({ method, path, hasBody }) => {
      const body = path.endsWith('/capacity') && method === 'PUT' ? { desired: 1 } : path.endsWith('/dry-run') ? { enabled: true } : path.endsWith('/load') && method === 'PUT' ? { spec: '100' } : path.endsWith('/policy') ? { set: { warmupMs: 1 } } : {};
      const r = await call({ method, path, ...(hasBody ? { body } : {}) });
      expect(r.status).toBe(404);
      expect((r.json as Err).error).toBe('no group "nope" (autoscaler group list shows them; autoscaler group apply FILE creates one)');
    });

  it.each(['getStatus', 'listEvents', 'streamEvents', 'listInstances'])('unknown group in the query → 404: %s', async (op) => {
    const rt = ROUTES.find((r) => r.operationId === op);
    const r = await call({ method: 'GET', path: `${rt?.path}?group=nope` });
    expect(r.status).toBe(404);
    expect((r.json as Err).error).toContain('no group "nope"');
  });

  const writes = ROUTES.filter((r) => r.access === 'write').map((r) => ({ op: r.operationId, method: r.method, path: r.path.replace('{group}', 'web') }));
  it.each(writes)('$op: no token → 401, wrong token → 401, read token → 403, and nothing changes', async ({ method, path }) => {
    const before = JSON.stringify(new GroupStore(db).list());
    const none = await call({ method, path, body: {}, token: null });
    expect(none.status).toBe(401);
    expect((none.json as Err).error).toMatch(/^missing token: this route changes the fleet and needs a bearer token with role write/);
    expect(none.headers.get('www-authenticate')).toBe('Bearer realm="autoscaler"');
    const wrong = await call({ method, path, body: {}, token: `${WRITE}x` });
    expect(wrong.status).toBe(401);
    expect((wrong.json as Err).error).toBe('invalid token: it matches none of the configured API tokens');
    const reader = await call({ method, path, body: {}, token: READ });
    expect(reader.status).toBe(403);
    expect((reader.json as Err).error).toBe('token "viewer" has role read: this route changes the fleet and needs role write');
    expect(JSON.stringify(new GroupStore(db).list())).toBe(before);
  });

  it('reads are open on loopback, but a wrong token is still refused', async () => {
    expect((await call({ method: 'GET', path: '/api/v1/groups', token: null })).status).toBe(200);
    expect((await call({ method: 'GET', path: '/api/v1/groups', token: 'not-a-token-at-all-xxxx' })).status).toBe(401);
  });

  it('records who changed what: the token name is the actor', async () => {
    await call({ method: 'POST', path: '/api/v1/groups/web/pause', body: { reason: 'deploy' } });
    const history = await call({ method: 'GET', path: '/api/v1/groups/web/history', token: READ });
    expect((history.json as { kind: string; actor: string; message: string }[])[0]).toMatchObject({ kind: 'pause', actor: 'api:alice', message: 'paused: deploy' });
  });

  it('pages through events with the cursor, without loss or repeats', async () => {
    const events = new EventStore(db);
    for (let i = 0; i < 25; i++) events.recordDecision(i % 2 === 0 ? 'web' : 'api', { current: 1, desired: 1, reason: 'WithinTolerance', message: `n${i}`, trail: [], details: {} }, clock.now() + i);
    const seen: string[] = [];
    let after = '0.0.0';
    for (let page = 0; page < 20; page++) {
      const r = await call({ method: 'GET', path: `/api/v1/events?after=${after}&limit=4`, token: READ });
      const p = r.json as { events: { kind: string; message: string }[]; next: string };
      if (p.events.length === 0) break;
      seen.push(...p.events.filter((e) => e.kind === 'decision').map((e) => e.message));
      after = p.next;
    }
    expect(seen).toEqual(Array.from({ length: 25 }, (_, i) => `n${i}`));
  });
});

/** Read server-sent events from a streaming fetch until `want` of them have arrived (bounded). */
async function readEvents(url: string, headers: Record<string, string>, want: (events: { id?: string; event: string; data: unknown }[]) => boolean): Promise<{ id?: string; event: string; data: unknown }[]> {
  const ctrl = new AbortController();
  const timer = setTimeout(() => ctrl.abort(), 10_000);
  const res = await fetch(url, { headers, signal: ctrl.signal });
  expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  const events: { id?: string; event: string; data: unknown }[] = [];
  let buf = '';
  try {
    for (let n = 0; n < 10_000 && !want(events); n++) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const fields = Object.fromEntries(block.split('\n').filter((l) => !l.startsWith(':') && l.includes(': ')).map((l) => [l.slice(0, l.indexOf(': ')), l.slice(l.indexOf(': ') + 2)]));
        if (fields.event !== undefined) events.push({ ...(fields.id === undefined ? {} : { id: fields.id }), event: fields.event, data: JSON.parse(fields.data ?? 'null') });
      }
    }
  } finally {
    clearTimeout(timer);
    ctrl.abort();
  }
  return events;
}

describe('event stream', () => {
  beforeEach(() => start());
  afterEach(() => stop());

  it('streams changes and decisions as they happen, and a reconnect with Last-Event-ID misses none and repeats none', async () => {
    const url = `${base}/api/v1/stream?group=web`;
    const pending = readEvents(url, {}, (e) => e.filter((x) => x.event === 'decision').length >= 2 && e.some((x) => x.event === 'change'));
    // Let the stream open (its hello), then act.
    await readEvents(url, {}, (e) => e.some((x) => x.event === 'hello'));
    await call({ method: 'POST', path: '/api/v1/groups/web/pause', body: {} });
    const events = new EventStore(db);
    events.recordDecision('web', { current: 1, desired: 1, reason: 'Paused', message: 'd1', trail: [], details: {} }, clock.now());
    events.recordDecision('api', { current: 1, desired: 1, reason: 'WithinTolerance', message: 'other group', trail: [], details: {} }, clock.now());
    events.recordDecision('web', { current: 1, desired: 1, reason: 'Paused', message: 'd2', trail: [], details: {} }, clock.now());
    const got = await pending;
    const log = got.filter((e) => e.event === 'decision' || e.event === 'change');
    expect(log.map((e) => (e.event === 'decision' ? (e.data as { message: string }).message : e.event))).toEqual(['change', 'd1', 'd2']);
    expect(got.some((e) => e.event === 'sample' && (e.data as { groupId: string }).groupId === 'web')).toBe(true);

    // Resume from after the first decision: exactly the later ones.
    const first = log[1]?.id as string;
    events.recordDecision('web', { current: 1, desired: 1, reason: 'Paused', message: 'd3', trail: [], details: {} }, clock.now());
    const resumed = await readEvents(url, { 'last-event-id': first }, (e) => e.filter((x) => x.event === 'decision').length >= 2);
    expect(resumed.filter((e) => e.event === 'decision').map((e) => (e.data as { message: string }).message)).toEqual(['d2', 'd3']);
  });

  it('streams instance state changes', async () => {
    const url = `${base}/api/v1/stream`;
    await readEvents(url, {}, (e) => e.some((x) => x.event === 'hello'));
    const pending = readEvents(url, {}, (e) => e.some((x) => x.event === 'instance'));
    await new Promise((r) => setTimeout(r, 300));
    new InstanceStore(db).insertLaunched('web', [{ id: 'web-9', providerState: 'pending' }], 'launched', 'test', clock.now());
    const got = await pending;
    expect(got.find((e) => e.event === 'instance')?.data).toMatchObject({ groupId: 'web', id: 'web-9', from: null, to: 'pending' });
  });
});

describe('reads behind a token', () => {
  beforeEach(() => start({ MONITOR_API_READ: 'token' }));
  afterEach(() => stop());

  it('refuses reads without a token (401) and serves them with a read token', async () => {
    const none = await call({ method: 'GET', path: '/api/v1/groups', token: null });
    expect(none.status).toBe(401);
    expect((none.json as Err).error).toMatch(/^missing token: reads need a bearer token on this listener/);
    expect((await call({ method: 'GET', path: '/api/v1/groups', token: READ })).status).toBe(200);
    // The document stays open: a client needs it to learn how to authenticate.
    expect((await call({ method: 'GET', path: '/openapi.json', token: null })).status).toBe(200);
  });
});

describe('CLI with --api', () => {
  beforeEach(() => start());
  afterEach(() => stop());

  it('does what the CLI does on the store, recorded under the token name', async () => {
    const env = { AUTOSCALER_API_TOKEN: WRITE };
    const set = await runCli(['policy', 'set', 'web', 'maxSize=6', 'targetTracking.0.target=55', '--api', base], env);
    expect(set.output).toContain('group web revision 2: maxSize 4 → 6, policy.targetTracking.0.target 50 → 55');
    expect(set.code).toBe(0);
    const show = await runCli(['policy', 'show', 'web', '--json', '--db', dbPath]);
    expect(JSON.parse(show.output)).toMatchObject({ maxSize: 6, policy: { targetTracking: [{ target: 55 }] } });
    const history = await runCli(['policy', 'history', 'web', '--db', dbPath]);
    expect(history.output).toMatch(/policy|applied/);
    expect(history.output).toContain('api:alice');
    const status = await runCli(['status', '--api', base, '--json']);
    expect(JSON.parse(status.output)).toHaveProperty('groups');
  });

  it.each([
    { name: 'unknown group (events)', args: ['events', '--group', 'nope'] },
    { name: 'unknown group (status)', args: ['status', '--group', 'nope'] },
    { name: 'unknown group (scale)', args: ['scale', 'nope', '--desired', '1'] },
    { name: 'outside the bounds', args: ['scale', 'web', '--desired', '9'] },
    { name: 'bad policy value', args: ['policy', 'set', 'web', 'targetTracking.0.target=500'] },
  ])('refuses the same way on the store and through the API: $name', async ({ args }) => {
    const local = await runCli([...args, '--db', dbPath]);
    const remote = await runCli([...args, '--api', base], { AUTOSCALER_API_TOKEN: WRITE });
    expect(local.code).toBe(2);
    expect(remote.code).toBe(2);
    const message = (o: string) => o.split('\n').filter((l) => l.startsWith('autoscaler:') || l.startsWith('  - ')).join('\n');
    expect(message(remote.output)).toBe(message(local.output));
    expect(message(local.output)).not.toBe('');
  });

  it('without a token a write is refused with the reason, exit 2', async () => {
    const r = await runCli(['pause', 'web', '--api', base]);
    expect(r.code).toBe(2);
    expect(r.output).toContain('missing token: this route changes the fleet');
  });

  it('an API that is not there is an error naming the address, exit 1', async () => {
    const r = await runCli(['status', '--api', 'http://127.0.0.1:1']);
    expect(r.code).toBe(1);
    expect(r.output).toContain('cannot reach the API at http://127.0.0.1:1');
  });
});
