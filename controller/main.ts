import { dirname, join } from 'node:path';
import type { ControllerConfig } from '../config/controller.js';
import { ConfigError } from '../config/shared.js';
import { systemClock, type Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import { cliEntry } from '../lib/paths.js';
import { ComponentStore } from '../store/components.js';
import { openStore } from '../store/db.js';
import { Controller } from './loop.js';
import { LocalProvider } from './providers/local.js';
import { ProviderError, type InstanceProvider } from './providers/types.js';

export interface ControllerHandle {
  readonly controller: Controller;
  readonly provider: InstanceProvider;
  close(): Promise<void>;
}

/** Build the provider named in the config. The AWS SDKs are loaded only when an AWS provider is. */
export async function createProvider(cfg: ControllerConfig, components: ComponentStore, log: Logger): Promise<InstanceProvider> {
  const aws = { region: cfg.aws.region, endpoint: cfg.aws.endpoint, maxAttempts: cfg.aws.maxAttempts };
  switch (cfg.provider) {
    case 'aws-ec2': {
      const { Ec2Provider } = await import('./providers/aws-ec2.js');
      return new Ec2Provider({ aws, ...cfg.aws.ec2, log });
    }
    case 'aws-asg': {
      const { AsgProvider } = await import('./providers/aws-asg.js');
      return new AsgProvider({ aws, asgName: () => cfg.aws.asgName, log });
    }
    case 'local':
      return new LocalProvider({
        command: [process.execPath, cliEntry()],
        agentServer: () => {
          if (cfg.local.agentServer !== 'auto') return cfg.local.agentServer;
          const addr = components.get('monitor-server')?.info.grpcAddress;
          if (typeof addr !== 'string') throw new Error('monitor server address unknown: start the monitor server first or set LOCAL_AGENT_SERVER');
          return addr.replace(/^0\.0\.0\.0:/, '127.0.0.1:').replace(/^\[::\]:/, '[::1]:');
        },
        terminateTimeoutMs: cfg.local.terminateTimeoutMs,
        logDir: cfg.local.logDir || join(dirname(cfg.dbPath), 'instances'),
        agentEnv: cfg.local.agentEnv,
        log,
      });
  }
}

/** Provider failures at start-up that only a change of config (or IAM) fixes: exit 78, not a restart loop. */
const CONFIG_CODES: ReadonlySet<string> = new Set(['NotFound', 'InvalidRequest', 'PermissionDenied', 'IdempotencyMismatch']);

/**
 * ControllerASG: open the store, build the provider, check that it can drive the group (the
 * launch template or ASG exists and fits the bounds), run the loop.
 */
export async function runController(cfg: ControllerConfig, rootLog: Logger, clock: Clock = systemClock): Promise<ControllerHandle> {
  const db = openStore(cfg.dbPath);
  let provider: InstanceProvider;
  try {
    provider = await createProvider(cfg, new ComponentStore(db), rootLog);
    await provider.verify(cfg.group.id, { minSize: cfg.group.minSize, maxSize: cfg.group.maxSize });
  } catch (err) {
    db.close();
    if (err instanceof ProviderError && CONFIG_CODES.has(err.code)) throw new ConfigError([`${cfg.provider}: ${err.message}`], { cause: err });
    throw err;
  }
  const controller = new Controller(cfg, db, provider, clock, rootLog);
  controller.start();
  return {
    controller,
    provider,
    close: async () => {
      await controller.close();
      db.close();
    },
  };
}
