/**
 * `post_action` side by side with Debian's nginx: once the response is done, the request runs
 * again at the URI (without its args) or the named location, whose response the client never
 * sees; here each post action proxies back to a location that logs what reached it. The access
 * log line is the post action's: its location's access_log, its $uri and $status.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fetchRaw, startPair, type NginxPair } from './helpers/nginx-pair.js';

const SERVERS = ['hitless', 'nginx'] as const;

describe('post_action: hitless and nginx side by side', () => {
  let pair: NginxPair;
  const logOf = (name: (typeof SERVERS)[number], file: string): string => join(pair.dir, name, 'logs', file);

  /** Waits (at most 5 s) until the file has `lines` lines; returns them. */
  const linesOf = async (path: string, lines: number): Promise<string[]> => {
    for (let i = 0; i < 250; i++) {
      const found = existsSync(path) ? readFileSync(path, 'latin1').split('\n').filter((line) => line !== '') : [];
      if (found.length >= lines) return found;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return assert.fail(`${path} has fewer than ${lines} lines within 5 s`);
  };

  before(async () => {
    pair = await startPair(
      (port, dir) => `events {}
http {
    log_format t '$request_uri $uri $args $status';
    access_log off;
    server {
        listen 127.0.0.1:${port};
        root ${dir}/html;
        location / { post_action /post; }
        location /named { post_action @after; return 200 "named\\n"; }
        location /post { proxy_pass http://127.0.0.1:${port}/seen$is_args$args; }
        location @after { rewrite ^ /seen-named break; proxy_pass http://127.0.0.1:${port}; }
        location /seen { access_log logs/seen.log t; return 200 "HIDDEN\\n"; }
        location /logged/ { alias ${dir}/html/; access_log logs/main.log t; post_action /post-logged; }
        location /post-logged { access_log logs/post.log t; }
    }
}
`,
      (dir) => {
        mkdirSync(join(dir, 'html'));
        writeFileSync(join(dir, 'html', 'index.html'), 'index\n');
      },
    );
  });

  after(async () => {
    await pair?.stop();
  });

  it('answers with the main response only, and runs the post action at the URI without the args', async () => {
    for (const name of SERVERS) {
      const answer = await fetchRaw(pair.ports[name], '/index.html?x=1');
      assert.equal(answer.status, 200, name);
      assert.equal(answer.body, 'index\n', name);
    }
    const [ours, theirs] = await Promise.all(SERVERS.map((name) => linesOf(logOf(name, 'seen.log'), 1)));
    assert.deepEqual(ours, theirs);
    assert.deepEqual(ours, ['/seen /seen - 200']);
  });

  it('runs a named location as the post action, with the args', async () => {
    for (const name of SERVERS) {
      const answer = await fetchRaw(pair.ports[name], '/named?y=2');
      assert.equal(answer.body, 'named\n', name);
    }
    const [ours, theirs] = await Promise.all(SERVERS.map((name) => linesOf(logOf(name, 'seen.log'), 2)));
    assert.deepEqual(ours, theirs);
    assert.equal(ours?.[1], '/seen-named?y=2 /seen-named y=2 200');
  });

  it('writes the line in the post action\'s location, with its $uri and $status', async () => {
    for (const name of SERVERS) assert.equal((await fetchRaw(pair.ports[name], '/logged/index.html?z=3')).body, 'index\n', name);
    const [ours, theirs] = await Promise.all(SERVERS.map((name) => linesOf(logOf(name, 'post.log'), 1)));
    assert.deepEqual(ours, theirs);
    assert.deepEqual(ours, ['/logged/index.html?z=3 /post-logged - 404']);
    // The client's own location logs nothing: its line is the post action's.
    for (const name of SERVERS) assert.equal(existsSync(logOf(name, 'main.log')) ? readFileSync(logOf(name, 'main.log'), 'latin1') : '', '', name);
  });
});
