/**
 * The admin CLI for groups and policies: `group list|apply`, `policy show|set|validate|history`,
 * `scale`, `pause`, `resume`, `dry-run`. Each writes the store (the source of truth) and records
 * an event with the OS user; the running controller applies the change at its next evaluation.
 */
import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { formatProblems, parseGroup, parsePolicy, type GroupDocument, type PolicyProblem } from '../domain/policy.js';
import { ProfileSpecError, parseDuration } from '../sim/profile.js';
import type { Db } from '../store/db.js';
import type { PolicyState } from '../domain/state.js';
import type { GroupRow, GroupStore } from '../store/groups.js';
import { clean } from './format.js';

/** Errors an operator can fix; printed without a stack, exit 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** How the commands reach the store (cli/main.ts owns opening it). */
export interface StoreAccess {
  /** Open the database for these options, run `f`, close it. */
  withDb<T>(opts: { db?: string }, readonly: boolean, f: (db: Db) => T | Promise<T>): Promise<T>;
}

/** Who is acting: the OS user, as `autoscaler events` shows it. */
export function actor(): string {
  try {
    return userInfo().username || process.env.USER || 'unknown';
  } catch {
    return process.env.USER ?? 'unknown';
  }
}

const out = (s: string): void => {
  process.stdout.write(`${s}\n`);
};

async function groupStore(db: Db): Promise<GroupStore> {
  const { GroupStore } = await import('../store/groups.js');
  return new GroupStore(db);
}

function mustGet(groups: GroupStore, id: string): GroupRow {
  const g = groups.get(id);
  if (g === undefined) throw new UsageError(`no group "${id}" (autoscaler group list shows them; autoscaler group apply FILE creates one)`);
  return g;
}

function readJson(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new UsageError(`${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${path}: not valid JSON (${(err as Error).message})`);
  }
}

function refuse(what: string, problems: readonly PolicyProblem[]): never {
  throw new UsageError(`${what} is invalid:\n${formatProblems(problems).split('\n').map((l) => `  - ${l}`).join('\n')}`);
}

/** Schedules need their cron and time zone checked too (croner), beyond the schema. */
async function scheduleProblems(doc: { policy: GroupDocument['policy'] }, prefix: string): Promise<PolicyProblem[]> {
  const { scheduleProblem } = await import('../controller/schedules.js');
  return doc.policy.schedules.flatMap((s, n) => {
    const p = scheduleProblem(s);
    return p === undefined ? [] : [{ path: `${prefix}schedules.${n}.${p.field}`, message: p.message }];
  });
}

/** Validate a group document; throws a UsageError naming every field at fault. */
async function validGroup(input: unknown, what: string): Promise<GroupDocument> {
  const r = parseGroup(input);
  if (!r.ok) refuse(what, r.problems);
  const more = await scheduleProblems(r.value, 'policy.');
  if (more.length > 0) refuse(what, more);
  return r.value;
}

/** Set `value` at a dotted path (`targetTracking.0.target`) in a copy of `doc`. */
export function setPath(doc: unknown, path: string, value: unknown): unknown {
  const keys = path.split('.');
  if (keys.some((k) => k === '' || k === '__proto__' || k === 'constructor' || k === 'prototype')) throw new UsageError(`bad path "${path}"`);
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

/** A command-line value: JSON when it parses (numbers, true, objects), else the string. */
function parseValue(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function describeGroup(g: GroupRow, forecast: PolicyState['forecast'], next: (s: GroupRow['policy']['schedules'][number]) => string): string {
  const p = g.policy;
  const lines = [
    `group ${g.id} · revision ${g.revision} · min ${g.minSize} max ${g.maxSize} desired ${g.desired}${g.paused ? ' · PAUSED' : ''}${g.dryRun ? ' · DRY-RUN' : ''}`,
    ...(g.override === undefined ? [] : [`  manual capacity ${g.override.desired} by ${clean(g.override.by)}${g.override.until === null ? ' until cleared' : ` until ${new Date(g.override.until).toISOString()}`}`]),
    `  warm-up ${p.warmupMs} ms`,
    ...p.targetTracking.map((t) => `  target tracking: ${t.metric} ${t.target}% (tolerance +${t.toleranceUp} / −${t.toleranceDown})`),
    `  behavior: up ${p.behavior.scaleUp.selectPolicy} of [${p.behavior.scaleUp.policies.map((r) => `${r.type === 'instances' ? `+${r.value}` : `+${r.value}%`}/${r.periodMs / 1000}s`).join(', ')}], window ${p.behavior.scaleUp.stabilizationMs / 1000}s; `
      + `down ${p.behavior.scaleDown.selectPolicy} of [${p.behavior.scaleDown.policies.map((r) => `${r.type === 'instances' ? `−${r.value}` : `−${r.value}%`}/${r.periodMs / 1000}s`).join(', ')}], window ${p.behavior.scaleDown.stabilizationMs / 1000}s`,
    `  saturation: ${p.saturation.enabled ? `${p.saturation.metric} ≥ ${p.saturation.level}% on ${p.saturation.share * 100}% of ready instances` : 'off'}`,
    ...p.step.map((s) => `  step ${s.name}: ${s.metric} ${s.comparison === 'gt' ? '>' : '<'} ${s.threshold}% → ${s.adjustmentType} ${s.steps.map((x) => (s.comparison === 'gt' ? `[${x.lower ?? '-∞'}, ${x.upper ?? '∞'})` : `(${x.lower ?? '-∞'}, ${x.upper ?? '∞'}]`) + `: ${x.adjustment}`).join(' ')}, cooldown ${s.cooldownMs / 1000}s`),
    ...p.schedules.map((s) => `  schedule ${s.name}: "${s.cron}" ${s.timezone} for ${s.durationMs / 60_000} min →${s.minSize !== undefined ? ` min ${s.minSize}` : ''}${s.maxSize !== undefined ? ` max ${s.maxSize}` : ''}${s.desired !== undefined ? ` desired ≥ ${s.desired}` : ''}; ${next(s)}`),
    `  predictive: ${p.predictive.mode}${p.predictive.mode === 'off' ? '' : ` (${p.predictive.metric} at ${p.predictive.target}%, lead ${p.predictive.leadMs / 1000}s, season ${p.predictive.seasonMs / 3_600_000}h)`}`
      + (forecast === undefined ? (p.predictive.mode === 'off' ? '' : '; no forecast yet (needs a season of history)')
        : `; last forecast at ${new Date(forecast.at).toISOString()}: demand ${forecast.demand.toFixed(0)}% at ${new Date(forecast.forAt).toISOString()} → ${forecast.desired} instance(s)`),
    `  outage guard: ${p.outageGuard.enabled ? `a drop of ${p.outageGuard.drop * 100}% within ${p.outageGuard.windowMs / 1000}s holds scale-in for ${p.outageGuard.holdMs / 1000}s` : 'off'}`,
  ];
  return lines.join('\n');
}

/** Register the group and policy commands on the program. */
export function addGroupCommands(program: Command, store: StoreAccess): void {
  const group = program.command('group').description('scaling groups: the store is the source of truth');
  group
    .command('list')
    .description('every group with its bounds, revision and state')
    .option('--json', 'print the group documents as JSON')
    .option('--db <path>', 'SQLite file (AUTOSCALER_DB)')
    .action((opts: { json?: boolean; db?: string }) => store.withDb(opts, true, async (db) => {
      const groups = (await groupStore(db)).list();
      if (opts.json) return out(JSON.stringify(groups, null, 2));
      if (groups.length === 0) return out('no groups (autoscaler group apply FILE creates one)');
      const now = Date.now();
      for (const g of groups) {
        const manual = g.override !== undefined && (g.override.until === null || g.override.until > now) ? `  manual ${g.override.desired}` : '';
        out(`${g.id}  min ${g.minSize} max ${g.maxSize} desired ${g.desired}  revision ${g.revision}${g.paused ? '  paused' : ''}${g.dryRun ? '  dry-run' : ''}${manual}`);
      }
    }));
  group
    .command('apply')
    .description('create or change groups from a JSON file (one group document, or an array): {"id", "minSize", "maxSize", "policy"}')
    .argument('<file>', 'JSON file')
    .option('--db <path>', 'SQLite file (AUTOSCALER_DB)')
    .action(async (file: string, opts: { db?: string }) => {
      const raw = readJson(file);
      const docs = await Promise.all((Array.isArray(raw) ? raw : [raw]).map((d, n) => validGroup(d, `${file}${Array.isArray(raw) ? ` group ${n}` : ''}`)));
      await store.withDb(opts, false, async (db) => {
        const groups = await groupStore(db);
        for (const d of docs) {
          const r = groups.apply(d, actor(), Date.now());
          out(r.created ? `group ${d.id} created` : r.changes.length === 0 ? `group ${d.id} unchanged` : `group ${d.id} revision ${r.row.revision}: ${r.changes.map((c) => c.path).join(', ')}`);
        }
      });
    });

  const policy = program.command('policy').description('a group\'s scaling policy: show, change while it runs, validate, history');
  policy
    .command('show')
    .description('the policy in force, with every default filled')
    .argument('<group>', 'group id')
    .option('--json', 'print the group document as JSON (what group apply takes)')
    .option('--db <path>', 'SQLite file (AUTOSCALER_DB)')
    .action((id: string, opts: { json?: boolean; db?: string }) => store.withDb(opts, true, async (db) => {
      const g = mustGet(await groupStore(db), id);
      const { PolicyStateStore } = await import('../store/policy-state.js');
      const { nextWindow, openWindows } = await import('../controller/schedules.js');
      const now = Date.now();
      const next = (s: GroupRow['policy']['schedules'][number]) => {
        const open = openWindows([s], now)[0];
        if (open !== undefined) return `open until ${new Date(open.endsAt).toISOString()}`;
        const w = nextWindow(s, now);
        return w === undefined ? 'never opens' : `next ${new Date(w.startsAt).toISOString()} – ${new Date(w.endsAt).toISOString()}`;
      };
      out(opts.json ? JSON.stringify({ id: g.id, minSize: g.minSize, maxSize: g.maxSize, policy: g.policy }, null, 2) : describeGroup(g, new PolicyStateStore(db).get(id)?.forecast, next));
    }));
  policy
    .command('set')
    .description('change fields of a group\'s document: PATH=VALUE… (e.g. policy.targetTracking.0.target=60 maxSize=8), or --file with a policy document')
    .argument('<group>', 'group id')
    .argument('[changes...]', 'PATH=VALUE; VALUE is JSON when it parses; a path without "policy." or a bound is taken inside the policy')
    .option('--file <file>', 'a whole policy document (JSON)')
    .option('--db <path>', 'SQLite file (AUTOSCALER_DB)')
    .action(async (id: string, changes: string[], opts: { file?: string; db?: string }) => {
      if (changes.length === 0 && opts.file === undefined) throw new UsageError('nothing to change: give PATH=VALUE pairs or --file');
      await store.withDb(opts, false, async (db) => {
        const groups = await groupStore(db);
        const g = mustGet(groups, id);
        let doc: unknown = { id: g.id, minSize: g.minSize, maxSize: g.maxSize, policy: opts.file === undefined ? g.policy : readJson(opts.file) };
        for (const c of changes) {
          const eq = c.indexOf('=');
          if (eq <= 0) throw new UsageError(`"${c}" is not PATH=VALUE`);
          const path = c.slice(0, eq);
          const full = /^(policy\.|minSize$|maxSize$)/.test(path) ? path : `policy.${path}`;
          doc = setPath(doc, full, parseValue(c.slice(eq + 1)));
        }
        const valid = await validGroup(doc, `group ${id}`);
        const r = groups.apply(valid, actor(), Date.now());
        out(r.changes.length === 0 ? `group ${id} unchanged` : `group ${id} revision ${r.row.revision}: ${r.changes.map((ch) => `${ch.path} ${JSON.stringify(ch.from)} → ${JSON.stringify(ch.to)}`).join(', ')}\nthe controller applies it at its next evaluation`);
      });
    });
  policy
    .command('validate')
    .description('check a file (a policy document, or a group document with "id") without applying it')
    .argument('<file>', 'JSON file')
    .action(async (file: string) => {
      const raw = readJson(file);
      const isGroup = typeof raw === 'object' && raw !== null && 'id' in raw;
      if (isGroup) await validGroup(raw, file);
      else {
        const r = parsePolicy(raw);
        if (!r.ok) refuse(file, r.problems);
        const more = await scheduleProblems({ policy: r.value }, '');
        if (more.length > 0) refuse(file, more);
      }
      out(`${file}: valid ${isGroup ? 'group' : 'policy'} document`);
    });
  policy
    .command('history')
    .description('who changed the group, when, and what (old → new), newest first')
    .argument('<group>', 'group id')
    .option('--limit <n>', 'how many', '20')
    .option('--json', 'one JSON object per line')
    .option('--db <path>', 'SQLite file (AUTOSCALER_DB)')
    .action((id: string, opts: { limit: string; json?: boolean; db?: string }) => store.withDb(opts, true, async (db) => {
      const limit = positive(opts.limit, '--limit');
      const groups = await groupStore(db);
      mustGet(groups, id);
      for (const e of groups.events(id, limit)) out(opts.json ? JSON.stringify(e) : `${new Date(e.ts).toISOString()}  ${e.kind.padEnd(8)} ${clean(e.actor).padEnd(20)} ${clean(e.message)}`);
    }));

  program
    .command('scale')
    .description('set a group\'s capacity by hand, over the policies, for a while (--for) or until --clear')
    .argument('<group>', 'group id')
    .option('--desired <n>', 'instances')
    .option('--for <time>', 'how long, e.g. 30m, 2h (default: until cleared)')
    .option('--clear', 'give the group back to its policies')
    .option('--db <path>', 'SQLite file (AUTOSCALER_DB)')
    .action(async (id: string, opts: { desired?: string; for?: string; clear?: boolean; db?: string }) => {
      if (opts.clear === (opts.desired !== undefined)) throw new UsageError('give --desired N (optionally --for 30m), or --clear');
      const desired = opts.desired === undefined ? undefined : count(opts.desired, '--desired');
      let forMs: number | undefined;
      if (opts.for !== undefined) {
        try {
          forMs = parseDuration(opts.for);
        } catch (err) {
          if (err instanceof ProfileSpecError) throw new UsageError(`--for: ${err.message}`);
          throw err;
        }
      }
      await store.withDb(opts, false, async (db) => {
        const groups = await groupStore(db);
        const g = mustGet(groups, id);
        if (desired !== undefined && (desired < g.minSize || desired > g.maxSize)) throw new UsageError(`--desired ${desired} is outside the group's bounds ${g.minSize}..${g.maxSize} (change them with policy set ${id} minSize=… maxSize=…)`);
        const now = Date.now();
        groups.setOverride(id, desired === undefined ? undefined : { desired, until: forMs === undefined ? null : now + forMs }, now, actor());
        out(desired === undefined ? `group ${id}: manual capacity cleared` : `group ${id}: capacity ${desired}${forMs === undefined ? ' until cleared' : ` for ${opts.for}`}; the controller applies it at its next evaluation`);
      });
    });

  for (const [name, paused] of [['pause', true], ['resume', false]] as const) {
    program
      .command(name)
      .description(paused ? 'stop scaling and replacing a group (it keeps its instances)' : 'let a paused group scale again')
      .argument('<group>', 'group id')
      .option('--reason <text>', 'why, for the event log')
      .option('--db <path>', 'SQLite file (AUTOSCALER_DB)')
      .action((id: string, opts: { reason?: string; db?: string }) => store.withDb(opts, false, async (db) => {
        const groups = await groupStore(db);
        mustGet(groups, id);
        groups.setPaused(id, paused, Date.now(), actor(), opts.reason ?? '');
        out(`group ${id} ${paused ? 'paused' : 'resumed'}`);
      }));
  }

  program
    .command('dry-run')
    .description('on: the group\'s decisions are recorded but nothing is launched or terminated; off: act again')
    .argument('<group>', 'group id')
    .argument('<state>', 'on or off')
    .option('--db <path>', 'SQLite file (AUTOSCALER_DB)')
    .action((id: string, state: string, opts: { db?: string }) => {
      if (state !== 'on' && state !== 'off') throw new UsageError(`dry-run takes on or off (got "${state}")`);
      return store.withDb(opts, false, async (db) => {
        const groups = await groupStore(db);
        mustGet(groups, id);
        groups.setDryRun(id, state === 'on', Date.now(), actor());
        out(`group ${id}: dry-run ${state}`);
      });
    });
}

function count(text: string, what: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n) || n > 10_000) throw new UsageError(`${what} must be a whole number from 0 to 10000 (got "${text}")`);
  return n;
}

/** A positive whole number option; refused otherwise (never a silent default). */
export function positive(text: string, what: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || n < 1 || !Number.isSafeInteger(n)) throw new UsageError(`${what} must be a positive whole number (got "${text}")`);
  return n;
}
