/**
 * nginx's `ngx_http_stub_status_module`: `stub_status` makes a location (or a server's requests
 * that match no location) answer with the connection counters, and `$connections_active`,
 * `$connections_reading`, `$connections_writing`, `$connections_waiting` read them. The counters
 * are core/connection-stats.ts; the answer sums every worker's (the master asks them).
 */
import { defineDirective, type ConfModule } from '../conf/registry.js';
import { connectionStats, type StubStatusCounts } from '../core/connection-stats.js';

declare module '../conf/registry.js' {
  interface DirectiveValues {
    stub_status: boolean;
  }
}

/** ngx_http_stub_status_handler()'s body, byte for byte. */
export function stubStatusBody(counts: StubStatusCounts): string {
  return `Active connections: ${counts.active} \nserver accepts handled requests\n ${counts.accepted} ${counts.handled} ${counts.requests} \nReading: ${counts.reading} Writing: ${counts.writing} Waiting: ${counts.waiting} \n`;
}

/** ngx_http_stub_status_variable(): this process's counts (see docs/directives.md). */
export function connectionsVariable(which: 'active' | 'reading' | 'writing' | 'waiting'): string {
  return String(connectionStats[which]);
}

/** The stub_status module's directive. */
export const httpStubStatusModule: ConfModule = {
  name: 'ngx_http_stub_status_module',
  directives: [
    defineDirective({
      kind: 'value',
      name: 'stub_status',
      contexts: ['server', 'location'],
      // NGX_CONF_NOARGS|NGX_CONF_TAKE1: the old `stub_status on;` form; nginx ignores the argument, any word enables it.
      args: [0, 1],
      // clcf->handler is not merged: a location does not inherit its server's.
      inherit: false,
      syntax: ';',
      summary:
        'Answers GET and HEAD with the connection counters as nginx prints them (active, accepts, handled, requests, reading, writing, waiting), summed over every worker; other methods get 405. An argument (the old `stub_status on;`) is accepted and ignored, as nginx does. The $connections_* variables are the serving worker\'s counts (docs/process-model.md).',
      default: () => false,
      defaultText: '—',
      parse: () => true,
    }),
  ],
};
