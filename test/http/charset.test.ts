/** `charset_map`: nginx's parsing and errors, and the recoders its tables drive (one-byte, to and from utf-8, split characters). */
import assert from 'node:assert/strict';
import { Readable, type Transform } from 'node:stream';
import { describe, it } from 'node:test';
import { byteRecoder, decodeUtf8, fromUtf8Recoder, toUtf8Recoder, utf8Sequences } from '../../src/http/charset-tables.js';
import type { CharsetMap } from '../../src/http/charset-tables.js';
import { errorOf, load } from './helpers.js';

const MAPS = `
  charset_map koi8-r windows-1251 { C1 E0; C2 E1; }
  charset_map windows-1251 utf-8 { E0 D0B0; E1 D0B1; 80 E282AC; }`;

function mapsOf(text: string) {
  return load(`http { ${text} }`).main.child('http')?.get('charset_map') ?? [];
}

/** The recoder's output for the chunks written one by one. */
async function recode(transform: Transform, chunks: readonly Buffer[]): Promise<Buffer> {
  const out: Buffer[] = [];
  transform.on('data', (data: Buffer) => out.push(data));
  const done = new Promise<void>((resolve, reject) => {
    transform.once('end', resolve);
    transform.once('error', reject);
  });
  Readable.from(chunks).pipe(transform);
  await done;
  return Buffer.concat(out);
}

describe('charset_map directive', () => {
  it('builds the tables nginx starts from: identity below 0x80, "?" above', () => {
    const [koi, utf] = mapsOf(MAPS);
    assert.equal(koi?.utf8, false);
    assert.equal((koi?.fromTo as number[])[0x41], 0x41);
    assert.equal((koi?.fromTo as number[])[0xc1], 0xe0);
    assert.equal((koi?.toFrom as number[])[0xe0], 0xc1);
    assert.equal((koi?.fromTo as number[])[0xff], 0x3f);
    assert.equal(utf?.utf8, true);
    assert.deepEqual((utf?.fromTo as number[][])[0xe0], [0xd0, 0xb0]);
    assert.deepEqual((utf?.fromTo as number[][])[0x99], [0x3f]);
    assert.equal((utf?.toFrom as Map<number, number>).get(0x20ac), 0x80);
  });

  it('refuses what nginx refuses, in its words', () => {
    assert.equal(errorOf('http { charset_map a A { } }'), '"charset_map" between the same charsets "a" and "A" in /x.conf:1');
    assert.equal(errorOf('http { charset_map UTF-8 koi8-r { } }'), '"charset_map" with "utf-8" charset should be given in the second column in /x.conf:1');
    assert.equal(errorOf('http { charset_map a b { } charset_map B A { } }'), 'duplicate "charset_map" between "B" and "A" in /x.conf:1');
    assert.equal(errorOf('http { charset_map a b { C0; } }'), 'invalid parameters number in /x.conf:1');
    assert.equal(errorOf('http { charset_map a b { 100 C0; } }'), 'invalid value "100" in /x.conf:1');
    assert.equal(errorOf('http { charset_map a b { 0xC0 C0; } }'), 'invalid value "0xC0" in /x.conf:1');
    assert.equal(errorOf('http { charset_map a b { C0 D0B0; } }'), 'invalid value "D0B0" in /x.conf:1');
    assert.equal(errorOf('http { charset_map a utf-8 { C0 D0B; } }'), 'invalid value "D0B" in /x.conf:1');
    assert.equal(errorOf('http { charset_map a utf-8 { C0 F09F9880; } }'), 'invalid value "F09F9880" in /x.conf:1');
    assert.equal(errorOf('http { charset_map a utf-8 { C0 41; } }'), 'invalid value "41" in /x.conf:1');
    assert.equal(errorOf('http { charset_map a utf-8 { C0 D041; } }'), 'invalid value "D041" in /x.conf:1');
    assert.match(errorOf('http { charset_map a b { C0 { } } }'), /^unexpected "\{" in/);
    assert.match(errorOf('http { server { charset_map a b { } } }'), /^"charset_map" directive is not allowed here in/);
  });

  it('checks the pairs of charset and source_charset against the maps, either way, and the variables', () => {
    load(`http { ${MAPS} server { charset koi8-r; source_charset windows-1251; location / { charset utf-8; } } }`);
    assert.equal(errorOf('http { charset koi8-r; source_charset utf-8; }'), 'no "charset_map" between the charsets "utf-8" and "koi8-r"');
    load('http { map $uri $cs { default utf-8; } charset $cs; source_charset koi8-r; }');
    assert.equal(errorOf('http { charset $nope; }'), 'unknown "nope" variable');
    assert.match(errorOf('http { charset $; }'), /^invalid variable name in/);
  });
});

describe('charset recoders', () => {
  it('recodes one byte to one byte', async () => {
    const [koi] = mapsOf(MAPS);
    const out = await recode(byteRecoder(koi?.fromTo as number[]), [Buffer.from([0x41, 0xc1, 0xc2, 0xff])]);
    assert.deepEqual(out, Buffer.from([0x41, 0xe0, 0xe1, 0x3f]));
  });

  it('recodes to utf-8 through the table', async () => {
    const [, utf] = mapsOf(MAPS);
    const out = await recode(toUtf8Recoder(utf8Sequences(utf as CharsetMap)), [Buffer.from([0x61, 0xe0, 0x80]), Buffer.from([0xfe])]);
    assert.equal(out.toString('utf8'), 'aа€?');
  });

  it('recodes from utf-8: unknown characters as &#N;, invalid sequences as "?"', async () => {
    const [, utf] = mapsOf(MAPS);
    const table = utf?.toFrom as Map<number, number>;
    const text = Buffer.concat([Buffer.from('x а б € ж 😀 '), Buffer.from([0xff, 0x20, 0xd0, 0x41, 0x20, 0xc0, 0x80])]);
    const out = await recode(fromUtf8Recoder(table), [text]);
    assert.deepEqual(out, Buffer.concat([Buffer.from('x '), Buffer.from([0xe0, 0x20, 0xe1, 0x20, 0x80]), Buffer.from(' &#1078; &#128512; ? ? ??')]));
  });

  it('keeps a character split across chunks, at every split point', async () => {
    const [, utf] = mapsOf(MAPS);
    const table = utf?.toFrom as Map<number, number>;
    const text = Buffer.from('a€б😀ж');
    const whole = await recode(fromUtf8Recoder(table), [text]);
    assert.equal(whole.toString('latin1'), 'a\x80\xe1&#128512;&#1078;');
    for (let i = 1; i < text.length; i++) {
      for (let j = i; j < text.length; j++) {
        const split = await recode(fromUtf8Recoder(table), [text.subarray(0, i), text.subarray(i, j), text.subarray(j)].filter((part) => part.length > 0));
        assert.deepEqual(split, whole, `split at ${i} and ${j}`);
      }
    }
  });

  it('drops a character cut by the end of the body, as nginx does', async () => {
    const out = await recode(fromUtf8Recoder(new Map()), [Buffer.from([0x61, 0xe2, 0x82])]);
    assert.equal(out.toString('latin1'), 'a');
  });

  it('decodes as ngx_utf8_decode() does', () => {
    assert.deepEqual(decodeUtf8(Buffer.from([0xd0, 0xb0]), 0, 2), { code: 0x430, length: 2 });
    assert.deepEqual(decodeUtf8(Buffer.from([0xd0]), 0, 1), { code: 0xfffffffe, length: 0 });
    assert.deepEqual(decodeUtf8(Buffer.from([0xe0, 0x80, 0x80]), 0, 3), { code: 0xffffffff, length: 3 });
    assert.deepEqual(decodeUtf8(Buffer.from([0xe2, 0x41]), 0, 2), { code: 0xfffffffe, length: 0 });
  });
});
