/**
 * Identity proofs of Register (issue 7, item 2; docs/security.md "Identity proofs"): EC2 instance
 * identity documents signed with a test RSA key whose self-signed certificate the server takes
 * from config, nonce binding against replays, and the local provider's launch token. Real
 * servers on 127.0.0.1:0, real SQLite files, a loopback IMDS, real agent processes.
 */
import * as grpc from '@grpc/grpc-js';
import { execFileSync } from 'node:child_process';
import { createPrivateKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { discoverIdentityWithProof } from '../agent/identity.js';
import { loadAgentConfig } from '../config/agent.js';
import { loadMonitorServerConfig } from '../config/monitor-server.js';
import { ConfigError } from '../config/shared.js';
import { LocalProvider } from '../controller/providers/local.js';
import { systemClock } from '../lib/clock.js';
import { cliEntry } from '../lib/paths.js';
import { monitorProto, type MonitorClient } from '../lib/proto.js';
import { captureLogger, testGroup } from '../lib/testing.js';
import { AGENT_KEY_METADATA_KEY } from '../lib/tls.js';
import {
  IID_DOCUMENT_METADATA_KEY, IID_NONCE_METADATA_KEY, IID_SIGNATURE_METADATA_KEY, LAUNCH_TOKEN_METADATA_KEY,
} from '../monitor-server/identity.js';
import { MonitorServer, type MonitorServerHandle } from '../monitor-server/server.js';
import { openStore, type Db } from '../store/db.js';
import { GroupStore } from '../store/groups.js';
import { InstanceStore } from '../store/instances.js';
import { IdentityBindingStore, LAUNCH_KEY_NAME, SecretStore, launchTokenFor } from '../store/secrets.js';
import { identityDocumentFor, signIdentityDocument, startFakeImds } from './fake-aws/imds.js';
import { killAll, startCli, tempDir, waitFor } from './helpers.js';

const ID = 'i-0123456789abcdef0';
const OTHER = 'i-0fedcba9876543210';

/** The "AWS" key and its self-signed certificate (the server's MONITOR_EC2_IDENTITY_CERTS), and a key nobody trusts. */
const pki = tempDir('autoscaler-iid-');
const certFile = join(pki, 'aws.crt');
let awsKey: KeyObject;
const strangerKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
beforeAll(() => {
  const keyFile = join(pki, 'aws.key');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '30', '-subj', '/CN=test AWS identity'], { stdio: 'ignore' });
  awsKey = createPrivateKey(readFileSync(keyFile));
}, 30_000);

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  killAll();
  for (const f of cleanup.splice(0).reverse()) await f();
});

interface Live {
  readonly db: Db;
  readonly dbPath: string;
  readonly handle: MonitorServerHandle;
}

async function startServer(env: Record<string, string>, ids: readonly string[] = [ID]): Promise<Live> {
  const dbPath = join(tempDir(), 'a.db');
  const db = openStore(dbPath);
  new GroupStore(db).upsert(testGroup(), Date.now());
  new InstanceStore(db).insertLaunched('web', ids.map((id) => ({ id, providerState: 'running' })), 'launched', 'test', Date.now());
  const cfg = loadMonitorServerConfig({ env: {
    AUTOSCALER_DB: dbPath, MONITOR_GRPC_PORT: '0', MONITOR_HTTP_PORT: '0', MONITOR_FLUSH_INTERVAL_MS: '20', MONITOR_HEARTBEAT_INTERVAL_MS: '100', ...env,
  } });
  const handle = await new MonitorServer(cfg, db, systemClock, captureLogger('warn').log).start();
  cleanup.push(async () => { await handle.close(); db.close(); });
  return { db, dbPath, handle };
}

const requiring = { MONITOR_EC2_IDENTITY_CERTS: certFile, MONITOR_REQUIRE_EC2_IDENTITY: 'true' };

interface Proofs {
  readonly document?: string;
  readonly signature?: string;
  readonly nonce?: string;
  readonly launchToken?: string;
}

type Outcome = { ok: true; sessionId: string } | { ok: false; code: number; details: string };

function client(port: number): MonitorClient {
  const c = new (monitorProto().monitor.v1.Monitor)(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  cleanup.push(() => c.close());
  return c;
}

function register(c: MonitorClient, instanceId: string, p: Proofs, agentKey = randomBytes(16).toString('hex')): Promise<Outcome> {
  const md = new grpc.Metadata();
  md.set(AGENT_KEY_METADATA_KEY, agentKey);
  if (p.document !== undefined) md.set(IID_DOCUMENT_METADATA_KEY, Buffer.from(p.document).toString('base64'));
  if (p.signature !== undefined) md.set(IID_SIGNATURE_METADATA_KEY, p.signature);
  if (p.nonce !== undefined) md.set(IID_NONCE_METADATA_KEY, p.nonce);
  if (p.launchToken !== undefined) md.set(LAUNCH_TOKEN_METADATA_KEY, p.launchToken);
  return new Promise((resolve) => {
    c.Register({ instance_id: instanceId, group_id: 'web', agent_version: 'test', address: '127.0.0.1' }, md, { deadline: Date.now() + 5_000 }, (err, res) =>
      resolve(err || !res ? { ok: false, code: err?.code ?? -1, details: err?.details ?? '' } : { ok: true, sessionId: res.session_id }));
  });
}

/** A document for `instanceId` signed by `key`, with a fresh nonce. */
function signed(instanceId: string, key: KeyObject, extra: { pendingTime?: string } = {}): Required<Pick<Proofs, 'document' | 'signature' | 'nonce'>> {
  const document = identityDocumentFor({ instanceId, availabilityZone: 'eu-west-1a', ...extra });
  return { document, signature: signIdentityDocument(document, key), nonce: randomBytes(16).toString('hex') };
}

const registered = (db: Db, id: string) => (db.prepare('SELECT registered_at FROM instances WHERE id = ?').get(id) as { registered_at: number | null }).registered_at !== null;

describe('EC2 instance identity documents (server requires them)', () => {
  it.each([
    { name: 'a valid document is accepted', proofs: () => signed(ID, awsKey), want: { ok: true } },
    { name: 'a forged document (signed by another key) is refused', proofs: () => signed(ID, strangerKey),
      want: { ok: false, code: grpc.status.PERMISSION_DENIED, details: 'the instance identity document signature does not verify with the configured AWS certificates' } },
    { name: "another instance's valid document is refused", proofs: () => signed(OTHER, awsKey),
      want: { ok: false, code: grpc.status.PERMISSION_DENIED, details: `the instance identity document is for instance "${OTHER}", not "${ID}"` } },
    { name: 'a document altered after signing is refused', proofs: () => { const p = signed(ID, awsKey); return { ...p, document: p.document.replace('t3.micro', 'x9.huge') }; },
      want: { ok: false, code: grpc.status.PERMISSION_DENIED } },
    { name: 'a pendingTime an hour in the future is refused', proofs: () => signed(ID, awsKey, { pendingTime: new Date(Date.now() + 3_600_000).toISOString() }),
      want: { ok: false, code: grpc.status.PERMISSION_DENIED, details: 'the instance identity document has an invalid or future pendingTime' } },
    { name: 'no document at all: UNAUTHENTICATED', proofs: () => ({}),
      want: { ok: false, code: grpc.status.UNAUTHENTICATED, details: 'an EC2 instance identity document is required (agent: AGENT_IDENTITY=imds)' } },
    { name: 'a document without its nonce is malformed', proofs: () => { const p = signed(ID, awsKey); return { document: p.document, signature: p.signature }; },
      want: { ok: false, code: grpc.status.INVALID_ARGUMENT } },
  ])('$name', async ({ proofs, want }) => {
    const { db, handle } = await startServer(requiring, [ID, OTHER]);
    const r = await register(client(handle.grpcPort), ID, proofs());
    expect(r).toMatchObject(want);
    // Nothing is recorded for a refusal: no registration, no binding.
    expect(registered(db, ID)).toBe(want.ok);
    expect(new IdentityBindingStore(db).get(ID) !== undefined).toBe(want.ok);
  });

  it('a replayed document with another nonce is refused; the first nonce keeps working (reconnects)', async () => {
    const { db, handle } = await startServer({ ...requiring, MONITOR_SESSION_OPEN_TIMEOUT_MS: '100' });
    const c = client(handle.grpcPort);
    const honest = signed(ID, awsKey);
    expect(await register(c, ID, honest)).toMatchObject({ ok: true });
    // The honest agent never opens a stream here: its session expires, so no live-session rule hides the check.
    await waitFor('session expired', () => handle.stats().sessions === 0);
    const replay = { ...honest, nonce: randomBytes(16).toString('hex') };
    expect(await register(c, ID, replay)).toEqual({ ok: false, code: grpc.status.PERMISSION_DENIED, details: 'identity document replayed with another nonce' });
    expect(handle.stats().refused.registerForbidden).toBe(1);
    expect(handle.stats().sessions).toBe(0);
    // Same document, same nonce: the same agent process reconnecting.
    expect(await register(c, ID, honest)).toMatchObject({ ok: true });
    // An operator clears the binding: the next nonce is bound instead.
    expect(new IdentityBindingStore(db).clear(ID)).toBe(true);
    await waitFor('session expired again', () => handle.stats().sessions === 0);
    expect(await register(c, ID, replay)).toMatchObject({ ok: true });
    await waitFor('session expired a third time', () => handle.stats().sessions === 0);
    expect(await register(c, ID, honest)).toMatchObject({ ok: false, code: grpc.status.PERMISSION_DENIED, details: 'identity document replayed with another nonce' });
  });

  it('not required: a Register without a document is accepted, a forged one still refused', async () => {
    const { handle } = await startServer({ MONITOR_EC2_IDENTITY_CERTS: certFile });
    const c = client(handle.grpcPort);
    expect(await register(c, ID, signed(ID, strangerKey))).toMatchObject({ ok: false, code: grpc.status.PERMISSION_DENIED });
    expect(await register(c, ID, {})).toMatchObject({ ok: true });
  });

  it('required without certificates is a configuration error naming both keys', () => {
    expect(() => loadMonitorServerConfig({ env: { MONITOR_REQUIRE_EC2_IDENTITY: 'true' } })).toThrow(/MONITOR_REQUIRE_EC2_IDENTITY: is true but MONITOR_EC2_IDENTITY_CERTS is not set/);
  });

  it('an unreadable certificate file fails the start with the key named', async () => {
    await expect(startServer({ MONITOR_EC2_IDENTITY_CERTS: join(pki, 'missing.crt') })).rejects.toThrow(ConfigError);
  });
});

describe('the agent side (AGENT_IDENTITY=imds)', () => {
  it('reads the document bytes and signature IMDS serves, with the token', async () => {
    const f = await startFakeImds({ instanceId: ID, signingKey: awsKey });
    cleanup.push(() => f.close());
    const { identity, document } = await discoverIdentityWithProof(loadAgentConfig({ env: { AGENT_IDENTITY: 'imds', AGENT_IMDS_ENDPOINT: f.url } }));
    expect(identity.instanceId).toBe(ID);
    const expected = identityDocumentFor({ instanceId: ID });
    expect(document).toEqual({ document: Buffer.from(expected), signature: signIdentityDocument(expected, awsKey), instanceId: ID });
    expect(f.counters.unauthorized).toBe(0);
  });

  it('a document naming another instance than instance-id is a ConfigError', async () => {
    const f = await startFakeImds({ instanceId: ID, identityDocument: identityDocumentFor({ instanceId: OTHER }) });
    cleanup.push(() => f.close());
    const err = await discoverIdentityWithProof(loadAgentConfig({ env: { AGENT_IDENTITY: 'imds', AGENT_IMDS_ENDPOINT: f.url, AGENT_IMDS_ATTEMPTS: '1' } })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toContain(`identity document for ${OTHER}`);
  });

  it('`autoscaler agent --simulate` (built CLI) registers with a server that requires documents, and streams', async () => {
    const f = await startFakeImds({ instanceId: ID, signingKey: awsKey });
    cleanup.push(() => f.close());
    const { db, handle } = await startServer(requiring);
    const agent = startCli(['agent', '--simulate'], {
      AGENT_IDENTITY: 'imds', AGENT_IMDS_ENDPOINT: f.url, AGENT_SERVER: `127.0.0.1:${handle.grpcPort}`, AGENT_GROUP: 'web',
    });
    cleanup.push(() => agent.stop());
    await waitFor('registered and streaming', () => registered(db, ID) && handle.stats().streams === 1, 15_000);
    expect(new IdentityBindingStore(db).get(ID)).toMatchObject({ instanceId: ID });
    expect(handle.stats().refused).toMatchObject({ unauthenticated: 0, registerForbidden: 0 });
    expect(agent.logs().find((l) => l.msg === 'agent starting')).toMatchObject({ instanceId: ID, identityDocument: true });
  });
});

describe('local provider launch token', () => {
  const tokenFromStore = (db: Db, id: string) => {
    const row = db.prepare('SELECT value FROM secrets WHERE name = ?').get(LAUNCH_KEY_NAME) as { value: Buffer } | undefined;
    if (row === undefined) throw new Error('no launch key in the store');
    return launchTokenFor(row.value, id);
  };

  it.each([
    { name: 'the right token is accepted', token: (db: Db) => tokenFromStore(db, ID), want: { ok: true } },
    { name: 'no token is refused', token: () => undefined, want: { ok: false, code: grpc.status.PERMISSION_DENIED, details: 'a launch token is required (AGENT_LAUNCH_TOKEN)' } },
    { name: "another instance's token is refused", token: (db: Db) => tokenFromStore(db, OTHER),
      want: { ok: false, code: grpc.status.PERMISSION_DENIED, details: 'wrong launch token for this instance' } },
    { name: 'a token under another key is refused', token: () => launchTokenFor(randomBytes(32), ID), want: { ok: false, code: grpc.status.PERMISSION_DENIED } },
    { name: 'a token that is not 64 hex digits is malformed', token: () => 'not-a-token', want: { ok: false, code: grpc.status.INVALID_ARGUMENT } },
  ])('$name', async ({ token, want }) => {
    const { db, handle } = await startServer({ MONITOR_REQUIRE_LAUNCH_TOKEN: 'true' }, [ID, OTHER]);
    const t = token(db);
    expect(await register(client(handle.grpcPort), ID, t === undefined ? {} : { launchToken: t })).toMatchObject(want);
    expect(registered(db, ID)).toBe(want.ok);
  });

  it('the key is created once and shared: the controller and the server derive the same token', async () => {
    const dir = tempDir();
    const a = openStore(join(dir, 'a.db'));
    const b = openStore(join(dir, 'a.db'));
    cleanup.push(() => { a.close(); b.close(); });
    expect(new SecretStore(a).launchToken(ID)).toBe(new SecretStore(b).launchToken(ID));
    expect(new SecretStore(a).launchToken(ID)).not.toBe(new SecretStore(a).launchToken(OTHER));
    expect(a.prepare('SELECT COUNT(*) AS n FROM secrets').get()).toEqual({ n: 1 });
  });

  it('not required: a wrong token is still refused, none is accepted', async () => {
    const { handle } = await startServer({}, [ID]);
    const c = client(handle.grpcPort);
    expect(await register(c, ID, { launchToken: launchTokenFor(randomBytes(32), ID) })).toMatchObject({ ok: false, code: grpc.status.PERMISSION_DENIED });
    expect(await register(c, ID, {})).toMatchObject({ ok: true });
  });

  it('agents the local provider launches with the store key register with a server that requires tokens', async () => {
    const { db, handle } = await startServer({ MONITOR_REQUIRE_LAUNCH_TOKEN: 'true' }, []);
    const secrets = new SecretStore(db);
    const provider = new LocalProvider({
      command: [process.execPath, cliEntry()], agentServer: () => `127.0.0.1:${handle.grpcPort}`, terminateTimeoutMs: 3_000,
      logDir: join(tempDir(), 'instances'), agentEnv: {}, log: captureLogger('warn').log, launchToken: (id) => secrets.launchToken(id),
    });
    cleanup.push(() => provider.close());
    const r = await provider.launch({ groupId: 'web', token: 'tok-1', count: 1 });
    const id = r.instances[0]?.id as string;
    new InstanceStore(db).insertLaunched('web', [{ id, providerState: 'running' }], 'launched', 'test', Date.now());
    await waitFor('registered and streaming', () => registered(db, id) && handle.stats().streams === 1, 15_000);
    expect(handle.stats().refused.registerForbidden).toBe(0);
  });
});
