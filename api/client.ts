/**
 * The Admin contract over HTTP: what `autoscaler … --api URL` uses. Errors come back as the
 * server's AdminError (same code, message and fields), so the CLI prints the same refusal
 * whether it works on the store or through the API.
 */
import type { GroupEventRow, GroupRow } from '../store/groups.js';
import type { InstanceRow, InstanceState } from '../store/instances.js';
import type { GroupHistory } from '../store/history.js';
import type { StatusReport } from '../store/status.js';
import {
  AdminError, type Admin, type AdminErrorCode, type ApplyOutcome, type EventsPage, type EventsQuery, type FieldProblem,
  type GroupDetail, type HistoryQuery, type LoadView, type PolicyChange, type SimulateQuery, type SimulationReport,
} from './admin.js';

/** A request that takes longer is abandoned with an error. */
const TIMEOUT_MS = 30_000;

const CODES: readonly AdminErrorCode[] = ['invalid', 'not_found', 'unauthorized', 'forbidden', 'method', 'too_large', 'unsupported', 'unavailable', 'internal'];

export class HttpAdmin implements Admin {
  private readonly base: string;

  constructor(url: string, private readonly token: string | undefined) {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new AdminError('invalid', `--api must be a URL such as http://127.0.0.1:8080 (got "${url.slice(0, 100)}")`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new AdminError('invalid', `--api must be http:// or https:// (got "${u.protocol}")`);
    this.base = u.toString().replace(/\/+$/, '');
  }

  private async call<T>(method: string, path: string, body?: unknown, query: Record<string, string | number | undefined> = {}): Promise<T> {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined) qs.set(k, String(v));
    const url = `${this.base}${path}${qs.size > 0 ? `?${qs.toString()}` : ''}`;
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers: {
          accept: 'application/json',
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...(this.token === undefined ? {} : { authorization: `Bearer ${this.token}` }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(TIMEOUT_MS),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new AdminError('unavailable', `cannot reach the API at ${this.base}: ${cause?.code ?? cause?.message ?? (err as Error).message}`);
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = text === '' ? null : JSON.parse(text);
    } catch {
      throw new AdminError('internal', `the API at ${this.base} answered ${res.status} with something that is not JSON`);
    }
    if (!res.ok) {
      const e = (json ?? {}) as { error?: unknown; code?: unknown; fields?: unknown };
      const code = CODES.includes(e.code as AdminErrorCode) ? (e.code as AdminErrorCode) : 'internal';
      throw new AdminError(code, typeof e.error === 'string' ? e.error : `HTTP ${res.status}`, Array.isArray(e.fields) ? (e.fields as FieldProblem[]) : []);
    }
    return json as T;
  }

  private g(id: string): string {
    return `/api/v1/groups/${encodeURIComponent(id)}`;
  }

  status(q: { group?: string; decisions: number }): Promise<StatusReport> {
    return this.call('GET', '/api/v1/status', undefined, { group: q.group, decisions: q.decisions });
  }

  groups(): Promise<readonly GroupRow[]> {
    return this.call('GET', '/api/v1/groups');
  }

  group(id: string): Promise<GroupDetail> {
    return this.call('GET', this.g(id));
  }

  apply(documents: readonly unknown[]): Promise<readonly ApplyOutcome[]> {
    return this.call('POST', '/api/v1/groups', documents);
  }

  setPolicy(id: string, change: PolicyChange): Promise<ApplyOutcome> {
    return this.call('PATCH', `${this.g(id)}/policy`, change);
  }

  validate(document: unknown): Promise<{ readonly kind: 'group' | 'policy' }> {
    return this.call('POST', '/api/v1/policies/validate', document);
  }

  history(id: string, limit: number): Promise<readonly GroupEventRow[]> {
    return this.call('GET', `${this.g(id)}/history`, undefined, { limit });
  }

  scale(id: string, capacity: { readonly desired: number; readonly forMs?: number } | null): Promise<GroupRow> {
    return capacity === null ? this.call('DELETE', `${this.g(id)}/capacity`) : this.call('PUT', `${this.g(id)}/capacity`, capacity);
  }

  setPaused(id: string, paused: boolean, reason?: string): Promise<GroupRow> {
    return this.call('POST', `${this.g(id)}/${paused ? 'pause' : 'resume'}`, reason === undefined || reason === '' ? {} : { reason });
  }

  setDryRun(id: string, on: boolean): Promise<GroupRow> {
    return this.call('PUT', `${this.g(id)}/dry-run`, { enabled: on });
  }

  instances(q: { group?: string; state?: InstanceState }): Promise<readonly InstanceRow[]> {
    return this.call('GET', '/api/v1/instances', undefined, { group: q.group, state: q.state });
  }

  events(q: EventsQuery): Promise<EventsPage> {
    return this.call('GET', '/api/v1/events', undefined, { group: q.group, after: q.after, since: q.since, limit: q.limit });
  }

  load(id: string): Promise<LoadView | null> {
    return this.call('GET', `${this.g(id)}/load`);
  }

  setLoad(id: string, spec: string): Promise<LoadView> {
    return this.call('PUT', `${this.g(id)}/load`, { spec });
  }

  async clearLoad(id: string): Promise<boolean> {
    return (await this.call<{ cleared: boolean }>('DELETE', `${this.g(id)}/load`)).cleared;
  }

  simulate(id: string, q: SimulateQuery): Promise<SimulationReport> {
    return this.call('GET', `${this.g(id)}/simulate`, undefined, { trace: q.trace, boot: q.bootS * 1000, compare: q.compare.join(',') || 'none' });
  }

  metrics(id: string, q: HistoryQuery): Promise<GroupHistory> {
    return this.call('GET', `${this.g(id)}/metrics`, undefined, { window: q.windowMs, step: q.stepMs });
  }
}
