/**
 * nginx's `ngx_http_upstream_keepalive_module`: the cache of idle connections to a group's peers.
 * The names `keepalive_requests`, `keepalive_time` and `keepalive_timeout` are shared with the
 * core module's client-side directives; in an `upstream` block they mean the upstream side.
 */
import { parseNumber, parseTime } from '../core/parse.js';
import { defineDirective, type ConfModule } from '../conf/registry.js';

declare module '../conf/registry.js' {
  interface DirectiveValues {
    keepalive: number;
    keepalive_time: number;
  }
}

/** The `keepalive` directives of an `upstream` block. */
export const upstreamKeepaliveModule: ConfModule = {
  name: 'ngx_http_upstream_keepalive_module',
  directives: [
    defineDirective({
      kind: 'value',
      name: 'keepalive',
      contexts: ['upstream'],
      args: [1],
      syntax: 'connections;',
      summary: 'How many idle connections to the group\'s servers each worker keeps for reuse; least recently used ones close first.',
      inherit: false,
      default: () => 0,
      defaultText: '—',
      parse: ([value = ''], ctx) => {
        const count = parseNumber(value);
        return count === undefined || count === 0 ? ctx.fail(`invalid value "${value}" in "keepalive" directive`) : count;
      },
    }),
    defineDirective({
      kind: 'value',
      name: 'keepalive_requests',
      contexts: ['upstream'],
      args: [1],
      syntax: 'number;',
      summary: 'How many requests one idle-cached upstream connection may carry before it is closed.',
      inherit: false,
      default: () => 1000,
      defaultText: 'keepalive_requests 1000;',
      parse: ([value = ''], ctx) => parseNumber(value) ?? ctx.fail('"keepalive_requests" directive invalid number'),
    }),
    defineDirective({
      kind: 'value',
      name: 'keepalive_time',
      contexts: ['upstream'],
      args: [1],
      syntax: 'time;',
      summary: 'How long one upstream connection may be reused before it is closed.',
      inherit: false,
      default: () => 3_600_000,
      defaultText: 'keepalive_time 1h;',
      parse: ([value = ''], ctx) => parseTime(value) ?? ctx.fail('"keepalive_time" directive invalid value'),
    }),
    defineDirective({
      kind: 'value',
      name: 'keepalive_timeout',
      contexts: ['upstream'],
      args: [1],
      syntax: 'timeout;',
      summary: 'How long an idle upstream connection is kept open.',
      inherit: false,
      default: () => ({ timeoutMs: 60_000, headerSeconds: undefined }),
      defaultText: 'keepalive_timeout 60s;',
      parse: ([value = ''], ctx) => ({ timeoutMs: parseTime(value) ?? ctx.fail('"keepalive_timeout" directive invalid value'), headerSeconds: undefined }),
    }),
  ],
};
