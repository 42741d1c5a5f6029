/**
 * The record of a request's upstream tries, nginx's `r->upstream_states` (one
 * ngx_http_upstream_state_t per peer tried), which the `$upstream_*` list variables print: one
 * entry per try joined with ", ", and " : " between two upstream cycles of one request (an
 * internal redirect, an error_page, that proxied again), as ngx_http_upstream_init_request()
 * separates them with a state without a peer.
 */

/** One try on one peer (ngx_http_upstream_state_t). Times in ms, -1 when the phase was not reached. */
export interface UpstreamState {
  /** `$upstream_addr`: the peer's address; the group's name for "no live upstreams". */
  readonly peer: string;
  /** `$upstream_status`: 0 (printed `-`) until a status is known. */
  status: number;
  connectMs: number;
  headerMs: number;
  responseMs: number;
  /** `$upstream_response_length`: the body bytes received (as framed on the wire). */
  responseLength: number;
  /** `$upstream_bytes_received`: every byte read from the peer for this try. */
  bytesReceived: number;
  /** `$upstream_bytes_sent`: every byte written to the peer for this try. */
  bytesSent: number;
}

/** What holds the states: the HttpRequest (named structurally, for request.ts imports this file). */
interface HasStates {
  upstreamStates: UpstreamStateList | undefined;
}

/** A separator between two upstream cycles of one request. */
const CYCLE = Symbol('upstream cycle');

/** What `r->upstream_states` holds: the tries, and the cycle separators. */
export type UpstreamStateList = (UpstreamState | typeof CYCLE)[];

/** A new upstream cycle begins for the request (ngx_http_upstream_init_request()): later tries print after " : ". */
export function beginUpstreamCycle(request: HasStates): void {
  const states = request.upstreamStates;
  if (states !== undefined && states.length > 0 && states[states.length - 1] !== CYCLE) states.push(CYCLE);
}

/** Starts the state of one try on `peer`. */
export function beginUpstreamState(request: HasStates, peer: string): UpstreamState {
  const state: UpstreamState = { peer, status: 0, connectMs: -1, headerMs: -1, responseMs: -1, responseLength: 0, bytesReceived: 0, bytesSent: 0 };
  (request.upstreamStates ??= []).push(state);
  return state;
}

/** ngx_http_upstream_next(): the status a failed try is shown with, unless the peer gave one. */
export function failUpstreamState(state: UpstreamState | undefined, status: number): void {
  if (state !== undefined && state.status === 0) state.status = status;
}

/** The list a `$upstream_*` variable prints, or undefined (not found) when nothing went upstream. */
export function formatUpstreamStates(states: UpstreamStateList | undefined, value: (state: UpstreamState) => string): string | undefined {
  if (states === undefined || states.length === 0) return undefined;
  let out = '';
  let separator = '';
  for (const state of states) {
    if (state === CYCLE) {
      separator = ' : ';
      continue;
    }
    out += separator + value(state);
    separator = ', ';
  }
  return out;
}

/** A time as the `$upstream_*_time` variables print it: seconds with three decimals, or `-`. */
export function stateSeconds(ms: number): string {
  return ms < 0 ? '-' : (Math.max(0, Math.round(ms)) / 1000).toFixed(3);
}
