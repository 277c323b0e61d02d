/**
 * State you can recover (issue 7, item 6): an online backup of the store and a health check of a
 * store file. Both open their own connection and never migrate, so they are safe to run while the
 * monitor server and the controller write the same file.
 */
import Database from 'better-sqlite3';
import { existsSync, linkSync, renameSync, statSync, unlinkSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { BUSY_TIMEOUT_MS, StoreError, type Db } from './db.js';
import { MIGRATIONS } from './migrations.js';

/** `integrity_check` stops after this many problems. */
export const MAX_INTEGRITY_ERRORS = 100;
/** A write-ahead log larger than this is reported: checkpoints are not keeping up or a reader holds it. */
export const WAL_WARN_BYTES = 64 * 1024 * 1024;

/** The largest step better-sqlite3 accepts: all remaining pages at once. */
const ALL_PAGES = 0x7fffffff;

export interface BackupOptions {
  /** Replace `file` when it exists. Default false: an existing file is never touched. */
  readonly overwrite?: boolean;
}

export interface BackupResult {
  /** Absolute path of the copy. */
  readonly file: string;
  /** Size of the copy, pages and bytes. */
  readonly pages: number;
  readonly bytes: number;
  /** Schema version (`user_version`) of the copy. */
  readonly schemaVersion: number;
  /** Wall time of the copy and its verification, ms. */
  readonly durationMs: number;
}

/**
 * Copy the database at `dbPath` to `file` with SQLite's online backup API, as one consistent
 * snapshot (all pages in one step, under a read transaction: in WAL mode writers go on meanwhile).
 * The copy is written beside `file` under a temporary name, checked (`quick_check`), switched to
 * a rollback journal so it is one self-contained file, and only then given its name, so a failed or
 * interrupted backup never leaves a half-written `file`. Throws StoreError when `file` exists
 * (unless `overwrite`), when its directory does not exist, or when the copy fails its check.
 */
export async function backupDatabase(dbPath: string, file: string, opts: BackupOptions = {}): Promise<BackupResult> {
  const started = Date.now();
  const target = resolve(file);
  if (resolve(dbPath) === target) throw new StoreError(`backup file ${target} is the database itself`);
  if (!existsSync(dirname(target))) throw new StoreError(`cannot back up to ${target}: directory ${dirname(target)} does not exist`);
  if (!opts.overwrite && existsSync(target)) throw new StoreError(`${target} already exists; remove it or allow overwriting`);
  const tmp = join(dirname(target), `.${basename(target)}.partial-${process.pid}-${started}`);
  const src = openExisting(dbPath, true);
  try {
    // better-sqlite3's first step copies nothing (it learns the size); after it, every page in one
    // step, so the copy is one snapshot and a write in between can never restart it.
    await src.backup(tmp, { progress: () => ALL_PAGES });
  } catch (err) {
    removeQuietly(tmp);
    throw new StoreError(`backup of ${dbPath} to ${target} failed: ${(err as Error).message}`, { cause: err });
  } finally {
    src.close();
  }
  let pages: number;
  let schemaVersion: number;
  try {
    const copy = new Database(tmp, { fileMustExist: true });
    try {
      copy.pragma('journal_mode = DELETE');
      const check = copy.pragma('quick_check', { simple: true });
      if (check !== 'ok') throw new StoreError(`the copy failed its quick_check: ${String(check)}`);
      pages = copy.pragma('page_count', { simple: true }) as number;
      schemaVersion = copy.pragma('user_version', { simple: true }) as number;
    } finally {
      copy.close();
    }
    if (opts.overwrite) {
      renameSync(tmp, target);
    } else {
      // link fails if the name was taken meanwhile: never clobber a file we were not told to.
      linkSync(tmp, target);
      unlinkSync(tmp);
    }
  } catch (err) {
    removeQuietly(tmp);
    if (err instanceof StoreError) throw err;
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EEXIST') throw new StoreError(`${target} already exists; remove it or allow overwriting`, { cause: err });
    throw new StoreError(`backup of ${dbPath} to ${target} failed: ${e.message}`, { cause: err });
  }
  return { file: target, pages, bytes: statSync(target).size, schemaVersion, durationMs: Date.now() - started };
}

/** Row count of one table, or the error that stopped counting it. */
export interface TableCount {
  readonly table: string;
  readonly rows: number | undefined;
  readonly error?: string;
}

export interface CheckReport {
  /** True when nothing below is a problem (warnings do not count). */
  readonly ok: boolean;
  /** Why it is not ok, one line each; empty when ok. */
  readonly problems: readonly string[];
  /** Worth knowing, not wrong (an older schema, a large WAL). */
  readonly warnings: readonly string[];
  /** `PRAGMA integrity_check` lines (["ok"] when sound), at most MAX_INTEGRITY_ERRORS. */
  readonly integrity: readonly string[];
  /** `PRAGMA foreign_key_check` rows: child table, rowid, parent table. */
  readonly foreignKeys: readonly { readonly table: string; readonly rowid: number | null; readonly parent: string }[];
  /** `user_version` of the file, and the version this build writes (MIGRATIONS.length). */
  readonly schemaVersion: number | undefined;
  readonly buildSchemaVersion: number;
  /** Page size (bytes), page count, free pages. */
  readonly pageSize: number | undefined;
  readonly pageCount: number | undefined;
  readonly freePages: number | undefined;
  /** Size of the `-wal` file, bytes (0 when there is none). */
  readonly walBytes: number;
  readonly tables: readonly TableCount[];
}

/**
 * Check a store file read-only: integrity, foreign keys, schema version against this build, WAL
 * size and rows per table. Never throws for a bad file: every failure is a problem in the report.
 */
export function checkDatabase(dbPath: string): CheckReport {
  const problems: string[] = [];
  const warnings: string[] = [];
  const buildSchemaVersion = MIGRATIONS.length;
  let walBytes = 0;
  try {
    walBytes = statSync(`${dbPath}-wal`).size;
  } catch {
    // no WAL file: nothing to report
  }
  if (walBytes > WAL_WARN_BYTES) warnings.push(`the WAL is ${mib(walBytes)}: checkpoints are not keeping up, or a reader holds an old snapshot`);
  const report = (fields: Partial<CheckReport>): CheckReport => ({
    ok: problems.length === 0, problems, warnings, integrity: [], foreignKeys: [], schemaVersion: undefined, buildSchemaVersion,
    pageSize: undefined, pageCount: undefined, freePages: undefined, walBytes, tables: [], ...fields,
  });
  let db: Db;
  try {
    db = openExisting(dbPath, true);
  } catch (err) {
    problems.push(`cannot open: ${(err as Error).message}`);
    return report({});
  }
  try {
    const step = <T>(what: string, f: () => T): T | undefined => {
      try {
        return f();
      } catch (err) {
        problems.push(`${what}: ${(err as Error).message}`);
        return undefined;
      }
    };
    // The first read of the file: if it fails (not a database, header unreadable), nothing else can succeed.
    const schemaVersion = step('cannot read', () => db.pragma('user_version', { simple: true }) as number);
    if (schemaVersion === undefined) return report({});
    if (schemaVersion > buildSchemaVersion) {
      problems.push(`schema version ${schemaVersion} is newer than this build (${buildSchemaVersion}): upgrade autoscaler before using this file`);
    } else if (schemaVersion < buildSchemaVersion) {
      warnings.push(`schema version ${schemaVersion} is older than this build (${buildSchemaVersion}): the monitor server or controller migrates it when it starts`);
    }
    const pageSize = step('page size', () => db.pragma('page_size', { simple: true }) as number);
    const pageCount = step('page count', () => db.pragma('page_count', { simple: true }) as number);
    const freePages = step('free pages', () => db.pragma('freelist_count', { simple: true }) as number);
    const integrity = step('integrity check', () => (db.pragma(`integrity_check(${MAX_INTEGRITY_ERRORS})`) as { integrity_check: string }[]).map((r) => r.integrity_check)) ?? [];
    if (integrity.length > 0 && !(integrity.length === 1 && integrity[0] === 'ok')) {
      problems.push(`integrity check: ${integrity.length}${integrity.length >= MAX_INTEGRITY_ERRORS ? '+' : ''} problem(s), first: ${integrity[0]}`);
    }
    const foreignKeys = step('foreign key check', () => (db.pragma('foreign_key_check') as { table: string; rowid: number | null; parent: string }[])
      .map((r) => ({ table: r.table, rowid: r.rowid, parent: r.parent }))) ?? [];
    if (foreignKeys.length > 0) {
      const first = foreignKeys[0] as (typeof foreignKeys)[number];
      problems.push(`foreign key check: ${foreignKeys.length} row(s) point at missing parents, first: ${first.table} rowid ${first.rowid ?? '?'} → ${first.parent}`);
    }
    const names = step('list tables', () => (db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").all() as { name: string }[])
      .map((r) => r.name)) ?? [];
    const tables: TableCount[] = names.map((table) => {
      try {
        return { table, rows: (db.prepare(`SELECT COUNT(*) AS n FROM "${table.replaceAll('"', '""')}"`).get() as { n: number }).n };
      } catch (err) {
        const error = (err as Error).message;
        problems.push(`count ${table}: ${error}`);
        return { table, rows: undefined, error };
      }
    });
    return report({ integrity, foreignKeys, schemaVersion, pageSize, pageCount, freePages, tables });
  } finally {
    db.close();
  }
}

/** Open a store file that must exist, with the store's busy timeout and without migrating it. */
function openExisting(path: string, readonly: boolean): Db {
  if (!existsSync(path)) throw new StoreError(`no database at ${path}`);
  let db: Db;
  try {
    db = new Database(path, { readonly, fileMustExist: true });
  } catch (err) {
    throw new StoreError(`cannot open database ${path}: ${(err as Error).message}`, { cause: err });
  }
  db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
  return db;
}

function removeQuietly(path: string): void {
  for (const p of [path, `${path}-journal`, `${path}-wal`, `${path}-shm`]) {
    try {
      unlinkSync(p);
    } catch {
      // already gone
    }
  }
}

const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
