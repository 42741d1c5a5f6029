/**
 * `proxy_upload_rate` and `proxy_download_rate` with `proxy_buffer_size`, as
 * `ngx_stream_proxy_process()` applies them to one direction of a session: the bytes read from a
 * side may not exceed the rate times the whole seconds since the session was proxied plus one;
 * when none are allowed, reading waits until one is; after a read of n bytes, the next waits
 * n / rate seconds. A TCP read takes at most what is allowed and at most proxy_buffer_size; a
 * datagram is never split. Node reads a socket in its own chunks, so a chunk read past the limit
 * is held here, in the worker, and passed on as nginx would have read it.
 */
import { parseSize } from '../core/parse.js';
import type { CompiledTemplate, Template } from '../core/variables.js';
import type { SizeValue } from '../http/limit-rate.js';

/** A compiled rate: bytes per second for a session, 0 for no limit. */
export type RateOf<S> = (session: S) => number;

/** Compiles a `proxy_*_rate` value (ngx_stream_complex_value_size(): an invalid size logs and means no limit). */
export function compileRate<S>(setting: SizeValue | undefined, compile: (value: Template) => CompiledTemplate<S>, error: (session: S, message: string) => void): RateOf<S> {
  if (setting === undefined) return () => 0;
  if ('size' in setting) {
    const size = setting.size;
    return () => size;
  }
  const text = compile(setting.value);
  return (session) => {
    const value = text(session);
    const size = parseSize(value);
    if (size !== undefined) return size;
    error(session, `invalid size "${value}"`);
    return 0;
  };
}

/** The clock nginx's limit reads: whole seconds (ngx_time()). */
function nowSec(): number {
  return Math.floor(Date.now() / 1000);
}

/** The session start in whole seconds, as `u->start_sec`. */
export function startSecond(): number {
  return nowSec();
}

/**
 * How many bytes one direction may read now: a positive count, or, when none, the negative of
 * the milliseconds to wait (`- limit * 1000 / limit_rate + 1`). Infinity without a rate.
 */
export function allowance(rate: number, startSec: number, received: number): number {
  if (rate === 0) return Infinity;
  const limit = rate * (nowSec() - startSec + 1) - received;
  if (limit > 0) return limit;
  return -(Math.floor((-limit * 1000) / rate) + 1);
}

/** The pause after a read of `n` bytes (`n * 1000 / limit_rate`), 0 without a rate. */
export function delayAfter(rate: number, n: number): number {
  return rate === 0 ? 0 : Math.floor((n * 1000) / rate);
}

/** One direction's sink: where the gate writes, and how it is told that writing may go on. */
export interface GateSink {
  /** Writes a part; `flushed` is called once it has left (Socket.write's callback). */
  write(part: Buffer, flushed: () => void): void;
  /** Bytes written but not yet flushed. */
  pending(): number;
}

/**
 * One TCP direction, paced: chunks the source emitted wait here; the source is paused while any
 * wait, and resumed when all have gone. `onEmpty` is called each time the queue empties (to pass
 * on a FIN that came while bytes waited).
 */
export class RateGate {
  readonly #rate: number;
  readonly #startSec: number;
  readonly #bufferSize: number;
  readonly #sink: GateSink;
  readonly #received: () => number;
  readonly #count: (n: number) => void;
  readonly #pause: () => void;
  readonly #resume: () => void;
  #queue: Buffer[] = [];
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  /** A FIN that came while bytes waited. */
  #onEmpty: (() => void) | undefined;

  constructor(options: {
    rate: number;
    startSec: number;
    bufferSize: number;
    sink: GateSink;
    received: () => number;
    count: (n: number) => void;
    pause: () => void;
    resume: () => void;
  }) {
    this.#rate = options.rate;
    this.#startSec = options.startSec;
    this.#bufferSize = Math.max(1, options.bufferSize);
    this.#sink = options.sink;
    this.#received = options.received;
    this.#count = options.count;
    this.#pause = options.pause;
    this.#resume = options.resume;
  }

  /** True while bytes wait. */
  get busy(): boolean {
    return this.#queue.length > 0;
  }

  /** A chunk the source emitted. */
  push(chunk: Buffer): void {
    if (this.#stopped) return;
    this.#queue.push(chunk);
    this.#pause();
    this.#pump();
  }

  /** Calls `then` once nothing waits (at once when nothing does). */
  whenEmpty(then: () => void): void {
    if (this.#queue.length === 0) then();
    else this.#onEmpty = then;
  }

  /** Drops what waits and any timer: the session is over. */
  stop(): void {
    this.#stopped = true;
    this.#queue = [];
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #pump(): void {
    if (this.#stopped || this.#timer !== undefined) return;
    while (this.#queue.length > 0) {
      if (this.#sink.pending() >= this.#bufferSize) return;
      const allowed = allowance(this.#rate, this.#startSec, this.#received());
      if (allowed < 0) {
        this.#wait(-allowed);
        return;
      }
      const part = this.#take(Math.min(allowed, this.#bufferSize - this.#sink.pending()));
      this.#count(part.length);
      this.#sink.write(part, () => this.#pump());
      const delay = delayAfter(this.#rate, part.length);
      if (delay > 0) {
        this.#wait(delay);
        return;
      }
    }
    const then = this.#onEmpty;
    this.#onEmpty = undefined;
    if (then !== undefined) then();
    else this.#resume();
  }

  #wait(ms: number): void {
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#pump();
    }, ms);
  }

  /** Up to `size` bytes off the front of the queue. */
  #take(size: number): Buffer {
    const first = this.#queue[0] as Buffer;
    if (first.length <= size) {
      this.#queue.shift();
      return first;
    }
    this.#queue[0] = first.subarray(size);
    return first.subarray(0, size);
  }
}

/**
 * One datagram direction, paced: a datagram is never split, so the rate only delays reads. While
 * the direction is delayed, a datagram is not read: nginx drops a client's (the listening socket
 * hands it to a read handler that does not read), and an upstream's waits in its socket, which
 * the caller models with a queue woken by `wake`.
 */
export class DatagramPacer {
  readonly #rate: number;
  readonly #startSec: number;
  readonly #wake: () => void;
  #timer: NodeJS.Timeout | undefined;

  constructor(rate: number, startSec: number, wake: () => void = () => undefined) {
    this.#rate = rate;
    this.#startSec = startSec;
    this.#wake = wake;
  }

  /** Whether a datagram may be read now, given the bytes read so far; when not, `wake` runs once one may. */
  mayRead(received: number): boolean {
    if (this.#rate === 0) return true;
    if (this.#timer !== undefined) return false;
    const allowed = allowance(this.#rate, this.#startSec, received);
    if (allowed > 0) return true;
    this.#arm(-allowed);
    return false;
  }

  /** A datagram of `n` bytes was read: the next waits n / rate. */
  read(n: number): void {
    const delay = delayAfter(this.#rate, n);
    if (delay > 0) this.#arm(delay);
  }

  /** Drops the timer: the session is over. */
  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #arm(ms: number): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#wake();
    }, ms);
  }
}
