/**
 * `autoscaler certs init DIR`: a private CA, a monitor server certificate and client certificates
 * for a quick start with TLS or mutual TLS. Node 20's crypto parses X.509 but cannot create it,
 * so this runs the `openssl` command-line tool (OpenSSL 1.1.1 or 3.x; Debian and most images
 * ship it). Keys are EC P-256, written 0600.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ID_PATTERN } from '../config/shared.js';
import { GROUP_URI_PREFIX, INSTANCE_URI_PREFIX } from '../lib/tls.js';
import { UsageError } from './groups.js';

/** Validity of the certificates `certs init` makes, days. */
export const DEFAULT_CERT_DAYS = 365;
/** The CA outlives the certificates it signs, so they can be re-issued without a new CA. */
export const CA_DAYS_FACTOR = 5;
/** Names every server certificate carries, so loopback set-ups work without --host. */
export const DEFAULT_SERVER_NAMES = ['localhost', '127.0.0.1', '::1'] as const;

const DNS_NAME = /^(?=.{1,253}$)(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*$/;

export interface CertsInitOptions {
  /** Directory to write into (created if missing). */
  readonly dir: string;
  /** Instance ids to make client certificates for (SAN URI autoscaler://instance/<id>, CN <id>). */
  readonly instances?: readonly string[];
  /** Groups to make fleet-wide client certificates for (SAN URI autoscaler://group/<g>). */
  readonly groups?: readonly string[];
  /** Validity of the server and client certificates, days (the CA: 5 times longer). Default 365. */
  readonly days?: number;
  /** Extra names of the monitor server (DNS names or IP addresses) besides localhost, 127.0.0.1, ::1. */
  readonly hosts?: readonly string[];
  /** The openssl binary. Default `openssl` from PATH. */
  readonly openssl?: string;
}

function run(openssl: string, args: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(openssl, args, { timeout: 60_000 }, (err, _stdout, stderr) => {
      if (err === null) return resolve();
      const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
      reject(new UsageError(missing
        ? `certs init needs the openssl command (not found as "${openssl}"): install it (apt-get install openssl) and run again`
        : `openssl ${args[0] ?? ''} failed: ${stderr.trim() || err.message}`, { cause: err }));
    });
  });
}

/** An OpenSSL config with one distinguished name and one extension section. */
function opensslConfig(cn: string, ext: readonly string[]): string {
  // Values are validated ids and host names: nothing here can break out of its line.
  return ['[req]', 'distinguished_name = dn', 'prompt = no', '[dn]', `CN = ${cn}`, '[ext]', ...ext, ''].join('\n');
}

function validate(opts: CertsInitOptions): { days: number; hosts: string[] } {
  const problems: string[] = [];
  for (const id of opts.instances ?? []) if (!ID_PATTERN.test(id)) problems.push(`--instance ${JSON.stringify(id)}: must be 1-63 letters, digits, ".", "_" or "-"`);
  for (const g of opts.groups ?? []) if (!ID_PATTERN.test(g)) problems.push(`--group ${JSON.stringify(g)}: must be 1-63 letters, digits, ".", "_" or "-"`);
  const hosts = (opts.hosts ?? []).map((h) => (h.startsWith('[') && h.endsWith(']') ? h.slice(1, -1) : h));
  for (const h of hosts) if (isIP(h) === 0 && !DNS_NAME.test(h)) problems.push(`--host ${JSON.stringify(h)}: must be a DNS name or an IP address`);
  const days = opts.days ?? DEFAULT_CERT_DAYS;
  if (!Number.isInteger(days) || days < 1 || days > 3_650) problems.push(`--days ${days}: must be a whole number of days in 1..3650`);
  if (problems.length > 0) throw new UsageError(problems.join('; '));
  return { days, hosts };
}

/**
 * Write (in `dir`) ca.crt + ca.key (reused when present, so later runs add certificates under the
 * same CA), server.crt + server.key (rewritten each run), instance-<id>.crt/.key per instance,
 * group-<g>.crt/.key per group, and token.txt (a random shared token, kept when present).
 * Returns the files written.
 */
export async function certsInit(opts: { dir: string; instances?: string[]; groups?: string[]; days?: number; hosts?: string[] } & Pick<CertsInitOptions, 'openssl'>): Promise<string[]> {
  const { days, hosts } = validate(opts);
  const openssl = opts.openssl ?? 'openssl';
  const dir = opts.dir;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const work = mkdtempSync(join(tmpdir(), 'autoscaler-certs-'));
  const written: string[] = [];
  const path = (name: string) => join(dir, name);
  const secret = (file: string) => chmodSync(file, 0o600);
  const keyArgs = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  try {
    const caCrt = path('ca.crt');
    const caKey = path('ca.key');
    if (!existsSync(caCrt) || !existsSync(caKey)) {
      const cfg = join(work, 'ca.cnf');
      writeFileSync(cfg, opensslConfig('autoscaler CA', [
        'basicConstraints = critical, CA:TRUE, pathlen:0', 'keyUsage = critical, keyCertSign, cRLSign', 'subjectKeyIdentifier = hash',
      ]));
      await run(openssl, ['req', '-x509', '-new', ...keyArgs, '-keyout', caKey, '-out', caCrt, '-days', String(days * CA_DAYS_FACTOR),
        '-sha256', '-config', cfg, '-extensions', 'ext']);
      secret(caKey);
      written.push(caCrt, caKey);
    }

    const issue = async (name: string, cn: string, ext: readonly string[]) => {
      const cfg = join(work, `${name}.cnf`);
      const csr = join(work, `${name}.csr`);
      const crt = path(`${name}.crt`);
      const key = path(`${name}.key`);
      writeFileSync(cfg, opensslConfig(cn, [
        'basicConstraints = critical, CA:FALSE', 'keyUsage = critical, digitalSignature, keyEncipherment',
        'authorityKeyIdentifier = keyid', 'subjectKeyIdentifier = hash', ...ext,
      ]));
      await run(openssl, ['req', '-new', ...keyArgs, '-keyout', key, '-out', csr, '-config', cfg]);
      secret(key);
      await run(openssl, ['x509', '-req', '-in', csr, '-CA', caCrt, '-CAkey', caKey, '-set_serial', `0x${randomBytes(16).toString('hex')}`,
        '-days', String(days), '-sha256', '-out', crt, '-extfile', cfg, '-extensions', 'ext']);
      written.push(crt, key);
    };

    const names = [...new Set([...DEFAULT_SERVER_NAMES, ...hosts])];
    const san = names.map((n) => (isIP(n) === 0 ? `DNS:${n}` : `IP:${n}`)).join(', ');
    await issue('server', 'autoscaler monitor server', ['extendedKeyUsage = serverAuth', `subjectAltName = ${san}`]);
    for (const id of new Set(opts.instances ?? [])) {
      await issue(`instance-${id}`, id, ['extendedKeyUsage = clientAuth', `subjectAltName = URI:${INSTANCE_URI_PREFIX}${id}`]);
    }
    for (const g of new Set(opts.groups ?? [])) {
      await issue(`group-${g}`, `autoscaler group ${g}`, ['extendedKeyUsage = clientAuth', `subjectAltName = URI:${GROUP_URI_PREFIX}${g}`]);
    }
    const token = path('token.txt');
    if (!existsSync(token)) {
      writeFileSync(token, `${randomBytes(32).toString('base64url')}\n`, { mode: 0o600 });
      written.push(token);
    }
    return written;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
