/**
 * Summary of a V8 CPU profile (`node --cpu-prof`), as bench/fleet.ts takes of the monitor server:
 * self time by function, by file, and total (inclusive) time of the repo's own functions,
 * optionally restricted to a time range (the steady window, without the fleet's ramp-up).
 *
 *   node dist/bench/fleet-profile.js FILE.cpuprofile [--top 25] [--from-ms A --to-ms B]
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { packageRoot } from '../lib/paths.js';

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
}

interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly children?: readonly number[];
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

/** Where a function lives, short: repo files relative to the package, packages by name. */
function place(url: string): string {
  if (url === '') return '';
  const path = url.startsWith('file://') ? decodeURIComponent(url.slice('file://'.length)) : url;
  const nm = path.lastIndexOf('/node_modules/');
  if (nm >= 0) return path.slice(nm + '/node_modules/'.length).replace(/\/build\/src\//, '/').replace(/\/lib\//, '/');
  const root = `${packageRoot()}/`;
  return path.startsWith(root) ? path.slice(root.length) : path;
}

function label(f: CallFrame): string {
  const where = place(f.url);
  const name = f.functionName || '(anonymous)';
  return where === '' ? name : `${where}:${name}:${f.lineNumber + 1}`;
}

/** Summary text: at most `top` rows per section. `fromMs`/`toMs`: offsets from the profile's start. */
export function summariseProfileFile(file: string, opts: { top: number; fromMs?: number; toMs?: number }): string {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of p.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const self = new Map<string, number>();
  const files = new Map<string, number>();
  const total = new Map<string, number>();
  let all = 0;
  let idle = 0;
  let t = p.startTime;
  const from = p.startTime + (opts.fromMs ?? 0) * 1000;
  const to = opts.toMs === undefined ? Number.POSITIVE_INFINITY : p.startTime + opts.toMs * 1000;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i] ?? 0;
    if (t < from || t > to) continue;
    // A sample stands for the time until the next one.
    const dt = p.timeDeltas[i + 1] ?? 0;
    const node = byId.get(p.samples[i] as number);
    if (node === undefined) continue;
    all += dt;
    const name = node.callFrame.functionName;
    if (name === '(idle)') { idle += dt; continue; }
    const key = label(node.callFrame);
    self.set(key, (self.get(key) ?? 0) + dt);
    const where = place(node.callFrame.url) || name;
    files.set(where, (files.get(where) ?? 0) + dt);
    // Inclusive time of the repo's functions (each once per sample, however deep the recursion).
    const inStack = new Set<string>();
    for (let id: number | undefined = node.id, depth = 0; id !== undefined && depth < 500; id = parent.get(id), depth++) {
      const f = (byId.get(id) as ProfileNode).callFrame;
      if (f.url.includes('/node_modules/') || !f.url.startsWith('file://')) continue;
      inStack.add(label(f));
    }
    for (const k of inStack) total.set(k, (total.get(k) ?? 0) + dt);
  }
  const busy = all - idle;
  const rows = (m: Map<string, number>, n: number) => [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, n)
    .map(([k, v]) => `  ${((v / busy) * 100).toFixed(1).padStart(5)} %  ${(v / 1000).toFixed(0).padStart(7)} ms  ${k}`);
  return [
    `CPU profile ${file}`,
    `  window ${(all / 1e6).toFixed(1)} s of samples, busy ${(busy / 1e6).toFixed(1)} s (${((busy / Math.max(1, all)) * 100).toFixed(0)} % of the main thread); percentages are of busy time`,
    `self time by function (file:function:line; dist/ lines are of the compiled .js):`,
    ...rows(self, opts.top),
    `self time by file:`,
    ...rows(files, Math.min(opts.top, 15)),
    `total (inclusive) time of the repo's functions:`,
    ...rows(total, opts.top),
  ].join('\n');
}

function main(): void {
  const args = process.argv.slice(2);
  const file = args.find((a) => !a.startsWith('--') && !/^\d+$/.test(a));
  if (file === undefined) throw new Error('usage: fleet-profile FILE.cpuprofile [--top N] [--from-ms A --to-ms B]');
  const flag = (name: string) => {
    const i = args.indexOf(name);
    return i >= 0 && args[i + 1] !== undefined ? Number(args[i + 1]) : undefined;
  };
  process.stdout.write(`${summariseProfileFile(file, { top: flag('--top') ?? 25, fromMs: flag('--from-ms'), toMs: flag('--to-ms') })}\n`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) main();
