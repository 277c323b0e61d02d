import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import type { Db } from '../store/db.js';
import { StatusReader } from '../store/status.js';
import { DASHBOARD_HTML } from './dashboard.js';

export interface HttpHandle {
  readonly port: number;
  close(): Promise<void>;
}

export interface HttpOptions {
  readonly host: string;
  readonly port: number;
  readonly db: Db;
  readonly clock: Clock;
  readonly health: () => { ok: boolean; details: Record<string, unknown> };
  readonly log: Logger;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/**
 * Loopback HTTP for operators and probes:
 *   GET /            the dashboard (polls /api/status)
 *   GET /healthz     200 {"status":"ok"} while batched writes succeed, 503 otherwise
 *   GET /api/status  the fleet (same JSON as `autoscaler status --json`); ?group=ID narrows it,
 *                    ?decisions=N sets how many recent decisions per group (default 10, max 200)
 */
export async function startHttp(opts: HttpOptions): Promise<HttpHandle> {
  const status = new StatusReader(opts.db);
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      send(res, 405, { error: 'method not allowed' });
      return;
    }
    try {
      if (url.pathname === '/healthz') {
        const h = opts.health();
        send(res, h.ok ? 200 : 503, { status: h.ok ? 'ok' : 'degraded', ...h.details });
      } else if (url.pathname === '/api/status') {
        const group = url.searchParams.get('group') ?? undefined;
        const decisions = Math.min(200, Math.max(0, Number(url.searchParams.get('decisions') ?? 10) || 10));
        send(res, 200, status.report(opts.clock.now(), { groupId: group, decisions }));
      } else if (url.pathname === '/favicon.ico') {
        res.writeHead(204).end();
      } else if (url.pathname === '/') {
        res.writeHead(200, {
          'content-type': 'text/html; charset=utf-8',
          'cache-control': 'no-store',
          // Everything is inline and same-origin; nothing else may load.
          'content-security-policy': "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:",
          'x-content-type-options': 'nosniff',
        });
        res.end(DASHBOARD_HTML);
      } else {
        send(res, 404, { error: `no route ${url.pathname}`, routes: ['/', '/healthz', '/api/status'] });
      }
    } catch (err) {
      opts.log.error({ err, path: url.pathname }, 'request failed');
      send(res, 500, { error: 'internal error' });
    }
  });
  server.keepAliveTimeout = 5_000;
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', (err) => reject(new Error(`cannot listen for HTTP on ${opts.host}:${opts.port}: ${err.message}`, { cause: err })));
    server.listen(opts.port, opts.host, () => {
      const addr = server.address();
      resolve(typeof addr === 'object' && addr !== null ? addr.port : opts.port);
    });
  });
  return {
    port,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
