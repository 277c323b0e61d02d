#!/usr/bin/env node
import { Command } from 'commander';
import { config as loadDotenv } from 'dotenv';
import { existsSync } from 'node:fs';
import { ConfigError, DEFAULT_DB_PATH, type ConfigSources } from '../config/shared.js';
import { createLogger } from '../lib/logger.js';
import { serve, type ServeOptions } from '../lib/serve.js';
import { version } from '../lib/version.js';
import { StoreError } from '../store/errors.js';
import { addGroupCommands, positive, UsageError } from './groups.js';
import { addSimulateCommand } from './simulate.js';

// Each command loads its modules when it runs: an agent never loads SQLite, the controller or
// the AWS SDKs, which keeps its start-up and memory small (see the README's performance table).

/** Exit status for an unusable configuration (sysexits EX_CONFIG); systemd units do not restart on it. */
const EXIT_CONFIG = 78;
/** Exit status for bad command-line use or a failed admin command. */
const EXIT_USAGE = 2;


/** How serve() ends the process: this file and agent/cli/main.ts are the only ones that exit. */
const SERVE: ServeOptions = { exit: (code) => process.exit(code) };

function sources(opts: { config?: string }, overrides: Record<string, string> = {}): ConfigSources {
  return { env: { ...process.env, ...overrides }, file: opts.config ?? process.env.AUTOSCALER_CONFIG };
}

/** Commander: a repeatable option. */
function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function dbPath(opts: { db?: string }): string {
  return opts.db ?? process.env.AUTOSCALER_DB ?? DEFAULT_DB_PATH;
}

async function openExisting(path: string, readonly: boolean) {
  if (!existsSync(path)) throw new UsageError(`no database at ${path}: start the monitor server or controller, or pass --db / set AUTOSCALER_DB`);
  const { openStore } = await import('../store/db.js');
  return openStore(path, { readonly });
}

/** Open the database the options name, run `f`, close it whatever happens. */
async function withDb<T>(opts: { db?: string }, readonly: boolean, f: (db: import('../store/db.js').Db) => T | Promise<T>): Promise<T> {
  const db = await openExisting(dbPath(opts), readonly);
  try {
    return await f(db);
  } finally {
    db.close();
  }
}

/** An Admin on the store (the OS user acts), or over HTTP with --api / AUTOSCALER_API. */
async function withAdmin<T>(opts: { db?: string; api?: string }, readonly: boolean, f: (admin: import('../api/admin.js').Admin) => Promise<T>): Promise<T> {
  const api = opts.api ?? process.env.AUTOSCALER_API;
  if (api !== undefined && api !== '') {
    if (opts.db !== undefined) throw new UsageError('give --db or --api, not both');
    const { HttpAdmin } = await import('../api/client.js');
    return f(new HttpAdmin(api, process.env.AUTOSCALER_API_TOKEN || undefined));
  }
  const { LocalAdmin } = await import('../api/admin.js');
  const { actor } = await import('./groups.js');
  return withDb(opts, readonly, (db) => f(new LocalAdmin(db, actor(), () => Date.now())));
}

export function buildProgram(): Command {
  const program = new Command()
    .name('autoscaler')
    .description('Autoscaling controller for fleets of machines')
    .version(version())
    .showHelpAfterError();

  program
    .command('agent')
    .description('run the agent (MonitorC): sample CPU and memory and report to the monitor server')
    .option('--simulate', 'report simulated load from the group demand (AGENT_SIMULATE)')
    .option('--exit-with-parent', 'exit when the parent process exits (AGENT_EXIT_WITH_PARENT)')
    .option('--config <file>', 'config file (.json or dotenv format); the environment overrides it')
    .action(async (opts: { simulate?: boolean; exitWithParent?: boolean; config?: string }) => {
      const { loadAgentConfig } = await import('../config/agent.js');
      const { runAgent } = await import('../agent/main.js');
      const cfg = loadAgentConfig(sources(opts, {
        ...(opts.simulate ? { AGENT_SIMULATE: 'true' } : {}),
        ...(opts.exitWithParent ? { AGENT_EXIT_WITH_PARENT: 'true' } : {}),
      }));
      const log = createLogger({ level: cfg.logLevel, process: 'agent' });
      const agent = runAgent(cfg, log);
      await serve(log, { close: () => agent.stop('signal'), reloadTls: () => agent.reloadTls(), done: agent.done }, SERVE);
    });

  program
    .command('monitor-server')
    .description('run the monitor server (MonitorS): gRPC ingest, failure detector, dashboard, /healthz and /api/status')
    .option('--config <file>', 'config file (.json or dotenv format); the environment overrides it')
    .action(async (opts: { config?: string }) => {
      const { loadMonitorServerConfig } = await import('../config/monitor-server.js');
      const { runMonitorServer } = await import('../monitor-server/main.js');
      const cfg = loadMonitorServerConfig(sources(opts));
      const log = createLogger({ level: cfg.logLevel, process: 'monitor-server' });
      await serve(log, await runMonitorServer(cfg, log), SERVE);
    });

  program
    .command('controller')
    .description('run the controller (ControllerASG): evaluate scaling policies and act through the provider')
    .option('--config <file>', 'config file (.json or dotenv format); the environment overrides it')
    .action(async (opts: { config?: string }) => {
      const { loadControllerConfig } = await import('../config/controller.js');
      const { runController } = await import('../controller/main.js');
      const cfg = loadControllerConfig(sources(opts));
      const log = createLogger({ level: cfg.logLevel, process: 'controller' });
      await serve(log, await runController(cfg, log), SERVE);
    });

  program
    .command('demo')
    .description('monitor server + controller + local simulated agents, with a live status table')
    .option('--duration <time>', 'stop by itself after this long (e.g. 3m, 90s); default: until Ctrl-C')
    .option('--profile <spec>', 'demand profile (see `load set`)', 'sine:20,260/150s')
    .option('--http-port <port>', 'status HTTP port (0: any free port)', '8080')
    .option('--data-dir <dir>', 'where the demo database and logs go (wiped at start)', 'data/demo')
    .option('--max-size <n>', 'largest group size', '6')
    .option('--refresh <time>', 'status table period', '3s')
    .action(async (opts: { duration?: string; profile: string; httpPort: string; dataDir: string; maxSize: string; refresh: string }) => {
      const { runDemo } = await import('./demo.js');
      const code = await runDemo(opts);
      process.exit(code);
    });

  program
    .command('status')
    .description('groups, instances (state, CPU, last seen) and the last decisions')
    .option('--json', 'print the status as JSON (the same document as GET /api/v1/status)')
    .option('--db <path>', 'SQLite file (AUTOSCALER_DB)')
    .option('--api <url>', 'ask the HTTP API instead (AUTOSCALER_API; token in AUTOSCALER_API_TOKEN)')
    .option('--group <id>', 'only this group')
    .option('--decisions <n>', 'how many recent decisions to show per group (1-200)', '5')
    .action(async (opts: { json?: boolean; db?: string; api?: string; group?: string; decisions: string }) => {
      const { formatStatus } = await import('./format.js');
      const decisions = positive(opts.decisions, '--decisions', 200);
      await withAdmin(opts, true, async (admin) => {
        const report = await admin.status({ ...(opts.group === undefined ? {} : { group: opts.group }), decisions });
        process.stdout.write(opts.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatStatus(report, { decisions })}\n`);
      });
    });

  program
    .command('events')
    .description('decisions (with their reasons), launches/terminations and operator changes, oldest first')
    .option('--group <id>', 'only this group')
    .option('--limit <n>', 'how many recent events (1-1000)', '50')
    .option('--since <time>', 'from this time on instead (ISO 8601, or epoch ms)')
    .option('--follow', 'keep printing new events until Ctrl-C')
    .option('--json', 'one JSON object per line')
    .option('--db <path>', 'SQLite file (AUTOSCALER_DB)')
    .option('--api <url>', 'ask the HTTP API instead (AUTOSCALER_API; token in AUTOSCALER_API_TOKEN)')
    .action(async (opts: { group?: string; limit: string; since?: string; follow?: boolean; json?: boolean; db?: string; api?: string }) => {
      const limit = positive(opts.limit, '--limit', 1_000);
      let since: number | undefined;
      if (opts.since !== undefined) {
        since = /^\d+$/.test(opts.since) ? Number(opts.since) : Date.parse(opts.since);
        if (!Number.isFinite(since)) throw new UsageError(`--since must be an ISO 8601 time or epoch ms (got "${opts.since}")`);
      }
      const { formatEntry } = await import('./events.js');
      await withAdmin(opts, true, async (admin) => {
        const group = opts.group === undefined ? {} : { group: opts.group };
        let page = await admin.events({ ...group, limit, ...(since === undefined ? {} : { since }) });
        const print = (p: typeof page) => {
          for (const e of p.events) process.stdout.write(`${opts.json ? JSON.stringify(e) : formatEntry(e)}\n`);
        };
        print(page);
        if (!opts.follow) return;
        let stopped = false;
        const stop = () => { stopped = true; };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
        while (!stopped) {
          await new Promise((r) => setTimeout(r, 1_000));
          if (stopped) break;
          // Page on from the cursor: nothing is lost or printed twice, whatever the mix of kinds.
          page = await admin.events({ ...group, after: page.next, limit: 1_000 });
          print(page);
        }
      });
    });

  addGroupCommands(program, { withAdmin });

  program
    .command('certs')
    .description('certificates for the gRPC listener (quick start; use your own PKI in production)')
    .command('init')
    .description('make a CA, a server certificate and client certificates in DIR (with openssl); reuses an existing CA')
    .argument('<dir>', 'where the files go')
    .option('--host <name>', 'a name or IP the server certificate is valid for (repeatable; localhost, 127.0.0.1 and ::1 are always in)', collect, [])
    .option('--instance <id>', 'a client certificate naming one instance (repeatable)', collect, [])
    .option('--group <id>', 'a client certificate for every instance of a group (repeatable)', collect, [])
    .option('--days <n>', 'validity of the server and client certificates (the CA lasts 5× longer)', '365')
    .action(async (dir: string, opts: { host: string[]; instance: string[]; group: string[]; days: string }) => {
      const { certsInit } = await import('./certs.js');
      const files = await certsInit({ dir, hosts: opts.host, instances: opts.instance, groups: opts.group, days: positive(opts.days, '--days') });
      for (const f of files) process.stdout.write(`${f}\n`);
    });

  program
    .command('identity')
    .description('EC2 identity-document bindings')
    .command('forget')
    .description('clear the nonce an instance\'s first registration bound, so that a restarted agent (a new nonce) may register again')
    .argument('<instance>', 'instance id')
    .option('--db <path>', 'SQLite file (AUTOSCALER_DB)')
    .action((instance: string, opts: { db?: string }) => withDb(opts, false, async (db) => {
      const { IdentityBindingStore } = await import('../store/secrets.js');
      const { actor } = await import('./groups.js');
      const cleared = new IdentityBindingStore(db).clear(instance);
      process.stdout.write(cleared ? `identity binding of ${instance} cleared by ${actor()}\n` : `no identity binding for ${instance}\n`);
    }));

  const dbCmd = program.command('db').description('the SQLite file: online backup and integrity check');
  dbCmd
    .command('backup')
    .description('a consistent copy while the daemons run (SQLite online backup), checked before it gets its name')
    .argument('<file>', 'where the copy goes (refused if it exists, unless --force)')
    .option('--force', 'replace an existing file')
    .option('--db <path>', 'SQLite file (AUTOSCALER_DB)')
    .action(async (file: string, opts: { force?: boolean; db?: string }) => {
      const { dbBackup } = await import('./db.js');
      process.stdout.write(`${await dbBackup(dbPath(opts), file, { overwrite: opts.force === true })}\n`);
    });
  dbCmd
    .command('check')
    .description('integrity, foreign keys, schema version, WAL size, row counts; exit 1 when not ok')
    .option('--db <path>', 'SQLite file (AUTOSCALER_DB)')
    .action(async (opts: { db?: string }) => {
      const { dbCheck } = await import('./db.js');
      const r = dbCheck(dbPath(opts));
      for (const l of r.lines) process.stdout.write(`${l}\n`);
      if (!r.ok) process.exitCode = 1;
    });
  addSimulateCommand(program);

  return program;
}

async function main(): Promise<void> {
  loadDotenv({ quiet: true });
  try {
    await buildProgram().parseAsync(process.argv);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`autoscaler: ${err.message}\n`);
      process.exit(EXIT_CONFIG);
    }
    // The admin contract's refusals (api/admin.ts) are the operator's to fix; an API that cannot be reached is not.
    const refused = err instanceof Error && err.name === 'AdminError' && !['unavailable', 'internal'].includes((err as Error & { code: string }).code);
    if (err instanceof UsageError || err instanceof StoreError || refused) {
      process.stderr.write(`autoscaler: ${err.message}\n`);
      process.exit(EXIT_USAGE);
    }
    // Expected failures (a port in use, a store that cannot be opened) read best as one line; the
    // stack is for LOG_LEVEL=debug.
    const debug = process.env.LOG_LEVEL === 'debug' || process.env.LOG_LEVEL === 'trace';
    process.stderr.write(`autoscaler: ${err instanceof Error ? (debug ? (err.stack ?? err.message) : err.message) : String(err)}\n`);
    process.exit(1);
  }
}

void main();
