import { describe, expect, it } from 'vitest';
import { chooseVictims, type ScaleInCandidate } from './scale-in.js';

const c = (id: string, zone: string | null, launchedAt: number, cpu: number | null = 50, state = 'running'): ScaleInCandidate => ({ id, state, zone, launchedAt, cpu });

// a: 3 in zone a (oldest a1), b: 2 in zone b, c: 1 in zone c.
const fleet = [c('a1', 'a', 1, 40), c('a2', 'a', 5, 10), c('a3', 'a', 9, 70), c('b1', 'b', 2, 20), c('b2', 'b', 8, 90), c('c1', 'c', 3, 30)];

describe('chooseVictims', () => {
  it.each([
    { name: 'az-balance-oldest takes from the largest zone, oldest first', order: 'az-balance-oldest' as const, count: 1, want: ['a1'] },
    { name: 'az-balance-oldest keeps zones balanced over several', order: 'az-balance-oldest' as const, count: 3, want: ['a1', 'a2', 'b1'] },
    { name: 'oldest', order: 'oldest' as const, count: 2, want: ['a1', 'b1'] },
    { name: 'newest', order: 'newest' as const, count: 2, want: ['a3', 'b2'] },
    { name: 'least-loaded', order: 'least-loaded' as const, count: 2, want: ['a2', 'b1'] },
    { name: 'never more than the candidates', order: 'oldest' as const, count: 10, want: ['a1', 'b1', 'c1', 'a2', 'b2', 'a3'] },
  ])('$name', ({ order, count, want }) => {
    expect(chooseVictims(fleet, count, order).victims).toEqual(want);
  });

  it.each([
    { name: 'suspect before anything', extra: [c('s1', 'c', 99, null, 'suspect')], want: ['s1'] },
    { name: 'still launching before serving ones', extra: [c('p1', 'c', 99, null, 'pending')], want: ['p1'] },
    { name: 'suspect before launching', extra: [c('p1', 'c', 99, null, 'pending'), c('s1', 'c', 98, null, 'suspect')], want: ['s1'] },
  ])('whatever the order: $name', ({ extra, want }) => {
    for (const order of ['az-balance-oldest', 'oldest', 'newest', 'least-loaded'] as const) {
      expect(chooseVictims([...fleet, ...extra], 1, order).victims).toEqual(want);
    }
  });

  it('explains each victim', () => {
    expect(chooseVictims(fleet, 2, 'az-balance-oldest').message).toBe('az-balance-oldest: a1 (a, 3 of 6 there, oldest), a2 (a, 2 of 5 there, oldest)');
    expect(chooseVictims([c('x', null, 1, null)], 1, 'least-loaded').message).toBe('least-loaded: x (no CPU reported)');
  });
});
