/**
 * A worker process: it rebuilds the configuration the master validated from the file texts the
 * master sends (never from the disk, which may have changed since), serves it on the listening
 * sockets the master hands over, and stops when told, as nginx's `ngx_worker_process_cycle()`
 * does: a graceful stop closes the listening sockets first, then lets connections finish.
 */
import { rmSync, writeFileSync } from 'node:fs';
import { isProcessAlive } from '../core/process-alive.js';
import { readPidFile } from './pid-file.js';
import { spawnMasterWithSockets, type MasterCommand } from './inherited-sockets.js';
import { Server } from 'node:net';
import { loadConfig } from '../conf/loader.js';
import type { HitlessConfig } from '../conf/model.js';
import { createRegistry } from '../modules.js';
import { snapshotSource } from '../conf/parser.js';
import { ErrorLog } from '../core/log.js';
import { HttpAndStreamRuntime, collectListens } from './http-and-stream-runtime.js';
import { WORKER_FATAL_EXIT_CODE, isMasterToWorker, isMetricsAnswer, isSessionAnswer, isStubStatusAnswer, isZoneAnswer, type ServeMessage, type WorkerToMaster } from './ipc.js';
import { IpcMetricsText, WorkerMetrics } from './worker-metrics.js';
import { IpcStubStatus, IpcZoneClient } from './zones.js';
import { connectionStats } from '../core/connection-stats.js';
import { isUdpKey } from './listening-sockets.js';
import { dropWorkerPrivileges } from './worker-settings.js';
import { IpcSharedSessions } from './session-caches.js';
import type { ServingState } from '../http/serving-state.js';
import { TlsRuntime } from '../tls/tls-runtime.js';
import { isPeerFailures, isPeerOtherConns } from '../upstream/shared-peers.js';
import { isStickySessions } from '../upstream/sticky-sessions.js';
import { UpstreamRuntime } from '../upstream/upstream-runtime.js';
import type { PeerState } from '../upstream/group.js';

export { WORKER_FATAL_EXIT_CODE } from './ipc.js';

/** What a worker serves a configuration generation with; http and stream together by default (http-and-stream-runtime.ts). */
export interface ServingRuntime {
  attach(key: string, server: Server): void;
  /**
   * Serves the datagrams of a UDP listening socket (`listen ... udp`), handed over as Node's raw UDP
   * wrap; the runtime owns it from then on: it stops reading it at once on a drain, and closes it.
   */
  attachUdp?(key: string, handle: unknown): void;
  drain(options: { graceMs?: number }): Promise<void>;
  close(): void;
  reopenLogs(): void;
  /** Every upstream peer's state in this worker, for the admin API; a runtime without upstreams may omit it. */
  upstreamStates?(): PeerState[];
}

/** Options of {@link runWorker}. */
export interface WorkerOptions {
  /**
   * Builds the runtime for a configuration; `state` is the worker's, which the master's messages
   * keep current. Default: the http and stream runtimes of http-and-stream-runtime.ts.
   */
  readonly createRuntime?: (config: HitlessConfig, log: ErrorLog, state: ServingState) => ServingRuntime;
}

/** Runs this process as a worker: listens for the master's messages until told to stop. */
export function runWorker(options: WorkerOptions = {}): void {
  process.title = 'hitless: worker process';
  const masterPid = process.ppid;
  // limit_req and limit_conn zones live in the master, shared by every worker (process/zones.ts).
  const zones = new IpcZoneClient((message) => {
    if (!process.connected || process.send === undefined) return false;
    process.send(message, undefined, undefined, () => undefined);
    return true;
  });
  // So do the ssl_session_cache shared: zones (process/session-caches.ts).
  const sessions = new IpcSharedSessions((message) => {
    if (!process.connected || process.send === undefined) return false;
    process.send(message, undefined, undefined, () => undefined);
    return true;
  });
  // One state for the worker's life: every generation it serves shares the store, key and zones.
  const tls = new TlsRuntime();
  tls.sharedSessions = sessions;
  // A shared zone's ticket keys rotate from the first ticket under them (process/session-caches.ts).
  tls.ticketKeys.onZoneUse = (zone, timeoutMs) => sessions.ticketUse(zone, timeoutMs);
  const upstreams = new UpstreamRuntime();
  // hitless_metrics asks the master for every worker's metrics, as stub_status does.
  const metricsText = new IpcMetricsText((message) => {
    if (!process.connected || process.send === undefined) return false;
    process.send(message, undefined, undefined, () => undefined);
    return true;
  });
  const state: ServingState = { tls, zones, upstreams, metrics: (format) => metricsText.ask(format) };
  // The worker's counters, sent to the master as they change (process/worker-metrics.ts).
  const metrics = new WorkerMetrics((message) => {
    if (process.connected && process.send !== undefined) process.send(message, undefined, undefined, () => undefined);
  }, upstreams);
  // The channel to the master is one of the worker's connections, as nginx's is.
  upstreams.connections.take();
  const createRuntime = options.createRuntime ?? ((config, log, given) => new HttpAndStreamRuntime(config, { log, state: given }));
  const worker = new WorkerProcessCycle((config, log) => createRuntime(config, log, state), state, metrics);
  // Failure counts of groups with `zone` are kept by the master too (upstream/shared-peers.ts).
  upstreams.sharedPeers.useSender((message) => {
    if (process.connected && process.send !== undefined) process.send(message, undefined, undefined, () => undefined);
  });
  // So are the sessions of `sticky learn` (upstream/sticky-sessions.ts).
  upstreams.stickySessions.useSender((message) => {
    if (process.connected && process.send !== undefined) process.send(message, undefined, undefined, () => undefined);
  });
  // And the answers of `server ... resolve` (upstream/resolve.ts), for the next reload's workers.
  upstreams.resolved.useSender((message) => {
    if (process.connected && process.send !== undefined) process.send(message, undefined, undefined, () => undefined);
  });
  // stub_status sums every worker's counters: the master asks them all (process/master-process.ts).
  const status = new IpcStubStatus((message) => {
    if (!process.connected || process.send === undefined) return false;
    process.send(message, undefined, undefined, () => undefined);
    return true;
  });
  connectionStats.useCluster(() => status.ask());
  process.on('message', (message: unknown, handle: unknown) => {
    // The master's resolved answers go in before the generation that reads them is built.
    if (isMasterToWorker(message) && message.type === 'serve' && message.resolved !== undefined) upstreams.resolved.seed(message.resolved);
    if (isZoneAnswer(message)) zones.receive(message);
    else if (isStubStatusAnswer(message)) status.receive(message);
    else if (isMetricsAnswer(message)) metricsText.receive(message);
    else if (isStickySessions(message)) upstreams.stickySessions.receive(message);
    else if (isSessionAnswer(message)) sessions.receive(message);
    else if (isPeerFailures(message)) upstreams.sharedPeers.receive(message);
    else if (isPeerOtherConns(message)) upstreams.sharedPeers.receiveConns(message);
    else worker.receive(message, handle);
  });
  // The master is gone (SIGKILL, a crash): serve on, and start a new one (WorkerProcessCycle.orphaned()).
  process.on('disconnect', () => {
    zones.failAll();
    sessions.failAll();
    // Without its master a worker's own counters are all it can tell.
    connectionStats.useCluster(undefined);
    status.failAll();
    metricsText.failAll();
    worker.orphaned(masterPid);
  });
  // nginx's workers take the same signals as the master's channel commands (ngx_signal_handler);
  // SIGHUP, SIGUSR2 and SIGWINCH are for the master only and must not kill a worker.
  process.on('SIGTERM', () => worker.terminate());
  process.on('SIGINT', () => worker.terminate());
  process.on('SIGQUIT', () => void worker.drain());
  process.on('SIGUSR1', () => worker.reopen());
  for (const ignored of ['SIGHUP', 'SIGUSR2', 'SIGWINCH'] as const) process.on(ignored, () => undefined);
}

class WorkerProcessCycle {
  readonly #createRuntime: (config: HitlessConfig, log: ErrorLog) => ServingRuntime;
  readonly #handles = new Map<string, unknown>();
  readonly #servers: Server[] = [];
  /** The descriptor of each listening socket this worker serves, to hand to a new master. */
  readonly #descriptors: { key: string; fd: number }[] = [];
  #orphanWatch: NodeJS.Timeout | undefined;
  /** The master's command line, from its `serve` message. */
  #masterCommand: MasterCommand | undefined;
  #log: ErrorLog = ErrorLog.stderr();
  #runtime: ServingRuntime | undefined;
  #config: HitlessConfig | undefined;
  #drainGraceMs = 0;
  #stopping = false;

  readonly #state: ServingState;
  readonly #metrics: WorkerMetrics;

  constructor(createRuntime: (config: HitlessConfig, log: ErrorLog) => ServingRuntime, state: ServingState, metrics: WorkerMetrics) {
    this.#createRuntime = createRuntime;
    this.#state = state;
    this.#metrics = metrics;
  }

  receive(message: unknown, handle: unknown): void {
    if (!isMasterToWorker(message)) return;
    switch (message.type) {
      case 'listen':
        this.#handles.set(message.key, handle);
        return;
      case 'serve':
        this.#serve(message).catch((err: unknown) => this.#fail(err));
        return;
      case 'drain':
        void this.drain();
        return;
      case 'terminate':
        this.terminate();
        return;
      case 'reopen':
        this.reopen();
        return;
      case 'ticket-key':
        if (message.zone === undefined) this.#state.tls.ticketKeys.useMaster(message.keys);
        else this.#state.tls.ticketKeys.useZone(message.zone, message.keys);
        return;
      case 'cert-put':
      case 'cert-delete': {
        // The next handshake builds its context from the new entry: acknowledged at once.
        if (message.type === 'cert-put') this.#state.tls.certificates.put(message.certificate);
        else this.#state.tls.certificates.delete(message.name);
        const ack: WorkerToMaster = { type: 'cert-ack', seq: message.seq };
        process.send?.(ack);
        return;
      }
      case 'upstream-health':
        this.#state.upstreams.health.replace(message.snapshot);
        return;
      case 'acme-challenges':
        // Kept by the worker, not the generation: the next generation's serve brings it again.
        this.#state.tls.acmeChallenges.replace(message);
        if (message.seq !== undefined) {
          const ack: WorkerToMaster = { type: 'acme-challenges-ack', seq: message.seq };
          process.send?.(ack);
        }
        return;
      case 'stub-status': {
        const answer: WorkerToMaster = { type: 'stub-status-report', id: message.id, counts: connectionStats.counts() };
        process.send?.(answer, undefined, undefined, () => undefined);
        return;
      }
      case 'metrics': {
        const answer: WorkerToMaster = this.#metrics.report(message.id, this.#runtime?.upstreamStates?.() ?? []);
        process.send?.(answer, undefined, undefined, () => undefined);
        return;
      }
      case 'upstream-states': {
        const answer: WorkerToMaster = { type: 'upstream-states-answer', id: message.id, states: this.#runtime?.upstreamStates?.() ?? [] };
        process.send?.(answer, undefined, undefined, () => undefined);
        return;
      }
    }
  }

  async #serve(message: ServeMessage): Promise<void> {
    const snapshot = message.config;
    this.#log = new ErrorLog(message.errorLog);
    this.#drainGraceMs = message.drainGraceMs;
    this.#masterCommand = message.master;
    // Before the runtime is built: its TLS terminations join the contexts to the key and the store.
    this.#state.tls.ticketKeys.useMaster(message.ticketKeys.master);
    for (const zone of message.ticketKeys.zones) this.#state.tls.ticketKeys.useZone({ name: zone.zone, size: zone.size }, zone.keys);
    this.#state.tls.certificates.replaceAll(message.certificates);
    if (message.acmeChallenges !== undefined) this.#state.tls.acmeChallenges.replace(message.acmeChallenges);
    const config = loadConfig({
      file: snapshot.file,
      prefix: snapshot.prefix,
      ...(snapshot.params === undefined ? {} : { params: snapshot.params }),
      source: snapshotSource(snapshot.files, snapshot.dataFiles),
      registry: createRegistry(),
    });
    this.#config = config;
    const runtime = this.#createRuntime(config, this.#log);
    this.#runtime = runtime;
    // Files are read and logs opened as root; from here on the worker is the `user` (worker-settings.ts).
    dropWorkerPrivileges(config.main.get('user'));
    const backlogs = new Map(collectListens(config).map((spec) => [spec.key, spec.backlog]));
    const listening: Promise<void>[] = [];
    for (const key of message.listens) {
      const handle = this.#handles.get(key);
      if (handle === undefined) throw new Error(`the master sent no socket for ${key}`);
      const fd = (handle as { fd?: unknown }).fd;
      if (typeof fd === 'number' && fd >= 0) this.#descriptors.push({ key, fd });
      if (isUdpKey(key)) {
        if (runtime.attachUdp === undefined) throw new Error(`the runtime serves no UDP socket (${key})`);
        runtime.attachUdp(key, handle);
        continue;
      }
      const server = new Server();
      listening.push(new Promise((resolve, reject) => {
        server.once('listening', resolve);
        server.once('error', reject);
      }));
      // listen(handle) on a raw TCP wrap adopts it (lib/net.js Server.prototype.listen); attaching in
      // the same tick means no accepted connection can be emitted before the runtime listens for it.
      server.listen(handle, backlogs.get(key) ?? 511);
      runtime.attach(key, server);
      this.#servers.push(server);
    }
    this.#handles.clear();
    await Promise.all(listening);
    if (this.#stopping) return;
    const ready: WorkerToMaster = { type: 'ready', generation: message.generation };
    process.send?.(ready);
  }

  /**
   * The master died (SIGKILL, a crash) while this worker serves. nginx's workers serve on,
   * unsupervised, and a new master cannot bind the ports they hold. hitless's serve on too, and
   * one of them (the first to create `PID_FILE.rescue`) starts the master again with the
   * listening sockets, as a binary upgrade hands them over: the sockets never close, so no
   * connection is refused. Once the pid file names the new master (written when its workers
   * listen), every orphan drains as an old generation does, within worker_shutdown_timeout.
   */
  orphaned(masterPid: number): void {
    const command = this.#masterCommand;
    if (this.#stopping) return;
    // Not serving yet (the master died before it sent the configuration): nothing to keep up.
    if (this.#runtime === undefined) {
      this.terminate();
      return;
    }
    const pidPath = this.#config?.main.get('pid');
    this.#log.alert(`the master process ${masterPid} exited unexpectedly: the worker serves on`);
    if (pidPath === undefined || pidPath === '' || command === undefined || this.#descriptors.length === 0) return;
    const lock = `${pidPath}.rescue`;
    if (takeRescueLock(lock)) {
      try {
        const child = spawnMasterWithSockets({ via: 'rescue', sockets: this.#descriptors, detached: true, stdio: ['ignore', 'ignore', 'ignore'], ipc: false, command });
        child.unref();
        this.#log.notice(`start new master process ${child.pid ?? '?'} with the listening sockets`);
        child.once('error', (err) => this.#log.alert(`spawn() of a new master process failed: ${describe(err)}`));
      } catch (err) {
        this.#log.alert(`spawn() of a new master process failed: ${describe(err)}`);
      }
    }
    this.#orphanWatch = setInterval(() => {
      const pid = readPid(pidPath);
      if (pid === undefined || pid === masterPid || pid === process.pid || !isProcessAlive(pid)) return;
      clearInterval(this.#orphanWatch);
      releaseRescueLock(lock);
      this.#log.notice(`master process ${pid} took over`);
      void this.drain();
    }, 200);
  }

  /** Stops accepting, lets the runtime finish what is in flight, and exits 0. */
  async drain(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    clearInterval(this.#orphanWatch);
    this.#log.notice('gracefully shutting down');
    // Closing our copy of each listening socket leaves it open in the master and the new
    // workers: connections queued in the kernel's accept queue wait there for them.
    for (const server of this.#servers) server.close();
    const runtime = this.#runtime;
    if (runtime !== undefined) {
      const shutdownTimeout = this.#config?.main.get('worker_shutdown_timeout');
      let timer: NodeJS.Timeout | undefined;
      const expired = new Promise<void>((resolve) => {
        if (shutdownTimeout === undefined) return;
        // worker_shutdown_timeout: nginx's ngx_shutdown_timer_handler() closes what is left.
        timer = setTimeout(() => {
          runtime.close();
          resolve();
        }, shutdownTimeout);
      });
      try {
        await Promise.race([runtime.drain({ graceMs: this.#drainGraceMs }), expired]);
      } catch (err) {
        this.#log.alert(`drain failed: ${describe(err)}`);
        runtime.close();
      } finally {
        if (timer !== undefined) clearTimeout(timer);
      }
    }
    this.#exit(0);
  }

  /** Closes every connection and exits at once. */
  terminate(): void {
    this.#stopping = true;
    for (const server of this.#servers) server.close();
    this.#runtime?.close();
    this.#exit(0);
  }

  reopen(): void {
    // ngx_reopen_files(): a file the worker (maybe no longer root) cannot open is logged, not fatal.
    try {
      this.#log.reopen();
      this.#runtime?.reopenLogs();
    } catch (err) {
      this.#log.emerg(describe(err));
    }
  }

  #fail(err: unknown): void {
    this.#log.emerg(describe(err));
    this.#exit(WORKER_FATAL_EXIT_CODE);
  }

  #exit(code: number): never {
    // ngx_worker_process_exit(): "exiting" once connections are done, then "exit".
    this.#log.notice('exiting');
    // The master keeps what this worker counted for stub_status (a retired total): the last word.
    const last: WorkerToMaster = { type: 'stub-status-report', id: 0, counts: connectionStats.counts() };
    if (process.connected) process.send?.(last, undefined, undefined, () => undefined);
    this.#metrics.final();
    this.#log.notice('exit');
    process.exit(code);
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The pid a pid file (or the rescue lock) names, or undefined while it is missing or being written. */
function readPid(path: string): number | undefined {
  try {
    return readPidFile(path);
  } catch {
    return undefined;
  }
}

/** Creates the rescue lock holding this pid; a lock whose holder is gone is taken over. */
function takeRescueLock(lock: string): boolean {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(lock, `${process.pid}\n`, { flag: 'wx', mode: 0o644 });
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') return false;
      const holder = readPid(lock);
      if (holder !== undefined && isProcessAlive(holder)) return false;
      rmSync(lock, { force: true });
    }
  }
  return false;
}

/** Removes the rescue lock if this worker holds it. */
function releaseRescueLock(lock: string): void {
  if (readPid(lock) === process.pid) rmSync(lock, { force: true });
}
