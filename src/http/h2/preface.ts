/**
 * HTTP/2 over cleartext with prior knowledge (RFC 9113 section 3.3) next to HTTP/1.x on one socket,
 * as nginx does for `http2 on` without TLS (ngx_http_wait_request_handler): the first bytes are
 * compared with the client connection preface; a full match hands the socket to HTTP/2, the first
 * byte that differs hands it to HTTP/1. The Upgrade: h2c dance (RFC 7540 section 3.2) is not
 * offered, as nginx does not offer it.
 */
import { ACK, FRAME_HEADER_SIZE, FrameType } from '../../core/h2-frames.js';
import { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { PendingConnection } from '../pending-connection.js';
import { FrameCounter } from './frame-counter.js';

/** The client connection preface (RFC 9113 section 3.4). */
export const CONNECTION_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/**
 * Receives the socket once its protocol is known; the bytes read so far are back in the socket,
 * or, for HTTP/2 from a client that sent the preface alone, in `transport` ({@link FirstFrameShim}),
 * which node:http2 is then to read instead of the socket.
 */
export type ProtocolChoice = (socket: Socket, http2: boolean, transport?: Duplex) => void;

/**
 * A connection whose protocol is not known yet. It is a {@link ProtocolConnection} so that the
 * generation's drain and fast shutdown see it: it closes (for the tracker) once it has handed the
 * socket on, after the connection that takes it over was created.
 */
export class PrefaceSniffer extends PendingConnection {
  readonly socket: Socket;
  readonly #choose: ProtocolChoice;
  readonly #http2Only: boolean;
  readonly #countFrames: boolean;
  #buf: Buffer | undefined;
  readonly #unwatch: () => void;

  /**
   * `timeoutMs` bounds the wait for the first bytes (nginx's client_header_timeout). `http2Only`:
   * the socket speaks HTTP/2 whatever it sends (TLS that negotiated h2): other bytes go to
   * node:http2 too, which refuses them; the sniffer is there for a preface that comes alone.
   * `countFrames`: HTTP/2 goes through a {@link FirstFrameShim} with a {@link FrameCounter}
   * (`$request_length` is in use), at the price of every byte through JavaScript. Default false.
   */
  constructor(socket: Socket, timeoutMs: number, choose: ProtocolChoice, http2Only = false, countFrames = false) {
    super();
    this.socket = socket;
    this.#choose = choose;
    this.#http2Only = http2Only;
    this.#countFrames = countFrames;
    this.#unwatch = this.watchFirstBytes(socket, timeoutMs, (chunk) => this.#read(chunk));
  }

  #read(chunk: Buffer): void {
    const buf = this.#buf === undefined ? chunk : Buffer.concat([this.#buf, chunk]);
    this.#buf = buf;
    const n = Math.min(buf.length, CONNECTION_PREFACE.length);
    if (buf.compare(CONNECTION_PREFACE, 0, n, 0, n) !== 0) this.#handOff(this.#http2Only);
    else if (n === CONNECTION_PREFACE.length) this.#handOff(true, true);
  }

  /** `preface`: the bytes read begin with the whole preface. */
  #handOff(http2: boolean, preface = false): void {
    const socket = this.socket;
    this.#unwatch();
    socket.pause();
    // The preface alone, or with less than a frame header after it: the client may be waiting
    // for the server's SETTINGS before it sends its own, and the shim sees its first frame.
    const after = preface ? this.#buf?.subarray(CONNECTION_PREFACE.length) : undefined;
    if (after !== undefined && (after.length < FRAME_HEADER_SIZE || this.#countFrames)) {
      this.#buf = undefined;
      this.#choose(socket, true, new FirstFrameShim(socket, after, this.#countFrames ? new FrameCounter() : undefined));
      this.finish();
      return;
    }
    // A first frame in the read of the preface that is not SETTINGS (nginx-tests' client with
    // `pure` sends HEADERS at once): the empty SETTINGS goes before it here, as the shim does.
    if (after !== undefined && !isSettings(after)) this.#buf = Buffer.concat([CONNECTION_PREFACE, EMPTY_SETTINGS, after]);
    if (this.#buf !== undefined) socket.unshift(this.#buf);
    this.#buf = undefined;
    this.#choose(socket, http2);
    // node:http2 reads what was unshifted by itself; the HTTP/1 engine waits for 'data' events.
    if (!http2) socket.resume();
    this.finish();
  }

  /** A connection that has sent nothing within the grace of a drain is closed, as an idle HTTP/1 one is. */
  protected graceExpired(): void {
    if (this.#buf === undefined) this.socket.end();
  }
}

/** An empty SETTINGS frame (RFC 9113 section 6.5). */
const EMPTY_SETTINGS = Buffer.from([0, 0, 0, 0x4, 0, 0, 0, 0, 0]);

/** True when `head` (a frame header at least) is a SETTINGS frame that is not an ACK. */
function isSettings(head: Buffer): boolean {
  return head[3] === FrameType.Settings && ((head[4] as number) & ACK) === 0;
}

/** See {@link FirstFrameShim}'s `#outgoing`. */
interface OutgoingWalk {
  held: Buffer;
  payload: number;
  owed: boolean | undefined;
}

/**
 * The transport of an HTTP/2 client that sent the preface and then waited. RFC 9113 section 3.4
 * has the client's SETTINGS follow its preface, and nghttp2 (inside node:http2) ends the session
 * when the first frame is anything else; nginx does not insist (ngx_http_v2_state_preface_end()
 * goes on to read any frame), and clients that wait for the server's SETTINGS and answer with the
 * ACK first (nginx's own test client) work with it. Such a first frame gets an empty SETTINGS put
 * before it, which changes no setting; then the bytes pass as they come (the sniffer does the
 * same to a first frame that came in the read of the preface). nghttp2 acknowledges that
 * SETTINGS, which the client never sent: that ACK is cut from the bytes going out, so that the
 * client sees what nginx sends it (no SETTINGS ACK; nginx-tests' `read(all => [{ fin => 1 }])`
 * takes any frame with flag 0x1 for the end it waits for). Clients that send the preface and
 * SETTINGS in one write (curl, browsers, h2load) never come here: node:http2 reads their socket
 * itself, without this copy through JavaScript.
 */
export class FirstFrameShim extends Duplex {
  readonly #socket: Socket;
  /** Bytes after the preface until the first frame header is whole; undefined after. */
  #head: Buffer | undefined;
  /**
   * The walk over the frames going out, from the first, until it is known that no ACK is owed
   * (the client's first frame was its SETTINGS) or the owed one was cut: the start of a frame
   * header not passed on yet (held until it is whole), how many payload bytes of the current frame
   * are still to pass, and whether an empty SETTINGS was put in, whose ACK is to be cut (undefined
   * until the client's first frame came).
   */
  #outgoing: OutgoingWalk | undefined = { held: Buffer.alloc(0), payload: 0, owed: undefined };

  /** Sees every byte after the preface, when `$request_length` is in use. */
  readonly counter: FrameCounter | undefined;

  /** `head`: bytes read after the preface. */
  constructor(socket: Socket, head: Buffer = Buffer.alloc(0), counter?: FrameCounter) {
    super({ allowHalfOpen: false });
    this.#socket = socket;
    this.counter = counter;
    this.#head = Buffer.alloc(0);
    this.push(CONNECTION_PREFACE);
    if (head.length > 0) this.#onData(head);
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('end', () => this.push(null));
    socket.on('error', (err) => this.destroy(err));
    socket.on('close', () => this.destroy());
  }

  #onData(chunk: Buffer): void {
    let bytes = chunk;
    if (this.#head !== undefined) {
      const head = this.#head.length === 0 ? chunk : Buffer.concat([this.#head, chunk]);
      if (head.length < FRAME_HEADER_SIZE) {
        this.#head = head;
        return;
      }
      this.#head = undefined;
      const settings = isSettings(head);
      bytes = settings ? head : Buffer.concat([EMPTY_SETTINGS, head]);
      if (this.#outgoing !== undefined) this.#outgoing.owed = !settings;
    }
    this.counter?.scan(bytes);
    if (!this.push(bytes)) this.#socket.pause();
  }

  override _read(): void {
    this.#socket.resume();
  }

  /**
   * Done as soon as the socket took the bytes, not once they were flushed: node:http2 writes again
   * only after its previous write is done, which would cost a round of the event loop per write.
   * A full socket buffer holds the write back until it drains.
   */
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    const bytes = this.#outgoing === undefined ? chunk : this.#withoutOwnAck(chunk);
    if (this.#socket.write(bytes)) callback();
    else this.#socket.once('drain', () => callback());
  }

  /**
   * `chunk` without the first SETTINGS ACK (flags 0x1, length 0) in the server's frames: the
   * answer to the SETTINGS put in. The server's bytes start at a frame boundary (it sends no
   * preface), so counting frame lengths finds it; a frame header cut by the end of a write is held
   * back until the rest of it comes. After the ACK, bytes pass untouched.
   */
  #withoutOwnAck(chunk: Buffer): Buffer {
    const walk = this.#outgoing as OutgoingWalk;
    const bytes = walk.held.length === 0 ? chunk : Buffer.concat([walk.held, chunk]);
    walk.held = Buffer.alloc(0);
    let at = 0;
    while (at < bytes.length) {
      if (walk.payload > 0) {
        const step = Math.min(walk.payload, bytes.length - at);
        walk.payload -= step;
        at += step;
        continue;
      }
      if (bytes.length - at < FRAME_HEADER_SIZE) {
        walk.held = bytes.subarray(at);
        return bytes.subarray(0, at);
      }
      const length = bytes.readUIntBE(at, 3);
      if (walk.owed === true && bytes[at + 3] === FrameType.Settings && ((bytes[at + 4] as number) & ACK) !== 0 && length === 0) {
        this.#outgoing = undefined;
        return Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + FRAME_HEADER_SIZE)]);
      }
      at += FRAME_HEADER_SIZE;
      walk.payload = length;
    }
    // No ACK owed and no header held: the frames need no more counting.
    if (walk.owed === false && walk.payload === 0) this.#outgoing = undefined;
    return bytes;
  }

  override _final(callback: (err?: Error | null) => void): void {
    const held = this.#outgoing?.held;
    if (held !== undefined && held.length > 0) this.#socket.write(held);
    this.#socket.end(callback);
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    this.#socket.destroy();
    callback(err);
  }
}
