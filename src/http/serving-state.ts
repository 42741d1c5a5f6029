/**
 * What a server keeps while it runs, apart from any configuration generation: shared by every
 * generation of one worker (or of one program serving from code), and passed to each as it is
 * built, never kept in a module. A worker fills it from the master (process/worker.ts).
 */
import { TlsRuntime } from '../tls/tls-runtime.js';
import { UpstreamRuntime } from '../upstream/upstream-runtime.js';
import { LocalZoneClient, type ZoneClient } from './limits.js';
import type { MetricsSource } from './metrics-module.js';

/** The running state of one server: TLS (store, ticket key, shared sessions), the limit zones, the upstreams' shared state. */
export interface ServingState {
  readonly tls: TlsRuntime;
  /** Where `limit_req` and `limit_conn` zones live: the master's, over IPC, in a worker. */
  readonly zones: ZoneClient;
  /** The active health checks' table and the zone-shared peers. */
  readonly upstreams: UpstreamRuntime;
  /** What `hitless_metrics` answers: the master's sum over every worker, in a worker. Default: this process's connection counters. */
  readonly metrics?: MetricsSource;
}

/** A state of its own for a server without a master: its zones and sessions live in this process. */
export function localServingState(): ServingState {
  return { tls: new TlsRuntime(), zones: new LocalZoneClient(), upstreams: new UpstreamRuntime() };
}
