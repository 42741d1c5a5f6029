/**
 * The admin API: HTTP with JSON bodies, served by the master on a unix socket (mode 0600) or a
 * loopback TCP port that requires `Authorization: Bearer <token>`.
 *
 *   GET    /v1/status                   the master, its generation and workers
 *   GET    /v1/certificates             every stored certificate (no key material)
 *   GET    /v1/certificates/{name}      one of them
 *   PUT    /v1/certificates/{name}      { "certificate": PEM, "key": PEM, "force"?: bool, "dryRun"?: bool }
 *   DELETE /v1/certificates/{name}
 *   POST   /v1/certificates/{name}/revert   back to what the name held before its last change
 *   GET    /v1/acme                     every ACME certificate's state: issuer, not-after, next renewal, last error
 *   GET    /v1/upstreams[?timeout=ms]   every upstream peer's state: health checks and each worker's view
 *   GET    /v1/upstreams/{name}         one group
 *   GET    /status                      the status page (HTML; its data comes from /metrics and /v1/status)
 *   GET    /metrics                     Prometheus metrics (text 0.0.4, or OpenMetrics 1.0 by Accept)
 *
 * A PUT answers once every worker uses the new certificate: the next full handshake serves it.
 * Errors are `{ "error": { "code": "HITLESS_ERR_...", "message": "..." } }`; no answer and no log
 * line ever holds key bytes.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { chmodSync, lstatSync, readFileSync, unlinkSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { HitlessError } from '../core/errors.js';
import type { CertificateDetail, CertificateSummary } from '../tls/certificate-store.js';
import type { AdminListen } from './admin-module.js';
import type { AcmeNameState } from '../acme/manager.js';
import type { UpstreamGroupReport, UpstreamsReport } from '../upstream/upstream-report.js';
import { EXPOSITION_CONTENT_TYPES, formatOfAccept, type ExpositionFormat } from './exposition.js';
import { STATUS_PAGE } from './status-page.js';

/** What `GET /v1/status` answers. */
export interface AdminStatus {
  readonly pid: number;
  readonly version: string;
  /** The configuration generation being served: 1 at start, one more per reload. */
  readonly generation: number;
  /** ISO 8601. */
  readonly startedAt: string;
  readonly uptimeSeconds: number;
  readonly workers: readonly { readonly pid: number; readonly generation: number; readonly state: string }[];
  readonly certificates: number;
  /** Where the HTTP `listen ... ssl` addresses answer (a wildcard as loopback), to verify on the wire. */
  readonly tlsEndpoints: readonly { readonly host: string; readonly port: number }[];
}

/** What a PUT of a certificate answers. */
export interface CertificatePutResult {
  readonly certificate: CertificateSummary;
  /** True when a certificate of that name was replaced. */
  readonly replaced: boolean;
  /** True when it was only checked (`dryRun`), nothing stored. */
  readonly dryRun: boolean;
  readonly warnings: readonly string[];
}

/** What the master does for the API. */
export interface AdminBackend {
  status(): AdminStatus;
  listCertificates(): CertificateSummary[];
  getCertificate(name: string): CertificateDetail;
  putCertificate(name: string, cert: string, key: string, options: { force: boolean; dryRun: boolean }): Promise<CertificatePutResult>;
  deleteCertificate(name: string): Promise<void>;
  revertCertificate(name: string): Promise<CertificateSummary | undefined>;
  /** Every upstream peer's state, each worker given `timeoutMs` to answer. */
  upstreams(timeoutMs: number): Promise<UpstreamsReport>;
  /** The metrics exposition of every worker and the master (docs/observability.md). */
  metrics(format: ExpositionFormat): Promise<string>;
  /** Every `acme_certificate`'s state (docs/acme.md). Default: none. */
  acme?(): readonly AcmeNameState[];
}

/** How long `GET /v1/upstreams` waits for each worker by default, and at most (`?timeout=`). */
export const UPSTREAMS_TIMEOUT_MS = { default: 1_000, max: 10_000 } as const;

/** Largest request body: a certificate, a long chain and a key fit many times over. */
const MAX_BODY = 1024 * 1024;

/** An admin API failure that is the client's doing: a status and a stable code. */
class AdminRequestError extends HitlessError {
  readonly status: number;

  constructor(status: number, message: string) {
    super('HITLESS_ERR_ADMIN', message);
    this.status = status;
  }
}

const STATUS_OF_CODE: Readonly<Partial<Record<string, number>>> = {
  HITLESS_ERR_CERT_REFUSED: 400,
  HITLESS_ERR_CERT_NOT_FOUND: 404,
};

/** The admin API on one address. */
export class AdminServer {
  readonly listen: AdminListen;
  readonly #server: Server;
  readonly #tokenDigest: Buffer | undefined;

  /** Reads the token file of a TCP listen; throws when it cannot be read or is empty. */
  constructor(listen: AdminListen, backend: AdminBackend) {
    this.listen = listen;
    if (listen.kind === 'tcp') {
      let token: string;
      try {
        token = readFileSync(listen.tokenFile, 'utf8').trim();
      } catch (err) {
        throw new HitlessError('HITLESS_ERR_ADMIN', `Cannot read the admin token file "${listen.tokenFile}": ${(err as Error).message}`, { cause: err });
      }
      if (token === '') throw new HitlessError('HITLESS_ERR_ADMIN', `The admin token file "${listen.tokenFile}" is empty`);
      this.#tokenDigest = digest(token);
    }
    this.#server = createServer((req, res) => {
      this.#handle(req, res, backend).catch((err: unknown) => answerError(res, err));
    });
    this.#server.keepAliveTimeout = 5_000;
  }

  /** Starts listening; a unix socket left by a dead master is replaced, one in use is an error. */
  async start(): Promise<void> {
    const { listen } = this;
    if (listen.kind === 'tcp') {
      await listenOn(this.#server, { host: listen.host, port: listen.port });
      return;
    }
    await removeStaleSocket(listen.path);
    // The socket is created 0600 (umask) rather than chmod'ed after: no instant where others may
    // connect. bind(2) runs within listen(), so the umask is restored in the same tick.
    const umask = process.umask(0o177);
    let listening: Promise<void>;
    try {
      listening = listenOn(this.#server, { path: listen.path });
    } finally {
      process.umask(umask);
    }
    await listening;
    chmodSync(listen.path, 0o600);
  }

  /** Stops listening and closes idle connections; a unix socket file is removed by Node. */
  close(): void {
    this.#server.close();
    this.#server.closeIdleConnections();
  }

  async #handle(req: IncomingMessage, res: ServerResponse, backend: AdminBackend): Promise<void> {
    // The status page's shell holds no data: it asks for everything it shows with the token.
    if (req.url === '/status') {
      allow(req.method ?? 'GET', ['GET', 'HEAD']);
      res.writeHead(200, {
        'Content-Type': 'text/html; charset=utf-8',
        'Content-Length': Buffer.byteLength(STATUS_PAGE),
        'Cache-Control': 'no-store',
        // Nothing but the page's own inline style and script, and requests to this listener.
        'Content-Security-Policy': "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'",
        'X-Content-Type-Options': 'nosniff',
      });
      res.end(req.method === 'HEAD' ? undefined : STATUS_PAGE);
      return;
    }
    if (this.#tokenDigest !== undefined && !this.#authorized(req.headers.authorization)) {
      res.setHeader('WWW-Authenticate', 'Bearer');
      throw new AdminRequestError(401, 'A valid "Authorization: Bearer" token is required');
    }
    const url = new URL(req.url ?? '/', 'http://admin');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    if (path === '/v1/status') {
      allow(method, ['GET']);
      return answer(res, 200, backend.status());
    }
    if (path === '/metrics') {
      allow(method, ['GET', 'HEAD']);
      const format = formatOfAccept(req.headers.accept);
      const text = await backend.metrics(format);
      res.writeHead(200, { 'Content-Type': EXPOSITION_CONTENT_TYPES[format], 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store' });
      res.end(method === 'HEAD' ? undefined : text);
      return;
    }
    if (path === '/v1/certificates') {
      allow(method, ['GET']);
      return answer(res, 200, { certificates: backend.listCertificates() });
    }
    if (path === '/v1/acme') {
      allow(method, ['GET']);
      return answer(res, 200, { certificates: backend.acme?.() ?? [] });
    }
    const upstream = /^\/v1\/upstreams(?:\/([^/]+))?$/.exec(path);
    if (upstream !== null) {
      allow(method, ['GET']);
      const report = await backend.upstreams(timeoutOf(url.searchParams.get('timeout')));
      if (upstream[1] === undefined) return answer(res, 200, report);
      const name = pathSegment(upstream[1]);
      const group = report.upstreams.find((candidate: UpstreamGroupReport) => candidate.name === name);
      if (group === undefined) throw new AdminRequestError(404, `No upstream "${name}"`);
      return answer(res, 200, { generation: report.generation, timeoutMs: report.timeoutMs, workers: report.workers, upstream: group });
    }
    const match = /^\/v1\/certificates\/([^/]+)(\/revert)?$/.exec(path);
    if (match === null) throw new AdminRequestError(404, `No such admin API route "${path}"`);
    const name = pathSegment(match[1] as string);
    if (match[2] !== undefined) {
      allow(method, ['POST']);
      return answer(res, 200, { certificate: (await backend.revertCertificate(name)) ?? null });
    }
    allow(method, ['GET', 'PUT', 'DELETE']);
    if (method === 'GET') return answer(res, 200, backend.getCertificate(name));
    if (method === 'DELETE') {
      await backend.deleteCertificate(name);
      return answer(res, 200, { deleted: name });
    }
    const body = await readJson(req);
    const cert = body['certificate'];
    const key = body['key'];
    if (typeof cert !== 'string' || typeof key !== 'string') {
      throw new AdminRequestError(400, 'The body needs "certificate" and "key", PEM strings');
    }
    const result = await backend.putCertificate(name, cert, key, {
      force: body['force'] === true || url.searchParams.get('force') === 'true',
      dryRun: body['dryRun'] === true || url.searchParams.get('dryRun') === 'true',
    });
    return answer(res, result.dryRun || result.replaced ? 200 : 201, result);
  }

  #authorized(header: string | undefined): boolean {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
    return match !== null && this.#tokenDigest !== undefined && timingSafeEqual(digest(match[1] as string), this.#tokenDigest);
  }
}

/** A percent-decoded path segment; a bad escape (`%zz`, a lone `%`) is the client's error, not a 500. */
function pathSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new AdminRequestError(400, `Invalid percent escape in "${segment}"`);
  }
}

/** Same-length values for timingSafeEqual, whatever the token's length. */
function digest(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

/** `?timeout=ms`: how long each worker may take to answer; the default when absent. */
function timeoutOf(text: string | null): number {
  if (text === null) return UPSTREAMS_TIMEOUT_MS.default;
  const ms = /^[0-9]+$/.test(text) ? Number(text) : NaN;
  if (!(ms >= 1 && ms <= UPSTREAMS_TIMEOUT_MS.max)) throw new AdminRequestError(400, `Invalid timeout "${text}": expected 1 to ${UPSTREAMS_TIMEOUT_MS.max} ms`);
  return ms;
}

function allow(method: string, methods: readonly string[]): void {
  if (!methods.includes(method)) throw new AdminRequestError(405, `Method ${method} is not allowed here: use ${methods.join(', ')}`);
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) throw new AdminRequestError(413, `The body is larger than ${MAX_BODY} bytes`);
    chunks.push(chunk);
  }
  let body: unknown;
  try {
    body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    // JSON.parse's message quotes the input, which may hold a key: never repeat it.
    throw new AdminRequestError(400, 'The body is not valid JSON');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new AdminRequestError(400, 'The body must be a JSON object');
  return body as Record<string, unknown>;
}

function answer(res: ServerResponse, status: number, body: unknown): void {
  const text = `${JSON.stringify(body, null, 2)}\n`;
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store' });
  res.end(text);
}

function answerError(res: ServerResponse, err: unknown): void {
  const known = err instanceof HitlessError;
  const status = err instanceof AdminRequestError ? err.status : (known ? STATUS_OF_CODE[err.code] : undefined) ?? 500;
  const code = known ? err.code : 'HITLESS_ERR_ADMIN';
  const message = known ? err.message : 'Internal error';
  if (res.headersSent) {
    res.destroy();
    return;
  }
  answer(res, status, { error: { code, message } });
}

function listenOn(server: Server, options: { host: string; port: number } | { path: string }): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** Removes a unix socket file nobody accepts on; refuses to touch anything else. */
async function removeStaleSocket(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return;
  }
  if (!isSocket) throw new HitlessError('HITLESS_ERR_ADMIN', `The admin socket path "${path}" exists and is not a socket`);
  const inUse = await new Promise<boolean>((resolve) => {
    const probe = connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (inUse) throw new HitlessError('HITLESS_ERR_ADMIN', `The admin socket "${path}" is in use by another process`);
  unlinkSync(path);
}
