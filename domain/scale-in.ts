/** Which instances go first on a scale-in (controller/policy/scale-in.ts chooses; config names it). */
export const SCALE_IN_ORDERS = ['az-balance-oldest', 'oldest', 'newest', 'least-loaded'] as const;
export type ScaleInOrder = (typeof SCALE_IN_ORDERS)[number];
