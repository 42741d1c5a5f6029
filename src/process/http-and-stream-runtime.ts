/**
 * What a worker serves one configuration generation with: the http and the stream runtimes side
 * by side, as one nginx worker runs both modules' listening sockets. The master opens the sockets
 * of both; each key goes to the runtime whose block listens on it.
 */
import type { Server } from 'node:net';
import type { HitlessConfig } from '../conf/model.js';
import type { ErrorLog } from '../core/log.js';
import { HttpRuntime } from '../http/runtime.js';
import { localServingState, type ServingState } from '../http/serving-state.js';
import { StreamRuntime } from '../stream/runtime.js';
import { passKeys, type PassTo } from '../stream/pass.js';
import type { PeerState } from '../upstream/group.js';

export { collectListens } from './listens.js';

/** Options of {@link HttpAndStreamRuntime}. */
export interface HttpAndStreamRuntimeOptions {
  readonly log: ErrorLog;
  /** The worker's state, one for http and stream (certificate store, ticket key, zones). Default: one of its own. */
  readonly state?: ServingState;
}

/** The http and stream runtimes of one generation, driven as one. */
export class HttpAndStreamRuntime {
  readonly http: HttpRuntime;
  readonly stream: StreamRuntime;

  /** Builds both; if the stream side fails, the http side's files are closed again. */
  constructor(config: HitlessConfig, options: HttpAndStreamRuntimeOptions) {
    const shared = { log: options.log, state: options.state ?? localServingState() };
    // worker_connections of the newest generation bounds the worker, its older generations included.
    const events = config.main.blocks.find((block) => block.name === 'events');
    shared.state.upstreams.connections.configure(events?.get('worker_connections') ?? 512, options.log);
    this.http = new HttpRuntime(config, shared);
    try {
      // A stream `pass` reaches every listening socket of the generation, http's too.
      const passTo: PassTo = (address, socket, passed) => {
        for (const key of passKeys(address)) {
          if (this.stream.serves(key)) this.stream.acceptPassed(key, socket, passed);
          else if (this.http.serves(key)) this.http.acceptPassed(key, socket, passed);
          else continue;
          return true;
        }
        return false;
      };
      this.stream = new StreamRuntime(config, { ...shared, passTo });
    } catch (err) {
      this.http.close();
      throw err;
    }
  }

  /** Hands a listening socket to the runtime whose block listens on `key`. */
  attach(key: string, server: Server): void {
    if (this.stream.serves(key)) this.stream.attach(key, server);
    else this.http.attach(key, server);
  }

  /** Hands a UDP listening socket (a raw UDP wrap) to the stream runtime, the only one that has them. */
  attachUdp(key: string, handle: unknown): void {
    this.stream.attachUdp(key, handle);
  }

  /** The http drain (with its grace for idle keep-alive connections) and the stream drain, together. */
  async drain(options: { graceMs?: number } = {}): Promise<void> {
    await Promise.all([this.http.drain(options), this.stream.drain()]);
  }

  close(): void {
    this.http.close();
    this.stream.close();
  }

  reopenLogs(): void {
    this.http.reopenLogs();
    this.stream.reopenLogs();
  }

  /** Open client connections and sessions. */
  get connections(): number {
    return this.http.connections + this.stream.connections;
  }

  upstreamStates(now = Date.now()): PeerState[] {
    return [...this.http.upstreamStates(now), ...this.stream.upstreamStates(now)];
  }

  flushLogs(): void {
    this.http.flushLogs();
    this.stream.flushLogs();
  }
}
