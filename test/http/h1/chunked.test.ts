import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ChunkedParser } from '../../../src/http/h1/chunked.js';
import { HttpParseError } from '../../../src/http/h1/head-parser.js';

function decode(parts: readonly string[]): { data: string; consumed: number; done: boolean } {
  const parser = new ChunkedParser();
  let data = '';
  let consumed = 0;
  for (const part of parts) consumed += parser.push(Buffer.from(part, 'latin1'), 0, (d) => (data += d.toString('latin1')));
  return { data, consumed, done: parser.done };
}

describe('chunked bodies', () => {
  const body = '5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\n';

  it('decodes data, skips extensions and trailers', () => {
    assert.deepEqual(decode([body]), { data: 'hello world', consumed: body.length, done: true });
  });

  it('decodes the same body split at every byte', () => {
    assert.deepEqual(decode([...body]), { data: 'hello world', consumed: body.length, done: true });
  });

  it('stops exactly at the end of the body and leaves what follows', () => {
    const parser = new ChunkedParser();
    const buf = Buffer.from('3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n');
    assert.equal(parser.push(buf), '3\r\nabc\r\n0\r\n\r\n'.length);
    assert.equal(parser.done, true);
  });

  it('accepts upper-case hex and bare LF, as nginx does', () => {
    assert.equal(decode(['A\nabcdefghij\n0\n\n']).data, 'abcdefghij');
  });

  it('is not done before the final empty line', () => {
    assert.equal(decode(['3\r\nabc\r\n0\r\n']).done, false);
  });

  for (const bad of ['x\r\n', '\r\n', '3\r\nabcX', '3\r\nabc\r\r', '0000000000000001\r\n', '3\x01\r\n', '-1\r\n']) {
    it(`refuses ${JSON.stringify(bad)}`, () => {
      assert.throws(() => new ChunkedParser().push(Buffer.from(bad, 'latin1')), (err: unknown) => err instanceof HttpParseError && err.status === 400);
    });
  }

  it('answers 502 for an upstream body', () => {
    assert.throws(() => new ChunkedParser({ fromUpstream: true }).push(Buffer.from('z\r\n')), (err: unknown) => err instanceof HttpParseError && err.status === 502);
  });
});
