/**
 * The directives of nginx's `ngx_http_proxy_module`, with nginx's syntax, defaults, inheritance and
 * error messages. What they do at request time is in proxy.ts.
 */
import { isIP } from 'node:net';
import { isAbsolute, resolve } from 'node:path';
import { PROXY_BUFFER_DIRECTIVES } from './core-directives.js';
import { ConfigError } from '../core/errors.js';
import { parseNumber } from '../core/parse.js';
import { hasVariables } from '../conf/lexer.js';
import { defineDirective, type AnyDirectiveSpec, type CheckContext, type ConfBlockView, type ConfModule, type DirectiveContext } from '../conf/registry.js';
import type { Template } from '../core/variables.js';
import type { LocationMatch } from './core-module.js';
import { resolveHostSync } from '../core/hosts.js';
import { blocksOf, flagDirective, parseValue, timeDirective } from '../conf/values.js';
import { compileConfigRegex } from './regex.js';
import { checkVariables } from './variables.js';
import { UpstreamTls, UpstreamTlsLoadError, type UpstreamTlsSettings } from '../tls/upstream-tls.js';
import { PROXY_REQUEST_DIRECTIVES } from './proxy-directives.js';
import { cookieTemplates, PROXY_COOKIE_DIRECTIVES } from './proxy-cookie.js';
import { isConstantTemplate, parseTemplate, TemplateSyntaxError } from '../core/variables.js';
import { parseCertificateCache, type CertificateCacheSetting } from '../tls/certificate-cache.js';
import { CONF_COMMANDS_MAPPED, confCommandPair } from '../tls/ssl-conf-command.js';
import { parsePasswordFile, type PasswordFile, type TlsFile } from '../tls/ssl-module.js';

/** Where `proxy_pass` sends requests. */
export interface ProxyPassTarget {
  /** The argument as written. */
  readonly source: string;
  /** Set when the URL holds variables: it is evaluated per request, as nginx does. */
  readonly template: Template | undefined;
  readonly scheme: 'http' | 'https';
  /** An upstream group's name, a host name, an IP address, or `unix:/path`. */
  readonly host: string;
  /** The port given, or the scheme's default. */
  readonly port: number;
  /** True when the URL names a port explicitly. */
  readonly explicitPort: boolean;
  /** The URI part (`/app/` in `http://b/app/`); undefined when the URL has none. */
  readonly uri: string | undefined;
  /** `$proxy_host`: host, and `:port` when the port is not the scheme's default. */
  readonly proxyHost: string;
  readonly file: string;
  readonly line: number;
}

/** One `proxy_set_header field value`. */
export interface ProxySetHeader {
  readonly name: string;
  readonly value: Template;
}

/** One `proxy_redirect` rule. */
export type ProxyRedirectRule =
  | { readonly kind: 'default' }
  | { readonly kind: 'prefix'; readonly from: Template; readonly to: Template }
  | { readonly kind: 'regex'; readonly from: RegExp; readonly to: Template };

/** `proxy_redirect`: off, or the rules in order. */
export type ProxyRedirect = 'off' | readonly ProxyRedirectRule[];

/** The cases `proxy_next_upstream` names; `non_idempotent` allows retrying POST and friends. */
export type NextUpstreamCase = 'error' | 'timeout' | 'invalid_header' | 'http_500' | 'http_502' | 'http_503' | 'http_504' | 'http_403' | 'http_404' | 'http_429' | 'non_idempotent';

declare module '../conf/registry.js' {
  interface DirectiveValues {
    proxy_pass: ProxyPassTarget | undefined;
    proxy_http_version: '1.0' | '1.1' | '2';
    proxy_pass_trailers: boolean;
    proxy_set_header: readonly ProxySetHeader[];
    proxy_hide_header: readonly string[];
    proxy_pass_header: readonly string[];
    proxy_pass_request_headers: boolean;
    proxy_pass_request_body: boolean;
    proxy_redirect: ProxyRedirect;
    proxy_connect_timeout: number;
    proxy_send_timeout: number;
    proxy_read_timeout: number;
    proxy_buffering: boolean;
    proxy_request_buffering: boolean;
    proxy_intercept_errors: boolean;
    proxy_next_upstream: ReadonlySet<NextUpstreamCase>;
    proxy_next_upstream_tries: number;
    proxy_next_upstream_timeout: number;
    proxy_ignore_client_abort: boolean;
    proxy_socket_keepalive: boolean;
    proxy_ssl_verify: boolean;
    proxy_ssl_trusted_certificate: string | undefined;
    proxy_ssl_verify_depth: number;
    proxy_ssl_name: Template | undefined;
    proxy_ssl_server_name: boolean;
    proxy_ssl_protocols: readonly string[];
    proxy_ssl_ciphers: string;
    proxy_ssl_certificate: TlsFile | undefined;
    proxy_ssl_certificate_key: TlsFile | undefined;
    proxy_ssl_session_reuse: boolean;
    proxy_ssl_password_file: PasswordFile | undefined;
    proxy_ssl_crl: string | undefined;
    proxy_ssl_conf_command: readonly (readonly [name: string, value: string])[];
    proxy_ssl_certificate_cache: CertificateCacheSetting | undefined;
  }
}

const NO_URI_PART = '"proxy_pass" cannot have URI part in location given by regular expression, or inside named location, or inside "if" statement, or inside "limit_except" block';

/** An upstream address as `ngx_parse_url()` splits it. */
export interface UpstreamAddress {
  /** An upstream group's name, a host name, an IP address (IPv6 in brackets), or `unix:/path`. */
  readonly host: string;
  /** The port given, or `defaultPort`. */
  readonly port: number;
  readonly explicitPort: boolean;
  /** The URI part (`/app/`); undefined when there is none. */
  readonly uri: string | undefined;
}

/**
 * Splits `host[:port][/uri]`, `[v6][:port][/uri]` or `unix:/path[:/uri]` (a URL without its scheme)
 * as ngx_parse_url() does, with its error messages; shared by proxy_pass and grpc_pass.
 */
export function parseUpstreamAddress(rest: string, defaultPort: number, ctx: DirectiveContext): UpstreamAddress {
  let host: string;
  let port = defaultPort;
  let explicitPort = false;
  let uri: string | undefined;
  if (rest.toLowerCase().startsWith('unix:')) {
    // unix:/path/to.sock:/uri — the path ends at the first colon after "unix:".
    const colon = rest.indexOf(':', 5);
    host = colon === -1 ? rest : rest.slice(0, colon);
    uri = colon === -1 ? undefined : rest.slice(colon + 1);
    if (host.length <= 5) ctx.fail(`no path in the unix domain socket in upstream "${rest}"`);
    return { host, port, explicitPort, uri };
  }
  const slash = rest.indexOf('/');
  const authority = slash === -1 ? rest : rest.slice(0, slash);
  uri = slash === -1 ? undefined : rest.slice(slash);
  let hostPart = authority;
  let portText: string | undefined;
  if (authority.startsWith('[')) {
    const close = authority.indexOf(']');
    if (close === -1) ctx.fail(`invalid IPv6 address in upstream "${rest}"`);
    hostPart = authority.slice(0, close + 1);
    const after = authority.slice(close + 1);
    if (after !== '') {
      if (!after.startsWith(':')) ctx.fail(`invalid host in upstream "${rest}"`);
      portText = after.slice(1);
    }
  } else if (authority.includes(':')) {
    hostPart = authority.slice(0, authority.indexOf(':'));
    portText = authority.slice(authority.indexOf(':') + 1);
  }
  if (hostPart === '') ctx.fail(`no host in upstream "${rest}"`);
  if (portText !== undefined) {
    const parsed = parseNumber(portText);
    if (parsed === undefined || parsed < 1 || parsed > 65535) ctx.fail(`invalid port in upstream "${rest}"`);
    port = parsed;
    explicitPort = true;
  }
  host = hostPart;
  return { host, port, explicitPort, uri };
}

/** Parses `proxy_pass URL`, as `ngx_http_proxy_pass()` and `ngx_parse_url()` do. */
export function parseProxyPass([url = '']: readonly string[], ctx: DirectiveContext): ProxyPassTarget {
  const where = { file: ctx.location.file, line: ctx.location.line };
  const lower = url.toLowerCase();
  const scheme = lower.startsWith('http://') ? 'http' : lower.startsWith('https://') ? 'https' : undefined;
  if (hasVariables(url)) {
    // ngx_http_proxy_pass(): a URL with variables is only compiled; its prefix is checked once it
    // is evaluated (ngx_http_proxy_eval()), so `http:/$uri` is fine when $uri begins with a slash.
    // The TLS client is set up for a URL whose literal start says https.
    return { source: url, template: parseValue(url, ctx), scheme: scheme ?? (lower.startsWith('https') ? 'https' : 'http'), host: '', port: 0, explicitPort: false, uri: undefined, proxyHost: '', ...where };
  }
  if (scheme === undefined) ctx.fail(`invalid URL prefix in "${url}"`);
  const rest = url.slice(scheme.length + 3);
  const defaultPort = scheme === 'https' ? 443 : 80;
  const { host, port, explicitPort, uri } = parseUpstreamAddress(rest, defaultPort, ctx);
  const outer = ctx.enclosing;
  const match = outer?.name === 'location' ? (outer.value as LocationMatch) : undefined;
  const restricted = ctx.context === 'location_if' || ctx.context === 'limit_except' || match?.kind === 'regex' || match?.kind === 'named';
  if (restricted && uri !== undefined) ctx.fail(NO_URI_PART);
  // ngx_http_proxy_set_vars(): a unix socket's $proxy_host (the Host sent) is "localhost".
  const proxyHost = host.toLowerCase().startsWith('unix:') ? 'localhost' : port === defaultPort ? host : `${host}:${port}`;
  return { source: url, template: undefined, scheme, host, port, explicitPort, uri, proxyHost, ...where };
}

/** An on/off directive of an upstream module (proxy_*, grpc_*): conf/values.ts. */
export const flag = flagDirective;

/** A time directive of an upstream module, in ms (conf/values.ts). */
export const timeout = timeDirective;

/** `*_hide_header` and `*_pass_header`: lowercased field names, accumulated. */
export function headerList(name: `${'proxy' | 'grpc' | 'fastcgi' | 'uwsgi' | 'scgi'}_${'hide' | 'pass'}_header`, summary: string) {
  return defineDirective({
    kind: 'value',
    name: name as 'proxy_hide_header',
    contexts: ['http', 'server', 'location'],
    args: [1],
    repeatable: true,
    syntax: 'field;',
    summary,
    default: () => [],
    defaultText: '—',
    parse: ([field = ''], _ctx, previous) => [...(previous ?? []), field.toLowerCase()],
  });
}

/** `proxy_ssl_protocols` values nginx accepts; SSLv2 and SSLv3 are accepted and never offered (Node has neither). */
export const SSL_PROTOCOLS: ReadonlySet<string> = new Set(['SSLv2', 'SSLv3', 'TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3']);

/** A file directive of the proxy_ssl family: relative paths resolve against the configuration's directory, as ngx_conf_full_name(cf->cycle, name, 1) does. */
export function sslFile(name: `${UpstreamModule}_ssl_${'trusted_certificate' | 'crl'}`, summary: string) {
  return defineDirective({
    kind: 'value',
    name: name as 'proxy_ssl_trusted_certificate',
    contexts: ['http', 'server', 'location'],
    args: [1],
    syntax: 'file;',
    summary,
    default: () => undefined,
    defaultText: '—',
    parse: ([file = ''], ctx) => {
      if (hasVariables(file)) ctx.fail(`variables in "${name}" are not supported by hitless`);
      return file.startsWith('/') ? file : `${ctx.confPrefix}${file}`;
    },
  });
}

/**
 * `*_ssl_certificate` and `*_ssl_certificate_key` (ngx_http_upstream's complex values): an empty
 * value means no certificate (it cancels an inherited one); with variables (nginx 1.21.0) the
 * names are evaluated per connection, a relative result against the configuration's directory.
 */
export function sslCertificateFile(name: `${UpstreamModule}_ssl_${'certificate' | 'certificate_key'}`, summary: string) {
  return defineDirective({
    kind: 'value',
    name: name as 'proxy_ssl_certificate',
    contexts: ['http', 'server', 'location'],
    args: [1],
    syntax: 'file;',
    summary,
    default: () => undefined,
    defaultText: '—',
    parse: ([written = ''], ctx): TlsFile => {
      // nginx makes "" the configuration's directory (ngx_get_full_name()), which does not load as a key.
      if (written === '') return { written, path: ctx.confPrefix };
      if (hasVariables(written)) {
        try {
          const template = parseTemplate(written);
          if (!isConstantTemplate(template)) return { written, path: ctx.confPrefix, template };
        } catch (err) {
          if (err instanceof TemplateSyntaxError) ctx.fail(err.reason);
          throw err;
        }
      }
      return { written, path: isAbsolute(written) ? written : resolve(ctx.confPrefix, written) };
    },
  });
}

/** The upstream modules whose `*_ssl_*` directives set up TLS to upstreams. */
export type UpstreamModule = 'proxy' | 'grpc' | 'uwsgi';

/** The TLS settings of a level that proxies over https (or grpcs), as the upstream TLS client takes them. */
export function upstreamTlsSettings(block: ConfBlockView, module: UpstreamModule = 'proxy'): UpstreamTlsSettings {
  // uwsgi_ssl_* have the proxy_ssl_* values; typed as those to keep DirectiveName within what tsc represents.
  const m = module as 'proxy' | 'grpc';
  return {
    verify: block.get(`${m}_ssl_verify`),
    trustedCertificate: block.get(`${m}_ssl_trusted_certificate`),
    verifyDepth: block.get(`${m}_ssl_verify_depth`),
    serverName: block.get(`${m}_ssl_server_name`),
    protocols: block.get(`${m}_ssl_protocols`),
    ciphers: block.get(`${m}_ssl_ciphers`),
    // An empty proxy_ssl_certificate is none (ngx_http_proxy_set_ssl(): `value.len` is checked).
    certificate: nonEmpty(block.get(`${m}_ssl_certificate`)),
    certificateKey: nonEmpty(block.get(`${m}_ssl_certificate`)) === undefined ? undefined : block.get(`${m}_ssl_certificate_key`),
    passwords: block.get(`${m}_ssl_password_file`)?.passwords.map((password) => Buffer.from(password, 'latin1')),
    sessionReuse: block.get(`${m}_ssl_session_reuse`),
    crl: block.get(`${m}_ssl_crl`),
    confCommands: block.get(`${m}_ssl_conf_command`),
    certificateCache: block.get(`${m}_ssl_certificate_cache`),
  };
}

function nonEmpty(file: TlsFile | undefined): TlsFile | undefined {
  return file === undefined || file.written === '' ? undefined : file;
}


/**
 * Refuses what ngx_http_proxy_set_ssl() refuses, and loads the files once so a bad one fails the
 * load, not a request. nginx logs these at merge time through cf->log, without a file and line.
 */
export function checkUpstreamSsl(block: ConfBlockView, module: UpstreamModule = 'proxy', warn?: (reason: string) => void): Template[] {
  const settings = upstreamTlsSettings(block, module);
  if (settings.certificate !== undefined && block.get(`${module as 'proxy' | 'grpc'}_ssl_certificate_key`) === undefined) {
    throw new ConfigError(`no "${module}_ssl_certificate_key" is defined for certificate "${settings.certificate.written}"`, undefined);
  }
  if (settings.verify && settings.trustedCertificate === undefined) throw new ConfigError(`no ${module}_ssl_trusted_certificate for ${module}_ssl_verify`, undefined);
  let tls: UpstreamTls;
  try {
    tls = UpstreamTls.load(settings, undefined, `${module}_ssl_conf_command`);
  } catch (err) {
    if (err instanceof UpstreamTlsLoadError) throw new ConfigError(err.message, undefined, { cause: err });
    throw err;
  }
  for (const warning of tls.warnings) warn?.(warning);
  // The certificate's variables, for the check of unknown variables.
  return [settings.certificate?.template, settings.certificateKey?.template].filter((template) => template !== undefined);
}

const NEXT_UPSTREAM_CASES: ReadonlySet<string> = new Set(['error', 'timeout', 'invalid_header', 'http_500', 'http_502', 'http_503', 'http_504', 'http_403', 'http_404', 'http_429', 'non_idempotent']);

/** `*_next_upstream`, `*_next_upstream_tries` and `*_next_upstream_timeout` of an upstream module. */
export function nextUpstreamDirectives(module: UpstreamModule | 'fastcgi' | 'uwsgi' | 'scgi'): AnyDirectiveSpec[] {
  const name = `${module}_next_upstream` as const;
  // ngx_http_fastcgi_next_upstream_masks and uwsgi's and scgi's have no http_502 and http_504.
  const cgi = module === 'fastcgi' || module === 'uwsgi' || module === 'scgi';
  const cases = cgi ? new Set([...NEXT_UPSTREAM_CASES].filter((value) => value !== 'http_502' && value !== 'http_504')) : NEXT_UPSTREAM_CASES;
  return [
    defineDirective({
      kind: 'value',
      name: name as 'proxy_next_upstream',
      contexts: ['http', 'server', 'location'],
      args: '1+',
      syntax: `error | timeout | invalid_header | http_500 | ${cgi ? '' : 'http_502 | '}http_503 | ${cgi ? '' : 'http_504 | '}http_403 | http_404 | http_429 | non_idempotent | off ...;`,
      summary: 'In which cases a request is passed to the next server; non-idempotent requests (POST, LOCK, PATCH) only with non_idempotent, and never once a response was sent.',
      default: () => new Set<NextUpstreamCase>(['error', 'timeout']),
      defaultText: `${name} error timeout;`,
      parse: (args, ctx) => {
        if (args.includes('off')) {
          if (args.length > 1) ctx.fail(`invalid value "off" in "${name}" directive`);
          return new Set<NextUpstreamCase>();
        }
        for (const value of args) if (!cases.has(value)) ctx.fail(`invalid value "${value}"`);
        return new Set(args as NextUpstreamCase[]);
      },
    }),
    defineDirective({
      kind: 'value',
      name: `${name}_tries` as 'proxy_next_upstream_tries',
      contexts: ['http', 'server', 'location'],
      args: [1],
      syntax: 'number;',
      summary: 'The most servers one request may be tried on; 0 means no limit.',
      default: () => 0,
      defaultText: `${name}_tries 0;`,
      parse: ([value = ''], ctx) => parseNumber(value) ?? ctx.fail(`"${name}_tries" directive invalid number`),
    }),
    timeout(`${name}_timeout`, 'How long a request may be passed from server to server; 0 means no limit.', '0'),
  ];
}

/** The `*_ssl_*` directives of an upstream module, for its `scheme` (https, grpcs). */
export function upstreamSslDirectives(module: UpstreamModule, scheme: string): AnyDirectiveSpec[] {
  return [
    flag(`${module}_ssl_verify`, `Whether the certificate of an ${scheme} upstream is verified against ${module}_ssl_trusted_certificate and ${module}_ssl_name; a failure is a 502, never a plaintext fallback.`, false),
    sslFile(`${module}_ssl_trusted_certificate`, `PEM file of the CA certificates that verify ${scheme} upstreams (the only trust anchors used); required by ${module}_ssl_verify on.`),
    defineDirective({
      kind: 'value',
      name: `${module}_ssl_verify_depth` as 'proxy_ssl_verify_depth',
      contexts: ['http', 'server', 'location'],
      args: [1],
      syntax: 'number;',
      summary: `The most intermediate certificates an ${scheme} upstream's chain may have when verified.`,
      default: () => 1,
      defaultText: `${module}_ssl_verify_depth 1;`,
      parse: ([value = ''], ctx) => parseNumber(value) ?? ctx.fail(`invalid number "${value}" in "${module}_ssl_verify_depth" directive`),
    }),
    defineDirective({
      kind: 'value',
      name: `${module}_ssl_name` as 'proxy_ssl_name',
      contexts: ['http', 'server', 'location'],
      args: [1],
      syntax: 'name;',
      summary: `The name an ${scheme} upstream's certificate is verified against and, with ${module}_ssl_server_name on, sent as SNI (variables allowed; a port is stripped).`,
      default: () => undefined,
      defaultText: module === 'proxy' ? 'proxy_ssl_name $proxy_host;' : `${module}_ssl_name host from ${module}_pass;`,
      parse: ([value = ''], ctx) => parseValue(value, ctx),
    }),
    flag(`${module}_ssl_server_name`, `Whether the ${module}_ssl_name is sent to ${scheme} upstreams as SNI (never for an IP address).`, false),
    defineDirective({
      kind: 'value',
      name: `${module}_ssl_protocols` as 'proxy_ssl_protocols',
      contexts: ['http', 'server', 'location'],
      args: '1+',
      syntax: '[SSLv2] [SSLv3] [TLSv1] [TLSv1.1] [TLSv1.2] [TLSv1.3];',
      summary: `The protocols offered to ${scheme} upstreams; hitless offers the range from the lowest to the highest TLS version named.`,
      default: () => ['TLSv1.2', 'TLSv1.3'],
      defaultText: `${module}_ssl_protocols TLSv1.2 TLSv1.3;`,
      parse: (args, ctx) => {
        for (const value of args) if (!SSL_PROTOCOLS.has(value)) ctx.fail(`invalid value "${value}"`);
        return [...args];
      },
    }),
    defineDirective({
      kind: 'value',
      name: `${module}_ssl_ciphers` as 'proxy_ssl_ciphers',
      contexts: ['http', 'server', 'location'],
      args: [1],
      syntax: 'ciphers;',
      summary: `The TLS 1.2 and older ciphers offered to ${scheme} upstreams, in OpenSSL's syntax.`,
      default: () => 'DEFAULT',
      defaultText: `${module}_ssl_ciphers DEFAULT;`,
      parse: ([value = '']) => value,
    }),
    sslCertificateFile(
      `${module}_ssl_certificate`,
      `PEM file of the client certificate (and chain) presented to ${scheme} upstreams that ask for one; an empty value means none; with variables, evaluated per connection (see ${module}_ssl_certificate_cache).`,
    ),
    sslCertificateFile(`${module}_ssl_certificate_key`, `PEM file of the key of ${module}_ssl_certificate (variables allowed).`),
    defineDirective({
      kind: 'value',
      name: `${module}_ssl_password_file` as 'proxy_ssl_password_file',
      contexts: ['http', 'server', 'location'],
      args: [1],
      syntax: 'file;',
      summary: `Passphrases of an encrypted ${module}_ssl_certificate_key, one a line, tried in order; read with the configuration.`,
      default: () => undefined,
      defaultText: '—',
      parse: parsePasswordFile,
    }),
    sslFile(`${module}_ssl_crl`, `PEM file of the revoked certificates (CRLs) checked, for the whole chain, when ${module}_ssl_verify is on.`),
    defineDirective({
      kind: 'value',
      name: `${module}_ssl_conf_command` as 'proxy_ssl_conf_command',
      contexts: ['http', 'server', 'location'],
      args: [2],
      repeatable: true,
      syntax: 'name value;',
      summary: `An OpenSSL configuration command for the TLS to ${scheme} upstreams, applied after the other ${module}_ssl_* settings; Certificate and PrivateKey replace ${module}_ssl_certificate. ${CONF_COMMANDS_MAPPED}`,
      default: () => [],
      defaultText: '—',
      parse: ([name = '', value = ''], ctx, previous) => [...(previous ?? []), confCommandPair(name, value, ctx.confPrefix)],
    }),
    flag(`${module}_ssl_session_reuse`, `Whether TLS sessions to ${scheme} upstreams are resumed, one cached session per peer and name.`, true),
    defineDirective({
      kind: 'value',
      name: `${module}_ssl_certificate_cache` as 'proxy_ssl_certificate_cache',
      contexts: ['http', 'server', 'location'],
      args: '1+',
      syntax: 'off | max=N [inactive=time] [valid=time];',
      summary: `Caches the certificates and keys that ${module}_ssl_certificate with variables loads: an entry younger than valid (60s) is used without looking at the file, an older one is checked by inode and mtime; entries not used for inactive (10s) go, and the least recently used beyond max. A key that needs a passphrase is never cached. Default off: the files are read for every connection.`,
      default: () => undefined,
      defaultText: `${module}_ssl_certificate_cache off;`,
      parse: (args, ctx) => parseCertificateCache(args, `${module}_ssl_certificate_cache`, (message) => ctx.fail(message)),
    }),
  ];
}

/** Checks needing the whole `http` block: every proxy_pass host is a group or resolves, as nginx checks at start. */
function checkProxyTargets(main: ConfBlockView, ctx: CheckContext): void {
  const http = main.blocks.find((block) => block.name === 'http');
  if (http === undefined) return;
  const warn = once(ctx);
  const groups = upstreamGroupNames(http);
  const templates: Template[] = [];
  for (const block of blocksOf(http)) {
    for (const header of block.isSet('proxy_set_header') ? block.get('proxy_set_header') : []) templates.push(header.value);
    templates.push(...proxyRequestTemplates(block));
    if (block.isSet('early_hints')) templates.push(...(block.get('early_hints') ?? []));
    const target = block.isSet('proxy_pass') ? block.get('proxy_pass') : undefined;
    if (target === undefined) continue;
    if (target.scheme === 'https') templates.push(...checkUpstreamSsl(block, 'proxy', warn));
    if (block.get('proxy_pass_trailers') && block.get('proxy_http_version') !== '2') {
      warn('"proxy_pass_trailers" passes trailers only with "proxy_http_version 2" in hitless: the trailers of an HTTP/1.1 upstream\'s chunked response are dropped');
    }
    const sslName = block.get('proxy_ssl_name');
    if (sslName !== undefined) templates.push(sslName);
    if (target.template !== undefined) {
      templates.push(target.template);
      continue;
    }
    checkUpstreamHost(target, groups);
  }
  checkVariables(http, templates);
}

/** The templates of a level's own proxy_method, proxy_set_body, proxy_bind, proxy_limit_rate and cookie rules. */
function proxyRequestTemplates(block: ConfBlockView): Template[] {
  const out: Template[] = [];
  for (const name of ['proxy_method', 'proxy_set_body'] as const) {
    const value = block.isSet(name) ? block.get(name) : undefined;
    if (value !== undefined) out.push(value);
  }
  const bind = block.isSet('proxy_bind') ? block.get('proxy_bind') : undefined;
  if (bind?.kind === 'value') out.push(bind.value);
  const rate = block.isSet('proxy_limit_rate') ? block.get('proxy_limit_rate') : undefined;
  if (rate !== undefined && 'value' in rate) out.push(rate.value);
  out.push(...cookieTemplates({
    domain: block.isSet('proxy_cookie_domain') ? block.get('proxy_cookie_domain') : undefined,
    path: block.isSet('proxy_cookie_path') ? block.get('proxy_cookie_path') : undefined,
    flags: block.isSet('proxy_cookie_flags') ? block.get('proxy_cookie_flags') : undefined,
  }));
  return out;
}

/** A check's [warn], each text once however many levels inherit what it warns of. */
export function once(ctx: CheckContext): (reason: string) => void {
  const seen = new Set<string>();
  return (reason) => {
    if (seen.has(reason)) return;
    seen.add(reason);
    ctx.warn(reason);
  };
}

/** The `upstream` group names of an `http` block. */
export function upstreamGroupNames(http: ConfBlockView): ReadonlySet<string> {
  return new Set(http.blocks.filter((block) => block.name === 'upstream').map((block) => block.args[0] ?? ''));
}

/**
 * What nginx checks of a fixed upstream address when it starts (ngx_http_upstream_add(),
 * ngx_http_upstream_init_round_robin()): a group takes no port, an implicit one needs a port
 * (`defaultPort` 0 for grpc_pass) and a host that resolves.
 */
export function checkUpstreamHost(target: UpstreamAddress & { readonly file: string; readonly line: number }, groups: ReadonlySet<string>): void {
  if (groups.has(target.host)) {
    if (target.explicitPort) throw new ConfigError(`upstream "${target.host}" may not have port ${target.port}`, target);
    return;
  }
  const bare = target.host.startsWith('[') ? target.host.slice(1, -1) : target.host;
  if (target.host.startsWith('unix:')) return;
  if (target.port === 0) throw new ConfigError(`no port in upstream "${target.host}"`, target);
  if (isIP(bare) !== 0) return;
  if (resolveHostSync(target.host).length === 0) throw new ConfigError(`host not found in upstream "${target.host}"`, target);
}

/** The proxy module's directives. */
export const httpProxyModule: ConfModule = {
  name: 'ngx_http_proxy_module',
  directives: [
    defineDirective({
      kind: 'value',
      name: 'proxy_pass',
      contexts: ['location', 'location_if', 'limit_except'],
      args: [1],
      inherit: false,
      syntax: 'URL;',
      summary: 'Proxies the request to an upstream group or a server (http://host:port/uri, or https:// with the proxy_ssl_* settings); with a URI part, the part of the request URI matching the location is replaced by it.',
      defaultText: '—',
      parse: parseProxyPass,
    }),
    defineDirective({
      kind: 'value',
      name: 'proxy_http_version',
      contexts: ['http', 'server', 'location'],
      args: [1],
      syntax: '1.0 | 1.1 | 2;',
      summary: 'The HTTP version spoken to upstreams; 1.1 (with proxy_set_header Connection "") is needed for upstream keep-alive; 2 sends each request as an HTTP/2 stream (TLS with ALPN h2 for https://, prior knowledge for http://), on a kept session with the upstream\'s keepalive.',
      default: () => '1.0',
      defaultText: 'proxy_http_version 1.0;',
      // ngx_conf_set_enum_slot()'s words: `invalid value "3"`, nothing more.
      parse: ([value = ''], ctx) => (value === '1.0' || value === '1.1' || value === '2' ? value : ctx.fail(`invalid value "${value}"`)),
    }),
    defineDirective({
      kind: 'value',
      name: 'proxy_set_header',
      contexts: ['http', 'server', 'location'],
      args: [2],
      repeatable: true,
      syntax: 'field value;',
      summary: 'Sets a request header sent upstream (variables allowed); an empty value removes it. Inherited only by levels that set none.',
      default: () => [],
      defaultText: 'proxy_set_header Host $proxy_host; proxy_set_header Connection close;',
      parse: ([name = '', value = ''], ctx, previous) => [...(previous ?? []), { name, value: parseValue(value, ctx) }],
    }),
    headerList('proxy_hide_header', 'An upstream response header not to pass to the client, besides Date, Server, X-Pad and X-Accel-*.'),
    headerList('proxy_pass_header', 'Passes an upstream response header that is hidden by default (Date, Server, X-Pad, X-Accel-*).'),
    flag('proxy_pass_request_headers', 'Whether the client\'s request headers are passed upstream.', true),
    flag('proxy_pass_request_body', 'Whether the client\'s request body is passed upstream.', true),
    flag('proxy_pass_trailers', 'Whether the trailer fields of an upstream response are passed to the client (with proxy_http_version 2 in hitless).', false),
    defineDirective({
      kind: 'value',
      name: 'proxy_redirect',
      contexts: ['http', 'server', 'location'],
      args: [1, 2],
      repeatable: true,
      syntax: 'default; | off; | redirect replacement;',
      summary: 'Rewrites the Location and Refresh headers of upstream responses: default maps the proxy_pass URL back to the location; a ~ or ~* redirect is a regular expression.',
      default: () => [{ kind: 'default' }],
      defaultText: 'proxy_redirect default;',
      parse: (args, ctx, previous) => {
        const [from = '', to] = args;
        if (to === undefined) {
          if (from === 'off') return 'off';
          if (from !== 'default') ctx.fail('invalid number of arguments in "proxy_redirect" directive');
          return [...(previous === 'off' || previous === undefined ? [] : previous), { kind: 'default' }];
        }
        const rules = previous === 'off' || previous === undefined ? [] : previous;
        if (from.startsWith('~')) {
          const caseless = from.startsWith('~*');
          const source = from.slice(caseless ? 2 : 1);
          return [...rules, { kind: 'regex', from: compileConfigRegex(source, caseless, ctx).regex, to: parseValue(to, ctx) }];
        }
        return [...rules, { kind: 'prefix', from: parseValue(from, ctx), to: parseValue(to, ctx) }];
      },
    }),
    timeout('proxy_connect_timeout', 'How long establishing a connection to an upstream may take.', '60s'),
    timeout('proxy_send_timeout', 'How long the upstream may take to accept the next part of the request.', '60s'),
    timeout('proxy_read_timeout', 'How long the upstream may stay silent between two reads of its response.', '60s'),
    flag('proxy_buffering', 'Whether the upstream response is read ahead of a slow client (in memory, up to 1 MiB per request) instead of at the client\'s pace.', true),
    flag('proxy_request_buffering', 'Whether the whole request body is read before the upstream sees the request, so slow clients never tie up an upstream.', true),
    flag('proxy_intercept_errors', 'Whether upstream responses with status 300 or more are replaced by the matching error_page.', false),
    ...nextUpstreamDirectives('proxy'),
    flag('proxy_ignore_client_abort', 'Whether the upstream request goes on when the client closes its connection.', false),
    flag('proxy_socket_keepalive', 'Whether TCP keepalive (SO_KEEPALIVE) is set on connections to upstreams.', false),
    ...upstreamSslDirectives('proxy', 'https'),
    ...PROXY_REQUEST_DIRECTIVES,
    ...PROXY_COOKIE_DIRECTIVES,
    // --- coredirs: the buffering family (proxy_buffers, proxy_temp_path, ...) ---
    ...PROXY_BUFFER_DIRECTIVES,
    // --- end coredirs ---
  ],
  check: checkProxyTargets,
};
