/** Stream configurations nginx refuses, with nginx's messages, and what -t and -V say of the stream modules. */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { ConfigError } from '../../src/core/errors.js';
import { collectListens } from '../../src/process/http-and-stream-runtime.js';
import { runHitless } from '../helpers/bin.js';
import { tempDir } from '../helpers/tmp.js';
import { errorOf, load } from './helpers.js';

describe('stream configuration errors', () => {
  const cases: [string, string][] = [
    ['stream { server { proxy_pass 127.0.0.1:9; } }', 'no "listen" is defined for server in /x.conf:1'],
    // nginx 1.25.5: servers share an address (chosen by server_name); these are its listen errors.
    ['stream { server { listen 1234 default_server; proxy_pass 127.0.0.1:9; } server { listen 1234 default_server; proxy_pass 127.0.0.1:9; } }', 'a duplicate default server for 0.0.0.0:1234 in /x.conf:1'],
    ['stream { server { listen 1234; server_name a; return x; } server { listen 1234; server_name a.*.b; return x; } }', 'invalid server name or wildcard "a.*.b" on 0.0.0.0:1234'],
    ['stream { server { listen 1234; server_name "*x"; return x; } }', 'server name "*x" is invalid in /x.conf:1'],
    ['stream { server { listen 1234 foo; proxy_pass 127.0.0.1:9; } }', 'the invalid "foo" parameter in /x.conf:1'],
    ['stream { server { listen 1234; proxy_pass foo; } }', 'no port in upstream "foo" in /x.conf:1'],
    ['stream { server { listen 1234; proxy_pass $x; } }', 'unknown "x" variable'],
    ['stream { map $y $x {} server { listen 1234; proxy_pass $x; } }', 'unknown "y" variable'],
    ['stream { server { listen 1234; proxy_pass 127.0.0.1:9; proxy_pass 127.0.0.1:9; } }', '"proxy_pass" directive is duplicate in /x.conf:1'],
    ['stream { server { listen 1234; proxy_pass 127.0.0.1:9; ssl_preread maybe; } }', 'invalid value "maybe" in "ssl_preread" directive, it must be "on" or "off" in /x.conf:1'],
    ['stream { server { listen 1234; proxy_pass 127.0.0.1:9; proxy_timeout 1x; } }', '"proxy_timeout" directive invalid value in /x.conf:1'],
    ['stream { server { listen 1234; proxy_pass 127.0.0.1:9; proxy_next_upstream_tries x; } }', '"proxy_next_upstream_tries" directive invalid number in /x.conf:1'],
    ['stream { server { listen 1234; proxy_pass 127.0.0.1:9; access_log /tmp/x; } }', 'log format is not specified in /x.conf:1'],
    ['stream { server { listen 1234; proxy_pass 127.0.0.1:9; access_log /tmp/x foo; } }', 'unknown log format "foo" in /x.conf:1'],
    ['stream { log_format f $remote_addr; server { listen 1234; proxy_pass 127.0.0.1:9; access_log /tmp/x f gzip=10; } }', 'invalid compression level "10" in /x.conf:1'],
    ['stream { log_format f "$request"; server { listen 1234; proxy_pass 127.0.0.1:9; } }', 'unknown "request" variable'],
    ['stream { upstream u { server 127.0.0.1:9; } server { listen 1234; proxy_pass http://u; } }', 'invalid host in upstream "http://u" in /x.conf:1'],
    ['stream { server { listen 1234; proxy_pass 127.0.0.1:9; set_real_ip_from 1.2.3.4/33; } }', 'host not found in set_real_ip_from "1.2.3.4/33" in /x.conf:1'],
    ['stream { server { listen 1234 ssl; proxy_pass 127.0.0.1:9; } }', 'no "ssl_certificate" is defined for the "listen ... ssl" directive in /x.conf:1'],
    ['stream { server { listen 1234; listen 1234; proxy_pass 127.0.0.1:9; } }', 'a duplicate listen 0.0.0.0:1234 in /x.conf:1'],
    ['stream { server { listen 1234; proxy_pass 127.0.0.1:9; preread_buffer_size 1x; } }', '"preread_buffer_size" directive invalid value in /x.conf:1'],
    ['stream { upstream u { server 127.0.0.1:9; } upstream u { server 127.0.0.1:9; } server { listen 1234; proxy_pass u; } }', 'duplicate upstream "u" in /x.conf:1'],
    ['stream { server { listen 1234; proxy_pass 127.0.0.1:9; limit_conn z 1; } }', 'zero size shared memory zone "z"'],
    ['stream { server { listen 1234 udp ssl; proxy_pass 127.0.0.1:9; } }', '"listen" directive "ssl" parameter is incompatible with "udp" in /x.conf:1'],
    ['stream { server { listen 1234; proxy_pass 127.0.0.1:9; proxy_pass_header X; } }', '"proxy_pass_header" directive is not allowed here in /x.conf:1'],
  ];
  for (const [text, message] of cases) {
    it(message, () => {
      assert.equal(errorOf(text), message);
    });
  }

  it('accepts a stream block nginx accepts', () => {
    load(`stream {
      upstream u { hash $remote_addr consistent; zone u 64k; server 127.0.0.1:1 max_fails=2; server 127.0.0.1:2; }
      map $ssl_preread_server_name $target { default u; }
      log_format basic '$remote_addr [$time_local] $protocol $status $bytes_sent $bytes_received $session_time';
      limit_conn_zone $binary_remote_addr zone=addr:10m;
      server { listen 127.0.0.1:1234 proxy_protocol; ssl_preread on; set_real_ip_from 10.0.0.0/8; limit_conn addr 10; access_log /tmp/s.log basic; proxy_pass $target; }
      server { listen [::1]:1235; proxy_connect_timeout 1s; proxy_timeout 1m; proxy_protocol on; proxy_next_upstream_tries 3; proxy_pass 127.0.0.1:80; }
    }`);
  });

  it('refuses the same address and port in http and stream as the bind() conflict nginx meets', () => {
    const config = load('http { server { listen 127.0.0.1:8443; } } stream { server { listen 127.0.0.1:8443; proxy_pass 127.0.0.1:9; } }');
    assert.throws(() => collectListens(config), (err: unknown) => err instanceof ConfigError && err.message === 'bind() to 127.0.0.1:8443 failed (98: Address already in use)');
    const apart = load('http { server { listen 127.0.0.1:8443; } } stream { server { listen 127.0.0.1:8444; proxy_pass 127.0.0.1:9; } }');
    assert.deepEqual(collectListens(apart).map((spec) => spec.key), ['127.0.0.1:8443', '127.0.0.1:8444']);
  });
});

describe('hitless -t and -V with stream', () => {
  it('reports a stream error as nginx -t does', () => {
    const dir = tempDir();
    try {
      const conf = `${dir.path}/bad.conf`;
      writeFileSync(conf, 'events {}\nstream {\n  server {\n    listen 127.0.0.1:1234 bogus;\n    proxy_pass 127.0.0.1:9;\n  }\n}\n');
      const result = runHitless(['-t', '-c', conf, '-p', `${dir.path}/`]);
      assert.equal(result.status, 1);
      assert.match(result.stderr, new RegExp(`\\[emerg\\] .*the invalid "bogus" parameter in ${conf.replace(/[.]/g, '\\.')}:4`));
      assert.match(result.stderr, /test failed/);
    } finally {
      dir.remove();
    }
  });

  it('lists the stream modules in the configure arguments', () => {
    const line = runHitless(['-V']).stderr.split('\n')[3] ?? '';
    assert.match(line, / --with-stream_ssl_preread_module( |$)/);
    assert.match(line, / --with-stream_realip_module( |$)/);
    assert.doesNotMatch(line, /--without-stream_(map|upstream_hash|limit_conn|return|geo|access|split_clients|set|pass)_module/);
    assert.match(line, / --without-stream_upstream_least_time_module( |$)/);
  });
});
