/**
 * OCSP stapling as nginx's ngx_event_openssl_stapling.c does it: at configuration time
 * `ngx_ssl_stapling()` finds each certificate's issuer and responder (or reads
 * `ssl_stapling_file`), with its [warn]s; in a worker, `ngx_ssl_certificate_status_callback()`
 * staples the response held while it is valid and `ngx_ssl_stapling_update()` asks the responder
 * when it is due (the first handshake that asks gets none), keeping only a "good" response.
 */
import { X509Certificate } from 'node:crypto';
import { lookup, Resolver } from 'node:dns/promises';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { isIP } from 'node:net';
import { errnoMessage } from '../core/errno.js';
import type { ErrorLog } from '../core/log.js';
import { CertificateLoadError } from './certificate-files.js';
import { checkOcspResponse, isOcspResponse, ocspRequestOf, OcspResponseError, type OcspSubject } from './ocsp-response.js';

/** nginx's fixed timeout of a request to the responder (`staple->timeout`). */
const RESPONDER_TIMEOUT_MS = 60_000;

/** The name servers of `resolver` (http only) and `resolver_timeout`; undefined: none configured. */
export interface StaplingResolver {
  readonly servers: readonly { readonly host: string; readonly port: number }[];
  readonly timeoutMs: number;
}

/** The settings of one server's stapling, read from its block. */
export interface StaplingSettings {
  readonly file: string | undefined;
  readonly responder: string | undefined;
  readonly verify: boolean;
  readonly resolver: StaplingResolver | undefined;
}

interface Responder {
  readonly host: string;
  readonly port: number;
  readonly uri: string;
}

/** One certificate's staple: its response, until when it holds, and when it is next asked for. */
export class CertificateStaple {
  readonly #subject: OcspSubject;
  readonly #name: string;
  readonly #responder: Responder | undefined;
  readonly #verify: boolean;
  readonly #resolver: StaplingResolver | undefined;
  #staple: Buffer | undefined;
  #valid = 0;
  #refresh = 0;
  #loading = false;

  /** `fixed`: the response of ssl_stapling_file, stapled for ever and never asked for. */
  constructor(subject: OcspSubject, name: string, settings: StaplingSettings, responder: Responder | undefined, fixed: Buffer | undefined) {
    this.#subject = subject;
    this.#name = name;
    this.#responder = responder;
    this.#verify = settings.verify;
    this.#resolver = settings.resolver;
    if (fixed !== undefined) {
      this.#staple = fixed;
      this.#valid = Infinity;
    }
  }

  /** The DER of the certificate this staple is for, as Node's OCSPRequest event gives it. */
  get certificate(): Buffer {
    return this.#subject.cert.raw;
  }

  /** `ngx_ssl_certificate_status_callback()`: the response to staple now, if any; starts a refresh when due. */
  respond(log: ErrorLog | undefined, now = Date.now()): Buffer | undefined {
    const staple = this.#staple !== undefined && this.#valid >= now ? this.#staple : undefined;
    this.#update(log, now);
    return staple;
  }

  /** `ngx_ssl_stapling_update()`. */
  #update(log: ErrorLog | undefined, now: number): void {
    const responder = this.#responder;
    if (responder === undefined || this.#loading || this.#refresh >= now) return;
    this.#loading = true;
    let peer = '';
    const context = (): string => `while requesting certificate status, responder: ${responder.host}${peer === '' ? '' : `, peer: ${peer}`}, certificate: "${this.#name}"`;
    void (async () => {
      try {
        const address = await this.#resolve(responder.host, log, context);
        peer = `${address.includes(':') ? `[${address}]` : address}:${responder.port}`;
        const der = await fetchResponse(address, responder, ocspRequestOf(this.#subject.cert, this.#subject.issuer));
        const result = checkOcspResponse(der, this.#subject, this.#verify);
        // ngx_ssl_stapling_ocsp_handler(): OCSP_cert_status_str() at [error] for anything but good.
        if (result.status !== 'good') throw new OcspResponseError(`certificate status "${result.status}" in the OCSP response`);
        const done = Date.now();
        this.#staple = der;
        this.#valid = result.validUntil;
        // "refresh before the response expires, but not earlier than in 5 minutes, and at least in an hour"
        this.#refresh = Math.max(Math.min(result.validUntil - 300_000, done + 3_600_000), done + 300_000);
      } catch (err) {
        log?.error(`${err instanceof Error ? err.message : String(err)} ${context()}`);
        this.#refresh = Date.now() + 300_000;
      } finally {
        this.#loading = false;
      }
    })();
  }

  /** `ngx_ssl_ocsp_request()`: the responder's address, by `resolver` when there is one, else as nginx found it at startup. */
  async #resolve(host: string, log: ErrorLog | undefined, context: () => string): Promise<string> {
    if (isIP(host) !== 0) return host;
    if (this.#resolver === undefined) {
      log?.warn(`no resolver defined to resolve ${host} ${context()}`);
      return (await lookup(host)).address;
    }
    const dns = new Resolver({ timeout: Math.max(1, this.#resolver.timeoutMs), tries: 1 });
    dns.setServers(this.#resolver.servers.map((server) => (server.host.includes(':') ? `[${server.host}]:${server.port}` : `${server.host}:${server.port}`)));
    try {
      const [address] = await dns.resolve4(host);
      if (address !== undefined) return address;
    } catch {
      // Reported below in nginx's words.
    }
    throw new OcspResponseError(`${host} could not be resolved (3: Host not found)`);
  }
}

/** GET uri/base64(request) as `ngx_ssl_ocsp_create_request()` writes it; the body of a 200 application/ocsp-response. */
function fetchResponse(address: string, responder: Responder, der: Buffer): Promise<Buffer> {
  const path = `${responder.uri}${responder.uri.endsWith('/') ? '' : '/'}${encodeURIComponent(der.toString('base64'))}`;
  return new Promise((resolve, reject) => {
    // nginx's own parser (ngx_ssl_ocsp_parse_status_line()) takes lines ended by LF alone, as responders send them.
    const req = request({ host: address, port: responder.port, path, method: 'GET', headers: { Host: responder.host }, setHost: false, agent: false, timeout: RESPONDER_TIMEOUT_MS, insecureHTTPParser: true });
    req.on('timeout', () => req.destroy(new OcspResponseError('OCSP responder timed out')));
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (err instanceof OcspResponseError) reject(err);
      else if (err.code?.startsWith('HPE_') === true) reject(new OcspResponseError('OCSP responder sent invalid response'));
      else reject(new OcspResponseError(`connect() failed (${errnoMessage(err.code ?? '') ?? err.message})`));
    });
    req.on('response', (res) => {
      const type = res.headers['content-type'];
      if (res.statusCode !== 200) {
        res.resume();
        reject(new OcspResponseError(`OCSP responder sent status ${res.statusCode ?? 0}`));
        return;
      }
      if (type !== undefined && type.toLowerCase() !== 'application/ocsp-response') {
        res.resume();
        reject(new OcspResponseError(`OCSP responder sent invalid "Content-Type" header: "${type}"`));
        return;
      }
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve(Buffer.concat(chunks)));
      res.on('error', () => reject(new OcspResponseError('OCSP responder prematurely closed connection')));
    });
    req.end();
  });
}

/** `ngx_ssl_stapling_responder()`: the URL's host, port and path, or the reason it is ignored. */
function parseResponder(url: string): Responder | string {
  if (url.length <= 7 || url.slice(0, 7).toLowerCase() !== 'http://') return `invalid URL prefix in OCSP responder "${url}"`;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return `invalid host in OCSP responder "${url.slice(7)}"`;
  }
  const host = parsed.hostname.startsWith('[') ? parsed.hostname.slice(1, -1) : parsed.hostname;
  return { host, port: parsed.port === '' ? 80 : Number(parsed.port), uri: `${parsed.pathname}${parsed.search}` || '/' };
}

/** `ngx_ssl_stapling_issuer()`: the issuer among the certificate file's chain, then the trusted certificates. */
function issuerOf(cert: X509Certificate, chain: readonly X509Certificate[], trusted: readonly X509Certificate[]): X509Certificate | undefined {
  return [...chain, ...trusted].find((candidate) => cert.checkIssued(candidate) && cert.verify(candidate.publicKey));
}

/** The responder URL of the certificate's Authority Information Access (X509_get1_ocsp()). */
function aiaResponder(cert: X509Certificate): string | undefined {
  const line = (cert.infoAccess ?? '').split('\n').find((entry) => entry.startsWith('OCSP - URI:'));
  return line?.slice('OCSP - URI:'.length);
}

/** `ngx_ssl_stapling_file()`: the DER response, read now; throws {@link CertificateLoadError} with nginx's message. */
function readStaplingFile(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    const reason = errnoMessage((err as NodeJS.ErrnoException).code ?? '') ?? String(err);
    throw new CertificateLoadError(`BIO_new_file("${path}") failed (SSL: error:80000002:system library::${reason}:calling fopen(${path}, rb) error:10000080:BIO routines::no such file)`);
  }
}

/**
 * `ngx_ssl_stapling()` for each certificate of a server: its staple, or the [warn] that stapling is
 * ignored for it. `pems` are the certificate files as loaded (leaf, then chain); `name` each file's path.
 */
export function buildStaples(
  certificates: readonly { readonly name: string; readonly pem: string }[],
  trustedPem: string,
  settings: StaplingSettings,
  warn: (reason: string) => void,
): CertificateStaple[] {
  const trusted = splitPem(trustedPem);
  const fixed = settings.file === undefined ? undefined : readStaplingFile(settings.file);
  if (fixed !== undefined && !isOcspResponse(fixed)) {
    throw new CertificateLoadError(`d2i_OCSP_RESPONSE_bio("${settings.file ?? ''}") failed (SSL: error:0688010A:asn1 encoding routines::nested asn1 error)`);
  }
  const staples: CertificateStaple[] = [];
  for (const { name, pem } of certificates) {
    const [cert, ...chain] = splitPem(pem);
    if (cert === undefined) continue;
    const ignored = (reason: string): void => warn(`"ssl_stapling" ignored, ${reason}`);
    // ngx_ssl_stapling_certificate(): the file's response is taken before the issuer is looked for.
    const issuer = issuerOf(cert, chain, trusted);
    if (issuer === undefined) {
      if (fixed === undefined) {
        ignored(`issuer certificate not found for certificate "${name}"`);
        continue;
      }
    }
    const subject: OcspSubject = { cert, issuer: issuer ?? cert, chain, trusted };
    if (fixed !== undefined) {
      staples.push(new CertificateStaple(subject, name, settings, undefined, fixed));
      continue;
    }
    const url = settings.responder ?? aiaResponder(cert);
    if (url === undefined) {
      ignored(`no OCSP responder URL in the certificate "${name}"`);
      continue;
    }
    const responder = parseResponder(url);
    if (typeof responder === 'string') {
      ignored(`${responder} in the certificate "${name}"`);
      continue;
    }
    staples.push(new CertificateStaple(subject, name, settings, responder, undefined));
  }
  return staples;
}

function splitPem(pem: string): X509Certificate[] {
  return (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? []).map((block) => new X509Certificate(block));
}
