/**
 * API bearer tokens as an operator writes them: one per line, `NAME ROLE SECRET`, `#` comments.
 * NAME is who acts in the event log (`api:NAME`); ROLE is `read` (GET only) or `write` (also
 * changes); SECRET is at least 16 visible characters (`openssl rand -hex 24` makes one).
 * Pure parsing: the file is read by the caller.
 */
import { tokenProblem } from '../lib/tls.js';
import { ID_PATTERN } from './shared.js';

export type ApiRole = 'read' | 'write';

export interface ApiTokenSpec {
  readonly name: string;
  readonly role: ApiRole;
  readonly secret: string;
}

/** Tokens from lines, and the problems of the lines that are not tokens (by line number, secrets never echoed). */
export function parseTokenLines(lines: readonly string[]): { tokens: ApiTokenSpec[]; problems: string[] } {
  const tokens: ApiTokenSpec[] = [];
  const problems: string[] = [];
  const names = new Set<string>();
  const secrets = new Set<string>();
  for (const [n, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const at = `${n + 1}`;
    const parts = line.split(/\s+/);
    if (parts.length !== 3) {
      problems.push(`${at}: must be NAME ROLE SECRET (3 fields, got ${parts.length})`);
      continue;
    }
    const [name, role, secret] = parts as [string, string, string];
    if (!ID_PATTERN.test(name)) problems.push(`${at}: name must be 1-63 letters, digits, ".", "_" or "-"`);
    else if (names.has(name)) problems.push(`${at}: name "${name}" is given twice`);
    if (role !== 'read' && role !== 'write') problems.push(`${at}: role must be read or write (got "${role.slice(0, 20)}")`);
    const p = tokenProblem(secret);
    if (p !== undefined) problems.push(`${at}: secret ${p}`);
    else if (secrets.has(secret)) problems.push(`${at}: the same secret is given twice`);
    if (problems.length === 0 || !problems.some((x) => x.startsWith(`${at}:`))) {
      names.add(name);
      secrets.add(secret);
      tokens.push({ name, role: role as ApiRole, secret });
    }
  }
  return { tokens, problems };
}
