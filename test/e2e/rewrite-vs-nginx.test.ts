/**
 * The rewrite module side by side with Debian's nginx: one configuration (but the port) with
 * rewrite, if, set, break and return in servers and locations, the same requests to both; the
 * status, Location and body must be equal once the signature and the port are set aside.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startHitlessIn as startHitless } from './helpers/side-by-side.js';
import { freePort, startNginx, type NginxInstance } from '../deploy/helpers/nginx.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';

interface Answer {
  readonly status: number;
  readonly location: string | undefined;
  readonly header: string | undefined;
  readonly body: string;
}

function fetch(port: number, path: string, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false, headers: { host: 'localhost', ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, location: res.headers.location, header: res.headers['x-if'] as string | undefined, body: Buffer.concat(chunks).toString('latin1') }));
      res.on('error', reject);
    });
    req.setTimeout(10_000, () => req.destroy(new Error(`timeout on ${path}`)));
    req.on('error', reject);
    req.end();
  });
}

function normalize(answer: Answer, port: number): Answer {
  const fix = (text: string): string => text.replace(/<center>(hitless(?:\/[\d.]+)?|nginx\/[\d.]+)<\/center>/g, '<center>nginx</center>').replaceAll(`:${port}`, ':PORT');
  return { status: answer.status, location: answer.location === undefined ? undefined : fix(answer.location), header: answer.header, body: fix(answer.body) };
}

describe('rewrite module: hitless and nginx side by side', () => {
  let files: TempDir;
  let nginx: NginxInstance | undefined;
  let stopHitless: (() => Promise<void>) | undefined;
  let hitlessPort = 0;
  let nginxPort = 0;
  let hitlessDir = '';

  before(async () => {
    files = tempDir({ 'www/a.txt': 'file a\n', 'www/dir/b.txt': 'file b\n', 'www/ready': 'ok\n' });
    mkdirSync(join(files.path, 'prefix'));
    chmodSync(files.path, 0o755);
    const www = join(files.path, 'www');
    const conf = (port: number, backend: number): string => `events {}
http {
    default_type text/plain;
    server {
        listen 127.0.0.1:${backend};
        location / { return 200 "backend $request_uri\\n"; }
    }
    server {
        listen 127.0.0.1:${port};
        root ${www};
        rewrite_log on;
        rewrite ^/old/(.*)$ /new/$1 last;
        if ($arg_srv = deny) { return 403; }
        if ($http_x_srv) { rewrite ^/srvif/(.*) /t1/srvif-$1 last; }
        set $srv_var "server";
        location /new/ { return 200 "new $uri $args $srv_var\\n"; }
        location /r/ {
            rewrite ^/r/perm/(.*) /p/$1 permanent;
            rewrite ^/r/temp/(.*) /t/$1 redirect;
            rewrite ^/r/abs/(.*) http://example.com/$1;
            rewrite ^/r/noargs/(.*) /n/$1? redirect;
            rewrite ^/r/withargs/(.*) /w/$1?x=1 redirect;
            rewrite ^/r/last/(.*)$ /t1/$1 last;
            rewrite ^/r/break/(.*)$ /dir/$1 break;
            rewrite ^/r/args/(.*)$ /t1/$1?k=v last;
            rewrite ^/r/drop/(.*)$ /t1/$1? last;
            rewrite ^/r/(?<word>[a-z]+)/named$ /t1/$word last;
            rewrite ^/r/chain/(.*)$ /r/x/$1;
            rewrite ^/r/x/(.*)$ /t1/chained-$1;
            return 200 "r fell through $uri\\n";
        }
        location /t1/ { return 200 "t1 $uri args=$args\\n"; }
        location /dir/ { }
        location /loop/ { rewrite ^/loop/(.*)$ /loop/x$1 last; }
        location /pingpong { rewrite ^ /pongping last; }
        location /pongping { rewrite ^ /pingpong last; }
        location /if/ {
            add_header X-If location;
            if ($arg_a = 1) { add_header X-If first; }
            if ($arg_b) { add_header X-If second; }
            if ($arg_c != yes) { set $c "not-yes"; }
            if ($uri ~ ^/if/(\\d+)$) { return 200 "digits $1 c=$c\\n"; }
            if ($uri ~* ^/IF/CASE) { return 200 "caseless $uri\\n"; }
            if ($uri !~ ^/if/stay) { return 200 "not stay c=$c\\n"; }
            return 200 "stay c=$c\\n";
        }
        location /file/ {
            if (-f ${www}/a.txt) { set $f "f"; }
            if (!-f ${www}/missing) { set $f "$f !f"; }
            if (-d ${www}/dir) { set $f "$f d"; }
            if (!-d ${www}/a.txt) { set $f "$f !d"; }
            if (-e ${www}/dir) { set $f "$f e"; }
            if (!-e ${www}/nothing) { set $f "$f !e"; }
            if (!-x ${www}/a.txt) { set $f "$f !x"; }
            return 200 "files:$f\\n";
        }
        location /set/ {
            set $a "one";
            set $b "$a-two";
            set $a "three";
            return 200 "a=$a b=$b\\n";
        }
        location /brk/ {
            set $x "before";
            break;
            set $x "after";
            return 200 "unreachable\\n";
        }
        location /ifbreak/ {
            set $x "1";
            if ($arg_stop) { break; }
            return 200 "no break x=$x\\n";
        }
        location /ordered/ {
            set $v "a";
            return 200 "v=$v\\n";
            set $v "b";
        }
        location /codes/ {
            if ($arg_code = 404) { return 404; }
            if ($arg_code = 301) { return 301 /moved; }
            if ($arg_code = 204) { return 204; }
            return 418 "teapot\\n";
        }
        location /px/ {
            add_header X-If px;
            if ($arg_p) { proxy_pass http://127.0.0.1:${backend}; }
        }
        location /pxcrash/ {
            set $true 1;
            if ($true) { proxy_pass http://127.0.0.1:${backend}; }
            if ($true) { }
        }
        location /rootif/ {
            if ($arg_alt) { root ${www}/dir; }
        }
        location /cap/ {
            if ($uri ~ ^/cap/(?<first>[a-z]+)/(\\d+)) { set $n $2; }
            return 200 "n=$n first=$first one=$1\n";
        }
        location /ep/ {
            error_page 404 /ep-target/;
            try_files $uri @named;
        }
        location /ep-target/ { rewrite ^ /t1/from-error last; }
        location @named { rewrite ^ /t1/named-$arg_n last; }
        location /setargs/ { set $args "x=1&y=$arg_y"; return 200 "$args $arg_x $arg_y $is_args\n"; }
        location /uninit/ { return 200 "[$never_set]\n"; }
        location /pfx/ { set $never_set ok; }
        location /srvif/ { return 200 "srvif location\n"; }
    }
}
`;
    nginxPort = await freePort();
    nginx = await startNginx({ 'nginx.conf': conf(nginxPort, await freePort()) }, nginxPort);
    hitlessPort = await freePort();
    hitlessDir = join(files.path, 'prefix');
    const hitlessConf = join(hitlessDir, 'hitless.conf');
    writeFileSync(hitlessConf, conf(hitlessPort, await freePort()));
    stopHitless = await startHitless(hitlessDir, hitlessConf, hitlessPort);
  });

  after(async () => {
    await stopHitless?.();
    await nginx?.stop();
    files?.remove();
  });

  const cases = [
    '/old/thing', '/old/thing?q=1', '/a.txt?srv=deny', '/new/x',
    '/r/perm/a', '/r/temp/a?z=9', '/r/abs/a?z=9', '/r/noargs/a?z=9', '/r/withargs/a?z=9',
    '/r/last/abc', '/r/last/abc?q=2', '/r/break/b.txt', '/r/args/a?q=3', '/r/drop/a?q=3', '/r/hello/named',
    '/r/chain/c', '/r/none', '/loop/a', '/pingpong',
    '/if/', '/if/?a=1', '/if/?b=1', '/if/?a=1&b=1', '/if/?b=0', '/if/123', '/if/CASE', '/IF/case', '/if/stay', '/if/stay?c=yes',
    '/file/', '/set/', '/brk/', '/ifbreak/', '/ifbreak/?stop=1', '/ordered/',
    '/codes/?code=404', '/codes/?code=301', '/codes/?code=204', '/codes/',
    '/r/temp/%3Fa%20b?z=1', '/r/args/%26x?q=1',
    '/px/x', '/px/x?p=1', '/pxcrash/', '/rootif/b.txt', '/rootif/b.txt?alt=1',
    '/cap/abc/42', '/cap/ABC/42', '/ep/missing?n=5', '/uninit/', '/srvif/a', '/setargs/?y=2',
  ];
  const withHeaders: [string, Record<string, string>][] = [['/srvif/a', { 'x-srv': '1' }], ['/srvif/a', { 'x-srv': '0' }]];

  for (const [path, headers] of [...cases.map((path): [string, Record<string, string>] => [path, {}]), ...withHeaders]) {
    it(`GET ${path} ${JSON.stringify(headers)}`, async () => {
      const ours = normalize(await fetch(hitlessPort, path, headers), hitlessPort);
      const theirs = normalize(await fetch(nginxPort, path, headers), nginxPort);
      assert.deepEqual(ours, theirs);
    });
  }

  it('ends a rewrite loop at the 11th URI change with the log line nginx writes', () => {
    const cycles = (log: string): string[] => [...log.matchAll(/rewrite or internal redirection cycle while processing "[^"]*"/g)].map((match) => match[0]).sort();
    const ours = cycles(readFileSync(join(hitlessDir, 'error.log'), 'utf8'));
    assert.deepEqual(ours, ['rewrite or internal redirection cycle while processing "/loop/xxxxxxxxxxxa"', 'rewrite or internal redirection cycle while processing "/pongping"']);
    assert.deepEqual(ours, cycles(nginx?.logs() ?? ''));
  });

  it('writes the rewrite_log notices', () => {
    const log = readFileSync(join(hitlessDir, 'error.log'), 'utf8');
    assert.match(log, /\[notice\] .*"\^\/old\/\(\.\*\)\$" matches "\/old\/thing", client: 127\.0\.0\.1/);
    assert.match(log, /\[notice\] .*"\^\/old\/\(\.\*\)\$" does not match "\/new\/x"/);
    assert.match(log, /\[notice\] .*rewritten data: "\/new\/thing", args: "q=1"/);
    assert.match(log, /\[notice\] .*rewritten redirect: "http:\/\/example\.com\/a\?z=9"/);
    assert.match(log, /\[warn\] .*using uninitialized "srv_var" variable/);
    assert.match(log, /\[warn\] .*using uninitialized "never_set" variable, client: 127\.0\.0\.1, server: , request: "GET \/uninit\/ HTTP\/1\.1"/);
    assert.match(log, /\[alert\] .*no upstream configuration, client: 127\.0\.0\.1, server: , request: "GET \/pxcrash\/ HTTP\/1\.1"/);
  });
});
