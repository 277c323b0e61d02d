// Original file: proto/monitor/v1/monitor.proto

import type { Long } from '@grpc/proto-loader';

export interface Heartbeat {
  'seq'?: (number | string | Long);
  'sample_time_ms'?: (number | string | Long);
  'cpu_percent'?: (number | string);
  'mem_percent'?: (number | string);
}

export interface Heartbeat__Output {
  'seq': (string);
  'sample_time_ms': (string);
  'cpu_percent': (number);
  'mem_percent': (number);
}
