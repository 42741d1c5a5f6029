/**
 * The directives of nginx's `ngx_http_fastcgi_module`, with nginx's syntax, defaults, inheritance
 * and error messages. The upstream address, next_upstream and timeouts are the proxy module's
 * under the fastcgi_ names; what they do at request time is in fastcgi.ts.
 */
import { ConfigError } from '../core/errors.js';
import { hasVariables } from '../conf/lexer.js';
import { defineDirective, type AnyDirectiveSpec, type CheckContext, type ConfBlockView, type ConfModule, type DirectiveContext } from '../conf/registry.js';
import type { Template } from '../core/variables.js';
import { checkUpstreamHost, checkUpstreamSsl, once, flag, headerList, nextUpstreamDirectives, parseUpstreamAddress, timeout, upstreamGroupNames, type NextUpstreamCase, type UpstreamAddress } from './proxy-module.js';
import { upstreamBufferDirectives } from './core-directives.js';
import { bindDirective, IGNORABLE_HEADERS } from './proxy-directives.js';
import { compileConfigRegex } from './regex.js';
import { blocksOf, parseValue } from '../conf/values.js';
import { checkVariables } from './variables.js';
import { sizeValue, type SizeValue } from './limit-rate.js';

/** Where `fastcgi_pass` sends requests. */
export interface FastcgiPassTarget extends UpstreamAddress {
  /** The argument as written. */
  readonly source: string;
  /** `suwsgi://`: TLS to the server, with the uwsgi_ssl_* settings. */
  readonly tls?: boolean;
  /** With variables: evaluated per request into a group's name or an address (ngx_http_fastcgi_eval()). */
  readonly template?: Template;
  readonly file: string;
  readonly line: number;
}

/** One `fastcgi_param`. */
export interface FastcgiParam {
  readonly name: string;
  readonly value: Template;
  /** `if_not_empty`: the parameter is not sent when its value is empty. */
  readonly ifNotEmpty: boolean;
}

declare module '../conf/registry.js' {
  interface DirectiveValues {
    fastcgi_pass: FastcgiPassTarget;
    fastcgi_param: readonly FastcgiParam[];
    fastcgi_index: string;
    fastcgi_split_path_info: RegExp | undefined;
    fastcgi_keep_conn: boolean;
    fastcgi_hide_header: readonly string[];
    fastcgi_pass_header: readonly string[];
    fastcgi_ignore_headers: ReadonlySet<string>;
    fastcgi_catch_stderr: readonly string[];
    fastcgi_connect_timeout: number;
    fastcgi_send_timeout: number;
    fastcgi_read_timeout: number;
    fastcgi_intercept_errors: boolean;
    fastcgi_socket_keepalive: boolean;
    fastcgi_buffering: boolean;
    fastcgi_request_buffering: boolean;
    fastcgi_pass_request_body: boolean;
    fastcgi_pass_request_headers: boolean;
    fastcgi_next_upstream: ReadonlySet<NextUpstreamCase>;
    fastcgi_next_upstream_tries: number;
    fastcgi_next_upstream_timeout: number;
    fastcgi_ignore_client_abort: boolean;
    fastcgi_limit_rate: SizeValue;
  }
}

/** Parses `fastcgi_pass address`, as ngx_http_fastcgi_pass() does: host:port, unix:/path or a group; no scheme, no default port. */
export function parseFastcgiPass([url = '']: readonly string[], ctx: DirectiveContext): FastcgiPassTarget {
  if (hasVariables(url)) return { source: url, template: parseValue(url, ctx), host: '', port: 0, explicitPort: false, uri: undefined, file: ctx.location.file, line: ctx.location.line };
  const address = parseUpstreamAddress(url, 0, ctx);
  return { ...address, source: url, file: ctx.location.file, line: ctx.location.line };
}

/** `fastcgi_split_path_info regex`: a PCRE with exactly two captures (ngx_http_fastcgi_split_path_info()). */
function parseSplit([source = '']: readonly string[], ctx: DirectiveContext): RegExp {
  const { regex } = compileConfigRegex(source, false, ctx);
  const captures = (new RegExp(`${regex.source}|`).exec('') as RegExpExecArray).length - 1;
  if (captures !== 2) ctx.fail(`pattern "${source}" must have 2 captures`);
  return regex;
}

/** Checks needing the whole `http` block: every `fastcgi_pass` (or `uwsgi_pass`, `scgi_pass`) host is a group or resolves; the variables of the parameters exist. */
export function checkCgiTargets(prefix: 'fastcgi' | 'uwsgi' | 'scgi'): (main: ConfBlockView, ctx: CheckContext) => void {
  const pass = `${prefix}_pass` as 'fastcgi_pass';
  const param = `${prefix}_param` as 'fastcgi_param';
  return (main, ctx) => {
    const warn = once(ctx);
    const http = main.blocks.find((block) => block.name === 'http');
    if (http === undefined) return;
    const groups = upstreamGroupNames(http);
    const templates: Template[] = [];
    for (const block of blocksOf(http)) {
      for (const item of block.isSet(param) ? block.get(param) : []) templates.push(item.value);
      const bind = block.isSet(`${prefix}_bind` as 'proxy_bind') ? block.get(`${prefix}_bind` as 'proxy_bind') : undefined;
      if (bind?.kind === 'value') templates.push(bind.value);
      if (!block.isSet(pass)) continue;
      const target = block.get(pass);
      const others = ['proxy_pass', 'grpc_pass', 'fastcgi_pass', 'uwsgi_pass', 'scgi_pass'].filter((name) => name !== pass && block.isSet(name as 'proxy_pass'));
      if (others.length > 0) throw new ConfigError(`"${pass}" with "${others[0] ?? ''}" in one location is not supported by hitless`, target);
      if (target.template !== undefined) templates.push(target.template);
      else checkUpstreamHost(target, groups);
      if (target.tls === true) {
        templates.push(...checkUpstreamSsl(block, 'uwsgi', warn));
        const sslName = block.get('uwsgi_ssl_name' as 'grpc_ssl_name');
        if (sslName !== undefined) templates.push(sslName);
      }
    }
    checkVariables(http, templates);
  };
}

/**
 * The directives fastcgi, uwsgi and scgi share, under their prefix (nginx's three modules have the
 * same table for these): parameters, header lists, timeouts, flags, next_upstream and the buffer knobs.
 */
export function cgiDirectives(prefix: 'fastcgi' | 'uwsgi' | 'scgi'): AnyDirectiveSpec[] {
  const label = prefix === 'fastcgi' ? 'FastCGI' : prefix === 'scgi' ? 'SCGI' : 'uwsgi';
  const server = `${label} server`;
  const article = prefix === 'scgi' ? 'an' : 'a';
  // ngx_http_fastcgi_hide_headers and ngx_http_scgi_hide_headers hide Status; uwsgi's do not.
  const hidesStatus = prefix !== 'uwsgi';
  return [
    defineDirective({
      kind: 'value',
      name: `${prefix}_param` as 'fastcgi_param',
      contexts: ['http', 'server', 'location'],
      args: [2, 3],
      repeatable: true,
      syntax: 'parameter value [if_not_empty];',
      summary: `A parameter passed to the ${server} (variables allowed); with if_not_empty, only when its value is not empty. Inherited only by levels that set none.`,
      default: () => [],
      defaultText: '—',
      parse: ([name = '', value = '', flagArg], ctx, previous) => {
        if (flagArg !== undefined && flagArg !== 'if_not_empty') ctx.fail(`invalid parameter "${flagArg}"`);
        return [...(previous ?? []), { name, value: parseValue(value, ctx), ifNotEmpty: flagArg !== undefined }];
      },
    }),
    headerList(`${prefix}_hide_header`, `${article === 'an' ? 'An' : 'A'} ${server} response header not to pass to the client, besides ${hidesStatus ? 'Status and ' : ''}X-Accel-*.`),
    headerList(`${prefix}_pass_header`, `Passes ${article} ${server} response header that is hidden by default (${hidesStatus ? 'Status, ' : ''}X-Accel-*).`),
    defineDirective({
      kind: 'value',
      name: `${prefix}_ignore_headers` as 'fastcgi_ignore_headers',
      contexts: ['http', 'server', 'location'],
      args: '1+',
      syntax: 'field ...;',
      summary: `${label} response headers whose special meaning is ignored: X-Accel-Redirect, X-Accel-Limit-Rate, X-Accel-Buffering, X-Accel-Charset; X-Accel-Expires, Expires, Cache-Control, Set-Cookie and Vary only steer a cache, which hitless does not have.`,
      default: () => new Set<string>(),
      defaultText: '—',
      parse: (args, ctx) => {
        const names = new Set<string>();
        for (const value of args) {
          if (!IGNORABLE_HEADERS.has(value.toLowerCase())) ctx.fail(`invalid value "${value}"`);
          names.add(value.toLowerCase());
        }
        return names;
      },
    }),
    timeout(`${prefix}_connect_timeout`, `How long establishing a connection to ${article} ${server} may take.`, '60s'),
    timeout(`${prefix}_send_timeout`, `How long the ${server} may take to accept the next part of the request.`, '60s'),
    timeout(`${prefix}_read_timeout`, `How long the ${server} may stay silent between two reads of its response.`, '60s'),
    flag(`${prefix}_intercept_errors`, `Whether ${server} responses with status 300 or more are replaced by the matching error_page.`, false),
    bindDirective(`${prefix}_bind`),
    flag(`${prefix}_socket_keepalive`, `Whether TCP keepalive (SO_KEEPALIVE) is set on connections to ${server}s.`, false),
    flag(`${prefix}_buffering`, `Whether the ${server} response is read ahead of a slow client (in memory, up to 1 MiB per request) instead of at the client's pace.`, true),
    flag(`${prefix}_request_buffering`, `Whether the whole request body is read before the ${server} sees the request.`, true),
    flag(`${prefix}_pass_request_body`, `Whether the client's request body is passed to the ${server}.`, true),
    flag(`${prefix}_pass_request_headers`, `Whether the client's request headers are passed as HTTP_* parameters.`, true),
    flag(`${prefix}_ignore_client_abort`, `Whether the request to the ${server} goes on when the client closes its connection.`, false),
    defineDirective({
      kind: 'value',
      name: `${prefix}_limit_rate` as 'fastcgi_limit_rate',
      contexts: ['http', 'server', 'location'],
      args: [1],
      syntax: 'rate;',
      summary: `Bytes per second at which a response is read from the ${server}, per request (0: no limit), with ${prefix}_buffering on; may hold variables, read when the response head has arrived.`,
      default: () => ({ size: 0 }),
      defaultText: `${prefix}_limit_rate 0;`,
      parse: sizeValue,
    }),
    ...nextUpstreamDirectives(prefix),
    ...upstreamBufferDirectives(prefix),
  ];
}

/** The fastcgi module's directives. */
export const httpFastcgiModule: ConfModule = {
  name: 'ngx_http_fastcgi_module',
  directives: [
    defineDirective({
      kind: 'value',
      name: 'fastcgi_pass',
      contexts: ['location', 'location_if'],
      args: [1],
      inherit: false,
      syntax: 'address;',
      summary: 'Passes the request to a FastCGI server (PHP-FPM): host:port, unix:/path or an upstream group, with any balancer and the group\'s keepalive pool (with fastcgi_keep_conn on).',
      defaultText: '—',
      parse: parseFastcgiPass,
    }),
    defineDirective({
      kind: 'value',
      name: 'fastcgi_index',
      contexts: ['http', 'server', 'location'],
      args: [1],
      syntax: 'name;',
      summary: 'The file name appended to a $fastcgi_script_name that ends with a slash.',
      default: () => '',
      defaultText: '—',
      parse: ([name = '']) => name,
    }),
    defineDirective({
      kind: 'value',
      name: 'fastcgi_split_path_info',
      contexts: ['location'],
      args: [1],
      syntax: 'regex;',
      summary: 'A regular expression with two captures that splits $uri into $fastcgi_script_name and $fastcgi_path_info.',
      default: () => undefined,
      defaultText: '—',
      parse: parseSplit,
    }),
    flag('fastcgi_keep_conn', 'Whether FastCGI connections are kept open (FCGI_KEEP_CONN) for the group\'s keepalive pool.', false),
    defineDirective({
      kind: 'value',
      name: 'fastcgi_catch_stderr',
      contexts: ['http', 'server', 'location'],
      args: [1],
      repeatable: true,
      syntax: 'string;',
      summary: 'A string that, found in what the FastCGI server writes to stderr before the response head, makes the response invalid (502, or fastcgi_next_upstream invalid_header).',
      default: () => [],
      defaultText: '—',
      parse: ([text = ''], _ctx, previous) => [...(previous ?? []), text],
    }),
    ...cgiDirectives('fastcgi'),
  ],
  check: checkCgiTargets('fastcgi'),
};
