// Original file: proto/monitor/v1/monitor.proto

import type { GroupView as _monitor_v1_GroupView, GroupView__Output as _monitor_v1_GroupView__Output } from '../../monitor/v1/GroupView.js';
import type { Long } from '@grpc/proto-loader';

export interface HeartbeatAck {
  'persisted_seq'?: (number | string | Long);
  'rejected'?: (number);
  'reject_reason'?: (string);
  'group'?: (_monitor_v1_GroupView | null);
}

export interface HeartbeatAck__Output {
  'persisted_seq': (string);
  'rejected': (number);
  'reject_reason': (string);
  'group': (_monitor_v1_GroupView__Output | null);
}
