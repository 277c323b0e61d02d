/**
 * The pure half of `simulate --out chart.png`: the page a headless Chromium screenshots, the
 * browser's command line, and the check that what it wrote is a PNG of the chart's size. Finding
 * and running the browser is I/O, so it lives in cli/simulate.ts (sim/ is a pure room).
 */

/** Commands looked up on PATH, in this order, when AUTOSCALER_CHROMIUM is not set. */
export const BROWSER_NAMES: readonly string[] = ['chromium', 'chromium-browser', 'google-chrome'];

/** A size in CSS pixels (the screenshot is taken at a device scale factor of 1, so also in PNG pixels). */
export interface PixelSize {
  /** Pixels. */
  readonly width: number;
  /** Pixels. */
  readonly height: number;
}

/** The `width` and `height` of the root `<svg>` element; a TypeError if it has none (renderChart always sets both). */
export function svgSize(svg: string): PixelSize {
  const root = /<svg\b[^>]*>/.exec(svg)?.[0] ?? '';
  const attr = (name: string): number => Number(new RegExp(`\\s${name}="(\\d+)"`).exec(root)?.[1] ?? Number.NaN);
  const size = { width: attr('width'), height: attr('height') };
  if (!(size.width > 0 && size.height > 0)) throw new TypeError('svgSize: the root <svg> needs whole-pixel width and height attributes');
  return size;
}

/**
 * A page holding only the SVG, with no margin, so a window of the chart's size shows exactly the
 * chart. The Content-Security-Policy forbids every fetch: the page needs nothing outside itself.
 */
export function chartPage(svg: string): string {
  return [
    '<!doctype html>',
    '<html><head><meta charset="utf-8">',
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">`,
    '<style>html,body{margin:0;padding:0;overflow:hidden;background:#ffffff}svg{display:block}</style>',
    `</head><body>${svg}</body></html>`,
    '',
  ].join('\n');
}

/** What {@link chromiumArgs} needs. */
export interface ChromiumArgsInput {
  /** The page, as a file:// URL. */
  readonly pageUrl: string;
  /** Where the browser writes the screenshot. */
  readonly outPath: string;
  /** A fresh, empty profile directory (the user's own profile is never touched). */
  readonly profileDir: string;
  /** The window, and so the PNG, size. */
  readonly size: PixelSize;
  /** Add --no-sandbox: Chromium refuses to start as root with its sandbox on. */
  readonly noSandbox: boolean;
}

/** The command line of one headless screenshot, with no network: no proxy, no DNS, no background traffic. */
export function chromiumArgs(i: ChromiumArgsInput): string[] {
  if (!i.pageUrl.startsWith('file://')) throw new TypeError('chromiumArgs: the page must be a file:// URL');
  return [
    '--headless',
    ...(i.noSandbox ? ['--no-sandbox'] : []),
    '--disable-gpu',
    '--hide-scrollbars',
    '--force-device-scale-factor=1',
    `--window-size=${i.size.width},${i.size.height}`,
    '--no-proxy-server',
    // Every host name fails to resolve: the page is a local file and needs none.
    '--host-resolver-rules=MAP * ~NOTFOUND',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--disable-extensions',
    '--disable-default-apps',
    '--no-first-run',
    '--no-default-browser-check',
    '--mute-audio',
    // A small /dev/shm (containers) crashes the renderer; /tmp has room.
    '--disable-dev-shm-usage',
    `--user-data-dir=${i.profileDir}`,
    `--screenshot=${i.outPath}`,
    i.pageUrl,
  ];
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** A PNG's size from its IHDR chunk, or why the bytes are not a PNG. */
export type PngCheck = { readonly ok: true; readonly size: PixelSize } | { readonly ok: false; readonly problem: string };

/** Check the PNG signature and read the IHDR chunk, which the format puts first. */
export function readPngSize(bytes: Uint8Array): PngCheck {
  if (bytes.length < 8 || PNG_SIGNATURE.some((b, n) => bytes[n] !== b)) return { ok: false, problem: 'no PNG signature' };
  // Signature (8), IHDR length (4) and type (4), width (4), height (4).
  if (bytes.length < 24) return { ok: false, problem: `truncated (${bytes.length} bytes)` };
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const type = String.fromCharCode(...bytes.subarray(12, 16));
  if (view.getUint32(8) !== 13 || type !== 'IHDR') return { ok: false, problem: 'the first chunk is not IHDR' };
  const size = { width: view.getUint32(16), height: view.getUint32(20) };
  if (size.width === 0 || size.height === 0) return { ok: false, problem: `empty image (${size.width}×${size.height})` };
  return { ok: true, size };
}
