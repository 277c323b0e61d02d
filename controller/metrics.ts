/**
 * The controller's Prometheus metrics (prom-client): what it decided and why, each group's
 * bounds and capacity, every provider call with its outcome and latency, its own evaluation
 * time, and Node's default process metrics (including event-loop lag).
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ScalingDecision } from '../domain/decision.js';

export class ControllerMetrics {
  readonly registry = new Registry();
  private readonly decisions: Counter<'group' | 'reason'>;
  private readonly desired: Gauge<'group'>;
  private readonly live: Gauge<'group'>;
  private readonly min: Gauge<'group'>;
  private readonly max: Gauge<'group'>;
  private readonly calls: Counter<'operation' | 'outcome' | 'code'>;
  private readonly callSeconds: Histogram<'operation'>;
  private readonly tickSeconds: Histogram;
  private readonly ticks: Counter;
  /** When the last evaluation of every group finished, epoch ms (for /healthz). */
  lastTickAt: number | undefined;

  constructor() {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'autoscaler_controller_' });
    this.decisions = new Counter({ name: 'autoscaler_decisions_total', help: 'Decisions recorded, by group and reason', labelNames: ['group', 'reason'], registers });
    this.desired = new Gauge({ name: 'autoscaler_group_desired', help: 'Capacity the controller decided on', labelNames: ['group'], registers });
    this.live = new Gauge({ name: 'autoscaler_group_live', help: 'Instances counted as capacity (launching, running, suspect)', labelNames: ['group'], registers });
    this.min = new Gauge({ name: 'autoscaler_group_min', help: 'Group minimum size', labelNames: ['group'], registers });
    this.max = new Gauge({ name: 'autoscaler_group_max', help: 'Group maximum size', labelNames: ['group'], registers });
    this.calls = new Counter({ name: 'autoscaler_provider_calls_total', help: 'Provider calls by operation, outcome (ok, error) and error code', labelNames: ['operation', 'outcome', 'code'], registers });
    this.callSeconds = new Histogram({
      name: 'autoscaler_provider_call_seconds', help: 'Provider call latency (SDK retries included)', labelNames: ['operation'], registers,
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    });
    this.tickSeconds = new Histogram({ name: 'autoscaler_controller_evaluation_seconds', help: 'Time to evaluate every group once', registers, buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] });
    this.ticks = new Counter({ name: 'autoscaler_controller_evaluations_total', help: 'Evaluations of every group', registers });
  }

  decision(group: string, d: ScalingDecision): void {
    this.decisions.inc({ group, reason: d.reason });
  }

  group(group: string, g: { desired: number; live: number; minSize: number; maxSize: number }): void {
    this.desired.set({ group }, g.desired);
    this.live.set({ group }, g.live);
    this.min.set({ group }, g.minSize);
    this.max.set({ group }, g.maxSize);
  }

  call(operation: string, seconds: number, error: { code: string } | undefined): void {
    this.calls.inc({ operation, outcome: error === undefined ? 'ok' : 'error', code: error?.code ?? '' });
    this.callSeconds.observe({ operation }, seconds);
  }

  tick(seconds: number, at: number): void {
    this.tickSeconds.observe(seconds);
    this.ticks.inc();
    this.lastTickAt = at;
  }
}
