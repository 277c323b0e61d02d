/**
 * The child processes a bench starts (servers, load generators, `autoscaler certs init`): tracked
 * from spawn to exit, so that the bench ends every one of them on its way out, whatever the way
 * (done, error, Ctrl-C). One set per bench process. And the bounded waits the benches wait on
 * them with.
 */
import type { ChildProcess } from 'node:child_process';

const children = new Set<ChildProcess>();

/** Track a child until it exits; returns it. */
export function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** Send `signal` to every tracked child still running. */
export function killAll(signal: NodeJS.Signals): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill(signal);
}

/**
 * SIGTERM (unless `signal` is false: it was asked to stop another way, e.g. its IPC channel
 * closed), then SIGKILL after `graceMs`; resolves when it has exited.
 */
export function stopChild(child: ChildProcess, graceMs: number, signal = true): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => { clearTimeout(t); resolve(); });
    if (signal) child.kill('SIGTERM');
  });
}

/** The environment without the keys that configure this project's processes: the bench sets those itself. */
export function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^(MONITOR_|AGENT_|AUTOSCALER_|CONTROLLER_|LOG_LEVEL$|NODE_OPTIONS$)/.test(k)) env[k] = v;
  return env;
}

/** Resolve after `ms` (0 for a negative one). */
export const sleep = (ms: number): Promise<void> => new Promise<void>((r) => setTimeout(r, Math.max(0, ms)));

/** `p`, or a rejection naming `what` when it has not settled within `ms`. */
export async function within<T>(what: string, ms: number, p: Promise<T>): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => { t = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms); })]);
  } finally {
    clearTimeout(t);
  }
}
