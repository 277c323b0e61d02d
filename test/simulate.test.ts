/**
 * `autoscaler simulate` through the built CLI: tables, charts (SVG, and PNG through a headless
 * Chromium: Debian's `apt-get install chromium`), reports, CSV and --from-db. Under CI a missing
 * browser fails the PNG test; on a laptop without one it is skipped with a message.
 */
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { inflateSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { BrowserError, renderPng } from '../cli/simulate.js';
import { BROWSER_NAMES, readPngSize, svgSize } from '../sim/png.js';
import { openStore } from '../store/db.js';
import { MinuteStore } from '../store/minutes.js';
import { TRACE_NAMES } from '../sim/traces.js';
import { killAll, runCli, tempDir } from './helpers.js';

const dir = tempDir('autoscaler-simulate-');
afterAll(() => killAll());

const POLICIES = ['default', 'hpa', 'aws-target-tracking', 'threshold', 'oracle'];

describe('autoscaler simulate', () => {
  it.each(TRACE_NAMES.map((trace) => ({ trace })))('$trace: prints the comparison table and writes the chart', async ({ trace }) => {
    const out = join(dir, `${trace}.svg`);
    const r = await runCli(['simulate', '--trace', trace, '--duration', '40m', '--boot', '60s', '--out', out]);
    expect(r.code, r.output).toBe(0);
    expect(r.output).toContain(`trace ${trace}:`);
    expect(r.output).toMatch(/policy\s+cost \(inst-h\)\s+× oracle\s+under-prov\./);
    for (const p of POLICIES) expect(r.output).toMatch(new RegExp(`^${p}\\s+\\d+\\.\\d\\d\\s+\\d+\\.\\d\\d`, 'm'));
    expect(r.output).toMatch(/^oracle\s+[\d.]+\s+1\.00\s+0\.00 %\s+0\.00 %/m);
    expect(readFileSync(out, 'utf8')).toMatch(/^<svg [\s\S]*<polyline[\s\S]*<\/svg>\n$/);
  });

  it('the same seed gives byte-identical output; another seed another', async () => {
    const run = async (seed: string, file: string) => {
      const r = await runCli(['simulate', '--trace', 'noisy-plateau', '--duration', '30m', '--seed', seed, '--json', '--out', join(dir, file)]);
      expect(r.code, r.output).toBe(0);
      return r.output.replace(/wrote .*\n/, '') + readFileSync(join(dir, file), 'utf8');
    };
    const a = await run('7', 'a.svg');
    expect(await run('7', 'b.svg')).toBe(a);
    expect(await run('8', 'c.svg')).not.toBe(a);
  });

  it('--json prints the metrics; --compare picks the baselines; --policy reads a document', async () => {
    const policy = join(dir, 'policy.json');
    writeFileSync(policy, JSON.stringify({ targetTracking: [{ metric: 'cpu', target: 60 }], saturation: { enabled: false } }));
    const r = await runCli(['simulate', '--trace', 'step', '--duration', '1h', '--policy', policy, '--compare', 'hpa,oracle', '--json']);
    expect(r.code, r.output).toBe(0);
    const doc = JSON.parse(r.output) as { target: number; runs: { policy: string; metrics: { costRatio: number; actions: number } }[] };
    expect(doc.target).toBe(60);
    expect(doc.runs.map((x) => x.policy)).toEqual(['policy', 'hpa', 'oracle']);
    expect(doc.runs[2]?.metrics.costRatio).toBe(1);
    expect(doc.runs[0]?.metrics.actions).toBeGreaterThan(0);
  });

  it('a CSV trace replays; an HTML report embeds the table and the chart', async () => {
    const csv = join(dir, 'mine.csv');
    writeFileSync(csv, `time,demand\n${Array.from({ length: 60 }, (_, i) => `${i * 60},${i < 30 ? 150 : 600}`).join('\n')}\n`);
    const out = join(dir, 'report.html');
    const r = await runCli(['simulate', '--trace', csv, '--out', out]);
    expect(r.code, r.output).toBe(0);
    expect(r.output).toContain('(60 rows)');
    const html = readFileSync(out, 'utf8');
    expect(html).toContain('<table>');
    expect(html).toContain('<svg ');
  });

  it.each([
    { name: 'a CSV with bad rows names the lines', args: (csv: string) => ['simulate', '--trace', csv], file: 'time,demand\n0,100\n60,lots\n120,100\n90,5\n', want: [/line 3: demand "lots"/, /line 5: time 90 is not after/] },
    { name: 'an unknown trace lists the built-ins', args: () => ['simulate', '--trace', 'nope'], want: [/unknown trace "nope".*diurnal/] },
    { name: 'an --out of another kind is refused', args: () => ['simulate', '--trace', 'step', '--out', join(dir, 'x.gif')], want: [/--out must end in \.svg, \.png or \.html/] },
    { name: 'an unknown baseline is refused', args: () => ['simulate', '--trace', 'step', '--compare', 'hpa,knative'], want: [/unknown knative/] },
    { name: 'neither --trace nor --from-db', args: () => ['simulate'], want: [/give one of --trace/] },
    { name: 'a bad boot time', args: () => ['simulate', '--trace', 'step', '--boot', 'soon'], want: [/--boot/] },
  ])('$name (exit 2)', async ({ args, file, want }) => {
    const csv = join(dir, 'bad.csv');
    if (file !== undefined) writeFileSync(csv, file);
    const r = await runCli(args(csv));
    expect(r.code, r.output).toBe(2);
    for (const w of want) expect(r.output).toMatch(w);
  });

  it("--from-db replays a group's recorded minutes", async () => {
    const dbPath = join(dir, 'history.db');
    const db = openStore(dbPath);
    const minutes = new MinuteStore(db);
    const t0 = 1_704_067_200_000;
    for (let m = 0; m < 90; m++) minutes.add('web', t0 + m * 60_000, { ready: 4, capacity: 4, cpu: m < 45 ? 200 : 700, mem: 120 });
    db.close();
    const r = await runCli(['simulate', '--from-db', 'web', '--db', dbPath]);
    expect(r.code, r.output).toBe(0);
    expect(r.output).toContain('trace db:web: web: 90 recorded minute(s)');
    expect(r.output).toContain('5400 s (1.5 h)');
    const missing = await runCli(['simulate', '--from-db', 'nobody', '--db', dbPath]);
    expect(missing.code).toBe(2);
    expect(missing.output).toMatch(/no group "nobody"/);
    expect(existsSync(dbPath)).toBe(true);
  });
});

// --- PNG ---------------------------------------------------------------------------------------

/** What the CLI would find: AUTOSCALER_CHROMIUM, else the browser names on PATH (looked up here on its own). */
const pathDirs = (process.env.PATH ?? '').split(delimiter).filter((d) => d !== '');
const browserOnPath = BROWSER_NAMES.flatMap((n) => pathDirs.map((d) => join(d, n))).find((p) => existsSync(p));
const browser = process.env.AUTOSCALER_CHROMIUM || browserOnPath;
const underCi = process.env.CI === 'true';
if (browser === undefined && !underCi) {
  console.warn(`simulate --out .png test skipped: no ${BROWSER_NAMES.join(', ')} on PATH and AUTOSCALER_CHROMIUM unset (apt-get install chromium)`);
}

/** An 8-bit RGB or RGBA, non-interlaced PNG (what Chromium writes), unfiltered: its size and pixel bytes. */
function decodePng(bytes: Buffer): { width: number; height: number; channels: number; pixels: Uint8Array } {
  let width = 0, height = 0, channels = 0;
  const idat: Buffer[] = [];
  for (let at = 8; at + 8 <= bytes.length;) {
    const len = bytes.readUInt32BE(at);
    const type = bytes.toString('latin1', at + 4, at + 8);
    const data = bytes.subarray(at + 8, at + 8 + len);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      expect({ bitDepth: data[8], interlace: data[12] }).toEqual({ bitDepth: 8, interlace: 0 });
      channels = data[9] === 6 ? 4 : data[9] === 2 ? 3 : 0;
      expect(channels, `color type ${data[9]}`).toBeGreaterThan(0);
    }
    if (type === 'IDAT') idat.push(data);
    at += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const pixels = new Uint8Array(stride * height);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    for (let x = 0; x < stride; x++) {
      const v = raw[y * (stride + 1) + 1 + x] ?? 0;
      const a = x >= channels ? pixels[y * stride + x - channels] ?? 0 : 0;
      const b = y > 0 ? pixels[(y - 1) * stride + x] ?? 0 : 0;
      const c = x >= channels && y > 0 ? pixels[(y - 1) * stride + x - channels] ?? 0 : 0;
      const p = a + b - c;
      const paeth = Math.abs(p - a) <= Math.abs(p - b) && Math.abs(p - a) <= Math.abs(p - c) ? a : Math.abs(p - b) <= Math.abs(p - c) ? b : c;
      const pred = [0, a, b, (a + b) >> 1, paeth][filter ?? -1];
      if (pred === undefined) throw new Error(`row ${y}: filter ${filter}`);
      pixels[y * stride + x] = (v + pred) & 0xff;
    }
  }
  return { width, height, channels, pixels };
}

const countColor = (png: ReturnType<typeof decodePng>, [r, g, b]: readonly [number, number, number]): number => {
  let n = 0;
  for (let i = 0; i < png.pixels.length; i += png.channels) if (png.pixels[i] === r && png.pixels[i + 1] === g && png.pixels[i + 2] === b) n++;
  return n;
};

describe.skipIf(browser === undefined && !underCi)('autoscaler simulate --out chart.png (headless Chromium)', () => {
  it('writes a PNG of the chart: its size, a white background, the default policy line', async () => {
    expect(browser, `CI must install a browser for the PNG test (apt-get install -y chromium), or set AUTOSCALER_CHROMIUM; looked for ${BROWSER_NAMES.join(', ')} on PATH`).toBeDefined();
    const out = join(dir, 'flash-crowd.png');
    // The CLI finds the browser on PATH itself unless the test's environment names one.
    const env: Record<string, string> = process.env.AUTOSCALER_CHROMIUM ? { AUTOSCALER_CHROMIUM: process.env.AUTOSCALER_CHROMIUM } : {};
    const r = await runCli(['simulate', '--trace', 'flash-crowd', '--out', out], env, 60_000);
    expect(r.code, r.output).toBe(0);
    expect(r.output).toContain(`wrote ${out}`);
    const bytes = readFileSync(out);
    expect(readPngSize(bytes)).toEqual({ ok: true, size: { width: 960, height: 400 } });
    const png = decodePng(bytes);
    expect([png.pixels[0], png.pixels[1], png.pixels[2]]).toEqual([255, 255, 255]);
    // #1f77b4, the default policy's line in sim/chart.ts: the SVG was drawn, not just a blank page.
    expect(countColor(png, [0x1f, 0x77, 0xb4])).toBeGreaterThan(200);
  }, 90_000);
});

describe('simulate --out chart.png: finding the browser', () => {
  it.each([
    { name: 'AUTOSCALER_CHROMIUM naming a missing file', env: () => ({ AUTOSCALER_CHROMIUM: join(dir, 'no-such-chromium') }), want: [/AUTOSCALER_CHROMIUM=.*no-such-chromium: no such file \(ENOENT\)/, /--out chart\.svg/] },
    { name: 'AUTOSCALER_CHROMIUM naming a file that is not executable', env: () => ({ AUTOSCALER_CHROMIUM: fakeBrowser('not-executable', 'exit 0', 0o644) }), want: [/not-executable: not executable \(EACCES\)/] },
    { name: 'no browser on PATH', env: () => ({ PATH: join(dir, 'empty-path') }), want: [/AUTOSCALER_CHROMIUM is not set and none of chromium, chromium-browser, google-chrome is on PATH/, /apt-get install chromium/, /--out chart\.svg/] },
  ])('$name: says what was tried and what to do (exit 2)', async ({ env, want }) => {
    const out = join(dir, 'refused.png');
    const r = await runCli(['simulate', '--trace', 'step', '--out', out], env());
    expect(r.code, r.output).toBe(2);
    for (const w of want) expect(r.output).toMatch(w);
    expect(r.output).not.toContain('trace step:'); // refused before simulating
    expect(existsSync(out)).toBe(false);
  });
});

/** A shell script standing in for the browser. */
function fakeBrowser(name: string, body: string, mode = 0o755): string {
  const path = join(dir, name);
  writeFileSync(path, `#!/bin/sh\n${body}\n`);
  chmodSync(path, mode);
  return path;
}

/** sh: the value of the --screenshot= argument, in $shot. */
const SHOT = 'for a in "$@"; do case "$a" in --screenshot=*) shot="${a#--screenshot=}";; esac; done';
const SVG = '<svg xmlns="http://www.w3.org/2000/svg" width="960" height="400"><rect width="960" height="400" fill="#fff"/></svg>';
/** printf: the signature and an IHDR of 960×400 (0x3c0 × 0x190). */
const PNG_960x400 = String.raw`\211PNG\r\n\032\n\000\000\000\015IHDR\000\000\003\300\000\000\001\220\010\002\000\000\000`;

describe('renderPng with a stand-in browser', () => {
  it.each([
    { name: 'a failing browser: its exit code and last lines, without the D-Bus noise', body: 'echo "[1:1:ERROR:dbus/bus.cc:405] Failed to connect to the bus" >&2; echo "fatal: cannot open display" >&2; exit 3', want: /failed \(exit code 3\); its last output:\n {2}fatal: cannot open display$/ },
    { name: 'a browser killed by a signal', body: 'kill -SEGV $$', want: /failed \(killed by SIGSEGV\)/ },
    // sh waits for sleep, which holds the pipes: only killing the whole group ends it.
    { name: 'a browser that never finishes is killed after the timeout', body: 'echo starting >&2; sleep 60', want: /did not write the PNG within 0\.5 s and was killed; its last output:\n {2}starting/ },
    { name: 'a browser that exits 0 without a screenshot', body: 'exit 0', want: /exited 0 but wrote no screenshot \(it printed nothing\)/ },
    { name: 'a browser that writes something else', body: `${SHOT}; printf 'GIF89a not a png at all' > "$shot"`, want: /wrote a file that is not a PNG: no PNG signature/ },
    { name: 'a browser that writes a PNG of another size', body: `${SHOT}; printf '${PNG_960x400.replace(String.raw`\003\300`, String.raw`\000\012`)}' > "$shot"`, want: /wrote a 10×400 PNG; the chart is 960×400/ },
  ])('$name: a BrowserError, and the temp dir is removed', async ({ name, body, want }) => {
    const tmpRoot = mkdtempSync(join(dir, 'png-root-'));
    const fake = fakeBrowser(`fake-${name.replace(/\W+/g, '-')}`, body);
    const err = await renderPng(SVG, fake, { timeoutMs: 500, tmpRoot }).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(BrowserError);
    expect((err as Error).message).toMatch(want);
    expect((err as Error).message).not.toContain('dbus');
    expect(readdirSync(tmpRoot)).toEqual([]);
  }, 15_000);

  it('gives the browser a file:// page holding the chart, no network, a throwaway profile; returns the checked PNG', async () => {
    const tmpRoot = mkdtempSync(join(dir, 'png-root-'));
    const log = join(dir, 'fake-args.txt');
    const page = join(dir, 'fake-page.html');
    const fake = fakeBrowser('fake-good', [
      `printf '%s\\n' "$@" > '${log}'`,
      `for a in "$@"; do case "$a" in file://*) cp "\${a#file://}" '${page}';; esac; done`,
      `${SHOT}; printf '${PNG_960x400}' > "$shot"`,
    ].join('\n'));
    const bytes = await renderPng(SVG, fake, { tmpRoot });
    expect(readPngSize(bytes)).toEqual({ ok: true, size: { width: 960, height: 400 } });
    const args = readFileSync(log, 'utf8').trim().split('\n');
    expect(args).toEqual(expect.arrayContaining(['--headless', '--disable-gpu', '--hide-scrollbars', '--window-size=960,400', '--no-proxy-server', '--host-resolver-rules=MAP * ~NOTFOUND']));
    expect(args.at(-1)).toMatch(/^file:\/\/\/.*\/chart\.html$/);
    expect(args.find((a) => a.startsWith('--user-data-dir='))).toMatch(new RegExp(`^--user-data-dir=${tmpRoot}/autoscaler-png-[^/]+/profile$`));
    expect(args.includes('--no-sandbox')).toBe(process.getuid?.() === 0);
    const html = readFileSync(page, 'utf8');
    expect(html).toContain(SVG);
    expect(html).toContain(`content="default-src 'none'; style-src 'unsafe-inline'"`);
    expect(readdirSync(tmpRoot)).toEqual([]);
  });
});

describe('PNG and SVG sizes', () => {
  const header = (w: number, h: number): Buffer => {
    const b = Buffer.alloc(24);
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]).copy(b, 0);
    b.writeUInt32BE(13, 8);
    b.write('IHDR', 12, 'latin1');
    b.writeUInt32BE(w, 16);
    b.writeUInt32BE(h, 20);
    return b;
  };
  it.each([
    { name: 'a PNG header', bytes: header(960, 400), want: { ok: true, size: { width: 960, height: 400 } } },
    { name: 'a PNG header inside a larger buffer view', bytes: Buffer.concat([Buffer.from('xx'), header(3, 4)]).subarray(2), want: { ok: true, size: { width: 3, height: 4 } } },
    { name: 'no signature', bytes: Buffer.from('<svg width="960" height="400"></svg>'), want: { ok: false, problem: 'no PNG signature' } },
    { name: 'truncated', bytes: header(960, 400).subarray(0, 20), want: { ok: false, problem: 'truncated (20 bytes)' } },
    { name: 'another chunk first', bytes: (() => { const b = header(1, 1); b.write('IDAT', 12, 'latin1'); return b; })(), want: { ok: false, problem: 'the first chunk is not IHDR' } },
    { name: 'zero width', bytes: header(0, 400), want: { ok: false, problem: 'empty image (0×400)' } },
  ])('readPngSize: $name', ({ bytes, want }) => {
    expect(readPngSize(bytes)).toEqual(want);
  });

  it('svgSize reads the root element, and refuses one without a size', () => {
    expect(svgSize('<svg xmlns="http://www.w3.org/2000/svg" width="960" height="400" viewBox="0 0 960 400"><rect width="5" height="6"/></svg>')).toEqual({ width: 960, height: 400 });
    expect(() => svgSize('<svg viewBox="0 0 10 10"><rect width="5" height="6"/></svg>')).toThrow(TypeError);
  });
});
