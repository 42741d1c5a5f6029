/**
 * hitless and Debian's nginx on one configuration text (a function of the port each listens on),
 * each in a prefix of its own under one temporary directory, and a request that reads the raw
 * response fields, in order and repeated ones apart, from either.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../deploy/helpers/nginx.js';
import { startServer, type RunningServer } from './side-by-side.js';

/** The two servers of a side-by-side test. */
export interface NginxPair {
  /** The directory both prefixes are under; files a configuration names can go here. */
  readonly dir: string;
  readonly ports: { readonly hitless: number; readonly nginx: number };
  /** The further ports each server was given (`extraPorts`), in order. */
  readonly extra: { readonly hitless: readonly number[]; readonly nginx: readonly number[] };
  stop(): Promise<void>;
}

/**
 * Writes `conf(port, dir, extra, name)` for each server, starts both, resolves once both listen on
 * `port` and on each of their `extraPorts` further free ports. `setup(dir)` runs first.
 */
export async function startPair(conf: (port: number, dir: string, extra: readonly number[], name: 'hitless' | 'nginx') => string, setup: (dir: string) => void = () => undefined, extraPorts = 0): Promise<NginxPair> {
  const dir = mkdtempSync(join(tmpdir(), 'hitless-pair-'));
  // nginx's workers run as nobody: what they serve must be readable by others.
  chmodSync(dir, 0o755);
  setup(dir);
  const servers: RunningServer[] = [];
  const ports = { hitless: 0, nginx: 0 };
  const extra = { hitless: [] as number[], nginx: [] as number[] };
  const stop = async (): Promise<void> => {
    await Promise.all(servers.map((server) => server.stop()));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (const name of ['hitless', 'nginx'] as const) {
      ports[name] = await freePort();
      for (let i = 0; i < extraPorts; i++) extra[name].push(await freePort());
      const prefix = join(dir, name);
      mkdirSync(join(prefix, 'logs'), { recursive: true });
      writeFileSync(join(prefix, 'nginx.conf'), conf(ports[name], dir, extra[name], name));
      const args = ['-p', `${prefix}/`, '-c', join(prefix, 'nginx.conf'), '-e', join(prefix, 'logs/error.log'), '-g', `daemon off; pid ${join(prefix, 'pid')};`];
      servers.push(await startServer(name, args, [ports[name], ...extra[name]]));
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { dir, ports, extra, stop };
}

/** A response with its fields as sent: lower-case names, in order, repeated ones apart. */
export interface RawAnswer {
  readonly status: number;
  readonly fields: readonly (readonly [name: string, value: string])[];
  readonly body: string;
}

/** The values of the fields named `name` (lower case). */
export function fieldsOf(answer: RawAnswer, name: string): string[] {
  return answer.fields.filter(([field]) => field === name).map(([, value]) => value);
}

/** One request on a new connection to 127.0.0.1:`port` (at most 10 s). */
export function fetchRaw(port: number, path: string, headers: Readonly<Record<string, string>> = {}, method = 'GET'): Promise<RawAnswer> {
  return requestRaw(port, path, { method, headers });
}

/** What {@link requestRaw} sends, and how. */
export interface RawRequest {
  readonly method?: string;
  readonly body?: Buffer | undefined;
  readonly headers?: Readonly<Record<string, string | string[]>>;
  /** A body without a Content-Length header goes chunked, in two writes 20 ms apart (the first 1000 bytes, then the rest). */
  readonly chunkedInTwo?: boolean;
  /** HTTPS (any certificate accepted) with this SNI name, instead of HTTP. */
  readonly tlsName?: string;
  /** The agent; default none (a new connection). */
  readonly agent?: http.Agent;
}

/** One request with an optional body to 127.0.0.1:`port` (at most 10 s), its response's fields as sent. */
export function requestRaw(port: number, path: string, options: RawRequest = {}): Promise<RawAnswer> {
  const method = options.method ?? 'GET';
  return new Promise((resolve, reject) => {
    const params = { host: '127.0.0.1', port, path, method, agent: options.agent ?? false, headers: { host: 'localhost', ...options.headers } };
    const onResponse = (res: http.IncomingMessage): void => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const fields: [string, string][] = [];
        for (let i = 0; i < res.rawHeaders.length; i += 2) fields.push([(res.rawHeaders[i] as string).toLowerCase(), res.rawHeaders[i + 1] as string]);
        resolve({ status: res.statusCode ?? 0, fields, body: Buffer.concat(chunks).toString('latin1') });
      });
      res.on('error', reject);
    };
    const req = options.tlsName !== undefined ? https.request({ ...params, rejectUnauthorized: false, servername: options.tlsName }, onResponse) : http.request(params, onResponse);
    req.setTimeout(10_000, () => req.destroy(new Error(`no answer to ${method} ${path} within 10 s`)));
    req.on('error', reject);
    const body = options.body;
    if (body !== undefined && options.chunkedInTwo === true && options.headers?.['content-length'] === undefined) {
      req.write(body.subarray(0, 1000));
      setTimeout(() => req.end(body.subarray(1000)), 20);
      return;
    }
    req.end(body);
  });
}
