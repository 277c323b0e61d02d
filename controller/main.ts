import { dirname, join } from 'node:path';
import type { ControllerConfig } from '../config/controller.js';
import { ConfigError } from '../config/shared.js';
import { systemClock, type Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import { cliEntry } from '../lib/paths.js';
import { ComponentStore } from '../store/components.js';
import { openStore } from '../store/db.js';
import { SecretStore } from '../store/secrets.js';
import { Controller } from './loop.js';
import { LocalProvider } from './providers/local.js';
import { startControllerHttp, type ControllerHttp } from './http.js';
import { ControllerMetrics } from './metrics.js';
import { InstrumentedProvider } from './providers/instrumented.js';
import { ProviderError, type InstanceProvider } from './providers/types.js';

export interface ControllerHandle {
  readonly controller: Controller;
  /** The provider as configured (not its metrics wrapper). */
  readonly provider: InstanceProvider;
  /** Port of the `/metrics` and `/healthz` listener. */
  readonly httpPort: number;
  close(): Promise<void>;
}

/** Build the provider named in the config. The AWS SDKs are loaded only when an AWS provider is. */
export async function createProvider(cfg: ControllerConfig, components: ComponentStore, secrets: SecretStore, log: Logger): Promise<InstanceProvider> {
  const aws = { region: cfg.aws.region, endpoint: cfg.aws.endpoint, maxAttempts: cfg.aws.maxAttempts };
  switch (cfg.provider) {
    case 'aws-ec2': {
      const { Ec2Provider } = await import('./providers/aws-ec2.js');
      return new Ec2Provider({ aws, ...cfg.aws.ec2, log });
    }
    case 'aws-asg': {
      const { AsgProvider } = await import('./providers/aws-asg.js');
      // ASG_NAME names the GROUP_* group's ASG; every other group drives the ASG of its own id.
      return new AsgProvider({ aws, asgName: (g) => (g === cfg.group.id ? cfg.aws.asgName : g), log });
    }
    case 'local':
      return new LocalProvider({
        // Each child proves it is the instance launched: HMAC(store key, id), checked by the monitor server.
        launchToken: (id) => secrets.launchToken(id),
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
  const metrics = new ControllerMetrics();
  let provider: InstanceProvider;
  let http: ControllerHttp | undefined;
  try {
    provider = await createProvider(cfg, new ComponentStore(db), new SecretStore(db), rootLog);
    for (const g of cfg.seeds) await provider.verify(g.id, { minSize: g.minSize, maxSize: g.maxSize });
    http = await startControllerHttp({ host: cfg.http.host, port: cfg.http.port, metrics, staleMs: 3 * cfg.intervalMs + 30_000, now: () => clock.now(), log: rootLog.child({ component: 'http' }) });
  } catch (err) {
    db.close();
    if (err instanceof ProviderError && CONFIG_CODES.has(err.code)) throw new ConfigError([`${cfg.provider}: ${err.message}`], { cause: err });
    throw err;
  }
  const controller = new Controller(cfg, db, new InstrumentedProvider(provider, metrics), clock, rootLog, undefined, metrics);
  controller.start();
  rootLog.child({ component: 'http' }).info({ address: `${cfg.http.host}:${http.port}` }, 'controller metrics listening');
  return {
    controller,
    provider,
    httpPort: http.port,
    close: async () => {
      await controller.close();
      await http?.close();
      db.close();
    },
  };
}
