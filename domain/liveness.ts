/**
 * Phi accrual defaults, shared by the failure detector (monitor-server/liveness.ts) and the
 * monitor server's config. Akka's: threshold 8, acceptable heartbeat pause 3 s, minimum standard
 * deviation 100 ms; Akka keeps 1,000 samples, we keep 200 (bounded memory at 10,000 agents).
 */
export const PHI_DEFAULTS = Object.freeze({ phiThreshold: 8, acceptablePauseMs: 3_000, minStdDevMs: 100, maxSamples: 200, heartbeatIntervalMs: 1_000 });
