/**
 * Which instances go on a scale-in. Pure: the caller passes the candidates and the order.
 *
 * Instances that serve nothing go first, whatever the order: suspect ones (silent, maybe dead),
 * then ones still launching. Among the rest:
 * - `az-balance-oldest` (default, as AWS Auto Scaling's default termination policy): take from
 *   the zone with the most instances, and there the oldest launch;
 * - `oldest` / `newest`: by launch time;
 * - `least-loaded`: the lowest CPU first (the cheapest to drain, as Nomad's aws-asg target picks).
 */

import type { ScaleInOrder } from '../../domain/scale-in.js';

export { SCALE_IN_ORDERS, type ScaleInOrder } from '../../domain/scale-in.js';

export interface ScaleInCandidate {
  readonly id: string;
  /** Only `suspect` and `pending` matter here: they go first. */
  readonly state: string;
  readonly zone: string | null;
  /** Launch (or first-seen) time, epoch ms. */
  readonly launchedAt: number;
  /** Latest CPU, percent; null when it has not reported. */
  readonly cpu: number | null;
}

export interface ScaleInChoice {
  readonly victims: readonly string[];
  /** e.g. "az-balance-oldest: i-1 (us-east-1a, 3 of 5 there, oldest), i-2 (suspect)". */
  readonly message: string;
}

/** Pick `count` victims out of `candidates`, explained. */
export function chooseVictims(candidates: readonly ScaleInCandidate[], count: number, order: ScaleInOrder): ScaleInChoice {
  const pool = [...candidates];
  const picked: { id: string; why: string }[] = [];
  const take = (i: number, why: string) => {
    const [c] = pool.splice(i, 1);
    if (c !== undefined) picked.push({ id: c.id, why });
  };
  for (const state of ['suspect', 'pending']) {
    for (let i = pool.findIndex((c) => c.state === state); i >= 0 && picked.length < count; i = pool.findIndex((c) => c.state === state)) {
      take(i, state === 'suspect' ? 'suspect' : 'still launching');
    }
  }
  const byAge = (a: ScaleInCandidate, b: ScaleInCandidate) => a.launchedAt - b.launchedAt || a.id.localeCompare(b.id);
  while (picked.length < count && pool.length > 0) {
    if (order === 'az-balance-oldest') {
      const perZone = new Map<string, number>();
      for (const c of pool) perZone.set(c.zone ?? '', (perZone.get(c.zone ?? '') ?? 0) + 1);
      const [zone, n] = [...perZone].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))[0] as [string, number];
      const inZone = pool.filter((c) => (c.zone ?? '') === zone).sort(byAge)[0] as ScaleInCandidate;
      take(pool.indexOf(inZone), `${zone || 'no zone'}, ${n} of ${pool.length} there, oldest`);
    } else if (order === 'oldest' || order === 'newest') {
      const sorted = [...pool].sort(byAge);
      const c = (order === 'oldest' ? sorted[0] : sorted[sorted.length - 1]) as ScaleInCandidate;
      take(pool.indexOf(c), order);
    } else {
      const sorted = [...pool].sort((a, b) => (a.cpu ?? -1) - (b.cpu ?? -1) || byAge(a, b));
      const c = sorted[0] as ScaleInCandidate;
      take(pool.indexOf(c), c.cpu === null ? 'no CPU reported' : `CPU ${c.cpu.toFixed(1)}%`);
    }
  }
  return {
    victims: picked.map((p) => p.id),
    message: `${order}: ${picked.map((p) => `${p.id} (${p.why})`).join(', ')}`,
  };
}
