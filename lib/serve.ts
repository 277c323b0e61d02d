/**
 * The daemon loop the process entries share (cli/main.ts for every daemon command,
 * agent/cli/main.ts for the light agent entry): the one place that owns the signals. It imports
 * nothing at run time (the Logger import is a type), so the light agent entry stays light.
 */
import type { Logger } from 'pino';

/** A running daemon: how to stop it, how to reload its TLS files if it has any, and when it ends by itself. */
export interface Daemon {
  /** Stop gracefully (SIGINT/SIGTERM). A rejection makes the exit status 1. */
  close(): Promise<void>;
  /**
   * Re-read the TLS files (SIGHUP). Absent: SIGHUP only logs 'nothing to reload'. A rejection is
   * logged and the previous files stay in use.
   */
  reloadTls?: (() => Promise<void>) | undefined;
  /**
   * Settles when the daemon has ended by itself (an agent whose parent went away); the process then
   * exits. A rejection is passed on to the caller. Absent: the daemon runs until a signal.
   */
  readonly done?: Promise<void> | undefined;
}

/** What serve() needs from its process entry. */
export interface ServeOptions {
  /**
   * Ends the process: `(code) => process.exit(code)`, passed by the main.ts that calls serve()
   * (only main.ts files exit). Called with undefined to exit with `process.exitCode`.
   */
  readonly exit: (code?: number) => never;
}

/**
 * Run a daemon until SIGINT/SIGTERM: the first signal closes it gracefully and exits (status 1 if
 * close() threw, else `process.exitCode`), a second one exits at once with status 1. SIGHUP
 * reloads the daemon's TLS files and never ends the process. When the daemon has a `done`
 * promise, the process exits once it resolves; otherwise this returns at once and the signal
 * handlers keep the process to its end.
 *
 * @param log the process's root logger; flushed before every graceful exit.
 * @param daemon the started daemon.
 * @param opts how to exit (see {@link ServeOptions}).
 * @returns when the handlers are installed (no `done`); never otherwise. Rejects with `done`'s error.
 */
export async function serve(log: Logger, daemon: Daemon, opts: ServeOptions): Promise<void> {
  // SIGHUP reloads TLS files where the daemon has them (certificate rotation); it never ends the process.
  process.on('SIGHUP', () => {
    const reload = daemon.reloadTls;
    if (reload === undefined) return log.info({ signal: 'SIGHUP' }, 'nothing to reload');
    let reloading: Promise<void>;
    try {
      reloading = reload();
    } catch (err) {
      reloading = Promise.reject(err); // one that throws at once is logged like one that rejects
    }
    void reloading.catch((err: unknown) => log.error({ err }, 'TLS reload failed; keeping the previous files'));
  });
  let closing = false;
  const shutdown = async (signal: string): Promise<void> => {
    if (closing) {
      log.warn({ signal }, 'second signal: exiting now');
      return opts.exit(1);
    }
    closing = true;
    log.info({ signal }, 'shutting down');
    try {
      await daemon.close();
    } catch (err) {
      log.error({ err }, 'shutdown failed');
      process.exitCode = 1;
    }
    log.flush();
    opts.exit();
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  if (daemon.done !== undefined) {
    await daemon.done;
    // Ended while a signal's close() runs (a daemon may settle `done` as part of closing): the
    // shutdown exits when close() has finished, with its status.
    if (closing) return;
    log.flush();
    opts.exit();
  }
}
