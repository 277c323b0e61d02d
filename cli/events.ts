import type { TimelineEntry } from '../store/timeline.js';
import { clean, clockTime, formatDecision } from './format.js';

export type { TimelineEntry } from '../store/timeline.js';

/** One line per event; text from the store is cleaned of control characters (see `clean`). */
export function formatEntry(e: TimelineEntry): string {
  if (e.kind === 'decision') return `${clean(e.groupId)}  decision  ${formatDecision(e)}`;
  if (e.kind === 'change') return `${clean(e.groupId)}  ${clean(e.change).padEnd(8)}  ${clockTime(e.ts)} by ${clean(e.actor)}: ${clean(e.message)}`;
  const outcome = e.outcome === 'ok' ? 'ok' : `FAILED: ${clean(e.error ?? 'unknown error')}`;
  return `${clean(e.groupId)}  ${clean(e.action).padEnd(8)}  ${clockTime(e.ts)} ${clean(e.instanceId)} (${clean(e.cause)}) ${outcome}`;
}
