/**
 * The deploy kit: user-data, IAM policies, systemd units and docs/deploy-aws.md are checked with
 * the tools an operator would use (bash, systemd-analyze, systemd-sysusers, JSON parsing).
 * Under CI=true a missing systemd-analyze fails (.ci/run installs Debian's systemd); elsewhere
 * those tests are skipped with the reason in their name.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadAgentConfig } from '../config/agent.js';
import { loadControllerConfig } from '../config/controller.js';
import { loadMonitorServerConfig } from '../config/monitor-server.js';
import { EC2_TAGS } from '../controller/providers/aws-ec2.js';
import { tempDir } from './helpers.js';

const root = new URL('..', import.meta.url).pathname;
const deploy = join(root, 'deploy');
const read = (...p: string[]) => readFileSync(join(root, ...p), 'utf8');
const has = (tool: string) => spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).status === 0;
const run = (cmd: string, args: readonly string[], input?: string) => {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 30_000, ...(input !== undefined ? { input } : {}) });
  return { status: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}`.trim() };
};

const UNITS = ['autoscaler-agent.service', 'autoscaler-controller.service', 'autoscaler-monitor-server.service'];
/** Highest `systemd-analyze security --offline=yes` exposure accepted (first build: 8.3-8.5). */
const MAX_EXPOSURE = 2.5;

describe('deploy/user-data.sh', () => {
  it('parses (bash -n)', () => {
    expect(run('bash', ['-n', join(deploy, 'user-data.sh')])).toEqual({ status: 0, out: '' });
  });

  it.skipIf(!has('shellcheck'))('is shellcheck-clean', () => {
    expect(run('shellcheck', [join(deploy, 'user-data.sh')])).toEqual({ status: 0, out: '' });
  });

  it('lets the agent find its own id through IMDSv2: no metadata calls, AGENT_IDENTITY=imds', () => {
    const text = read('deploy', 'user-data.sh');
    expect(text).toMatch(/^AGENT_IDENTITY=imds$/m);
    expect(text).not.toMatch(/169\.254\.169\.254|AGENT_INSTANCE_ID/);
    expect(text).toContain('systemctl enable --now autoscaler-agent.service');
  });
});

type Statement = { Sid?: string; Effect: string; Action: string | string[]; Resource?: string | string[]; Condition?: Record<string, Record<string, string>> };
const POLICY_FILES = readdirSync(join(deploy, 'iam')).filter((f) => f.endsWith('.json')).sort();
const policy = (file: string) => JSON.parse(read('deploy', 'iam', file)) as { Version: string; Statement: Statement[] };
const list = (v: string | string[] | undefined) => (v === undefined ? [] : Array.isArray(v) ? v : [v]);
const isRead = (action: string) => /^[a-z0-9-]+:(Describe|Get|List)[A-Za-z]*$/.test(action);
const PLACEHOLDERS = { ACCOUNT_ID: '111122223333', REGION: 'eu-west-1', TEMPLATE_ID: 'lt-0abc1234567890def', GROUP_ID: 'web', VPC_ID: 'vpc-0abc1234', ASG_NAME: 'web-asg' };

describe('deploy/iam', () => {
  it('holds the four policies', () => {
    expect(POLICY_FILES).toEqual(['agent-instance.json', 'controller-asg.json', 'controller-ec2.json', 'ec2-trust.json']);
  });

  it.each(POLICY_FILES.map((file) => ({ file })))('$file: valid JSON, Version 2012-10-17, no wildcard grant', ({ file }) => {
    const p = policy(file);
    expect(p.Version).toBe('2012-10-17');
    expect(p.Statement.length).toBeGreaterThan(0);
    for (const s of p.Statement.filter((x) => x.Effect === 'Allow')) {
      const actions = list(s.Action);
      expect(actions.filter((a) => a === '*' || a.endsWith(':*')), `${file} ${s.Sid}`).toEqual([]);
      const writes = actions.filter((a) => !isRead(a));
      if (writes.length > 0) expect(list(s.Resource), `${file} ${s.Sid}: ${writes.join(',')} on *`).not.toContain('*');
    }
  });

  it.each(POLICY_FILES.map((file) => ({ file })))('$file: every placeholder is documented and substitutes into valid JSON', ({ file }) => {
    let text = read('deploy', 'iam', file);
    const doc = read('docs', 'deploy-aws.md');
    for (const [k, v] of Object.entries(PLACEHOLDERS)) {
      if (text.includes(k)) expect(doc, `${k} documented`).toContain(`\`${k}\``);
      text = text.replaceAll(k, v);
    }
    expect(text).not.toMatch(/\b[A-Z]{2,}_[A-Z_]+\b/);
    expect(() => JSON.parse(text)).not.toThrow();
  });

  it('controller-ec2.json: launch only from the template with the group tag; tag only at launch; terminate only tagged instances', () => {
    const s = policy('controller-ec2.json').Statement;
    const template = 'arn:aws:ec2:REGION:ACCOUNT_ID:launch-template/TEMPLATE_ID';
    const run = s.filter((x) => list(x.Action).includes('ec2:RunInstances'));
    // Every resource type RunInstances touches is covered, and each grant names the template.
    const types = run.flatMap((x) => list(x.Resource)).map((r) => /:([a-z-]+)\/[^/]*$/.exec(r)?.[1]).sort();
    expect(types).toEqual(['image', 'instance', 'key-pair', 'launch-template', 'network-interface', 'security-group', 'subnet', 'volume']);
    for (const x of run.filter((y) => !list(y.Resource).includes(template))) expect(x.Condition?.ArnEquals?.['ec2:LaunchTemplate']).toBe(template);
    const instance = run.find((x) => list(x.Resource).some((r) => r.endsWith(':instance/*')));
    expect(instance?.Condition?.StringEquals).toMatchObject({ [`aws:RequestTag/${EC2_TAGS.group}`]: 'GROUP_ID', 'ec2:MetadataHttpTokens': 'required' });
    expect(s.find((x) => list(x.Action).includes('ec2:CreateTags'))?.Condition).toEqual({ StringEquals: { 'ec2:CreateAction': 'RunInstances' } });
    expect(s.find((x) => list(x.Action).includes('ec2:TerminateInstances'))?.Condition).toEqual({ StringEquals: { [`ec2:ResourceTag/${EC2_TAGS.group}`]: 'GROUP_ID' } });
    expect(s.find((x) => list(x.Action).includes('iam:PassRole'))?.Condition).toEqual({ StringEquals: { 'iam:PassedToService': 'ec2.amazonaws.com' } });
  });

  it('controller-asg.json: SetDesiredCapacity and TerminateInstanceInAutoScalingGroup only on the tagged ASG', () => {
    const act = policy('controller-asg.json').Statement.find((x) => list(x.Action).includes('autoscaling:SetDesiredCapacity'));
    expect(list(act?.Action).sort()).toEqual(['autoscaling:SetDesiredCapacity', 'autoscaling:TerminateInstanceInAutoScalingGroup']);
    expect(act?.Condition).toEqual({ StringEquals: { [`aws:ResourceTag/${EC2_TAGS.group}`]: 'GROUP_ID' } });
  });

  it.each([
    { name: 'aws-ec2', source: 'controller/providers/aws-ec2.ts', file: 'controller-ec2.json', prefix: 'ec2' },
    { name: 'aws-asg', source: 'controller/providers/aws-asg.ts', file: 'controller-asg.json', prefix: 'autoscaling' },
  ])('$name: every API the provider calls is granted by $file', ({ source, file, prefix }) => {
    const called = [...new Set([...read(source).matchAll(/new (\w+)Command\(/g)].map((m) => `${prefix}:${m[1]}`))];
    expect(called.length).toBeGreaterThan(0);
    const granted = new Set(policy(file).Statement.filter((x) => x.Effect === 'Allow').flatMap((x) => list(x.Action)));
    expect(called.filter((a) => !granted.has(a))).toEqual([]);
  });

  it('agent-instance.json grants nothing (a deny-all permissions boundary)', () => {
    expect(policy('agent-instance.json').Statement).toEqual([expect.objectContaining({ Effect: 'Deny', Action: '*', Resource: '*' })]);
  });
});

describe('docs/deploy-aws.md', () => {
  const doc = read('docs', 'deploy-aws.md');
  const blocks = (lang: string) => [...doc.matchAll(new RegExp('```' + lang + '\\n([\\s\\S]*?)```', 'g'))].map((m, i) => ({ name: `${lang} block ${i + 1}`, text: m[1] ?? '' }));

  it.each(blocks('bash'))('$name parses (bash -n)', ({ text }) => {
    expect(run('bash', ['-n'], text)).toEqual({ status: 0, out: '' });
  });

  it.each(blocks('json'))('$name is valid JSON', ({ text }) => {
    expect(() => JSON.parse(text)).not.toThrow();
  });

  const loaders = { agent: loadAgentConfig, controller: loadControllerConfig, 'monitor-server': loadMonitorServerConfig } as const;
  const envFiles = [...doc.matchAll(/cat > \/etc\/autoscaler\/([a-z-]+)\.env <<'ENV'\n([\s\S]*?)\nENV/g)]
    .map((m, i) => ({ name: `${m[1] ?? ''}.env #${i + 1}`, process: m[1] as keyof typeof loaders, body: m[2] ?? '' }));

  it('writes the env files of both daemons and both providers', () => {
    expect(envFiles.map((e) => e.name)).toEqual(['monitor-server.env #1', 'controller.env #2', 'controller.env #3']);
  });

  it.each(envFiles)('$name loads with the real config loader', ({ process: proc, body }) => {
    const file = join(tempDir('autoscaler-docenv-'), `${proc}.env`);
    writeFileSync(file, body);
    expect(() => loaders[proc]({ env: {}, file })).not.toThrow();
  });

  it('the agent.env written by user-data loads, with the IMDS identity', () => {
    const body = /cat > \/etc\/autoscaler\/agent\.env <<ENV\n([\s\S]*?)\nENV/.exec(read('deploy', 'user-data.sh'))?.[1] ?? '';
    const file = join(tempDir('autoscaler-docenv-'), 'agent.env');
    writeFileSync(file, body.replace('${MONITOR_SERVER}', '10.0.1.5:50051').replace('${GROUP_ID}', 'web').replace('${AGENT_SIMULATE}', 'false'));
    expect(loadAgentConfig({ env: {}, file })).toMatchObject({ identity: 'imds', server: '10.0.1.5:50051', groupId: 'web' });
  });

  it('names every deploy file it relies on, and each exists', () => {
    const named = [...new Set([...doc.matchAll(/deploy\/[\w./-]+\.(?:json|sh|service|conf)/g)].map((m) => m[0]))];
    expect(named.length).toBeGreaterThan(5);
    expect(named.filter((p) => !existsSync(join(root, p)))).toEqual([]);
  });
});

const analyze = has('systemd-analyze');
const ci = process.env.CI === 'true';

/**
 * A throwaway root for `systemd-analyze verify --root`: the host's unit library (targets the units
 * order after), our units, and executable stubs at /usr/bin/node and /bin/kill. verify checks only that
 * the Exec lines' binaries are executable, so this tests the units, not how this machine is set up.
 */
function verifyRoot(): string {
  const dir = tempDir('autoscaler-units-');
  const lib = ['/usr/lib/systemd/system', '/lib/systemd/system'].find((p) => existsSync(p));
  if (lib === undefined) throw new Error('no systemd unit library (/usr/lib/systemd/system): install Debian systemd');
  cpSync(lib, join(dir, 'usr/lib/systemd/system'), { recursive: true, dereference: false, verbatimSymlinks: true });
  mkdirSync(join(dir, 'etc/systemd/system'), { recursive: true });
  for (const u of UNITS) cpSync(join(deploy, 'systemd', u), join(dir, 'etc/systemd/system', u));
  // Executable stubs for what the units run: node (ExecStart) and kill (ExecReload).
  for (const bin of ['usr/bin/node', 'bin/kill']) {
    mkdirSync(join(dir, bin, '..'), { recursive: true });
    writeFileSync(join(dir, bin), '#!/bin/sh\n');
    chmodSync(join(dir, bin), 0o755);
  }
  return dir;
}

describe.runIf(!analyze && ci)('systemd units (CI)', () => {
  it('systemd-analyze is installed', () => {
    expect.fail('systemd-analyze is missing: .ci/run installs Debian\'s systemd (apt-get install systemd)');
  });
});

describe.skipIf(!analyze)(`systemd units${analyze ? '' : ' (skipped: systemd-analyze not installed; apt-get install systemd)'}`, () => {
  const vroot = analyze ? verifyRoot() : '';

  it.each(UNITS.map((unit) => ({ unit })))('$unit: systemd-analyze verify is clean', ({ unit }) => {
    expect(run('systemd-analyze', ['verify', `--root=${vroot}`, unit])).toEqual({ status: 0, out: '' });
  });

  it.each(UNITS.map((unit) => ({ unit })))(`$unit: security exposure <= ${MAX_EXPOSURE}`, ({ unit }) => {
    const { status, out } = run('systemd-analyze', ['security', '--offline=yes', join(deploy, 'systemd', unit)]);
    expect(status, out).toBe(0);
    const m = /Overall exposure level for \S+: (\d+(?:\.\d+)?)/.exec(out);
    expect(m, out).not.toBeNull();
    expect(Number(m?.[1])).toBeLessThanOrEqual(MAX_EXPOSURE);
  });

  it.each(UNITS.map((unit) => ({ unit })))('$unit: config file, no restart on exit 78, the JIT note', ({ unit }) => {
    const text = read('deploy', 'systemd', unit);
    expect(text).toMatch(/^EnvironmentFile=\/etc\/autoscaler\/[a-z-]+\.env$/m);
    expect(text).toMatch(/^RestartPreventExitStatus=78$/m);
    expect(text).toMatch(/^ExecStart=\/usr\/bin\/node (?:--[a-z0-9=-]+ )*\/opt\/autoscaler\/dist\/(?:cli\/main\.js [a-z-]+|agent\/cli\/main\.js)$/m);
    if (unit === 'autoscaler-agent.service') {
      // The agent runs V8 without its JIT (--lite-mode), so W^X memory holds (checked under PR_SET_MDWE and systemd's seccomp form).
      expect(text).toMatch(/^MemoryDenyWriteExecute=yes$/m);
      expect(text).toMatch(/^ExecStart=.* --lite-mode /m);
    } else {
      expect(text).not.toMatch(/^MemoryDenyWriteExecute=yes/m);
      expect(text).toMatch(/^# MemoryDenyWriteExecute=yes cannot be used/m);
    }
  });

  it('the agent keeps /proc/stat and /proc/meminfo (its sampler reads them): no ProcSubset=pid', () => {
    expect(read('deploy', 'systemd', 'autoscaler-agent.service')).not.toMatch(/^ProcSubset=pid/m);
  });

  it('monitor server and controller share one fixed user and the state directory; sysusers creates the user', () => {
    for (const u of ['autoscaler-controller.service', 'autoscaler-monitor-server.service']) {
      const text = read('deploy', 'systemd', u);
      expect(text).toMatch(/^User=autoscaler$/m);
      expect(text).toMatch(/^StateDirectory=autoscaler$/m);
      expect(text).toMatch(/^Environment=AUTOSCALER_DB=\/var\/lib\/autoscaler\/autoscaler\.db$/m);
    }
    const sys = tempDir('autoscaler-sysusers-');
    mkdirSync(join(sys, 'etc'));
    const r = run('systemd-sysusers', [`--root=${sys}`, join(deploy, 'sysusers.d', 'autoscaler.conf')]);
    expect(r.status, r.out).toBe(0);
    expect(readFileSync(join(sys, 'etc/passwd'), 'utf8')).toMatch(/^autoscaler:x:\d+:\d+:.*:\/var\/lib\/autoscaler:\/usr\/sbin\/nologin$/m);
  });
});
