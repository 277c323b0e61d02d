/**
 * The gRPC listener's connection limits (lib/grpc-server.ts GrpcServerOptions; bench/bare-server.ts
 * uses the same): PING a connection silent for 10 s and close it when the PING is not answered in
 * 5 s; close a connection with no call for 2 minutes (agents always hold a stream); 100 calls per
 * connection (an agent needs two; RFC 9113 §6.5.2 recommends no fewer than 100); 16 KiB of
 * headers (identity documents ride in them); 20 s for a TLS handshake. Wall-clock timers: the
 * transport does not follow the injected clock.
 */
export const MONITOR_GRPC_LIMITS = {
  keepaliveTimeMs: 10_000,
  keepaliveTimeoutMs: 5_000,
  idleConnectionMs: 120_000,
  maxConcurrentStreams: 100,
  maxHeaderListBytes: 16_384,
  handshakeTimeoutMs: 20_000,
} as const;
