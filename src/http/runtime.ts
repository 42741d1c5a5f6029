/**
 * The contract between the process layer and the HTTP layer (the worker side of a generation).
 * The master calls {@link collectListens} to know which sockets to own; a worker builds one
 * {@link HttpRuntime} per configuration generation and attaches the listening sockets it is handed.
 *
 * STUB: the HTTP helper replaces the bodies; the signatures are the contract.
 */
import type { Server } from 'node:net';
import type { HitlessConfig } from '../conf/model.js';
import type { ErrorLog } from '../core/log.js';

/** One listening socket the master owns: what to bind, and the key that identifies it across reloads. */
export interface ListenSpec {
  /** Stable identity across reloads: `127.0.0.1:8080`, `[::1]:8080`, `unix:/path`. */
  readonly key: string;
  readonly host?: string;
  readonly port?: number;
  /** For `listen unix:/path`. */
  readonly path?: string;
  readonly ipv6only: boolean;
  readonly backlog: number;
}

/** Every distinct listening socket the `http` block asks for. */
export function collectListens(_config: HitlessConfig): ListenSpec[] {
  return [];
}

/** Options of {@link HttpRuntime}. */
export interface HttpRuntimeOptions {
  readonly log: ErrorLog;
}

/** Serves one configuration generation's HTTP servers in a worker. */
export class HttpRuntime {
  constructor(_config: HitlessConfig, _options: HttpRuntimeOptions) {}

  /** Serves the connections a listening socket (handed over by the master) accepts. */
  attach(_key: string, _server: Server): void {}

  /**
   * Graceful drain: the caller has stopped accepting. Finishes requests in flight, answers the
   * next request on a keep-alive connection with `Connection: close`, closes idle keep-alive
   * connections after `graceMs`, and resolves when no connection is left.
   */
  async drain(_options: { graceMs?: number } = {}): Promise<void> {}

  /** Fast shutdown: destroys every connection at once. */
  close(): void {}

  /** Reopens access log files (SIGUSR1). */
  reopenLogs(): void {}
}
