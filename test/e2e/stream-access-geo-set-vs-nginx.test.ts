/**
 * Stream `allow`/`deny`, `geo`, `split_clients` and `set`, side by side with Debian's nginx
 * (libnginx-mod-stream): hitless refused them as unknown directives in stream, so nginx-tests'
 * stream_access.t, stream_geo*.t, stream_split_clients.t, stream_set.t and
 * stream_status_variable.t did not run. Each server answers with `return`, and the access log
 * records `$status`, so a denied session shows as 403 in both.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startPair, type NginxPair } from './helpers/nginx-pair.js';
import { readToClose } from './helpers/side-by-side.js';

const STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';

/** Everything 127.0.0.1:`port` sends before it closes. */
function read(port: number): Promise<string> {
  return readToClose(() => connect({ port, host: '127.0.0.1' }));
}

describe('stream allow/deny, geo, split_clients and set: hitless and nginx side by side', () => {
  let pair: NginxPair;

  before(async () => {
    pair = await startPair(
      (port, dir, extra, name) => `load_module ${STREAM_MODULE};
events {}
stream {
    log_format status $status;
    geo $geo {
        default           none;
        127.0.0.0/8       loopback;
        127.0.0.1/32      exact;
        10.0.0.0/8        ten;
        delete            10.0.0.0/8;
    }
    geo $remote_addr $ranged {
        ranges;
        default           far;
        127.0.0.0-127.0.0.255 near;
    }
    geo $set_addr $from_set {
        default           none;
        192.0.2.0/24      doc;
    }
    split_clients "\${remote_addr}AAA" $split {
        50.5% first;
        *     rest;
    }
    map 0 $map_var {
        default "original";
    }
    server {
        listen 127.0.0.1:${port};
        return "$geo:$ranged:$split";
    }
    server {
        listen 127.0.0.1:${extra[0] ?? 0};
        deny 127.0.0.1;
        allow all;
        return denied-not;
        access_log ${join(dir, name, 'logs', 'deny.log')} status;
    }
    server {
        listen 127.0.0.1:${extra[1] ?? 0};
        allow 127.0.0.1;
        deny all;
        return allowed;
        access_log ${join(dir, name, 'logs', 'allow.log')} status;
    }
    server {
        listen 127.0.0.1:${extra[2] ?? 0};
        set $set_var $map_var;
        set $map_var "new";
        set $set_addr 192.0.2.7;
        return "$map_var:$set_var:$from_set";
    }
    server {
        listen 127.0.0.1:${extra[3] ?? 0};
        return "[$set_var]";
    }
}
`,
      () => undefined,
      4,
    );
  });

  after(async () => {
    await pair?.stop();
  });

  it('geo (CIDR with delete, ranges) and split_clients give the same values', async () => {
    const expected = await read(pair.ports.nginx);
    assert.match(expected, /^exact:near:(first|rest)$/, 'nginx itself');
    assert.equal(await read(pair.ports.hitless), expected);
  });

  it('deny closes the session with no answer and logs 403; allow lets it through (200)', async () => {
    const [nginxDeny, nginxAllow] = [await read(pair.extra.nginx[0] ?? 0), await read(pair.extra.nginx[1] ?? 0)];
    assert.equal(nginxDeny, '', 'nginx itself');
    assert.equal(nginxAllow, 'allowed', 'nginx itself');
    assert.equal(await read(pair.extra.hitless[0] ?? 0), nginxDeny);
    assert.equal(await read(pair.extra.hitless[1] ?? 0), nginxAllow);
    for (const name of ['nginx', 'hitless'] as const) {
      const logs = join(pair.dir, name, 'logs');
      // The last line is this test's session (the start-up probe of each port came first).
      assert.match(readFileSync(join(logs, 'deny.log'), 'latin1'), /(^|\n)403\n$/, `${name} deny.log`);
      assert.match(readFileSync(join(logs, 'allow.log'), 'latin1'), /(^|\n)200\n$/, `${name} allow.log`);
      assert.match(readFileSync(join(logs, 'error.log'), 'latin1'), /\[error\] .*access forbidden by rule while initializing session, client: 127\.0\.0\.1, server: 127\.0\.0\.1:\d+/, `${name} error.log`);
    }
  });

  it('set runs in order, overrides a map variable, feeds geo; a server that does not set a variable reads it empty', async () => {
    const expected = await read(pair.extra.nginx[2] ?? 0);
    assert.equal(expected, 'new:original:doc', 'nginx itself');
    assert.equal(await read(pair.extra.hitless[2] ?? 0), expected);
    const unset = await read(pair.extra.nginx[3] ?? 0);
    assert.equal(unset, '[]', 'nginx itself');
    assert.equal(await read(pair.extra.hitless[3] ?? 0), unset);
  });
});
