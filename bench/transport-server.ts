/**
 * Server child of bench/transport.ts: `node dist/bench/transport-server.js --transport T [--tls JSON]`.
 * Listens on 127.0.0.1:0 with one transport, checks the token once per session (gRPC stream,
 * WebSocket) or once per request (unary, HTTP/1.1), parses each heartbeat, counts it and acks it.
 * Nothing is stored, so what the parent measures from /proc is the transport's cost.
 *
 * Control (JSON lines): prints `{"event":"listening","port":N}`; answers `count` on stdin with
 * the counters; exits when stdin closes (the parent ended or died) or on SIGTERM.
 */
import * as grpc from '@grpc/grpc-js';
import * as http from 'node:http';
import * as https from 'node:https';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { SESSION_METADATA_KEY, monitorProto, type Heartbeat__Output, type HeartbeatAck, type MonitorHandlers } from '../lib/proto.js';
import {
  BENCH_TOKEN, GRPC_SERVER_OPTIONS, HTTP_PATH, INSTANCE_HEADER, KEEPALIVE_MS, TRANSPORTS, WS_PATH, arg, onLines, readTls, say, unaryMonitor,
  type JsonAck, type JsonHeartbeat, type TlsFiles, type TransportName, type UnaryMonitorHandlers,
} from './transport-common.js';

const BEARER = `Bearer ${BENCH_TOKEN}`;
/** Largest body or message accepted, bytes (a heartbeat is < 200). */
const MAX_BODY_BYTES = 64 * 1024;

const counters = { heartbeats: 0, invalid: 0 };
/** Instances seen: the group view's live count. */
const instances = new Set<string>();

function groupView(): JsonAck['group'] {
  return { live_instances: instances.size, demand_percent: -1, as_of_ms: Date.now() };
}

function grpcAck(seq: string): HeartbeatAck {
  return { persisted_seq: seq, rejected: 0, reject_reason: '', group: groupView() };
}

function jsonAck(seq: number): string {
  const ack: JsonAck = { persisted_seq: seq, rejected: 0, reject_reason: '', group: groupView() };
  return JSON.stringify(ack);
}

/** The minimal validation every transport does: a positive sequence number and finite metrics. */
function valid(seq: number, cpu: unknown, mem: unknown): boolean {
  return Number.isSafeInteger(seq) && seq > 0 && typeof cpu === 'number' && Number.isFinite(cpu) && typeof mem === 'number' && Number.isFinite(mem);
}

function parseJson(text: string): JsonHeartbeat | undefined {
  try {
    const v = JSON.parse(text) as Partial<JsonHeartbeat> | null;
    if (v === null || typeof v !== 'object' || typeof v.seq !== 'number' || !valid(v.seq, v.cpu_percent, v.mem_percent)) return undefined;
    return v as JsonHeartbeat;
  } catch {
    return undefined;
  }
}

function grpcStreamHandlers(): MonitorHandlers {
  const unimplemented = (_call: unknown, cb: grpc.sendUnaryData<never>) => cb({ code: grpc.status.UNIMPLEMENTED, details: 'bench server: Heartbeats only' });
  return {
    Register: unimplemented,
    Deregister: unimplemented,
    Heartbeats: (call) => {
      const session = call.metadata.get(SESSION_METADATA_KEY)[0];
      if (call.metadata.get('authorization')[0] !== BEARER || typeof session !== 'string') {
        call.emit('error', { code: grpc.status.UNAUTHENTICATED, details: 'bad token or no session' });
        return;
      }
      instances.add(session);
      call.on('data', (hb: Heartbeat__Output) => {
        if (!valid(Number(hb.seq), hb.cpu_percent, hb.mem_percent)) { counters.invalid++; return; }
        counters.heartbeats++;
        call.write(grpcAck(hb.seq));
      });
      call.on('end', () => call.end());
      call.on('error', () => {});
    },
  };
}

function grpcUnaryHandlers(): UnaryMonitorHandlers {
  return {
    Beat: (call, cb) => {
      if (call.metadata.get('authorization')[0] !== BEARER) return cb({ code: grpc.status.UNAUTHENTICATED, details: 'bad token' });
      const hb = call.request;
      if (hb.instance_id === '' || !valid(Number(hb.seq), hb.cpu_percent, hb.mem_percent)) {
        counters.invalid++;
        return cb({ code: grpc.status.INVALID_ARGUMENT, details: 'bad heartbeat' });
      }
      instances.add(hb.instance_id);
      counters.heartbeats++;
      cb(null, grpcAck(hb.seq));
    },
  };
}

async function startGrpc(transport: 'grpc-stream' | 'grpc-unary', tls: TlsFiles | undefined): Promise<number> {
  const server = new grpc.Server(GRPC_SERVER_OPTIONS);
  if (transport === 'grpc-stream') server.addService(monitorProto().monitor.v1.Monitor.service, grpcStreamHandlers());
  else server.addService(unaryMonitor().service, grpcUnaryHandlers());
  const creds = tls === undefined ? grpc.ServerCredentials.createInsecure() : (() => {
    const t = readTls(tls);
    return grpc.ServerCredentials.createSsl(null, [{ private_key: t.key, cert_chain: t.cert }], false);
  })();
  return new Promise((resolve, reject) => server.bindAsync('127.0.0.1:0', creds, (err, port) => (err ? reject(err) : resolve(port))));
}

function httpServer(tls: TlsFiles | undefined, handler: http.RequestListener): http.Server {
  if (tls === undefined) return http.createServer(handler);
  const t = readTls(tls);
  return https.createServer({ key: t.key, cert: t.cert }, handler);
}

function listen(server: http.Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const addr = server.address();
      resolve(typeof addr === 'object' && addr !== null ? addr.port : 0);
    });
  });
}

function startHttp1(tls: TlsFiles | undefined): Promise<number> {
  const server = httpServer(tls, (req, res) => {
    if (req.method !== 'POST' || req.url !== HTTP_PATH) { res.writeHead(404).end(); return; }
    if (req.headers.authorization !== BEARER) { res.writeHead(401).end(); return; }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => { size += c.length; if (size <= MAX_BODY_BYTES) chunks.push(c); });
    req.on('end', () => {
      const hb = size <= MAX_BODY_BYTES ? parseJson(Buffer.concat(chunks).toString('utf8')) : undefined;
      if (hb === undefined || typeof hb.instance_id !== 'string' || hb.instance_id === '') {
        counters.invalid++;
        res.writeHead(400).end();
        return;
      }
      instances.add(hb.instance_id);
      counters.heartbeats++;
      const body = jsonAck(hb.seq);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
    });
  });
  return listen(server);
}

function startWs(tls: TlsFiles | undefined): Promise<number> {
  const server = httpServer(tls, (_req, res) => { res.writeHead(426).end(); });
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: MAX_BODY_BYTES });
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    const instance = req.headers[INSTANCE_HEADER];
    if (req.url !== WS_PATH || req.headers.authorization !== BEARER || typeof instance !== 'string' || instance === '') {
      socket.end('HTTP/1.1 401 Unauthorized\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      instances.add(instance);
      ws.on('message', (data: RawData, isBinary: boolean) => {
        const hb = isBinary ? undefined : parseJson(data.toString());
        if (hb === undefined) { counters.invalid++; return; }
        counters.heartbeats++;
        ws.send(jsonAck(hb.seq));
      });
      ws.on('error', () => {});
    });
  });
  // The gRPC transports ping every 10 s (keepalive); a WebSocket server needs its own pings to
  // notice a dead peer, so it pays for them too.
  setInterval(() => { for (const ws of wss.clients) ws.ping(); }, KEEPALIVE_MS).unref();
  return listen(server);
}

function start(transport: TransportName, tls: TlsFiles | undefined): Promise<number> {
  switch (transport) {
    case 'grpc-stream':
    case 'grpc-unary':
      return startGrpc(transport, tls);
    case 'http1':
      return startHttp1(tls);
    case 'ws':
      return startWs(tls);
  }
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const transport = arg(argv, 'transport') as TransportName | undefined;
  if (transport === undefined || !TRANSPORTS.includes(transport)) throw new Error(`--transport must be one of ${TRANSPORTS.join(', ')}`);
  const tlsArg = arg(argv, 'tls');
  const tls = tlsArg === undefined ? undefined : (JSON.parse(tlsArg) as TlsFiles);
  const port = await start(transport, tls);
  onLines(process.stdin, (line) => {
    if (line === 'count') say({ event: 'count', ...counters, instances: instances.size });
  }, () => process.exit(0));
  process.on('SIGTERM', () => process.exit(0));
  say({ event: 'listening', port });
}

main().catch((err: unknown) => {
  process.stderr.write(`transport-server: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
