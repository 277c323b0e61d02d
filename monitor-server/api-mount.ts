/**
 * The HTTP API as the monitor server runs it: tokens from config and the tokens file, the API
 * server on the shared store, and a reload for SIGHUP (tokens file re-read; a bad file keeps the
 * old tokens and says why).
 */
import type { ApiConfig } from '../config/api.js';
import type { Logger } from '../lib/logger.js';
import type { Db } from '../store/db.js';
import { TokenAuth, readTokensFile } from '../api/auth.js';
import { ApiServer } from '../api/server.js';
import type { StatusCache } from './status-cache.js';

export interface MountedApi {
  readonly server: ApiServer;
  /** Re-read MONITOR_API_TOKENS_FILE; throws (and keeps the old tokens) when it is bad. */
  reload(): void;
}

export function mountApi(cfg: ApiConfig, deps: { db: Db; status: StatusCache; now: () => number; log: Logger; onRefused: (status: number) => void }): MountedApi {
  const tokens = () => [...cfg.tokens, ...(cfg.tokensFile === undefined ? [] : readTokensFile(cfg.tokensFile))];
  const auth = new TokenAuth(tokens(), cfg.readNeedsToken);
  const server = new ApiServer({ db: deps.db, auth, status: deps.status, now: deps.now, log: deps.log, streamMs: cfg.streamMs, maxStreams: cfg.maxStreams, onRefused: deps.onRefused });
  deps.log.info({ tokens: auth.count, readNeedsToken: cfg.readNeedsToken, https: cfg.tls !== undefined }, 'HTTP API ready');
  return {
    server,
    reload: () => {
      auth.replace(tokens());
      deps.log.info({ tokens: auth.count }, 'API tokens reloaded');
    },
  };
}
