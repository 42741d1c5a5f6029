/** Shared helpers of the HTTP tests: load a configuration, serve it on loopback, make requests. */
import type { ServingState } from '../../src/http/serving-state.js';
import { request as httpRequest, type Agent, type IncomingHttpHeaders } from 'node:http';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { ErrorLog } from '../../src/core/log.js';
import { loadConfigText } from '../../src/conf/loader.js';
import type { HitlessConfig } from '../../src/conf/model.js';
import { createRegistry } from '../../src/modules.js';
import { collectListens, HttpRuntime } from '../../src/http/runtime.js';
import { configErrorOf } from '../helpers/config-error.js';

const registry = createRegistry();

/** Loads configuration text as `/x.conf`, with `events {}` prepended. */
export function load(text: string, prefix = '/srv/hitless'): HitlessConfig {
  return loadConfigText(`events {} ${text}`, registry, { file: '/x.conf', prefix });
}

/** The message of the ConfigError a configuration is refused with. */
export function errorOf(text: string): string {
  return configErrorOf(() => load(text), JSON.stringify(text));
}

/** A runtime serving a configuration on loopback sockets this test created itself. */
export interface Served {
  readonly runtime: HttpRuntime;
  /** The loopback port of each listen key. */
  readonly ports: ReadonlyMap<string, number>;
  /** The port of the first (or only) listening socket. */
  readonly port: number;
  readonly servers: readonly Server[];
  stop(): Promise<void>;
}

/**
 * Builds a runtime and, for every socket the configuration asks for, listens on 127.0.0.1 port 0
 * and attaches it, as the master would hand a socket it owns to a worker. `state`: the worker's
 * (certificate store, ticket key, zones); default, one of the runtime's own.
 */
export async function serve(text: string, prefix: string, log: ErrorLog = new ErrorLog([]), state?: ServingState): Promise<Served> {
  const config = load(text, prefix);
  const runtime = new HttpRuntime(config, state === undefined ? { log } : { log, state });
  const ports = new Map<string, number>();
  const servers: Server[] = [];
  for (const spec of collectListens(config)) {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    runtime.attach(spec.key, server);
    servers.push(server);
    const address = server.address();
    ports.set(spec.key, typeof address === 'object' && address !== null ? address.port : 0);
  }
  return {
    runtime,
    ports,
    port: ports.values().next().value ?? 0,
    servers,
    async stop() {
      for (const server of servers) server.close();
      runtime.close();
    },
  };
}

/** An error log that also records every line it is given, as `[level] message`, into `lines`. */
export function recordingLog(lines: string[]): ErrorLog {
  const log = new ErrorLog([]);
  const write = log.write.bind(log);
  log.write = (level, message, ...rest) => {
    lines.push(`[${level}] ${message}`);
    write(level, message, ...rest);
  };
  return log;
}

/** A response, read to its end. */
export interface Reply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/** One request over node:http to 127.0.0.1. */
export function get(port: number, path: string, options: { host?: string; method?: string; agent?: Agent | false; headers?: Record<string, string>; body?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: '127.0.0.1', port, path, method: options.method ?? 'GET', agent: options.agent ?? false, headers: { host: options.host ?? 'localhost', ...options.headers } },
      (res) => {
        let body = '';
        res.setEncoding('latin1');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

/** A response read off a raw socket. */
export interface RawResponse {
  readonly status: number;
  /** Header names lowercased; repeated headers joined with `, `. */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

/** A client on a raw TCP connection, for what node:http's client hides: keep-alive, resets, FIN. */
export class RawClient {
  readonly socket: Socket;
  #buffer = '';
  #waiters: (() => void)[] = [];
  /** Set once the server closed its side (FIN). */
  ended = false;
  /** Set when the connection was reset or failed. */
  error: Error | undefined;
  readonly closed: Promise<void>;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      this.#buffer += chunk;
      this.#wake();
    });
    socket.on('end', () => {
      this.ended = true;
      this.#wake();
    });
    socket.on('error', (err) => {
      this.error = err;
      this.#wake();
    });
    this.closed = new Promise((resolve) => socket.on('close', () => resolve()));
  }

  /** Connects to 127.0.0.1 (or another loopback address). */
  static connect(port: number, host = '127.0.0.1'): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, host, () => resolve(new RawClient(socket)));
      socket.once('error', reject);
    });
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const waiter of waiters) waiter();
  }

  send(text: string): void {
    this.socket.write(text);
  }

  /** Reads one response framed by Content-Length (or none, for 204 and 304). */
  async read(): Promise<RawResponse> {
    for (;;) {
      const end = this.#buffer.indexOf('\r\n\r\n');
      if (end !== -1) {
        const [statusLine = '', ...lines] = this.#buffer.slice(0, end).split('\r\n');
        const headers: Record<string, string> = {};
        for (const line of lines) {
          const colon = line.indexOf(':');
          const name = line.slice(0, colon).toLowerCase();
          const value = line.slice(colon + 1).trim();
          headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
        }
        const length = Number(headers['content-length'] ?? '0');
        if (this.#buffer.length >= end + 4 + length) {
          const body = this.#buffer.slice(end + 4, end + 4 + length);
          this.#buffer = this.#buffer.slice(end + 4 + length);
          return { status: Number(statusLine.split(' ')[1]), headers, body };
        }
      }
      if (this.ended || this.error !== undefined) throw new Error(`connection closed before a full response: ${JSON.stringify(this.#buffer)}`);
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }

  /** Sends a GET and reads its response. */
  async get(path: string, host = 'localhost', extra = ''): Promise<RawResponse> {
    this.send(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\n${extra}\r\n`);
    return this.read();
  }

  /** Waits until the server has closed its side or the connection failed. */
  async untilEnded(): Promise<void> {
    while (!this.ended && this.error === undefined) await new Promise<void>((resolve) => this.#waiters.push(resolve));
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** Lets pending I/O callbacks run a few times over, without waiting on a clock. */
export async function turns(count = 3): Promise<void> {
  for (let i = 0; i < count; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}
