/**
 * The upstream state one server holds while it runs, apart from any generation: what the active
 * health checks decided (sent by the master) and the peers of `zone` groups whose failure counts
 * the master shares, and the sessions `sticky learn` shares through it. A worker owns one; every generation's groups read and report through it.
 */
import { ConnectionBudget } from '../core/connection-budget.js';
import { UpstreamHealthTable } from './health/health-table.js';
import { SharedPeers } from './shared-peers.js';
import { StickySessions } from './sticky-sessions.js';
import { ResolvedAnswers } from './resolve.js';

/** The upstream state of one running server (one per worker process). */
export class UpstreamRuntime {
  /** The active health checks' table, as the master last sent it. */
  readonly health = new UpstreamHealthTable();
  /** The zone-shared peers of the live generations, and where their outcomes are reported. */
  readonly sharedPeers = new SharedPeers();
  /** The sessions of `sticky learn` zones, as this worker and the master learned them. */
  readonly stickySessions = new StickySessions();
  /** The last answer of every `server ... resolve` line, so that a reload starts from it (resolve.ts). */
  readonly resolved = new ResolvedAnswers();
  /** worker_connections, which upstream connections count against as client ones do. */
  readonly connections: ConnectionBudget;

  constructor(connections: ConnectionBudget = new ConnectionBudget()) {
    this.connections = connections;
  }
}
