/**
 * The master's side of the metrics (`GET /metrics`, `hitless_metrics`): each scrape asks every
 * worker for its counters with a time limit, then adds, in one synchronous step, the last report
 * of every living worker to the retired total of the workers that exited and to the master's own
 * counters (reloads, health check probes, scrape timeouts). A worker's reports only grow and its
 * last one moves from the living to the retired total at once when it exits, so no counter ever
 * goes backwards across reloads, respawns or a SIGKILL (docs/observability.md).
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { channels, type HealthChangeMessage, type HealthProbeMessage, type ReloadMessage } from '../core/diagnostics.js';
import { sumCounts, type StubStatusCounts } from '../core/connection-stats.js';
import { METRIC_FAMILIES as F } from '../admin/metric-families.js';
import { labelText, MetricCounters, sumSnapshots, type CounterSample, type GaugeSample, type MetricsSnapshot } from '../admin/metric-counters.js';
import { renderExposition, type ExpositionFormat } from '../admin/exposition.js';
import type { AcmeNameState } from '../acme/manager.js';
import type { HitlessConfig } from '../conf/model.js';
import type { StoredCertificate } from '../tls/certificate-store.js';
import type { TlsFile } from '../tls/ssl-module.js';
import type { CheckedPeerState } from '../upstream/health/active.js';
import type { PeerStateName } from '../upstream/group.js';
import { buildUpstreamsReport, expandPeerStates, type WorkerUpstreamAnswer } from '../upstream/upstream-report.js';
import { PeerDowntime } from '../upstream/peer-downtime.js';
import type { MetricsReportMessage } from './ipc.js';
import type { WorkerExit, WorkerProcess } from './worker-process.js';

/** How long a scrape waits for each worker. Prometheus's default scrape timeout is 10 s; a worker busier than this is reported, not waited for. */
export const SCRAPE_WORKER_TIMEOUT_MS = 500;

const PEER_STATES: readonly PeerStateName[] = ['up', 'draining', 'full', 'unavailable', 'checking', 'unhealthy', 'down'];

/** What a scrape reads of the master besides its workers. */
export interface MasterView {
  readonly workers: Iterable<WorkerProcess>;
  readonly generation: number;
  readonly config: HitlessConfig;
  readonly health: readonly CheckedPeerState[];
  readonly certificates: readonly StoredCertificate[];
  /** The ACME names the master manages (none without `acme_certificate`). */
  readonly acme: readonly AcmeNameState[];
  readonly startedAt: Date;
}

/** The master's counters and the retired total of exited workers. */
export class MasterMetrics {
  /** Counted by the master itself: reloads, probes, scrape timeouts, worker exits. */
  readonly #own = new MetricCounters();
  /** The last reports of workers that exited. */
  readonly #retired = new MetricCounters();
  /** Their connection counters (accepts, handled, requests), which stub_status sums too. */
  #retiredCounts: StubStatusCounts = sumCounts([]);
  #lastReloadOk = true;
  #lastReloadAt = Date.now();
  /** notAfter in Unix seconds by PEM text, so that a scrape parses each certificate once. */
  readonly #expiry = new Map<string, number>();
  readonly #subscriptions: [string, (message: unknown) => void][];
  /** Every peer's downtime, from the health checks and the workers' max_fails windows. */
  readonly #downtime = new PeerDowntime();

  constructor() {
    this.#subscriptions = [
      [channels.reload.channel.name as string, (message) => this.#reload(message as ReloadMessage)],
      [channels.healthProbe.channel.name as string, (message) => this.#probe(message as HealthProbeMessage)],
      [channels.healthChange.channel.name as string, (message) => this.#healthChange(message as HealthChangeMessage)],
    ];
    for (const [name, listener] of this.#subscriptions) subscribe(name, listener);
  }

  /** The accepts, handled and requests of workers that exited. */
  get retiredCounts(): StubStatusCounts {
    return this.#retiredCounts;
  }

  /** A worker's metrics report arrived: its max_fails windows go to the downtime. */
  report(worker: WorkerProcess, report: MetricsReportMessage): void {
    const windows = Array.isArray(report.downWindows) ? report.downWindows : [];
    this.#downtime.report(String(worker.pid), typeof report.at === 'number' ? report.at : Date.now(), windows);
  }

  /** A worker exited and its channel is read to its end: its last report joins the retired total. */
  retire(worker: WorkerProcess, exit: WorkerExit): void {
    this.#downtime.retire(String(worker.pid));
    const report = worker.lastMetrics;
    if (report !== undefined) this.#retired.merge(report.snapshot);
    const last = worker.lastCounts;
    if (last !== undefined) this.#retiredCounts = sumCounts([this.#retiredCounts, { ...last, active: 0, reading: 0, writing: 0, waiting: 0 }]);
    const reason = worker.stopRequested && exit.signal === null ? 'stopped' : 'died';
    this.#own.add(F.workerExits, labelText([['reason', reason]]));
  }

  /** Stops listening to the diagnostics channels. */
  close(): void {
    for (const [name, listener] of this.#subscriptions) unsubscribe(name, listener);
  }

  /** One scrape: every worker asked within `timeoutMs`, then everything summed and written in `format`. */
  async scrape(view: () => MasterView, format: ExpositionFormat, timeoutMs = SCRAPE_WORKER_TIMEOUT_MS): Promise<string> {
    const asked = [...view().workers].filter((worker) => worker.state !== 'exited');
    const answers = new Map(await Promise.all(asked.map(async (worker) => [worker, await worker.metrics(timeoutMs)] as const)));
    // From here on synchronous: a worker exiting now is either still living or already retired.
    const now = view();
    const gauges: GaugeSample[] = [];
    for (const [worker, answer] of answers) {
      if (answer === undefined && worker.state !== 'exited') this.#own.add(F.scrapeWorkerTimeouts, '');
    }
    const living = [...now.workers];
    const snapshots: MetricsSnapshot[] = [this.#own.snapshot(), this.#retired.snapshot()];
    const counts: StubStatusCounts[] = [this.#retiredCounts];
    const connections = { active: 0, reading: 0, writing: 0, waiting: 0 };
    const upstreamAnswers: WorkerUpstreamAnswer[] = [];
    const states = new Map<string, number>();
    for (const worker of living) {
      const last = worker.lastMetrics;
      if (last !== undefined) snapshots.push(last.snapshot);
      if (worker.lastCounts !== undefined) counts.push({ ...worker.lastCounts, active: 0, reading: 0, writing: 0, waiting: 0 });
      if (worker.state === 'exited') continue;
      states.set(worker.state, (states.get(worker.state) ?? 0) + 1);
      const pid = String(worker.pid);
      const answer = answers.get(worker);
      const workerLabels = labelText([['pid', pid], ['generation', String(worker.generation)]]);
      gauges.push([F.workerUp.name, workerLabels, answer === undefined ? 0 : 1]);
      // How old the counts summed for it are: about 0 when it answered, growing while it does not.
      const reportedAt = worker.lastMetricsAt;
      if (reportedAt !== undefined) gauges.push([F.workerReportAge.name, workerLabels, Math.max(0, Date.now() - reportedAt) / 1000]);
      if (answer === undefined) continue;
      for (const key of ['active', 'reading', 'writing', 'waiting'] as const) connections[key] += answer.counts[key];
      gauges.push([F.residentMemory.name, labelText([['process', 'worker'], ['pid', pid]]), answer.rssBytes]);
      gauges.push([F.eventLoopLag.name, labelText([['pid', pid]]), answer.loopLagSeconds]);
      gauges.push([F.eventLoopLagMax.name, labelText([['pid', pid]]), answer.loopLagMaxSeconds]);
      if (worker.generation === now.generation && worker.state === 'ready') upstreamAnswers.push({ pid: worker.pid, generation: worker.generation, answered: true, states: expandPeerStates(Array.isArray(answer.upstreams) ? answer.upstreams : []) });
    }
    const total = sumCounts(counts);
    gauges.push(
      [F.connectionsActive.name, '', connections.active],
      [F.connectionsReading.name, '', connections.reading],
      [F.connectionsWriting.name, '', connections.writing],
      [F.connectionsIdle.name, '', connections.waiting],
    );
    const downtime = this.#upstreamGauges(gauges, now, upstreamAnswers, timeoutMs);
    this.#certificateGauges(gauges, now);
    gauges.push(
      [F.configLastReloadSuccessful.name, '', this.#lastReloadOk ? 1 : 0],
      [F.configLastReloadSuccessTimestamp.name, '', this.#lastReloadAt / 1000],
      [F.configGeneration.name, '', now.generation],
      [F.residentMemory.name, labelText([['process', 'master'], ['pid', String(process.pid)]]), process.memoryUsage.rss()],
      [F.startTime.name, '', now.startedAt.getTime() / 1000],
    );
    for (const state of ['starting', 'ready', 'draining', 'terminating'] as const) gauges.push([F.workers.name, labelText([['state', state]]), states.get(state) ?? 0]);
    const summed = sumSnapshots([...snapshots, { counters: [[F.connectionsAccepted.name, '', total.accepted], [F.connectionsHandled.name, '', total.handled]], histograms: [] }]);
    // Only the master counts downtime: its series join the sum as they are, one per peer.
    const snapshot = { counters: [...summed.counters, ...downtime], histograms: summed.histograms };
    return renderExposition({ snapshot, gauges }, format);
  }

  /** The peers' gauges; returns their downtime counters (every peer reported, and every peer ever down). */
  #upstreamGauges(gauges: GaugeSample[], view: MasterView, answers: readonly WorkerUpstreamAnswer[], timeoutMs: number): CounterSample[] {
    const report = buildUpstreamsReport(view.generation, timeoutMs, answers, view.health);
    this.#healthDowntime(view.health);
    const downtime = new Map<string, number>();
    for (const { group, peer, seconds } of this.#downtime.totals()) downtime.set(labelText([['upstream', group], ['peer', peer]]), seconds);
    const counters: CounterSample[] = [];
    for (const group of report.upstreams) {
      for (const peer of group.peers) {
        const labels = labelText([['upstream', group.name], ['peer', peer.peer]]);
        for (const state of PEER_STATES) gauges.push([F.upstreamPeerState.name, `${labels},state="${state}"`, peer.state === state ? 1 : 0]);
        gauges.push([F.upstreamPeerActive.name, labels, peer.active]);
        if (peer.health !== null) gauges.push([F.upstreamPeerHealthCheckUp.name, labels, peer.health.state === 'up' ? 1 : 0]);
        counters.push([F.upstreamPeerDowntime.name, labels, downtime.get(labels) ?? 0]);
        downtime.delete(labels);
      }
    }
    // Peers down once and no longer reported (a reload removed them, or no worker answered) keep their series.
    for (const [labels, seconds] of downtime) counters.push([F.upstreamPeerDowntime.name, labels, seconds]);
    return counters;
  }

  /**
   * The health checks' view at a scrape, in case a change was not published: a peer first
   * `checking` under `mandatory`, or a group whose checker stopped with a reload.
   */
  #healthDowntime(health: readonly CheckedPeerState[]): void {
    const down = new Set<string>();
    for (const check of health) {
      if (check.state === 'up') continue;
      down.add(`${check.group}\0${check.peer}`);
      if (!this.#downtime.healthIsDown(check.group, check.peer)) this.#downtime.healthDown(check.group, check.peer);
    }
    for (const key of this.#downtime.healthDownPeers()) {
      if (down.has(key)) continue;
      const [group = '', peer = ''] = key.split('\0');
      this.#downtime.healthUp(group, peer);
    }
  }

  #healthChange(message: HealthChangeMessage): void {
    if (message.state === 'up') this.#downtime.healthUp(message.group, message.peer);
    else this.#downtime.healthDown(message.group, message.peer);
  }

  #certificateGauges(gauges: GaugeSample[], view: MasterView): void {
    const acme = new Set(view.acme.map((state) => state.name));
    for (const stored of view.certificates) {
      const expiry = this.#expiryOf(stored.cert);
      if (expiry !== undefined) gauges.push([F.certificateExpiry.name, labelText([['name', stored.name], ['source', acme.has(stored.name) ? 'acme' : 'store']]), expiry]);
    }
    for (const state of view.acme) {
      const labels = labelText([['name', state.name], ['issuer', state.issuer]]);
      if (state.nextRenewal !== null) gauges.push([F.acmeNextRenewal.name, labels, Math.floor(Date.parse(state.nextRenewal) / 1000)]);
      gauges.push([F.acmeOrdering.name, labels, state.ordering ? 1 : 0]);
      gauges.push([F.acmeFailures.name, labels, state.failures]);
      if (state.lastError !== null) gauges.push([F.acmeLastFailure.name, labels, Math.floor(Date.parse(state.lastError.at) / 1000)]);
    }
    for (const path of certificateFiles(view.config)) {
      let pem: string;
      try {
        pem = readFileSync(path, 'latin1');
      } catch {
        continue;
      }
      const expiry = this.#expiryOf(pem);
      if (expiry !== undefined) gauges.push([F.certificateExpiry.name, labelText([['name', path], ['source', 'file']]), expiry]);
    }
  }

  #expiryOf(pem: string): number | undefined {
    let expiry = this.#expiry.get(pem);
    if (expiry !== undefined) return expiry;
    try {
      expiry = Math.floor(Date.parse(new X509Certificate(pem).validTo) / 1000);
    } catch {
      return undefined;
    }
    if (Number.isNaN(expiry)) return undefined;
    // A bounded cache: certificates rotated away are forgotten with the rest.
    if (this.#expiry.size >= 1024) this.#expiry.clear();
    this.#expiry.set(pem, expiry);
    return expiry;
  }

  #reload(message: ReloadMessage): void {
    this.#own.add(F.reloads, labelText([['result', message.ok ? 'success' : 'failure']]));
    this.#lastReloadOk = message.ok;
    if (message.ok) this.#lastReloadAt = Date.now();
  }

  #probe(message: HealthProbeMessage): void {
    if (!message.ok) this.#own.add(F.upstreamPeerHealthCheckFailures, labelText([['upstream', message.group], ['peer', message.peer]]));
  }
}

/** The `ssl_certificate` files of the http and stream servers that name no variables. */
function certificateFiles(config: HitlessConfig): string[] {
  const paths = new Set<string>();
  for (const block of ['http', 'stream']) {
    for (const server of config.main.child(block)?.blocks ?? []) {
      if (server.name !== 'server') continue;
      let files: readonly TlsFile[];
      try {
        files = server.get('ssl_certificate');
      } catch {
        continue;
      }
      for (const file of files) if (file.template === undefined) paths.add(file.path);
    }
  }
  return [...paths];
}
