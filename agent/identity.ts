import { hostname } from 'node:os';
import type { AgentConfig } from '../config/agent.js';

export interface Identity {
  readonly instanceId: string;
  readonly groupId: string;
  readonly address: string;
}

/**
 * Who this agent reports as: the configured instance id (the local provider assigns one; on EC2
 * the deploy script passes the IMDSv2 instance id), else the hostname, made safe as an id.
 */
export function resolveIdentity(cfg: AgentConfig, host = hostname()): Identity {
  const fromHost = host.replace(/[^A-Za-z0-9_.-]/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 63) || 'agent';
  return {
    instanceId: cfg.instanceId || fromHost,
    groupId: cfg.groupId,
    address: cfg.address || host,
  };
}
