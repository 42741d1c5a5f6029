/**
 * Every metric family hitless exposes on `GET /metrics` and `hitless_metrics`, in one table as
 * the diagnostics channels are in core/diagnostics.ts: name, type, help text and, for a histogram,
 * its bucket bounds. Names follow Prometheus's conventions (base units, `_total` on counters),
 * labels HAProxy's (`code="2xx"`) and Caddy's (`server`, `upstream`); docs/observability.md lists
 * them with their labels.
 */

/** What a family counts. A counter's name here has no `_total`: the samples add it. */
export type MetricType = 'counter' | 'gauge' | 'histogram';

/** One family of the exposition. */
export interface MetricFamily {
  readonly name: string;
  readonly type: MetricType;
  readonly help: string;
  /** A histogram's upper bounds, ascending, without +Inf. */
  readonly buckets?: readonly number[];
}

/** Seconds, from 5 ms to 10 s: Prometheus's client defaults, which Caddy's request histograms use too. */
const SECONDS_BUCKETS: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

function family(name: string, type: MetricType, help: string, buckets?: readonly number[]): MetricFamily {
  return buckets === undefined ? { name, type, help } : { name, type, help, buckets };
}

/** The families, in the order they are written. */
export const METRIC_FAMILIES = {
  httpRequests: family('hitless_http_requests', 'counter', 'HTTP requests finished, by server_name and status class.'),
  httpRequestDuration: family('hitless_http_request_duration_seconds', 'histogram', 'Time from a request\'s first byte to its last byte sent ($request_time), by server_name.', SECONDS_BUCKETS),
  httpRequestBytes: family('hitless_http_request_bytes', 'counter', 'Bytes received in requests ($request_length), by server_name.'),
  httpResponseBytes: family('hitless_http_response_bytes', 'counter', 'Bytes sent in responses ($bytes_sent), by server_name.'),
  streamSessions: family('hitless_stream_sessions', 'counter', 'Stream (L4) sessions finished, by protocol.'),
  connectionsAccepted: family('hitless_connections_accepted', 'counter', 'Client connections accepted (stub_status "accepts").'),
  connectionsHandled: family('hitless_connections_handled', 'counter', 'Client connections handled (stub_status "handled").'),
  connectionsActive: family('hitless_connections_active', 'gauge', 'Client connections open (stub_status "Active connections"), summed over the workers that answered.'),
  connectionsReading: family('hitless_connections_reading', 'gauge', 'Connections reading a request head (stub_status "Reading").'),
  connectionsWriting: family('hitless_connections_writing', 'gauge', 'Connections writing a response (stub_status "Writing").'),
  connectionsIdle: family('hitless_connections_idle', 'gauge', 'Keep-alive connections waiting for a request (stub_status "Waiting").'),
  tlsHandshakes: family('hitless_tls_handshakes', 'counter', 'Client TLS handshakes completed, by module (http, stream).'),
  tlsHandshakeFailures: family('hitless_tls_handshake_failures', 'counter', 'Client TLS handshakes that failed, by module (http, stream) and reason.'),
  tlsSessionResumptions: family('hitless_tls_session_resumptions', 'counter', 'Client TLS handshakes that resumed a session (ticket or cache), by module (http, stream).'),
  upstreamPeerRequests: family('hitless_upstream_peer_requests', 'counter', 'Attempts on an upstream peer, by upstream and peer.'),
  upstreamPeerFailures: family('hitless_upstream_peer_failures', 'counter', 'Attempts on an upstream peer that counted as failed (max_fails), by upstream and peer.'),
  upstreamPeerResponseTime: family('hitless_upstream_peer_response_time_seconds', 'histogram', 'Time from an attempt\'s start to the upstream response head ($upstream_header_time), by upstream and peer.', SECONDS_BUCKETS),
  upstreamPeerState: family('hitless_upstream_peer_state', 'gauge', '1 for the state a peer is in (up, draining, full, unavailable, checking, unhealthy, down), as GET /v1/upstreams merges it.'),
  upstreamPeerActive: family('hitless_upstream_peer_active', 'gauge', 'Requests and connections in progress to a peer, summed over the current workers that answered.'),
  upstreamPeerHealthCheckUp: family('hitless_upstream_peer_health_check_up', 'gauge', '1 when the active health check finds the peer up, 0 when unhealthy or still checking.'),
  upstreamPeerDowntime: family('hitless_upstream_peer_downtime_seconds', 'counter', 'Seconds the peer was down (unavailable by max_fails, unhealthy or checking), by upstream and peer, as NGINX Plus counts downtime.'),
  upstreamPeerHealthCheckFailures: family('hitless_upstream_peer_health_check_failures', 'counter', 'Active health check probes that failed, by upstream and peer.'),
  certificateExpiry: family('hitless_certificate_expiry_timestamp_seconds', 'gauge', 'When a certificate\'s leaf expires (notAfter), Unix seconds; source is "acme" (an acme_certificate name), "store" or "file".'),
  acmeNextRenewal: family('hitless_acme_next_renewal_timestamp_seconds', 'gauge', 'When the next order (or renewal information check) of an ACME name is planned, Unix seconds, by name and issuer; absent while an order runs.'),
  acmeOrdering: family('hitless_acme_ordering', 'gauge', '1 while an order of the ACME name runs, by name and issuer.'),
  acmeFailures: family('hitless_acme_renewal_failures', 'gauge', 'Orders of the ACME name that failed in a row since its last success (0 when the last one succeeded), by name and issuer.'),
  acmeLastFailure: family('hitless_acme_last_failure_timestamp_seconds', 'gauge', 'When the last failed order of the ACME name ended, Unix seconds, by name and issuer.'),
  reloads: family('hitless_reloads', 'counter', 'Configuration reloads attempted, by result (success, failure).'),
  configLastReloadSuccessful: family('hitless_config_last_reload_successful', 'gauge', '1 when the last reload succeeded (or none was made), 0 when it failed.'),
  configLastReloadSuccessTimestamp: family('hitless_config_last_reload_success_timestamp_seconds', 'gauge', 'When the configuration serving now was applied, Unix seconds.'),
  configGeneration: family('hitless_config_generation', 'gauge', 'The configuration generation serving: 1 at start, one more per successful reload.'),
  workers: family('hitless_workers', 'gauge', 'Worker processes, by state (starting, ready, draining, terminating).'),
  workerUp: family('hitless_worker_up', 'gauge', '1 when the worker answered this scrape in time, 0 when it did not (its counters are then its last report).'),
  workerReportAge: family('hitless_worker_last_report_age_seconds', 'gauge', 'Seconds since the worker\'s last metrics report arrived: what its counters in this scrape are as old as, by pid and generation.'),
  scrapeWorkerTimeouts: family('hitless_scrape_worker_timeouts', 'counter', 'Workers that did not answer a scrape in time.'),
  workerExits: family('hitless_worker_exits', 'counter', 'Worker processes that exited, by reason (stopped: the master asked; died: a crash or a signal).'),
  residentMemory: family('hitless_process_resident_memory_bytes', 'gauge', 'Resident set size of the master and of each worker that answered, by process and pid.'),
  eventLoopLag: family('hitless_worker_event_loop_lag_seconds', 'gauge', 'The 99th percentile of a worker\'s event loop delay over its last 10 s window, by pid.'),
  eventLoopLagMax: family('hitless_worker_event_loop_lag_max_seconds', 'gauge', 'The largest event loop delay of a worker over its last 10 s window, by pid.'),
  startTime: family('hitless_process_start_time_seconds', 'gauge', 'When the master started, Unix seconds.'),
} as const;

/** A family's key in {@link METRIC_FAMILIES}. */
export type FamilyKey = keyof typeof METRIC_FAMILIES;
