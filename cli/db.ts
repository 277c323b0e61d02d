/**
 * `autoscaler db backup FILE` and `autoscaler db check`: the operator's side of store/backup.ts.
 * Both are safe while the monitor server and the controller run. Text read from the file (table
 * names, integrity messages) is cleaned of control characters before it is printed.
 */
import { resolve } from 'node:path';
import { backupDatabase, checkDatabase, type BackupOptions, type CheckReport } from '../store/backup.js';
import { clean } from './format.js';

/**
 * Back up the store at `dbPath` to `file` (SQLite's online backup, verified before it takes the
 * name). Resolves with one line for the operator; rejects with a StoreError when `file` exists
 * (unless `overwrite`), the database is missing, or the copy fails.
 */
export async function dbBackup(dbPath: string, file: string, opts: BackupOptions = {}): Promise<string> {
  const r = await backupDatabase(dbPath, file, opts);
  return `backed up ${resolve(dbPath)} to ${r.file}: ${r.pages} pages, ${kib(r.bytes)}, schema version ${r.schemaVersion}, in ${r.durationMs} ms`;
}

/** Result of `db check`: the CLI prints `lines` and exits non-zero when `ok` is false. */
export interface DbCheckResult {
  readonly ok: boolean;
  readonly lines: readonly string[];
  readonly report: CheckReport;
}

/** Check the store at `dbPath` read-only; never throws for a bad or missing file. */
export function dbCheck(dbPath: string): DbCheckResult {
  const r = checkDatabase(dbPath);
  const lines: string[] = [`database      ${resolve(dbPath)}`];
  if (r.schemaVersion !== undefined) lines.push(`schema        version ${r.schemaVersion} (this build: ${r.buildSchemaVersion})`);
  if (r.pageCount !== undefined && r.pageSize !== undefined) lines.push(`pages         ${r.pageCount} × ${r.pageSize} bytes, ${r.freePages ?? '?'} free`);
  lines.push(`wal           ${kib(r.walBytes)}`);
  if (r.integrity.length > 0) {
    const sound = r.integrity.length === 1 && r.integrity[0] === 'ok';
    lines.push(`integrity     ${sound ? 'ok' : `${r.integrity.length} problem(s)`}`);
    if (!sound) for (const m of r.integrity.slice(0, 10)) lines.push(`  ${clean(m)}`);
  }
  if (r.schemaVersion !== undefined) lines.push(`foreign keys  ${r.foreignKeys.length === 0 ? 'ok' : `${r.foreignKeys.length} dangling`}`);
  if (r.tables.length > 0) lines.push(`rows          ${r.tables.map((t) => `${clean(t.table)} ${t.rows ?? 'unreadable'}`).join(', ')}`);
  for (const w of r.warnings) lines.push(`warning: ${clean(w, 500)}`);
  for (const p of r.problems) lines.push(`problem: ${clean(p, 500)}`);
  lines.push(r.ok ? 'result        ok' : `result        NOT OK: ${r.problems.length} problem(s)`);
  return { ok: r.ok, lines, report: r };
}

function kib(bytes: number): string {
  return bytes < 1024 * 1024 ? `${(bytes / 1024).toFixed(1)} KiB` : `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}
