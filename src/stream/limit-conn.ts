/**
 * `ngx_stream_limit_conn_handler()` for one session, TCP or UDP: the counts it takes in the shared
 * zones (process/zones.ts), and their release when the session ends, even when the zones answer
 * after it ended.
 */
import type { ErrorLog } from '../core/log.js';
import type { LimitConnCheck, ZoneClient } from '../http/limits.js';
import type { CompiledStreamServer } from './generation.js';
import type { StreamSession } from './session.js';

/** The limit_conn counts one session holds. */
export class SessionConnLimits {
  #checks: LimitConnCheck[] = [];
  #zones: ZoneClient | undefined;
  #ended = false;

  /** Takes a count in every zone of the server's `limit_conn`; false when one refuses (unless dry run). */
  async acquire(server: CompiledStreamServer, session: StreamSession, log: ErrorLog, logContext: string): Promise<boolean> {
    const checks: LimitConnCheck[] = [];
    for (const rule of server.limitConn) {
      const key = rule.key(session);
      if (key.length === 0) continue;
      if (key.length > 255) {
        log.error(`the value of the "${rule.keySource}" key is more than 255 bytes: "${key}", ${logContext}`, session.id);
        continue;
      }
      checks.push({ zone: rule.zone, size: rule.size, key, conn: rule.conn });
    }
    if (checks.length === 0) return true;
    this.#zones = server.zones;
    const answer = await server.zones.limitConn(checks);
    if (answer.rc === 'passed') {
      session.limitConnStatus = 'PASSED';
      this.#checks = checks;
      if (this.#ended) this.release();
      return true;
    }
    if (answer.rc === 'rejected') {
      const zone = (checks[answer.index] as LimitConnCheck).zone;
      log.write(server.limitConnLogLevel, `limiting connections${server.limitConnDryRun ? ', dry run,' : ''} by zone "${zone}" while initializing session, ${logContext}`, session.id);
    }
    session.limitConnStatus = server.limitConnDryRun ? 'REJECTED_DRY_RUN' : 'REJECTED';
    return server.limitConnDryRun;
  }

  /** Gives the counts back; called when the session ends (again later is harmless). */
  release(): void {
    this.#ended = true;
    if (this.#checks.length === 0) return;
    this.#zones?.releaseConn(this.#checks);
    this.#checks = [];
  }
}
