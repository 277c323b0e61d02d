import type { MonitorServerConfig } from '../config/monitor-server.js';
import { systemClock, type Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import { openStore } from '../store/db.js';
import { MonitorServer, type MonitorServerHandle } from './server.js';

/** MonitorS: open the store and serve until closed. */
export async function runMonitorServer(cfg: MonitorServerConfig, rootLog: Logger, clock: Clock = systemClock): Promise<MonitorServerHandle> {
  const db = openStore(cfg.dbPath);
  try {
    const handle = await new MonitorServer(cfg, db, clock, rootLog).start();
    return {
      ...handle,
      close: async () => {
        await handle.close();
        db.close();
      },
    };
  } catch (err) {
    db.close();
    throw err;
  }
}
