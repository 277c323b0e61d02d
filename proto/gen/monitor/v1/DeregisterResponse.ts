// Original file: proto/monitor/v1/monitor.proto


export interface DeregisterResponse {
}

export interface DeregisterResponse__Output {
}
