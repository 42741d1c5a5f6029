/**
 * Where a running hitless's admin API is, as `hitless certs` and `hitless deploy --target hitless`
 * find it: given directly (a socket path, or a loopback URL with a token file), or read from the
 * configuration's first `admin_listen` (a unix socket preferred), as `hitless -s` reads `pid`.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { loadConfig } from '../conf/loader.js';
import type { DirectiveRegistry } from '../conf/registry.js';
import { ConfigError, formatSyscallError, HitlessError, UsageError } from '../core/errors.js';
import type { AdminEndpoint } from './admin-client.js';
import type { AdminListen } from './admin-module.js';

/** How a command names the admin API; every field is optional. */
export interface AdminLocation {
  /** The admin unix socket. */
  readonly socket?: string | undefined;
  /** `http://127.0.0.1:9901`: a TCP admin API, with `tokenFile`. */
  readonly url?: string | undefined;
  readonly tokenFile?: string | undefined;
  /** The configuration file (`-c`), relative to `prefix`; default `defaultConf`. */
  readonly conf?: string | undefined;
  /** The prefix (`-p`); default `defaultPrefix`. */
  readonly prefix?: string | undefined;
}

/** Resolves an {@link AdminLocation}, reading the configuration with `defaults.registry`; throws UsageError for a bad flag, HitlessError when the configuration has no admin_listen. */
export function resolveAdminEndpoint(where: AdminLocation, defaults: { prefix: string; conf: string; registry: DirectiveRegistry }): AdminEndpoint {
  if (where.socket !== undefined) return { socketPath: where.socket };
  if (where.url !== undefined) {
    let url: URL;
    try {
      url = new URL(where.url);
    } catch {
      throw new UsageError(`invalid admin URL "${where.url}": expected http://host:port`);
    }
    if (url.protocol !== 'http:' || url.port === '') throw new UsageError(`invalid admin URL "${where.url}": expected http://host:port`);
    if (where.tokenFile === undefined) throw new UsageError('an admin URL needs a token file');
    return { host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port), token: readToken(where.tokenFile) };
  }
  const prefix = resolve(where.prefix ?? defaults.prefix);
  const file = resolve(prefix, where.conf ?? defaults.conf);
  let listens: readonly AdminListen[];
  try {
    listens = loadConfig({ file, prefix: `${prefix}/`, registry: defaults.registry }).main.get('admin_listen');
  } catch (err) {
    if (err instanceof ConfigError) throw new HitlessError('HITLESS_ERR_CONFIG', `[${err.level}] ${err.message}`, { cause: err });
    throw err;
  }
  const listen = listens.find((candidate) => candidate.kind === 'unix') ?? listens[0];
  if (listen === undefined) throw new HitlessError('HITLESS_ERR_ADMIN', `No admin_listen in ${file}: the admin API is off`);
  if (listen.kind === 'unix') return { socketPath: listen.path };
  return { host: listen.host, port: listen.port, token: readToken(listen.tokenFile) };
}

function readToken(path: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch (err) {
    throw new UsageError(formatSyscallError('open', path, err));
  }
}

/** A short name for an endpoint, for messages and lock names: `unix:/run/admin.sock`, `127.0.0.1:9901`. */
export function describeAdminEndpoint(endpoint: AdminEndpoint): string {
  return 'socketPath' in endpoint ? `unix:${endpoint.socketPath}` : `${endpoint.host.includes(':') ? `[${endpoint.host}]` : endpoint.host}:${endpoint.port}`;
}
