/**
 * The master's cycle, after nginx's `ngx_master_process_cycle()` (src/os/unix/ngx_process_cycle.c):
 * it owns the listening sockets and the pid file, starts and watches the workers, and turns
 * signals into reloads, shutdowns, log reopening and binary upgrades. It never serves a request.
 */
import type { ChildProcess } from 'node:child_process';
import { channels } from '../core/diagnostics.js';
import { constants } from 'node:os';
import { ConfigError } from '../core/errors.js';
import type { HitlessConfig } from '../conf/model.js';
import type { ErrorLog } from '../core/log.js';
import { loadGeneration, openErrorLog, type Generation, type GenerationSource } from './generation.js';
import { spawnMasterWithSockets, type InheritedSockets } from './inherited-sockets.js';
import { WORKER_FATAL_EXIT_CODE, type MasterUpMessage, type ServeMessage } from './ipc.js';
import { ListenError, type ListeningSockets } from './listening-sockets.js';
import { oldBinaryPidPath, removePidFile, renamePidFile, writePidFile } from './pid-file.js';
import { WorkerProcess, type WorkerExit } from './worker-process.js';
import { applyWorkerSettings, configWarnings, logFilesOf, prepareFilesForWorkers, workerEnvironment, workingDirectoryProblem } from './worker-settings.js';
import { sumCounts, type StubStatusCounts } from '../core/connection-stats.js';
import { MasterMetrics, type MasterView } from './master-metrics.js';
import { MasterZones } from './zones.js';
import { createTicketKey, TICKET_KEY_ROTATION_MS } from '../tls/ticket-keys.js';
import { AdminListeners } from '../admin/admin-listeners.js';
import type { AdminBackend, AdminStatus } from '../admin/admin-server.js';
import { VERSION } from '../core/version.js';
import { MasterCertificates } from './master-certificates.js';
import { MasterAcme } from './master-acme.js';
import { ActiveHealthChecks, type CheckedPeerState } from '../upstream/health/active.js';
import { MasterPeerConns, MasterPeerFailures } from '../upstream/shared-peers.js';
import { MasterStickySessions } from '../upstream/sticky-sessions.js';
import type { ResolvedAnswer } from '../upstream/resolve.js';
import { buildUpstreamsReport, type UpstreamsReport } from '../upstream/upstream-report.js';

/** What {@link MasterProcess} runs with; {@link runMaster} builds it. */
export interface MasterProcessOptions {
  readonly source: GenerationSource;
  readonly generation: Generation;
  readonly sockets: ListeningSockets;
  readonly log: ErrorLog;
  readonly inherited: InheritedSockets | undefined;
  /** True when detached from a terminal: nginx only honours SIGWINCH then (`ngx_daemonized`). */
  readonly daemonized: boolean;
  readonly workerModule: string;
  readonly drainGraceMs: number;
}

/** How long a stub_status sum waits for each worker's counters. */
const STUB_STATUS_TIMEOUT_MS = 300;

/** How long a reload waits for its new workers before it gives up and keeps the old ones. */
const READY_TIMEOUT_MS = 30_000;
/** How long fast shutdown waits before SIGKILL; nginx's master escalates after about a second. */
const KILL_AFTER_MS = 2_000;
/** A worker that dies before it was ever ready is restarted after this pause, not in a tight loop. */
const RESPAWN_PAUSE_MS = 1_000;

/**
 * Published once per reload attempt: `{ generation, ok: true }`, or `{ generation, ok: false, error }`
 * with the message that was logged.
 */
export const reloadChannel = channels.reload.channel;

const HANDLED_SIGNALS = ['SIGHUP', 'SIGQUIT', 'SIGTERM', 'SIGINT', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH'] as const;

/** The running master. */
export class MasterProcess {
  readonly #options: MasterProcessOptions;
  readonly #sockets: ListeningSockets;
  readonly #workers = new Set<WorkerProcess>();
  /** The metrics' counters, and the retired total of workers that exited (stub_status's too). */
  readonly #metrics = new MasterMetrics();
  /** Each worker's number among its generation's, which `worker_cpu_affinity` picks CPUs by; a respawn takes over the number. */
  readonly #slots = new Map<WorkerProcess, number>();
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #handlers = new Map<NodeJS.Signals, () => void>();
  /** The limit_req and limit_conn zones every worker shares. */
  readonly #zones = new MasterZones();
  /**
   * The TLS session ticket keys of every worker, kept across reloads so that tickets survive them;
   * base64, as they travel over IPC. A new one comes first every {@link TICKET_KEY_ROTATION_MS},
   * and the one it replaces stays second, to decrypt the tickets it issued.
   */
  #ticketKeys: readonly string[] = [createTicketKey().toString('base64')];
  /** The certificate store, sent to every worker and changed through the admin API. */
  readonly #certificates: MasterCertificates;
  /** ACME issuance and renewal into {@link #certificates}, and the challenge tables of every worker. */
  readonly #acme: MasterAcme;
  readonly #admin: AdminListeners;
  readonly #startedAt = new Date();
  /**
   * The active health checks (`health_check`): one checker per group for every worker, kept
   * across reloads for groups that did not change; each change goes to every worker.
   */
  readonly #health = new ActiveHealthChecks({
    log: () => this.#log,
    onChange: (snapshot) => {
      for (const worker of this.#workers) worker.upstreamHealth(snapshot);
    },
  });
  /** The failure counts of groups with `zone`, shared by every worker. */
  readonly #peerFailures = new MasterPeerFailures();
  /** Every worker's active connections to zone-shared peers of least_conn and random two groups. */
  readonly #peerConns = new MasterPeerConns<WorkerProcess>();
  /** `sticky learn` sessions, kept across reloads and handed to every new worker. */
  readonly #stickySessions = new MasterStickySessions();
  /** The workers' last answers for `server ... resolve` lines, for the workers of the next reload. */
  readonly #resolved = new Map<string, ResolvedAnswer>();
  #log: ErrorLog;
  #generation: Generation;
  #pending: Generation | undefined;
  #reloading = false;
  #reloadAgain = false;
  #exiting: 'graceful' | 'fast' | undefined;
  #noAccepting = false;
  #newBinary: ChildProcess | undefined;
  #upReported = false;
  /** The pid file is written once, when the first workers listen (see {@link MasterProcess.run}). */
  #pidWritten = false;
  /** Workers that died before they were ready and wait for {@link RESPAWN_PAUSE_MS} to be started again. */
  #respawnsPending = 0;
  #exitCode = 0;
  #finish: (code: number) => void = () => undefined;

  constructor(options: MasterProcessOptions) {
    this.#options = options;
    this.#sockets = options.sockets;
    this.#log = options.log;
    this.#generation = options.generation;
    this.#certificates = new MasterCertificates(options.generation.config.main.get('certificate_store'), options.log, () => this.#workers);
    this.#acme = new MasterAcme({
      log: () => this.#log,
      certificates: this.#certificates,
      publish: async (tables) => {
        await Promise.all([...this.#workers].map((worker) => worker.acmeChallenges(tables)));
      },
    });
    this.#admin = new AdminListeners(this.#adminBackend());
    // A shared zone's rotated ticket keys go to every worker, draining ones included.
    this.#zones.sessions.onTicketKeys = (message) => {
      for (const worker of this.#workers) worker.ticketKeys(message);
    };
  }

  /** What the admin API reads and changes. */
  #adminBackend(): AdminBackend {
    return {
      status: (): AdminStatus => ({
        pid: process.pid,
        version: VERSION,
        generation: this.#generation.number,
        startedAt: this.#startedAt.toISOString(),
        uptimeSeconds: Math.floor((Date.now() - this.#startedAt.getTime()) / 1000),
        workers: [...this.#workers].map((worker) => ({ pid: worker.pid, generation: worker.generation, state: worker.state })),
        certificates: this.#certificates.entries().length,
        tlsEndpoints: tlsEndpointsOf(this.#generation.config),
      }),
      listCertificates: () => this.#certificates.list(),
      getCertificate: (name) => this.#certificates.get(name),
      putCertificate: (name, cert, key, options) => this.#certificates.put(name, cert, key, options, this.#log),
      deleteCertificate: (name) => this.#certificates.delete(name, this.#log),
      revertCertificate: (name) => this.#certificates.revert(name, this.#log),
      upstreams: (timeoutMs) => this.upstreams(timeoutMs),
      metrics: (format) => this.#metrics.scrape(() => this.#metricsView(), format),
      acme: () => this.#acme.states(),
    };
  }

  /** What a metrics scrape reads of the master. */
  #metricsView(): MasterView {
    return {
      workers: this.#workers,
      generation: this.#generation.number,
      config: this.#generation.config,
      health: this.#health.states(),
      certificates: this.#certificates.entries(),
      acme: this.#acme.states(),
      startedAt: this.#startedAt,
    };
  }

  /**
   * Starts the workers, writes the pid file once the first of them listens, and resolves with the
   * exit status once the master exits.
   */
  run(): Promise<number> {
    process.title = `hitless: master process ${process.argv.slice(1).join(' ')}`;
    const done = new Promise<number>((resolve) => {
      this.#finish = resolve;
    });
    for (const signal of HANDLED_SIGNALS) {
      const handler = (): void => this.#onSignal(signal);
      this.#handlers.set(signal, handler);
      process.on(signal, handler);
    }
    // Signal handlers do not keep Node's loop alive, and with no worker (after SIGWINCH) nothing would.
    this.#timers.add(setInterval(() => undefined, 1 << 30));
    this.#timers.add(setInterval(() => this.#rotateTicketKey(), TICKET_KEY_ROTATION_MS));
    const first = this.#startWorkers(this.#generation);
    // ACME starts once the first workers listen: a CA validating http-01 or tls-alpn-01 at once
    // must find them answering.
    void Promise.allSettled(first.map((worker) => worker.ready)).then(() => this.#acme.configure(this.#generation.config));
    // With no worker to listen there is nothing to wait for (and `-s` still needs the pid).
    if (this.#workers.size === 0) this.#writePidFileOnce();
    void this.#admin.use(this.#generation.config.main.get('admin_listen'), this.#log);
    this.#health.configure(this.#generation.config);
    return done;
  }

  /**
   * nginx creates its pid file after its listening sockets are open (ngx_init_cycle() listens
   * before ngx_create_pidfile()), and nginx-tests, systemd's `Type=forking` with `PIDFile=` and
   * scripts connect as soon as the file exists. The master here binds but never listens: the
   * first worker's listen() puts every socket in the LISTEN state, so the file waits for that
   * worker's `ready` (or for the workers to be gone for good, so that `-s` still reaches the master).
   */
  #writePidFileOnce(): void {
    if (this.#pidWritten || this.#exiting !== undefined) return;
    try {
      writePidFile(this.#generation.pidPath);
      this.#pidWritten = true;
    } catch (err) {
      // ngx_create_pidfile() failing stops nginx at start-up: exit 1 here too.
      this.#log.emerg(describe(err));
      this.#exitCode = 1;
      this.#shutdown('fast');
    }
  }

  /**
   * Every upstream peer's state: the checker's view and the passive view of each worker of the
   * current generation, asked over IPC; a worker that does not answer within `timeoutMs` is
   * reported as such.
   */
  async upstreams(timeoutMs: number): Promise<UpstreamsReport> {
    const generation = this.#generation.number;
    const workers = [...this.#workers].filter((worker) => worker.generation === generation && worker.state === 'ready');
    const answers = await Promise.all(
      workers.map(async (worker) => {
        const result = await worker.upstreamStates(timeoutMs);
        return result.answered
          ? { pid: worker.pid, generation, answered: true as const, states: result.states }
          : { pid: worker.pid, generation, answered: false as const, error: result.error };
      }),
    );
    return buildUpstreamsReport(generation, timeoutMs, answers, this.#health.states());
  }

  /**
   * stub_status over every worker, as nginx's shared counters are: each live worker is asked; one
   * that does not answer within `timeoutMs` adds the accepts, handled and requests it last
   * reported (so they never go backwards) and no connections; exited workers' join a retired total.
   */
  async stubStatus(timeoutMs: number): Promise<StubStatusCounts> {
    const asked = [...this.#workers];
    const answers = new Map(await Promise.all(asked.map(async (worker) => [worker, await worker.stubStatus(timeoutMs)] as const)));
    // Summed after every answer, in one step: a worker that exited meanwhile is in the retired
    // total or among the living, never in both (its last counts are its answer's).
    const counts = [...this.#workers].map((worker) => {
      const answer = answers.get(worker);
      if (answer !== undefined) return answer;
      const last = worker.lastCounts;
      return last === undefined ? undefined : { ...last, active: 0, reading: 0, writing: 0, waiting: 0 };
    });
    return sumCounts([this.#metrics.retiredCounts, ...counts.filter((answer) => answer !== undefined)]);
  }

  /** Every actively checked peer's state and counters, for the admin API. */
  upstreamHealthStates(): CheckedPeerState[] {
    return this.#health.states();
  }

  #onSignal(signal: (typeof HANDLED_SIGNALS)[number]): void {
    const received = `signal ${constants.signals[signal]} (${signal}) received`;
    switch (signal) {
      case 'SIGHUP':
        this.#log.notice(`${received}, reconfiguring`);
        // A bug in the reload path must be logged, never take the master (and its sockets) down.
        this.#reload().catch((err: unknown) => this.#log.alert(`reload failed: ${describe(err)}`));
        return;
      case 'SIGQUIT':
        this.#log.notice(`${received}, shutting down`);
        this.#shutdown('graceful');
        return;
      case 'SIGTERM':
      case 'SIGINT':
        this.#log.notice(`${received}, exiting`);
        this.#shutdown('fast');
        return;
      case 'SIGUSR1':
        this.#log.notice(`${received}, reopening`);
        this.#reopen();
        return;
      case 'SIGWINCH':
        // A terminal sends SIGWINCH on every resize: nginx acts on it only when daemonized.
        if (!this.#options.daemonized) {
          this.#log.notice(received);
          return;
        }
        this.#log.notice(`${received}, stop accepting connections`);
        this.#noAccepting = true;
        for (const worker of this.#workers) worker.drain();
        return;
      case 'SIGUSR2':
        this.#changeBinary(received);
        return;
    }
  }

  #startWorkers(generation: Generation): WorkerProcess[] {
    this.#log.notice('start worker processes');
    const started: WorkerProcess[] = [];
    for (let i = 0; i < generation.workerCount; i++) {
      const worker = this.#spawnWorker(generation, i);
      if (worker !== undefined) started.push(worker);
    }
    return started;
  }

  #spawnWorker(generation: Generation, slot: number): WorkerProcess | undefined {
    const main = generation.config.main;
    const cwd = main.get('working_directory');
    // ngx_worker_process_init(): a worker that cannot chdir() exits with the fatal code.
    const cwdProblem = cwd === undefined ? undefined : workingDirectoryProblem(cwd);
    if (cwdProblem !== undefined) {
      this.#log.alert(cwdProblem);
      return undefined;
    }
    const serve: ServeMessage = {
      type: 'serve',
      generation: generation.number,
      config: generation.snapshot,
      errorLog: generation.errorLog,
      listens: generation.listens.map((spec) => spec.key),
      drainGraceMs: this.#options.drainGraceMs,
      ticketKeys: { master: this.#ticketKeys, zones: this.#zones.sessions.ticketKeys(generation.config) },
      certificates: this.#certificates.entries(),
      master: { execArgv: process.execArgv, argv: process.argv.slice(1), cwd: process.cwd() },
      resolved: [...this.#resolved],
      // The challenges presented now: a worker started during an order answers them at once.
      acmeChallenges: this.#acme.challengeTables(),
    };
    let worker: WorkerProcess;
    try {
      worker = new WorkerProcess(
        this.#options.workerModule,
        serve,
        this.#sockets,
        this.#zones,
        (outcome) => {
          const state = this.#peerFailures.apply(outcome);
          if (state !== undefined) for (const other of this.#workers) other.peerFailures(state);
        },
        {
          env: workerEnvironment(generation.config),
          ...(cwd === undefined ? {} : { cwd }),
          onResolved: (message) => this.#resolved.set(message.key, message.answer),
          onStubStatus: () => this.stubStatus(STUB_STATUS_TIMEOUT_MS),
          onMetrics: (format) => this.#metrics.scrape(() => this.#metricsView(), format),
          onMetricsReport: (from, report) => this.#metrics.report(from, report),
        },
      );
    } catch (err) {
      this.#log.alert(`fork() failed while spawning "worker process": ${describe(err)}`);
      return undefined;
    }
    this.#log.notice(`start worker process ${worker.pid}`);
    applyWorkerSettings(worker.pid, slot, generation.config, this.#log);
    this.#workers.add(worker);
    this.#slots.set(worker, slot);
    worker.upstreamHealth(this.#health.snapshot());
    worker.stickySessions(this.#stickySessions.snapshot());
    for (const others of this.#peerConns.snapshot(worker)) worker.peerOtherConns(others);
    worker.onPeerConns((conns) => {
      for (const [other, others] of this.#peerConns.apply(worker, conns, this.#workers)) other.peerOtherConns(others);
    });
    worker.onStickyLearn((learned) => {
      const update = this.#stickySessions.apply(learned);
      if (update !== undefined) for (const other of this.#workers) other.stickySessions(update);
    });
    worker.ready.then(() => this.#onWorkerReady(worker), () => undefined);
    void worker.exited.then((exit) => this.#onWorkerExit(worker, exit));
    return worker;
  }

  /**
   * A new ticket key for every worker, draining ones included; the key it replaces still decrypts
   * until the next rotation, and its tickets are renewed (tls/ticket-keys.ts).
   */
  #rotateTicketKey(): void {
    this.#ticketKeys = [createTicketKey().toString('base64'), ...this.#ticketKeys.slice(0, 1)];
    for (const worker of this.#workers) worker.ticketKeys({ type: 'ticket-key', keys: this.#ticketKeys });
  }

  /**
   * Writes the pid file when the first worker of the current generation listens, and tells the
   * process that daemonized this master that it is up once all of them are ready.
   */
  #onWorkerReady(worker: WorkerProcess): void {
    if (worker.generation === this.#generation.number) this.#writePidFileOnce();
    if (this.#upReported || this.#options.inherited?.via !== 'daemon') return;
    const current = [...this.#workers].filter((worker) => worker.generation === this.#generation.number);
    if (!current.every((worker) => worker.state === 'ready') || process.send === undefined) return;
    this.#upReported = true;
    const up: MasterUpMessage = { type: 'master-up', pid: process.pid };
    process.send(up, () => process.disconnect?.());
  }

  #onWorkerExit(worker: WorkerProcess, exit: WorkerExit): void {
    // Its counters stay counted, as nginx's shared counters keep them: in the same step as it
    // leaves the living, so that no sum sees it twice or not at all.
    this.#workers.delete(worker);
    this.#metrics.retire(worker, exit);
    // Its connections ended with it.
    for (const [other, others] of this.#peerConns.remove(worker, this.#workers)) other.peerOtherConns(others);
    const slot = this.#slots.get(worker) ?? 0;
    this.#slots.delete(worker);
    this.#log.notice(`signal ${constants.signals.SIGCHLD} (SIGCHLD) received from ${worker.pid}`);
    // ngx_process_get_status(): a signal is an [alert], an exit code a [notice].
    if (exit.signal !== null) this.#log.alert(`worker process ${worker.pid} exited on signal ${constants.signals[exit.signal]}`);
    else this.#log.notice(`worker process ${worker.pid} exited with code ${exit.code ?? 0}`);

    const unexpected = !worker.stopRequested && this.#exiting === undefined;
    if (unexpected && exit.code === WORKER_FATAL_EXIT_CODE) {
      this.#log.alert(`worker process ${worker.pid} exited with fatal code ${WORKER_FATAL_EXIT_CODE} and cannot be respawned`);
    } else if (unexpected && worker.generation === this.#generation.number && !this.#noAccepting) {
      // ngx_reap_children(): a worker that died is replaced at once, with the current configuration.
      if (worker.wasReady) this.#spawnWorker(this.#generation, slot);
      else this.#respawnLater(slot);
    }
    // No worker left and none coming (each exited fatally): no socket will listen, but `-s` must work.
    if (this.#workers.size === 0 && this.#respawnsPending === 0 && this.#exiting === undefined) this.#writePidFileOnce();
    this.#closeUnusedSockets();
    if (this.#exiting !== undefined && this.#workers.size === 0) this.#exit();
  }

  /** A worker that died before it was ever ready would die again at once: pause before the next. */
  #respawnLater(slot: number): void {
    this.#respawnsPending++;
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      this.#respawnsPending--;
      if (this.#exiting === undefined && !this.#noAccepting) this.#spawnWorker(this.#generation, slot);
    }, RESPAWN_PAUSE_MS);
    this.#timers.add(timer);
  }

  async #reload(): Promise<void> {
    if (this.#exiting !== undefined) return;
    if (this.#reloading) {
      // Reloads are serialized; signals that arrive meanwhile make one more, as nginx coalesces them.
      this.#reloadAgain = true;
      return;
    }
    this.#reloading = true;
    try {
      do {
        this.#reloadAgain = false;
        await this.#reloadOnce();
      } while (this.#reloadAgain && this.#exiting === undefined);
    } finally {
      this.#reloading = false;
    }
  }

  async #reloadOnce(): Promise<void> {
    if (this.#noAccepting && this.#newBinary !== undefined) {
      // Rolling back an upgrade: the old master starts workers again with the configuration it has.
      this.#noAccepting = false;
      this.#startWorkers(this.#generation);
      return;
    }
    this.#noAccepting = false;
    this.#log.notice('reconfiguring');
    let next: Generation;
    let log: ErrorLog;
    try {
      next = loadGeneration(this.#options.source, this.#generation.number + 1);
      for (const warning of configWarnings(next.config)) this.#log.warn(warning);
      this.#sockets.open(next.listens);
      log = openErrorLog(next.errorLog);
    } catch (err) {
      // ngx_init_cycle() failed: the running generation is untouched and keeps serving.
      if (err instanceof ConfigError) {
        this.#log.write(err.level, err.message);
        if (err.hint !== undefined) this.#log.notice(err.hint);
      } else if (err instanceof ListenError) this.#log.emerg(err.message);
      else this.#log.emerg(describe(err));
      this.#closeUnusedSockets();
      reloadChannel.publish({ generation: this.#generation.number + 1, ok: false, error: describe(err) });
      return;
    }
    this.#pending = next;
    this.#certificates.useDirectory(next.config.main.get('certificate_store'), this.#log);
    const fresh = this.#startWorkers(next);
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        Promise.all(fresh.map((worker) => worker.ready)),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`new worker processes were not ready in ${READY_TIMEOUT_MS / 1000}s`)), READY_TIMEOUT_MS);
        }),
      ]);
    } catch (err) {
      this.#log.alert(`${describe(err)}, keeping the old configuration`);
      for (const worker of fresh) worker.terminate();
      log.close();
      reloadChannel.publish({ generation: next.number, ok: false, error: describe(err) });
      return;
    } finally {
      if (timer !== undefined) clearTimeout(timer);
      this.#pending = undefined;
    }
    if (this.#exiting !== undefined) {
      log.close();
      return;
    }
    // Only now, with the new workers accepting, do the old ones stop: no moment without a worker.
    const previous = this.#generation;
    this.#generation = next;
    this.#zones.retain(next.config);
    this.#health.configure(next.config);
    this.#acme.configure(next.config);
    for (const worker of this.#workers) if (worker.generation < next.number) worker.drain();
    const oldLog = this.#log;
    this.#log = log;
    this.#sockets.useLog(log);
    oldLog.close();
    if (!this.#pidWritten) {
      // Reloaded before any worker of the first generation listened: these ones do.
      this.#writePidFileOnce();
    } else if (previous.pidPath !== next.pidPath) {
      // ngx_init_cycle(): a changed `pid` path gets a new file and the old one is deleted.
      try {
        writePidFile(next.pidPath);
        const failure = removePidFile(previous.pidPath);
        if (failure !== undefined) this.#log.alert(failure);
      } catch (err) {
        this.#log.emerg(describe(err));
      }
    }
    this.#closeUnusedSockets();
    await this.#admin.use(next.config.main.get('admin_listen'), this.#log);
    reloadChannel.publish({ generation: next.number, ok: true });
  }

  /** Closes the sockets no configuration wants and no living worker was handed. */
  #closeUnusedSockets(): void {
    if (this.#exiting !== undefined) return;
    const wanted = new Set([...this.#generation.listens, ...(this.#pending?.listens ?? [])].map((spec) => spec.key));
    for (const worker of this.#workers) for (const key of worker.listens) wanted.add(key);
    for (const key of this.#sockets.keys()) if (!wanted.has(key)) this.#sockets.close(key);
  }

  #shutdown(kind: 'graceful' | 'fast'): void {
    if (this.#exiting === 'fast' || this.#exiting === kind) return;
    this.#exiting = kind;
    this.#admin.close();
    this.#health.close();
    this.#acme.close();
    // ngx_close_listening_sockets(): the master stops holding them; a new binary keeps its own copies.
    this.#sockets.closeAll({ keepUnixFile: this.#newBinary !== undefined });
    if (kind === 'graceful') {
      for (const worker of this.#workers) worker.drain();
    } else {
      for (const worker of this.#workers) worker.terminate();
      const timer = setTimeout(() => {
        for (const worker of this.#workers) worker.kill();
      }, KILL_AFTER_MS);
      this.#timers.add(timer);
    }
    if (this.#workers.size === 0) this.#exit();
  }

  #reopen(): void {
    // First, so that the master's own reopen finds each file already made and given away.
    prepareFilesForWorkers(logFilesOf(this.#generation.config, this.#generation.errorLog), this.#generation.config.main.get('user'), this.#log);
    this.#log.reopen();
    this.#log.notice('reopening logs');
    for (const worker of this.#workers) worker.reopen();
  }

  #changeBinary(received: string): void {
    const inherited = this.#options.inherited;
    // ngx_signal_handler(): ignored while the other binary of an upgrade is still running.
    const otherBinaryRuns = this.#newBinary !== undefined || (inherited?.via === 'upgrade' && process.ppid === inherited.parent);
    if (otherBinaryRuns || this.#exiting !== undefined) {
      this.#log.notice(`${received}, ignoring`);
      return;
    }
    this.#log.notice(`${received}, changing binary`);
    const pidPath = this.#generation.pidPath;
    const oldPidPath = oldBinaryPidPath(pidPath);
    const command = process.argv.slice(1).join(' ');
    const failed = renamePidFile(pidPath, oldPidPath);
    if (failed !== undefined) {
      this.#log.alert(`rename() ${pidPath} to ${oldPidPath} failed before executing new binary process "${command}" ${failed}`);
      return;
    }
    let child: ChildProcess;
    try {
      child = spawnMasterWithSockets({ via: 'upgrade', sockets: this.#sockets.descriptors(), detached: false, stdio: ['ignore', 'inherit', 'inherit'], ipc: false });
      if (child.pid === undefined) throw new Error('spawn() returned no pid');
    } catch (err) {
      this.#log.alert(`execve() failed while executing new binary process "${command}": ${describe(err)}`);
      const back = renamePidFile(oldPidPath, pidPath);
      if (back !== undefined) this.#log.alert(`rename() ${oldPidPath} back to ${pidPath} failed after an attempt to execute new binary process "${command}" ${back}`);
      return;
    }
    child.on('error', () => undefined);
    child.unref();
    this.#newBinary = child;
    this.#log.notice(`start new binary process ${child.pid}`);
    child.once('exit', (code, signal) => {
      if (this.#newBinary !== child) return;
      this.#newBinary = undefined;
      if (signal !== null) this.#log.alert(`new binary process ${child.pid} exited on signal ${constants.signals[signal]}`);
      else this.#log.notice(`new binary process ${child.pid} exited with code ${code ?? 0}`);
      if (this.#exiting !== undefined) return;
      // ngx_process_get_status(): the old master takes its pid file back and, if its workers
      // were stopped with SIGWINCH, starts them again.
      const back = renamePidFile(oldPidPath, pidPath);
      if (back !== undefined) this.#log.alert(`rename() ${oldPidPath} back to ${pidPath} failed after the new binary process "${command}" exited ${back}`);
      if (this.#noAccepting) {
        this.#noAccepting = false;
        this.#startWorkers(this.#generation);
      }
    });
  }

  #exit(): void {
    this.#health.close();
    this.#acme.close();
    this.#metrics.close();
    for (const timer of this.#timers) clearTimeout(timer);
    this.#zones.sessions.stop();
    this.#timers.clear();
    for (const [signal, handler] of this.#handlers) process.off(signal, handler);
    this.#handlers.clear();
    this.#sockets.closeAll({ keepUnixFile: this.#newBinary !== undefined });
    // ngx_delete_pidfile(): while a new binary runs, this master's file is the .oldbin one.
    const pidPath = this.#newBinary === undefined ? this.#generation.pidPath : oldBinaryPidPath(this.#generation.pidPath);
    const failure = this.#pidWritten ? removePidFile(pidPath) : undefined;
    if (failure !== undefined) this.#log.alert(failure);
    this.#log.notice('exit');
    this.#log.close();
    this.#finish(this.#exitCode);
  }
}

/** The `listen ... ssl` addresses of the http block, a wildcard one as its loopback address. */
function tlsEndpointsOf(config: HitlessConfig): AdminStatus['tlsEndpoints'] {
  const endpoints = new Map<string, { host: string; port: number }>();
  for (const server of config.main.child('http')?.blocks ?? []) {
    if (server.name !== 'server') continue;
    for (const listen of server.get('listen')) {
      if (!listen.ssl || listen.family === 'unix') continue;
      const host = listen.wildcard ? (listen.family === 'inet6' ? '::1' : '127.0.0.1') : listen.address;
      endpoints.set(`${host}|${listen.port}`, { host, port: listen.port });
    }
  }
  return [...endpoints.values()];
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
