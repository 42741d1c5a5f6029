/**
 * The structure of nginx's `ngx_http_module` and `ngx_http_core_module`: the `http` block, virtual
 * `server` blocks and `location` blocks, with nginx's rules for location modifiers and nesting, and
 * the core directives a minimal server needs: `listen`, `server_name`, keep-alive, `default_type`.
 */
import { ConfigError } from '../core/errors.js';
import { parseNumber, parseSize, parseTime } from '../core/parse.js';
import type { Template } from '../core/variables.js';
import { defineDirective, type AnyDirectiveSpec, type ConfBlockView, type ConfModule, type DirectiveContext } from '../conf/registry.js';
import { parseValue, timeDirective } from '../conf/values.js';
import { groupListens, implicitListen, parseListen, type HttpListen } from './listen.js';
import { CORE_DIRECTIVES } from './core-directives.js';
import { EARLY_HINTS_DIRECTIVE } from './early-hints.js';
import { checkLimitRateVariables, LIMIT_RATE_DIRECTIVES } from './limit-rate.js';
import { checkDuplicateLocations, type LocationMatch } from './locations.js';
import { compileConfigRegex } from './regex.js';
import { DEFAULT_SERVER_NAMES, parseServerNames, VirtualHosts, type ServerName } from './server-names.js';

// LocationMatch lives with location selection (locations.ts), which must not import this table.
export type { LocationMatch };

/** `keepalive_timeout timeout [header_timeout]`. */
export interface KeepaliveTimeout {
  /** How long an idle keep-alive connection stays open, in ms; 0 disables keep-alive. */
  readonly timeoutMs: number;
  /** The `Keep-Alive: timeout=N` header value in seconds, if configured. */
  readonly headerSeconds: number | undefined;
}

declare module '../conf/registry.js' {
  interface DirectiveValues {
    http: undefined;
    location: undefined;
    listen: readonly HttpListen[];
    server_name: readonly ServerName[];
    keepalive_timeout: KeepaliveTimeout;
    keepalive_requests: number;
    default_type: string;
    keepalive_time: number;
  }
}

/** Splits a location's arguments into its modifier and name, as `ngx_http_core_location()` does. */
export function parseLocationMatch(args: readonly string[], ctx: DirectiveContext): LocationMatch {
  let match: LocationMatch;
  if (args.length === 2) {
    const [modifier = '', name = ''] = args;
    switch (modifier) {
      case '=':
        match = { kind: 'exact', name, caseless: false };
        break;
      case '^~':
        match = { kind: 'prefix-noregex', name, caseless: false };
        break;
      case '~':
        match = { kind: 'regex', name, caseless: false };
        break;
      case '~*':
        match = { kind: 'regex', name, caseless: true };
        break;
      default:
        ctx.fail(`invalid location modifier "${modifier}"`);
    }
  } else {
    const [name = ''] = args;
    if (name.startsWith('=')) match = { kind: 'exact', name: name.slice(1), caseless: false };
    else if (name.startsWith('^~')) match = { kind: 'prefix-noregex', name: name.slice(2), caseless: false };
    else if (name.startsWith('~*')) match = { kind: 'regex', name: name.slice(2), caseless: true };
    else if (name.startsWith('~')) match = { kind: 'regex', name: name.slice(1), caseless: false };
    else if (name.startsWith('@')) match = { kind: 'named', name, caseless: false };
    else match = { kind: 'prefix', name, caseless: false };
  }
  if (match.kind === 'regex') compileConfigRegex(match.name, match.caseless, ctx);
  const outer = ctx.enclosing?.name === 'location' ? (ctx.enclosing.value as LocationMatch) : undefined;
  if (outer !== undefined) {
    if (outer.kind === 'exact') ctx.fail(`location "${match.name}" cannot be inside the exact location "${outer.name}"`);
    if (outer.kind === 'named') ctx.fail(`location "${match.name}" cannot be inside the named location "${outer.name}"`);
    if (match.kind === 'named') ctx.fail(`named location "${match.name}" can be on the server level only`);
    if (match.kind !== 'regex' && !match.name.startsWith(outer.name)) {
      ctx.fail(`location "${match.name}" is outside location "${outer.name}"`);
    }
  }
  return match;
}

// ---- Client request limits and error pages (ngx_http_core_module), moved from the proxy module.
// Kept apart from the table below so that directives added at its end merge cleanly.

/** One `error_page code ... [=[response]] uri`. */
export interface ErrorPage {
  readonly codes: readonly number[];
  /** `=404` changes the status; `=` alone takes the status of the page's own response. */
  readonly override: number | 'response' | undefined;
  readonly uri: Template;
}

declare module '../conf/registry.js' {
  interface DirectiveValues {
    client_max_body_size: number;
    client_body_timeout: number;
    client_header_timeout: number;
    send_timeout: number;
    error_page: readonly ErrorPage[];
  }
}

/** Parses `error_page`, as `ngx_http_core_error_page()` does. */
function parseErrorPage(args: readonly string[], ctx: DirectiveContext, previous: readonly ErrorPage[] | undefined): readonly ErrorPage[] {
  const uri = args[args.length - 1] ?? '';
  let override: ErrorPage['override'];
  let codeArgs = args.slice(0, -1);
  const last = codeArgs[codeArgs.length - 1];
  if (last?.startsWith('=')) {
    codeArgs = codeArgs.slice(0, -1);
    if (last === '=') override = 'response';
    else override = parseNumber(last.slice(1)) ?? ctx.fail(`invalid value "${last}"`);
  }
  if (codeArgs.length === 0) ctx.fail('invalid number of arguments in "error_page" directive');
  const codes = codeArgs.map((code) => {
    const status = parseNumber(code);
    if (status === undefined || status < 300 || status > 599) ctx.fail(`value "${code}" must be between 300 and 599`);
    if (status === 499) ctx.fail(`value "${code}" must be between 300 and 599`);
    return status;
  });
  return [...(previous ?? []), { codes, override, uri: parseValue(uri, ctx) }];
}

/** `client_max_body_size`, the client timeouts and `error_page`. */
const clientRequestDirectives: readonly AnyDirectiveSpec[] = [
    defineDirective({
      kind: 'value',
      name: 'client_max_body_size',
      contexts: ['http', 'server', 'location'],
      args: [1],
      syntax: 'size;',
      summary: 'The largest request body accepted; larger ones get 413. 0 means no limit.',
      default: () => 1024 * 1024,
      defaultText: 'client_max_body_size 1m;',
      parse: ([value = ''], ctx) => parseSize(value) ?? ctx.fail('"client_max_body_size" directive invalid value'),
    }),
    timeDirective('client_body_timeout', 'How long a client may pause between two reads of its request body; then 408.', '60s'),
    timeDirective('client_header_timeout', 'How long a client may take to send the request head; then the connection is closed.', '60s', ['http', 'server']),
    timeDirective('send_timeout', 'How long a client may take to accept the next part of the response; then the connection is closed.', '60s'),
    defineDirective({
      kind: 'value',
      name: 'error_page',
      contexts: ['http', 'server', 'location', 'location_if'],
      args: '2+',
      repeatable: true,
      syntax: 'code ... [=[response]] uri;',
      summary: 'The URI answered for these error codes: a location path or @name (an internal redirect, method becomes GET), or a URL (a 302 redirect); =code changes the status.',
      default: () => [],
      defaultText: '—',
      parse: parseErrorPage,
    }),
];

// ---- End of the client request directives.

/** The `http`, `server` and `location` blocks. */
export const httpCoreModule: ConfModule = {
  name: 'ngx_http_core_module',
  directives: [
    defineDirective({
      kind: 'block',
      name: 'http',
      contexts: ['main'],
      args: [0],
      block: 'http',
      unique: true,
      syntax: '{ ... }',
      summary: 'The HTTP server: its virtual servers, upstream groups and shared settings.',
    }),
    defineDirective({
      kind: 'block',
      name: 'server',
      contexts: ['http'],
      args: [0],
      block: 'server',
      syntax: '{ ... }',
      summary: 'A virtual server, chosen by the address a connection arrives on and the requested host name.',
    }),
    defineDirective({
      kind: 'block',
      name: 'location',
      contexts: ['server', 'location'],
      args: [1, 2],
      block: 'location',
      syntax: '[ = | ~ | ~* | ^~ ] uri { ... } | @name { ... }',
      summary: 'Settings for requests whose URI matches: exact (=), longest prefix (^~ stops regex search), or regular expression (~, ~* caseless), in nginx\'s order.',
      parse: parseLocationMatch,
    }),
    defineDirective({
      kind: 'value',
      name: 'listen',
      contexts: ['server'],
      args: '1+',
      repeatable: true,
      inherit: false,
      syntax: 'address[:port] [default_server] [ssl] [http2] [proxy_protocol] [backlog=number] [rcvbuf=size] [sndbuf=size] [deferred] [bind] [ipv6only=on|off] [reuseport] [so_keepalive=on|off|[keepidle]:[keepintvl]:[keepcnt]]; | port [...]; | unix:path [...];',
      summary: 'The address and port, or unix socket, the server accepts requests on; the first server of an address:port, or its default_server, answers names no server claims.',
      default: () => [implicitListen()],
      defaultText: 'listen *:80 | *:8000;',
      parse: parseListen,
    }),
    defineDirective({
      kind: 'value',
      name: 'server_name',
      contexts: ['server'],
      args: '1+',
      repeatable: true,
      inherit: false,
      syntax: 'name ...;',
      summary: 'The names of the virtual server: exact, *.example.com, .example.com, www.example.*, ~regex (with named captures), or "" for requests without a Host header.',
      default: () => DEFAULT_SERVER_NAMES,
      defaultText: 'server_name "";',
      parse: parseServerNames,
    }),
    ...clientRequestDirectives,
    defineDirective({
      kind: 'value',
      name: 'keepalive_timeout',
      contexts: ['http', 'server', 'location'],
      args: [1, 2],
      syntax: 'timeout [header_timeout];',
      summary: 'How long an idle keep-alive connection stays open (0 disables keep-alive), and the optional Keep-Alive: timeout= header value.',
      default: () => ({ timeoutMs: 75_000, headerSeconds: undefined }),
      defaultText: 'keepalive_timeout 75s;',
      parse: ([timeout = '', header], ctx) => {
        const timeoutMs = parseTime(timeout) ?? ctx.fail('"keepalive_timeout" directive invalid value');
        if (header === undefined) return { timeoutMs, headerSeconds: undefined };
        const headerMs = parseTime(header, { seconds: true }) ?? ctx.fail('"keepalive_timeout" directive invalid value');
        return { timeoutMs, headerSeconds: headerMs / 1000 };
      },
    }),
    defineDirective({
      kind: 'value',
      name: 'keepalive_requests',
      contexts: ['http', 'server', 'location'],
      args: [1],
      syntax: 'number;',
      summary: 'How many requests one keep-alive connection may carry; the last response says Connection: close, or HTTP/2 sends GOAWAY after the last stream (the default server decides for HTTP/2).',
      default: () => 1000,
      defaultText: 'keepalive_requests 1000;',
      parse: ([value = ''], ctx) => parseNumber(value) ?? ctx.fail('"keepalive_requests" directive invalid number'),
    }),
    defineDirective({
      kind: 'value',
      name: 'keepalive_time',
      contexts: ['http', 'server', 'location'],
      args: [1],
      syntax: 'time;',
      summary: 'How long one keep-alive connection may carry requests (nginx 1.19.10+); after it, the next response says Connection: close, or HTTP/2 sends GOAWAY.',
      default: () => 3_600_000,
      defaultText: 'keepalive_time 1h;',
      parse: ([value = ''], ctx) => parseTime(value) ?? ctx.fail('"keepalive_time" directive invalid value'),
    }),
    defineDirective({
      kind: 'value',
      name: 'default_type',
      contexts: ['http', 'server', 'location'],
      args: [1],
      syntax: 'mime-type;',
      summary: 'The Content-Type of responses whose type nothing else decides, such as the text of return.',
      default: () => 'text/plain',
      defaultText: 'default_type text/plain;',
      parse: ([value = '']) => value,
    }),
    // --- coredirs: the rest of ngx_http_core_module (server_tokens, resolver, buffers, lingering, ...) ---
    ...CORE_DIRECTIVES,
    EARLY_HINTS_DIRECTIVE,
    ...LIMIT_RATE_DIRECTIVES,
    // --- end coredirs ---
  ],
  check(main) {
    const http = main.blocks.find((block) => block.name === 'http');
    if (http === undefined) return;
    // The order nginx finds them in: listen while parsing, then locations, then server names.
    const sockets = groupListens(http);
    for (const server of serversOf(http)) checkDuplicateLocations(server);
    checkLimitRateVariables(http);
    for (const socket of sockets) {
      for (const addr of socket.addrs) {
        if (addr.servers.length < 2) continue;
        VirtualHosts.build(addr.servers, addr.defaultServer, (server) => server.get('server_name'), addr.listen.addrText, {
          invalid: (reason) => {
            throw new ConfigError(reason, undefined);
          },
          conflict: () => undefined,
        });
      }
    }
  },
};

/** The `server` blocks of an `http` block, in order. */
export function serversOf(http: ConfBlockView): ConfBlockView[] {
  return http.blocks.filter((block) => block.name === 'server');
}
