/**
 * Active health checks, one checker per upstream group for the whole server. The master runs them
 * (a worker would check once per worker, and disagree with its siblings); each peer is probed
 * every `interval` with `GET uri`, and after `fails` failed probes in a row it is unhealthy until
 * `passes` probes in a row succeed. Every change is logged and handed to `onChange` as the whole
 * table, which the master sends to every worker (process/ipc.ts `upstream-health`).
 *
 * A reload keeps a group's checker, and with it its peers' states, when the group's servers and
 * its check are unchanged; other checkers stop and new ones start.
 */
import { request, type IncomingMessage } from 'node:http';
import { connect } from 'node:net';
import type { HitlessConfig } from '../../conf/model.js';
import type { ConfBlockView } from '../../conf/registry.js';
import { channels } from '../../core/diagnostics.js';
import { errnoText } from '../../core/errno.js';
import type { ErrorLog } from '../../core/log.js';
import { blocksOf } from '../../conf/values.js';
import { resolveServerAddress } from '../group.js';
import { peerName, type PeerAddress } from '../peer.js';
import type { UpstreamServer } from '../upstream-module.js';
import { streamHealthKey, type HealthSnapshot, type PeerHealthState } from './health-table.js';
import { checkedGroupOf, responseMatches, type HealthCheckSetting, type MatchRule } from './health-check-module.js';

/** The most of a response body a `match` block's `body` test reads. */
const MAX_BODY_BYTES = 256 * 1024;

/** One peer's state under its group's check. */
export interface CheckedPeerState {
  readonly group: string;
  readonly peer: string;
  readonly state: PeerHealthState;
  /** Failed probes in a row. */
  readonly fails: number;
  /** Passed probes in a row. */
  readonly passes: number;
  /** Probes made so far. */
  readonly checks: number;
  /** Why the last failed probe failed, if any did. */
  readonly lastError: string | undefined;
}

/** What a group's checker is built from. */
interface GroupCheck {
  /** The group's name, for messages. */
  readonly group: string;
  /** Its key in the health table: the name, or `stream:name` for a group of the `stream` block. */
  readonly key: string;
  /** `http`: `GET uri`, judged by status or `match`; `tcp`: a connection that opens (stream groups). */
  readonly kind: 'http' | 'tcp';
  readonly peers: readonly { readonly name: string; readonly address: PeerAddress }[];
  readonly setting: HealthCheckSetting;
  readonly match: MatchRule | undefined;
  readonly connectTimeoutMs: number;
  readonly readTimeoutMs: number;
  /** Equal for two configurations when the checker can be kept across the reload. */
  readonly identity: string;
}

class PeerCheck {
  state: PeerHealthState;
  fails = 0;
  passes = 0;
  checks = 0;
  lastError: string | undefined;
  timer: NodeJS.Timeout | undefined;
  probing = false;

  constructor(readonly name: string, readonly address: PeerAddress, mandatory: boolean) {
    this.state = mandatory ? 'checking' : 'up';
  }
}

/** A failed probe: the phase, in nginx's words, and the reason. */
interface ProbeFailure {
  readonly phase: string;
  readonly reason: string;
}

class GroupChecker {
  readonly check: GroupCheck;
  readonly peers: PeerCheck[];
  readonly #onChange: () => void;
  readonly #log: () => ErrorLog;
  #stopped = false;

  constructor(check: GroupCheck, onChange: () => void, log: () => ErrorLog) {
    this.check = check;
    this.peers = check.peers.map((peer) => new PeerCheck(peer.name, peer.address, check.setting.mandatory));
    this.#onChange = onChange;
    this.#log = log;
  }

  start(): void {
    for (const peer of this.peers) this.#probe(peer);
  }

  stop(): void {
    this.#stopped = true;
    for (const peer of this.peers) if (peer.timer !== undefined) clearTimeout(peer.timer);
  }

  #schedule(peer: PeerCheck): void {
    if (this.#stopped) return;
    const { intervalMs, jitterMs } = this.check.setting;
    peer.timer = setTimeout(() => this.#probe(peer), intervalMs + (jitterMs > 0 ? Math.floor(Math.random() * jitterMs) : 0));
    peer.timer.unref();
  }

  #probe(peer: PeerCheck): void {
    if (this.#stopped || peer.probing) return;
    peer.probing = true;
    probe(peer.address, this.check).then((failure) => {
      peer.probing = false;
      if (this.#stopped) return;
      this.#record(peer, failure);
      this.#schedule(peer);
    }, () => undefined);
  }

  #record(peer: PeerCheck, failure: ProbeFailure | undefined): void {
    const { setting, group } = this.check;
    peer.checks++;
    channels.healthProbe.publishLazy(() => ({ group, peer: peer.name, ok: failure === undefined }));
    const where = `${this.check.kind === 'tcp' ? 'tcp ' : ''}health check "${setting.match ?? ''}" of peer ${peer.name} in upstream "${group}"`;
    if (failure !== undefined) {
      peer.lastError = failure.reason;
      peer.passes = 0;
      peer.fails++;
      if (peer.state !== 'unhealthy' && (peer.fails >= setting.fails || peer.state === 'checking')) {
        peer.state = 'unhealthy';
        channels.healthChange.publishLazy(() => ({ group, peer: peer.name, state: 'unhealthy' }));
        this.#log().warn(`peer is unhealthy while ${failure.phase}, ${where}${failure.reason === '' ? '' : `: ${failure.reason}`}`);
        this.#onChange();
      }
      return;
    }
    peer.fails = 0;
    peer.passes++;
    if (peer.state !== 'up' && (peer.passes >= setting.passes || peer.state === 'checking')) {
      peer.state = 'up';
      channels.healthChange.publishLazy(() => ({ group, peer: peer.name, state: 'up' }));
      this.#log().notice(`peer is healthy while ${this.check.kind === 'tcp' ? 'connecting to upstream' : 'checking status code'}, ${where}`);
      this.#onChange();
    }
  }
}

/** Opens one connection and closes it; resolves with why it failed, or undefined when it opened. */
function probeTcp(address: PeerAddress, check: GroupCheck): Promise<ProbeFailure | undefined> {
  const phase = 'connecting to upstream';
  return new Promise((resolve) => {
    const socket = address.kind === 'unix' ? connect(address.path) : connect({ host: address.host, port: check.setting.port === 0 ? address.port : check.setting.port });
    const done = (failure: ProbeFailure | undefined): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(failure);
    };
    const timer = setTimeout(() => done({ phase, reason: 'upstream timed out (110: Connection timed out)' }), check.connectTimeoutMs);
    socket.once('connect', () => done(undefined));
    socket.once('error', (err: NodeJS.ErrnoException) => done({ phase, reason: describeError(err) }));
  });
}

/** Sends one check request; resolves with why it failed, or undefined when it passed. */
function probe(address: PeerAddress, check: GroupCheck): Promise<ProbeFailure | undefined> {
  if (check.kind === 'tcp') return probeTcp(address, check);
  const { setting, match } = check;
  return new Promise((resolve) => {
    let settled = false;
    const done = (failure: ProbeFailure | undefined): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      resolve(failure);
    };
    const target = address.kind === 'unix'
      ? { socketPath: address.path }
      : { host: address.host, port: setting.port === 0 ? address.port : setting.port };
    const req = request({ ...target, path: setting.uri, method: 'GET', agent: false, headers: { host: check.group, connection: 'close', 'user-agent': 'hitless health check' } });
    let phase = 'connecting to upstream';
    let timer = setTimeout(() => done({ phase, reason: 'upstream timed out (110: Connection timed out)' }), check.connectTimeoutMs);
    req.once('socket', (socket) => {
      socket.once('connect', () => {
        phase = 'reading response header from upstream';
        clearTimeout(timer);
        timer = setTimeout(() => done({ phase, reason: 'upstream timed out (110: Connection timed out)' }), check.readTimeoutMs);
      });
    });
    req.once('error', (err: NodeJS.ErrnoException) => done({ phase, reason: describeError(err) }));
    req.once('response', (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      let size = 0;
      phase = 'reading response body from upstream';
      res.on('data', (chunk: Buffer) => {
        if (size < MAX_BODY_BYTES) chunks.push(chunk);
        size += chunk.length;
      });
      res.once('error', (err: NodeJS.ErrnoException) => done({ phase, reason: describeError(err) }));
      res.once('end', () => {
        const status = res.statusCode ?? 0;
        const body = Buffer.concat(chunks).subarray(0, MAX_BODY_BYTES).toString('latin1');
        if (responseMatches(match, status, res.headers, body)) done(undefined);
        else done({ phase: match === undefined ? 'checking status code' : 'checking response', reason: `status ${status}` });
      });
    });
    req.end();
  });
}

/** nginx's words for a failed probe: `connect() failed (111: Connection refused)`, `recv() failed (104: ...)`. */
function describeError(err: NodeJS.ErrnoException): string {
  if (err.code === 'ECONNRESET') return `recv() failed (${errnoText(err)})`;
  if (err.code === 'ECONNREFUSED' || err.code === 'ENOENT' || err.code === 'EHOSTUNREACH' || err.code === 'ENETUNREACH' || err.code === 'EACCES') return `connect() failed (${errnoText(err)})`;
  return err.message;
}

/**
 * The checks a configuration asks for: one per group, from the first location (or, in `stream`,
 * the first server) that checks it.
 */
export function groupChecksOf(config: HitlessConfig): GroupCheck[] {
  const checks = new Map<string, GroupCheck>();
  const http = config.main.child('http');
  if (http !== undefined) {
    const upstreams = upstreamsOf(http);
    for (const location of blocksOf(http)) {
      if (location.name !== 'location' || !location.isSet('health_check')) continue;
      const group = checkedGroupOf(location, http);
      if (checks.has(group)) continue;
      const setting = location.get('health_check') as HealthCheckSetting;
      const match = setting.match === undefined ? undefined : http.get('match').get(setting.match);
      const servers = (upstreams.get(group) as ConfBlockView).get('server');
      checks.set(group, groupCheck('http', group, servers, setting, match, location));
    }
  }
  const stream = config.main.child('stream');
  if (stream !== undefined) {
    const upstreams = upstreamsOf(stream);
    for (const server of stream.blocks) {
      if (server.name !== 'server' || !server.isSet('health_check')) continue;
      const group = checkedGroupOf(server, stream);
      const key = streamHealthKey(group);
      if (checks.has(key)) continue;
      const servers = (upstreams.get(group) as ConfBlockView).get('server');
      checks.set(key, groupCheck('tcp', group, servers, server.get('health_check') as HealthCheckSetting, undefined, server));
    }
  }
  return [...checks.values()];
}

function upstreamsOf(block: ConfBlockView): Map<string, ConfBlockView> {
  return new Map(block.blocks.filter((child) => child.name === 'upstream').map((child) => [child.args[0] ?? '', child]));
}

function groupCheck(kind: GroupCheck['kind'], group: string, servers: readonly UpstreamServer[], setting: HealthCheckSetting, match: MatchRule | undefined, block: ConfBlockView): GroupCheck {
  // A `down` server is not checked: it gets no requests whatever its health.
  // A name resolved at run time is the workers' (health-check-module.ts warns at -t).
  const peers = servers.filter((server) => !server.down && !server.resolve).flatMap((server) => resolveServerAddress(server.address).map((address) => ({ name: peerName(address), address })));
  const connectTimeoutMs = block.get('proxy_connect_timeout');
  const readTimeoutMs = kind === 'http' ? block.get('proxy_read_timeout') : 0;
  const key = kind === 'http' ? group : streamHealthKey(group);
  const { file: _file, line: _line, ...params } = setting;
  const identity = JSON.stringify({ kind, group, peers: peers.map((peer) => peer.name), params, match: match ?? null, connectTimeoutMs, readTimeoutMs });
  return { group, key, kind, peers, setting, match, connectTimeoutMs, readTimeoutMs, identity };
}

/** Options of {@link ActiveHealthChecks}. */
export interface ActiveHealthChecksOptions {
  /** The error log to write state changes to (a getter: the master's log changes on reload). */
  readonly log: () => ErrorLog;
  /** Called with the whole table after every change. */
  readonly onChange: (snapshot: HealthSnapshot) => void;
}

/** Every group's checker, for one process (the master). */
export class ActiveHealthChecks {
  readonly #options: ActiveHealthChecksOptions;
  #checkers = new Map<string, GroupChecker>();

  constructor(options: ActiveHealthChecksOptions) {
    this.#options = options;
  }

  /** Starts, keeps and stops checkers so that they are the ones `config` asks for. */
  configure(config: HitlessConfig): void {
    const next = new Map<string, GroupChecker>();
    const started: GroupChecker[] = [];
    for (const check of groupChecksOf(config)) {
      const current = this.#checkers.get(check.key);
      if (current !== undefined && current.check.identity === check.identity) {
        next.set(check.key, current);
        continue;
      }
      const checker = new GroupChecker(check, () => this.#changed(), this.#options.log);
      next.set(check.key, checker);
      started.push(checker);
    }
    for (const [group, checker] of this.#checkers) if (next.get(group) !== checker) checker.stop();
    this.#checkers = next;
    for (const checker of started) checker.start();
    this.#changed();
  }

  /** The table every worker gets: each checked group's peers and their states. */
  snapshot(): HealthSnapshot {
    const snapshot: Record<string, Record<string, PeerHealthState>> = {};
    for (const [group, checker] of this.#checkers) {
      snapshot[group] = Object.fromEntries(checker.peers.map((peer) => [peer.name, peer.state]));
    }
    return snapshot;
  }

  /** Every checked peer's state and counters, for the admin API. */
  states(): CheckedPeerState[] {
    return [...this.#checkers.values()].flatMap((checker) =>
      checker.peers.map((peer) => ({ group: checker.check.key, peer: peer.name, state: peer.state, fails: peer.fails, passes: peer.passes, checks: peer.checks, lastError: peer.lastError })),
    );
  }

  /** Stops every checker. */
  close(): void {
    for (const checker of this.#checkers.values()) checker.stop();
    this.#checkers.clear();
  }

  #changed(): void {
    this.#options.onChange(this.snapshot());
  }
}
