/** Helpers for integration tests: temp dirs, real CLI processes, bounded waits. */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliEntry } from '../lib/paths.js';

export { isAlive } from '../lib/process.js';
export { waitFor } from '../lib/testing.js';

export function tempDir(prefix = 'autoscaler-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** A running `autoscaler …` process with its output captured. */
export interface CliProcess {
  readonly child: ChildProcess;
  readonly output: () => string;
  /** JSON log lines parsed from stdout. */
  readonly logs: () => Record<string, unknown>[];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, then SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

const running = new Set<ChildProcess>();

/** Start the built CLI (npm test builds first) with a clean environment plus `env`. */
export function startCli(args: readonly string[], env: Record<string, string> = {}): CliProcess {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(AGENT_|MONITOR_|CONTROLLER_|GROUP_|LOCAL_|AUTOSCALER_)/.test(k)));
  // Listeners on ports the OS chooses, unless a test says otherwise.
  const child = spawn(process.execPath, [cliEntry(), ...args], { env: { ...base, CONTROLLER_HTTP_PORT: '0', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  let out = '';
  child.stdout?.on('data', (b: Buffer) => { out += b.toString('utf8'); });
  child.stderr?.on('data', (b: Buffer) => { out += b.toString('utf8'); });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      running.delete(child);
      resolve({ code, signal });
    });
  });
  return {
    child,
    output: () => out,
    logs: () => out.split('\n').filter((l) => l.startsWith('{')).map((l) => { try { return JSON.parse(l) as Record<string, unknown>; } catch { return {}; } }),
    exited,
    stop: async (graceMs = 5_000) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(t);
    },
  };
}

/** Run the CLI to completion (bounded) and return its exit code and output. */
export async function runCli(args: readonly string[], env: Record<string, string> = {}, timeoutMs = 15_000): Promise<{ code: number | null; output: string }> {
  const p = startCli(args, env);
  const t = setTimeout(() => p.child.kill('SIGKILL'), timeoutMs);
  const { code } = await p.exited;
  clearTimeout(t);
  return { code, output: p.output() };
}

/** Kill whatever a failed test left behind. */
export function killAll(): void {
  for (const c of running) c.kill('SIGKILL');
}


/** Where the browser tests look for Debian's Chromium (or CHROMIUM_PATH). */
const CHROMIUM_CANDIDATES = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].filter((p): p is string => !!p);

/**
 * The Chromium for a browser test, or undefined (the test skips with a message). Under CI=true a
 * missing browser is an error: CI installs it, so its absence is a broken setup, not a skip.
 */
export function findChromium(what: string): string | undefined {
  const found = CHROMIUM_CANDIDATES.find((p) => existsSync(p));
  if (found === undefined) {
    if (process.env.CI === 'true') throw new Error(`Chromium not found (looked at ${CHROMIUM_CANDIDATES.join(', ')}); CI must install it: apt-get install -y chromium`);
    console.warn(`${what} skipped: no Chromium at ${CHROMIUM_CANDIDATES.join(', ')} (apt-get install chromium, or set CHROMIUM_PATH)`);
  }
  return found;
}

/** Headless, no network of its own (no QUIC, background fetches, updates or sync). */
export const CHROMIUM_ARGS: readonly string[] = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
