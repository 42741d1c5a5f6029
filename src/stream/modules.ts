/**
 * The smaller stream modules, each nginx's namesake: `map`, `geo`, `split_clients`, `set`,
 * `log_format`/`access_log`, `limit_conn`, `allow`/`deny`, `set_real_ip_from`, `ssl_preread`,
 * `return`, and the balancing methods of stream `upstream` groups. Where a directive is http's too, the http module's spec is registered
 * again for the stream contexts (reuse.ts), so parsing and messages are shared.
 */
import { ConfigError } from '../core/errors.js';
import type { Template } from '../core/variables.js';
import { defineDirective, type ConfBlockView, type ConfModule, type DirectiveContext } from '../conf/registry.js';
import { httpAccessModule } from '../http/access-module.js';
import { httpGeoModule, streamGeoParser } from '../http/geo-module.js';
import { httpLimitConnModule } from '../http/limit-conn-module.js';
import { httpRewriteModule } from '../http/rewrite-module.js';
import { httpSplitClientsModule } from '../http/split-clients-module.js';
import { checkZoneUse } from '../http/limit-req-module.js';
import { findLogFormat, httpLogModule, parseAccessLog } from '../http/log-module.js';
import { httpMapModule, mapParser } from '../http/map-module.js';
import { httpRealIpModule } from '../http/realip-module.js';
import { parseValue } from '../conf/values.js';
import { upstreamHashModule } from '../upstream/balancers/hash.js';
import { upstreamLeastConnModule } from '../upstream/balancers/least-conn.js';
import { upstreamRandomModule } from '../upstream/balancers/random.js';
import { upstreamZoneModule } from '../upstream/zone-module.js';
import { reuseDirective, STREAM_SERVER_CONTEXTS } from './reuse.js';
import { checkStreamVariables, isBuiltinStreamVariable } from './variables.js';

declare module '../conf/registry.js' {
  interface DirectiveValues {
    ssl_preread: boolean;
  }
}

function streamOf(main: ConfBlockView): ConfBlockView | undefined {
  return main.blocks.find((block) => block.name === 'stream');
}

function servers(stream: ConfBlockView): ConfBlockView[] {
  return [stream, ...stream.blocks.filter((block) => block.name === 'server')];
}

/** `ngx_stream_map_module`. */
export const streamMapModule: ConfModule = {
  name: 'ngx_stream_map_module',
  directives: [reuseDirective(httpMapModule, 'map', ['stream'], { parse: mapParser(isBuiltinStreamVariable) })],
  check(main) {
    const stream = streamOf(main);
    if (stream === undefined) return;
    const templates: Template[] = [];
    for (const map of stream.get('map')) {
      templates.push(map.source, ...map.exact.values(), ...map.prefixWildcards.values(), ...map.suffixWildcards.values(), ...map.regexes.map((regex) => regex.value));
      if (map.defaultValue !== undefined) templates.push(map.defaultValue);
    }
    checkStreamVariables(stream, templates);
  },
};

/** `ngx_stream_geo_module`: http's geo by the client address (after realip) or a value, without `proxy`. */
export const streamGeoModule: ConfModule = {
  name: 'ngx_stream_geo_module',
  directives: [
    reuseDirective(httpGeoModule, 'geo', ['stream'], {
      summary: 'Defines $variable by the client address (after realip) or $address: CIDR networks, IPv4 and IPv6, longest prefix first, or IPv4 a-b ranges after "ranges"; default, delete, include, volatile. Binary range bases (file.bin) are not read.',
      parse: streamGeoParser(isBuiltinStreamVariable),
    }),
  ],
  check(main) {
    const stream = streamOf(main);
    if (stream === undefined) return;
    checkStreamVariables(stream, stream.get('geo').flatMap((block) => (block.source === undefined ? [] : [block.source])));
  },
};

/** `ngx_stream_split_clients_module`. */
export const streamSplitClientsModule: ConfModule = {
  name: 'ngx_stream_split_clients_module',
  directives: [reuseDirective(httpSplitClientsModule, 'split_clients', ['stream'])],
  check(main) {
    const stream = streamOf(main);
    if (stream === undefined) return;
    checkStreamVariables(stream, stream.get('split_clients').map((block) => block.source));
  },
};

/**
 * `ngx_stream_set_module`: `set $variable value;` in a server, evaluated in order in the preaccess
 * phase (before limit_conn); a map's variable may be set over, a built-in one may not.
 */
export const streamSetModule: ConfModule = {
  name: 'ngx_stream_set_module',
  directives: [
    reuseDirective(httpRewriteModule, 'set', ['stream_server'], {
      summary: 'Sets the variable (declared for the whole stream block) to the value when a session enters the preaccess phase, in the order written; a server that does not set it reads it empty.',
      parse: (args: readonly string[], ctx: DirectiveContext, previous: readonly { readonly order: number; readonly name: string; readonly value: Template }[] | undefined) => {
        const [variable = '', value = ''] = args;
        if (!variable.startsWith('$')) ctx.fail(`invalid variable name "${variable}"`);
        const name = variable.slice(1).toLowerCase();
        // ngx_stream_add_variable(): stream's built-in variables are not changeable.
        if (isBuiltinStreamVariable(name)) ctx.fail(`the duplicate "${name}" variable`);
        return [...(previous ?? []), { order: ctx.order, name, value: parseValue(value, ctx) }];
      },
    }),
  ],
  check(main) {
    const stream = streamOf(main);
    if (stream === undefined) return;
    checkStreamVariables(stream, servers(stream).flatMap((block) => (block.isSet('set') ? block.get('set').map((rule) => rule.value) : [])));
  },
};

/** `ngx_stream_access_module`: http's `allow` and `deny`, in the access phase (after limit_conn, before the TLS handshake); a denied session ends with 403. */
export const streamAccessModule: ConfModule = {
  name: 'ngx_stream_access_module',
  directives: [
    reuseDirective(httpAccessModule, 'allow', STREAM_SERVER_CONTEXTS, { summary: 'Allows the client address (after realip), block, unix-socket clients or everyone; the first allow or deny that matches decides.' }),
    reuseDirective(httpAccessModule, 'deny', STREAM_SERVER_CONTEXTS, { summary: 'Denies (status 403, "access forbidden by rule") the client address (after realip), block, unix-socket clients or everyone.' }),
  ],
};

/** `ngx_stream_log_module`: a format is required, and nothing is logged unless access_log says so. */
export const streamLogModule: ConfModule = {
  name: 'ngx_stream_log_module',
  directives: [
    reuseDirective(httpLogModule, 'log_format', ['stream'], { defaultText: '—' }),
    reuseDirective(httpLogModule, 'access_log', STREAM_SERVER_CONTEXTS, {
      syntax: 'path format [buffer=size] [gzip[=level]] [flush=time] [if=condition]; | off;',
      summary: 'Where a line is written when a session ends, in which log_format, buffered or not, gzip-compressed (each flushed buffer one gzip member) or not, and only when the condition is neither empty nor 0. A path with variables is evaluated and opened for every line (open_log_file_cache keeps them open).',
      default: () => ({ off: true, targets: [] }),
      defaultText: 'access_log off;',
      parse: (args: readonly string[], ctx: Parameters<typeof parseAccessLog>[1], previous: Parameters<typeof parseAccessLog>[2]) => {
        if (args[0] !== 'off' && args.length < 2) ctx.fail('log format is not specified');
        return parseAccessLog(args, ctx, previous);
      },
    }),
    reuseDirective(httpLogModule, 'open_log_file_cache', STREAM_SERVER_CONTEXTS, { summary: 'Keeps the descriptors of access logs whose paths have variables open (an LRU of max entries).' }),
  ],
  check(main) {
    const stream = streamOf(main);
    if (stream === undefined) return;
    const formats = stream.get('log_format');
    const templates: Template[] = formats.map((format) => format.template);
    for (const block of servers(stream)) {
      if (!block.isSet('access_log')) continue;
      for (const target of block.get('access_log').targets) {
        // stream has no predefined `combined` format.
        if (target.format.toLowerCase() === 'combined' || findLogFormat(formats, target.format) === undefined) {
          throw new ConfigError(`unknown log format "${target.format}"`, { file: target.file, line: target.line });
        }
        if (target.condition !== undefined) templates.push(target.condition);
        if (target.pathTemplate !== undefined) templates.push(target.pathTemplate);
      }
    }
    checkStreamVariables(stream, templates);
  },
};

/** `ngx_stream_limit_conn_module`: zones counted by the master, shared by every worker. */
export const streamLimitConnModule: ConfModule = {
  name: 'ngx_stream_limit_conn_module',
  directives: [
    reuseDirective(httpLimitConnModule, 'limit_conn_zone', ['stream'], { summary: 'A shared zone counting, per key, the sessions open, shared by every worker and kept across reloads.' }),
    reuseDirective(httpLimitConnModule, 'limit_conn', STREAM_SERVER_CONTEXTS, { summary: 'Allows at most number sessions per key of the zone at once; more are closed at once (status 503).' }),
    reuseDirective(httpLimitConnModule, 'limit_conn_log_level', STREAM_SERVER_CONTEXTS, { summary: 'The error log level of refused sessions.' }),
    reuseDirective(httpLimitConnModule, 'limit_conn_dry_run', STREAM_SERVER_CONTEXTS, { summary: 'Counts and logs sessions as limit_conn would, without refusing any.' }),
  ],
  check(main) {
    const stream = streamOf(main);
    if (stream === undefined) return;
    const own = stream.get('limit_conn_zone');
    const http = main.blocks.find((block) => block.name === 'http');
    // One namespace of shared memory: an http zone of the same name is another module's.
    const other = http === undefined ? [] : [...http.get('limit_conn_zone'), ...http.get('limit_req_zone')];
    checkZoneUse(stream, 'limit_conn', (block) => block.get('limit_conn'), own, other);
    checkStreamVariables(stream, own.map((zone) => zone.key));
  },
};

/** `ngx_stream_realip_module`: the PROXY protocol's address becomes `$remote_addr` for trusted peers. */
export const streamRealIpModule: ConfModule = {
  name: 'ngx_stream_realip_module',
  directives: [
    reuseDirective(httpRealIpModule, 'set_real_ip_from', STREAM_SERVER_CONTEXTS, {
      summary: 'Trusts an address, block or host name (or unix:) to send the client address in the PROXY protocol header of a listen ... proxy_protocol connection.',
    }),
  ],
};

/** `ngx_stream_ssl_preread_module`. */
export const streamSslPrereadModule: ConfModule = {
  name: 'ngx_stream_ssl_preread_module',
  directives: [
    defineDirective({
      kind: 'value',
      name: 'ssl_preread',
      contexts: STREAM_SERVER_CONTEXTS,
      args: 'flag',
      syntax: 'on | off;',
      summary: 'Reads the ClientHello without terminating TLS, for $ssl_preread_server_name, $ssl_preread_alpn_protocols and $ssl_preread_protocol; the bytes are passed on untouched.',
      default: () => false,
      defaultText: 'ssl_preread off;',
      parse: ([value]) => value === 'on',
    }),
  ],
};

/** `ngx_stream_return_module`. */
export const streamReturnModule: ConfModule = {
  name: 'ngx_stream_return_module',
  directives: [
    defineDirective({
      kind: 'value',
      name: 'return',
      contexts: ['stream_server'],
      args: [1],
      inherit: false,
      syntax: 'value;',
      summary: 'Sends the value (text and variables) to the client and closes the session.',
      defaultText: '—',
      // The value has http's shape (status 200, no redirect), so both share the directive's type.
      parse: ([value = ''], ctx) => ({ status: 200, text: parseValue(value, ctx) }),
    }),
  ],
  check(main) {
    const stream = streamOf(main);
    if (stream === undefined) return;
    checkStreamVariables(stream, servers(stream).flatMap((block) => block.get('return')?.text ?? []));
  },
};

/** The balancing methods and `zone` of stream `upstream` groups (nginx's ngx_stream_upstream_*_module). */
export const streamUpstreamModules: readonly ConfModule[] = [
  { name: 'ngx_stream_upstream_module', directives: [] },
  {
    name: 'ngx_stream_upstream_hash_module',
    directives: [reuseDirective(upstreamHashModule, 'hash', ['stream_upstream'], { summary: 'Passes sessions with the same key (text and variables, $remote_addr for instance) to the same server; consistent uses a ketama ring.' })],
    check(main) {
      const stream = streamOf(main);
      if (stream === undefined) return;
      const keys = stream.blocks.filter((block) => block.name === 'upstream' && block.isSet('hash')).map((block) => (block.get('hash') as { key: Template }).key);
      checkStreamVariables(stream, keys);
    },
  },
  { name: 'ngx_stream_upstream_least_conn_module', directives: [reuseDirective(upstreamLeastConnModule, 'least_conn', ['stream_upstream'])] },
  { name: 'ngx_stream_upstream_random_module', directives: [reuseDirective(upstreamRandomModule, 'random', ['stream_upstream'])] },
  { name: 'ngx_stream_upstream_zone_module', directives: [reuseDirective(upstreamZoneModule, 'zone', ['stream_upstream'])] },
];
