/** `mirror` and `mirror_request_body` at load time: nginx's refusals, word for word (checked against nginx 1.22's `-t`). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { errorOf, load } from './helpers.js';

const server = (body: string): string => `http { server { listen 127.0.0.1:1; ${body} } }`;

describe('mirror directives', () => {
  it('refuses off mixed with URIs, in either order, as ngx_http_mirror() does', () => {
    assert.equal(errorOf(server('location / { mirror /a; mirror off; }')), '"mirror" directive is duplicate in /x.conf:1');
    assert.equal(errorOf(server('location / { mirror off; mirror /a; }')), '"mirror" directive is duplicate in /x.conf:1');
    assert.equal(errorOf(server('location / { mirror off; mirror off; }')), '"mirror" directive is duplicate in /x.conf:1');
  });

  it('refuses a mirror without a URI and a bad flag', () => {
    assert.equal(errorOf(server('location / { mirror; }')), 'invalid number of arguments in "mirror" directive in /x.conf:1');
    assert.equal(errorOf(server('location / { mirror_request_body maybe; }')), 'invalid value "maybe" in "mirror_request_body" directive, it must be "on" or "off" in /x.conf:1');
    assert.equal(errorOf('http { mirror /a; server { listen 127.0.0.1:1; } mirror_request_body on; } mirror /b;'), '"mirror" directive is not allowed here in /x.conf:1');
  });

  it('accepts several URIs at every http level', () => {
    assert.doesNotThrow(() => load('http { mirror /a; mirror /b; mirror_request_body off; log_subrequest on; server { listen 127.0.0.1:1; mirror /c; location / { mirror off; } } }'));
  });
});
