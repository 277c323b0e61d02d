import type { AgentConfig } from '../config/agent.js';
import { systemClock, type Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import { version } from '../lib/version.js';
import { resolveIdentity } from './identity.js';
import { Reporter } from './reporter.js';
import { SimulatedSampler, SystemSampler, type Sampler } from './sampler.js';

/** How often an agent started with exitWithParent checks that its parent is still there. */
export const PARENT_CHECK_MS = 1_000;

export interface AgentHandle {
  readonly reporter: Reporter;
  /** Resolves when the agent has stopped (signal, parent gone, or stop()). */
  readonly done: Promise<void>;
  stop(reason: string): Promise<void>;
}

/** MonitorC: sample and report until told to stop. Signals are the caller's (cli/main.ts). */
export function runAgent(cfg: AgentConfig, rootLog: Logger, clock: Clock = systemClock): AgentHandle {
  const identity = resolveIdentity(cfg);
  const log = rootLog.child({ component: 'agent', instanceId: identity.instanceId, groupId: identity.groupId });
  const sampler: Sampler = cfg.simulate
    ? new SimulatedSampler({ noisePercent: cfg.simNoisePercent, slewPercentPerS: cfg.simSlewPercentPerS })
    : new SystemSampler();
  const reporter = new Reporter(cfg, identity, sampler, clock, rootLog);
  let resolveDone: () => void = () => {};
  const done = new Promise<void>((r) => { resolveDone = r; });
  let parentTimer: NodeJS.Timeout | undefined;
  let stopping: Promise<void> | undefined;
  const stop = (reason: string): Promise<void> => {
    stopping ??= (async () => {
      clearInterval(parentTimer);
      log.info({ reason }, 'agent stopping');
      await reporter.stop(reason);
      resolveDone();
    })();
    return stopping;
  };
  if (cfg.exitWithParent) {
    const parent = process.ppid;
    parentTimer = setInterval(() => {
      if (process.ppid !== parent) void stop('parent process exited');
    }, PARENT_CHECK_MS);
  }
  log.info({ server: cfg.server, sampler: sampler.kind, version: version(), address: identity.address }, 'agent starting');
  reporter.start();
  return { reporter, done, stop };
}
