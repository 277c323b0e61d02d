/**
 * CPU and memory straight from procfs (Linux), the agent's sampler there: no child processes, no
 * library, two reads per heartbeat.
 *
 * CPU (proc(5), /proc/stat): the first line sums every CPU's time, in USER_HZ ticks:
 * `cpu  user nice system idle iowait irq softirq steal guest guest_nice`. Busy is everything but
 * idle and iowait (user, nice, system, irq, softirq, steal); guest and guest_nice are already
 * counted in user and nice, so they are left out. A percentage needs two readings: the first one
 * only primes.
 *
 * Memory (/proc/meminfo): in use = MemTotal - MemAvailable. Kernels before 3.14 have no
 * MemAvailable; there the estimate is MemFree + Buffers + Cached + SReclaimable, as procps did.
 *
 * What is skipped: a reading that cannot be parsed throws a {@link ProcSampleError}; the reporter
 * logs it and sends no heartbeat for that interval (never a made-up 0, which would look like an
 * idle instance to the scaling policy). The next interval tries again.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import type { Sample, Sampler } from './sampler.js';

/** Where the sampler reads, and how much of each file it needs. */
export const PROC_STAT_PATH = '/proc/stat';
export const PROC_MEMINFO_PATH = '/proc/meminfo';
/** The aggregate line comes first and is short; the per-CPU and `intr` lines after it are not read. */
const STAT_READ_BYTES = 4_096;
/** /proc/meminfo is about 1.5 KiB; every key used is in its first 30 lines. */
const MEMINFO_READ_BYTES = 8_192;

/** A procfs file that could not be read or parsed. The message names the file and what is wrong. */
export class ProcSampleError extends Error {
  override name = 'ProcSampleError';
  constructor(message: string, readonly path: string, opts?: ErrorOptions) {
    super(message, opts);
  }
}

/** The aggregate CPU times of /proc/stat's first line, in USER_HZ ticks (usually 1/100 s). */
export interface CpuTimes {
  readonly user: number;
  readonly nice: number;
  readonly system: number;
  readonly idle: number;
  /** 0 on kernels before 2.5.41. It may decrease (proc(5)): see {@link cpuPercent}. */
  readonly iowait: number;
  readonly irq: number;
  readonly softirq: number;
  /** Time the hypervisor gave to other guests; counted as busy (the vCPU was not ours to use). */
  readonly steal: number;
}

/** The /proc/meminfo values the sampler uses, in KiB. */
export interface MemInfo {
  readonly totalKiB: number;
  readonly availableKiB: number;
  /** `MemAvailable` when the kernel has it; `estimate` when it was computed from MemFree etc. */
  readonly availableFrom: 'MemAvailable' | 'estimate';
}

const CPU_FIELDS = ['user', 'nice', 'system', 'idle', 'iowait', 'irq', 'softirq', 'steal'] as const;
const SPACE = 0x20;
const TAB = 0x09;
const NEWLINE = 0x0a;
const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;

/** The start of the text, for error messages (only built when something is wrong). */
function excerpt(text: string, from = 0): string {
  const end = text.indexOf('\n', from);
  const line = text.slice(from, end === -1 ? undefined : end);
  return JSON.stringify(line.length > 60 ? `${line.slice(0, 60)}…` : line);
}

/**
 * The aggregate CPU times from the text of /proc/stat. Throws a ProcSampleError when the first
 * line is not `cpu` followed by at least 4 (user nice system idle) unsigned whole numbers; fields
 * a kernel does not have yet (iowait, irq, softirq, steal) count as 0.
 */
export function parseProcStat(text: string, path = PROC_STAT_PATH): CpuTimes {
  const sep = text.charCodeAt(3);
  if (!text.startsWith('cpu') || (sep !== SPACE && sep !== TAB)) throw new ProcSampleError(`${path}: the first line is not the aggregate "cpu" line (got ${excerpt(text)})`, path);
  const values = [0, 0, 0, 0, 0, 0, 0, 0];
  let count = 0;
  let i = 4;
  for (;;) {
    while (i < text.length && (text.charCodeAt(i) === SPACE || text.charCodeAt(i) === TAB)) i++;
    if (i >= text.length || text.charCodeAt(i) === NEWLINE) break;
    const start = i;
    let v = 0;
    for (let c = text.charCodeAt(i); c >= DIGIT_0 && c <= DIGIT_9; c = text.charCodeAt(++i)) v = v * 10 + (c - DIGIT_0);
    const end = text.charCodeAt(i);
    if (i === start || (i < text.length && end !== SPACE && end !== TAB && end !== NEWLINE)) {
      throw new ProcSampleError(`${path}: field ${count + 1} of the "cpu" line is not an unsigned whole number (line ${excerpt(text)})`, path);
    }
    if (!Number.isSafeInteger(v)) throw new ProcSampleError(`${path}: field ${count + 1} of the "cpu" line is too large (line ${excerpt(text)})`, path);
    // guest and guest_nice (fields 9 and 10), and anything newer, are already in user and nice.
    if (count < values.length) values[count] = v;
    count++;
  }
  if (count < 4) throw new ProcSampleError(`${path}: the "cpu" line has ${count} fields, at least 4 expected (user nice system idle; line ${excerpt(text)})`, path);
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = values;
  return { user, nice, system, idle, iowait, irq, softirq, steal };
}

/**
 * Busy share of all CPUs between two readings, 0..100; undefined when no time passed between them.
 *
 * Each counter's change is taken as 0 when it went backwards (a wrapped counter, or a CPU taken
 * offline, whose time leaves the sums), so one odd counter never yields a negative or >100 %
 * reading. idle and iowait are diffed as one sum: proc(5) warns that iowait may decrease, and
 * what it loses goes to idle.
 */
export function cpuPercent(prev: CpuTimes, next: CpuTimes): number | undefined {
  let busy = 0;
  for (const f of CPU_FIELDS) {
    if (f !== 'idle' && f !== 'iowait') busy += Math.max(0, next[f] - prev[f]);
  }
  const idle = Math.max(0, next.idle + next.iowait - (prev.idle + prev.iowait));
  const total = busy + idle;
  if (total === 0) return undefined;
  return (busy / total) * 100;
}

/** A /proc/meminfo key, as it appears at the start of the text and at the start of a later line. */
interface MeminfoKey {
  readonly name: string;
  readonly first: string;
  readonly later: string;
}
const meminfoKey = (name: string): MeminfoKey => ({ name, first: `${name}:`, later: `\n${name}:` });
const MEM_TOTAL = meminfoKey('MemTotal');
const MEM_AVAILABLE = meminfoKey('MemAvailable');
const MEM_FREE = meminfoKey('MemFree');
const BUFFERS = meminfoKey('Buffers');
const CACHED = meminfoKey('Cached');
const SRECLAIMABLE = meminfoKey('SReclaimable');

/**
 * The value of a key in /proc/meminfo text, in kB; undefined when the key is absent. Throws when
 * the key is present but its value is not `<digits> kB`.
 */
function meminfoField(text: string, key: MeminfoKey, path: string): number | undefined {
  let lineStart: number;
  if (text.startsWith(key.first)) lineStart = 0;
  else {
    const at = text.indexOf(key.later);
    if (at === -1) return undefined;
    lineStart = at + 1;
  }
  let i = lineStart + key.first.length;
  while (text.charCodeAt(i) === SPACE || text.charCodeAt(i) === TAB) i++;
  const start = i;
  let v = 0;
  for (let c = text.charCodeAt(i); c >= DIGIT_0 && c <= DIGIT_9; c = text.charCodeAt(++i)) v = v * 10 + (c - DIGIT_0);
  const unitOk = text.startsWith(' kB', i) && (i + 3 === text.length || text.charCodeAt(i + 3) === NEWLINE);
  if (i === start || !unitOk || !Number.isSafeInteger(v)) {
    throw new ProcSampleError(`${path}: ${key.name} is not "<number> kB" (line ${excerpt(text, lineStart)})`, path);
  }
  return v;
}

/**
 * MemTotal and the available memory from the text of /proc/meminfo. Without MemAvailable
 * (kernels before 3.14) the available memory is estimated as MemFree + Buffers + Cached +
 * SReclaimable (each missing one counts as 0), at most MemTotal. Throws a ProcSampleError when
 * MemTotal is missing or 0, when neither MemAvailable nor MemFree is there, or when a value used
 * is not `<number> kB`.
 */
export function parseMeminfo(text: string, path = PROC_MEMINFO_PATH): MemInfo {
  const totalKiB = meminfoField(text, MEM_TOTAL, path);
  if (totalKiB === undefined || totalKiB === 0) throw new ProcSampleError(`${path}: no MemTotal (or MemTotal is 0; text ${excerpt(text)})`, path);
  const available = meminfoField(text, MEM_AVAILABLE, path);
  if (available !== undefined) return { totalKiB, availableKiB: Math.min(available, totalKiB), availableFrom: 'MemAvailable' };
  const free = meminfoField(text, MEM_FREE, path);
  if (free === undefined) throw new ProcSampleError(`${path}: neither MemAvailable nor MemFree is there (text ${excerpt(text)})`, path);
  const estimate = free + (meminfoField(text, BUFFERS, path) ?? 0) + (meminfoField(text, CACHED, path) ?? 0)
    + (meminfoField(text, SRECLAIMABLE, path) ?? 0);
  return { totalKiB, availableKiB: Math.min(estimate, totalKiB), availableFrom: 'estimate' };
}

/** Memory in use, 0..100. */
export function memPercent(m: MemInfo): number {
  return ((m.totalKiB - m.availableKiB) / m.totalKiB) * 100;
}

/**
 * One procfs file, kept open and read from offset 0 into the same buffer each time (procfs
 * regenerates the text on every read at 0). Reads are synchronous: procfs is memory, a read
 * takes microseconds, and it keeps the libuv thread pool out of the agent.
 */
class ProcFile {
  private fd: number | undefined;
  private readonly buffer: Buffer;

  constructor(readonly path: string, bytes: number) {
    this.buffer = Buffer.alloc(bytes);
  }

  read(): string {
    try {
      this.fd ??= openSync(this.path, 'r');
      const n = readSync(this.fd, this.buffer, 0, this.buffer.length, 0);
      return this.buffer.toString('latin1', 0, n);
    } catch (err) {
      // Reopen on the next read: the fd may be what went wrong.
      this.close();
      const code = (err as NodeJS.ErrnoException).code ?? String(err);
      throw new ProcSampleError(`${this.path}: cannot read (${code})`, this.path, { cause: err });
    }
  }

  close(): void {
    if (this.fd === undefined) return;
    try { closeSync(this.fd); } catch { /* already gone */ }
    this.fd = undefined;
  }
}

/** Where a {@link ProcSampler} reads (tests point it at fixture files). */
export interface ProcSamplerOptions {
  /** Default /proc/stat. */
  readonly statPath?: string;
  /** Default /proc/meminfo. */
  readonly meminfoPath?: string;
}

/**
 * The Linux sampler. Per heartbeat: one read of /proc/stat and one of /proc/meminfo into buffers
 * allocated once, one string each, and the two parsed values. The first call primes the CPU
 * counters and resolves undefined (no heartbeat for that interval).
 */
export class ProcSampler implements Sampler {
  readonly kind = 'proc';
  private readonly stat: ProcFile;
  private readonly meminfo: ProcFile;
  private prev: CpuTimes | undefined;

  constructor(opts: ProcSamplerOptions = {}) {
    this.stat = new ProcFile(opts.statPath ?? PROC_STAT_PATH, STAT_READ_BYTES);
    this.meminfo = new ProcFile(opts.meminfoPath ?? PROC_MEMINFO_PATH, MEMINFO_READ_BYTES);
  }

  async sample(): Promise<Sample | undefined> {
    const times = parseProcStat(this.stat.read(), this.stat.path);
    const mem = memPercent(parseMeminfo(this.meminfo.read(), this.meminfo.path));
    const prev = this.prev;
    this.prev = times;
    if (prev === undefined) return undefined;
    const cpu = cpuPercent(prev, times);
    if (cpu === undefined) throw new ProcSampleError(`${this.stat.path}: no CPU time passed since the previous reading`, this.stat.path);
    return { cpu, mem };
  }

  close(): void {
    this.stat.close();
    this.meminfo.close();
  }
}
