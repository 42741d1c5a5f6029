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
import type { Peer } from './peer.js';
import type { DownWindow } from './peer-downtime.js';

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
  /** Peers max_fails took out whose window was not reported over yet, with their group's name (see {@link outWindows}). */
  readonly outPeers = new Map<Peer, string>();
  /** worker_connections, which upstream connections count against as client ones do. */
  readonly connections: ConnectionBudget;

  constructor(connections: ConnectionBudget = new ConnectionBudget()) {
    this.connections = connections;
  }

  /**
   * The out windows of max_fails for a metrics report: every peer out now, or out since the last
   * report. A window over by `now` is reported this once and forgotten.
   */
  outWindows(now: number): DownWindow[] {
    const windows: DownWindow[] = [];
    for (const [peer, group] of this.outPeers) {
      windows.push([group, peer.name, peer.outSince, peer.outUntil]);
      if (peer.outUntil <= now) this.outPeers.delete(peer);
    }
    return windows;
  }
}
