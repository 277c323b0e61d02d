/**
 * lib/allocator.ts: which malloc a process runs on, from LD_PRELOAD and /proc/self/maps. The pure
 * part on written maps; then real child processes: node as started, with mimalloc preloaded (CI
 * installs libmimalloc2.0; a laptop without it skips those), and with a preload path that does not
 * exist.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { allocatorInfo, preloadEntries } from '../lib/allocator.js';
import { packageRoot } from '../lib/paths.js';
import { startCli, tempDir, waitFor } from './helpers.js';

const line = (path: string) => `7f3a1c000000-7f3a1c020000 r-xp 00000000 fd:01 1234 ${path}`;
const MAPS = [
  '55d0c0000000-55d0c4000000 r-xp 00000000 fd:01 99 /usr/bin/node',
  line('/usr/lib/x86_64-linux-gnu/libc.so.6'),
  '7ffd0000-7ffd2000 rw-p 00000000 00:00 0 [stack]',
  '7f3a00000000-7f3a00100000 rw-p 00000000 00:00 0',
].join('\n');

describe('allocatorInfo', () => {
  it.each([
    { name: 'nothing preloaded: libc', preload: [], maps: MAPS, want: { allocator: 'libc', notLoaded: [] } },
    {
      name: 'mimalloc preloaded and mapped', preload: ['/usr/lib/x86_64-linux-gnu/libmimalloc.so.2.0'],
      maps: `${MAPS}\n${line('/usr/lib/x86_64-linux-gnu/libmimalloc.so.2.0')}`,
      want: { allocator: 'mimalloc', library: '/usr/lib/x86_64-linux-gnu/libmimalloc.so.2.0', notLoaded: [] },
    },
    {
      name: 'jemalloc by bare name (ld.so searched for it)', preload: ['libjemalloc.so.2'],
      maps: `${MAPS}\n${line('/usr/lib/x86_64-linux-gnu/libjemalloc.so.2')}`,
      want: { allocator: 'jemalloc', library: '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2', notLoaded: [] },
    },
    {
      name: 'a path ld.so could not load: reported, libc in use', preload: ['/opt/none/libmimalloc.so.2'], maps: MAPS,
      want: { allocator: 'libc', notLoaded: ['/opt/none/libmimalloc.so.2'] },
    },
    {
      name: 'jemalloc mapped but not preloaded (a library links it): still libc', preload: [],
      maps: `${MAPS}\n${line('/usr/lib/x86_64-linux-gnu/libjemalloc.so.2')}`, want: { allocator: 'libc', notLoaded: [] },
    },
    {
      name: 'another preloaded library, not named .so: its file name, no warning', preload: ['/opt/hooks/libhook'],
      maps: `${MAPS}\n${line('/opt/hooks/libhook')}`, want: { allocator: 'libhook', library: '/opt/hooks/libhook', notLoaded: [] },
    },
    {
      name: 'an allocator after another preload: the allocator is named', preload: ['/opt/hooks/libhook', '/usr/lib/x86_64-linux-gnu/libmimalloc.so.2.0'],
      maps: `${MAPS}\n${line('/opt/hooks/libhook')}\n${line('/usr/lib/x86_64-linux-gnu/libmimalloc.so.2.0 (deleted)')}`,
      want: { allocator: 'mimalloc', library: '/usr/lib/x86_64-linux-gnu/libmimalloc.so.2.0', notLoaded: [] },
    },
  ])('$name', ({ preload, maps, want }) => {
    expect(allocatorInfo(preload, maps)).toEqual(want);
  });

  it('LD_PRELOAD is split on spaces and colons; a path that does not exist is kept as written', () => {
    expect(preloadEntries(' /nope/a.so:/nope/b.so  c.so ')).toEqual(['/nope/a.so', '/nope/b.so', 'c.so']);
    expect(preloadEntries(undefined)).toEqual([]);
  });

  it('a symlink is resolved to the file ld.so maps', () => {
    const dir = realpathSync(tempDir('autoscaler-allocator-link-'));
    writeFileSync(join(dir, 'libfake.so.2.0'), '');
    symlinkSync(join(dir, 'libfake.so.2.0'), join(dir, 'libfake.so.2'));
    expect(preloadEntries(join(dir, 'libfake.so.2'))).toEqual([join(dir, 'libfake.so.2.0')]);
  });
});

/** A library on this machine for each allocator, if installed (Debian's paths; CI installs libmimalloc2.0). */
function findLibrary(names: readonly string[]): string | undefined {
  for (const dir of ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib']) {
    for (const n of names) if (existsSync(join(dir, n))) return join(dir, n);
  }
  return undefined;
}
const mimalloc = findLibrary(['libmimalloc.so.2']);
const ci = process.env.CI === 'true';

/** What the built lib/allocator.js says in a fresh node process under `ldPreload`. */
function childReport(ldPreload: string | undefined): { allocator: string; library?: string; notLoaded: string[]; stderr: string } {
  const built = join(packageRoot(), 'dist', 'lib', 'allocator.js');
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH };
  if (ldPreload !== undefined) env.LD_PRELOAD = ldPreload;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e',
    `const m = await import(${JSON.stringify(pathToFileURL(built).href)}); process.stdout.write(JSON.stringify(m.readAllocatorInfo()));`], {
    env, encoding: 'utf8', timeout: 20_000,
  });
  if (r.status !== 0) throw new Error(`child exited ${r.status}: ${r.stderr}`);
  return { ...(JSON.parse(r.stdout) as { allocator: string; library?: string; notLoaded: string[] }), stderr: r.stderr };
}

describe('readAllocatorInfo in a real process', () => {
  it('node as started: libc, nothing asked for', () => {
    expect(childReport(undefined)).toMatchObject({ allocator: 'libc', notLoaded: [] });
  });

  it('a preload path that does not exist: ld.so goes on with libc, and the entry is reported', () => {
    const r = childReport('/nonexistent/libmimalloc.so.2');
    expect(r).toMatchObject({ allocator: 'libc', notLoaded: ['/nonexistent/libmimalloc.so.2'] });
    expect(r.stderr).toMatch(/cannot be preloaded/);
  });

  // A laptop without libmimalloc2.0 skips; under CI (which installs it) a missing library fails.
  it.skipIf(mimalloc === undefined && !ci)('mimalloc preloaded through its symlink: reported with the file mapped', () => {
    if (mimalloc === undefined) throw new Error('libmimalloc.so.2 is not installed (.ci/run installs libmimalloc2.0)');
    const r = childReport(mimalloc);
    expect(r.allocator).toBe('mimalloc');
    expect(r.library).toBe(realpathSync(mimalloc));
    expect(r.notLoaded).toEqual([]);
  });
});

describe('the monitor server logs its allocator at start', () => {
  /** The monitor's start logs under LD_PRELOAD=`lib`: the listening line and the preload warning, if any. */
  async function startLogs(lib: string): Promise<{ listening: Record<string, unknown>; warned: Record<string, unknown> | undefined }> {
    const dir = tempDir('autoscaler-allocator-');
    const monitor = startCli(['monitor-server'], { AUTOSCALER_DB: join(dir, 'a.db'), MONITOR_GRPC_PORT: '0', MONITOR_HTTP_PORT: '0', LOG_LEVEL: 'info', LD_PRELOAD: lib });
    try {
      const listening = await waitFor('monitor server listening', () => monitor.logs().find((l) => l.msg === 'monitor server listening'), 15_000);
      return { listening, warned: monitor.logs().find((l) => l.msg === 'LD_PRELOAD names a library that is not loaded') };
    } finally {
      await monitor.stop();
    }
  }

  it.skipIf(mimalloc === undefined && !ci)('mimalloc preloaded: the listening line names it, no warning', async () => {
    if (mimalloc === undefined) throw new Error('libmimalloc.so.2 is not installed (.ci/run installs libmimalloc2.0)');
    const { listening, warned } = await startLogs(mimalloc);
    expect(listening).toMatchObject({ allocator: 'mimalloc', allocatorLibrary: realpathSync(mimalloc) });
    expect(warned).toBeUndefined();
  });

  it('a preload that did not take: a warning naming it, then libc', async () => {
    const { listening, warned } = await startLogs('/nonexistent/libmimalloc.so.2');
    expect(listening).toMatchObject({ allocator: 'libc' });
    expect(warned).toMatchObject({ level: 'warn', notLoaded: ['/nonexistent/libmimalloc.so.2'] });
  });
});
