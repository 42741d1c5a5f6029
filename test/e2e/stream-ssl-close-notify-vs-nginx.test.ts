/**
 * A stream server's `return` over TLS 1.3 ends with close_notify, hitless and Debian's nginx side
 * by side, as openssl s_client reads it ("closed", not "unexpected eof while reading"). A Node TLS
 * 1.3 socket ended together with its data sends its FIN and never the close_notify, so OpenSSL
 * clients took the answer for truncated and did not keep the session.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fixture } from '../tls/session-client.js';
import { freePort } from './helpers/masters.js';
import { startServer, type RunningServer } from './helpers/side-by-side.js';

const BINARIES = ['nginx', 'hitless'] as const;
type Binary = (typeof BINARIES)[number];

function conf(dir: string, port: number): string {
  return `load_module /usr/lib/nginx/modules/ngx_stream_module.so;
pid ${join(dir, `${port}.pid`)};
error_log ${join(dir, `${port}-error.log`)} info;
events {}
stream {
    server {
        listen 127.0.0.1:${port} ssl;
        ssl_certificate ${fixture('a-rsa.fullchain.crt')}; ssl_certificate_key ${fixture('a-rsa.key')}; ssl_protocols TLSv1.2 TLSv1.3;
        return "answer";
    }
}
`;
}

/** What openssl s_client -quiet prints of a session with `port` over `version`, its errors included. */
function sClient(port: number, version: string): string {
  const result = spawnSync('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'a.test', `-${version}`, '-ign_eof', '-quiet'], { input: '', encoding: 'utf8', timeout: 10_000 });
  return `${result.stdout}${result.stderr}`;
}

describe('close_notify after a stream return over TLS: hitless and nginx side by side', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hitless-notify-'));
  const running: RunningServer[] = [];
  const ports = {} as Record<Binary, number>;

  before(async () => {
    for (const binary of BINARIES) {
      const port = await freePort();
      ports[binary] = port;
      const file = join(dir, `${binary}.conf`);
      writeFileSync(file, conf(dir, port));
      running.push(await startServer(binary, ['-p', `${dir}/`, '-c', file, '-e', join(dir, `${binary}-error.log`), '-g', 'daemon off;'], [port]));
    }
  });
  after(async () => {
    await Promise.all(running.map((server) => server.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  for (const binary of BINARIES) {
    for (const version of ['tls1_3', 'tls1_2']) {
      it(`${binary} over ${version}: the answer, then close_notify`, () => {
        const output = sClient(ports[binary], version);
        assert.match(output, /answer/);
        assert.doesNotMatch(output, /unexpected eof/);
      });
    }
  }
});
