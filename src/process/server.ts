/**
 * A server run from code, in this process: what nginx runs with `master_process off`, one process
 * that reads the configuration and serves it, without a master or workers (so without reloads
 * that keep the sockets, and without UDP listens, which only a worker adopts). Its running state
 * (certificate store, ticket key, zones) is the program's to change: a certificate it puts is
 * checked as the store checks one and served on the next TLS handshake for the name.
 */
import { createServer, type Server } from 'node:net';
import { loadConfig, loadConfigText } from '../conf/loader.js';
import type { HitlessConfig } from '../conf/model.js';
import { HitlessError } from '../core/errors.js';
import { ErrorLog } from '../core/log.js';
import { localServingState, type ServingState } from '../http/serving-state.js';
import type { ListenSpec } from '../http/listen.js';
import { createRegistry } from '../modules.js';
import { checkCertificate, type CertificateSummary, type CheckOptions } from '../tls/certificate-store.js';
import { HttpAndStreamRuntime, collectListens } from './http-and-stream-runtime.js';

/** Options of {@link startServer}: a configuration file, or its text. */
export interface ServerOptions {
  /** The main configuration file, absolute or relative to `prefix`; or give `configText`. */
  readonly configFile?: string;
  /** The configuration's text, when there is no file. */
  readonly configText?: string;
  /** The prefix relative paths resolve against. Default: the current directory. */
  readonly prefix?: string;
  /** Where errors are logged. Default: the configuration's `error_log`. */
  readonly log?: ErrorLog;
}

/** A listening socket of a {@link RunningServer}: the configuration's key and the port it got. */
export interface ServerAddress {
  readonly key: string;
  readonly port: number | undefined;
}

/** What {@link RunningServer.putCertificate} did: the certificate's summary and what the checks warned about. */
export interface PutCertificateResult {
  readonly summary: CertificateSummary;
  readonly warnings: readonly string[];
}

/** A server started from code; stop it with {@link RunningServer.close}. */
export class RunningServer {
  /** The running state: `state.tls.certificates` is the certificate store it serves. */
  readonly state: ServingState;
  readonly config: HitlessConfig;
  readonly #runtime: HttpAndStreamRuntime;
  readonly #servers: Server[];
  readonly #log: ErrorLog;
  readonly #ownLog: boolean;

  private constructor(config: HitlessConfig, state: ServingState, runtime: HttpAndStreamRuntime, servers: Server[], log: ErrorLog, ownLog: boolean) {
    this.config = config;
    this.state = state;
    this.#runtime = runtime;
    this.#servers = servers;
    this.#log = log;
    this.#ownLog = ownLog;
  }

  /** Reads and validates the configuration, opens its listening sockets and serves them. */
  static async start(options: ServerOptions): Promise<RunningServer> {
    const registry = createRegistry();
    const prefix = options.prefix ?? '.';
    let config: HitlessConfig;
    if (options.configText !== undefined) config = loadConfigText(options.configText, registry, { prefix });
    else if (options.configFile !== undefined) config = loadConfig({ file: options.configFile, prefix, registry });
    else throw new HitlessError('HITLESS_ERR_USAGE', 'Give a configuration file or its text');
    const listens = collectListens(config);
    const udp = listens.find((spec) => spec.udp === true);
    if (udp !== undefined) throw new HitlessError('HITLESS_ERR_USAGE', `A server run from code serves no UDP socket ("${udp.key}"): run a master`);
    const log = options.log ?? new ErrorLog(config.main.get('error_log'));
    const state = localServingState();
    let runtime: HttpAndStreamRuntime;
    try {
      runtime = new HttpAndStreamRuntime(config, { log, state });
    } catch (err) {
      if (options.log === undefined) log.close();
      throw err;
    }
    const servers: Server[] = [];
    try {
      for (const spec of listens) {
        const server = await listen(spec);
        runtime.attach(spec.key, server);
        servers.push(server);
      }
    } catch (err) {
      for (const server of servers) server.close();
      runtime.close();
      if (options.log === undefined) log.close();
      throw err;
    }
    return new RunningServer(config, state, runtime, servers, log, options.log === undefined);
  }

  /** Every listening socket, in the configuration's order. */
  get addresses(): ServerAddress[] {
    return this.#servers.map((server, i) => {
      const address = server.address();
      return { key: collectListens(this.config)[i]?.key ?? '', port: typeof address === 'object' && address !== null ? address.port : undefined };
    });
  }

  /**
   * Checks a certificate (with its chain) and key for `name` as the store does (key matches, chain
   * in order, dates, the name covered unless `force`) and serves it from the next handshake for the
   * name (or, for `*.example.com`, for every name one label below). Throws CertificateRefusedError.
   */
  putCertificate(name: string, cert: string, key: string, options: CheckOptions = {}): PutCertificateResult {
    const checked = checkCertificate(name.toLowerCase(), cert, key, options);
    this.state.tls.certificates.put(checked.stored);
    return { summary: checked.summary, warnings: checked.warnings };
  }

  /** Stops serving a stored certificate; handshakes for the name get the server's own again. */
  deleteCertificate(name: string): void {
    this.state.tls.certificates.delete(name.toLowerCase());
  }

  /** Stops accepting, lets what is in flight finish (idle keep-alive connections get `graceMs`), and closes. */
  async close(options: { graceMs?: number } = {}): Promise<void> {
    for (const server of this.#servers) server.close();
    await this.#runtime.drain(options);
    this.#runtime.close();
    if (this.#ownLog) this.#log.close();
  }
}

/** Starts a {@link RunningServer}. */
export function startServer(options: ServerOptions): Promise<RunningServer> {
  return RunningServer.start(options);
}

function listen(spec: ListenSpec): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    const done = (): void => {
      server.off('error', reject);
      resolve(server);
    };
    if (spec.path !== undefined) server.listen({ path: spec.path, backlog: spec.backlog }, done);
    else server.listen({ host: spec.host ?? '0.0.0.0', port: spec.port ?? 0, ipv6Only: spec.ipv6only, backlog: spec.backlog }, done);
  });
}
