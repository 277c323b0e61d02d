// Original file: proto/monitor/v1/monitor.proto


export interface DeregisterRequest {
  'session_id'?: (string);
  'instance_id'?: (string);
  'reason'?: (string);
}

export interface DeregisterRequest__Output {
  'session_id': (string);
  'instance_id': (string);
  'reason': (string);
}
