/**
 * Plumbing shared by the loopback fakes of EC2 and Auto Scaling: an HTTP server on 127.0.0.1 that
 * speaks the AWS query protocols (a form-encoded POST with `Action=…`, an XML answer), a tiny XML
 * writer, both services' error shapes, and readers for the query protocols' list parameters.
 * The real SDK clients talk to it through their endpoint override. Test-only code.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** An answer to one call: HTTP status and an XML body. */
export interface QueryReply {
  readonly status: number;
  readonly body: string;
}

/** Handles one call; throw a QueryFault for an AWS error. */
export type QueryHandler = (action: string, params: URLSearchParams, req: IncomingMessage) => QueryReply | Promise<QueryReply>;

/** An AWS error to answer with: code (e.g. "RequestLimitExceeded"), message, HTTP status. */
export class QueryFault extends Error {
  override name = 'QueryFault';
  constructor(readonly code: string, message: string, readonly status = 400) {
    super(message);
  }
}

export interface QueryServer {
  /** e.g. "http://127.0.0.1:40123", for the SDK's `endpoint`. */
  readonly endpoint: string;
  readonly port: number;
  /** Every call received, in order: its Action and parameters. */
  readonly calls: { readonly action: string; readonly params: URLSearchParams }[];
  close(): Promise<void>;
}

let requestCounter = 0;
/** A request id for responses and errors. */
export function requestId(): string {
  requestCounter++;
  return `00000000-0000-4000-8000-${requestCounter.toString(16).padStart(12, '0')}`;
}

/** Start a query-protocol server on 127.0.0.1, port chosen by the OS. */
export async function startQueryServer(handler: QueryHandler, errorShape: 'ec2' | 'query'): Promise<QueryServer> {
  const calls: { action: string; params: URLSearchParams }[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const params = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
      const action = params.get('Action') ?? '';
      calls.push({ action, params });
      Promise.resolve()
        .then(() => handler(action, params, req))
        .catch((err: unknown) => {
          const fault = err instanceof QueryFault ? err : new QueryFault('InternalError', String(err), 500);
          return { status: fault.status, body: errorShape === 'ec2' ? ec2ErrorBody(fault) : queryErrorBody(fault) };
        })
        .then((reply) => {
          res.writeHead(reply.status, { 'content-type': 'text/xml;charset=UTF-8' });
          res.end(reply.body);
        }, () => res.destroy());
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    calls,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

/** EC2's error document. */
function ec2ErrorBody(f: QueryFault): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>${esc(f.code)}</Code><Message>${esc(f.message)}</Message></Error></Errors><RequestID>${requestId()}</RequestID></Response>`;
}

/** The awsQuery error document (Auto Scaling, IAM, STS…). */
function queryErrorBody(f: QueryFault): string {
  const type = f.status >= 500 ? 'Receiver' : 'Sender';
  return `<?xml version="1.0" encoding="UTF-8"?>\n<ErrorResponse><Error><Type>${type}</Type><Code>${esc(f.code)}</Code><Message>${esc(f.message)}</Message></Error><RequestId>${requestId()}</RequestId></ErrorResponse>`;
}

/** Escape text for XML. */
export function esc(v: string | number | boolean): string {
  return String(v).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** An XML value: text, a nested element map, a list of items (each wrapped in `item`/`member`), or nothing. */
export type XmlValue = string | number | boolean | undefined | null | XmlNode | readonly XmlValue[];
export interface XmlNode { readonly [tag: string]: XmlValue }

/** Write elements; arrays become repeated `itemTag` children (`item` for EC2, `member` for awsQuery). */
export function toXml(node: XmlNode, itemTag: 'item' | 'member'): string {
  let out = '';
  for (const [tag, value] of Object.entries(node)) out += element(tag, value, itemTag);
  return out;
}

function element(tag: string, value: XmlValue, itemTag: 'item' | 'member'): string {
  if (value === undefined || value === null) return '';
  if (Array.isArray(value)) return `<${tag}>${value.map((v) => element(itemTag, v as XmlValue, itemTag)).join('')}</${tag}>`;
  if (typeof value === 'object') return `<${tag}>${toXml(value as XmlNode, itemTag)}</${tag}>`;
  return `<${tag}>${esc(value as string | number | boolean)}</${tag}>`;
}

/** An EC2 answer: `<ActionResponse xmlns=…><requestId/>…</ActionResponse>`. */
export function ec2Reply(action: string, body: XmlNode): QueryReply {
  return {
    status: 200,
    body: `<?xml version="1.0" encoding="UTF-8"?>\n<${action}Response xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>${requestId()}</requestId>${toXml(body, 'item')}</${action}Response>`,
  };
}

/** An awsQuery answer: `<ActionResponse xmlns=…><ActionResult>…</ActionResult><ResponseMetadata/>`. */
export function queryReply(action: string, namespace: string, result: XmlNode | undefined): QueryReply {
  const inner = result === undefined ? '' : `<${action}Result>${toXml(result, 'member')}</${action}Result>`;
  return {
    status: 200,
    body: `<?xml version="1.0" encoding="UTF-8"?>\n<${action}Response xmlns="${namespace}">${inner}<ResponseMetadata><RequestId>${requestId()}</RequestId></ResponseMetadata></${action}Response>`,
  };
}

/**
 * A list parameter: EC2 sends `InstanceId.1=…&InstanceId.2=…`, awsQuery `InstanceIds.member.1=…`.
 * Pass the prefix up to the index, e.g. "InstanceId" or "InstanceIds.member".
 */
export function listParam(params: URLSearchParams, prefix: string): string[] {
  const out: string[] = [];
  for (let i = 1; ; i++) {
    const v = params.get(`${prefix}.${i}`);
    if (v === null) return out;
    out.push(v);
  }
}

/** Structured list parameters, e.g. `Filter.1.Name` + `Filter.1.Value.1…` → [{ Name, Value: [...] }]. */
export function structList(params: URLSearchParams, prefix: string): Record<string, string>[] {
  const out: Record<string, string>[] = [];
  for (let i = 1; ; i++) {
    const head = `${prefix}.${i}.`;
    const entry: Record<string, string> = {};
    for (const [k, v] of params) if (k.startsWith(head)) entry[k.slice(head.length)] = v;
    if (Object.keys(entry).length === 0) return out;
    out.push(entry);
  }
}
