// Original file: proto/monitor/v1/monitor.proto


export interface RegisterRequest {
  'instance_id'?: (string);
  'group_id'?: (string);
  'agent_version'?: (string);
  'address'?: (string);
}

export interface RegisterRequest__Output {
  'instance_id': (string);
  'group_id': (string);
  'agent_version': (string);
  'address': (string);
}
