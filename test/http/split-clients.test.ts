/** `split_clients`: nginx's percent arithmetic and errors, MurmurHash2, and the value a request gets. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { murmurHash2, parsePercent, splitValue } from '../../src/http/split-clients-module.js';
import { errorOf, get, load, serve, type Served } from './helpers.js';

describe('split_clients directive', () => {
  it('turns percentages into uint32 bounds as ngx_conf_split_clients_block() does', () => {
    const [block] = load('http { split_clients $remote_addr $v { 10% a; 5.5% b; * c; } }').main.child('http')?.get('split_clients') ?? [];
    assert.equal(block?.variable, 'v');
    // 1000 * 0xffffffff / 10000 = 429496729, then + 550 * 0xffffffff / 10000 = 236223201.
    assert.deepEqual(block?.parts, [{ bound: 429496729, value: 'a' }, { bound: 429496729 + 236223201, value: 'b' }, { bound: 0, value: 'c' }]);
    // Parts that reach 100% exactly: the last one is the rest (bound 0), as nginx sets it.
    const [full] = load('http { split_clients $uri $w { 50% a; 50% b; } }').main.child('http')?.get('split_clients') ?? [];
    assert.deepEqual(full?.parts.map((part) => part.bound), [2147483647, 0]);
  });

  it('parses percentages as ngx_atofp(..., 2)', () => {
    assert.equal(parsePercent('10'), 1000);
    assert.equal(parsePercent('5.5'), 550);
    assert.equal(parsePercent('0.01'), 1);
    assert.equal(parsePercent('10.'), 1000);
    assert.equal(parsePercent('10.123'), undefined);
    assert.equal(parsePercent('1.2.3'), undefined);
    assert.equal(parsePercent('x'), undefined);
    assert.equal(parsePercent(''), undefined);
  });

  it('refuses what nginx refuses, in its words', () => {
    assert.match(errorOf('http { split_clients $uri $v { 10.123% a; } }'), /^invalid percent value "10\.123%" in \/x\.conf:1$/);
    assert.match(errorOf('http { split_clients $uri $v { 0% a; } }'), /^invalid percent value "0%" in/);
    assert.match(errorOf('http { split_clients $uri $v { abc a; } }'), /^invalid percent value "abc" in/);
    assert.match(errorOf('http { split_clients $uri $v { 60% a; 50% b; } }'), /^percent total is greater than 100% in/);
    assert.match(errorOf('http { split_clients $uri $v { * a; 10% b; } }'), /^percent total is greater than 100% in/);
    assert.match(errorOf('http { split_clients $uri $v { 10% { } } }'), /^unexpected "\{" in/);
    assert.match(errorOf('http { split_clients $uri v { } }'), /^invalid variable name "v" in/);
    assert.match(errorOf('http { split_clients $uri $uri { } }'), /^the duplicate "uri" variable in/);
    assert.match(errorOf('http { split_clients $nope $v { * a; } }'), /^unknown "nope" variable$/);
  });

  it('hashes as ngx_murmur_hash2() and picks the first part the hash is below', () => {
    assert.equal(murmurHash2(Buffer.alloc(0)), 0);
    // Every tail length (0 to 3 bytes after the 4-byte blocks) lands in [0, 2^32).
    for (const text of ['a', 'ab', 'abc', 'abcd', 'abcde']) assert.ok(murmurHash2(Buffer.from(text)) >= 0 && murmurHash2(Buffer.from(text)) < 2 ** 32);
    const block = { source: { parts: [] }, variable: 'v', parts: [{ bound: 2 ** 31, value: 'low' }, { bound: 0, value: 'high' }] };
    const low = ['a', 'b', 'c', 'd', 'e', 'f'].filter((key) => murmurHash2(Buffer.from(key)) < 2 ** 31);
    for (const key of low) assert.equal(splitValue(block as never, Buffer.from(key)), 'low');
    // A split with no rest and a hash above every bound: the empty value.
    assert.equal(splitValue({ ...block, parts: [{ bound: 1, value: 'x' }] } as never, Buffer.from('abc')), '');
  });
});

describe('split_clients at request time', () => {
  let served: Served;
  before(async () => {
    served = await serve(`http {
      split_clients "\${arg_k}x" $half { 50% a; * b; }
      server { listen 127.0.0.1:18081; location / { return 200 "$half"; } }
    }`, '/tmp/');
  });
  after(() => served.stop());

  it('gives the same key the same value and splits keys about evenly', async () => {
    const values: string[] = [];
    for (let i = 0; i < 200; i++) values.push((await get(served.port, `/?k=${i}`)).body);
    assert.equal((await get(served.port, '/?k=7')).body, values[7]);
    const a = values.filter((value) => value === 'a').length;
    assert.ok(a > 70 && a < 130, `${a} of 200 in the first half`);
    assert.deepEqual(new Set(values), new Set(['a', 'b']));
  });
});
