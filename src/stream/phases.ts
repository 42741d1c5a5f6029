/**
 * The phase handlers a TCP and a UDP session share (`ngx_stream_core_run_phases()`): the
 * preaccess phase's `set` lines, and the access phase's `allow` and `deny`.
 */
import type { ErrorLog } from '../core/log.js';
import { checkAccess } from '../http/access-module.js';
import type { CompiledStreamServer } from './generation.js';
import type { StreamSession } from './session.js';

/** `ngx_stream_set_handler()`: the server's `set` lines, in order. */
export function runSets(server: CompiledStreamServer, session: StreamSession): void {
  for (const rule of server.sets) (session.variables ??= new Map()).set(rule.name, rule.value(session));
}

/** `ngx_stream_access_handler()`: true (and the [error] line) when a `deny` decides against the client. */
export function accessDenied(server: CompiledStreamServer, session: StreamSession, log: ErrorLog, logContext: string): boolean {
  if (server.access.length === 0 || checkAccess(server.access, session.remoteAddress) !== 'deny') return false;
  // The session's log action is still ngx_stream_init_connection()'s.
  log.error(`access forbidden by rule while initializing session, ${logContext}`, session.id);
  return true;
}
