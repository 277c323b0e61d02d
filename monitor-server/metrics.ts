/**
 * The monitor server's Prometheus metrics (prom-client), on its own registry: heartbeats received,
 * stored and refused, each batched write's latency and size, agents by liveness state, sessions,
 * streams and the ingest queue, registrations and acks, and Node's default process metrics
 * (including event-loop lag). docs/metrics.md lists them with example queries.
 *
 * Nothing here is on the heartbeat path. Counts the server already keeps for /healthz (refused,
 * stored rows, pauses, coalesced acks) and the plain counters the pipeline bumps (received, acks)
 * are read when Prometheus scrapes, in `collect()` callbacks, so /healthz and /metrics agree and a
 * heartbeat costs no prom-client call. Only what happens once per batch (latency, size) or once
 * per Register is observed as it happens.
 */
import * as grpc from '@grpc/grpc-js';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { UnaryHandler } from '../lib/grpc-server.js';
import { LIVENESS_STATES, type LivenessState } from '../store/instances.js';
import { REFUSAL_REASONS, type RefusalCounts } from './refusals.js';

/** What a scrape reads from the server. Every function is called once per scrape and must be cheap. */
export interface MonitorMetricSources {
  /** Refused input by reason since start (the server's RefusalCounts). */
  readonly refused: () => Readonly<RefusalCounts>;
  /** Heartbeat messages read from streams since start, refused ones included. */
  readonly received: () => number;
  /** Rows committed by batched writes since start. */
  readonly stored: () => number;
  /** Batched writes that failed since start (their rows stay queued and are retried). */
  readonly writeFailures: () => number;
  /** True while the last batched write failed (/healthz answers 503). */
  readonly writeFailing: () => boolean;
  /** Acks handed to streams since start, and those merged into a pending one for a slow reader. */
  readonly acks: () => number;
  readonly acksCoalesced: () => number;
  /** Watched agents by liveness state; undefined when it cannot be read now (the series are left out). */
  readonly agents: () => Readonly<Record<LivenessState, number>> | undefined;
  /** Registered sessions, and those with an open Heartbeats stream. */
  readonly sessions: () => number;
  readonly streams: () => number;
  /** Sessions that expired without opening a stream, since start. */
  readonly sessionsExpired: () => number;
  /** Rows waiting to be written, and the queue's capacity, rows. */
  readonly queued: () => number;
  readonly queueCapacity: () => number;
  /** True while every stream is paused because the queue is full; how often that happened. */
  readonly paused: () => boolean;
  readonly pauses: () => number;
}

/** Outcomes of a Register call, by the status it was answered with. */
export const REGISTRATION_OUTCOMES = ['ok', 'refused', 'unavailable', 'error'] as const;
export type RegistrationOutcome = (typeof REGISTRATION_OUTCOMES)[number];

/** OK: registered; UNAVAILABLE: the store failed (the agent retries); INTERNAL: a contained throw; anything else: refused. */
export function registrationOutcome(code: number | undefined): RegistrationOutcome {
  if (code === undefined || code === grpc.status.OK) return 'ok';
  if (code === grpc.status.UNAVAILABLE) return 'unavailable';
  if (code === grpc.status.INTERNAL) return 'error';
  return 'refused';
}

/** Seconds to write one batch: SQLite commits take about a millisecond; the busy timeout is 5 s. */
const BATCH_SECONDS_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Rows in one batch: up to MONITOR_FLUSH_MAX_ROWS (default 1,000) at a time, more after a failed write. */
const BATCH_ROWS_BUCKETS = [1, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 50_000];

/** A counter that shows a monotonic total kept elsewhere: at each scrape it is raised by what the total grew. */
function mirrorCounter(name: string, help: string, registers: Registry[], read: () => number): Counter {
  let shown = 0;
  const c: Counter = new Counter({
    name, help, registers,
    collect: () => {
      const now = read();
      if (now > shown) c.inc(now - shown);
      shown = Math.max(shown, now);
    },
  });
  return c;
}

function scrapeGauge(name: string, help: string, registers: Registry[], read: () => number): Gauge {
  const g: Gauge = new Gauge({ name, help, registers, collect: () => g.set(read()) });
  return g;
}

export class MonitorMetrics {
  /** This server's registry (never prom-client's global one: tests run several servers in one process). */
  readonly registry = new Registry();
  private readonly batchSeconds: Histogram;
  private readonly batchRows: Histogram;
  private readonly registrations: Readonly<Record<RegistrationOutcome, { inc(): void }>>;

  constructor(sources: MonitorMetricSources) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'autoscaler_monitor_' });

    mirrorCounter('autoscaler_monitor_heartbeats_received_total', 'Heartbeat messages read from agent streams, refused ones included', registers, sources.received);
    mirrorCounter('autoscaler_monitor_heartbeats_stored_total', 'Heartbeat rows committed by batched writes', registers, sources.stored);
    const shownRefused: Partial<Record<string, number>> = {};
    const refused: Counter<'reason'> = new Counter({
      name: 'autoscaler_monitor_refused_total', help: 'Input refused, by reason (monitor-server/refusals.ts: heartbeat checks, rate limit, full queue, auth, Register, HTTP)',
      labelNames: ['reason'], registers,
      collect: () => {
        const counts = sources.refused();
        for (const reason of REFUSAL_REASONS) {
          const now = counts[reason];
          const before = shownRefused[reason] ?? 0;
          refused.inc({ reason }, Math.max(0, now - before));
          shownRefused[reason] = Math.max(before, now);
        }
      },
    });
    mirrorCounter('autoscaler_monitor_ingest_write_failures_total', 'Batched writes that failed (rows kept queued and retried)', registers, sources.writeFailures);
    scrapeGauge('autoscaler_monitor_ingest_write_failing', '1 while the last batched write failed (/healthz answers 503)', registers, () => (sources.writeFailing() ? 1 : 0));
    this.batchSeconds = new Histogram({ name: 'autoscaler_monitor_ingest_batch_seconds', help: 'Time to write and commit one batch of heartbeat rows', registers, buckets: BATCH_SECONDS_BUCKETS });
    this.batchRows = new Histogram({ name: 'autoscaler_monitor_ingest_batch_rows', help: 'Rows in one committed batch', registers, buckets: BATCH_ROWS_BUCKETS });
    scrapeGauge('autoscaler_monitor_ingest_queued_rows', 'Heartbeat rows waiting to be written', registers, sources.queued);
    scrapeGauge('autoscaler_monitor_ingest_queue_capacity_rows', 'Rows the ingest queue holds before it pauses every stream (MONITOR_MAX_QUEUED_ROWS)', registers, sources.queueCapacity);
    scrapeGauge('autoscaler_monitor_ingest_paused', '1 while every heartbeat stream is paused because the ingest queue is full', registers, () => (sources.paused() ? 1 : 0));
    mirrorCounter('autoscaler_monitor_ingest_pauses_total', 'Times every heartbeat stream was paused because the ingest queue filled', registers, sources.pauses);

    const agents: Gauge<'state'> = new Gauge({
      name: 'autoscaler_monitor_agents', help: 'Instances the failure detector watches, by the liveness state last stored (running, suspect, dead)', labelNames: ['state'], registers,
      collect: () => {
        const counts = sources.agents();
        if (counts === undefined) {
          agents.reset();
          return;
        }
        for (const state of LIVENESS_STATES) agents.set({ state }, counts[state]);
      },
    });
    scrapeGauge('autoscaler_monitor_sessions', 'Registered sessions', registers, sources.sessions);
    scrapeGauge('autoscaler_monitor_streams', 'Sessions with an open Heartbeats stream', registers, sources.streams);
    mirrorCounter('autoscaler_monitor_sessions_expired_total', 'Sessions that expired without opening a Heartbeats stream', registers, sources.sessionsExpired);

    const registrations = new Counter({ name: 'autoscaler_monitor_registrations_total', help: 'Register calls by outcome (ok, refused, unavailable: store failed, error: contained throw)', labelNames: ['outcome'], registers });
    this.registrations = Object.fromEntries(REGISTRATION_OUTCOMES.map((o) => {
      registrations.inc({ outcome: o }, 0);
      return [o, registrations.labels(o)];
    })) as Record<RegistrationOutcome, { inc(): void }>;
    mirrorCounter('autoscaler_monitor_acks_total', 'Acks handed to heartbeat streams (each after the write that covers it)', registers, sources.acks);
    mirrorCounter('autoscaler_monitor_acks_coalesced_total', 'Acks merged into a pending one because the agent read too slowly', registers, sources.acksCoalesced);
  }

  /** One committed batch: its size and how long the write and commit took, seconds. */
  batch(rows: number, seconds: number): void {
    this.batchRows.observe(rows);
    this.batchSeconds.observe(seconds);
  }

  /** Wrap the Register handler: count each answer by outcome (put it outside containUnary, to see its INTERNAL answers). */
  countRegistrations<Req, Res>(handler: UnaryHandler<Req, Res>): UnaryHandler<Req, Res> {
    return (call, callback) => handler(call, (err, value) => {
      this.registrations[registrationOutcome(err?.code)].inc();
      callback(err, value);
    });
  }

  /** The text exposition for `GET /metrics`. */
  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
