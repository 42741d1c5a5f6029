/**
 * The SCGI request (the SCGI protocol, python.ca/scgi/protocol.txt; nginx's
 * ngx_http_scgi_create_request()): a netstring, `<length>:` then each header as its name, a NUL,
 * its value and a NUL, then `,`. CONTENT_LENGTH comes first, as the protocol requires (nginx puts
 * it there itself; `SCGI 1` is scgi_params's). The body follows raw, and the server answers with
 * a CGI or HTTP response that ends when it closes the connection.
 */

/** The netstring of these headers, CONTENT_LENGTH (the client's Content-Length, or the body read whole; 0 without one) first. */
export function scgiPacket(params: readonly (readonly [name: string, value: string])[], contentLength: number): Buffer {
  const parts: Buffer[] = [Buffer.from(`CONTENT_LENGTH\0${contentLength}\0`, 'latin1')];
  let size = (parts[0] as Buffer).length;
  for (const [name, value] of params) {
    const part = Buffer.from(`${name}\0${value}\0`, 'latin1');
    parts.push(part);
    size += part.length;
  }
  return Buffer.concat([Buffer.from(`${size}:`, 'latin1'), ...parts, Buffer.from(',', 'latin1')]);
}
