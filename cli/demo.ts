import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pino } from 'pino';
import { loadControllerConfig } from '../config/controller.js';
import { loadMonitorServerConfig } from '../config/monitor-server.js';
import { runController } from '../controller/main.js';
import { LocalProvider } from '../controller/providers/local.js';
import { createLogger } from '../lib/logger.js';
import { isAlive } from '../lib/process.js';
import { runMonitorServer } from '../monitor-server/main.js';
import { formatProfile, parseDuration, parseProfileSpec } from '../sim/profile.js';
import { openStore } from '../store/db.js';
import { EventStore } from '../store/events.js';
import { SimLoadStore } from '../store/simload.js';
import { StatusReader } from '../store/status.js';
import { formatDecision, formatGroup } from './format.js';

export interface DemoOptions {
  readonly duration?: string;
  readonly profile: string;
  readonly httpPort: string;
  readonly dataDir: string;
  readonly maxSize: string;
  readonly refresh: string;
}

/** The demo's group and its short timings: fast enough to watch, same code paths as production. */
const DEMO_GROUP = 'demo';

/**
 * Monitor server and controller in this process (each with its own store connection, meeting
 * only in SQLite), local agents as child processes, a status table every few seconds.
 * Returns the exit code.
 */
export async function runDemo(opts: DemoOptions): Promise<number> {
  const durationMs = opts.duration === undefined ? undefined : parseDuration(opts.duration);
  const refreshMs = parseDuration(opts.refresh);
  const profile = parseProfileSpec(opts.profile);
  const dataDir = resolve(opts.dataDir);
  mkdirSync(dataDir, { recursive: true });
  for (const f of ['autoscaler.db', 'autoscaler.db-wal', 'autoscaler.db-shm', 'demo.log', 'groups.json', 'api-tokens']) rmSync(join(dataDir, f), { force: true });
  rmSync(join(dataDir, 'instances'), { recursive: true, force: true });
  const dbPath = join(dataDir, 'autoscaler.db');
  const logFile = join(dataDir, 'demo.log');

  const env = {
    AUTOSCALER_DB: dbPath,
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'info',
  };
  // The dashboard's controls and `--api` go through the HTTP API with this token (role write).
  const apiToken = randomBytes(24).toString('hex');
  const tokensFile = join(dataDir, 'api-tokens');
  writeFileSync(tokensFile, `# NAME ROLE SECRET (the demo's; see README "HTTP API")\ndemo write ${apiToken}\n`, { mode: 0o600 });
  // Every agent must prove it is the instance the controller launched (its launch token).
  const monitorCfg = loadMonitorServerConfig({
    env: { ...env, MONITOR_GRPC_PORT: '0', MONITOR_HTTP_PORT: opts.httpPort, MONITOR_REQUIRE_LAUNCH_TOKEN: 'true', MONITOR_API_TOKENS_FILE: tokensFile },
  });
  const log = createLogger({ level: monitorCfg.logLevel, process: 'demo', destination: pino.destination({ dest: logFile, sync: true, mkdir: true }) });

  const out = (line: string) => process.stdout.write(`${line}\n`);
  out(`autoscaler demo: group "${DEMO_GROUP}", demand ${formatProfile(profile)} (percent of one instance), target CPU 50%`);
  out(`daemon logs (JSON): ${logFile}`);

  let monitor;
  try {
    monitor = await runMonitorServer(monitorCfg, log);
  } catch (err) {
    throw new Error(`${(err as Error).message}${opts.httpPort === '0' ? '' : '; pass --http-port 0 to use any free port'}`, { cause: err });
  }
  // The demo's group document, seeded as an operator would (`autoscaler policy show demo` prints
  // it; `autoscaler policy set demo …` changes it while the demo runs). Timings are short to watch.
  const groupsFile = join(dataDir, 'groups.json');
  writeFileSync(groupsFile, JSON.stringify({
    id: DEMO_GROUP, minSize: 1, maxSize: Number(opts.maxSize),
    policy: {
      // Simulated agents reach their share of the load within a few seconds of registering.
      warmupMs: 4_000,
      targetTracking: [{ metric: 'cpu', target: 50 }],
      behavior: { scaleDown: { stabilizationMs: 20_000 } },
      outageGuard: { holdMs: 20_000 },
    },
  }, null, 2));
  const controllerCfg = loadControllerConfig({
    env: {
      ...env,
      CONTROLLER_INTERVAL_MS: '2000',
      CONTROLLER_MONITOR_STALE_MS: '10000',
      CONTROLLER_BOOT_TIMEOUT_MS: '20000',
      CONTROLLER_GROUPS_FILE: groupsFile,
      CONTROLLER_HTTP_PORT: '0',
      LOCAL_AGENT_SERVER: `127.0.0.1:${monitor.grpcPort}`,
      LOCAL_TERMINATE_TIMEOUT_MS: '3000',
    },
  });
  const controller = await runController(controllerCfg, log);

  const db = openStore(dbPath);
  const started = Date.now();
  new SimLoadStore(db).set(DEMO_GROUP, profile, started);
  const status = new StatusReader(db);
  const events = new EventStore(db);
  const api = `http://127.0.0.1:${monitor.httpPort}`;
  // The token rides in the fragment, which the browser never sends to a server or writes to a log.
  out(`dashboard: ${api}/#token=${apiToken}`);
  out(`API: ${api}/openapi.json   token (role write): ${apiToken}`);
  out(`from another terminal: AUTOSCALER_DB=${dbPath} npx autoscaler status | load set ${DEMO_GROUP} 300`);
  out(`  or over HTTP: AUTOSCALER_API=${api} AUTOSCALER_API_TOKEN=${apiToken} npx autoscaler policy set ${DEMO_GROUP} targetTracking.0.target=60`);
  out(durationMs === undefined ? 'press Ctrl-C to stop' : `stopping by itself after ${Math.round(durationMs / 1000)}s`);

  let lastDecision = 0;
  let peak = 0;
  const seen = { out: 0, in: 0, replaced: 0 };
  const render = () => {
    const now = Date.now();
    for (const d of events.decisionsSince(lastDecision)) {
      lastDecision = d.id;
      if (d.reason === 'ReplaceUnhealthy') seen.replaced++;
      else if (d.to > d.from) seen.out++;
      else if (d.to < d.from) seen.in++;
      out(`  event ${formatDecision(d)}`);
    }
    const g = status.report(now, { groupId: DEMO_GROUP, decisions: 1 }).groups[0];
    if (g === undefined) return;
    peak = Math.max(peak, g.counts.running + g.counts.pending + g.counts.suspect);
    const t = Math.round((now - started) / 1000);
    out(`\n── t=${String(Math.floor(t / 60)).padStart(2, '0')}:${String(t % 60).padStart(2, '0')} ──────────────────────────────────────────────`);
    out(formatGroup(g, now, { decisions: 1 }));
  };
  const timer = setInterval(render, refreshMs);

  let stopRequested: (reason: string) => void = () => {};
  const stopped = new Promise<string>((r) => { stopRequested = r; });
  const onSignal = (sig: NodeJS.Signals) => stopRequested(sig);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const durationTimer = durationMs === undefined ? undefined : setTimeout(() => stopRequested('duration reached'), durationMs);

  const reason = await stopped;
  clearInterval(timer);
  clearTimeout(durationTimer);
  process.once('SIGINT', () => process.exit(1)); // a second Ctrl-C does not wait
  render();
  out(`\nstopping (${reason}): controller and its agents, then the monitor server…`);
  const pidsBefore = controller.provider instanceof LocalProvider ? controller.provider.pids() : [];
  await controller.close();
  await monitor.close();
  db.close();
  const survivors = pidsBefore.filter(isAlive);
  out(`summary: ${seen.out} scale-out and ${seen.in} scale-in decision(s), ${seen.replaced} replacement(s), at most ${peak} instance(s) at once`);
  out(survivors.length === 0 ? `all ${pidsBefore.length} agent process(es) stopped` : `WARNING: agent process(es) still running: ${survivors.join(', ')}`);
  log.flush();
  return survivors.length === 0 ? 0 : 1;
}

