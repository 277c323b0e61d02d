/** Types shared by the simulator's runner and the policies it drives (pure room). */

/** A ready instance as a policy sees it at a tick. */
export interface ReadyView {
  readonly id: string;
  /** CPU, percent: min(100, the instance's share of the demand) with the seeded noise. */
  readonly cpu: number;
  /** Memory, percent: 20 + 0.3 × CPU (a plausible correlate; only memory-tracking policies read it). */
  readonly mem: number;
  /** When it was launched and when it finished booting (registered), epoch ms. */
  readonly launchedAt: number;
  readonly readyAt: number;
}

/** What a policy sees of the fleet at a tick. Only the oracle reads the future (from its trace). */
export interface FleetView {
  /** Seconds since the start of the trace. */
  readonly t: number;
  /** Virtual wall clock, epoch ms (the trace's start + t). */
  readonly now: number;
  /** The group's desired count, as last set. */
  readonly desired: number;
  /** Instances launched and still booting (no metric yet). */
  readonly launching: number;
  /** Failed instances not detected yet: capacity that serves nothing and reports nothing. */
  readonly suspect: number;
  /** Ready instances (booted, serving). */
  readonly readyCount: number;
  /** Ready instances with their metrics; computed (and noise drawn) on first call only. */
  instances(): readonly ReadyView[];
  /** The group's bounds. */
  readonly minSize: number;
  readonly maxSize: number;
}

/**
 * A scaling policy under simulation: asked every `intervalS` seconds (from second 0) for the
 * desired count. Stateful: make a fresh one for each run.
 */
export interface SimPolicy {
  readonly name: string;
  /** Evaluation interval, whole seconds >= 1. */
  readonly intervalS: number;
  decide(view: FleetView): number;
}
