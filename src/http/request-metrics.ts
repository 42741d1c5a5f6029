/**
 * The counters a serving process keeps for the metrics (admin/metric-families.ts), built on the
 * diagnostics channels every request, upstream attempt and TLS handshake already publishes
 * (core/diagnostics.ts), as STYLE.md wants metrics built on the same events. A worker sends them
 * to its master (process/worker-metrics.ts), which sums them over every worker, living or gone.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { channels, type RequestFinishMessage, type TlsHandshakeMessage, type UpstreamFinishMessage } from '../core/diagnostics.js';
import { METRIC_FAMILIES as F } from '../admin/metric-families.js';
import { labelText, MetricCounters } from '../admin/metric-counters.js';
import { HttpRequest } from './request.js';
import { requestLengthBytes } from './variables.js';

/** This process's request, upstream and TLS counters, counted from the moment it is made until {@link RequestMetrics.close}. */
export class RequestMetrics {
  readonly counters = new MetricCounters();
  /** `server="name"` by server name: a request's labels are built once per name. */
  readonly #serverLabels = new Map<string, string>();
  /** `server="name",code="2xx"` by server name, the classes 1xx..5xx then `other`: built once each. */
  readonly #codeLabels = new Map<string, string[]>();
  readonly #peerLabels = new Map<string, string>();
  readonly #subscriptions: [string, (message: unknown) => void][];

  constructor() {
    this.#subscriptions = [
      [channels.requestFinish.channel.name as string, (message) => this.#request(message as RequestFinishMessage)],
      [channels.upstreamFinish.channel.name as string, (message) => this.#upstream(message as UpstreamFinishMessage)],
      [channels.tlsHandshake.channel.name as string, (message) => this.#tls(message as TlsHandshakeMessage)],
    ];
    for (const [name, listener] of this.#subscriptions) subscribe(name, listener);
  }

  /** Stops counting. */
  close(): void {
    for (const [name, listener] of this.#subscriptions) unsubscribe(name, listener);
  }

  #request(message: RequestFinishMessage): void {
    if (message.protocol !== 'http') {
      this.counters.add(F.streamSessions, labelText([['protocol', message.protocol]]));
      return;
    }
    const request = message.request;
    if (!(request instanceof HttpRequest)) return;
    const server = this.#serverLabel(request.serverName);
    // HAProxy's classes: 1xx..5xx, and "other" for what is none of them (nginx's 444 and 499 are 4xx).
    const status = request.status;
    this.counters.add(F.httpRequests, this.#codeLabel(request.serverName, server, status >= 100 && status < 600 ? Math.floor(status / 100) - 1 : 5));
    this.counters.observe(F.httpRequestDuration, server, Math.max(0, Date.now() - request.startMs) / 1000);
    this.counters.add(F.httpRequestBytes, server, requestLengthBytes(request));
    this.counters.add(F.httpResponseBytes, server, request.connection.bytesWritten() - request.bytesWrittenAtStart);
  }

  #upstream(message: UpstreamFinishMessage): void {
    const key = `${message.group}\n${message.peer}`;
    let labels = this.#peerLabels.get(key);
    if (labels === undefined) {
      labels = labelText([['upstream', message.group], ['peer', message.peer]]);
      this.#peerLabels.set(key, labels);
    }
    this.counters.add(F.upstreamPeerRequests, labels);
    if (message.outcome === 'failed') this.counters.add(F.upstreamPeerFailures, labels);
    if (message.timings.headerMs >= 0) this.counters.observe(F.upstreamPeerResponseTime, labels, message.timings.headerMs / 1000);
  }

  #tls(message: TlsHandshakeMessage): void {
    const module = `module="${message.module}"`;
    if (!message.ok) {
      this.counters.add(F.tlsHandshakeFailures, `${module},${labelText([['reason', message.reason]])}`);
      return;
    }
    this.counters.add(F.tlsHandshakes, module);
    if (message.resumed) this.counters.add(F.tlsSessionResumptions, module);
  }

  /** The labels of class `index` (0 for 1xx .. 4 for 5xx, 5 for `other`) of server `name`, whose labels are `server`. */
  #codeLabel(name: string, server: string, index: number): string {
    let labels = this.#codeLabels.get(name);
    if (labels === undefined) {
      labels = ['1xx', '2xx', '3xx', '4xx', '5xx', 'other'].map((code) => `${server},code="${code}"`);
      this.#codeLabels.set(name, labels);
    }
    return labels[index] as string;
  }

  #serverLabel(name: string): string {
    let labels = this.#serverLabels.get(name);
    if (labels === undefined) {
      labels = labelText([['server', name]]);
      this.#serverLabels.set(name, labels);
    }
    return labels;
  }
}
