import * as grpc from '@grpc/grpc-js';
import { ConfigError } from '../config/shared.js';
import type { ServerTlsOptions } from '../lib/grpc-server.js';
import { loadCertificates, loadKeyPair, problemsOf, type CertificateFile, type KeyPair } from '../lib/tls.js';

type CaListener = grpc.experimental.CaCertificateUpdateListener;
type IdentityListener = grpc.experimental.IdentityCertificateUpdateListener;

/**
 * A certificate provider whose contents are replaced by `set()`: grpc-js then calls
 * `setSecureContext` on its listening sockets, so new connections use the new files and open ones
 * keep theirs (no rebinding, no interruption). grpc-js adds its listeners before it is ready to
 * hear from them, so the current value is delivered on the next tick, as its own
 * FileWatcherCertificateProvider does.
 */
export class SwappableCertificates implements grpc.experimental.CertificateProvider {
  private readonly caListeners = new Set<CaListener>();
  private readonly identityListeners = new Set<IdentityListener>();

  constructor(private ca: Buffer | undefined, private identity: { cert: Buffer; key: Buffer }) {}

  /** Replace the CA bundle and the certificate/key pair; listeners hear of it at once. */
  set(ca: Buffer | undefined, identity: { cert: Buffer; key: Buffer }): void {
    this.ca = ca;
    this.identity = identity;
    for (const l of this.caListeners) l(this.caUpdate());
    for (const l of this.identityListeners) l(this.identityUpdate());
  }

  addCaCertificateListener(listener: CaListener): void {
    this.caListeners.add(listener);
    process.nextTick(() => { if (this.caListeners.has(listener)) listener(this.caUpdate()); });
  }

  removeCaCertificateListener(listener: CaListener): void {
    this.caListeners.delete(listener);
  }

  addIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.add(listener);
    process.nextTick(() => { if (this.identityListeners.has(listener)) listener(this.identityUpdate()); });
  }

  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.delete(listener);
  }

  private caUpdate(): grpc.experimental.CaCertificateUpdate | null {
    return this.ca === undefined ? null : { caCertificate: this.ca };
  }

  private identityUpdate(): grpc.experimental.IdentityCertificateUpdate {
    return { certificate: this.identity.cert, privateKey: this.identity.key };
  }
}

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

/**
 * TLS (optionally mutual) for the monitor server's gRPC listener, reloadable in place: `reload()`
 * reads and checks every file first and swaps only when all are good, so a half-written
 * certificate never replaces a working one.
 */
export class ServerTls {
  private readonly provider: SwappableCertificates;
  private current: ServerTlsSummary;
  private material: { ca: Buffer | undefined; identity: { cert: Buffer; key: Buffer } };

  constructor(private readonly files: ServerTlsFiles, private readonly now: () => number) {
    const loaded = this.load();
    this.provider = new SwappableCertificates(loaded.ca, loaded.identity);
    this.current = loaded.summary;
    this.material = loaded;
  }

  /**
   * The same files as node:tls options (for lib/grpc-server.ts): with a client CA, a client
   * without a certificate it signed fails the handshake.
   */
  nodeOptions(): ServerTlsOptions {
    const { ca, identity } = this.material;
    const mutual = ca !== undefined;
    return { key: identity.key, cert: identity.cert, ...(mutual ? { ca } : {}), requestCert: mutual, rejectUnauthorized: mutual };
  }

  get summary(): ServerTlsSummary {
    return this.current;
  }

  /** Server credentials; with a client CA, connections without a certificate it signed fail the handshake. */
  credentials(): grpc.ServerCredentials {
    const mutual = this.files.clientCaFile !== undefined;
    // grpc-js 1.14 passes this function's first argument to the constructor as the identity
    // provider and the second as the CA provider (their names are swapped); one provider that
    // serves both makes the order irrelevant.
    return grpc.experimental.createCertificateProviderServerCredentials(this.provider, mutual ? this.provider : null, mutual);
  }

  /** Re-read the files; throws ConfigError (and keeps the old credentials) when any is unusable. */
  reload(): ServerTlsSummary {
    const loaded = this.load();
    this.provider.set(loaded.ca, loaded.identity);
    this.current = loaded.summary;
    this.material = loaded;
    return loaded.summary;
  }

  private load(): { ca: Buffer | undefined; identity: { cert: Buffer; key: Buffer }; summary: ServerTlsSummary } {
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

