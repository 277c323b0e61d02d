/**
 * Bearer tokens for the HTTP API. Every write needs a `write` token; reads need a token when the
 * listener is not on loopback (MONITOR_API_READ). Secrets are kept as SHA-256 digests and the
 * presented one is compared with every token in constant time, so neither the match nor its
 * position leaks through timing. A 401 says the token is missing or unknown; a 403 says the token
 * is known but may only read.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseTokenLines, type ApiRole, type ApiTokenSpec } from '../config/api-tokens.js';
import { ConfigError } from '../config/shared.js';
import { AdminError } from './admin.js';

export type Access = 'open' | 'read' | 'write';

interface Held {
  readonly name: string;
  readonly role: ApiRole;
  readonly digest: Buffer;
}

const digest = (secret: string) => createHash('sha256').update(secret, 'utf8').digest();

/** Who made the request, when allowed. */
export interface Principal {
  /** `api:NAME`, or `api:anonymous` for an open read. */
  readonly actor: string;
  readonly role: ApiRole | 'none';
}

/** Read the tokens file; a ConfigError names the key and the lines at fault. */
export function readTokensFile(path: string): ApiTokenSpec[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError([`MONITOR_API_TOKENS_FILE: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`]);
  }
  const r = parseTokenLines(text.split('\n'));
  if (r.problems.length > 0) throw new ConfigError(r.problems.map((p) => `MONITOR_API_TOKENS_FILE: ${path} line ${p}`));
  return r.tokens;
}

export class TokenAuth {
  private held: readonly Held[];

  constructor(tokens: readonly ApiTokenSpec[], private readonly readNeedsToken: boolean) {
    this.held = TokenAuth.hold(tokens);
  }

  private static hold(tokens: readonly ApiTokenSpec[]): Held[] {
    const names = new Set<string>();
    for (const t of tokens) {
      if (names.has(t.name)) throw new ConfigError([`MONITOR_API_TOKENS / MONITOR_API_TOKENS_FILE: token name "${t.name}" is given twice`]);
      names.add(t.name);
    }
    return tokens.map((t) => ({ name: t.name, role: t.role, digest: digest(t.secret) }));
  }

  /** Replace the tokens (SIGHUP); a bad set throws and the old one stays. */
  replace(tokens: readonly ApiTokenSpec[]): void {
    this.held = TokenAuth.hold(tokens);
  }

  get count(): number {
    return this.held.length;
  }

  /** The principal for `authorization` (the raw header) on a route needing `access`; throws a 401 or 403 AdminError. */
  check(authorization: string | undefined, access: Access): Principal {
    if (access === 'open' || (access === 'read' && !this.readNeedsToken && authorization === undefined)) return { actor: 'api:anonymous', role: 'none' };
    const need = access === 'write' ? 'this route changes the fleet and needs a bearer token with role write' : 'reads need a bearer token on this listener';
    if (authorization === undefined || authorization.trim() === '') {
      throw new AdminError('unauthorized', `missing token: ${need} (header "Authorization: Bearer <token>"; MONITOR_API_TOKENS_FILE lists them)`);
    }
    const m = /^Bearer +(\S+) *$/i.exec(authorization);
    if (m === null) throw new AdminError('unauthorized', 'malformed Authorization header: expected "Bearer <token>"');
    const presented = digest(m[1] as string);
    let found: Held | undefined;
    for (const h of this.held) {
      // Every token is compared, match or not: the time does not depend on which one matched.
      if (timingSafeEqual(h.digest, presented) && found === undefined) found = h;
    }
    if (found === undefined) throw new AdminError('unauthorized', 'invalid token: it matches none of the configured API tokens');
    if (access === 'write' && found.role !== 'write') throw new AdminError('forbidden', `token "${found.name}" has role read: this route changes the fleet and needs role write`);
    return { actor: `api:${found.name}`, role: found.role };
  }
}
