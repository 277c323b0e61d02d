import type { AgentConfig } from '../config/agent.js';
import { systemClock, type Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import { version } from '../lib/version.js';
import { discoverIdentityWithProof, resolveIdentity, type DiscoverOptions, type Identity } from './identity.js';
import type { InstanceIdentityDocument } from './imds.js';
import { Reporter, serverLink } from './reporter.js';
import { ProcSampler } from './proc-sampler.js';
import { SimulatedSampler, SystemSampler, type Sampler } from './sampler.js';

/** How often an agent started with exitWithParent checks that its parent is still there. */
export const PARENT_CHECK_MS = 1_000;

export interface AgentHandle {
  /**
   * The reporter. Available at once for the `static` and `hostname` identities; with `imds` only
   * after `ready` resolves (reading it earlier throws).
   */
  readonly reporter: Reporter;
  /** Resolves with the identity when the reporter has started; rejects when it never will. */
  readonly ready: Promise<Identity>;
  /**
   * Resolves when the agent has stopped (signal, parent gone, or stop()). Rejects with a
   * ConfigError when no identity could be found (AGENT_IDENTITY=imds and IMDS failed).
   */
  readonly done: Promise<void>;
  stop(reason: string): Promise<void>;
  /**
   * Re-read AGENT_TLS_CA / AGENT_TLS_CERT / AGENT_TLS_KEY (SIGHUP); used from the next connection.
   * Rejects with a ConfigError naming the bad key (the current files stay in use).
   */
  reloadTls(): Promise<void>;
}

/** Test seams. */
export interface AgentOptions {
  /** Passed to the identity lookup (tests shorten the IMDS backoff). */
  readonly identity?: Omit<DiscoverOptions, 'signal'>;
  /** The sampler to use instead of the configured one (bench/agent-rss.ts compares them). */
  readonly sampler?: Sampler;
}

/**
 * The sampler for real load on this platform: /proc on Linux (no library, no child process);
 * systeminformation elsewhere, loaded only when it first samples.
 */
export function platformSampler(platform: NodeJS.Platform = process.platform): Sampler {
  return platform === 'linux' ? new ProcSampler() : new SystemSampler();
}

/**
 * MonitorC: sample and report until told to stop. Signals are the caller's (cli/main.ts).
 * Returns at once; with AGENT_IDENTITY=imds the identity is looked up first and the reporter
 * starts when it is known (`ready`). A failed lookup rejects `ready` and `done`.
 */
export function runAgent(cfg: AgentConfig, rootLog: Logger, clock: Clock = systemClock, opts: AgentOptions = {}): AgentHandle {
  // TLS files are checked before anything starts: a bad one is a ConfigError thrown from here.
  const link = serverLink(cfg, clock.now());
  const sampler: Sampler = opts.sampler ?? (cfg.simulate
    ? new SimulatedSampler({ noisePercent: cfg.simNoisePercent, slewPercentPerS: cfg.simSlewPercentPerS })
    : platformSampler());
  let reporter: Reporter | undefined;
  let log: Logger = rootLog.child({ component: 'agent', groupId: cfg.groupId });
  let resolveDone: () => void = () => {};
  let rejectDone: (err: unknown) => void = () => {};
  const done = new Promise<void>((resolve, reject) => { resolveDone = resolve; rejectDone = reject; });
  const lookup = new AbortController();
  let parentTimer: NodeJS.Timeout | undefined;
  let stopping: Promise<void> | undefined;
  const stop = (reason: string): Promise<void> => {
    stopping ??= (async () => {
      clearInterval(parentTimer);
      lookup.abort();
      log.info({ reason }, 'agent stopping');
      await reporter?.stop(reason);
      sampler.close?.();
      resolveDone();
    })();
    return stopping;
  };
  const begin = (identity: Identity, document?: InstanceIdentityDocument): Identity => {
    log = rootLog.child({ component: 'agent', instanceId: identity.instanceId, groupId: identity.groupId });
    reporter = new Reporter(cfg, identity, sampler, clock, rootLog, Math.random, link, document);
    log.info({
      server: cfg.server, transport: link.transport, authToken: link.token !== '', sampler: sampler.kind, version: version(), address: identity.address, identitySource: identity.source,
      ...(identity.zone !== undefined ? { zone: identity.zone } : {}),
      ...(identity.instanceType !== undefined ? { instanceType: identity.instanceType } : {}),
      identityDocument: document !== undefined, launchToken: cfg.launchToken !== '',
    }, 'agent starting');
    reporter.start();
    return identity;
  };
  if (cfg.exitWithParent) {
    const parent = process.ppid;
    parentTimer = setInterval(() => {
      if (process.ppid !== parent) void stop('parent process exited');
    }, PARENT_CHECK_MS);
  }
  let ready: Promise<Identity>;
  if (cfg.identity === 'imds') {
    log.debug({ endpoint: cfg.imdsEndpoint }, 'asking IMDS for the instance identity');
    ready = discoverIdentityWithProof(cfg, { ...opts.identity, signal: lookup.signal }).then(
      (proven) => {
        if (stopping !== undefined) throw new Error('agent stopped before its identity was known');
        return begin(proven.identity, proven.document);
      },
      (err: unknown) => {
        // stop() during the lookup is a normal end; anything else ends the agent with the error.
        if (stopping === undefined) {
          clearInterval(parentTimer);
          rejectDone(err);
        }
        throw err;
      },
    );
  } else {
    ready = Promise.resolve(begin(resolveIdentity(cfg, opts.identity?.host)));
  }
  // Callers may await only one of the two; neither must surface as an unhandled rejection.
  ready.catch(() => {});
  done.catch(() => {});
  return {
    get reporter(): Reporter {
      if (reporter === undefined) throw new Error('agent identity not known yet: await handle.ready first');
      return reporter;
    },
    ready,
    done,
    stop,
    reloadTls: async () => {
      // Before the identity is known there is no reporter yet: check the files all the same.
      if (reporter === undefined) serverLink(cfg, clock.now());
      else reporter.reloadCredentials();
    },
  };
}

/** Like runAgent, but resolves once the reporter runs (the identity is known); rejects like `ready`. */
export async function startAgent(cfg: AgentConfig, rootLog: Logger, clock: Clock = systemClock, opts: AgentOptions = {}): Promise<AgentHandle> {
  const agent = runAgent(cfg, rootLog, clock, opts);
  await agent.ready;
  return agent;
}
