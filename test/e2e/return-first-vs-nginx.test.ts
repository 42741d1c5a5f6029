/**
 * Rewrite scripts that begin with `return` (rewrite-script.ts answers them without running the
 * codes), side by side with Debian's nginx: the status, text with variables, a redirect's
 * Location, codes after the `return` never run, a server-level `return` before any location.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fetchRaw, fieldsOf, startPair, type NginxPair } from './helpers/nginx-pair.js';

describe('scripts beginning with return: hitless and nginx side by side', () => {
  let pair: NginxPair;

  before(async () => {
    pair = await startPair((port, _dir, extra) => `events {}
http {
    access_log off;
    server {
        listen 127.0.0.1:${port};
        set $late "before";
        location /text { return 200 "t $uri $arg_a $late\\n"; set $late "after"; }
        location /status { return 204; rewrite ^ /text last; }
        location /redirect { return 302 /elsewhere?$args; }
        location /code { return 403; }
        location /then { return 200 "$late"; if ($arg_a) { return 500; } }
    }
    server {
        listen 127.0.0.1:${extra[0]};
        return 200 "server $uri";
        location / { return 500; }
    }
}
`, () => undefined, 1);
  });

  after(async () => {
    await pair.stop();
  });

  const answers = async (port: (name: 'hitless' | 'nginx') => number, path: string): Promise<{ hitless: unknown; nginx: unknown }> => {
    const one = async (name: 'hitless' | 'nginx'): Promise<unknown> => {
      const answer = await fetchRaw(port(name), path);
      return { status: answer.status, location: fieldsOf(answer, 'location').map((value) => value.replace(/:[0-9]+\//, ':PORT/')), body: answer.status === 200 ? answer.body : '' };
    };
    return { hitless: await one('hitless'), nginx: await one('nginx') };
  };

  for (const path of ['/text?a=1', '/status', '/redirect?x=y', '/code', '/then?a=1']) {
    it(`answers ${path} as nginx does`, async () => {
      const { hitless, nginx } = await answers((name) => pair.ports[name], path);
      assert.deepEqual(hitless, nginx);
    });
  }

  it('a server-level return answers before any location', async () => {
    const { hitless, nginx } = await answers((name) => pair.extra[name][0] ?? 0, '/any');
    assert.deepEqual(hitless, nginx);
    assert.deepEqual(hitless, { status: 200, location: [], body: 'server /any' });
  });
});
