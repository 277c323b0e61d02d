/**
 * The HTTP API's security configuration: the tokens file format (errors by line, secrets never
 * echoed), HTTPS on the listener with a certificate from `autoscaler certs init`, reload of the
 * tokens on SIGHUP (a bad file keeps the old tokens), and the rule that keeps a plaintext API
 * on loopback unless asked.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TokenAuth } from '../api/auth.js';
import { certsInit } from '../cli/certs.js';
import { parseTokenLines } from '../config/api-tokens.js';
import { loadMonitorServerConfig } from '../config/monitor-server.js';
import { ConfigError } from '../config/shared.js';
import { ManualClock, captureLogger, configProblems, testGroup } from '../lib/testing.js';
import { MonitorServer, type MonitorServerHandle } from '../monitor-server/server.js';
import { openStore, type Db } from '../store/db.js';
import { GroupStore } from '../store/groups.js';
import { tempDir } from './helpers.js';

const SECRET = 'secret-0123456789abcdef-xyz';

describe('API tokens file', () => {
  it.each([
    { name: 'a good file with comments and blank lines', text: `# who role secret\n\nalice write ${SECRET}\nbob read ${SECRET}-2\n`, tokens: ['alice:write', 'bob:read'], problems: [] },
    { name: 'two fields', text: `alice ${SECRET}`, tokens: [], problems: ['1: must be NAME ROLE SECRET (3 fields, got 2)'] },
    { name: 'an unknown role', text: `alice admin ${SECRET}`, tokens: [], problems: ['1: role must be read or write (got "admin")'] },
    { name: 'a short secret', text: 'alice write short', tokens: [], problems: ['1: secret must be at least 16 characters (autoscaler certs init writes one: token.txt)'] },
    { name: 'a name twice', text: `a write ${SECRET}\na read ${SECRET}-2`, tokens: ['a:write'], problems: ['2: name "a" is given twice'] },
    { name: 'a secret twice', text: `a write ${SECRET}\nb read ${SECRET}`, tokens: ['a:write'], problems: ['2: the same secret is given twice'] },
    { name: 'a bad name', text: `-x write ${SECRET}`, tokens: [], problems: ['1: name must be 1-63 letters, digits, ".", "_" or "-"'] },
  ])('$name', ({ text, tokens, problems }) => {
    const r = parseTokenLines(text.split('\n'));
    expect(r.tokens.map((t) => `${t.name}:${t.role}`)).toEqual(tokens);
    expect(r.problems).toEqual(problems);
    for (const p of r.problems) expect(p).not.toContain(SECRET);
  });

  it('inline tokens (MONITOR_API_TOKENS) are parsed the same way, and a bad one is refused without its value', () => {
    const cfg = loadMonitorServerConfig({ env: { MONITOR_API_TOKENS: `ci:write:${SECRET}:with:colons, ro:read:${SECRET}-ro` } });
    expect(cfg.api.tokens.map((t) => [t.name, t.role, t.secret])).toEqual([['ci', 'write', `${SECRET}:with:colons`], ['ro', 'read', `${SECRET}-ro`]]);
    const problems = configProblems(() => loadMonitorServerConfig({ env: { MONITOR_API_TOKENS: 'ci:write:tooshort' } }));
    expect(problems.join('\n')).toContain('MONITOR_API_TOKENS');
    expect(problems.join('\n')).not.toContain('tooshort');
  });

  it('a wrong token takes the same path whichever configured token it resembles (every digest is compared)', () => {
    const auth = new TokenAuth([{ name: 'a', role: 'write', secret: SECRET }, { name: 'b', role: 'read', secret: `${SECRET}-b` }], false);
    expect(auth.check(`Bearer ${SECRET}`, 'write').actor).toBe('api:a');
    expect(auth.check(`Bearer ${SECRET}-b`, 'read').actor).toBe('api:b');
    expect(() => auth.check(`Bearer ${SECRET.slice(0, -1)}`, 'read')).toThrow('invalid token');
    expect(() => auth.check('Basic abc', 'read')).toThrow('malformed Authorization header');
    expect(() => auth.check(`Bearer ${SECRET}-b`, 'write')).toThrow('token "b" has role read');
  });
});

describe('listener rules', () => {
  it.each([
    { name: 'plaintext API on a public address', env: { MONITOR_HTTP_HOST: '0.0.0.0' }, key: 'MONITOR_HTTP_HOST', says: 'is not a loopback address and the HTTP listener has no TLS' },
    { name: 'a certificate without its key', env: { MONITOR_HTTP_TLS_CERT: '/x.crt' }, key: 'MONITOR_HTTP_TLS_KEY', says: 'must be set with MONITOR_HTTP_TLS_CERT' },
    { name: 'insecure and TLS at once', env: { MONITOR_HTTP_TLS_CERT: '/x.crt', MONITOR_HTTP_TLS_KEY: '/x.key', MONITOR_HTTP_INSECURE: 'true' }, key: 'MONITOR_HTTP_INSECURE', says: 'HTTPS is used anyway' },
    { name: 'an unknown read mode', env: { MONITOR_API_READ: 'sometimes' }, key: 'MONITOR_API_READ', says: 'must be auto, open or token' },
  ])('refused: $name, naming $key', ({ env, key, says }) => {
    const problems = configProblems(() => loadMonitorServerConfig({ env }));
    expect(problems.find((p) => p.startsWith(`${key}:`))).toContain(says);
  });

  it.each([
    { name: 'loopback, auto', env: {}, readNeedsToken: false },
    { name: 'public with TLS, auto', env: { MONITOR_HTTP_HOST: '0.0.0.0', MONITOR_HTTP_TLS_CERT: '/x.crt', MONITOR_HTTP_TLS_KEY: '/x.key' }, readNeedsToken: true },
    { name: 'public, insecure on purpose', env: { MONITOR_HTTP_HOST: '10.0.0.5', MONITOR_HTTP_INSECURE: 'true' }, readNeedsToken: true },
    { name: 'loopback, token', env: { MONITOR_API_READ: 'token' }, readNeedsToken: true },
    { name: 'public, open on purpose', env: { MONITOR_HTTP_HOST: '0.0.0.0', MONITOR_HTTP_INSECURE: 'true', MONITOR_API_READ: 'open' }, readNeedsToken: false },
  ])('reads need a token: $name → $readNeedsToken', ({ env, readNeedsToken }) => {
    expect(loadMonitorServerConfig({ env }).api.readNeedsToken).toBe(readNeedsToken);
  });
});

describe('HTTPS and token reload', () => {
  const pki = tempDir('autoscaler-api-pki-');
  let db: Db;
  let handle: MonitorServerHandle | undefined;
  let tokens: string;

  beforeAll(async () => {
    await certsInit({ dir: pki, hosts: ['localhost'] });
  }, 60_000);

  afterEach(async () => {
    await handle?.close();
    handle = undefined;
    db.close();
  });

  async function start(env: Record<string, string>): Promise<MonitorServerHandle> {
    const dir = tempDir();
    db = openStore(join(dir, 'a.db'));
    new GroupStore(db).upsert(testGroup(), 0);
    tokens = join(dir, 'tokens');
    writeFileSync(tokens, `alice write ${SECRET}\n`);
    const cfg = loadMonitorServerConfig({ env: { AUTOSCALER_DB: join(dir, 'a.db'), MONITOR_GRPC_PORT: '0', MONITOR_HTTP_PORT: '0', MONITOR_API_TOKENS_FILE: tokens, ...env } });
    handle = await new MonitorServer(cfg, db, new ManualClock(), captureLogger('warn').log).start();
    return handle;
  }

  function get(port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path, headers, servername: 'localhost', ca: readCa() }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => { body += c.toString(); });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.end();
    });
  }
  const readCa = () => readFileSync(join(pki, 'ca.crt'));

  it('serves the API over HTTPS with the certificate certs init made, verified against its CA', async () => {
    const h = await start({ MONITOR_HTTP_TLS_CERT: join(pki, 'server.crt'), MONITOR_HTTP_TLS_KEY: join(pki, 'server.key') });
    const r = await get(h.httpPort, '/api/v1/groups', { authorization: `Bearer ${SECRET}` });
    expect(r.status).toBe(200);
    expect((JSON.parse(r.body) as { id: string }[]).map((g) => g.id)).toEqual(['web']);
    // Plain HTTP to the HTTPS port gets no API.
    await expect(fetch(`http://127.0.0.1:${h.httpPort}/api/v1/groups`)).rejects.toThrow();
  });

  it('a missing certificate file is a configuration error naming the key', async () => {
    await expect(start({ MONITOR_HTTP_TLS_CERT: join(pki, 'nope.crt'), MONITOR_HTTP_TLS_KEY: join(pki, 'server.key') })).rejects.toThrow(ConfigError);
    await expect(start({ MONITOR_HTTP_TLS_CERT: join(pki, 'nope.crt'), MONITOR_HTTP_TLS_KEY: join(pki, 'server.key') })).rejects.toThrow(/MONITOR_HTTP_TLS_CERT: cannot read/);
  });

  it('reloads the tokens file on SIGHUP; a bad file keeps the old tokens', async () => {
    const h = await start({});
    const pause = (token: string) => fetch(`http://127.0.0.1:${h.httpPort}/api/v1/groups/web/pause`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{}' });
    expect((await pause(SECRET)).status).toBe(200);
    writeFileSync(tokens, `bob write ${SECRET}-new\n`);
    await h.reloadTls();
    expect((await pause(SECRET)).status).toBe(401);
    expect((await pause(`${SECRET}-new`)).status).toBe(200);
    writeFileSync(tokens, 'carol write short\n');
    await expect(h.reloadTls()).rejects.toThrow(/MONITOR_API_TOKENS_FILE: .* line 1: secret must be at least 16 characters/);
    expect((await pause(`${SECRET}-new`)).status).toBe(200);
  });
});
