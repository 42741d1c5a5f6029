/**
 * `proxy_limit_rate`: an upstream's response read no faster than the rate, as
 * ngx_event_pipe_read_upstream() reads it: the bytes allowed are the rate times the whole seconds
 * since the response began plus one, less what was read; none allowed waits for the next second.
 * nginx reads at most that much from the socket; Node reads what the kernel has, so the bytes
 * past the limit wait here, the upstream socket paused, and go on as the rate allows.
 */

/** Paces one response's bytes from the upstream to the client. */
export class ReadPacer {
  readonly #rate: number;
  readonly #startSec = Math.floor(Date.now() / 1000);
  readonly #deliver: (chunk: Buffer) => void;
  readonly #hold: (held: boolean) => void;
  #read = 0;
  #queue: Buffer[] = [];
  #timer: NodeJS.Timeout | undefined;
  #ended: (() => void) | undefined;

  /** `deliver` passes bytes on; `hold(true)` stops reading from the upstream, `hold(false)` reads again. */
  constructor(rate: number, deliver: (chunk: Buffer) => void, hold: (held: boolean) => void) {
    this.#rate = rate;
    this.#deliver = deliver;
    this.#hold = hold;
  }

  /** Bytes read from the upstream. */
  push(chunk: Buffer): void {
    this.#queue.push(chunk);
    if (this.#timer === undefined) this.#flush();
  }

  /** The upstream's response is complete: `then` runs once every byte has been passed on. */
  end(then: () => void): void {
    if (this.#queue.length === 0 && this.#timer === undefined) then();
    else this.#ended = then;
  }

  /** Drops what waits (the request ended otherwise). */
  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#queue = [];
    this.#ended = undefined;
  }

  #flush(): void {
    while (this.#queue.length > 0) {
      const limit = this.#rate * (Math.floor(Date.now() / 1000) - this.#startSec + 1) - this.#read;
      if (limit <= 0) {
        this.#hold(true);
        this.#timer = setTimeout(() => {
          this.#timer = undefined;
          this.#flush();
        }, this.#untilAllowed());
        return;
      }
      const chunk = this.#queue[0] as Buffer;
      const part = chunk.length <= limit ? chunk : chunk.subarray(0, limit);
      if (part === chunk) this.#queue.shift();
      else this.#queue[0] = chunk.subarray(limit);
      this.#read += part.length;
      this.#deliver(part);
    }
    this.#hold(false);
    const ended = this.#ended;
    this.#ended = undefined;
    ended?.();
  }

  /**
   * The wait until a byte is allowed again. The allowance grows at whole seconds only, so nginx's
   * (-limit / rate + 1) ms timer would fire again and again within the second; this waits for the
   * first second whose allowance exceeds what was read.
   */
  #untilAllowed(): number {
    const second = this.#startSec + Math.floor(this.#read / this.#rate);
    return Math.max(1, second * 1000 - Date.now());
  }
}
