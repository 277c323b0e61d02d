import { pino, type DestinationStream, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const satisfies readonly LevelWithSilent[];
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * The root logger of a process: JSON lines with structured fields. Components take a child with
 * `log.child({ component: 'ingest' })`; never put user-controlled keys in bindings.
 */
export function createLogger(opts: { level: LogLevel; process: string; destination?: DestinationStream }): Logger {
  return pino(
    {
      level: opts.level,
      base: { process: opts.process, pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    // Synchronous writes: a few lines a second, and nothing is lost when the process exits.
    opts.destination ?? pino.destination({ dest: 1, sync: true }),
  );
}
