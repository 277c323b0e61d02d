import { describe, expect, it } from 'vitest';
import { loadAgentConfig } from '../config/agent.js';
import { resolveIdentity } from './identity.js';

describe('resolveIdentity', () => {
  it.each([
    { name: 'configured id wins', env: { AGENT_INSTANCE_ID: 'i-0abc123' }, host: 'ip-10-0-0-1', want: { instanceId: 'i-0abc123', address: 'ip-10-0-0-1' } },
    { name: 'hostname by default', env: {}, host: 'web-1.internal', want: { instanceId: 'web-1.internal', address: 'web-1.internal' } },
    { name: 'hostname made safe', env: {}, host: '-weird host!name', want: { instanceId: 'weird-host-name' } },
    { name: 'configured address', env: { AGENT_ADDRESS: '10.0.0.7' }, host: 'h', want: { address: '10.0.0.7' } },
  ])('$name', ({ env, host, want }) => {
    expect(resolveIdentity(loadAgentConfig({ env }), host)).toMatchObject({ groupId: 'default', ...want });
  });
});
