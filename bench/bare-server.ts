/**
 * The reference for bench/fleet.ts: a bare grpc-js server with the monitor's proto, the same
 * server options and the same TLS (monitor-server/tls.ts ServerTls from MONITOR_TLS_CERT,
 * MONITOR_TLS_KEY, MONITOR_TLS_CLIENT_CA), that only counts heartbeats and acks each stream's
 * highest seq every 200 ms (the monitor's flush interval). No store, no validation, no liveness:
 * what the monitor server costs above it is what its own work costs.
 *
 * Started by bench/fleet.ts with an IPC channel; sends `{ type: 'listening', port }` and exits
 * when the channel closes. Standalone (`node dist/bench/bare-server.js`) it prints the port.
 */
import * as grpc from '@grpc/grpc-js';
import { randomUUID } from 'node:crypto';
import { DEFAULT_FLUSH_INTERVAL_MS, DEFAULT_HEARTBEAT_INTERVAL_MS, DEFAULT_MAX_MESSAGE_BYTES } from '../config/monitor-server.js';
import { SESSION_METADATA_KEY, monitorProto, type HeartbeatAck, type Heartbeat__Output, type MonitorHandlers } from '../lib/proto.js';
import { ServerTls } from '../monitor-server/tls.js';
import type { FromBare } from './fleet-common.js';

interface Stream {
  readonly call: grpc.ServerDuplexStream<Heartbeat__Output, HeartbeatAck>;
  readonly instanceId: string;
  highest: number;
  acked: number;
}

function main(): Promise<void> {
  const env = process.env;
  const cert = env.MONITOR_TLS_CERT ?? '';
  const tls = cert === '' ? undefined
    : new ServerTls({ certFile: cert, keyFile: env.MONITOR_TLS_KEY ?? '', clientCaFile: env.MONITOR_TLS_CLIENT_CA || undefined }, () => Date.now());
  const sessions = new Map<string, string>(); // session id → instance id
  const lastSeq = new Map<string, number>(); // instance id → highest seq seen
  const streams = new Set<Stream>();
  let heartbeats = 0;

  const handlers: MonitorHandlers = {
    Register: (call, callback) => {
      const id = randomUUID();
      sessions.set(id, call.request.instance_id);
      callback(null, { session_id: id, heartbeat_interval_ms: DEFAULT_HEARTBEAT_INTERVAL_MS, last_seq: lastSeq.get(call.request.instance_id) ?? 0 });
    },
    Heartbeats: (call) => {
      const sid = call.metadata.get(SESSION_METADATA_KEY)[0];
      const instanceId = typeof sid === 'string' ? sessions.get(sid) : undefined;
      if (instanceId === undefined) {
        call.emit('error', { code: grpc.status.FAILED_PRECONDITION, details: 'unknown session' });
        return;
      }
      const s: Stream = { call, instanceId, highest: lastSeq.get(instanceId) ?? 0, acked: 0 };
      streams.add(s);
      call.on('data', (hb: Heartbeat__Output) => {
        heartbeats++;
        const seq = Number(hb.seq);
        if (seq > s.highest) s.highest = seq;
      });
      const done = () => {
        streams.delete(s);
        lastSeq.set(instanceId, Math.max(lastSeq.get(instanceId) ?? 0, s.highest));
      };
      call.on('end', () => { done(); call.end(); });
      call.on('error', done);
      call.on('cancelled', done);
    },
    Deregister: (call, callback) => {
      sessions.delete(call.request.session_id);
      callback(null, {});
    },
  };

  // The options monitor-server/server.ts gives its server.
  const server = new grpc.Server({
    'grpc.max_receive_message_length': DEFAULT_MAX_MESSAGE_BYTES,
    'grpc.max_send_message_length': DEFAULT_MAX_MESSAGE_BYTES,
    'grpc.keepalive_time_ms': 10_000,
    'grpc.keepalive_timeout_ms': 5_000,
    'grpc.http2.min_ping_interval_without_data_ms': 5_000,
    'grpc.keepalive_permit_without_calls': 1,
  });
  server.addService(monitorProto().monitor.v1.Monitor.service, handlers);

  setInterval(() => {
    const now = Date.now();
    // The same ack shape as the monitor's (a group view included), so both send the same bytes.
    const group = { live_instances: streams.size, demand_percent: -1, as_of_ms: now };
    for (const s of streams) {
      if (s.highest <= s.acked) continue;
      s.acked = s.highest;
      s.call.write({ persisted_seq: s.highest, rejected: 0, reject_reason: '', group });
    }
  }, DEFAULT_FLUSH_INTERVAL_MS);

  return new Promise((resolve, reject) => {
    server.bindAsync(`127.0.0.1:${env.BARE_PORT ?? '0'}`, tls?.credentials() ?? grpc.ServerCredentials.createInsecure(), (err, port) => {
      if (err) return reject(err);
      if (process.send !== undefined) {
        process.send({ type: 'listening', port } satisfies FromBare);
        process.on('disconnect', () => process.exit(0));
      } else {
        process.stdout.write(`bare server listening on 127.0.0.1:${port} (${tls === undefined ? 'plaintext' : 'tls'})\n`);
        setInterval(() => process.stdout.write(`${heartbeats} heartbeats, ${streams.size} streams\n`), 10_000);
      }
      resolve();
    });
  });
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
