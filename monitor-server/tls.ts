import { ConfigError } from '../config/shared.js';
import type { ServerTlsOptions } from '../lib/grpc-server.js';
import { loadCertificates, loadKeyPair, problemsOf, type CertificateFile, type KeyPair } from '../lib/tls.js';

/** Where the gRPC listener's TLS files are (see config/monitor-server.ts MonitorTlsFiles). */
export interface ServerTlsFiles {
  readonly certFile: string;
  readonly keyFile: string;
  readonly clientCaFile: string | undefined;
}

/** What the loaded server files say, for the start-up log. */
export interface ServerTlsSummary {
  readonly subject: string;
  readonly subjectAltName: string | undefined;
  readonly validTo: string;
  readonly fingerprint256: string;
  readonly mutual: boolean;
  readonly clientCas: number;
}

/** The files as read and checked, and what they say. */
interface Loaded {
  readonly ca: Buffer | undefined;
  readonly identity: { readonly cert: Buffer; readonly key: Buffer };
  readonly summary: ServerTlsSummary;
}

/**
 * TLS (optionally mutual) for the monitor server's gRPC listener, reloadable in place: `reload()`
 * reads and checks every file first and swaps only when all are good, so a half-written
 * certificate never replaces a working one.
 */
export class ServerTls {
  private loaded: Loaded;

  constructor(private readonly files: ServerTlsFiles, private readonly now: () => number) {
    this.loaded = this.load();
  }

  /**
   * The same files as node:tls options (for lib/grpc-server.ts): with a client CA, a client
   * without a certificate it signed fails the handshake.
   */
  nodeOptions(): ServerTlsOptions {
    const { ca, identity } = this.loaded;
    const mutual = ca !== undefined;
    return { key: identity.key, cert: identity.cert, ...(mutual ? { ca } : {}), requestCert: mutual, rejectUnauthorized: mutual };
  }

  get summary(): ServerTlsSummary {
    return this.loaded.summary;
  }

  /** Re-read the files; throws ConfigError (and keeps the old credentials) when any is unusable. */
  reload(): ServerTlsSummary {
    this.loaded = this.load();
    return this.loaded.summary;
  }

  private load(): Loaded {
    const problems: string[] = [];
    let pair: KeyPair | undefined;
    let ca: CertificateFile | undefined;
    try { pair = loadKeyPair('MONITOR_TLS_CERT', this.files.certFile, 'MONITOR_TLS_KEY', this.files.keyFile, this.now()); } catch (err) { problems.push(...problemsOf(err)); }
    if (this.files.clientCaFile !== undefined) {
      try { ca = loadCertificates('MONITOR_TLS_CLIENT_CA', this.files.clientCaFile); } catch (err) { problems.push(...problemsOf(err)); }
      if (ca !== undefined && !ca.all.some((c) => c.ca)) problems.push(`MONITOR_TLS_CLIENT_CA: ${this.files.clientCaFile} holds no CA certificate (basicConstraints CA:TRUE)`);
    }
    if (problems.length > 0 || pair === undefined) throw new ConfigError(problems);
    const leaf = pair.cert.leaf;
    return {
      ca: ca?.pem,
      identity: { cert: pair.cert.pem, key: pair.keyPem },
      summary: {
        subject: leaf.subject, subjectAltName: leaf.subjectAltName, validTo: leaf.validTo, fingerprint256: leaf.fingerprint256,
        mutual: ca !== undefined, clientCas: ca?.all.length ?? 0,
      },
    };
  }
}

