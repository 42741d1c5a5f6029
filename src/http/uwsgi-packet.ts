/**
 * The uwsgi protocol's request packet (uwsgi's "The uwsgi protocol" page; nginx's
 * ngx_http_uwsgi_create_request()): a 4-byte header (modifier1, the size of the variables as a
 * little-endian 16-bit number, modifier2), then each variable as a 16-bit little-endian length
 * and its bytes, name then value. The body follows raw, and the server answers with an HTTP
 * response that ends when it closes the connection.
 */

/** The packet for these variables; nginx's message when they do not fit in 64 KiB. */
export function uwsgiPacket(params: readonly (readonly [name: string, value: string])[], modifier1: number, modifier2: number): Buffer | string {
  const parts: Buffer[] = [];
  let size = 0;
  for (const [name, value] of params) {
    const key = Buffer.from(name, 'latin1');
    const val = Buffer.from(value, 'latin1');
    if (key.length > 0xffff || val.length > 0xffff) return 'uwsgi request is too big';
    const lengths = Buffer.alloc(2);
    lengths.writeUInt16LE(key.length);
    const valueLength = Buffer.alloc(2);
    valueLength.writeUInt16LE(val.length);
    parts.push(lengths, key, valueLength, val);
    size += 4 + key.length + val.length;
  }
  // ngx_http_uwsgi_create_request(): "uwsgi request is too big: %uz" past 64 KiB.
  if (size > 0xffff) return `uwsgi request is too big: ${size}`;
  const header = Buffer.alloc(4);
  header[0] = modifier1;
  header.writeUInt16LE(size, 1);
  header[3] = modifier2;
  return Buffer.concat([header, ...parts]);
}
