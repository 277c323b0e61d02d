#!/usr/bin/env node
/**
 * The agent's own entry point: `node dist/agent/cli/main.js [--simulate] [--exit-with-parent]
 * [--config <file>]`. It behaves as `autoscaler agent` does (the same environment, ./.env,
 * AUTOSCALER_CONFIG and --config file, the same signals and exit statuses) but loads only what
 * the agent needs: no commander, no other command's modules. bench/agent-rss.ts measures the
 * difference.
 *
 * Like cli/main.ts this is a process entry: it owns the signals and is the only agent module that
 * exits.
 */
import { config as loadDotenv } from 'dotenv';
import { parseArgs } from 'node:util';
import { loadAgentConfig } from '../../config/agent.js';
import { ConfigError } from '../../config/errors.js';
import type { ConfigSources } from '../../config/sources.js';
import { createLogger } from '../../lib/logger.js';
import { serve } from '../../lib/serve.js';
import { version } from '../../lib/version.js';
import { runAgent } from '../main.js';

/** Exit status for an unusable configuration (sysexits EX_CONFIG); systemd units do not restart on it. */
const EXIT_CONFIG = 78;
/** Exit status for bad command-line use. */
const EXIT_USAGE = 2;

const USAGE = `Usage: node dist/agent/cli/main.js [options]

Run the agent (MonitorC): sample CPU and memory and report to the monitor server.
The same as \`autoscaler agent\`; configured by AGENT_* variables (config/agent.env.example).

Options:
  --simulate          report simulated load from the group demand (AGENT_SIMULATE)
  --exit-with-parent  exit when the parent process exits (AGENT_EXIT_WITH_PARENT)
  --config <file>     config file (.json or dotenv format); the environment overrides it
                      (default: AUTOSCALER_CONFIG)
  -V, --version       print the version
  -h, --help          print this help
`;

/** What the command line asked for. */
interface AgentArgs {
  readonly simulate: boolean;
  readonly exitWithParent: boolean;
  readonly config: string | undefined;
  readonly help: boolean;
  readonly version: boolean;
}

/** A command line this entry does not understand; the message says what is wrong. */
class AgentUsageError extends Error {
  override name = 'AgentUsageError';
}

/** Parse the agent's options (the same as `autoscaler agent`'s). Throws AgentUsageError. */
function parseAgentArgs(argv: readonly string[]): AgentArgs {
  try {
    const { values } = parseArgs({
      args: [...argv],
      options: {
        simulate: { type: 'boolean' },
        'exit-with-parent': { type: 'boolean' },
        config: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'V' },
      },
      strict: true,
      allowPositionals: false,
    });
    return {
      simulate: values.simulate === true,
      exitWithParent: values['exit-with-parent'] === true,
      config: values.config,
      help: values.help === true,
      version: values.version === true,
    };
  } catch (err) {
    throw new AgentUsageError(err instanceof Error ? err.message : String(err), { cause: err });
  }
}

/** The config sources `autoscaler agent` reads: the environment (plus the flags) over the optional file. */
function agentSources(args: AgentArgs, env: NodeJS.ProcessEnv): ConfigSources {
  return {
    env: {
      ...env,
      ...(args.simulate ? { AGENT_SIMULATE: 'true' } : {}),
      ...(args.exitWithParent ? { AGENT_EXIT_WITH_PARENT: 'true' } : {}),
    },
    file: args.config ?? env.AUTOSCALER_CONFIG,
  };
}

async function main(): Promise<void> {
  try {
    const args = parseAgentArgs(process.argv.slice(2));
    if (args.help) {
      process.stdout.write(USAGE);
      return;
    }
    if (args.version) {
      process.stdout.write(`${version()}\n`);
      return;
    }
    loadDotenv({ quiet: true });
    const cfg = loadAgentConfig(agentSources(args, process.env));
    const log = createLogger({ level: cfg.logLevel, process: 'agent' });
    const agent = runAgent(cfg, log);
    // Runs until SIGINT/SIGTERM (the first stops the agent gracefully, a second exits at once) or
    // until the agent ends by itself (its parent went away; no identity). SIGHUP reloads the TLS files.
    await serve(log, { close: () => agent.stop('signal'), reloadTls: () => agent.reloadTls(), done: agent.done }, { exit: (code) => process.exit(code) });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`autoscaler agent: ${err.message}\n`);
      process.exit(EXIT_CONFIG);
    }
    if (err instanceof AgentUsageError) {
      process.stderr.write(`autoscaler agent: ${err.message}\n\n${USAGE}`);
      process.exit(EXIT_USAGE);
    }
    const debug = process.env.LOG_LEVEL === 'debug' || process.env.LOG_LEVEL === 'trace';
    process.stderr.write(`autoscaler agent: ${err instanceof Error ? (debug ? (err.stack ?? err.message) : err.message) : String(err)}\n`);
    process.exit(1);
  }
}

void main();
