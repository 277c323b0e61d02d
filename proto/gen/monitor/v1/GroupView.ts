// Original file: proto/monitor/v1/monitor.proto

import type { Long } from '@grpc/proto-loader';

export interface GroupView {
  'live_instances'?: (number);
  'demand_percent'?: (number | string);
  'as_of_ms'?: (number | string | Long);
}

export interface GroupView__Output {
  'live_instances': (number);
  'demand_percent': (number);
  'as_of_ms': (string);
}
