/**
 * The admin API's listening addresses across reloads: started with the master, reopened only for
 * the addresses a new configuration adds, closed for those it drops.
 */
import type { ErrorLog } from '../core/log.js';
import type { AdminListen } from './admin-module.js';
import { AdminServer, type AdminBackend } from './admin-server.js';

/** The admin servers of the running configuration. */
export class AdminListeners {
  readonly #backend: AdminBackend;
  readonly #servers = new Map<string, AdminServer>();

  constructor(backend: AdminBackend) {
    this.#backend = backend;
  }

  /**
   * Listens on every address of `listens` not yet served and closes the others. A failure is
   * logged and the rest go on: the proxy keeps serving without its admin API.
   */
  async use(listens: readonly AdminListen[], log: ErrorLog): Promise<void> {
    const wanted = new Map(listens.map((listen) => [JSON.stringify(listen), listen]));
    for (const [key, server] of this.#servers) {
      if (wanted.has(key)) continue;
      server.close();
      this.#servers.delete(key);
    }
    for (const [key, listen] of wanted) {
      if (this.#servers.has(key)) continue;
      try {
        const server = new AdminServer(listen, this.#backend);
        await server.start();
        this.#servers.set(key, server);
        log.notice(`admin API listening on ${listen.kind === 'unix' ? `unix:${listen.path}` : `${listen.host.includes(':') ? `[${listen.host}]` : listen.host}:${listen.port}`}`);
      } catch (err) {
        log.error(`admin API not started: ${(err as Error).message}`);
      }
    }
  }

  /** Closes every admin server. */
  close(): void {
    for (const server of this.#servers.values()) server.close();
    this.#servers.clear();
  }
}
