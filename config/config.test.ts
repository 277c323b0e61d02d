import fc from 'fast-check';
import { configProblems } from '../lib/testing.js';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadAgentConfig } from './agent.js';
import { loadControllerConfig } from './controller.js';
import * as fields from './fields.js';
import { loadMonitorServerConfig } from './monitor-server.js';
import * as shared from './shared.js';

const problems = configProblems;

describe('controller config', () => {
  it('is fully defaulted and frozen', () => {
    const c = loadControllerConfig({ env: {} });
    expect(c).toMatchObject({
      intervalMs: 5_000, provider: 'local', dbPath: './data/autoscaler.db',
      bootTimeoutMs: 60_000, listingGraceMs: 5_000, unknownInstances: 'adopt', scaleInOrder: 'az-balance-oldest',
      group: {
        id: 'default', minSize: 1, maxSize: 4,
        policy: {
          targetTracking: [{ metric: 'cpu', target: 50, toleranceUp: 0.1, toleranceDown: 0.1 }],
          behavior: { scaleUp: { policies: [{ type: 'instances', value: 4, periodMs: 15_000 }, { type: 'percent', value: 100, periodMs: 15_000 }] }, scaleDown: { stabilizationMs: 300_000 } },
        },
      },
      local: { agentServer: 'auto', terminateTimeoutMs: 10_000 },
    });
    expect(c.seeds).toEqual([c.group]);
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.group.policy.targetTracking[0])).toBe(true);
  });

  it('AWS providers default to AWS timeouts (EC2 boots take minutes, listings lag)', () => {
    const c = loadControllerConfig({ env: { CONTROLLER_PROVIDER: 'aws-ec2', AWS_REGION: 'eu-west-1', EC2_LAUNCH_TEMPLATE_NAME: 'web' } });
    expect(c).toMatchObject({ bootTimeoutMs: 600_000, listingGraceMs: 120_000, aws: { region: 'eu-west-1', maxAttempts: 5, ec2: { launchTemplate: { name: 'web', version: '$Default' } } } });
  });

  it.each([
    { name: 'target × (1 + tolerance) ≥ 100, naming both keys', env: { GROUP_TARGET_CPU: '95', GROUP_TOLERANCE: '0.1' }, want: /GROUP_TOLERANCE: GROUP_TARGET_CPU × \(1 \+ GROUP_TOLERANCE\) must be below 100 \(got 95 × 1.1 = 104.5\)/ },
    { name: 'target 60 with tolerance 0.9', env: { GROUP_TARGET_CPU: '60', GROUP_TOLERANCE: '0.9' }, want: /GROUP_TARGET_CPU × \(1 \+ GROUP_TOLERANCE\) must be below 100 \(got 60 × 1.9 = 114\)/ },
    { name: 'malformed EC2 settings', env: { EC2_SUBNET_IDS: 'subnet-1,nope', EC2_TAGS: 'aws:x=1', AWS_ENDPOINT: 'ftp://x' }, want: /AWS_ENDPOINT: must be an http\(s\) URL[\s\S]*EC2_SUBNET_IDS: must be a comma-separated list of subnet ids[\s\S]*EC2_TAGS: must be key=value pairs/ },
  ])('refuses $name', ({ env, want }) => {
    expect(() => loadControllerConfig({ env })).toThrow(want);
  });

  it('seeds the groups of CONTROLLER_GROUPS_FILE, naming the file, group and field of each problem', () => {
    const dir = mkdtempSync(join(tmpdir(), 'autoscaler-groups-'));
    const good = join(dir, 'g.json');
    writeFileSync(good, JSON.stringify([{ id: 'web', minSize: 1, maxSize: 4 }, { id: 'api', minSize: 2, maxSize: 8, policy: { warmupMs: 60_000 } }]));
    expect(loadControllerConfig({ env: { CONTROLLER_GROUPS_FILE: good } }).seeds.map((g) => [g.id, g.policy.warmupMs])).toEqual([['web', 0], ['api', 60_000]]);
    const bad = join(dir, 'b.json');
    writeFileSync(bad, JSON.stringify([{ id: 'web', minSize: 3, maxSize: 1 }, { id: 'web', minSize: 1, maxSize: 2 }, { id: 'x', minSize: 1, maxSize: 2, policy: { step: [{}] } }]));
    expect(() => loadControllerConfig({ env: { CONTROLLER_GROUPS_FILE: bad } })).toThrow(/group 0: maxSize: must be >= minSize[\s\S]*group 2: policy.step.0.comparison/);
  });

  it('names every bad key at once', () => {
    const p = problems(() => loadControllerConfig({ env: { GROUP_MIN_SIZE: '5', GROUP_MAX_SIZE: '2', CONTROLLER_PROVIDER: 'gce', CONTROLLER_INTERVAL_MS: 'soon', LOCAL_AGENT_SERVER: 'nohost' } }));
    expect(p).toEqual(expect.arrayContaining([
      expect.stringMatching(/^GROUP_MAX_SIZE: must be >= GROUP_MIN_SIZE \(5\)/),
      expect.stringMatching(/^CONTROLLER_PROVIDER: must be one of: local, aws-ec2, aws-asg \(got "gce"\)/),
      expect.stringMatching(/^CONTROLLER_INTERVAL_MS: must be a number/),
      expect.stringMatching(/^LOCAL_AGENT_SERVER: must be host:port or "auto"/),
    ]));
    expect(p).toHaveLength(4);
  });

  it.each([
    { name: 'target above 100', env: { GROUP_TARGET_CPU: '150' }, key: 'GROUP_TARGET_CPU' },
    { name: 'fractional size', env: { GROUP_MAX_SIZE: '2.5' }, key: 'GROUP_MAX_SIZE' },
    { name: 'bad group id', env: { GROUP_ID: 'no spaces please' }, key: 'GROUP_ID' },
    { name: 'bad log level', env: { LOG_LEVEL: 'loud' }, key: 'LOG_LEVEL' },
  ])('refuses $name', ({ env, key }) => {
    expect(problems(() => loadControllerConfig({ env }))[0]).toMatch(new RegExp(`^${key}: `));
  });
});

describe('monitor server config', () => {
  it('refuses ports out of range and inverted thresholds', () => {
    const p = problems(() => loadMonitorServerConfig({ env: { MONITOR_GRPC_PORT: '70000', MONITOR_HTTP_PORT: '-1', MONITOR_SUSPECT_AFTER_MS: '6000', MONITOR_DEAD_AFTER_MS: '5000' } }));
    expect(p).toEqual(expect.arrayContaining([
      'MONITOR_GRPC_PORT: must be <= 65535 (got "70000")',
      'MONITOR_HTTP_PORT: must be >= 0 (got "-1")',
      'MONITOR_DEAD_AFTER_MS: must be > MONITOR_SUSPECT_AFTER_MS (got "5000")',
    ]));
  });

  it('has the documented liveness defaults', () => {
    expect(loadMonitorServerConfig({ env: {} })).toMatchObject({ heartbeatIntervalMs: 1_000, suspectAfterMs: 2_500, deadAfterMs: 4_500, grpcPort: 50051, httpPort: 8080 });
  });
});

describe('agent config', () => {
  it('parses booleans and refuses a bad server address', () => {
    expect(loadAgentConfig({ env: { AGENT_SIMULATE: 'yes' } }).simulate).toBe(true);
    expect(problems(() => loadAgentConfig({ env: { AGENT_SERVER: 'localhost:99999', AGENT_SIMULATE: 'maybe' } }))).toEqual([
      'AGENT_SERVER: must be host:port with port <= 65535 (got "localhost:99999")',
      'AGENT_SIMULATE: must be true or false (got "maybe")',
    ]);
  });
});

describe('zod-free fields (config/fields.ts, the agent) read a value as the zod builders (config/shared.ts) do', () => {
  // Values as they reach a field: trimmed and not empty (empty means unset, and both use the default).
  const raw = fc.oneof(
    fc.constantFrom('1e3', '0x10', '0b11', '-0', '5.5', '5.', '.5', '+5', '1_000', 'Infinity', 'NaN', '1e400', '9007199254740993', '1e16',
      'true', 'false', 'yes', 'no', '1', '0', 'TRUE', 'maybe', 'a:1', '[::1]:80', 'h:65536', 'h:', 'web', '-x', 'a'.repeat(64)),
    fc.string({ maxLength: 12 }), fc.integer({ min: -100, max: 2_000_000 }).map(String), fc.double().map(String),
  ).map((v) => v.trim()).filter((v) => v !== '');
  it.each([
    { name: 'int with bounds', zod: shared.int(250, 10, 60_000), field: fields.int(250, 10, 60_000) },
    { name: 'int without a max', zod: shared.int(1, 1), field: fields.int(1, 1) },
    { name: 'num', zod: shared.num(2, 0, 50), field: fields.num(2, 0, 50) },
    { name: 'bool', zod: shared.bool(false), field: fields.bool(false) },
    { name: 'address', zod: shared.address('127.0.0.1:1'), field: fields.address('127.0.0.1:1') },
    { name: 'id', zod: shared.id('default'), field: fields.id('default') },
  ])('$name', ({ zod, field }) => {
    fc.assert(fc.property(raw, (v) => {
      const z = zod.safeParse(v);
      expect(field.parse(v)).toEqual(z.success ? { ok: true, value: z.data } : { ok: false, problem: z.error.issues[0]?.message });
    }), { numRuns: 2_000 });
  });
});

describe('config files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'autoscaler-config-'));

  it('reads JSON and dotenv files; the environment overrides them', () => {
    const json = join(dir, 'c.json');
    writeFileSync(json, JSON.stringify({ GROUP_MAX_SIZE: 9, GROUP_ID: 'web' }));
    const env = join(dir, 'c.env');
    writeFileSync(env, 'GROUP_MAX_SIZE=7\n# comment\nGROUP_ID=api\n');
    expect(loadControllerConfig({ env: {}, file: json }).group).toMatchObject({ id: 'web', maxSize: 9 });
    expect(loadControllerConfig({ env: { GROUP_ID: 'override' }, file: env }).group).toMatchObject({ id: 'override', maxSize: 7 });
  });

  it.each([
    { name: 'missing file', file: () => join(dir, 'nope.json'), msg: /config file .*nope\.json: ENOENT/ },
    { name: 'broken JSON', file: () => { const f = join(dir, 'bad.json'); writeFileSync(f, '{'); return f; }, msg: /not valid JSON/ },
    { name: 'JSON array', file: () => { const f = join(dir, 'arr.json'); writeFileSync(f, '[]'); return f; }, msg: /must hold a JSON object/ },
    { name: 'nested value', file: () => { const f = join(dir, 'nest.json'); writeFileSync(f, '{"GROUP_ID":{"a":1}}'); return f; }, msg: /GROUP_ID: must be a string, number or boolean/ },
  ])('refuses a $name', ({ file, msg }) => {
    expect(problems(() => loadControllerConfig({ env: {}, file: file() }))[0]).toMatch(msg);
  });
});
