// Original file: proto/monitor/v1/monitor.proto

import type { Long } from '@grpc/proto-loader';

export interface RegisterResponse {
  'session_id'?: (string);
  'heartbeat_interval_ms'?: (number);
  'last_seq'?: (number | string | Long);
}

export interface RegisterResponse__Output {
  'session_id': (string);
  'heartbeat_interval_ms': (number);
  'last_seq': (string);
}
