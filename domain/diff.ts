/** What changed between two versions of a document (policy, group), for events. Pure. */

/** One change, old → new, at a dotted path. */
export interface FieldChange {
  readonly path: string;
  readonly from: unknown;
  readonly to: unknown;
}

/** Every leaf that differs between two JSON values, by dotted path. */
export function diffDocuments(a: unknown, b: unknown, path = ''): FieldChange[] {
  const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;
  if (isObj(a) && isObj(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])];
    return keys.flatMap((k) => diffDocuments(a[k], b[k], path ? `${path}.${k}` : k));
  }
  return JSON.stringify(a) === JSON.stringify(b) ? [] : [{ path: path || '(document)', from: a, to: b }];
}
