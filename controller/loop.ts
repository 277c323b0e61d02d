import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { ControllerConfig } from '../config/controller.js';
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import { version } from '../lib/version.js';
import { ComponentStore } from '../store/components.js';
import type { Db } from '../store/db.js';
import { EventStore, type ActivityAction } from '../store/events.js';
import { GroupStore, type GroupRow } from '../store/groups.js';
import { InstanceStore, type InstanceRow, type ProviderFacts } from '../store/instances.js';
import { IntentStore, type LaunchIntent } from '../store/intents.js';
import { MinuteStore } from '../store/minutes.js';
import { HistoryRetention } from '../store/retention.js';
import { PolicyStateStore } from '../store/policy-state.js';
import { demandOf } from './policy/combine.js';
import { decide } from './policy/engine.js';
import { observe } from './policy/observe.js';
import { chooseVictims } from './policy/scale-in.js';
import { EMPTY_POLICY_STATE, type DecisionReason, type ScalingDecision } from './policy/types.js';
import type { ControllerMetrics } from './metrics.js';
import { openWindows } from './schedules.js';
import { asProviderError, type InstanceProvider, type ProviderError, type ProviderInstance, type ProviderListing } from './providers/types.js';

/** Per-minute history is kept this long (AWS predictive scaling reads 14 days). */
export const MINUTES_RETENTION_MS = 15 * 86_400_000;
/** Event-log rows looked at per table per prune run. */
const HISTORY_PRUNE_CHUNK = 5_000;
const PRUNE_EVERY_MS = 600_000;
/** Predictive scaling reads this much history beyond one season plus its lead. */
const HISTORY_MARGIN_MS = 3_600_000;
/** How often the controller writes its own heartbeat to the store. */
export const CONTROLLER_BEAT_MS = 1_000;
/** A termination the provider accepted but whose instance is still listed is asked again after this long. */
export const TERMINATE_RETRY_MS = 120_000;
/** Backoff after failed provider calls: doubles from the evaluation interval up to this. */
export const MAX_PROVIDER_BACKOFF_MS = 300_000;

/** Per-group memory between evaluations (what must survive a restart is in the store). */
interface GroupMemory {
  /** Key of the last recorded decision, so that a steady state is recorded once, not every tick. */
  lastKey: string | undefined;
  /** Consecutive failed provider calls, and no action before `backoffUntil`. */
  failures: number;
  backoffUntil: number;
  lastError: ProviderError | undefined;
  /** The group revision last evaluated (a change is logged once). */
  revision: number | undefined;
}

/**
 * ControllerASG's loop (Nomad's policy handler): every interval, for each group, read the
 * provider's listing and the store, reconcile the two both ways, replace what died or never
 * booted, decide with the pure policy, record the decision with its reason, then act through
 * the provider. A failed evaluation is logged once and the loop goes on.
 *
 * Every launch is an intent row first (its token is the provider's idempotency key), so a crash
 * at any point is recovered by the next controller: it finds the instances by their token tag,
 * or retries the launch with the same token, which launches nothing twice.
 */
export class Controller {
  private readonly log: Logger;
  private readonly groups: GroupStore;
  private readonly instances: InstanceStore;
  private readonly intents: IntentStore;
  private readonly events: EventStore;
  private readonly components: ComponentStore;
  private readonly policyStates: PolicyStateStore;
  private readonly minutes: MinuteStore;
  private readonly retention: HistoryRetention;
  private readonly memory = new Map<string, GroupMemory>();
  /** The group's rows as last read in this evaluation; dropped whenever the controller writes them. */
  private readonly rowsCache = new Map<string, InstanceRow[]>();
  /** Rows reconcile wrote (then the cache is dropped). */
  private writes = 0;
  private timer: NodeJS.Timeout | undefined;
  private beatTimer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private prunedAt = Number.NEGATIVE_INFINITY;
  private readonly startedAt: number;
  /** Evaluations completed, for tests and the status view. */
  ticks = 0;

  constructor(
    private readonly cfg: ControllerConfig,
    private readonly db: Db,
    private readonly provider: InstanceProvider,
    private readonly clock: Clock,
    rootLog: Logger,
    /** Launch tokens: 1–56 characters, unique (EC2 ClientTokens derive from them). */
    private readonly newToken: () => string = () => `as-${randomBytes(12).toString('hex')}`,
    private readonly metrics?: ControllerMetrics,
  ) {
    this.log = rootLog.child({ component: 'controller' });
    this.groups = new GroupStore(db);
    this.instances = new InstanceStore(db);
    this.intents = new IntentStore(db);
    this.events = new EventStore(db);
    this.components = new ComponentStore(db);
    this.policyStates = new PolicyStateStore(db);
    this.minutes = new MinuteStore(db);
    this.retention = new HistoryRetention(db);
    this.startedAt = clock.now();
  }

  /** Apply the configured group and start the loop; the first evaluation runs at once. */
  start(): void {
    this.init();
    this.beatTimer = setInterval(() => this.beat(), CONTROLLER_BEAT_MS);
    this.beatTimer.unref();
    this.schedule(0);
  }

  /**
   * Seed the configured groups that do not exist yet (the store rules: an operator's changes
   * survive a restart) and load what the last run decided (tests call tick() after it).
   */
  init(): void {
    const now = this.clock.now();
    for (const doc of this.cfg.seeds) {
      if (this.groups.seed(doc, 'controller (config)', now)) this.log.info({ groupId: doc.id, minSize: doc.minSize, maxSize: doc.maxSize }, 'group created from config');
    }
    const groups = this.groups.list();
    this.log.info({
      groups: groups.map((g) => g.id), provider: this.provider.name, intervalMs: this.cfg.intervalMs,
      bootTimeoutMs: this.cfg.bootTimeoutMs, listingGraceMs: this.cfg.listingGraceMs,
    }, 'controller starting');
    this.beat();
  }

  private memoryOf(groupId: string): GroupMemory {
    let mem = this.memory.get(groupId);
    if (mem === undefined) {
      const last = this.events.recentDecisions(groupId, 1)[0];
      mem = { ...freshMemory(), lastKey: last === undefined ? undefined : `${last.reason}:${last.from}:${last.to}` };
      this.memory.set(groupId, mem);
    }
    return mem;
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.tick().finally(() => {
        this.running = undefined;
        this.schedule(this.cfg.intervalMs);
      });
    }, delayMs);
  }

  /** One evaluation of every group in the store. Never throws. */
  async tick(): Promise<void> {
    const started = performance.now();
    let groups: GroupRow[] = [];
    try {
      groups = this.groups.list();
      for (const bad of this.groups.invalid) this.log.error({ groupId: bad.id, problem: bad.problem }, 'group skipped: its stored policy is invalid (fix it with autoscaler group apply)');
    } catch (err) {
      this.log.error({ err }, 'cannot read the groups');
    }
    this.pruneHistory();
    for (const group of groups) {
      try {
        await this.evaluate(group);
      } catch (err) {
        this.log.error({ err, groupId: group.id }, 'evaluation failed');
      }
    }
    this.ticks++;
    this.metrics?.tick((performance.now() - started) / 1000, this.clock.now());
  }

  private async evaluate(group: GroupRow): Promise<void> {
    this.dirty(group.id); // the monitor server may have written since the last evaluation
    const mem = this.memoryOf(group.id);
    if (mem.revision !== group.revision) {
      if (mem.revision !== undefined) this.log.info({ groupId: group.id, revision: group.revision, minSize: group.minSize, maxSize: group.maxSize }, 'policy change applied');
      mem.revision = group.revision;
    }

    let listing: ProviderListing;
    try {
      listing = await this.provider.list(group.id);
    } catch (err) {
      const e = asProviderError(err, group.id);
      this.failed(group.id, mem, e, 'list');
      this.hold(group, mem, 'ProviderUnavailable', `cannot list the group at ${this.provider.name}: ${e.code}: ${e.message}`);
      return;
    }
    const { unknown, unfinished } = this.reconcile(group, listing);

    if (group.paused) return this.hold(group, mem, 'Paused', 'group is paused: no scaling and no replacement');
    const now = this.clock.now();
    const monitor = this.components.get('monitor-server');
    const monitorAge = monitor === undefined ? undefined : now - monitor.heartbeatAt;
    if (monitorAge === undefined || monitorAge > this.cfg.monitorStaleMs) {
      const why = monitorAge === undefined ? 'monitor server has never reported' : `monitor server silent for ${Math.round(monitorAge / 1000)}s`;
      return this.hold(group, mem, 'MonitorUnavailable', `${why}: holding every action until it is back`);
    }
    if (listing.blocked !== undefined) return this.hold(group, mem, 'ProviderBlocked', `${listing.blocked}: holding every action`);
    if (now < mem.backoffUntil) {
      const e = mem.lastError;
      return this.hold(group, mem, 'ProviderBackoff',
        `provider call failed ${mem.failures} time(s) in a row (last: ${e?.code ?? 'error'}${e?.details.action ? ` on ${e.details.action}` : ''}); next try in ${Math.ceil((mem.backoffUntil - now) / 1000)}s`);
    }

    if (unknown.length > 0) await this.terminate(group, mem, unknown, 'not launched by this controller (CONTROLLER_UNKNOWN_INSTANCES=terminate)', false);
    if (unfinished.length > 0) await this.terminate(group, mem, unfinished, `still running ${Math.round(TERMINATE_RETRY_MS / 1000)}s after termination was asked: asking again`, false);
    await this.resumeIntents(group, mem);
    const frozen = this.failStatic(this.rows(group.id));
    if (frozen === undefined) await this.replaceUnhealthy(group, mem, listing);

    // Read → decide → act: observe() and decide() are pure; the store keeps the policy state.
    const policy = group.policy;
    const predictive = policy.predictive.mode !== 'off';
    const obs = observe({
      instances: capacity(this.rows(group.id)), inFlight: this.inFlight(group.id),
      minSize: group.minSize, maxSize: group.maxSize, warmupMs: policy.warmupMs, metricMaxAgeMs: this.cfg.metricMaxAgeMs,
      history: predictive ? this.minutes.range(group.id, now - policy.predictive.seasonMs - policy.predictive.leadMs - HISTORY_MARGIN_MS, now) : [],
      schedules: openWindows(policy.schedules, now), override: group.override, now,
    });
    const state = this.policyStates.get(group.id) ?? EMPTY_POLICY_STATE;
    const decided = decide(obs, policy, state, now);
    const next = decided.state;
    let d = decided.decision;
    if (frozen !== undefined) {
      const why = `${frozen.silent} of ${frozen.watched} instances silent at once: a partition or a monitor fault is likelier than that many deaths; no termination and no scale-in until it clears`;
      if (d.desired < d.current) d = { ...d, desired: d.current, reason: 'FailStatic', message: `${why} (the policy said ${d.desired}: ${d.message})`, trail: [...d.trail, 'FailStatic'] };
      else if (d.desired === d.current) d = { ...d, reason: 'FailStatic', message: `${why}; ${d.message}`, trail: [...d.trail, 'FailStatic'] };
      else d = { ...d, message: `${d.message}; ${why} (scale-out still allowed)`, trail: [...d.trail, 'FailStatic'] };
    }
    this.db.transaction(() => {
      // A dry run changed nothing: it must not spend rate-limit allowance or start cooldowns.
      this.policyStates.put(group.id, group.dryRun ? { ...next, scaleEvents: state.scaleEvents, stepLastAction: state.stepLastAction } : next, now);
      this.minutes.add(group.id, now, { ready: obs.ready.length, capacity: obs.current, cpu: demandOf(obs), mem: obs.ready.reduce((a, i) => a + i.mem, 0) });
    })();
    this.log.info({ groupId: group.id, from: d.current, to: d.desired, reason: d.reason, trail: d.trail, avgCpu: d.details.avgCpu ?? null, dryRun: group.dryRun }, 'scaling decision');
    this.metrics?.group(group.id, { desired: group.dryRun ? group.desired : d.desired, live: obs.current, minSize: group.minSize, maxSize: group.maxSize });
    this.log.debug({ groupId: group.id, observation: { ...obs, history: obs.history.length }, details: d.details, message: d.message }, 'decision inputs');
    if (group.dryRun) {
      this.record(group, mem, { ...d, desired: d.current, message: `dry-run, would go ${d.current} → ${d.desired}: ${d.message}`, details: { ...d.details, wouldBe: d.desired } });
      return;
    }
    this.record(group, mem, d);
    if (d.desired !== group.desired) this.groups.setDesired(group.id, d.desired, now);
    await this.converge(group, mem, listing, d.desired, d.reason);
  }

  /** Drop per-minute history older than MINUTES_RETENTION_MS, at most every PRUNE_EVERY_MS. */
  private pruneHistory(): void {
    const now = this.clock.now();
    if (now - this.prunedAt < PRUNE_EVERY_MS) return;
    this.prunedAt = now;
    try {
      const n = this.minutes.prune(now - MINUTES_RETENTION_MS);
      if (n > 0) this.log.debug({ removed: n }, 'pruned old per-minute history');
      // The oldest rows only, in a bounded chunk per run: a long-stopped controller catches up over a few runs.
      const h = this.retention.prune(now - this.cfg.historyRetentionMs, HISTORY_PRUNE_CHUNK);
      if (h.decisions + h.activities + h.groupEvents + h.launchIntents > 0) this.log.debug({ removed: h }, 'pruned old event log rows');
    } catch (err) {
      this.log.warn({ err }, 'cannot prune per-minute history');
    }
  }

  /** The group's stored instances (not terminated), read once per evaluation phase. */
  private rows(groupId: string): InstanceRow[] {
    let rows = this.rowsCache.get(groupId);
    if (rows === undefined) {
      rows = this.instances.listGroup(groupId);
      this.rowsCache.set(groupId, rows);
    }
    return rows;
  }

  /** The controller wrote the group's rows: read them again next time. */
  private dirty(groupId: string): void {
    this.rowsCache.delete(groupId);
  }

  /** Instances launches have been asked for but not yet recorded (open intents). */
  private inFlight(groupId: string): number {
    return this.intents.open(groupId).reduce((n, i) => n + i.count, 0);
  }

  /**
   * Align the store with the provider's listing, both ways. Returns the unknown instances to
   * terminate (when so configured); adoption happens here.
   */
  private reconcile(group: GroupRow, listing: ProviderListing): { unknown: string[]; unfinished: string[] } {
    // One transaction for the whole listing: thousands of rows cost one commit, not one each.
    this.writes = 0;
    const r = this.db.transaction(() => this.reconcileRows(group, listing))();
    if (this.writes > 0) this.dirty(group.id);
    return r;
  }

  private reconcileRows(group: GroupRow, listing: ProviderListing): { unknown: string[]; unfinished: string[] } {
    const now = this.clock.now();
    const listed = new Map(listing.instances.map((p) => [p.id, p]));

    // Launches whose result was never recorded (a crash): their instances carry the token.
    for (const intent of this.intents.open(group.id)) {
      const found = listing.instances.filter((p) => p.launchToken === intent.token && p.state !== 'gone');
      if (found.length > 0) this.recordLaunched(group.id, intent, found, 'found by its launch token');
    }

    const unfinished: string[] = [];
    const rows = this.rows(group.id);
    const known = new Set(rows.map((r) => r.id));
    for (const row of rows) {
      const p = listed.get(row.id);
      if (p !== undefined) {
        if (changed(row, p)) {
          this.instances.observe(facts(p), now);
          this.writes++;
        }
        if (p.state === 'gone') this.gone(group.id, row, p.detail);
        // Accepted (or refused) long ago and still running: ask again, it is idempotent.
        else if (row.state === 'terminating' && p.state !== 'terminating' && now - (row.terminateRequestedAt ?? row.stateChangedAt) > TERMINATE_RETRY_MS) unfinished.push(row.id);
        continue;
      }
      // Not listed: the listing lags launches (eventual consistency), so wait out the grace.
      const since = row.launchedAt ?? row.registeredAt ?? row.stateChangedAt;
      if (now - since < this.cfg.listingGraceMs) continue;
      this.gone(group.id, row, `not listed by ${this.provider.name}`);
    }

    const unknown: string[] = [];
    const strangers = listing.instances.filter((p) => p.state !== 'gone' && p.state !== 'terminating' && !known.has(p.id) && this.instances.get(p.id) === undefined);
    for (const p of strangers) {
      if (this.provider.lifecycle === 'controller' && this.cfg.unknownInstances === 'terminate') {
        unknown.push(p.id);
        continue;
      }
      const cause = this.provider.lifecycle === 'cloud' ? `launched by ${this.provider.name}` : 'found at the provider, not launched by this controller';
      // A fresh boot timeout: an adopted instance is given as long as our own launches to register.
      this.instances.insertLaunched(group.id, [{ ...facts(p), launchedAt: now }], 'adopted', `adopted: ${cause}`, now);
      this.writes++;
      this.activity(group.id, p.id, 'adopt', cause, undefined);
      this.log.info({ groupId: group.id, instanceId: p.id, state: p.state, zone: p.zone }, 'instance adopted');
    }
    return { unknown, unfinished };
  }

  /** The provider says the instance is gone (or has stopped listing it). */
  private gone(groupId: string, row: InstanceRow, detail: string): void {
    const now = this.clock.now();
    this.writes++;
    if (row.state === 'terminating') {
      this.instances.setState(row.id, 'terminated', `terminated (${detail})`, now);
    } else if (row.state !== 'dead') {
      // No need to wait for heartbeats to time out; replaceUnhealthy takes it from here.
      this.instances.setState(row.id, 'dead', `instance gone: ${detail}`, now);
      this.log.warn({ groupId, instanceId: row.id, detail }, 'instance gone at provider');
    }
  }

  /**
   * Open intents that are not in the listing yet: retry the launch with the same token (it
   * launches nothing twice), or give up once the boot timeout has passed.
   */
  private async resumeIntents(group: GroupRow, mem: GroupMemory): Promise<void> {
    for (const intent of this.intents.open(group.id)) {
      const now = this.clock.now();
      if (now - intent.createdAt > this.cfg.bootTimeoutMs) {
        this.intents.close(intent.token, 'failed', 'no instance seen within the boot timeout', now);
        this.activity(group.id, intent.token, 'launch', intent.cause, `no instance seen within ${Math.round(this.cfg.bootTimeoutMs / 1000)}s`);
        continue;
      }
      this.log.info({ groupId: group.id, token: intent.token, count: intent.count, attempts: intent.attempts }, 'retrying an unfinished launch with its token');
      if (!(await this.callLaunch(group, mem, intent))) return;
    }
  }

  /**
   * Is a large share of the group silent at once? Then it is more likely a partition or a monitor
   * fault than that many deaths: fail static (no termination, no scale-in) until it clears.
   */
  private failStatic(instances: readonly InstanceRow[]): { silent: number; watched: number } | undefined {
    const watched = instances.filter((i) => i.state === 'running' || i.state === 'suspect' || (i.state === 'dead' && !goneAtProvider(i)));
    const silent = watched.filter((i) => i.state !== 'running').length;
    return silent >= 2 && silent >= this.cfg.failStaticShare * watched.length ? { silent, watched: watched.length } : undefined;
  }

  /**
   * Terminate what died and launches that never registered; launch their replacements. Death
   * needs the provider's agreement: an instance the provider still runs but whose agent is silent
   * is "unreachable" and replaced only after CONTROLLER_UNREACHABLE_REPLACE_MS. Replacements of
   * instances that may still serve are limited to CONTROLLER_MAX_REPLACE_PERCENT of the group at
   * a time (at least one), as AWS Auto Scaling replaces at most 10 % at once.
   */
  private async replaceUnhealthy(group: GroupRow, mem: GroupMemory, listing: ProviderListing): Promise<void> {
    const now = this.clock.now();
    const instances = this.rows(group.id);
    const listed = new Map(listing.instances.map((p) => [p.id, p]));
    type Unhealthy = { i: InstanceRow; cause: string; limited: boolean };
    const unhealthy: Unhealthy[] = [];
    for (const i of instances) {
      if (i.state === 'dead') {
        const p = listed.get(i.id);
        const providerRuns = p !== undefined && (p.state === 'running' || p.state === 'pending');
        if (goneAtProvider(i) || !providerRuns) unhealthy.push({ i, cause: `dead (${i.stateReason ?? 'no heartbeat'})`, limited: false });
        else if (now - i.stateChangedAt >= this.cfg.unreachableReplaceMs) {
          unhealthy.push({ i, cause: `unreachable for ${Math.round((now - i.stateChangedAt) / 1000)}s (${i.stateReason ?? 'no heartbeat'}; ${this.provider.name} still runs it)`, limited: true });
        }
      } else if (i.state === 'pending' && now - (i.launchedAt ?? now) > this.cfg.bootTimeoutMs) {
        unhealthy.push({ i, cause: `did not register within ${Math.round(this.cfg.bootTimeoutMs / 1000)}s of launch`, limited: true });
      }
    }
    if (unhealthy.length === 0) return;
    // At most this many replacements of possibly-serving instances in flight at once.
    const size = Math.max(group.desired, capacity(instances).length);
    const atOnce = Math.max(1, Math.floor((size * this.cfg.maxReplacePercent) / 100));
    const inFlight = instances.filter((i) => i.state === 'pending' && (i.stateReason ?? '').startsWith('ReplaceUnhealthy')).length;
    let room = Math.max(0, atOnce - inFlight);
    const chosen = unhealthy.filter((u) => !u.limited || room-- > 0);
    const deferred = unhealthy.length - chosen.length;
    if (chosen.length === 0) return;
    const remaining = capacity(instances).filter((i) => !chosen.some((u) => u.i.id === i.id)).length + this.inFlight(group.id);
    const target = Math.max(group.minSize, Math.min(group.maxSize, group.desired));
    const message = chosen.map((u) => `${u.i.id} ${u.cause}`).join('; ');
    this.record(group, mem, {
      current: remaining, desired: target, reason: 'ReplaceUnhealthy',
      message: `replacing ${chosen.length} instance(s): ${message}${deferred > 0 ? `; ${deferred} more wait (at most ${atOnce} at a time)` : ''}`, trail: ['ReplaceUnhealthy'],
      details: { replaced: chosen.map((u) => u.i.id).join(','), deferred },
    });
    const cause = `replace: ${message}`;
    // On a cloud-owned group, terminating without decrement makes the cloud launch the replacement.
    if (!(await this.terminate(group, mem, chosen.map((u) => u.i.id), cause, false))) return;
    if (this.provider.lifecycle === 'controller') await this.converge(group, mem, listing, target, 'ReplaceUnhealthy');
  }

  /** Launch or terminate until the group's capacity matches `desired`. */
  private async converge(group: GroupRow, mem: GroupMemory, listing: ProviderListing, desired: number, reason: DecisionReason): Promise<void> {
    const live = capacity(this.rows(group.id));
    if (this.provider.lifecycle === 'cloud') {
      // The cloud launches on its own to its desired count: raise it; lower it by choosing victims.
      const cloudDesired = listing.capacity?.desired ?? live.length;
      if (desired > live.length && desired !== cloudDesired) await this.setCloudDesired(group, mem, desired, cloudDesired, reason);
      else if (desired < live.length) await this.scaleIn(group, mem, live, live.length - desired, reason);
      return;
    }
    const current = live.length + this.inFlight(group.id);
    if (desired > current) {
      const count = desired - current;
      const token = this.newToken();
      const cause = `${reason}: scale out to ${desired}`;
      this.intents.create(token, group.id, count, cause, this.clock.now());
      const intent = this.intents.get(token) as LaunchIntent;
      await this.callLaunch(group, mem, intent);
    } else if (desired < live.length) {
      await this.scaleIn(group, mem, live, live.length - desired, reason);
    }
  }

  private async scaleIn(group: GroupRow, mem: GroupMemory, live: readonly InstanceRow[], count: number, reason: DecisionReason): Promise<void> {
    const choice = chooseVictims(live.map((i) => ({
      id: i.id, state: i.state, zone: i.zone, launchedAt: i.launchedAt ?? i.registeredAt ?? i.stateChangedAt, cpu: i.cpu,
    })), count, this.cfg.scaleInOrder);
    this.log.info({ groupId: group.id, victims: choice.victims, order: this.cfg.scaleInOrder }, 'scale-in victims chosen');
    await this.terminate(group, mem, choice.victims, `${reason}: scale in, ${choice.message}`, true);
  }

  /**
   * One provider call for the whole intent. Accepted instances are recorded with the intent
   * closed, in one transaction. A failure that may have launched something (a timeout, a 5xx)
   * leaves the intent open, to be retried with the same token. Returns false on failure.
   */
  private async callLaunch(group: GroupRow, mem: GroupMemory, intent: LaunchIntent): Promise<boolean> {
    this.intents.attempt(intent.token);
    try {
      const result = await this.provider.launch({ groupId: group.id, token: intent.token, count: intent.count });
      this.recordLaunched(group.id, intent, result.instances, 'launched');
      if (result.shortfall !== undefined) {
        this.activity(group.id, intent.token, 'launch', intent.cause, `${intent.count - result.instances.length} of ${intent.count} not launched: ${result.shortfall.code}: ${result.shortfall.message}`);
      }
      mem.failures = 0;
      return true;
    } catch (err) {
      const e = asProviderError(err, group.id);
      const ambiguous = e.code === 'Unavailable' || e.code === 'Unknown';
      if (!ambiguous) this.intents.close(intent.token, 'failed', `${e.code}: ${e.message}`, this.clock.now());
      this.activity(group.id, intent.token, 'launch', intent.cause, `${e.code}: ${e.message}${ambiguous ? ' (will retry with the same token)' : ''}`);
      this.failed(group.id, mem, e, 'launch');
      return false;
    }
  }

  /** Store what a launch produced and close its intent, atomically. */
  private recordLaunched(groupId: string, intent: LaunchIntent, launched: readonly ProviderInstance[], how: string): void {
    const now = this.clock.now();
    this.dirty(groupId);
    this.writes++;
    this.db.transaction(() => {
      // Our own clock starts the boot timeout, not the cloud's LaunchTime.
      this.instances.insertLaunched(groupId, launched.map((p) => ({ ...facts(p), launchToken: intent.token, launchedAt: now })), 'launched', intent.cause, now);
      this.intents.close(intent.token, 'done', null, now);
      for (const p of launched) this.activity(groupId, p.id, 'launch', `${intent.cause} (${how}, token ${intent.token})`, undefined);
    })();
    this.log.info({ groupId, token: intent.token, instances: launched.map((p) => p.id), how }, 'launch accepted');
  }

  /** Ask the provider to terminate; accepted ones stay `terminating` until the listing shows them gone. */
  private async terminate(group: GroupRow, mem: GroupMemory, ids: readonly string[], cause: string, decrement: boolean): Promise<boolean> {
    if (ids.length === 0) return true;
    const now = this.clock.now();
    this.dirty(group.id);
    for (const id of ids) this.instances.requestTerminate(id, cause, now);
    let result;
    try {
      result = await this.provider.terminate({ groupId: group.id, ids, decrement });
    } catch (err) {
      const e = asProviderError(err, group.id);
      for (const id of ids) this.activity(group.id, id, 'terminate', cause, `${e.code}: ${e.message}`);
      this.failed(group.id, mem, e, 'terminate');
      return false;
    }
    for (const id of result.accepted) this.activity(group.id, id, 'terminate', cause, undefined);
    for (const f of result.failed) this.activity(group.id, f.id, 'terminate', cause, `${f.error.code}: ${f.error.message}`);
    if (result.failed.length > 0) {
      this.failed(group.id, mem, result.failed[0]?.error as ProviderError, 'terminate');
      return false;
    }
    mem.failures = 0;
    return true;
  }

  private async setCloudDesired(group: GroupRow, mem: GroupMemory, desired: number, from: number, reason: DecisionReason): Promise<void> {
    const cause = `${reason}: desired ${from} → ${desired}`;
    try {
      await this.provider.setDesiredCapacity({ groupId: group.id, desired });
      this.activity(group.id, '-', 'set-desired', cause, undefined);
      mem.failures = 0;
    } catch (err) {
      const e = asProviderError(err, group.id);
      this.activity(group.id, '-', 'set-desired', cause, `${e.code}: ${e.message}`);
      this.failed(group.id, mem, e, 'set-desired');
    }
  }

  /** A provider call failed: log it once with its code, and back off before the next action. */
  private failed(groupId: string, mem: GroupMemory, e: ProviderError, op: string): void {
    mem.failures++;
    mem.lastError = e;
    const backoff = Math.min(MAX_PROVIDER_BACKOFF_MS, this.cfg.intervalMs * 2 ** Math.min(mem.failures - 1, 16));
    mem.backoffUntil = this.clock.now() + backoff;
    const level = e.code === 'Throttled' || e.code === 'InsufficientCapacity' ? 'warn' : 'error';
    this.log[level]({ err: e, groupId, op, code: e.code, cloudCode: e.details.cloudCode, action: e.details.action, retryable: e.retryable, backoffMs: backoff }, 'provider call failed');
  }

  private activity(groupId: string, instanceId: string, action: ActivityAction, cause: string, error: string | undefined): void {
    this.events.recordActivity({ ts: this.clock.now(), groupId, instanceId, action, cause, outcome: error === undefined ? 'ok' : 'failed', error: error ?? null });
  }

  private hold(group: GroupRow, mem: GroupMemory, reason: DecisionReason, message: string): void {
    const current = capacity(this.rows(group.id)).length;
    this.record(group, mem, { current, desired: group.desired, reason, message, trail: [reason], details: {} });
  }

  /** Record a decision unless it repeats the last one recorded for the group. */
  private record(group: GroupRow, mem: GroupMemory, d: ScalingDecision): void {
    const key = `${d.reason}:${d.current}:${d.desired}`;
    if (key === mem.lastKey) return;
    mem.lastKey = key;
    this.events.recordDecision(group.id, d, this.clock.now());
    this.metrics?.decision(group.id, d);
  }

  private beat(): void {
    try {
      this.components.beat({ name: 'controller', pid: process.pid, startedAt: this.startedAt, info: { provider: this.provider.name, version: version(), ticks: this.ticks, intervalMs: this.cfg.intervalMs } }, this.clock.now());
    } catch (err) {
      this.log.warn({ err }, 'cannot write component heartbeat');
    }
  }

  /** Stop the loop after the evaluation in flight, then close the provider. */
  async close(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.beatTimer);
    await this.running;
    const live = this.groups.list().flatMap((g) => this.instances.listGroup(g.id));
    await this.provider.close();
    if (this.provider.instancesEndWithController) {
      const now = this.clock.now();
      for (const i of live) this.instances.setState(i.id, 'terminated', `controller stopped (${this.provider.name} instances end with it)`, now);
    }
    try {
      this.components.remove('controller', process.pid);
    } catch (err) {
      this.log.warn({ err }, 'cannot clear component row');
    }
    this.log.info({ ticks: this.ticks }, 'controller stopped');
  }
}

function freshMemory(): GroupMemory {
  return { lastKey: undefined, failures: 0, backoffUntil: 0, lastError: undefined, revision: undefined };
}

/** Instances that count as capacity: launched and not dead or on their way out. */
function capacity(instances: readonly InstanceRow[]): InstanceRow[] {
  return instances.filter((i) => i.state === 'pending' || i.state === 'running' || i.state === 'suspect');
}

/** Whether the listing says something about the row that the store does not hold yet. */
function changed(row: InstanceRow, p: ProviderInstance): boolean {
  return row.providerId !== p.id || row.providerState !== p.state
    || (p.zone !== undefined && row.zone !== p.zone) || (p.instanceType !== undefined && row.instanceType !== p.instanceType)
    || (p.launchToken !== undefined && row.launchToken === null) || (p.launchedAt !== undefined && row.launchedAt === null);
}

/** The controller marked it dead because the provider reports it gone (not a heartbeat timeout). */
function goneAtProvider(i: InstanceRow): boolean {
  return (i.stateReason ?? '').startsWith('instance gone');
}

function facts(p: ProviderInstance): ProviderFacts {
  return { id: p.id, providerState: p.state, launchToken: p.launchToken, launchedAt: p.launchedAt, zone: p.zone, instanceType: p.instanceType, address: p.address };
}
