import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { killAll, runCli, tempDir } from './helpers.js';

afterAll(killAll);

describe('autoscaler CLI: bad input gets a clear error', () => {
  it.each([
    {
      name: 'controller: max < min and unknown provider',
      args: ['controller'], env: { GROUP_MIN_SIZE: '5', GROUP_MAX_SIZE: '2', CONTROLLER_PROVIDER: 'gce' },
      keys: ['GROUP_MAX_SIZE: must be >= GROUP_MIN_SIZE (5) (got "2")', 'CONTROLLER_PROVIDER: must be one of: local, aws-ec2, aws-asg (got "gce")'],
    },
    {
      name: 'monitor-server: ports out of range',
      args: ['monitor-server'], env: { MONITOR_GRPC_PORT: '70000', MONITOR_HTTP_PORT: '-3' },
      keys: ['MONITOR_GRPC_PORT: must be <= 65535 (got "70000")', 'MONITOR_HTTP_PORT: must be >= 0 (got "-3")'],
    },
    {
      name: 'agent: server port out of range',
      args: ['agent'], env: { AGENT_SERVER: '127.0.0.1:65536' },
      keys: ['AGENT_SERVER: must be host:port with port <= 65535 (got "127.0.0.1:65536")'],
    },
    {
      name: 'missing config file',
      args: ['controller', '--config', '/nonexistent/controller.env'], env: {},
      keys: ['config file /nonexistent/controller.env: ENOENT'],
    },
  ])('$name → exit 78, every key named', async ({ args, env, keys }) => {
    const { code, output } = await runCli(args, env as Record<string, string>);
    expect(code).toBe(78);
    expect(output).toContain('invalid configuration');
    for (const k of keys) expect(output).toContain(k);
  });

  it.each([
    { name: 'status without a database', args: ['status', '--db', '/nonexistent/a.db'], msg: 'no database at /nonexistent/a.db' },
    { name: 'load with a bad profile', args: ['load', 'set', 'web', 'square:1'], msg: 'unknown profile "square"' },
  ])('$name → exit 2 with the reason', async ({ args, msg }) => {
    const { code, output } = await runCli(args);
    expect(code).toBe(2);
    expect(output).toContain(msg);
  });

  it('monitor-server on a port in use fails with the address in the message', async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as { port: number }).port;
    try {
      const { code, output } = await runCli(['monitor-server'], { AUTOSCALER_DB: join(tempDir(), 'a.db'), MONITOR_GRPC_PORT: '0', MONITOR_HTTP_PORT: String(port) });
      expect(code).toBe(1);
      expect(output).toContain(`cannot listen for HTTP on 127.0.0.1:${port}`);
    } finally {
      blocker.close();
    }
  });

  it('prints its help', async () => {
    const { code, output } = await runCli(['--help']);
    expect(code).toBe(0);
    for (const c of ['agent', 'monitor-server', 'controller', 'demo', 'status', 'load']) expect(output).toContain(c);
  });
});
