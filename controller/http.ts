import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../lib/logger.js';
import type { ControllerMetrics } from './metrics.js';

export interface ControllerHttp {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * The controller's small listener: `GET /metrics` (Prometheus text format) and `GET /healthz`
 * (200 while evaluations complete, 503 when none finished within `staleMs`). Loopback by
 * default; every handler contained, so no request can stop the controller.
 */
export async function startControllerHttp(opts: { host: string; port: number; metrics: ControllerMetrics; staleMs: number; now: () => number; log: Logger }): Promise<ControllerHttp> {
  const server: Server = createServer((req, res) => {
    const reply = (status: number, type: string, body: string) => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(body);
    };
    void (async () => {
      const path = (req.url ?? '/').split('?')[0];
      if (req.method !== 'GET' && req.method !== 'HEAD') return reply(405, 'text/plain', 'method not allowed\n');
      if (path === '/metrics') return reply(200, opts.metrics.registry.contentType, await opts.metrics.registry.metrics());
      if (path === '/healthz') {
        const last = opts.metrics.lastTickAt;
        const age = last === undefined ? undefined : opts.now() - last;
        const ok = age !== undefined && age <= opts.staleMs;
        return reply(ok ? 200 : 503, 'application/json', `${JSON.stringify({ status: ok ? 'ok' : 'stale', lastEvaluationAgeMs: age ?? null })}\n`);
      }
      return reply(404, 'text/plain', 'not found\n');
    })().catch((err: unknown) => {
      opts.log.error({ err }, 'http handler failed');
      if (!res.headersSent) reply(500, 'text/plain', 'internal error\n');
      else res.destroy();
    });
  });
  server.on('clientError', (_err, socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new Error(`cannot listen for HTTP on ${opts.host}:${opts.port}: ${err.message}`, { cause: err })));
    server.listen(opts.port, opts.host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
