import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../../lib/logger.js';
import { ProviderError, type InstanceProvider, type ProviderInstance } from './types.js';

export interface LocalProviderOptions {
  /** Program and leading arguments that start the CLI, e.g. [process.execPath, 'dist/cli/main.js']. */
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
}

interface Child {
  readonly groupId: string;
  readonly process: ChildProcess;
  readonly exited: Promise<void>;
}

/**
 * Instances as child processes on this machine, each an `autoscaler agent --simulate`. The demo
 * and the tests use it. Children are started with --exit-with-parent, so they cannot outlive the
 * controller even if it is killed with SIGKILL.
 */
export class LocalProvider implements InstanceProvider {
  readonly name = 'local';
  readonly instancesEndWithController = true;
  private readonly children = new Map<string, Child>();
  private readonly log: Logger;

  constructor(private readonly opts: LocalProviderOptions) {
    this.log = opts.log.child({ component: 'provider', provider: 'local' });
    if (opts.command.length === 0) throw new TypeError('LocalProvider needs a command');
  }

  async launch(req: { groupId: string; instanceId: string }): Promise<{ providerId: string }> {
    let server: string;
    try {
      server = this.opts.agentServer();
    } catch (err) {
      throw new ProviderError(`cannot launch ${req.instanceId}: ${(err as Error).message}`, req.groupId, { cause: err });
    }
    mkdirSync(this.opts.logDir, { recursive: true });
    const logFile = join(this.opts.logDir, `${req.instanceId}.log`);
    const fd = openSync(logFile, 'a');
    const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('AGENT_')));
    const [program, ...args] = this.opts.command as [string, ...string[]];
    let child: ChildProcess;
    try {
      child = spawn(program, [...args, 'agent', '--simulate', '--exit-with-parent'], {
        env: { ...inherited, ...this.opts.agentEnv, AGENT_INSTANCE_ID: req.instanceId, AGENT_GROUP: req.groupId, AGENT_SERVER: server, AGENT_ADDRESS: '127.0.0.1' },
        stdio: ['ignore', fd, fd],
        detached: false,
      });
    } finally {
      closeSync(fd);
    }
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', (err) => reject(new ProviderError(`cannot start agent for ${req.instanceId}: ${err.message}`, req.groupId, { cause: err })));
    });
    // Later errors (a failed kill) must not become unhandled 'error' events that end the controller.
    child.on('error', (err) => this.log.warn({ err, instanceId: req.instanceId }, 'agent process error'));
    this.children.set(req.instanceId, { groupId: req.groupId, process: child, exited });
    this.log.info({ instanceId: req.instanceId, groupId: req.groupId, pid: child.pid, logFile }, 'instance launched');
    return { providerId: `pid:${child.pid}` };
  }

  async terminate(req: { groupId: string; instanceId: string; providerId?: string | null }): Promise<void> {
    const c = this.children.get(req.instanceId);
    if (c === undefined) return;
    const p = c.process;
    if (p.exitCode === null && p.signalCode === null) {
      p.kill('SIGTERM');
      p.kill('SIGCONT'); // a stopped (hung) process handles SIGTERM only once continued
      const timedOut = await Promise.race([c.exited.then(() => false), delay(this.opts.terminateTimeoutMs).then(() => true)]);
      if (timedOut) {
        this.log.warn({ instanceId: req.instanceId, pid: p.pid, timeoutMs: this.opts.terminateTimeoutMs }, 'instance ignored SIGTERM; sending SIGKILL');
        p.kill('SIGKILL');
        await c.exited;
      }
    }
    this.children.delete(req.instanceId);
    this.log.info({ instanceId: req.instanceId, groupId: req.groupId, exitCode: p.exitCode, signal: p.signalCode }, 'instance terminated');
  }

  async list(groupId: string): Promise<readonly ProviderInstance[]> {
    const out: ProviderInstance[] = [];
    for (const [instanceId, c] of this.children) {
      if (c.groupId !== groupId) continue;
      const p = c.process;
      const gone = p.exitCode !== null || p.signalCode !== null;
      out.push({
        instanceId,
        providerId: `pid:${p.pid}`,
        state: gone ? 'gone' : 'running',
        detail: gone ? (p.signalCode ? `exited with signal ${p.signalCode}` : `exited with code ${p.exitCode}`) : 'running',
      });
      if (gone) this.children.delete(instanceId);
    }
    return out;
  }

  async close(): Promise<void> {
    await Promise.all([...this.children].map(([instanceId, c]) => this.terminate({ groupId: c.groupId, instanceId })));
  }

  /** Pids of live children, for tests and the demo's final check. */
  pids(): number[] {
    return [...this.children.values()].filter((c) => c.process.exitCode === null && c.process.signalCode === null).map((c) => c.process.pid as number);
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}
