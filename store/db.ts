import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { StoreError } from './errors.js';
import { MIGRATIONS } from './migrations.js';

export type Db = Database.Database;

export { StoreError };

/** Wait this long for another process's write lock before failing a statement. */
export const BUSY_TIMEOUT_MS = 5_000;

/**
 * Open the shared SQLite file: WAL so readers never block the writer, synchronous=NORMAL (durable
 * at checkpoints, safe against corruption), a busy timeout because the monitor server and the
 * controller are separate processes writing the same file, then migrate to the current schema.
 */
export function openStore(path: string, opts: { readonly?: boolean } = {}): Db {
  if (path !== ':memory:' && !opts.readonly) mkdirSync(dirname(path), { recursive: true });
  let db: Db;
  try {
    db = new Database(path, { readonly: opts.readonly ?? false, fileMustExist: opts.readonly ?? false });
  } catch (err) {
    throw new StoreError(`cannot open database ${path}: ${(err as Error).message}`, { cause: err });
  }
  db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
  if (!opts.readonly) {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.pragma('foreign_keys = ON');
    migrate(db);
  } else {
    const v = db.pragma('user_version', { simple: true }) as number;
    if (v !== MIGRATIONS.length) {
      db.close();
      throw new StoreError(`database ${path} has schema version ${v}, this build reads ${MIGRATIONS.length}; start the monitor server or controller once to migrate it`);
    }
  }
  return db;
}

/** Apply pending migrations, each in its own transaction, tracked by `user_version`. */
export function migrate(db: Db): void {
  const apply = db.transaction(() => {
    // Re-read inside the write transaction: another process may have migrated meanwhile.
    const current = db.pragma('user_version', { simple: true }) as number;
    if (current > MIGRATIONS.length) {
      throw new StoreError(`database schema version ${current} is newer than this build (${MIGRATIONS.length}); upgrade autoscaler`);
    }
    for (let v = current; v < MIGRATIONS.length; v++) {
      db.exec(MIGRATIONS[v] as string);
      db.pragma(`user_version = ${v + 1}`);
    }
  });
  apply.immediate();
}
