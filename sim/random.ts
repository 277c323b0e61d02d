/**
 * Seeded randomness for the simulator (a pure room: no `Math.random`). mulberry32: a 32-bit
 * state, a period of 2^32, fast and good enough for noise and failures; the same seed always
 * gives the same sequence.
 */

/** A source of numbers in [0, 1). */
export type Random = () => number;

/** A generator seeded with `seed` (any number; its low 32 bits are used). */
export function mulberry32(seed: number): Random {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** A seed derived from `seed` and a label, so that independent streams do not share draws. */
export function deriveSeed(seed: number, label: string): number {
  let h = (seed >>> 0) ^ 0x811c9dc5;
  for (let i = 0; i < label.length; i++) h = Math.imul(h ^ label.charCodeAt(i), 0x01000193) >>> 0;
  return h >>> 0;
}
