/**
 * A client of the admin API (admin-server.ts), for `hitless certs` and the hitless deploy target.
 * It reaches a master on its unix socket, or on a loopback TCP port with a bearer token.
 */
import { request } from 'node:http';
import { HitlessError, type ErrorCode } from '../core/errors.js';
import type { CertificateDetail, CertificateSummary } from '../tls/certificate-store.js';
import type { AdminStatus, CertificatePutResult } from './admin-server.js';
import type { UpstreamsReport } from '../upstream/upstream-report.js';
import type { AcmeNameState } from '../acme/manager.js';

/** Where the admin API is. */
export type AdminEndpoint =
  | { readonly socketPath: string }
  | { readonly host: string; readonly port: number; readonly token: string };

/** An admin API call that failed: the server's code (`HITLESS_ERR_CERT_REFUSED`...) and HTTP status, or a connection failure. */
export class AdminClientError extends HitlessError {
  /** The HTTP status; undefined when no answer came. */
  readonly status: number | undefined;

  constructor(code: ErrorCode, message: string, status: number | undefined, options?: ErrorOptions) {
    super(code, message, options);
    this.status = status;
  }
}

/** How long a call may take; a put waits for every worker, which takes milliseconds. Default 30 s. */
const DEFAULT_TIMEOUT_MS = 30_000;

/** The admin API's calls. */
export class AdminClient {
  readonly #endpoint: AdminEndpoint;
  readonly #timeoutMs: number;

  constructor(endpoint: AdminEndpoint, options: { timeoutMs?: number } = {}) {
    this.#endpoint = endpoint;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  /** `GET /v1/status`. */
  status(): Promise<AdminStatus> {
    return this.#call('GET', '/v1/status');
  }

  /** `GET /v1/upstreams`: every peer's state; `timeoutMs` is how long each worker may take (server default 1 s). */
  upstreams(options: { timeoutMs?: number } = {}): Promise<UpstreamsReport> {
    return this.#call('GET', `/v1/upstreams${options.timeoutMs === undefined ? '' : `?timeout=${options.timeoutMs}`}`);
  }

  /** `GET /v1/certificates`. */
  async listCertificates(): Promise<CertificateSummary[]> {
    return (await this.#call<{ certificates: CertificateSummary[] }>('GET', '/v1/certificates')).certificates;
  }

  /** `GET /v1/acme`: every ACME certificate's state. */
  async listAcme(): Promise<AcmeNameState[]> {
    try {
      return (await this.#call<{ certificates: AcmeNameState[] }>('GET', '/v1/acme')).certificates;
    } catch (err) {
      // A master from before ACME has no such route: it has no ACME names either.
      if (err instanceof AdminClientError && err.status === 404) return [];
      throw err;
    }
  }

  /** `GET /v1/certificates/{name}`; undefined when there is none. */
  async getCertificate(name: string): Promise<CertificateDetail | undefined> {
    try {
      return await this.#call('GET', `/v1/certificates/${encodeURIComponent(name)}`);
    } catch (err) {
      if (err instanceof AdminClientError && err.status === 404) return undefined;
      throw err;
    }
  }

  /** `PUT /v1/certificates/{name}`: resolves once every worker serves it (or, with `dryRun`, once checked). */
  putCertificate(name: string, certificate: string, key: string, options: { force?: boolean; dryRun?: boolean } = {}): Promise<CertificatePutResult> {
    return this.#call('PUT', `/v1/certificates/${encodeURIComponent(name)}`, {
      certificate,
      key,
      force: options.force === true,
      dryRun: options.dryRun === true,
    });
  }

  /** `POST /v1/certificates/{name}/revert`: what is stored now, or null when the name fell back to the configured certificate. */
  async revertCertificate(name: string): Promise<CertificateSummary | null> {
    return (await this.#call<{ certificate: CertificateSummary | null }>('POST', `/v1/certificates/${encodeURIComponent(name)}/revert`)).certificate;
  }

  /** `DELETE /v1/certificates/{name}`. */
  async deleteCertificate(name: string): Promise<void> {
    await this.#call('DELETE', `/v1/certificates/${encodeURIComponent(name)}`);
  }

  #call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const endpoint = this.#endpoint;
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const where = 'socketPath' in endpoint ? `unix:${endpoint.socketPath}` : `${endpoint.host}:${endpoint.port}`;
    return new Promise<T>((resolve, reject) => {
      const req = request({
        ...('socketPath' in endpoint ? { socketPath: endpoint.socketPath } : { host: endpoint.host, port: endpoint.port }),
        method,
        path,
        headers: {
          accept: 'application/json',
          ...(payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }),
          ...('token' in endpoint ? { authorization: `Bearer ${endpoint.token}` } : {}),
        },
        timeout: this.#timeoutMs,
      });
      req.on('timeout', () => req.destroy(new Error(`no answer in ${this.#timeoutMs / 1000}s`)));
      req.on('error', (err) => {
        reject(new AdminClientError('HITLESS_ERR_ADMIN', `Cannot reach the admin API at ${where}: ${err.message}`, undefined, { cause: err }));
      });
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', (err) => reject(new AdminClientError('HITLESS_ERR_ADMIN', `The admin API at ${where} failed: ${err.message}`, undefined, { cause: err })));
        res.on('end', () => {
          let parsed: unknown;
          try {
            parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          } catch {
            reject(new AdminClientError('HITLESS_ERR_ADMIN', `The admin API at ${where} answered ${res.statusCode} without JSON`, res.statusCode));
            return;
          }
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) {
            resolve(parsed as T);
            return;
          }
          const error = (parsed as { error?: { code?: string; message?: string } }).error;
          const code = (error?.code?.startsWith('HITLESS_ERR_') === true ? error.code : 'HITLESS_ERR_ADMIN') as ErrorCode;
          reject(new AdminClientError(code, error?.message ?? `The admin API at ${where} answered ${status}`, status));
        });
      });
      req.end(payload);
    });
  }
}
