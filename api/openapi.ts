/**
 * The OpenAPI 3.1 document of the HTTP API, generated from api/routes.ts: the same zod schemas
 * that validate each request become its parameters and request body (zod's JSON Schema output,
 * draft 2020-12, which OpenAPI 3.1 uses). Nothing here is written by hand per route.
 */
import { z } from 'zod';
import { version } from '../lib/version.js';
import { ROUTES, type Route } from './routes.js';

type Json = Record<string, unknown>;

function jsonSchema(schema: z.ZodType): Json {
  const s = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as Json;
  delete s.$schema;
  return s;
}

/** Path or query parameters from a strict object schema. */
function parameters(schema: z.ZodType, where: 'path' | 'query'): Json[] {
  const s = jsonSchema(schema);
  const props = (s.properties ?? {}) as Record<string, Json>;
  const required = new Set((s.required ?? []) as string[]);
  return Object.entries(props).map(([name, p]) => ({ name, in: where, required: where === 'path' || required.has(name), schema: p }));
}

const ERROR_RESPONSE = { $ref: '#/components/responses/Error' };

function operation(r: Route): Json {
  const security = r.access === 'open' ? [] : r.access === 'write' ? [{ bearer: [] }] : [{ bearer: [] }, {}];
  const responses: Json = {
    [String(r.success ?? 200)]: {
      description: r.produces === 'text/event-stream' ? 'An event stream' : 'OK',
      content: { [r.produces ?? 'application/json']: { schema: r.produces === 'text/event-stream' ? { type: 'string' } : {} } },
    },
    400: ERROR_RESPONSE,
    401: ERROR_RESPONSE,
    ...(r.access === 'write' ? { 403: ERROR_RESPONSE } : {}),
    ...(r.path.includes('{group}') || r.path === '/api/v1/status' ? { 404: ERROR_RESPONSE } : {}),
    ...(r.body !== undefined ? { 413: ERROR_RESPONSE, 415: ERROR_RESPONSE } : {}),
    ...(r.special === 'stream' ? { 503: ERROR_RESPONSE } : {}),
  };
  return {
    operationId: r.operationId,
    summary: r.summary,
    tags: [r.path.startsWith('/api/v1/groups') ? 'groups' : r.path === '/openapi.json' ? 'meta' : 'fleet'],
    'x-access': r.access,
    security,
    parameters: [...parameters(r.params, 'path'), ...parameters(r.query, 'query')],
    ...(r.body === undefined ? {} : { requestBody: { required: true, content: { 'application/json': { schema: jsonSchema(r.body) } } } }),
    responses,
  };
}

/** The whole document. */
export function openApiDocument(): Json {
  const paths: Record<string, Json> = {};
  for (const r of ROUTES) {
    const p = (paths[r.path] ??= {});
    p[r.method.toLowerCase()] = operation(r);
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'autoscaler API',
      version: version(),
      description: 'The admin API of the autoscaler monitor server: everything `autoscaler` (the CLI) does. '
        + 'JSON in and out. Writes need a bearer token with role write; reads need one unless the listener is on loopback (MONITOR_API_READ). '
        + 'Errors are {"error": message, "code", "fields": [{"path", "message"}]}.',
      license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
    },
    paths,
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'A token from MONITOR_API_TOKENS_FILE (NAME ROLE SECRET per line)' } },
      schemas: {
        Error: {
          type: 'object',
          required: ['error', 'code'],
          properties: {
            error: { type: 'string', description: 'What is wrong, and how to fix it' },
            code: { type: 'string', enum: ['invalid', 'not_found', 'unauthorized', 'forbidden', 'too_large', 'unsupported', 'method', 'unavailable', 'internal'] },
            fields: { type: 'array', items: { type: 'object', required: ['path', 'message'], properties: { path: { type: 'string' }, message: { type: 'string' } } } },
          },
        },
      },
      responses: {
        Error: { description: 'Refused, with the fields at fault', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } },
      },
    },
  };
}
