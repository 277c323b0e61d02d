/**
 * Every route of the HTTP API, once: method, path, who may call it, the zod schemas of its path,
 * query and body (which validate requests, and from which api/openapi.ts generates the OpenAPI
 * document), and the Admin call it makes. Adding a route here adds it to the server, the
 * document and the route test.
 */
import { z } from 'zod';
import { GroupDocumentSchema, PolicyDocumentSchema } from '../domain/policy.js';
import { ID_PATTERN } from '../config/shared.js';
import { ProfileSpecError, parseDuration } from '../sim/profile.js';
import { INSTANCE_STATES } from '../store/instances.js';
import { MAX_TIMELINE_PAGE } from '../store/timeline.js';
import { MAX_CAPACITY, MAX_SCALE_FOR_MS, type Admin } from './admin.js';
import type { Access } from './auth.js';

export type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

const idParam = z.string().regex(ID_PATTERN, { error: 'must be 1-63 letters, digits, ".", "_" or "-"' });
const whole = (min: number, max: number) => z.string().regex(/^\d{1,15}$/, { error: 'must be a whole number' }).transform(Number)
  .pipe(z.number().min(min, { error: `must be >= ${min}` }).max(max, { error: `must be <= ${max}` }));
/** `90s`, `5m`, `1h`, `1500ms`, or a number of milliseconds. */
const duration = (min: number, max: number) => z.string().max(20).transform((v, ctx) => {
  try {
    return /^\d+$/.test(v) ? Number(v) : parseDuration(v);
  } catch (err) {
    ctx.issues.push({ code: 'custom', message: err instanceof ProfileSpecError ? err.message : 'not a duration', input: v });
    return z.NEVER;
  }
}).pipe(z.number().min(min, { error: `must be >= ${min} ms` }).max(max, { error: `must be <= ${max} ms` }));
/** Epoch milliseconds, or an ISO 8601 time. */
const time = z.string().max(40).transform((v, ctx) => {
  const t = /^\d{1,15}$/.test(v) ? Number(v) : Date.parse(v);
  if (!Number.isFinite(t) || t < 0) {
    ctx.issues.push({ code: 'custom', message: 'must be epoch milliseconds or an ISO 8601 time', input: v });
    return z.NEVER;
  }
  return t;
});

const groupPath = z.strictObject({ group: idParam });
/** A timeline cursor `D.A.C`: an earlier page's `next`, or an event id of the stream. */
const cursorParam = z.string().max(60).regex(/^\d+\.\d+\.\d+$/, { error: 'must be a cursor from an earlier page (next) or an event id (D.A.C)' });
const noQuery = z.strictObject({});
const reasonBody = z.strictObject({ reason: z.string().max(500, { error: 'at most 500 characters' }).optional() });

/** What a handler gets: the validated parts of the request and the Admin acting for its token. */
export interface RouteContext<P, Q, B> {
  readonly params: P;
  readonly query: Q;
  readonly body: B;
  readonly admin: Admin;
}

/** A route handled by the server itself (status from its cache, the event stream). */
export type SpecialRoute = 'status' | 'stream' | 'openapi';

export interface Route {
  readonly method: Method;
  /** OpenAPI path template: `/api/v1/groups/{group}`. */
  readonly path: string;
  readonly operationId: string;
  readonly summary: string;
  readonly access: Access;
  readonly params: z.ZodType;
  readonly query: z.ZodType;
  /** Undefined: no body. */
  readonly body?: z.ZodType;
  /**
   * `admin`: the body is passed on as parsed JSON and the Admin validates it with this same schema
   * (its messages name each document and field: "group document 3: policy.warmupMs …"); the
   * schema here documents it. Default: validated here.
   */
  readonly bodyValidatedBy?: 'admin';
  /** The answer's media type (JSON unless said). */
  readonly produces?: 'application/json' | 'text/event-stream';
  /** 200 unless said (201 for creations). */
  readonly success?: number;
  readonly special?: SpecialRoute;
  handle(c: RouteContext<unknown, unknown, unknown>): Promise<unknown>;
}

function route<P extends z.ZodType, Q extends z.ZodType, B extends z.ZodType = z.ZodUndefined>(r: {
  method: Method; path: string; operationId: string; summary: string; access: Access; params?: P; query?: Q; body?: B;
  produces?: Route['produces']; success?: number; special?: SpecialRoute; bodyValidatedBy?: 'admin';
  handle?: (c: RouteContext<z.output<P>, z.output<Q>, z.output<B>>) => Promise<unknown>;
}): Route {
  return {
    method: r.method, path: r.path, operationId: r.operationId, summary: r.summary, access: r.access,
    params: r.params ?? z.strictObject({}), query: r.query ?? noQuery, ...(r.body === undefined ? {} : { body: r.body }),
    ...(r.produces === undefined ? {} : { produces: r.produces }), ...(r.success === undefined ? {} : { success: r.success }),
    ...(r.special === undefined ? {} : { special: r.special }), ...(r.bodyValidatedBy === undefined ? {} : { bodyValidatedBy: r.bodyValidatedBy }),
    handle: (r.handle ?? (async () => undefined)) as Route['handle'],
  };
}

export const STATUS_QUERY = z.strictObject({ group: idParam.optional(), decisions: whole(0, 200).optional() });

export const ROUTES: readonly Route[] = [
  route({
    method: 'GET', path: '/api/v1/status', operationId: 'getStatus', access: 'read', special: 'status', query: STATUS_QUERY,
    summary: 'The fleet: components, groups with their instances, recent decisions and activities (the document `autoscaler status --json` prints)',
  }),
  route({
    method: 'GET', path: '/api/v1/groups', operationId: 'listGroups', access: 'read', summary: 'Every group with its bounds, policy, revision and state',
    handle: ({ admin }) => admin.groups(),
  }),
  route({
    method: 'POST', path: '/api/v1/groups', operationId: 'applyGroups', access: 'write', success: 200,
    summary: 'Create or change groups (`autoscaler group apply`): one group document or an array; all are validated before any is applied',
    body: z.union([GroupDocumentSchema, z.array(GroupDocumentSchema).max(1_000)]), bodyValidatedBy: 'admin',
    handle: ({ admin, body }) => admin.apply(Array.isArray(body) ? (body as unknown[]) : [body]),
  }),
  route({
    method: 'GET', path: '/api/v1/groups/{group}', operationId: 'getGroup', access: 'read', params: groupPath,
    summary: 'One group: its document with every default filled, last forecast, schedule windows (`autoscaler policy show`)',
    handle: ({ admin, params }) => admin.group(params.group),
  }),
  route({
    method: 'PATCH', path: '/api/v1/groups/{group}/policy', operationId: 'setPolicy', access: 'write', params: groupPath,
    summary: 'Change fields of the group document (`autoscaler policy set`): `set` maps paths (`targetTracking.0.target`, `minSize`) to values; `policy` replaces the whole policy first',
    body: z.strictObject({
      set: z.record(z.string().max(200), z.unknown()).optional(),
      policy: PolicyDocumentSchema.optional(),
    }),
    handle: ({ admin, params, body }) => admin.setPolicy(params.group, { ...(body.set === undefined ? {} : { set: body.set }), ...(body.policy === undefined ? {} : { policy: body.policy }) }),
  }),
  route({
    method: 'POST', path: '/api/v1/policies/validate', operationId: 'validatePolicy', access: 'read',
    summary: 'Check a policy document, or a group document (with `id`), without applying it (`autoscaler policy validate`)',
    body: z.union([GroupDocumentSchema, PolicyDocumentSchema]), bodyValidatedBy: 'admin',
    handle: ({ admin, body }) => admin.validate(body),
  }),
  route({
    method: 'GET', path: '/api/v1/groups/{group}/history', operationId: 'policyHistory', access: 'read', params: groupPath,
    query: z.strictObject({ limit: whole(1, MAX_TIMELINE_PAGE).optional() }),
    summary: 'Who changed the group, when, and what (old → new), newest first (`autoscaler policy history`)',
    handle: ({ admin, params, query }) => admin.history(params.group, query.limit ?? 20),
  }),
  route({
    method: 'PUT', path: '/api/v1/groups/{group}/capacity', operationId: 'setCapacity', access: 'write', params: groupPath,
    summary: 'Set the capacity by hand, over the policies, for `forMs` or until cleared (`autoscaler scale --desired N [--for]`)',
    body: z.strictObject({
      desired: z.number().int({ error: 'must be a whole number' }).min(0, { error: 'must be >= 0' }).max(MAX_CAPACITY, { error: `must be <= ${MAX_CAPACITY}` }),
      forMs: z.number().int({ error: 'must be a whole number of ms' }).min(1_000, { error: 'must be >= 1000' }).max(MAX_SCALE_FOR_MS, { error: `must be <= ${MAX_SCALE_FOR_MS}` }).optional(),
    }),
    handle: ({ admin, params, body }) => admin.scale(params.group, body.forMs === undefined ? { desired: body.desired } : { desired: body.desired, forMs: body.forMs }),
  }),
  route({
    method: 'DELETE', path: '/api/v1/groups/{group}/capacity', operationId: 'clearCapacity', access: 'write', params: groupPath,
    summary: 'Give the group back to its policies (`autoscaler scale --clear`)',
    handle: ({ admin, params }) => admin.scale(params.group, null),
  }),
  route({
    method: 'POST', path: '/api/v1/groups/{group}/pause', operationId: 'pauseGroup', access: 'write', params: groupPath, body: reasonBody,
    summary: 'Stop scaling and replacing the group; it keeps its instances (`autoscaler pause`)',
    handle: ({ admin, params, body }) => admin.setPaused(params.group, true, body.reason ?? ''),
  }),
  route({
    method: 'POST', path: '/api/v1/groups/{group}/resume', operationId: 'resumeGroup', access: 'write', params: groupPath, body: reasonBody,
    summary: 'Let a paused group scale again (`autoscaler resume`)',
    handle: ({ admin, params, body }) => admin.setPaused(params.group, false, body.reason ?? ''),
  }),
  route({
    method: 'PUT', path: '/api/v1/groups/{group}/dry-run', operationId: 'setDryRun', access: 'write', params: groupPath,
    body: z.strictObject({ enabled: z.boolean({ error: 'must be true or false' }) }),
    summary: 'Dry run on: decisions are recorded, nothing is launched or terminated (`autoscaler dry-run`)',
    handle: ({ admin, params, body }) => admin.setDryRun(params.group, body.enabled),
  }),
  route({
    method: 'GET', path: '/api/v1/instances', operationId: 'listInstances', access: 'read',
    query: z.strictObject({ group: idParam.optional(), state: z.enum(INSTANCE_STATES, { error: `must be one of ${INSTANCE_STATES.join(', ')}` }).optional() }),
    summary: 'Instances with their state, provider facts and latest sample (`autoscaler instances`)',
    handle: ({ admin, query }) => admin.instances({ ...(query.group === undefined ? {} : { group: query.group }), ...(query.state === undefined ? {} : { state: query.state }) }),
  }),
  route({
    method: 'GET', path: '/api/v1/events', operationId: 'listEvents', access: 'read',
    query: z.strictObject({
      group: idParam.optional(),
      after: cursorParam.optional(),
      since: time.optional(),
      limit: whole(1, MAX_TIMELINE_PAGE).optional(),
    }),
    summary: 'Decisions (with reasons), launches / terminations and operator changes, oldest first; page on with `after=next` (`autoscaler events`)',
    handle: ({ admin, query }) => admin.events({
      ...(query.group === undefined ? {} : { group: query.group }), ...(query.after === undefined ? {} : { after: query.after }),
      ...(query.since === undefined ? {} : { since: query.since }), limit: query.limit ?? 50,
    }),
  }),
  route({
    method: 'GET', path: '/api/v1/stream', operationId: 'streamEvents', access: 'read', special: 'stream', produces: 'text/event-stream',
    query: z.strictObject({ group: idParam.optional(), after: cursorParam.optional() }),
    summary: 'Server-sent events: `decision`, `activity`, `change` (resumable with Last-Event-ID or `after`), `instance` (state changes) and `sample` (each group\'s live figures)',
  }),
  route({
    method: 'GET', path: '/api/v1/groups/{group}/metrics', operationId: 'groupMetrics', access: 'read', params: groupPath,
    query: z.strictObject({ window: duration(60_000, 14 * 86_400_000).optional(), step: duration(1_000, 3_600_000).optional() }),
    summary: 'History for charts: average and per-instance CPU, reporting instances, decided capacity, simulated demand and decisions per time bucket (default: the last hour in 10 s buckets)',
    handle: ({ admin, params, query }) => admin.metrics(params.group, { windowMs: query.window ?? 3_600_000, stepMs: query.step ?? 10_000 }),
  }),
  route({
    method: 'GET', path: '/api/v1/groups/{group}/simulate', operationId: 'simulateGroup', access: 'read', params: groupPath,
    query: z.strictObject({
      trace: z.string().regex(/^[a-z][a-z0-9-]{0,40}$/, { error: 'must be recorded or a built-in trace name' }).optional(),
      boot: duration(1_000, 3_600_000).optional(),
      compare: z.string().max(100).regex(/^(none|[a-z-]+(,[a-z-]+)*)$/, { error: 'must be none or a comma-separated list of hpa, aws-target-tracking, threshold, oracle' }).optional(),
    }),
    summary: 'What-if: the group\'s policy and the baselines replayed over its recorded traffic (trace=recorded, the default) or a built-in trace, in virtual time (`autoscaler simulate --from-db`)',
    handle: ({ admin, params, query }) => admin.simulate(params.group, {
      trace: query.trace ?? 'recorded', bootS: Math.round((query.boot ?? 120_000) / 1000),
      compare: query.compare === undefined ? ['hpa', 'aws-target-tracking', 'oracle'] : query.compare === 'none' ? [] : query.compare.split(','),
    }),
  }),
  route({
    method: 'GET', path: '/api/v1/groups/{group}/load', operationId: 'getLoad', access: 'read', params: groupPath,
    summary: 'The simulated demand of the group, or null (`autoscaler load show`)',
    handle: ({ admin, params }) => admin.load(params.group),
  }),
  route({
    method: 'PUT', path: '/api/v1/groups/{group}/load', operationId: 'setLoad', access: 'write', params: groupPath,
    body: z.strictObject({ spec: z.string().min(1).max(200) }),
    summary: 'Set the simulated demand: 200, constant:200, step:30,200@60s, sine:30,250/180s, spike:40,300@60s+30s (`autoscaler load set`)',
    handle: ({ admin, params, body }) => admin.setLoad(params.group, body.spec),
  }),
  route({
    method: 'DELETE', path: '/api/v1/groups/{group}/load', operationId: 'clearLoad', access: 'write', params: groupPath,
    summary: 'Remove the simulated demand (`autoscaler load clear`)',
    handle: async ({ admin, params }) => ({ cleared: await admin.clearLoad(params.group) }),
  }),
  route({
    method: 'GET', path: '/openapi.json', operationId: 'openapi', access: 'open', special: 'openapi',
    summary: 'This document',
  }),
];

/** A compiled matcher for a path template. */
export interface MatchedRoute {
  readonly route: Route;
  readonly params: Record<string, string>;
}

const compiled = ROUTES.map((r) => {
  const names: string[] = [];
  const pattern = r.path.replace(/[.*+?^${}()|[\]\\]/g, (c) => (c === '{' || c === '}' ? c : `\\${c}`)).replace(/\{(\w+)\}/g, (_m, name: string) => {
    names.push(name);
    return '([^/]+)';
  });
  return { route: r, names, re: new RegExp(`^${pattern}$`) };
});

/** The route for `method path`; `allowed` lists the methods of the path when the method is wrong. */
export function matchRoute(method: string, path: string): { match?: MatchedRoute; allowed: readonly Method[] } {
  const allowed: Method[] = [];
  for (const c of compiled) {
    const m = c.re.exec(path);
    if (m === null) continue;
    const params: Record<string, string> = {};
    let ok = true;
    c.names.forEach((n, i) => {
      try {
        params[n] = decodeURIComponent(m[i + 1] as string);
      } catch {
        ok = false;
      }
    });
    if (!ok) continue;
    if (c.route.method === method || (method === 'HEAD' && c.route.method === 'GET')) return { match: { route: c.route, params }, allowed };
    allowed.push(c.route.method);
  }
  return { allowed };
}
