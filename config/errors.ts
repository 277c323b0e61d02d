/**
 * The configuration error every process exits 78 on. It lives apart from config/shared.ts (which
 * builds schemas with zod) so that the agent, which validates its config without zod, and
 * lib/tls.ts can throw it without loading zod; config/shared.ts re-exports it.
 */

/** A configuration that cannot be used; `problems` names every bad key, one line each. */
export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(readonly problems: readonly string[], opts?: ErrorOptions) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`, opts);
  }
}
