/**
 * `autoscaler simulate`: replay a demand trace (built-in, CSV, or a group's recorded history)
 * through the real policy engine in virtual time, next to the HPA, AWS target tracking, a
 * threshold rule and an oracle; print the comparison, write a chart (SVG, or PNG through a
 * headless Chromium) or an HTML report. The simulation itself is pure (sim/); this file reads and
 * writes the files and runs the browser.
 */
import type { Command } from 'commander';
import { spawn } from 'node:child_process';
import { accessSync, constants as fsConstants, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, extname, join, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import { DEFAULT_DB_PATH } from '../config/shared.js';
import { formatProblems, parseGroup, parsePolicy, type PolicyDocument } from '../domain/policy.js';
import { BASELINES, type BaselineName } from '../sim/baselines.js';
import { renderChart, renderReport } from '../sim/chart.js';
import { runComparison, type Comparison } from '../sim/compare.js';
import { TABLE_HEADER, formatTable, tableCells } from '../sim/metrics.js';
import { BROWSER_NAMES, chartPage, chromiumArgs, readPngSize, svgSize } from '../sim/png.js';
import { ProfileSpecError, parseDuration } from '../sim/profile.js';
import { DEFAULT_BOOT_S, DEFAULT_MAX_SIZE, DEFAULT_MIN_SIZE, DEFAULT_NOISE } from '../sim/runner.js';
import { DEFAULT_TICK_S } from '../sim/engine-policy.js';
import { TraceError, builtinTrace, isBuiltinTrace, parseCsvTrace, traceFromMinutes, truncate, TRACE_NAMES, type Trace } from '../sim/traces.js';
import { UsageError } from './groups.js';

/** The command-line options of `autoscaler simulate`, as commander gives them. */
export interface SimulateOptions {
  /** A built-in trace name or a `time,demand` CSV file. */
  trace?: string;
  /** Replay this group's recorded per-minute history instead. */
  fromDb?: string;
  /** SQLite file for --from-db (AUTOSCALER_DB). */
  db?: string;
  /** A policy document (or group document) as JSON; default: the default policy. */
  policy?: string;
  boot: string;
  tick: string;
  seed: string;
  compare: string;
  duration?: string;
  min?: string;
  max?: string;
  noise: string;
  failures: string;
  /** .svg (the chart), .png (the chart, through a headless Chromium) or .html (a report with the table and the chart). */
  out?: string;
  json?: boolean;
}

const seconds = (text: string, what: string, min = 0): number => {
  let ms: number;
  try {
    ms = parseDuration(text);
  } catch (err) {
    if (err instanceof ProfileSpecError) throw new UsageError(`${what}: ${err.message}`);
    throw err;
  }
  if (ms % 1000 !== 0 || ms / 1000 < min) throw new UsageError(`${what} must be whole seconds >= ${min} (got "${text}")`);
  return ms / 1000;
};

const number = (text: string, what: string, min: number, max: number, integer = false): number => {
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n))) {
    throw new UsageError(`${what} must be ${integer ? 'a whole number' : 'a number'} from ${min} to ${max} (got "${text}")`);
  }
  return n;
};

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new UsageError(`${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}

/** A policy document, or a group document (then its bounds too). */
async function loadPolicy(path: string): Promise<{ policy: PolicyDocument; minSize?: number; maxSize?: number }> {
  let input: unknown;
  try {
    input = JSON.parse(readText(path));
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`${path}: not valid JSON (${(err as Error).message})`);
  }
  const isGroup = typeof input === 'object' && input !== null && 'policy' in input && 'id' in input;
  const parsed = isGroup ? parseGroup(input) : parsePolicy(input);
  if (!parsed.ok) throw new UsageError(`${path} is invalid:\n${formatProblems(parsed.problems).split('\n').map((l) => `  - ${l}`).join('\n')}`);
  const doc = parsed.value;
  const policy = 'policy' in doc ? doc.policy : doc;
  const { scheduleProblem } = await import('../controller/schedules.js');
  const problems = policy.schedules.flatMap((s, n) => {
    const p = scheduleProblem(s);
    return p === undefined ? [] : [`schedules.${n}.${p.field}: ${p.message}`];
  });
  if (problems.length > 0) throw new UsageError(`${path} is invalid:\n${problems.map((l) => `  - ${l}`).join('\n')}`);
  return 'policy' in doc ? { policy, minSize: doc.minSize, maxSize: doc.maxSize } : { policy };
}

async function loadTrace(opts: SimulateOptions, seed: number): Promise<{ trace: Trace; minSize?: number; maxSize?: number }> {
  if ((opts.trace === undefined) === (opts.fromDb === undefined)) throw new UsageError(`give one of --trace NAME|FILE.csv (built-in: ${TRACE_NAMES.join(', ')}) or --from-db GROUP`);
  try {
    if (opts.trace !== undefined) {
      if (isBuiltinTrace(opts.trace)) return { trace: builtinTrace(opts.trace, seed) };
      if (extname(opts.trace).toLowerCase() !== '.csv' && !existsSync(opts.trace)) {
        throw new UsageError(`unknown trace "${opts.trace}": use one of ${TRACE_NAMES.join(', ')} or a .csv file of time,demand rows`);
      }
      return { trace: parseCsvTrace(readText(opts.trace), opts.trace) };
    }
    const path = opts.db ?? process.env.AUTOSCALER_DB ?? DEFAULT_DB_PATH;
    if (!existsSync(path)) throw new UsageError(`no database at ${path}: pass --db or set AUTOSCALER_DB`);
    const { openStore } = await import('../store/db.js');
    const { MinuteStore } = await import('../store/minutes.js');
    const { GroupStore } = await import('../store/groups.js');
    const db = openStore(path, { readonly: true });
    try {
      const group = opts.fromDb as string;
      const minutes = new MinuteStore(db).range(group, 0, Number.MAX_SAFE_INTEGER);
      const row = new GroupStore(db).get(group);
      if (row === undefined && minutes.length === 0) throw new UsageError(`no group "${group}" in ${path}`);
      return { trace: traceFromMinutes(minutes, group), minSize: row?.minSize, maxSize: row?.maxSize };
    } finally {
      db.close();
    }
  } catch (err) {
    if (err instanceof TraceError) throw new UsageError(err.message);
    throw err;
  }
}

function baselinesOf(text: string): BaselineName[] {
  const names = text.split(',').map((s) => s.trim()).filter((s) => s !== '' && s !== 'none');
  const bad = names.filter((n) => !(BASELINES as readonly string[]).includes(n));
  if (bad.length > 0) throw new UsageError(`--compare: unknown ${bad.join(', ')} (use ${BASELINES.join(',')} or none)`);
  return [...new Set(names)] as BaselineName[];
}

/** A progress bar on stderr, redrawn only when the percentage changes; a no-op when stderr is not a terminal. */
function progressBar(): { update: (done: number) => void; end: () => void } {
  if (!process.stderr.isTTY) return { update: () => undefined, end: () => undefined };
  let shown = -1;
  return {
    update: (done) => {
      const pct = Math.floor(done * 100);
      if (pct === shown) return;
      shown = pct;
      const filled = Math.round((pct / 100) * 30);
      process.stderr.write(`\rsimulating [${'#'.repeat(filled)}${' '.repeat(30 - filled)}] ${String(pct).padStart(3)}%`);
    },
    end: () => {
      if (shown >= 0) process.stderr.write(`\r${' '.repeat(50)}\r`);
    },
  };
}

/** The JSON document of `--json`. */
export function comparisonJson(trace: Trace, c: Comparison): unknown {
  return {
    trace: { name: trace.name, description: trace.description, seconds: trace.demand.length, startAt: trace.startAt },
    bootS: c.bootS, tickS: c.tickS, seed: c.seed, target: c.target,
    runs: c.rows.map((r, i) => ({ policy: r.policy, metrics: r.metrics, failures: c.runs[i]?.failures ?? 0 })),
    series: seriesOf(trace, c),
  };
}

/** Points per series in the JSON, at most (the dashboard's what-if chart). */
const SERIES_POINTS = 600;

/** Demand and each run's capacity, averaged into at most SERIES_POINTS buckets of `stepS` seconds. */
function seriesOf(trace: Trace, c: Comparison): { stepS: number; demand: number[]; capacity: Record<string, number[]> } {
  const n = trace.demand.length;
  const stepS = Math.max(1, Math.ceil(n / SERIES_POINTS));
  const avg = (a: ArrayLike<number>) => {
    const out: number[] = [];
    for (let i = 0; i < n; i += stepS) {
      let sum = 0;
      const end = Math.min(n, i + stepS);
      for (let j = i; j < end; j++) sum += a[j] ?? 0;
      out.push(Math.round((sum / (end - i)) * 100) / 100);
    }
    return out;
  };
  return { stepS, demand: avg(trace.demand), capacity: Object.fromEntries(c.runs.map((r) => [r.policy, avg(r.capacity)])) };
}

/** The environment variable naming the browser for `--out chart.png` (a path, or a command on PATH). */
export const CHROMIUM_ENV = 'AUTOSCALER_CHROMIUM';
/** How long the browser may take to write the PNG before it is killed, ms. */
export const DEFAULT_PNG_TIMEOUT_MS = 30_000;
/** Lines of the browser's output quoted when it fails. */
const TAIL_LINES = 5;

/** The browser started but did not produce the PNG: it failed, timed out, or wrote something else. */
export class BrowserError extends Error {
  override name = 'BrowserError';
}

/** Why `path` cannot be run, or undefined when it is an executable file. */
function notExecutable(path: string): string | undefined {
  try {
    if (!statSync(path).isFile()) return 'not a file';
    accessSync(path, fsConstants.X_OK);
    return undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? 'no such file (ENOENT)' : code === 'EACCES' ? 'not executable (EACCES)' : (code ?? String(err));
  }
}

function onPath(name: string, pathEnv: string | undefined): string | undefined {
  const dirs = (pathEnv ?? '').split(delimiter).filter((d) => d !== '');
  return dirs.map((d) => join(d, name)).find((p) => notExecutable(p) === undefined);
}

/**
 * The browser for `--out chart.png`: AUTOSCALER_CHROMIUM when set (a path, or a command looked up
 * on PATH; it is not second-guessed), else the first of chromium, chromium-browser, google-chrome
 * on PATH. A UsageError saying what was tried and what to do when there is none.
 */
export function findBrowser(env: Readonly<Record<string, string | undefined>>): string {
  const fix = `install Chromium (Debian: apt-get install chromium), set ${CHROMIUM_ENV} to a Chromium or Chrome executable, or write --out chart.svg`;
  const explicit = env[CHROMIUM_ENV];
  if (explicit !== undefined && explicit !== '') {
    if (!explicit.includes(sep) && !explicit.includes('/')) {
      const found = onPath(explicit, env.PATH);
      if (found !== undefined) return found;
      throw new UsageError(`--out .png: ${CHROMIUM_ENV}=${explicit} is not a command on PATH; ${fix}`);
    }
    const problem = notExecutable(explicit);
    if (problem === undefined) return explicit;
    throw new UsageError(`--out .png: ${CHROMIUM_ENV}=${explicit}: ${problem}; ${fix}`);
  }
  for (const name of BROWSER_NAMES) {
    const found = onPath(name, env.PATH);
    if (found !== undefined) return found;
  }
  throw new UsageError(`--out .png needs a headless Chromium: ${CHROMIUM_ENV} is not set and none of ${BROWSER_NAMES.join(', ')} is on PATH; ${fix}`);
}

/** The last lines the browser printed, without the D-Bus complaints headless Chromium makes on machines without a session bus. */
function tailOf(output: string): string {
  const lines = output.split('\n').map((l) => l.trimEnd()).filter((l) => l !== '' && !l.includes('dbus/'));
  return lines.length === 0 ? ' (it printed nothing)' : `; its last output:\n${lines.slice(-TAIL_LINES).map((l) => `  ${l}`).join('\n')}`;
}

interface BrowserRun {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly timedOut: boolean;
  readonly output: string;
}

/** Run the browser in its own process group, so a timeout (or leftovers after it exits) kill all of it. */
function runBrowser(browser: string, args: readonly string[], timeoutMs: number): Promise<BrowserRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(browser, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let output = '';
    const keep = (b: Buffer): void => { output = (output + b.toString('utf8')).slice(-16_384); };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const killGroup = (): void => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // ESRCH: nothing left of the group. Elsewhere (no process groups) the browser alone.
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }
    };
    let timedOut = false;
    const timer = setTimeout(() => { timedOut = true; killGroup(); }, timeoutMs);
    // Helpers still holding our pipes after the browser exits would keep 'close' from coming.
    child.once('exit', killGroup);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new BrowserError(`could not start ${browser}: ${(err as NodeJS.ErrnoException).code ?? err.message}`, { cause: err }));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, timedOut, output });
    });
  });
}

/** Options of {@link renderPng}. */
export interface RenderPngOptions {
  /** Kill the browser after this long, ms. Default {@link DEFAULT_PNG_TIMEOUT_MS}. */
  timeoutMs?: number;
  /** Where the temporary directory (page, profile, screenshot) is made; removed afterwards. Default the OS temp dir. */
  tmpRoot?: string;
}

/**
 * Screenshot the chart SVG with `browser` (headless, no network, a throwaway profile) and return
 * the PNG, checked to be a PNG of the chart's size. A BrowserError when the browser fails, times
 * out or writes anything else.
 */
export async function renderPng(svg: string, browser: string, opts: RenderPngOptions = {}): Promise<Buffer> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_PNG_TIMEOUT_MS;
  const size = svgSize(svg);
  const dir = mkdtempSync(join(opts.tmpRoot ?? tmpdir(), 'autoscaler-png-'));
  try {
    const page = join(dir, 'chart.html');
    const out = join(dir, 'chart.png');
    const profileDir = join(dir, 'profile');
    writeFileSync(page, chartPage(svg));
    mkdirSync(profileDir);
    const args = chromiumArgs({ pageUrl: pathToFileURL(page).href, outPath: out, profileDir, size, noSandbox: process.getuid?.() === 0 });
    const run = await runBrowser(browser, args, timeoutMs);
    if (run.timedOut) throw new BrowserError(`${browser} did not write the PNG within ${timeoutMs / 1000} s and was killed${tailOf(run.output)}`);
    if (run.code !== 0) throw new BrowserError(`${browser} failed (${run.code === null ? `killed by ${run.signal ?? 'a signal'}` : `exit code ${run.code}`})${tailOf(run.output)}`);
    let bytes: Buffer;
    try {
      bytes = readFileSync(out);
    } catch (err) {
      throw new BrowserError(`${browser} exited 0 but wrote no screenshot${tailOf(run.output)}`, { cause: err });
    }
    const check = readPngSize(bytes);
    if (!check.ok) throw new BrowserError(`${browser} wrote a file that is not a PNG: ${check.problem}`);
    if (check.size.width !== size.width || check.size.height !== size.height) {
      throw new BrowserError(`${browser} wrote a ${check.size.width}×${check.size.height} PNG; the chart is ${size.width}×${size.height}`);
    }
    return bytes;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Run the command; returns the exit code (0). Bad use, and no browser for .png, throw UsageError
 * (exit 2 in cli/main.ts); a browser that fails throws BrowserError (exit 1).
 */
export async function runSimulate(opts: SimulateOptions): Promise<number> {
  const seed = number(opts.seed, '--seed', 0, 2 ** 32 - 1, true);
  const bootS = seconds(opts.boot, '--boot');
  const tickS = seconds(opts.tick, '--tick', 1);
  const noise = number(opts.noise, '--noise', 0, 50);
  const failuresPerHour = number(opts.failures, '--failures', 0, 60);
  const baselines = baselinesOf(opts.compare);
  const ext = opts.out === undefined ? undefined : extname(opts.out).toLowerCase();
  if (ext !== undefined && ext !== '.svg' && ext !== '.png' && ext !== '.html') throw new UsageError(`--out must end in .svg, .png or .html (got "${opts.out}")`);
  // Before the simulation, so a missing browser is said at once.
  const browser = ext === '.png' ? findBrowser(process.env) : undefined;
  const loaded = await loadTrace(opts, seed);
  const file = opts.policy === undefined ? undefined : await loadPolicy(opts.policy);
  let policy: PolicyDocument;
  if (file !== undefined) policy = file.policy;
  else {
    const p = parsePolicy({});
    if (!p.ok) throw new Error('the default policy does not parse');
    policy = p.value;
  }
  const minSize = opts.min !== undefined ? number(opts.min, '--min', 0, 10_000, true) : file?.minSize ?? loaded.minSize ?? DEFAULT_MIN_SIZE;
  const maxSize = opts.max !== undefined ? number(opts.max, '--max', 1, 10_000, true) : file?.maxSize ?? loaded.maxSize ?? DEFAULT_MAX_SIZE;
  if (maxSize < minSize) throw new UsageError(`--max (${maxSize}) must be >= --min (${minSize})`);
  const trace = opts.duration === undefined ? loaded.trace : truncate(loaded.trace, seconds(opts.duration, '--duration', 1));

  let windows: ((now: number) => import('../controller/policy/types.js').ScheduleWindow[]) | undefined;
  if (policy.schedules.length > 0) {
    const { openWindows } = await import('../controller/schedules.js');
    windows = (now) => openWindows(policy.schedules, now);
  }
  const bar = progressBar();
  let c: Comparison;
  try {
    c = runComparison({
      trace, policy, policyName: opts.policy === undefined ? 'default' : 'policy', baselines, bootS, tickS, seed, noise, failuresPerHour, minSize, maxSize, windows,
      onProgress: bar.update,
    });
  } finally {
    bar.end();
  }

  if (opts.json) process.stdout.write(`${JSON.stringify(comparisonJson(trace, c), null, 2)}\n`);
  else {
    const hours = trace.demand.length / 3_600;
    process.stdout.write(`trace ${trace.name}: ${trace.description}\n`);
    process.stdout.write(`${trace.demand.length} s (${hours.toFixed(1)} h) at 1 s; boot ${bootS} s; tick ${tickS} s; seed ${seed}; min ${minSize} max ${maxSize}; target ${c.target} %\n\n`);
    process.stdout.write(`${formatTable(TABLE_HEADER, c.rows.map(tableCells))}\n`);
  }
  if (opts.out !== undefined) {
    const svg = renderChart(trace, c.runs, { target: c.target });
    const body = ext === '.html' ? renderReport({ trace, bootS, seed, tickS, policyName: opts.policy ?? 'default policy' }, c.rows, svg)
      : browser !== undefined ? await renderPng(svg, browser) : svg;
    try {
      writeFileSync(opts.out, body);
    } catch (err) {
      throw new UsageError(`--out ${opts.out}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
    (opts.json ? process.stderr : process.stdout).write(`${opts.json ? '' : '\n'}wrote ${opts.out}\n`);
  }
  return 0;
}

/** Register `autoscaler simulate` on the program. */
export function addSimulateCommand(program: Command): void {
  program
    .command('simulate')
    .description('what-if: replay a demand trace through the policy engine in virtual time, against the HPA, AWS target tracking, a threshold rule and an oracle')
    .option('--trace <name|file.csv>', `a built-in trace (${TRACE_NAMES.join(', ')}) or a CSV of time,demand rows (seconds, percent of one instance)`)
    .option('--from-db <group>', "replay a group's recorded per-minute history")
    .option('--db <path>', 'SQLite file for --from-db (AUTOSCALER_DB)')
    .option('--policy <file>', 'policy document (or group document) as JSON; default: the default policy')
    .option('--boot <time>', 'launch to ready', `${DEFAULT_BOOT_S}s`)
    .option('--tick <time>', "the controller's evaluation interval", `${DEFAULT_TICK_S}s`)
    .option('--seed <n>', 'seed of the noise, the failures and the built-in traces', '1')
    .option('--compare <list>', 'baselines, comma-separated, or none', BASELINES.join(','))
    .option('--duration <time>', 'replay only the first part of the trace (e.g. 30m, 48h)')
    .option('--min <n>', `smallest group size (default ${DEFAULT_MIN_SIZE}, or the policy file's / group's)`)
    .option('--max <n>', `largest group size (default ${DEFAULT_MAX_SIZE}, or the policy file's / group's)`)
    .option('--noise <points>', 'noise on each CPU sample, ± percentage points', String(DEFAULT_NOISE))
    .option('--failures <per-hour>', 'instance failures per instance-hour', '0')
    .option('--out <file>', `write the chart (.svg; .png through a headless Chromium: ${CHROMIUM_ENV} or ${BROWSER_NAMES.join(', ')} on PATH) or an HTML report with the table and the chart (.html)`)
    .option('--json', 'print the comparison as JSON')
    .action(async (opts: SimulateOptions) => {
      process.exitCode = await runSimulate(opts);
    });
}
