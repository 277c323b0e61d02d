import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import { ApiServer } from '../api/server.js';
import { ConfigError } from '../config/shared.js';
import type { Logger } from '../lib/logger.js';
import { DASHBOARD_HTML } from './dashboard.js';

export interface HttpHandle {
  readonly port: number;
  /** HTTPS: re-read the certificate and key (SIGHUP); a bad pair throws and the old one stays. */
  reloadTls(): void;
  close(): Promise<void>;
}

export interface HttpOptions {
  readonly host: string;
  readonly port: number;
  readonly health: () => { ok: boolean; details: Record<string, unknown> };
  readonly log: Logger;
  /** Counts a refused request (bad target, unknown route, wrong method, parse error). */
  readonly onBadRequest: () => void;
  /** Called when a route threw; the request is answered 500 and the server keeps serving. */
  readonly onError: (err: unknown, path: string) => void;
  /** Prometheus text exposition for `GET /metrics` (monitor-server/metrics.ts); 404 when absent. */
  readonly metrics?: () => Promise<{ contentType: string; body: string }>;
  /** The HTTP API under /api/ (`/api/status` included) and /openapi.json (api/server.ts). */
  readonly api: ApiServer;
  /** HTTPS with these PEM files; undefined: plain HTTP. */
  readonly tls?: { readonly certFile: string; readonly keyFile: string };
}

/**
 * The chart library the dashboard draws with (uPlot, MIT), served from the installed package:
 * no CDN, no build step. Read once, on first request.
 */
const ASSETS: Record<string, { file: string; type: string }> = {
  '/assets/uplot.js': { file: 'uplot/dist/uPlot.iife.min.js', type: 'text/javascript; charset=utf-8' },
  '/assets/uplot.css': { file: 'uplot/dist/uPlot.min.css', type: 'text/css; charset=utf-8' },
};
const assetCache = new Map<string, Buffer>();
function asset(path: string): Buffer {
  let b = assetCache.get(path);
  if (b === undefined) {
    b = readFileSync(createRequire(import.meta.url).resolve((ASSETS[path] as { file: string }).file));
    assetCache.set(path, b);
  }
  return b;
}

function readTlsPair(tls: { certFile: string; keyFile: string }): { cert: Buffer; key: Buffer } {
  const read = (key: string, path: string) => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new ConfigError([`${key}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`]);
    }
  };
  return { cert: read('MONITOR_HTTP_TLS_CERT', tls.certFile), key: read('MONITOR_HTTP_TLS_KEY', tls.keyFile) };
}

/** Open connections at once; more are closed by Node as they arrive. */
const MAX_CONNECTIONS = 1_024;
/** Slow clients: the whole request head must arrive within this, ms. */
const HEADERS_TIMEOUT_MS = 10_000;
const REQUEST_TIMEOUT_MS = 30_000;

const ROUTES = ['/', '/healthz', '/metrics', '/api/status', '/api/v1/…', '/openapi.json'] as const;

function send(res: ServerResponse, status: number, body: unknown): void {
  sendBuffer(res, status, Buffer.from(JSON.stringify(body), 'utf8'));
}

function sendBuffer(res: ServerResponse, status: number, body: Buffer): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'content-length': body.length });
  res.end(body);
}

/** Echo at most this much of a client-sent path. */
const echo = (path: string) => (path.length > 100 ? `${path.slice(0, 100)}…` : path);

/**
 * Loopback HTTP for operators and probes:
 *   GET /            the dashboard (history from /api/v1/groups/{id}/metrics, live over /api/v1/stream)
 *   GET /assets/…    uPlot, served from the installed package
 *   /api/…, /openapi.json  the HTTP API (api/server.ts)
 *   GET /metrics     Prometheus text format
 *   GET /healthz     200 {"status":"ok"} while batched writes succeed, 503 otherwise; counters
 *   GET /api/status  the same as GET /api/v1/status (the fleet, served from the status cache)
 * The request target is never parsed as a URL (`new URL('//', base)` throws): a path is what
 * precedes `?`, and it must start with `/`.
 */
export async function startHttp(opts: HttpOptions): Promise<HttpHandle> {
  const route = (req: IncomingMessage, res: ServerResponse, path: string, query: URLSearchParams) => {
    if (ApiServer.owns(path)) {
      opts.api.handle(req, res, path, query);
    } else if (req.method !== 'GET' && req.method !== 'HEAD') {
      opts.onBadRequest();
      res.setHeader('allow', 'GET, HEAD');
      send(res, 405, { error: 'method not allowed' });
    } else if (path === '/healthz') {
      const h = opts.health();
      send(res, h.ok ? 200 : 503, { status: h.ok ? 'ok' : 'degraded', ...h.details });
    } else if (path === '/metrics' && opts.metrics !== undefined) {
      opts.metrics().then(
        (m) => {
          res.writeHead(200, { 'content-type': m.contentType, 'cache-control': 'no-store' });
          res.end(m.body);
        },
        (err: unknown) => {
          opts.onError(err, path);
          if (!res.headersSent) send(res, 500, { error: 'internal error' });
        },
      );
    } else if (ASSETS[path] !== undefined) {
      const body = asset(path);
      res.writeHead(200, { 'content-type': (ASSETS[path] as { type: string }).type, 'cache-control': 'public, max-age=86400', 'content-length': body.length, 'x-content-type-options': 'nosniff' });
      res.end(body);
    } else if (path === '/favicon.ico') {
      res.writeHead(204).end();
    } else if (path === '/') {
      res.writeHead(200, {
        'content-type': 'text/html; charset=utf-8',
        'cache-control': 'no-store',
        // Everything is inline and same-origin; nothing else may load.
        'content-security-policy': "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; connect-src 'self'; img-src 'self' data:",
        'x-content-type-options': 'nosniff',
      });
      res.end(DASHBOARD_HTML);
    } else {
      opts.onBadRequest();
      send(res, 404, { error: `no route ${echo(path)}`, routes: ROUTES });
    }
  };

  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const target = req.url ?? '/';
    const q = target.indexOf('?');
    const path = q === -1 ? target : target.slice(0, q);
    try {
      if (!path.startsWith('/')) {
        opts.onBadRequest();
        send(res, 400, { error: 'request target must be a path starting with /' });
        return;
      }
      route(req, res, path, new URLSearchParams(q === -1 ? '' : target.slice(q + 1)));
    } catch (err) {
      opts.onError(err, echo(path));
      if (!res.headersSent) send(res, 500, { error: 'internal error' });
      else res.destroy();
    }
  };
  let server: Server | HttpsServer;
  if (opts.tls !== undefined) {
    const pair = readTlsPair(opts.tls);
    try {
      server = createHttpsServer({ ...pair, minVersion: 'TLSv1.2' }, handler);
    } catch (err) {
      throw new ConfigError([`MONITOR_HTTP_TLS_CERT / MONITOR_HTTP_TLS_KEY: not a usable certificate and key: ${(err as Error).message}`]);
    }
  } else {
    server = createServer(handler);
  }
  // Requests Node's parser refuses (bad bytes, oversized headers) answer 400 on that socket only.
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    opts.onBadRequest();
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
  });
  server.keepAliveTimeout = 5_000;
  server.headersTimeout = HEADERS_TIMEOUT_MS;
  server.requestTimeout = REQUEST_TIMEOUT_MS;
  server.maxConnections = MAX_CONNECTIONS;
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', (err) => reject(new Error(`cannot listen for HTTP on ${opts.host}:${opts.port}: ${err.message}`, { cause: err })));
    server.listen(opts.port, opts.host, () => {
      const addr = server.address();
      resolve(typeof addr === 'object' && addr !== null ? addr.port : opts.port);
    });
  });
  // After listening, a server error (EMFILE on accept, …) is logged; the server keeps going.
  server.on('error', (err) => opts.log.error({ err }, 'http server error'));
  return {
    port,
    reloadTls: () => {
      if (opts.tls === undefined || !('setSecureContext' in server)) return;
      server.setSecureContext({ ...readTlsPair(opts.tls), minVersion: 'TLSv1.2' });
    },
    close: () => new Promise<void>((resolve) => {
      opts.api.close();
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
