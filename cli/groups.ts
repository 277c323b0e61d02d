/**
 * The admin CLI for groups and policies: `group list|apply`, `policy show|set|validate|history`,
 * `scale`, `pause`, `resume`, `dry-run`, `instances`, `load`. Each goes through an Admin
 * (api/admin.ts): on the SQLite file, or with `--api URL` through the HTTP API, with the same
 * validation and the same refusals either way. Changes record an event with who made them; the
 * running controller applies them at its next evaluation.
 */
import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import type { Admin, GroupDetail } from '../api/admin.js';
import { ProfileSpecError, parseDuration } from '../sim/profile.js';
import type { GroupRow } from '../store/groups.js';
import { clean, table } from './format.js';

/** The most instances `scale --desired` accepts. */
const MAX_DESIRED = 10_000;

/** Errors an operator can fix; printed without a stack, exit 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** How the commands reach an Admin (cli/main.ts owns opening the store or the API client). */
export interface AdminAccess {
  /** Run `f` with an Admin for these options (`--db`, or `--api`), then release it. */
  withAdmin<T>(opts: { db?: string; api?: string }, readonly: boolean, f: (admin: Admin) => Promise<T>): Promise<T>;
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

/** A command-line value: JSON when it parses (numbers, true, objects), else the string. */
function parseValue(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function describeGroup(d: GroupDetail): string {
  const g = d.group;
  const p = g.policy;
  const forecast = d.forecast;
  const next = (name: string) => {
    const s = d.schedules.find((x) => x.name === name);
    if (s === undefined) return '';
    if (s.openUntil !== null) return `open until ${new Date(s.openUntil).toISOString()}`;
    return s.next === null ? 'never opens' : `next ${new Date(s.next.startsAt).toISOString()} – ${new Date(s.next.endsAt).toISOString()}`;
  };
  const lines = [
    `group ${g.id} · revision ${g.revision} · min ${g.minSize} max ${g.maxSize} desired ${g.desired}${g.paused ? ' · PAUSED' : ''}${g.dryRun ? ' · DRY-RUN' : ''}`,
    ...(g.override === undefined ? [] : [`  manual capacity ${g.override.desired} by ${clean(g.override.by)}${g.override.until === null ? ' until cleared' : ` until ${new Date(g.override.until).toISOString()}`}`]),
    `  warm-up ${p.warmupMs} ms`,
    ...p.targetTracking.map((t) => `  target tracking: ${t.metric} ${t.target}% (tolerance +${t.toleranceUp} / −${t.toleranceDown})`),
    `  behavior: up ${p.behavior.scaleUp.selectPolicy} of [${p.behavior.scaleUp.policies.map((r) => `${r.type === 'instances' ? `+${r.value}` : `+${r.value}%`}/${r.periodMs / 1000}s`).join(', ')}], window ${p.behavior.scaleUp.stabilizationMs / 1000}s; `
      + `down ${p.behavior.scaleDown.selectPolicy} of [${p.behavior.scaleDown.policies.map((r) => `${r.type === 'instances' ? `−${r.value}` : `−${r.value}%`}/${r.periodMs / 1000}s`).join(', ')}], window ${p.behavior.scaleDown.stabilizationMs / 1000}s`,
    `  saturation: ${p.saturation.enabled ? `${p.saturation.metric} ≥ ${p.saturation.level}% on ${p.saturation.share * 100}% of ready instances` : 'off'}`,
    ...p.step.map((s) => `  step ${s.name}: ${s.metric} ${s.comparison === 'gt' ? '>' : '<'} ${s.threshold}% → ${s.adjustmentType} ${s.steps.map((x) => (s.comparison === 'gt' ? `[${x.lower ?? '-∞'}, ${x.upper ?? '∞'})` : `(${x.lower ?? '-∞'}, ${x.upper ?? '∞'}]`) + `: ${x.adjustment}`).join(' ')}, cooldown ${s.cooldownMs / 1000}s`),
    ...p.schedules.map((s) => `  schedule ${s.name}: "${s.cron}" ${s.timezone} for ${s.durationMs / 60_000} min →${s.minSize !== undefined ? ` min ${s.minSize}` : ''}${s.maxSize !== undefined ? ` max ${s.maxSize}` : ''}${s.desired !== undefined ? ` desired ≥ ${s.desired}` : ''}; ${next(s.name)}`),
    `  predictive: ${p.predictive.mode}${p.predictive.mode === 'off' ? '' : ` (${p.predictive.metric} at ${p.predictive.target}%, lead ${p.predictive.leadMs / 1000}s, season ${p.predictive.seasonMs / 3_600_000}h)`}`
      + (forecast === null ? (p.predictive.mode === 'off' ? '' : '; no forecast yet (needs a season of history)')
        : `; last forecast at ${new Date(forecast.at).toISOString()}: demand ${forecast.demand.toFixed(0)}% at ${new Date(forecast.forAt).toISOString()} → ${forecast.desired} instance(s)`),
    `  outage guard: ${p.outageGuard.enabled ? `a drop of ${p.outageGuard.drop * 100}% within ${p.outageGuard.windowMs / 1000}s holds scale-in for ${p.outageGuard.holdMs / 1000}s` : 'off'}`,
  ];
  return lines.join('\n');
}

/** `--db` and `--api`, on every command that reaches the store. */
function where(c: Command): Command {
  return c
    .option('--db <path>', 'SQLite file (AUTOSCALER_DB)')
    .option('--api <url>', 'act through the HTTP API instead, e.g. http://127.0.0.1:8080 (AUTOSCALER_API; token in AUTOSCALER_API_TOKEN)');
}

type Where = { db?: string; api?: string };

/** Register the group, policy and fleet commands on the program. */
export function addGroupCommands(program: Command, access: AdminAccess): void {
  const group = program.command('group').description('scaling groups: the store is the source of truth');
  where(group
    .command('list')
    .description('every group with its bounds, revision and state')
    .option('--json', 'print the group documents as JSON'))
    .action((opts: Where & { json?: boolean }) => access.withAdmin(opts, true, async (admin) => {
      const groups = await admin.groups();
      if (opts.json) return out(JSON.stringify(groups, null, 2));
      if (groups.length === 0) return out('no groups (autoscaler group apply FILE creates one)');
      const now = Date.now();
      for (const g of groups) {
        const manual = g.override !== undefined && (g.override.until === null || g.override.until > now) ? `  manual ${g.override.desired}` : '';
        out(`${g.id}  min ${g.minSize} max ${g.maxSize} desired ${g.desired}  revision ${g.revision}${g.paused ? '  paused' : ''}${g.dryRun ? '  dry-run' : ''}${manual}`);
      }
    }));
  where(group
    .command('apply')
    .description('create or change groups from a JSON file (one group document, or an array): {"id", "minSize", "maxSize", "policy"}')
    .argument('<file>', 'JSON file'))
    .action(async (file: string, opts: Where) => {
      const raw = readJson(file);
      await access.withAdmin(opts, false, async (admin) => {
        for (const r of await admin.apply(Array.isArray(raw) ? raw : [raw])) {
          out(r.created ? `group ${r.id} created` : r.changes.length === 0 ? `group ${r.id} unchanged` : `group ${r.id} revision ${r.revision}: ${r.changes.map((c) => c.path).join(', ')}`);
        }
      });
    });

  const policy = program.command('policy').description('a group\'s scaling policy: show, change while it runs, validate, history');
  where(policy
    .command('show')
    .description('the policy in force, with every default filled')
    .argument('<group>', 'group id')
    .option('--json', 'print the group document as JSON (what group apply takes)'))
    .action((id: string, opts: Where & { json?: boolean }) => access.withAdmin(opts, true, async (admin) => {
      const d = await admin.group(id);
      out(opts.json ? JSON.stringify(d.document, null, 2) : describeGroup(d));
    }));
  where(policy
    .command('set')
    .description('change fields of a group\'s document: PATH=VALUE… (e.g. policy.targetTracking.0.target=60 maxSize=8), or --file with a policy document')
    .argument('<group>', 'group id')
    .argument('[changes...]', 'PATH=VALUE; VALUE is JSON when it parses; a path without "policy." or a bound is taken inside the policy')
    .option('--file <file>', 'a whole policy document (JSON)'))
    .action(async (id: string, changes: string[], opts: Where & { file?: string }) => {
      if (changes.length === 0 && opts.file === undefined) throw new UsageError('nothing to change: give PATH=VALUE pairs or --file');
      const set: Record<string, unknown> = {};
      for (const c of changes) {
        const eq = c.indexOf('=');
        if (eq <= 0) throw new UsageError(`"${c}" is not PATH=VALUE`);
        set[c.slice(0, eq)] = parseValue(c.slice(eq + 1));
      }
      const policyDoc = opts.file === undefined ? undefined : readJson(opts.file);
      await access.withAdmin(opts, false, async (admin) => {
        const r = await admin.setPolicy(id, { set, ...(policyDoc === undefined ? {} : { policy: policyDoc }) });
        out(r.changes.length === 0 ? `group ${id} unchanged` : `group ${id} revision ${r.revision}: ${r.changes.map((ch) => `${ch.path} ${JSON.stringify(ch.from)} → ${JSON.stringify(ch.to)}`).join(', ')}\nthe controller applies it at its next evaluation`);
      });
    });
  policy
    .command('validate')
    .description('check a file (a policy document, or a group document with "id") without applying it')
    .argument('<file>', 'JSON file')
    .option('--api <url>', 'ask the HTTP API to check it (AUTOSCALER_API)')
    .action(async (file: string, opts: { api?: string }) => {
      const raw = readJson(file);
      let kind: 'group' | 'policy';
      if (opts.api === undefined && process.env.AUTOSCALER_API === undefined) {
        const { validateDocument } = await import('../api/admin.js');
        kind = validateDocument(raw, file).kind;
      } else {
        kind = await access.withAdmin(opts, true, async (admin) => (await admin.validate(raw)).kind);
      }
      out(`${file}: valid ${kind} document`);
    });
  where(policy
    .command('history')
    .description('who changed the group, when, and what (old → new), newest first')
    .argument('<group>', 'group id')
    .option('--limit <n>', 'how many', '20')
    .option('--json', 'one JSON object per line'))
    .action((id: string, opts: Where & { limit: string; json?: boolean }) => {
      const limit = positive(opts.limit, '--limit', 1_000);
      return access.withAdmin(opts, true, async (admin) => {
        for (const e of await admin.history(id, limit)) out(opts.json ? JSON.stringify(e) : `${new Date(e.ts).toISOString()}  ${e.kind.padEnd(8)} ${clean(e.actor).padEnd(20)} ${clean(e.message)}`);
      });
    });

  where(program
    .command('scale')
    .description('set a group\'s capacity by hand, over the policies, for a while (--for) or until --clear')
    .argument('<group>', 'group id')
    .option('--desired <n>', 'instances')
    .option('--for <time>', 'how long, e.g. 30m, 2h (default: until cleared)')
    .option('--clear', 'give the group back to its policies'))
    .action(async (id: string, opts: Where & { desired?: string; for?: string; clear?: boolean }) => {
      if (opts.clear === (opts.desired !== undefined)) throw new UsageError('give --desired N (optionally --for 30m), or --clear');
      const desired = opts.desired === undefined ? undefined : wholeNumber(opts.desired, '--desired', { min: 0, max: MAX_DESIRED });
      let forMs: number | undefined;
      if (opts.for !== undefined) {
        try {
          forMs = parseDuration(opts.for);
        } catch (err) {
          if (err instanceof ProfileSpecError) throw new UsageError(`--for: ${err.message}`);
          throw err;
        }
      }
      await access.withAdmin(opts, false, async (admin) => {
        await admin.scale(id, desired === undefined ? null : forMs === undefined ? { desired } : { desired, forMs });
        out(desired === undefined ? `group ${id}: manual capacity cleared` : `group ${id}: capacity ${desired}${forMs === undefined ? ' until cleared' : ` for ${opts.for}`}; the controller applies it at its next evaluation`);
      });
    });

  for (const [name, paused] of [['pause', true], ['resume', false]] as const) {
    where(program
      .command(name)
      .description(paused ? 'stop scaling and replacing a group (it keeps its instances)' : 'let a paused group scale again')
      .argument('<group>', 'group id')
      .option('--reason <text>', 'why, for the event log'))
      .action((id: string, opts: Where & { reason?: string }) => access.withAdmin(opts, false, async (admin) => {
        await admin.setPaused(id, paused, opts.reason ?? '');
        out(`group ${id} ${paused ? 'paused' : 'resumed'}`);
      }));
  }

  where(program
    .command('dry-run')
    .description('on: the group\'s decisions are recorded but nothing is launched or terminated; off: act again')
    .argument('<group>', 'group id')
    .argument('<state>', 'on or off'))
    .action((id: string, state: string, opts: Where) => {
      if (state !== 'on' && state !== 'off') throw new UsageError(`dry-run takes on or off (got "${state}")`);
      return access.withAdmin(opts, false, async (admin) => {
        await admin.setDryRun(id, state === 'on');
        out(`group ${id}: dry-run ${state}`);
      });
    });

  where(program
    .command('instances')
    .description('instances with their state, zone, type, latest CPU and memory, last heartbeat')
    .option('--group <id>', 'only this group')
    .option('--state <state>', 'only this state: pending, running, suspect, dead, terminating, terminated')
    .option('--all', 'include terminated instances')
    .option('--json', 'print them as JSON'))
    .action((opts: Where & { group?: string; state?: string; all?: boolean; json?: boolean }) => access.withAdmin(opts, true, async (admin) => {
      const rows = (await admin.instances({
        ...(opts.group === undefined ? {} : { group: opts.group }),
        ...(opts.state === undefined ? {} : { state: opts.state as GroupInstanceState }),
      })).filter((i) => opts.all === true || opts.state === 'terminated' || i.state !== 'terminated');
      if (opts.json) return out(JSON.stringify(rows, null, 2));
      if (rows.length === 0) return out('no instances');
      const now = Date.now();
      const pct = (v: number | null) => (v === null ? '–' : `${v.toFixed(1)}%`);
      out(table(['GROUP', 'INSTANCE', 'STATE', 'ZONE', 'TYPE', 'CPU', 'MEM', 'LAST SEEN', 'REASON'], rows.map((i) => [
        clean(i.groupId), clean(i.id), i.state, clean(i.zone ?? '–'), clean(i.instanceType ?? '–'), pct(i.cpu), pct(i.mem),
        i.lastSeenAt === null ? 'never' : `${((now - i.lastSeenAt) / 1000).toFixed(1)}s ago`, clean(i.stateReason ?? '', 60),
      ])));
    }));

  const load = program.command('load').description('simulated demand of a group (demo mode)');
  where(load
    .command('set')
    .description('set the demand of a group, in percent of one instance: 200, constant:200, step:30,200@60s, sine:30,250/180s, spike:40,300@60s+30s')
    .argument('<group>', 'group id')
    .argument('<spec>', 'demand or profile'))
    .action(async (group: string, spec: string, opts: Where) => {
      // A bad profile is refused before anything is opened (the Admin checks it again).
      const { parseProfileSpec } = await import('../sim/profile.js');
      try {
        parseProfileSpec(spec);
      } catch (err) {
        if (err instanceof ProfileSpecError) throw new UsageError(err.message);
        throw err;
      }
      return access.withAdmin(opts, false, async (admin) => {
      const v = await admin.setLoad(group, spec);
      out(`demand of ${group} set to ${v.profile} (now ${v.demand.toFixed(0)}%)`);
      });
    });
  where(load
    .command('show')
    .description('show the demand of a group')
    .argument('<group>', 'group id'))
    .action((group: string, opts: Where) => access.withAdmin(opts, true, async (admin) => {
      const v = await admin.load(group);
      out(v === null ? `no demand set for ${group}` : `${group}: ${v.profile}, now ${v.demand.toFixed(0)}%`);
    }));
  where(load
    .command('clear')
    .description('remove the demand of a group (simulated agents hold their last load)')
    .argument('<group>', 'group id'))
    .action((group: string, opts: Where) => access.withAdmin(opts, false, async (admin) => {
      out((await admin.clearLoad(group)) ? `demand of ${group} cleared` : `no demand set for ${group}`);
    }));
}

type GroupInstanceState = NonNullable<Parameters<Admin['instances']>[0]['state']>;

/** The group rows a test or a caller may want to print. */
export type { GroupRow };

/** Bounds of a whole-number option, inclusive. */
export interface WholeNumberBounds {
  /** The smallest value accepted. */
  readonly min: number;
  /** The largest value accepted; default Number.MAX_SAFE_INTEGER, shown as "any" in the refusal. */
  readonly max?: number;
}

/**
 * A whole-number option from `min` to `max` (digits only, a safe integer); anything else is
 * refused with a UsageError naming the option, the range and the text (never a silent default).
 */
export function wholeNumber(text: string, what: string, { min, max = Number.MAX_SAFE_INTEGER }: WholeNumberBounds): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(`${what} must be a whole number from ${min} to ${max === Number.MAX_SAFE_INTEGER ? 'any' : max} (got "${text}")`);
  }
  return n;
}

/** A positive whole number option, at most `max` (default: any safe integer); see wholeNumber(). */
export function positive(text: string, what: string, max = Number.MAX_SAFE_INTEGER): number {
  return wholeNumber(text, what, { min: 1, max });
}
