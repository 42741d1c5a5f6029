/**
 * Property test: whatever bytes the parser and loader are fed, they either build a configuration
 * or throw a ConfigError that says where the problem is. Never another exception, never a hang.
 * Seeded, so a failure names the input that caused it and can be replayed.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError } from '../../src/core/errors.js';
import { loadConfigText } from '../../src/conf/loader.js';
import { createRegistry } from '../../src/modules.js';
import { random } from '../helpers/random.js';

const registry = createRegistry();

const SEEDS = [
  'worker_processes 2;\nevents { worker_connections 64; }\nhttp {\n  upstream app { server 127.0.0.1:8081 weight=2; }\n  server {\n    location / { location /a {} }\n    location ~* "\\.(png|jpg)$" {}\n    location = /x {}\n  }\n}\n',
  'daemon off;\nerror_log stderr info;\npid /tmp/x.pid;\nevents {}\nstream { upstream u { server [::1]:1 backup; } server {} }\n',
  "events {}\nhttp { server { location '/a b' { } location ^~ \"/c\\\"d\" {} } }\n# comment { ;\n",
];

const ALPHABET = ['{', '}', ';', '"', "'", '\\', '$', '{', '#', '\n', ' ', '\t', '(', ')', 'a', 'events', 'http', 'server', 'location', '~', '=', '^~', 'include', 'daemon', 'on', '1', '${x}', '\r'];

function mutate(text: string, next: () => number): string {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)] as T;
  let out = text;
  const edits = 1 + Math.floor(next() * 4);
  for (let i = 0; i < edits; i++) {
    const at = Math.floor(next() * (out.length + 1));
    switch (Math.floor(next() * 4)) {
      case 0:
        out = out.slice(0, at) + pick(ALPHABET) + out.slice(at);
        break;
      case 1:
        out = out.slice(0, at) + out.slice(at + 1 + Math.floor(next() * 5));
        break;
      case 2:
        out = out.slice(0, at) + pick(ALPHABET) + out.slice(at + 1);
        break;
      default: {
        const from = Math.floor(next() * out.length);
        out = out.slice(0, at) + out.slice(from, from + Math.floor(next() * 20)) + out.slice(at);
      }
    }
  }
  return out;
}

function soup(next: () => number): string {
  let out = '';
  const length = Math.floor(next() * 60);
  for (let i = 0; i < length; i++) out += ALPHABET[Math.floor(next() * ALPHABET.length)];
  return out;
}

/** Configuration-wide checks nginx itself reports without a file and line. */
const WHOLE_CONFIG_ERRORS = new Set(['no "events" section in configuration']);

function check(text: string, seed: number): 'ok' | 'error' {
  try {
    loadConfigText(text, registry, { file: '/fuzz.conf', prefix: '/srv' });
    return 'ok';
  } catch (err) {
    if (!(err instanceof ConfigError)) {
      assert.fail(`seed ${seed}: ${JSON.stringify(text)} threw a non-configuration error: ${String(err)}`);
    }
    if (err.location === undefined) {
      assert.ok(WHOLE_CONFIG_ERRORS.has(err.reason), `seed ${seed}: ${JSON.stringify(text)} gave an error without a location: ${err.message}`);
    } else {
      assert.equal(err.location.file, '/fuzz.conf');
      const lines = text.split('\n').length;
      assert.ok(err.location.line >= 1 && err.location.line <= lines, `seed ${seed}: line ${err.location.line} outside 1..${lines}`);
      assert.ok(err.message.endsWith(` in /fuzz.conf:${err.location.line}`), err.message);
    }
    return 'error';
  }
}

describe('parser and loader under random input', { timeout: 60_000 }, () => {
  it('mutated valid configurations: a model or a located ConfigError', () => {
    const seen = { ok: 0, error: 0 };
    for (let seed = 1; seed <= 3000; seed++) {
      const next = random(seed);
      const base = SEEDS[seed % SEEDS.length] as string;
      seen[check(mutate(base, next), seed)]++;
    }
    // Both outcomes must occur, or the mutations are not exercising anything.
    assert.ok(seen.ok > 0 && seen.error > 0, JSON.stringify(seen));
  });

  it('random token soup: a model or a located ConfigError', () => {
    for (let seed = 1; seed <= 3000; seed++) check(soup(random(seed)), seed);
  });

  it('deep nesting and long inputs stay bounded', () => {
    check(`events {}\nhttp { server { ${'location /a { '.repeat(500)}${'}'.repeat(500)} } }`, 0);
    check(`events {}\n${'#'.repeat(100_000)}\n${'"'.repeat(10_001)}`, 0);
    check(`events {}\n${'a '.repeat(50_000)};`, 0);
  });
});
