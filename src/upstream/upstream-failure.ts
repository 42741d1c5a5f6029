/** How an exchange with an upstream peer failed, in the words of `proxy_next_upstream`. */

/** Where in the exchange a failure happened, which decides whether nginx would try the next peer. */
export type UpstreamFailurePhase = 'send' | 'header' | 'body';

/** A failure talking to an upstream, in nginx's log words, with what `proxy_next_upstream` needs. */
export class UpstreamFailure extends Error {
  readonly phase: UpstreamFailurePhase;
  /** `error`, `timeout` or `invalid_header`, as `proxy_next_upstream` names them. */
  readonly kind: 'error' | 'timeout' | 'invalid_header';
  /** True when no byte of the response had arrived. */
  readonly beforeResponse: boolean;

  constructor(message: string, phase: UpstreamFailurePhase, kind: 'error' | 'timeout' | 'invalid_header', beforeResponse: boolean, options?: ErrorOptions) {
    super(message, options);
    this.name = 'UpstreamFailure';
    this.phase = phase;
    this.kind = kind;
    this.beforeResponse = beforeResponse;
  }
}
