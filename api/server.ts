/**
 * The HTTP API's request handling: route, authenticate, validate, call the Admin, answer JSON.
 * Mounted by the monitor server's listener (monitor-server/http.ts) under /api/ and /openapi.json.
 * Every refusal is a JSON error naming what is wrong: {"error", "code", "fields": [{"in", "path", "message"}]}.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import type { Logger } from '../lib/logger.js';
import type { Db } from '../store/db.js';
import type { StatusCache } from '../monitor-server/status-cache.js';
import { parseCursor } from '../store/timeline.js';
import { AdminError, LocalAdmin, type FieldProblem } from './admin.js';
import type { TokenAuth } from './auth.js';
import { openApiDocument } from './openapi.js';
import { ROUTES, STATUS_QUERY, matchRoute, type Route } from './routes.js';
import { EventHub } from './stream.js';

/** Largest request body, bytes (a group document is a few KiB; 1,000 of them fit). */
export const MAX_BODY_BYTES = 4 * 1024 * 1024;

export interface ApiServerOptions {
  readonly db: Db;
  readonly auth: TokenAuth;
  readonly status: StatusCache;
  readonly now: () => number;
  readonly log: Logger;
  readonly streamMs: number;
  readonly maxStreams: number;
  /** A request refused (4xx other than an unknown group): counted with the HTTP refusals. */
  readonly onRefused: (status: number) => void;
}

/** Where a field at fault is. */
type Where = 'path' | 'query' | 'body';

class RequestError extends AdminError {
  constructor(readonly where: Where, problems: readonly FieldProblem[]) {
    super('invalid', `${where === 'body' ? 'the request body' : where === 'query' ? 'the query' : 'the path'} is invalid:\n${problems.map((p) => `  - ${p.path === '' ? '(whole)' : p.path}: ${p.message}`).join('\n')}`, problems);
  }
}

function problemsOf(err: z.ZodError): FieldProblem[] {
  return err.issues.flatMap((i): FieldProblem[] => {
    const at = i.path.map(String).join('.');
    if (i.code === 'unrecognized_keys') return i.keys.map((k) => ({ path: at === '' ? k : `${at}.${k}`, message: 'unknown field' }));
    if (i.code === 'invalid_union') {
      // The closest branch (fewest problems) says the most.
      const best = [...i.errors].sort((a, b) => a.length - b.length)[0];
      if (best !== undefined && best.length > 0) return problemsOf(new z.ZodError(best));
    }
    return [{ path: at, message: i.message }];
  });
}

function parse<T>(schema: z.ZodType<T>, input: unknown, where: Where): T {
  const r = schema.safeParse(input);
  if (!r.success) throw new RequestError(where, problemsOf(r.error));
  return r.data;
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const buf = Buffer.from(JSON.stringify(body), 'utf8');
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'content-length': buf.length, ...headers });
  res.end(buf);
}

function readBody(req: IncomingMessage): Promise<unknown> {
  const type = req.headers['content-type'] ?? '';
  if (!/^application\/json\s*(;|$)/i.test(type)) {
    req.resume();
    return Promise.reject(new AdminError('unsupported', `the body must be JSON: send "Content-Type: application/json" (got "${type.slice(0, 60)}")`));
  }
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY_BYTES) {
    req.resume();
    return Promise.reject(new AdminError('too_large', `the body is larger than ${MAX_BODY_BYTES} bytes`));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        reject(new AdminError('too_large', `the body is larger than ${MAX_BODY_BYTES} bytes`));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('error', reject);
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      if (text.trim() === '') return reject(new RequestError('body', [{ path: '', message: 'missing: this route takes a JSON body' }]));
      try {
        resolve(JSON.parse(text));
      } catch (err) {
        reject(new RequestError('body', [{ path: '', message: `not valid JSON (${(err as Error).message.slice(0, 100)})` }]));
      }
    });
  });
}

export class ApiServer {
  private readonly admin: LocalAdmin;
  readonly hub: EventHub;
  private openapi: Buffer | undefined;

  constructor(private readonly opts: ApiServerOptions) {
    this.admin = new LocalAdmin(opts.db, 'api:anonymous', opts.now);
    this.hub = new EventHub({ db: opts.db, pollMs: opts.streamMs, maxStreams: opts.maxStreams, report: () => opts.status.report(), log: opts.log });
  }

  /** Paths this server answers. */
  static owns(path: string): boolean {
    return path.startsWith('/api/') || path === '/openapi.json';
  }

  /** Answer one request; never throws. */
  handle(req: IncomingMessage, res: ServerResponse, rawPath: string, query: URLSearchParams): void {
    // The first API path, kept for scripts and the first dashboard.
    const path = rawPath === '/api/status' ? '/api/v1/status' : rawPath;
    this.serve(req, res, path, query).catch((err: unknown) => this.fail(res, err, path));
  }

  close(): void {
    this.hub.close();
  }

  private fail(res: ServerResponse, err: unknown, path: string): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (err instanceof AdminError) {
      if (err.status >= 400 && err.status < 500 && !(err.code === 'not_found' && path.startsWith('/api/v1/groups/'))) this.opts.onRefused(err.status);
      const where = err instanceof RequestError ? err.where : undefined;
      const fields = err.fields.map((f) => (where === undefined ? f : { in: where, ...f }));
      const headers: Record<string, string> = err.code === 'unauthorized' ? { 'www-authenticate': 'Bearer realm="autoscaler"' } : {};
      send(res, err.status, { error: err.message, code: err.code, fields }, headers);
      return;
    }
    this.opts.log.error({ err, path }, 'API request failed');
    send(res, 500, { error: 'internal error', code: 'internal', fields: [] });
  }

  private async serve(req: IncomingMessage, res: ServerResponse, path: string, query: URLSearchParams): Promise<void> {
    const method = req.method ?? 'GET';
    const { match, allowed } = matchRoute(method, path);
    if (match === undefined) {
      if (allowed.length > 0) {
        this.opts.onRefused(405);
        send(res, 405, { error: `${method} is not allowed on ${path.slice(0, 100)}: use ${allowed.join(', ')}`, code: 'method', fields: [] }, { allow: allowed.join(', ') });
        return;
      }
      throw new AdminError('not_found', `no route ${path.slice(0, 100)} (GET /openapi.json lists them)`);
    }
    const r = match.route;
    const principal = this.opts.auth.check(req.headers.authorization, r.access);
    const params = parse(r.params, match.params, 'path');
    const q = parse(r.query, Object.fromEntries(query), 'query');
    let body: unknown;
    if (r.body !== undefined) {
      const raw = await readBody(req);
      body = r.bodyValidatedBy === 'admin' ? raw : parse(r.body, raw, 'body');
    } else {
      req.resume();
    }
    if (r.special !== undefined) return this.special(r, req, res, q);
    const result = await r.handle({ params, query: q, body, admin: this.admin.as(principal.actor) });
    send(res, r.success ?? 200, result === undefined ? null : result);
  }

  private special(r: Route, req: IncomingMessage, res: ServerResponse, q: unknown): void {
    if (r.special === 'openapi') {
      this.openapi ??= Buffer.from(JSON.stringify(openApiDocument()), 'utf8');
      res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'content-length': this.openapi.length });
      res.end(this.openapi);
      return;
    }
    if (r.special === 'status') {
      const s = q as z.output<typeof STATUS_QUERY>;
      if (s.group !== undefined) this.admin.requireGroup(s.group);
      const buf = this.opts.status.body(s.group, s.decisions ?? 10);
      res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'content-length': buf.length });
      res.end(buf);
      return;
    }
    const s = q as { group?: string; after?: string };
    if (s.group !== undefined) this.admin.requireGroup(s.group);
    const lastId = req.headers['last-event-id'];
    const afterText = typeof lastId === 'string' && lastId !== '' ? lastId : s.after;
    const after = afterText === undefined ? undefined : parseCursor(afterText);
    if (afterText !== undefined && after === undefined) throw new RequestError('query', [{ path: 'after', message: 'must be an event id from this stream (D.A.C)' }]);
    this.hub.open(res, { ...(s.group === undefined ? {} : { group: s.group }), ...(after === undefined ? {} : { after }) });
  }
}

/** Every route's `METHOD path`, for the route test and the README. */
export const ROUTE_LIST: readonly string[] = ROUTES.map((r) => `${r.method} ${r.path}`);
