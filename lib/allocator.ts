/**
 * Which malloc this process runs on. The monitor server holds a TLS and HTTP/2 session per agent,
 * in memory that OpenSSL, nghttp2 and libuv get from malloc; glibc's allocator keeps much of what
 * they free after the handshakes, so the unit can preload another one (LD_PRELOAD in
 * /etc/autoscaler/monitor-server.env; docs/scaling.md "The allocator"). The daemon logs what it
 * found at start, so that a preload that did not take (a wrong path: ld.so only prints a line and
 * goes on with glibc) is visible in the journal.
 */
import { readFileSync, realpathSync } from 'node:fs';
import { basename } from 'node:path';

/** Allocators known by their library's file name. */
const KNOWN: readonly (readonly [RegExp, string])[] = [
  [/^libmimalloc[.-]/, 'mimalloc'],
  [/^libjemalloc[.-]/, 'jemalloc'],
  [/^libtcmalloc/, 'tcmalloc'],
];

export interface AllocatorInfo {
  /**
   * `mimalloc`, `jemalloc` or `tcmalloc` when LD_PRELOAD loaded one; the file name of another
   * preloaded library that is mapped (the first); `libc` when nothing preloaded is mapped;
   * `unknown` without /proc/self/maps.
   */
  readonly allocator: string;
  /** The preloaded library, as mapped into the process. */
  readonly library?: string;
  /** LD_PRELOAD entries that are not mapped into the process (ld.so could not load them). */
  readonly notLoaded: readonly string[];
}

/**
 * What `preload` (the LD_PRELOAD entries, symlinks resolved) asked for against what `maps`
 * (/proc/self/maps) holds. An entry with a slash is loaded when that file is mapped; one without
 * is a name ld.so looked up, loaded when a mapped file's name starts with it. Only preloaded
 * libraries count: an allocator some other library links is not malloc for the process. Pure;
 * `readAllocatorInfo` reads both.
 */
export function allocatorInfo(preload: readonly string[], maps: string): AllocatorInfo {
  const mapped: string[] = [];
  for (const line of maps.split('\n')) {
    const at = line.indexOf(' /');
    if (at >= 0) mapped.push(line.slice(at + 1).trim().replace(/ \(deleted\)$/, ''));
  }
  const files = new Set(mapped);
  const find = (entry: string): string | undefined => (entry.includes('/') ? (files.has(entry) ? entry : undefined) : mapped.find((p) => basename(p).startsWith(entry)));
  const notLoaded: string[] = [];
  const loaded: string[] = [];
  for (const entry of preload) {
    const path = find(entry);
    if (path === undefined) notLoaded.push(entry);
    else loaded.push(path);
  }
  for (const path of loaded) {
    const hit = KNOWN.find(([re]) => re.test(basename(path)));
    if (hit !== undefined) return { allocator: hit[1], library: path, notLoaded };
  }
  const first = loaded[0];
  return first === undefined ? { allocator: 'libc', notLoaded } : { allocator: basename(first), library: first, notLoaded };
}

/** LD_PRELOAD's entries (separated by spaces or colons), each with its symlinks resolved when it exists. */
export function preloadEntries(ldPreload: string | undefined): string[] {
  return (ldPreload ?? '').split(/[\s:]+/).filter((s) => s !== '').map((e) => {
    if (!e.includes('/')) return e;
    try {
      return realpathSync(e);
    } catch {
      return e;
    }
  });
}

/** allocatorInfo for this process; `unknown` on a system without /proc/self/maps. */
export function readAllocatorInfo(env: NodeJS.ProcessEnv = process.env): AllocatorInfo {
  let maps: string;
  try {
    maps = readFileSync('/proc/self/maps', 'utf8');
  } catch {
    return { allocator: 'unknown', notLoaded: [] };
  }
  return allocatorInfo(preloadEntries(env.LD_PRELOAD), maps);
}
