/**
 * `server_name` (`ngx_http_core_server_name()`) and virtual server selection for one address:port
 * (`ngx_http_server_names()`, `ngx_http_find_virtual_server()`): exact name, then the longest
 * leading wildcard (`*.example.com`, `.example.com`), then the longest trailing wildcard
 * (`www.example.*`), then regular expressions in the order they appear, else the default server.
 */
import { hostname } from 'node:os';
import type { DirectiveContext } from '../conf/registry.js';
import { compileConfigRegex, compileNginxRegex, type NginxRegex } from './regex.js';
import { toByteString } from '../core/byte-string.js';

/** One name of a server, as written (lowercased unless a regex). */
export interface ServerName {
  readonly kind: 'name' | 'regex';
  /** The name, lowercased; for a regex, its source without `~`. */
  readonly name: string;
  /** For a regex: nginx matches caselessly when the pattern has an uppercase letter. */
  readonly caseless: boolean;
}

/** The default `server_name "";`: matches requests without a `Host` header. */
export const DEFAULT_SERVER_NAMES: readonly ServerName[] = [{ kind: 'name', name: '', caseless: false }];

/** Parses `server_name name ...;`, appending to earlier `server_name` lines of the same server. */
export function parseServerNames(args: readonly string[], ctx: DirectiveContext, previous: readonly ServerName[] | undefined): readonly ServerName[] {
  const names = [...(previous ?? [])];
  for (const arg of args) {
    const ch = arg[0];
    if ((ch === '*' && (arg.length < 3 || arg[1] !== '.')) || (ch === '.' && arg.length < 2)) {
      ctx.fail(`server name "${arg}" is invalid`);
    }
    if (ch !== '~') {
      const name = arg.toLowerCase() === '$hostname' ? hostname() : arg;
      names.push({ kind: 'name', name: name.toLowerCase(), caseless: false });
      continue;
    }
    if (arg.length === 1) ctx.fail(`empty regex in server name "${arg}"`);
    const source = arg.slice(1);
    const caseless = /[A-Z]/.test(source);
    compileConfigRegex(source, caseless, ctx);
    names.push({ kind: 'regex', name: source, caseless });
  }
  return names;
}

/** `$server_name`: the first name, without the leading dot of `.example.com`; a regex with its `~`. */
export function primaryServerName(names: readonly ServerName[]): string {
  const first = names[0];
  if (first === undefined) return '';
  // ngx_http_core_merge_srv_conf(): a regex keeps its "~", a ".example.com" loses its dot.
  if (first.kind === 'regex') return `~${first.name}`;
  return first.name.startsWith('.') ? first.name.slice(1) : first.name;
}

/** The server chosen for a request, and the captures of the regex name that chose it, if any. */
export interface VirtualHostMatch<S> {
  readonly server: S;
  readonly match: RegExpExecArray | undefined;
}

/** What {@link VirtualHosts.build} reports instead of building: a bad wildcard, a conflicting name. */
export interface VirtualHostsReporter {
  /** `invalid server name or wildcard "x" on 0.0.0.0:80`: nginx refuses the configuration. */
  invalid(reason: string): void;
  /** `conflicting server name "x" on 0.0.0.0:80, ignored`: a warning. */
  conflict(reason: string): void;
}

const regexCache = new WeakMap<ServerName, NginxRegex>();

function regexOf(name: ServerName): NginxRegex {
  let compiled = regexCache.get(name);
  if (compiled === undefined) {
    compiled = compileNginxRegex(name.name, name.caseless);
    regexCache.set(name, compiled);
  }
  return compiled;
}

/** The name tables of one address:port, built once per configuration generation. */
export class VirtualHosts<S> {
  readonly #exact = new Map<string, S>();
  /** `*.example.com` and `.example.com`, keyed `.example.com`. */
  readonly #head = new Map<string, S>();
  /** `www.example.*`, keyed `www.example.`. */
  readonly #tail = new Map<string, S>();
  readonly #regexes: { regex: RegExp; server: S }[] = [];
  readonly #default: S;

  private constructor(defaultServer: S) {
    this.#default = defaultServer;
  }

  /** Builds the tables as ngx_http_server_names() does, servers in the order they listed the address. */
  static build<S>(
    servers: readonly S[],
    defaultServer: S,
    namesOf: (server: S) => readonly ServerName[],
    addrText: string,
    report: VirtualHostsReporter,
  ): VirtualHosts<S> {
    const hosts = new VirtualHosts(defaultServer);
    for (const server of servers) {
      for (const name of namesOf(server)) {
        if (name.kind === 'regex') hosts.#regexes.push({ regex: regexOf(name).regex, server });
        else hosts.#add(name.name, server, addrText, report);
      }
    }
    return hosts;
  }

  /** `ngx_hash_add_key()` with `NGX_HASH_WILDCARD_KEY`: the wildcards nginx supports, and conflicts. */
  #add(written: string, server: S, addrText: string, report: VirtualHostsReporter): void {
    const name = toByteString(written);
    const stars = name.split('*').length - 1;
    if (stars > 1 || name.includes('..') || name.includes('\0')) {
      report.invalid(`invalid server name or wildcard "${written}" on ${addrText}`);
      return;
    }
    const conflict = (): void => report.conflict(`conflicting server name "${written}" on ${addrText}, ignored`);
    const put = (map: Map<string, S>, key: string): boolean => {
      if (map.has(key)) return false;
      map.set(key, server);
      return true;
    };
    if (name.length > 1 && name.startsWith('.')) {
      // ".example.com" is both the exact "example.com" and the wildcard "*.example.com".
      if (!put(this.#exact, name.slice(1)) || !put(this.#head, name)) conflict();
    } else if (name.length > 2 && name.startsWith('*.')) {
      if (!put(this.#head, name.slice(1))) conflict();
    } else if (name.length > 2 && name.endsWith('.*')) {
      if (!put(this.#tail, name.slice(0, -1))) conflict();
    } else if (stars > 0) {
      report.invalid(`invalid server name or wildcard "${written}" on ${addrText}`);
    } else if (!put(this.#exact, name)) {
      conflict();
    }
  }

  /** Chooses the server for a validated, lowercased host (empty when the request had none). */
  find(host: string): VirtualHostMatch<S> {
    const exact = this.#exact.get(host);
    if (exact !== undefined) return { server: exact, match: undefined };
    if (this.#head.size > 0) {
      for (let dot = host.indexOf('.'); dot !== -1; dot = host.indexOf('.', dot + 1)) {
        const server = this.#head.get(host.slice(dot));
        if (server !== undefined) return { server, match: undefined };
      }
    }
    if (this.#tail.size > 0) {
      for (let dot = host.lastIndexOf('.'); dot > 0; dot = host.lastIndexOf('.', dot - 1)) {
        const server = this.#tail.get(host.slice(0, dot + 1));
        if (server !== undefined) return { server, match: undefined };
      }
    }
    for (const { regex, server } of this.#regexes) {
      const match = regex.exec(host);
      if (match !== null) return { server, match };
    }
    return { server: this.#default, match: undefined };
  }

  /** The default server of this address:port. */
  get defaultServer(): S {
    return this.#default;
  }
}
