/** What `-v`, `-V` and `-h` print, in nginx's layout, so that tools probing an nginx binary read hitless too. */
import type { DirectiveRegistry } from '../conf/registry.js';
import { VERSION } from '../core/version.js';

/** Compiled-in defaults, nginx's `NGX_PREFIX`, `NGX_CONF_PATH` and `NGX_ERROR_LOG_PATH`. */
export const DEFAULT_PREFIX = '/usr/local/hitless/';
export const DEFAULT_CONF_PATH = 'conf/hitless.conf';
export const DEFAULT_ERROR_LOG = 'logs/error.log';

/**
 * nginx's modules that its configure script builds unless told `--without-...`, each with the
 * name of the hitless module that implements it. Listed as `--without-<name>` until implemented.
 */
const DEFAULT_MODULES: readonly (readonly [configureName: string, moduleName: string])[] = [
  ['http_charset_module', 'ngx_http_charset_filter_module'],
  ['http_gzip_module', 'ngx_http_gzip_filter_module'],
  ['http_ssi_module', 'ngx_http_ssi_filter_module'],
  ['http_userid_module', 'ngx_http_userid_filter_module'],
  ['http_access_module', 'ngx_http_access_module'],
  ['http_auth_basic_module', 'ngx_http_auth_basic_module'],
  ['http_mirror_module', 'ngx_http_mirror_module'],
  ['http_autoindex_module', 'ngx_http_autoindex_module'],
  ['http_geo_module', 'ngx_http_geo_module'],
  ['http_map_module', 'ngx_http_map_module'],
  ['http_split_clients_module', 'ngx_http_split_clients_module'],
  ['http_referer_module', 'ngx_http_referer_module'],
  ['http_rewrite_module', 'ngx_http_rewrite_module'],
  ['http_proxy_module', 'ngx_http_proxy_module'],
  ['http_fastcgi_module', 'ngx_http_fastcgi_module'],
  ['http_uwsgi_module', 'ngx_http_uwsgi_module'],
  ['http_scgi_module', 'ngx_http_scgi_module'],
  ['http_grpc_module', 'ngx_http_grpc_module'],
  ['http_memcached_module', 'ngx_http_memcached_module'],
  ['http_limit_conn_module', 'ngx_http_limit_conn_module'],
  ['http_limit_req_module', 'ngx_http_limit_req_module'],
  ['http_empty_gif_module', 'ngx_http_empty_gif_module'],
  ['http_browser_module', 'ngx_http_browser_module'],
  ['http_upstream_hash_module', 'ngx_http_upstream_hash_module'],
  ['http_upstream_ip_hash_module', 'ngx_http_upstream_ip_hash_module'],
  ['http_upstream_least_conn_module', 'ngx_http_upstream_least_conn_module'],
  ['http_upstream_random_module', 'ngx_http_upstream_random_module'],
  ['http_upstream_keepalive_module', 'ngx_http_upstream_keepalive_module'],
  ['http_upstream_zone_module', 'ngx_http_upstream_zone_module'],
  // nginx 1.27 to 1.31 (auto/options): built by default too, so absent ones must be named.
  ['http_upstream_least_time_module', 'ngx_http_upstream_least_time_module'],
  ['http_upstream_sticky_module', 'ngx_http_upstream_sticky_module'],
  ['http_tunnel_module', 'ngx_http_tunnel_module'],
  // NGX_HTTP_CACHE (proxy_cache and the other *_cache directives) is a feature, not a module:
  // the name is the one hitless's cache module must register to clear the flag.
  ['http-cache', 'ngx_http_file_cache_module'],
  // Built with --with-stream unless left out; listed only when the stream core is in.
  ['stream_limit_conn_module', 'ngx_stream_limit_conn_module'],
  ['stream_access_module', 'ngx_stream_access_module'],
  ['stream_geo_module', 'ngx_stream_geo_module'],
  ['stream_map_module', 'ngx_stream_map_module'],
  ['stream_split_clients_module', 'ngx_stream_split_clients_module'],
  ['stream_return_module', 'ngx_stream_return_module'],
  ['stream_set_module', 'ngx_stream_set_module'],
  ['stream_upstream_hash_module', 'ngx_stream_upstream_hash_module'],
  ['stream_upstream_least_conn_module', 'ngx_stream_upstream_least_conn_module'],
  ['stream_upstream_random_module', 'ngx_stream_upstream_random_module'],
  ['stream_upstream_zone_module', 'ngx_stream_upstream_zone_module'],
  ['stream_upstream_least_time_module', 'ngx_stream_upstream_least_time_module'],
  ['stream_pass_module', 'ngx_stream_pass_module'],
];

/** nginx's optional modules (`--with-...`), listed only once hitless implements them. */
const OPTIONAL_MODULES: readonly (readonly [configureName: string, moduleName: string])[] = [
  ['stream', 'ngx_stream_core_module'],
  ['http_ssl_module', 'ngx_http_ssl_module'],
  ['http_v2_module', 'ngx_http_v2_module'],
  ['http_gzip_static_module', 'ngx_http_gzip_static_module'],
  ['http_gunzip_module', 'ngx_http_gunzip_filter_module'],
  ['http_realip_module', 'ngx_http_realip_module'],
  ['http_sub_module', 'ngx_http_sub_filter_module'],
  ['http_stub_status_module', 'ngx_http_stub_status_module'],
  ['stream_ssl_module', 'ngx_stream_ssl_module'],
  ['stream_ssl_preread_module', 'ngx_stream_ssl_preread_module'],
  ['stream_realip_module', 'ngx_stream_realip_module'],
];

/** The `configure arguments:` line: defaults, then what is built in or left out, truthfully. */
export function configureArguments(registry: DirectiveRegistry): string {
  const built = new Set(registry.modules.map((module) => module.name));
  const args = [
    `--prefix=${DEFAULT_PREFIX}`,
    `--conf-path=${DEFAULT_PREFIX}${DEFAULT_CONF_PATH}`,
    `--error-log-path=${DEFAULT_PREFIX}${DEFAULT_ERROR_LOG}`,
    ...OPTIONAL_MODULES.filter(([, module]) => built.has(module)).map(([name]) => `--with-${name}`),
    ...DEFAULT_MODULES.filter(([name, module]) => !built.has(module) && (!name.startsWith('stream_') || built.has('ngx_stream_core_module'))).map(([name]) => `--without-${name}`),
  ];
  return `configure arguments: ${args.join(' ')}`;
}

/** `-v`: one line. */
export function versionLine(): string {
  return `hitless version: hitless/${VERSION}`;
}

/** `-V`: version, TLS library, SNI, configure arguments. */
export function versionDetails(registry: DirectiveRegistry): string {
  return [
    versionLine(),
    `built with OpenSSL ${process.versions.openssl} on Node.js ${process.version}`,
    'TLS SNI support enabled',
    configureArguments(registry),
  ].join('\n');
}

/** `-h`: nginx's usage text, plus hitless's subcommands. */
export function usage(): string {
  return `Usage: hitless [-?hvVtTq] [-s signal] [-p prefix]
               [-e filename] [-c filename] [-g directives]
       hitless probe URL [options]
       hitless deploy --target nginx|command --server-name NAME --cert FILE --key FILE [options]
       hitless certs list|get|put|delete|status|selfsigned [options]
       hitless upstreams [NAME] [options]

Options:
  -?,-h         : this help
  -v            : show version and exit
  -V            : show version and configure options then exit
  -t            : test configuration and exit
  -T            : test configuration, dump it and exit
  -q            : suppress non-error messages during configuration testing
  -s signal     : send signal to a master process: stop, quit, reopen, reload
  -p prefix     : set prefix path (default: ${DEFAULT_PREFIX})
  -e filename   : set error log file (default: ${DEFAULT_ERROR_LOG})
  -c filename   : set configuration file (default: ${DEFAULT_CONF_PATH})
  -g directives : set global directives out of configuration file

Commands:
  probe URL     : keep requests flowing and count every failure (hitless probe --help)
  deploy        : deploy a certificate or configuration safely (hitless deploy --help)
  certs         : change the certificates a running hitless serves, live (hitless certs --help)
  upstreams     : every upstream peer's state in a running hitless (hitless upstreams --help)
`;
}
