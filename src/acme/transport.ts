/**
 * HTTPS for one ACME client on node:https: its own agent (so the issuer's trusted certificate and
 * ssl_verify apply to this issuer only, never process-wide), a time limit and a size limit on
 * every exchange, and an AbortSignal that ends the exchange at once.
 */
import type { LookupFunction } from 'node:net';
import { Agent, request } from 'node:https';
import { AcmeError } from './problem.js';

/** An answer from the ACME server, the body read to its end. */
export interface AcmeResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | undefined>>;
  readonly body: Buffer;
  /** `Link` header values with rel=... by relation (RFC 8288), e.g. `up`, `index`, `alternate`. */
  readonly links: Readonly<Record<string, readonly string[]>>;
}

/** Options of {@link AcmeTransport}. */
export interface AcmeTransportOptions {
  /** PEM certificates to trust instead of Node's bundled roots. Default: Node's roots. */
  readonly ca?: string | undefined;
  /** Verify the server's certificate. Default true. */
  readonly verify?: boolean | undefined;
  /** Time limit of one exchange, connect to last byte. Default 30 s. */
  readonly timeoutMs?: number | undefined;
  /** The User-Agent header RFC 8555 section 6.1 asks for. */
  readonly userAgent: string;
  /** Resolves the server's name instead of the system's resolver. Default dns.lookup. */
  readonly lookup?: LookupFunction | undefined;
}

/** The largest answer read: certificate chains and directories are a few kilobytes. */
const MAX_BODY_BYTES = 1 << 20;
const DEFAULT_TIMEOUT_MS = 30_000;

function parseLinks(values: string | string[] | undefined, base: string): Record<string, string[]> {
  const links: Record<string, string[]> = {};
  const list = values === undefined ? [] : Array.isArray(values) ? values : [values];
  for (const value of list) {
    for (const match of value.matchAll(/<([^>]*)>\s*((?:;\s*[^;,]*)*)/g)) {
      const rel = /;\s*rel="?([^";,]+)"?/i.exec(match[2] ?? '')?.[1];
      if (rel === undefined || match[1] === undefined) continue;
      let target: string;
      try {
        target = new URL(match[1], base).href;
      } catch {
        continue;
      }
      for (const name of rel.trim().split(/\s+/)) (links[name] ??= []).push(target);
    }
  }
  return links;
}

/** Why a request failed at the transport level, in a few words: the errno code, or the message. */
function reasonOf(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code !== undefined && !err.message.includes(code) ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
}

/** The HTTPS side of an ACME client. */
export class AcmeTransport {
  readonly #agent: Agent;
  readonly #timeoutMs: number;
  readonly #userAgent: string;

  constructor(options: AcmeTransportOptions) {
    this.#agent = new Agent({
      keepAlive: true,
      maxSockets: 2,
      ...(options.ca !== undefined ? { ca: options.ca } : {}),
      rejectUnauthorized: options.verify ?? true,
      ...(options.lookup !== undefined ? { lookup: options.lookup } : {}),
    });
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#userAgent = options.userAgent;
  }

  /** One exchange. Transport failures (refused, reset, TLS, time limit) throw an {@link AcmeError} naming `what`. */
  send(
    what: string,
    url: string,
    options: { method: 'GET' | 'HEAD' | 'POST'; body?: string; contentType?: string; accept?: string; signal?: AbortSignal | undefined },
  ): Promise<AcmeResponse> {
    return new Promise((resolve, reject) => {
      const signal = options.signal;
      if (signal?.aborted === true) {
        reject(new AcmeError(`${what}: aborted`, { cause: signal.reason }));
        return;
      }
      let parsed: URL;
      try {
        parsed = new URL(url);
      } catch {
        reject(new AcmeError(`${what}: invalid URL "${url}"`));
        return;
      }
      if (parsed.protocol !== 'https:') {
        reject(new AcmeError(`${what}: the URL "${url}" is not https`));
        return;
      }
      const headers: Record<string, string> = { 'user-agent': this.#userAgent, 'accept-language': 'en' };
      if (options.accept !== undefined) headers.accept = options.accept;
      if (options.body !== undefined) {
        headers['content-type'] = options.contentType ?? 'application/jose+json';
        headers['content-length'] = String(Buffer.byteLength(options.body));
      }
      let settled = false;
      const fail = (message: string, cause?: unknown): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        req.destroy();
        reject(new AcmeError(message, { cause }));
      };
      const onAbort = (): void => fail(`${what}: aborted`, signal?.reason);
      const timer = setTimeout(() => fail(`${what}: no answer from "${url}" within ${this.#timeoutMs} ms`), this.#timeoutMs);
      const req = request(parsed, { method: options.method, headers, agent: this.#agent }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_BODY_BYTES) fail(`${what}: the answer from "${url}" is larger than ${MAX_BODY_BYTES} bytes`);
          else chunks.push(chunk);
        });
        res.on('error', (err) => fail(`${what}: reading the answer from "${url}" failed: ${reasonOf(err)}`, err));
        res.on('end', () => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          const flat: Record<string, string | undefined> = {};
          for (const [name, value] of Object.entries(res.headers)) flat[name] = Array.isArray(value) ? value.join(', ') : value;
          resolve({ status: res.statusCode ?? 0, headers: flat, body: Buffer.concat(chunks), links: parseLinks(res.headers.link, url) });
        });
      });
      req.on('error', (err) => fail(`${what}: "${url}" unreachable: ${reasonOf(err)}`, err));
      signal?.addEventListener('abort', onAbort, { once: true });
      req.end(options.body);
    });
  }

  /** Closes the kept-alive connections. */
  close(): void {
    this.#agent.destroy();
  }
}
