import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../../lib/logger.js';
import { cliEntry, packageRoot } from '../../lib/paths.js';
import {
  ProviderError,
  type InstanceProvider,
  type LaunchRequest,
  type LaunchResult,
  type ProviderInstance,
  type ProviderListing,
  type TerminateRequest,
  type TerminateResult,
} from './types.js';

/**
 * Node flags of the agent's own entry, the same as deploy/systemd/autoscaler-agent.service's
 * ExecStart (test/agent-cli.test.ts checks that they agree; the unit says why each is there).
 */
export const AGENT_NODE_FLAGS: readonly string[] = ['--lite-mode', '--no-expose-wasm', '--no-node-snapshot'];

/**
 * The program and arguments of one agent. When `command` is this package's CLI run by this Node
 * (what the controller and the demo pass), the agent runs as the unit runs it: its own entry,
 * dist/agent/cli/main.js, with AGENT_NODE_FLAGS: 47 MiB of RSS where `autoscaler agent` takes 66
 * (bench/agent-rss.ts). Any other command gets `agent` appended.
 */
export function agentCommand(command: readonly string[]): readonly [string, ...string[]] {
  const [program, ...args] = command as [string, ...string[]];
  if (program === process.execPath && args.length === 1 && args[0] === cliEntry()) {
    return [program, ...AGENT_NODE_FLAGS, join(packageRoot(), 'dist', 'agent', 'cli', 'main.js'), '--simulate', '--exit-with-parent'];
  }
  return [program, ...args, 'agent', '--simulate', '--exit-with-parent'];
}

export interface LocalProviderOptions {
  /**
   * Program and leading arguments that start the CLI, e.g. [process.execPath, 'dist/cli/main.js'];
   * agents are started as agentCommand(command) says.
   */
  readonly command: readonly string[];
  /** Address agents dial; called at each launch (the monitor server may have moved). */
  readonly agentServer: () => string;
  /** SIGTERM, then SIGKILL after this long, ms. */
  readonly terminateTimeoutMs: number;
  /** One log file per instance here. */
  readonly logDir: string;
  /** Extra environment for every agent. */
  readonly agentEnv: Readonly<Record<string, string>>;
  readonly log: Logger;
  /** Instance ids for a group; default `<group>-<8 hex>`. Tests pass a deterministic one. */
  readonly newId?: (groupId: string) => string;
  /**
   * The per-launch secret of an instance, passed to its agent as AGENT_LAUNCH_TOKEN (the monitor
   * server checks it: MONITOR_REQUIRE_LAUNCH_TOKEN). The controller passes
   * `(id) => new SecretStore(db).launchToken(id)`. Default: none passed.
   */
  readonly launchToken?: (instanceId: string) => string;
}

interface Child {
  readonly groupId: string;
  readonly token: string;
  readonly launchedAt: number;
  readonly process: ChildProcess;
  readonly exited: Promise<void>;
  /** Set once SIGTERM was sent: the instance is on its way out. */
  stopping: Promise<void> | undefined;
}

/**
 * Instances as child processes on this machine, each an agent run with --simulate. The demo
 * and the tests use it. The provider names each instance (as EC2 does) and passes the id to the
 * agent in AGENT_INSTANCE_ID. Children are started with --exit-with-parent, so they cannot
 * outlive the controller even if it is killed with SIGKILL.
 */
export class LocalProvider implements InstanceProvider {
  readonly name = 'local';
  readonly lifecycle = 'controller' as const;
  readonly instancesEndWithController = true;
  private readonly children = new Map<string, Child>();
  /** Launch token → the ids it launched: the same token never launches twice. */
  private readonly byToken = new Map<string, readonly string[]>();
  /** Exits seen, reported once by list() as gone, then forgotten. */
  private readonly exits = new Map<string, ProviderInstance>();
  private readonly log: Logger;
  private readonly newId: (groupId: string) => string;

  constructor(private readonly opts: LocalProviderOptions) {
    this.log = opts.log.child({ component: 'provider', provider: 'local' });
    if (opts.command.length === 0) throw new TypeError('LocalProvider needs a command');
    this.newId = opts.newId ?? ((g) => `${g.slice(0, 48)}-${randomBytes(4).toString('hex')}`);
  }

  async verify(): Promise<void> {}

  async launch(req: LaunchRequest): Promise<LaunchResult> {
    const known = this.byToken.get(req.token);
    if (known !== undefined) {
      return { instances: known.map((id) => this.describe(id)).filter((i) => i !== undefined) };
    }
    let server: string;
    try {
      server = this.opts.agentServer();
    } catch (err) {
      throw new ProviderError(`cannot launch for ${req.groupId}: ${(err as Error).message}`, 'Unavailable', req.groupId, { action: 'local:spawn' }, { cause: err });
    }
    mkdirSync(this.opts.logDir, { recursive: true });
    const ids: string[] = [];
    let failure: ProviderError | undefined;
    for (let n = 0; n < req.count; n++) {
      const id = this.newId(req.groupId);
      try {
        await this.spawnOne(id, req, server);
        ids.push(id);
      } catch (err) {
        failure = err as ProviderError;
        break;
      }
    }
    if (ids.length === 0 && failure !== undefined) throw failure;
    this.byToken.set(req.token, ids);
    return { instances: ids.map((id) => this.describe(id)).filter((i) => i !== undefined), shortfall: failure };
  }

  private async spawnOne(id: string, req: LaunchRequest, server: string): Promise<void> {
    const logFile = join(this.opts.logDir, `${id}.log`);
    const fd = openSync(logFile, 'a');
    const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('AGENT_')));
    const [program, ...args] = agentCommand(this.opts.command);
    let child: ChildProcess;
    try {
      let launchToken: Record<string, string> = {};
      try {
        if (this.opts.launchToken !== undefined) launchToken = { AGENT_LAUNCH_TOKEN: this.opts.launchToken(id) };
      } catch (err) {
        throw new ProviderError(`cannot make the launch token of ${id}: ${(err as Error).message}`, 'Unavailable', req.groupId, { action: 'local:spawn' }, { cause: err });
      }
      child = spawn(program, args, {
        env: { ...inherited, ...this.opts.agentEnv, AGENT_INSTANCE_ID: id, AGENT_GROUP: req.groupId, AGENT_SERVER: server, AGENT_ADDRESS: '127.0.0.1', ...launchToken },
        stdio: ['ignore', fd, fd],
        detached: false,
      });
    } finally {
      closeSync(fd);
    }
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', (err) => reject(new ProviderError(`cannot start agent ${id}: ${err.message}`, 'Unavailable', req.groupId, { action: 'local:spawn' }, { cause: err })));
    });
    // Later errors (a failed kill) must not become unhandled 'error' events that end the controller.
    child.on('error', (err) => this.log.warn({ err, instanceId: id }, 'agent process error'));
    const c: Child = { groupId: req.groupId, token: req.token, launchedAt: Date.now(), process: child, exited, stopping: undefined };
    this.children.set(id, c);
    void exited.then(() => this.onExit(id, c));
    this.log.info({ instanceId: id, groupId: req.groupId, pid: child.pid, logFile }, 'instance launched');
  }

  private onExit(id: string, c: Child): void {
    if (this.children.get(id) !== c) return;
    this.children.delete(id);
    const p = c.process;
    const detail = c.stopping !== undefined ? 'terminated' : p.signalCode ? `exited with signal ${p.signalCode}` : `exited with code ${p.exitCode}`;
    this.exits.set(id, { id, groupId: c.groupId, state: 'gone', detail, launchToken: c.token, launchedAt: c.launchedAt, zone: 'local' });
  }

  private describe(id: string): ProviderInstance | undefined {
    const c = this.children.get(id);
    if (c === undefined) return this.exits.get(id);
    return {
      id, groupId: c.groupId, state: c.stopping !== undefined ? 'terminating' : 'running',
      detail: `${c.stopping !== undefined ? 'stopping' : 'running'}, pid ${c.process.pid}`,
      launchToken: c.token, launchedAt: c.launchedAt, zone: 'local', address: '127.0.0.1',
    };
  }

  /** Sends SIGTERM (SIGKILL after the timeout) and returns: the exit shows in list() as gone. */
  async terminate(req: TerminateRequest): Promise<TerminateResult> {
    for (const id of req.ids) {
      const c = this.children.get(id);
      if (c !== undefined) c.stopping ??= this.stop(id, c);
    }
    return { accepted: [...req.ids], failed: [] };
  }

  private async stop(id: string, c: Child): Promise<void> {
    const p = c.process;
    if (p.exitCode !== null || p.signalCode !== null) return;
    p.kill('SIGTERM');
    p.kill('SIGCONT'); // a stopped (hung) process handles SIGTERM only once continued
    const timedOut = await Promise.race([c.exited.then(() => false), delay(this.opts.terminateTimeoutMs).then(() => true)]);
    if (timedOut) {
      this.log.warn({ instanceId: id, pid: p.pid, timeoutMs: this.opts.terminateTimeoutMs }, 'instance ignored SIGTERM; sending SIGKILL');
      p.kill('SIGKILL');
      await c.exited;
    }
    this.log.info({ instanceId: id, groupId: c.groupId, exitCode: p.exitCode, signal: p.signalCode }, 'instance terminated');
  }

  async setDesiredCapacity(): Promise<void> {
    throw new TypeError('the local provider launches instances one by one; it has no desired capacity');
  }

  async list(groupId: string): Promise<ProviderListing> {
    const instances: ProviderInstance[] = [];
    for (const id of this.children.keys()) {
      const i = this.describe(id);
      if (i !== undefined && i.groupId === groupId) instances.push(i);
    }
    for (const [id, gone] of this.exits) {
      if (gone.groupId !== groupId) continue;
      instances.push(gone);
      this.exits.delete(id);
    }
    return { instances };
  }

  /** Stop every child and wait for each to exit. */
  async close(): Promise<void> {
    await this.terminate({ groupId: '', ids: [...this.children.keys()], decrement: true });
    await Promise.all([...this.children.values()].map((c) => c.stopping));
  }

  /** Resolves when the instance's process has exited (tests). */
  async exited(id: string): Promise<void> {
    await this.children.get(id)?.exited;
  }

  /** Pids of live children, for tests and the demo's final check. */
  pids(): number[] {
    return [...this.children.values()].filter((c) => c.process.exitCode === null && c.process.signalCode === null).map((c) => c.process.pid as number);
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}
