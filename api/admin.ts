/**
 * What an operator can ask and change, once: the admin CLI (on the store, or remotely with
 * `--api URL`) and the HTTP API both go through an `Admin`, so they accept the same input, refuse
 * the same input with the same message, and record the same events. `LocalAdmin` works on the
 * SQLite store; `HttpAdmin` (api/client.ts) speaks the HTTP API to a `LocalAdmin` on the server.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliEntry } from '../lib/paths.js';
import type { PolicyState } from '../domain/state.js';
import { formatProblems, parseGroup, parsePolicy, type GroupDocument, type PolicyProblem } from '../domain/policy.js';
import type { FieldChange } from '../domain/diff.js';
import { ProfileSpecError, demandAt, formatProfile, parseProfileSpec } from '../sim/profile.js';
import type { Db } from '../store/db.js';
import { GroupStore, type GroupEventRow, type GroupRow } from '../store/groups.js';
import { INSTANCE_STATES, InstanceStore, type InstanceRow, type InstanceState } from '../store/instances.js';
import { PolicyStateStore } from '../store/policy-state.js';
import { SimLoadStore } from '../store/simload.js';
import { StatusReader, type StatusReport } from '../store/status.js';
import { MAX_TIMELINE_PAGE, TimelineReader, formatCursor, parseCursor, type TimelineEntry } from '../store/timeline.js';
import { openWindows, nextWindow, scheduleProblem } from '../controller/schedules.js';
import { HistoryReader, type GroupHistory } from '../store/history.js';

/** A field at fault: a dotted path into the input (`policy.targetTracking.0.target`) and why. */
export interface FieldProblem {
  readonly path: string;
  readonly message: string;
}

export type AdminErrorCode = 'invalid' | 'not_found' | 'unauthorized' | 'forbidden' | 'method' | 'too_large' | 'unsupported' | 'unavailable' | 'internal';

const STATUS: Record<AdminErrorCode, number> = { invalid: 400, unauthorized: 401, forbidden: 403, not_found: 404, method: 405, too_large: 413, unsupported: 415, unavailable: 503, internal: 500 };

/** A refusal the operator can act on: the CLI prints the message (exit 2), the API answers `status` with it. */
export class AdminError extends Error {
  override name = 'AdminError';
  readonly status: number;
  constructor(readonly code: AdminErrorCode, message: string, readonly fields: readonly FieldProblem[] = []) {
    super(message);
    this.status = STATUS[code];
  }
}

/** Refuse `input` with every field at fault in the message, one per line. */
export function invalid(what: string, problems: readonly FieldProblem[]): AdminError {
  return new AdminError('invalid', `${what} is invalid:\n${formatProblems(problems as PolicyProblem[]).split('\n').map((l) => `  - ${l}`).join('\n')}`, problems);
}

/** The outcome of applying one group document. */
export interface ApplyOutcome {
  readonly id: string;
  readonly created: boolean;
  readonly revision: number;
  /** Every field that changed, old → new; empty when nothing did (or the group was created). */
  readonly changes: readonly FieldChange[];
}

/** A scheduled action's window as of now. */
export interface ScheduleView {
  readonly name: string;
  /** When the open window closes, epoch ms; null when closed. */
  readonly openUntil: number | null;
  /** The next window; null when open or when it never opens again. */
  readonly next: { readonly startsAt: number; readonly endsAt: number } | null;
}

/** A group with its full document (every default filled), its last forecast and its schedules. */
export interface GroupDetail {
  readonly group: GroupRow;
  /** What `group apply` takes: id, bounds and policy. */
  readonly document: GroupDocument;
  readonly forecast: NonNullable<PolicyState['forecast']> | null;
  readonly schedules: readonly ScheduleView[];
}

/** A change to a group's document: PATH → value pairs (as `policy set PATH=VALUE`), or a whole policy, or both. */
export interface PolicyChange {
  /** A path without `policy.` (other than `minSize` and `maxSize`) is taken inside the policy. */
  readonly set?: Readonly<Record<string, unknown>>;
  /** A whole policy document; `set` applies on top of it. */
  readonly policy?: unknown;
}

export interface EventsQuery {
  readonly group?: string;
  /** A cursor from an earlier page (`next`): entries after it, oldest first. */
  readonly after?: string;
  /** Epoch ms: entries at or after it, oldest first. */
  readonly since?: number;
  /** At most this many (1..1000); without `after` or `since`, the newest ones. */
  readonly limit: number;
}

export interface EventsPage {
  /** Oldest first. */
  readonly events: readonly TimelineEntry[];
  /** Give it as `after` to read on (or to follow). */
  readonly next: string;
}

export interface LoadView {
  readonly groupId: string;
  /** The profile as `load set` takes it. */
  readonly profile: string;
  readonly startedAt: number;
  /** Demand now, percent of one instance. */
  readonly demand: number;
}

export interface HistoryQuery {
  /** How far back, ms (60 s .. 14 days). */
  readonly windowMs: number;
  /** Bucket width, ms (1 s .. 1 h); the server may widen it to bound the answer. */
  readonly stepMs: number;
}

export interface SimulateQuery {
  /** `recorded` (the group's own per-minute history), or a built-in trace name. */
  readonly trace: string;
  /** Instance boot time, seconds. */
  readonly bootS: number;
  /** Baselines to compare with: hpa, aws-target-tracking, threshold, oracle. */
  readonly compare: readonly string[];
}

/** `autoscaler simulate --json` for the group's policy (see docs/simulator.md). */
export interface SimulationReport {
  readonly trace: { readonly name: string; readonly description: string; readonly seconds: number; readonly startAt: number };
  readonly bootS: number;
  readonly target: number;
  readonly runs: readonly { readonly policy: string; readonly metrics: Readonly<Record<string, number | null>>; readonly failures: number }[];
  readonly series: { readonly stepS: number; readonly demand: readonly number[]; readonly capacity: Readonly<Record<string, readonly number[]>> };
}

/** Everything an operator can do; the same contract locally and over HTTP. */
export interface Admin {
  status(q: { group?: string; decisions: number }): Promise<StatusReport>;
  groups(): Promise<readonly GroupRow[]>;
  group(id: string): Promise<GroupDetail>;
  /** Create or change groups; every document is validated before any is applied. */
  apply(documents: readonly unknown[]): Promise<readonly ApplyOutcome[]>;
  setPolicy(id: string, change: PolicyChange): Promise<ApplyOutcome>;
  /** A policy document, or a group document (with `id`); refused with every field at fault. */
  validate(document: unknown): Promise<{ readonly kind: 'group' | 'policy' }>;
  history(id: string, limit: number): Promise<readonly GroupEventRow[]>;
  /** Manual capacity (`null` clears it) for `forMs`, or until cleared. */
  scale(id: string, capacity: { readonly desired: number; readonly forMs?: number } | null): Promise<GroupRow>;
  setPaused(id: string, paused: boolean, reason?: string): Promise<GroupRow>;
  setDryRun(id: string, on: boolean): Promise<GroupRow>;
  instances(q: { group?: string; state?: InstanceState }): Promise<readonly InstanceRow[]>;
  events(q: EventsQuery): Promise<EventsPage>;
  load(id: string): Promise<LoadView | null>;
  setLoad(id: string, spec: string): Promise<LoadView>;
  /** True when a profile was set. */
  clearLoad(id: string): Promise<boolean>;
  metrics(id: string, q: HistoryQuery): Promise<GroupHistory>;
  /** What the group's policy (and the baselines) would have done on its recorded traffic or a built-in trace. */
  simulate(id: string, q: SimulateQuery): Promise<SimulationReport>;
}

/** A simulation taking longer is stopped. */
export const SIMULATE_TIMEOUT_MS = 60_000;
/** One simulation at a time per process. */
let simulating = false;

/** Largest manual capacity, instances (the policy schema's bound). */
export const MAX_CAPACITY = 10_000;
/** Largest `forMs` of a manual capacity: 30 days. */
export const MAX_SCALE_FOR_MS = 30 * 86_400_000;

/** Set `value` at a dotted path (`targetTracking.0.target`) in a copy of `doc`. */
export function setPath(doc: unknown, path: string, value: unknown): unknown {
  const keys = path.split('.');
  if (keys.some((k) => k === '' || k === '__proto__' || k === 'constructor' || k === 'prototype')) throw new AdminError('invalid', `bad path "${path}"`, [{ path, message: 'not a dotted path of field names and indexes' }]);
  const root = structuredClone(doc) as Record<string, unknown>;
  let node: Record<string, unknown> = root;
  for (const [n, k] of keys.entries()) {
    if (n === keys.length - 1) {
      node[k] = value;
      break;
    }
    const next = node[k];
    if (typeof next !== 'object' || next === null) {
      node[k] = /^\d+$/.test(keys[n + 1] ?? '') ? [] : {};
    }
    node = node[k] as Record<string, unknown>;
  }
  return root;
}

/** Schedules need their cron and time zone checked too (croner), beyond the schema. */
function scheduleProblems(doc: { policy: GroupDocument['policy'] }, prefix: string): FieldProblem[] {
  return doc.policy.schedules.flatMap((s, n) => {
    const p = scheduleProblem(s);
    return p === undefined ? [] : [{ path: `${prefix}schedules.${n}.${p.field}`, message: p.message }];
  });
}

/** A group document, valid, or an AdminError naming every field at fault. */
export function validGroup(input: unknown, what: string): GroupDocument {
  const r = parseGroup(input);
  if (!r.ok) throw invalid(what, r.problems);
  const more = scheduleProblems(r.value, 'policy.');
  if (more.length > 0) throw invalid(what, more);
  return r.value;
}

/** A policy document, or a group document (with `id`): its kind, or an AdminError naming every field at fault. */
export function validateDocument(document: unknown, what?: string): { readonly kind: 'group' | 'policy' } {
  if (isObject(document) && 'id' in document) {
    validGroup(document, what ?? 'the group document');
    return { kind: 'group' };
  }
  const r = parsePolicy(document);
  if (!r.ok) throw invalid(what ?? 'the policy document', r.problems);
  const more = scheduleProblems({ policy: r.value }, '');
  if (more.length > 0) throw invalid(what ?? 'the policy document', more);
  return { kind: 'policy' };
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The prepared stores of one database, shared by every LocalAdmin on it (one per actor): their
 * statements are prepared once, whatever the number of actors.
 */
export class AdminStores {
  /** Groups, their documents, overrides and change events. */
  readonly groups: GroupStore;
  /** Instances and their latest samples. */
  readonly instances: InstanceStore;
  /** The policies' saved state (the last forecast). */
  readonly policyState: PolicyStateStore;
  /** Simulated demand profiles (demo mode). */
  readonly simLoad: SimLoadStore;
  /** Decisions, launches/terminations and changes, paged by cursor. */
  readonly timeline: TimelineReader;
  /** The status report (`autoscaler status`, GET /api/v1/status). */
  readonly status: StatusReader;
  /** Per-group metric history in buckets. */
  readonly history: HistoryReader;
  /** The database file (`autoscaler simulate --from-db` opens it in a child process). */
  readonly dbPath: string;

  constructor(db: Db) {
    this.groups = new GroupStore(db);
    this.instances = new InstanceStore(db);
    this.policyState = new PolicyStateStore(db);
    this.simLoad = new SimLoadStore(db);
    this.timeline = new TimelineReader(db);
    this.status = new StatusReader(db);
    this.history = new HistoryReader(db);
    this.dbPath = db.name;
  }
}

/** The admin contract on the store. Build one per actor; stores are prepared once. */
export class LocalAdmin implements Admin {
  private readonly stores: AdminStores;

  /**
   * @param source the database (its stores are prepared here), or the stores another LocalAdmin
   *   already prepared on it.
   * @param actor who acts, as the event log shows it: the OS user for the CLI, `api:<token name>`
   *   for the API.
   * @param now the clock, epoch ms.
   */
  constructor(
    source: Db | AdminStores,
    private readonly actor: string,
    private readonly now: () => number,
  ) {
    this.stores = source instanceof AdminStores ? source : new AdminStores(source);
  }

  /** The same stores and clock, another actor (one per API token). */
  as(actor: string): LocalAdmin {
    return new LocalAdmin(this.stores, actor, this.now);
  }

  /** The group, or the not_found AdminError every surface gives for an unknown group. */
  requireGroup(id: string): GroupRow {
    return this.mustGet(id);
  }

  private mustGet(id: string): GroupRow {
    const g = this.stores.groups.get(id);
    if (g === undefined) throw new AdminError('not_found', `no group "${id}" (autoscaler group list shows them; autoscaler group apply FILE creates one)`);
    return g;
  }

  async status(q: { group?: string; decisions: number }): Promise<StatusReport> {
    if (q.group !== undefined) this.mustGet(q.group);
    return this.stores.status.report(this.now(), { groupId: q.group, decisions: q.decisions });
  }

  async groups(): Promise<readonly GroupRow[]> {
    return this.stores.groups.list();
  }

  async group(id: string): Promise<GroupDetail> {
    const g = this.mustGet(id);
    const now = this.now();
    return {
      group: g,
      document: { id: g.id, minSize: g.minSize, maxSize: g.maxSize, policy: g.policy },
      forecast: this.stores.policyState.get(id)?.forecast ?? null,
      schedules: g.policy.schedules.map((s) => {
        const open = openWindows([s], now)[0];
        const next = open === undefined ? nextWindow(s, now) : undefined;
        return { name: s.name, openUntil: open?.endsAt ?? null, next: next === undefined ? null : { startsAt: next.startsAt, endsAt: next.endsAt } };
      }),
    };
  }

  async apply(documents: readonly unknown[]): Promise<readonly ApplyOutcome[]> {
    if (documents.length === 0) throw new AdminError('invalid', 'no group documents given', [{ path: '', message: 'give one group document or an array of them' }]);
    if (documents.length > 1_000) throw new AdminError('invalid', 'at most 1000 group documents at once', [{ path: '', message: 'at most 1000 documents' }]);
    const docs = documents.map((d, n) => validGroup(d, documents.length > 1 ? `group document ${n}` : 'the group document'));
    const ids = new Set<string>();
    for (const d of docs) {
      if (ids.has(d.id)) throw new AdminError('invalid', `group "${d.id}" is given twice`, [{ path: 'id', message: `"${d.id}" appears more than once` }]);
      ids.add(d.id);
    }
    const now = this.now();
    return docs.map((d) => {
      const r = this.stores.groups.apply(d, this.actor, now);
      return { id: d.id, created: r.created, revision: r.row.revision, changes: r.changes };
    });
  }

  async setPolicy(id: string, change: PolicyChange): Promise<ApplyOutcome> {
    const set = change.set ?? {};
    if (Object.keys(set).length === 0 && change.policy === undefined) throw new AdminError('invalid', 'nothing to change: give PATH=VALUE pairs or a policy document', [{ path: 'set', message: 'empty' }]);
    const g = this.mustGet(id);
    let doc: unknown = { id: g.id, minSize: g.minSize, maxSize: g.maxSize, policy: change.policy === undefined ? g.policy : change.policy };
    for (const [path, value] of Object.entries(set)) {
      const full = /^(policy\.|minSize$|maxSize$)/.test(path) ? path : `policy.${path}`;
      doc = setPath(doc, full, value);
    }
    const valid = validGroup(doc, `group ${id}`);
    if (valid.id !== id) throw new AdminError('invalid', 'the group id cannot change', [{ path: 'id', message: `must stay "${id}"` }]);
    const r = this.stores.groups.apply(valid, this.actor, this.now());
    return { id, created: false, revision: r.row.revision, changes: r.changes };
  }

  async validate(document: unknown): Promise<{ readonly kind: 'group' | 'policy' }> {
    return validateDocument(document);
  }

  async history(id: string, limit: number): Promise<readonly GroupEventRow[]> {
    this.mustGet(id);
    return this.stores.groups.events(id, limit);
  }

  async scale(id: string, capacity: { readonly desired: number; readonly forMs?: number } | null): Promise<GroupRow> {
    const g = this.mustGet(id);
    if (capacity !== null) {
      const { desired, forMs } = capacity;
      if (!Number.isSafeInteger(desired) || desired < 0 || desired > MAX_CAPACITY) throw new AdminError('invalid', `desired must be a whole number from 0 to ${MAX_CAPACITY} (got ${desired})`, [{ path: 'desired', message: `must be a whole number from 0 to ${MAX_CAPACITY}` }]);
      if (desired < g.minSize || desired > g.maxSize) {
        throw new AdminError('invalid', `desired ${desired} is outside the group's bounds ${g.minSize}..${g.maxSize} (change them with policy set ${id} minSize=… maxSize=…)`, [{ path: 'desired', message: `must be within ${g.minSize}..${g.maxSize}` }]);
      }
      if (forMs !== undefined && (!Number.isSafeInteger(forMs) || forMs < 1_000 || forMs > MAX_SCALE_FOR_MS)) {
        throw new AdminError('invalid', `for must be from 1 s to 30 days (got ${forMs} ms)`, [{ path: 'forMs', message: `must be a whole number of ms from 1000 to ${MAX_SCALE_FOR_MS}` }]);
      }
    }
    const now = this.now();
    this.stores.groups.setOverride(id, capacity === null ? undefined : { desired: capacity.desired, until: capacity.forMs === undefined ? null : now + capacity.forMs }, now, this.actor);
    return this.mustGet(id);
  }

  async setPaused(id: string, paused: boolean, reason = ''): Promise<GroupRow> {
    this.mustGet(id);
    if (reason.length > 500) throw new AdminError('invalid', 'reason is longer than 500 characters', [{ path: 'reason', message: 'at most 500 characters' }]);
    this.stores.groups.setPaused(id, paused, this.now(), this.actor, reason);
    return this.mustGet(id);
  }

  async setDryRun(id: string, on: boolean): Promise<GroupRow> {
    this.mustGet(id);
    this.stores.groups.setDryRun(id, on, this.now(), this.actor);
    return this.mustGet(id);
  }

  async instances(q: { group?: string; state?: InstanceState }): Promise<readonly InstanceRow[]> {
    if (q.state !== undefined && !(INSTANCE_STATES as readonly string[]).includes(q.state)) {
      throw new AdminError('invalid', `state must be one of ${INSTANCE_STATES.join(', ')}`, [{ path: 'state', message: `must be one of ${INSTANCE_STATES.join(', ')}` }]);
    }
    const groups = q.group !== undefined ? [this.mustGet(q.group).id] : this.stores.groups.list().map((g) => g.id);
    const rows = groups.flatMap((g) => this.stores.instances.listGroup(g));
    return q.state === undefined ? rows : rows.filter((r) => r.state === q.state);
  }

  async events(q: EventsQuery): Promise<EventsPage> {
    if (q.group !== undefined) this.mustGet(q.group);
    if (!Number.isSafeInteger(q.limit) || q.limit < 1 || q.limit > MAX_TIMELINE_PAGE) {
      throw new AdminError('invalid', `limit must be a whole number from 1 to ${MAX_TIMELINE_PAGE} (got ${q.limit})`, [{ path: 'limit', message: `must be from 1 to ${MAX_TIMELINE_PAGE}` }]);
    }
    if (q.after !== undefined && q.since !== undefined) throw new AdminError('invalid', 'give after or since, not both', [{ path: 'since', message: 'not with after' }]);
    const opts = { groupId: q.group, limit: q.limit };
    let page;
    if (q.after !== undefined) {
      const cursor = parseCursor(q.after);
      if (cursor === undefined) throw new AdminError('invalid', `after must be a cursor from an earlier page (D.A.C), got "${q.after.slice(0, 40)}"`, [{ path: 'after', message: 'not a cursor' }]);
      page = this.stores.timeline.after(cursor, opts);
    } else if (q.since !== undefined) {
      if (!Number.isSafeInteger(q.since) || q.since < 0) throw new AdminError('invalid', 'since must be a time (epoch ms or ISO 8601)', [{ path: 'since', message: 'not a time' }]);
      page = this.stores.timeline.since(q.since, opts);
    } else {
      page = this.stores.timeline.latest(opts);
    }
    return { events: page.entries, next: formatCursor(page.cursor) };
  }

  private loadView(id: string): LoadView | null {
    const row = this.stores.simLoad.get(id);
    return row === undefined ? null : { groupId: id, profile: formatProfile(row.profile), startedAt: row.startedAt, demand: demandAt(row.profile, this.now() - row.startedAt) };
  }

  async load(id: string): Promise<LoadView | null> {
    this.mustGet(id);
    return this.loadView(id);
  }

  async setLoad(id: string, spec: string): Promise<LoadView> {
    let profile;
    try {
      profile = parseProfileSpec(spec);
    } catch (err) {
      if (err instanceof ProfileSpecError) throw new AdminError('invalid', err.message, [{ path: 'spec', message: err.message }]);
      throw err;
    }
    this.mustGet(id);
    this.stores.simLoad.set(id, profile, this.now());
    return this.loadView(id) as LoadView;
  }

  async clearLoad(id: string): Promise<boolean> {
    this.mustGet(id);
    return this.stores.simLoad.clear(id);
  }

  async metrics(id: string, q: HistoryQuery): Promise<GroupHistory> {
    const g = this.mustGet(id);
    if (!Number.isSafeInteger(q.windowMs) || q.windowMs < 60_000 || q.windowMs > 14 * 86_400_000) {
      throw new AdminError('invalid', 'window must be from 1 minute to 14 days', [{ path: 'window', message: 'from 60000 to 1209600000 ms' }]);
    }
    if (!Number.isSafeInteger(q.stepMs) || q.stepMs < 1_000 || q.stepMs > 3_600_000) {
      throw new AdminError('invalid', 'step must be from 1 s to 1 h', [{ path: 'step', message: 'from 1000 to 3600000 ms' }]);
    }
    const now = this.now();
    const load = this.stores.simLoad.get(id);
    return this.stores.history.group(g, { from: now - q.windowMs, to: now, stepMs: q.stepMs, load });
  }

  /**
   * Runs `autoscaler simulate` in a child process (seconds of CPU must not stall the server that
   * ingests heartbeats), one at a time, bounded by SIMULATE_TIMEOUT_MS.
   */
  async simulate(id: string, q: SimulateQuery): Promise<SimulationReport> {
    const g = this.mustGet(id);
    if (simulating) throw new AdminError('unavailable', 'a simulation is already running; try again in a few seconds');
    simulating = true;
    const dir = mkdtempSync(join(tmpdir(), 'autoscaler-sim-'));
    try {
      const policyFile = join(dir, 'group.json');
      writeFileSync(policyFile, JSON.stringify({ id: g.id, minSize: g.minSize, maxSize: g.maxSize, policy: g.policy }));
      const source = q.trace === 'recorded' ? ['--from-db', id, '--db', this.stores.dbPath] : ['--trace', q.trace];
      const args = [cliEntry(), 'simulate', ...source, '--policy', policyFile, '--boot', `${q.bootS}s`, '--compare', q.compare.length === 0 ? 'none' : q.compare.join(','), '--json'];
      const r = await new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
        execFile(process.execPath, args, { timeout: SIMULATE_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024, env: { ...process.env, LOG_LEVEL: 'warn' } }, (error, stdout, stderr) => {
          resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : null, out: stdout, err: stderr });
        });
      });
      if (r.code === 2) throw new AdminError('invalid', r.err.replace(/^autoscaler: /, '').trim(), [{ path: 'trace', message: r.err.split('\n')[0]?.replace(/^autoscaler: /, '') ?? '' }]);
      if (r.code !== 0) throw new AdminError('internal', `the simulation failed (exit ${r.code ?? 'timeout'}): ${r.err.trim().split('\n').slice(-2).join(' ')}`);
      return JSON.parse(r.out) as SimulationReport;
    } finally {
      simulating = false;
      rmSync(dir, { recursive: true, force: true });
    }
  }
}
