/**
 * The FastCGI wire format (FastCGI 1.0 specification, section 3; nginx's
 * ngx_http_fastcgi_create_request() and ngx_http_fastcgi_process_record()): 8-byte record headers,
 * name-value pairs for PARAMS, content padded to 8 bytes, and a reader that splits what a
 * FastCGI server sends back into STDOUT, STDERR and END_REQUEST records without holding more than
 * one record's content.
 */

/** Record types (FastCGI specification section 8). */
export const enum RecordType {
  BeginRequest = 1,
  AbortRequest = 2,
  EndRequest = 3,
  Params = 4,
  Stdin = 5,
  Stdout = 6,
  Stderr = 7,
}

/** The request id nginx uses for every request (one request per connection at a time). */
const REQUEST_ID = 1;
/** FCGI_RESPONDER. */
const ROLE_RESPONDER = 1;
/** FCGI_KEEP_CONN: the server keeps the connection after END_REQUEST (fastcgi_keep_conn on). */
const FLAG_KEEP_CONN = 1;
/** The largest content of one record. nginx writes at most 32 KiB per record (ngx_http_fastcgi_create_request()); so does hitless. */
const MAX_CONTENT = 32768;

/** One record with its padding to a multiple of 8 bytes, as nginx pads. */
export function encodeRecord(type: RecordType, content: Buffer): Buffer {
  const padding = (8 - (content.length % 8)) % 8;
  const out = Buffer.alloc(8 + content.length + padding);
  out[0] = 1;
  out[1] = type;
  out.writeUInt16BE(REQUEST_ID, 2);
  out.writeUInt16BE(content.length, 4);
  out[6] = padding;
  content.copy(out, 8);
  return out;
}

/** FCGI_BEGIN_REQUEST for the responder role; `keepConn` sets FCGI_KEEP_CONN. */
export function beginRequest(keepConn: boolean): Buffer {
  const body = Buffer.alloc(8);
  body.writeUInt16BE(ROLE_RESPONDER, 0);
  body[2] = keepConn ? FLAG_KEEP_CONN : 0;
  return encodeRecord(RecordType.BeginRequest, body);
}

/**
 * The PARAMS stream: name-value pairs (lengths of 1 byte below 128, else 4 with the top bit set),
 * in records of at most 32 KiB, then the empty record that ends it; all in one buffer, written
 * in place (names and values are byte strings: one latin1 character is one byte).
 */
export function paramsRecords(params: readonly (readonly [name: string, value: string])[]): Buffer[] {
  let size = 0;
  for (const [name, value] of params) size += lengthSize(name.length) + lengthSize(value.length) + name.length + value.length;
  if (size <= MAX_CONTENT) return [oneParamsRecord(params, size)];
  const records = Math.ceil(size / MAX_CONTENT);
  const padding = (8 - (size % MAX_CONTENT % 8)) % 8;
  const out = Buffer.allocUnsafe(size + records * 8 + padding + 8);
  // The pairs first, where their records' content goes; the headers are put in front of each piece after.
  let at = size === 0 ? 0 : 8;
  let inRecord = 0;
  const put = (byte: number): void => {
    if (inRecord === MAX_CONTENT) {
      at += 8;
      inRecord = 0;
    }
    out[at++] = byte;
    inRecord++;
  };
  const putLength = (length: number): void => {
    if (length < 128) put(length);
    else for (const shift of [24, 16, 8, 0]) put(((shift === 24 ? length | 0x80000000 : length) >>> shift) & 0xff);
  };
  const putText = (text: string): void => {
    let from = 0;
    while (from < text.length) {
      if (inRecord === MAX_CONTENT) {
        at += 8;
        inRecord = 0;
      }
      const take = Math.min(text.length - from, MAX_CONTENT - inRecord);
      out.write(text.slice(from, from + take), at, 'latin1');
      at += take;
      inRecord += take;
      from += take;
    }
  };
  for (const [name, value] of params) {
    putLength(name.length);
    putLength(value.length);
    putText(name);
    putText(value);
  }
  for (let record = 0; record < records; record++) {
    const content = record < records - 1 ? MAX_CONTENT : size - MAX_CONTENT * (records - 1);
    writeHeader(out, record * (MAX_CONTENT + 8), RecordType.Params, content, record < records - 1 ? 0 : padding);
  }
  out.fill(0, at, at + padding);
  writeHeader(out, at + padding, RecordType.Params, 0, 0);
  return [out];
}

/**
 * The PARAMS stream of one record and the empty one, the common case: the pairs made one latin1
 * string (a length below 128 is one character, a longer one four) written with one call.
 */
function oneParamsRecord(params: readonly (readonly [name: string, value: string])[], size: number): Buffer {
  let text = '';
  for (const [name, value] of params) text += `${lengthText(name.length)}${lengthText(value.length)}${name}${value}`;
  const padding = (8 - (size % 8)) % 8;
  const out = Buffer.allocUnsafe(8 + size + padding + 8);
  writeHeader(out, 0, RecordType.Params, size, padding);
  out.write(text, 8, size, 'latin1');
  out.fill(0, 8 + size, 8 + size + padding);
  writeHeader(out, 8 + size + padding, RecordType.Params, 0, 0);
  return out;
}

function lengthText(length: number): string {
  if (length < 128) return String.fromCharCode(length);
  return String.fromCharCode(((length >>> 24) & 0x7f) | 0x80, (length >>> 16) & 0xff, (length >>> 8) & 0xff, length & 0xff);
}

function lengthSize(length: number): number {
  return length < 128 ? 1 : 4;
}

function writeHeader(out: Buffer, at: number, type: RecordType, length: number, padding: number): void {
  out[at] = 1;
  out[at + 1] = type;
  out.writeUInt16BE(REQUEST_ID, at + 2);
  out.writeUInt16BE(length, at + 4);
  out[at + 6] = padding;
  out[at + 7] = 0;
}

/** Body bytes as STDIN records (an empty buffer gives none: the end of the stream is {@link stdinEnd}). */
export function stdinRecords(data: Buffer): Buffer[] {
  return chunked(RecordType.Stdin, data);
}

/** The empty STDIN record that ends the request body. */
export function stdinEnd(): Buffer {
  return encodeRecord(RecordType.Stdin, Buffer.alloc(0));
}

function chunked(type: RecordType, data: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < data.length; at += MAX_CONTENT) out.push(encodeRecord(type, data.subarray(at, Math.min(at + MAX_CONTENT, data.length))));
  return out;
}

/** A record's content as it arrives: a record may come in several pieces, each given on as read. */
export interface RecordSink {
  /** Content bytes of a STDOUT or STDERR record (`end` on its last piece); an empty STDOUT record is the end of that stream. */
  content(type: RecordType.Stdout | RecordType.Stderr, data: Buffer, end: boolean): void;
  /** FCGI_END_REQUEST: the request is over. */
  endRequest(): void;
  /** A record no responder sends, as ngx_http_fastcgi_process_record() words it. */
  invalid(message: string): void;
}

const enum State {
  Header,
  Content,
  Padding,
  Done,
}

/** Splits a FastCGI server's bytes into records (ngx_http_fastcgi_process_record()). */
export class RecordReader {
  readonly #sink: RecordSink;
  #state = State.Header;
  #header = Buffer.alloc(8);
  #headerBytes = 0;
  #type = 0;
  #remaining = 0;
  #padding = 0;
  #endContent: Buffer[] = [];

  constructor(sink: RecordSink) {
    this.#sink = sink;
  }

  /** True once END_REQUEST was read (or the stream was found broken). */
  get done(): boolean {
    return this.#state === State.Done;
  }

  /** Bytes after END_REQUEST are ignored; nginx logs them (fastcgi_extra_data.t) and so does {@link RecordSink.invalid}'s caller. */
  push(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length && this.#state !== State.Done) {
      if (this.#state === State.Header) {
        const take = Math.min(8 - this.#headerBytes, chunk.length - at);
        chunk.copy(this.#header, this.#headerBytes, at, at + take);
        this.#headerBytes += take;
        at += take;
        if (this.#headerBytes < 8) return;
        this.#headerBytes = 0;
        if (!this.#begin()) return;
        continue;
      }
      if (this.#state === State.Content) {
        const take = Math.min(this.#remaining, chunk.length - at);
        const piece = chunk.subarray(at, at + take);
        at += take;
        this.#remaining -= take;
        const last = this.#remaining === 0;
        if (this.#type === RecordType.EndRequest) this.#endContent.push(piece);
        else if (take > 0 || last) this.#sink.content(this.#type as RecordType.Stdout, piece, last);
        if (last) this.#afterContent();
        continue;
      }
      const take = Math.min(this.#padding, chunk.length - at);
      at += take;
      this.#padding -= take;
      if (this.#padding === 0) this.#afterPadding();
    }
  }

  #begin(): boolean {
    const header = this.#header;
    if (header[0] !== 1) {
      this.#fail(`upstream sent unsupported FastCGI protocol version: ${header[0] ?? 0}`);
      return false;
    }
    this.#type = header[1] ?? 0;
    if (this.#type !== RecordType.Stdout && this.#type !== RecordType.Stderr && this.#type !== RecordType.EndRequest) {
      this.#fail(`upstream sent invalid FastCGI record type: ${this.#type}`);
      return false;
    }
    const id = header.readUInt16BE(2);
    if (id !== REQUEST_ID) {
      this.#fail(`upstream sent unexpected FastCGI request id high byte: ${id >> 8}`);
      return false;
    }
    this.#remaining = header.readUInt16BE(4);
    this.#padding = header[6] ?? 0;
    if (this.#remaining === 0) {
      if (this.#type !== RecordType.EndRequest) this.#sink.content(this.#type as RecordType.Stdout, Buffer.alloc(0), true);
      this.#afterContent();
    } else {
      this.#state = State.Content;
    }
    return this.#state !== State.Done;
  }

  #afterContent(): void {
    if (this.#padding > 0) {
      this.#state = State.Padding;
      return;
    }
    this.#afterPadding();
  }

  #afterPadding(): void {
    if (this.#type === RecordType.EndRequest) {
      this.#state = State.Done;
      this.#sink.endRequest();
      return;
    }
    this.#state = State.Header;
  }

  #fail(message: string): void {
    this.#state = State.Done;
    this.#sink.invalid(message);
  }
}
