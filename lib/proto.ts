import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { join } from 'node:path';
import type { ProtoGrpcType } from '../proto/gen/monitor.js';
import { packageRoot } from './paths.js';

export type { MonitorClient, MonitorHandlers } from '../proto/gen/monitor/v1/Monitor.js';
export type { Heartbeat, Heartbeat__Output } from '../proto/gen/monitor/v1/Heartbeat.js';
export type { HeartbeatAck, HeartbeatAck__Output } from '../proto/gen/monitor/v1/HeartbeatAck.js';
export type { RegisterRequest__Output } from '../proto/gen/monitor/v1/RegisterRequest.js';
export type { RegisterResponse__Output } from '../proto/gen/monitor/v1/RegisterResponse.js';
export type { GroupView__Output } from '../proto/gen/monitor/v1/GroupView.js';

/** Metadata key carrying the session id on the Heartbeats stream. */
export const SESSION_METADATA_KEY = 'session-id';

let cached: ProtoGrpcType | undefined;

/** The monitor.v1 package, loaded once with the same options as `npm run gen:proto`. */
export function monitorProto(): ProtoGrpcType {
  if (cached === undefined) {
    const def = protoLoader.loadSync(join(packageRoot(), 'proto', 'monitor', 'v1', 'monitor.proto'), {
      keepCase: true,
      longs: String,
      enums: String,
      defaults: true,
      oneofs: true,
    });
    cached = grpc.loadPackageDefinition(def) as unknown as ProtoGrpcType;
  }
  return cached;
}
