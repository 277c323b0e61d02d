/**
 * The child processes a bench starts (servers, load generators, `autoscaler certs init`): tracked
 * from spawn to exit, so that the bench ends every one of them on its way out, whatever the way
 * (done, error, Ctrl-C). One set per bench process. And the bounded waits the benches wait on
 * them with, the certificates they make with `autoscaler certs init`, and the check that a server
 * child runs on the allocator --server-env LD_PRELOAD asked for.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { allocatorInfo, preloadEntries } from '../lib/allocator.js';
import { cliEntry } from '../lib/paths.js';

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

/** What `autoscaler certs init` writes for one group: the CA, the server's pair, the group's client pair. */
export interface BenchCerts {
  readonly ca: string;
  readonly serverCert: string;
  readonly serverKey: string;
  readonly clientCert: string;
  readonly clientKey: string;
}

/** `autoscaler certs init DIR --group GROUP` in a tracked child (60 s at most): the keys production uses. */
export async function makeBenchCerts(dir: string, group: string): Promise<BenchCerts> {
  const child = track(spawn(process.execPath, [cliEntry(), 'certs', 'init', dir, '--group', group], { stdio: ['ignore', 'ignore', 'pipe'], env: cleanEnv() }));
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
  const code = await within('certs init', 60_000, new Promise<number | null>((r) => child.once('exit', r)));
  if (code !== 0) throw new Error(`autoscaler certs init failed (${code}): ${stderr.trim()}`);
  return {
    ca: join(dir, 'ca.crt'), serverCert: join(dir, 'server.crt'), serverKey: join(dir, 'server.key'),
    clientCert: join(dir, `group-${group}.crt`), clientKey: join(dir, `group-${group}.key`),
  };
}

/**
 * A preload asked for with --server-env LD_PRELOAD must be mapped in the server, or the run would
 * measure glibc's malloc under another allocator's name (ld.so only prints a line and goes on).
 */
export function checkPreload(pid: number, serverEnv: Readonly<Record<string, string>>, what: string): void {
  const asked = serverEnv.LD_PRELOAD;
  if (asked === undefined) return;
  const info = allocatorInfo(preloadEntries(asked), readFileSync(`/proc/${pid}/maps`, 'utf8'));
  if (info.notLoaded.length > 0) throw new Error(`${what}: LD_PRELOAD ${info.notLoaded.join(' ')} is not loaded in the server (pid ${pid}); check the path`);
  process.stdout.write(`  ${what}: allocator ${info.allocator} (${info.library ?? 'libc'})\n`);
}

/**
 * A bench's scratch directory, removed (unless `keep`) with every child ended on any way out: a
 * normal exit, or SIGINT, SIGTERM or SIGHUP (exit 130). On a signal the children get SIGTERM and
 * `graceMs` to stop before SIGKILL. `cleanup` may be called early (a watchdog) and runs once.
 */
export function benchWorkDir(prefix: string, opts: { readonly keep?: boolean; readonly graceMs?: number } = {}): { readonly work: string; readonly cleanup: () => void } {
  const work = mkdtempSync(join(tmpdir(), prefix));
  let cleaned = false;
  const cleanup = () => {
    if (cleaned) return;
    cleaned = true;
    killAll('SIGKILL');
    if (opts.keep !== true) rmSync(work, { recursive: true, force: true });
  };
  process.on('exit', cleanup);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      process.stderr.write(`\n${sig}: stopping every child\n`);
      killAll('SIGTERM');
      setTimeout(() => { cleanup(); process.exit(130); }, opts.graceMs ?? 0).unref();
    });
  }
  return { work, cleanup };
}
