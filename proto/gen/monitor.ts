import type * as grpc from '@grpc/grpc-js';
import type { MessageTypeDefinition } from '@grpc/proto-loader';

import type { DeregisterRequest as _monitor_v1_DeregisterRequest, DeregisterRequest__Output as _monitor_v1_DeregisterRequest__Output } from './monitor/v1/DeregisterRequest.js';
import type { DeregisterResponse as _monitor_v1_DeregisterResponse, DeregisterResponse__Output as _monitor_v1_DeregisterResponse__Output } from './monitor/v1/DeregisterResponse.js';
import type { GroupView as _monitor_v1_GroupView, GroupView__Output as _monitor_v1_GroupView__Output } from './monitor/v1/GroupView.js';
import type { Heartbeat as _monitor_v1_Heartbeat, Heartbeat__Output as _monitor_v1_Heartbeat__Output } from './monitor/v1/Heartbeat.js';
import type { HeartbeatAck as _monitor_v1_HeartbeatAck, HeartbeatAck__Output as _monitor_v1_HeartbeatAck__Output } from './monitor/v1/HeartbeatAck.js';
import type { MonitorClient as _monitor_v1_MonitorClient, MonitorDefinition as _monitor_v1_MonitorDefinition } from './monitor/v1/Monitor.js';
import type { RegisterRequest as _monitor_v1_RegisterRequest, RegisterRequest__Output as _monitor_v1_RegisterRequest__Output } from './monitor/v1/RegisterRequest.js';
import type { RegisterResponse as _monitor_v1_RegisterResponse, RegisterResponse__Output as _monitor_v1_RegisterResponse__Output } from './monitor/v1/RegisterResponse.js';

type SubtypeConstructor<Constructor extends new (...args: any) => any, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  monitor: {
    v1: {
      DeregisterRequest: MessageTypeDefinition<_monitor_v1_DeregisterRequest, _monitor_v1_DeregisterRequest__Output>
      DeregisterResponse: MessageTypeDefinition<_monitor_v1_DeregisterResponse, _monitor_v1_DeregisterResponse__Output>
      GroupView: MessageTypeDefinition<_monitor_v1_GroupView, _monitor_v1_GroupView__Output>
      Heartbeat: MessageTypeDefinition<_monitor_v1_Heartbeat, _monitor_v1_Heartbeat__Output>
      HeartbeatAck: MessageTypeDefinition<_monitor_v1_HeartbeatAck, _monitor_v1_HeartbeatAck__Output>
      Monitor: SubtypeConstructor<typeof grpc.Client, _monitor_v1_MonitorClient> & { service: _monitor_v1_MonitorDefinition }
      RegisterRequest: MessageTypeDefinition<_monitor_v1_RegisterRequest, _monitor_v1_RegisterRequest__Output>
      RegisterResponse: MessageTypeDefinition<_monitor_v1_RegisterResponse, _monitor_v1_RegisterResponse__Output>
    }
  }
}

