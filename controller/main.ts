import { dirname, join } from 'node:path';
import type { ControllerConfig } from '../config/controller.js';
import { systemClock, type Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import { cliEntry } from '../lib/paths.js';
import { ComponentStore } from '../store/components.js';
import { openStore } from '../store/db.js';
import { Controller } from './loop.js';
import { LocalProvider } from './providers/local.js';
import type { InstanceProvider } from './providers/types.js';

export interface ControllerHandle {
  readonly controller: Controller;
  readonly provider: InstanceProvider;
  close(): Promise<void>;
}

/** Build the provider named in the config. */
export function createProvider(cfg: ControllerConfig, components: ComponentStore, log: Logger): InstanceProvider {
  switch (cfg.provider) {
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

/** ControllerASG: open the store, build the provider, run the loop. */
export function runController(cfg: ControllerConfig, rootLog: Logger, clock: Clock = systemClock): ControllerHandle {
  const db = openStore(cfg.dbPath);
  const provider = createProvider(cfg, new ComponentStore(db), rootLog);
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
