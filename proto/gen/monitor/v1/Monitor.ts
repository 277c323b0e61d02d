// Original file: proto/monitor/v1/monitor.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { DeregisterRequest as _monitor_v1_DeregisterRequest, DeregisterRequest__Output as _monitor_v1_DeregisterRequest__Output } from '../../monitor/v1/DeregisterRequest.js';
import type { DeregisterResponse as _monitor_v1_DeregisterResponse, DeregisterResponse__Output as _monitor_v1_DeregisterResponse__Output } from '../../monitor/v1/DeregisterResponse.js';
import type { Heartbeat as _monitor_v1_Heartbeat, Heartbeat__Output as _monitor_v1_Heartbeat__Output } from '../../monitor/v1/Heartbeat.js';
import type { HeartbeatAck as _monitor_v1_HeartbeatAck, HeartbeatAck__Output as _monitor_v1_HeartbeatAck__Output } from '../../monitor/v1/HeartbeatAck.js';
import type { RegisterRequest as _monitor_v1_RegisterRequest, RegisterRequest__Output as _monitor_v1_RegisterRequest__Output } from '../../monitor/v1/RegisterRequest.js';
import type { RegisterResponse as _monitor_v1_RegisterResponse, RegisterResponse__Output as _monitor_v1_RegisterResponse__Output } from '../../monitor/v1/RegisterResponse.js';

export interface MonitorClient extends grpc.Client {
  Deregister(argument: _monitor_v1_DeregisterRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_monitor_v1_DeregisterResponse__Output>): grpc.ClientUnaryCall;
  Deregister(argument: _monitor_v1_DeregisterRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_monitor_v1_DeregisterResponse__Output>): grpc.ClientUnaryCall;
  Deregister(argument: _monitor_v1_DeregisterRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_monitor_v1_DeregisterResponse__Output>): grpc.ClientUnaryCall;
  Deregister(argument: _monitor_v1_DeregisterRequest, callback: grpc.requestCallback<_monitor_v1_DeregisterResponse__Output>): grpc.ClientUnaryCall;
  deregister(argument: _monitor_v1_DeregisterRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_monitor_v1_DeregisterResponse__Output>): grpc.ClientUnaryCall;
  deregister(argument: _monitor_v1_DeregisterRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_monitor_v1_DeregisterResponse__Output>): grpc.ClientUnaryCall;
  deregister(argument: _monitor_v1_DeregisterRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_monitor_v1_DeregisterResponse__Output>): grpc.ClientUnaryCall;
  deregister(argument: _monitor_v1_DeregisterRequest, callback: grpc.requestCallback<_monitor_v1_DeregisterResponse__Output>): grpc.ClientUnaryCall;
  
  Heartbeats(metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<_monitor_v1_Heartbeat, _monitor_v1_HeartbeatAck__Output>;
  Heartbeats(options?: grpc.CallOptions): grpc.ClientDuplexStream<_monitor_v1_Heartbeat, _monitor_v1_HeartbeatAck__Output>;
  heartbeats(metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<_monitor_v1_Heartbeat, _monitor_v1_HeartbeatAck__Output>;
  heartbeats(options?: grpc.CallOptions): grpc.ClientDuplexStream<_monitor_v1_Heartbeat, _monitor_v1_HeartbeatAck__Output>;
  
  Register(argument: _monitor_v1_RegisterRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_monitor_v1_RegisterResponse__Output>): grpc.ClientUnaryCall;
  Register(argument: _monitor_v1_RegisterRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_monitor_v1_RegisterResponse__Output>): grpc.ClientUnaryCall;
  Register(argument: _monitor_v1_RegisterRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_monitor_v1_RegisterResponse__Output>): grpc.ClientUnaryCall;
  Register(argument: _monitor_v1_RegisterRequest, callback: grpc.requestCallback<_monitor_v1_RegisterResponse__Output>): grpc.ClientUnaryCall;
  register(argument: _monitor_v1_RegisterRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_monitor_v1_RegisterResponse__Output>): grpc.ClientUnaryCall;
  register(argument: _monitor_v1_RegisterRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_monitor_v1_RegisterResponse__Output>): grpc.ClientUnaryCall;
  register(argument: _monitor_v1_RegisterRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_monitor_v1_RegisterResponse__Output>): grpc.ClientUnaryCall;
  register(argument: _monitor_v1_RegisterRequest, callback: grpc.requestCallback<_monitor_v1_RegisterResponse__Output>): grpc.ClientUnaryCall;
  
}

export interface MonitorHandlers extends grpc.UntypedServiceImplementation {
  Deregister: grpc.handleUnaryCall<_monitor_v1_DeregisterRequest__Output, _monitor_v1_DeregisterResponse>;
  
  Heartbeats: grpc.handleBidiStreamingCall<_monitor_v1_Heartbeat__Output, _monitor_v1_HeartbeatAck>;
  
  Register: grpc.handleUnaryCall<_monitor_v1_RegisterRequest__Output, _monitor_v1_RegisterResponse>;
  
}

export interface MonitorDefinition extends grpc.ServiceDefinition {
  Deregister: MethodDefinition<_monitor_v1_DeregisterRequest, _monitor_v1_DeregisterResponse, _monitor_v1_DeregisterRequest__Output, _monitor_v1_DeregisterResponse__Output>
  Heartbeats: MethodDefinition<_monitor_v1_Heartbeat, _monitor_v1_HeartbeatAck, _monitor_v1_Heartbeat__Output, _monitor_v1_HeartbeatAck__Output>
  Register: MethodDefinition<_monitor_v1_RegisterRequest, _monitor_v1_RegisterResponse, _monitor_v1_RegisterRequest__Output, _monitor_v1_RegisterResponse__Output>
}
