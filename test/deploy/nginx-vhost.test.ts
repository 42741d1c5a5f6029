/**
 * Finding the vhost for a name in an nginx configuration (includes, wildcards, regexes, inherited
 * certificates, dual RSA/ECDSA certificates), and the staged copy `nginx -t` checks.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { parseConfig, parseConfigText, type DirectiveNode } from '../../src/conf/parser.js';
import { DeployError } from '../../src/deploy/deploy-error.js';
import { NginxTarget } from '../../src/deploy/targets/nginx.js';
import { stageNginxConfig } from '../../src/deploy/targets/nginx-stage.js';
import { findServers, matchServerName, parseListen, readNginxLayout } from '../../src/deploy/targets/nginx-vhost.js';
import { tempDir } from '../helpers/tmp.js';
import { fixture, NGINX, nginxTest } from './helpers/nginx.js';

const leaf = (name: string): X509Certificate => new X509Certificate(readFileSync(fixture(name)));

function listen(text: string): ReturnType<typeof parseListen> {
  const [node] = parseConfigText(`listen ${text};`).nodes;
  return parseListen(node as DirectiveNode);
}

describe('nginx vhost discovery', () => {
  it('matches server names with nginx\'s precedence', () => {
    assert.deepEqual(matchServerName('a.test', 'A.Test'), { rank: 0, length: 6 });
    assert.equal(matchServerName('*.a.test', 'a.test'), undefined);
    assert.deepEqual(matchServerName('*.a.test', 'x.y.a.test'), { rank: 1, length: 8 });
    assert.deepEqual(matchServerName('.a.test', 'a.test'), { rank: 1, length: 7 });
    assert.deepEqual(matchServerName('www.a.*', 'www.a.org'), { rank: 2, length: 7 });
    assert.deepEqual(matchServerName('~^(?P<sub>\\w+)\\.r\\.test$', 'x.r.test'), { rank: 3, length: 0 });
    assert.equal(matchServerName('_', 'a.test'), undefined);
  });

  it('reads listen as nginx does', () => {
    assert.deepEqual(listen('8443 ssl').endpoint, { host: '127.0.0.1', port: 8443 });
    assert.deepEqual(listen('[::1]:8443 ssl http2').endpoint, { host: '::1', port: 8443 });
    assert.deepEqual(listen('[::]:443 ssl').endpoint, { host: '::1', port: 443 });
    assert.deepEqual(listen('*:443 ssl').endpoint, { host: '127.0.0.1', port: 443 });
    assert.deepEqual(listen('localhost').endpoint, { host: 'localhost', port: 80 });
    assert.equal(listen('127.0.0.1:80').ssl, false);
    assert.equal(listen('unix:/run/x.sock ssl').endpoint, undefined);
  });

  const dir = tempDir({
    'nginx.conf': `events {}
http {
    ssl_certificate shared/http.crt;
    ssl_certificate_key shared/http.key;
    server { listen 80; server_name a.test; }
    include sites/*.conf;
    server { listen 443 ssl; server_name inherits.test; }
}
`,
    'sites/a.conf': `server {
    listen 127.0.0.1:8443 ssl;
    listen [::1]:8443 ssl;
    server_name a.test www.a.test;
    ssl_certificate /etc/x/a-rsa.crt;
    ssl_certificate_key /etc/x/a-rsa.key;
    ssl_certificate certs/a-ec.crt;
    ssl_certificate_key certs/a-ec.key;
}
`,
    'sites/w.conf': 'server { listen 8443 ssl; server_name *.w.test ~^r\\d+\\.test$; ssl_certificate w.crt; ssl_certificate_key w.key; }\n',
    'sites/w2.conf': 'server { listen 8443 ssl; server_name *.deep.w.test; ssl_certificate w2.crt; ssl_certificate_key w2.key; }\n',
  });
  after(() => dir.remove());
  const layout = readNginxLayout(parseConfig(join(dir.path, 'nginx.conf')));

  it('finds the TLS server for a name through includes, and ignores plain-HTTP servers', () => {
    const [server, ...rest] = findServers(layout, 'a.test');
    assert.equal(rest.length, 0);
    assert.equal(server?.node.file, join(dir.path, 'sites/a.conf'));
    assert.deepEqual(server?.listens.map((l) => l.endpoint), [{ host: '127.0.0.1', port: 8443 }, { host: '::1', port: 8443 }]);
  });

  it('prefers the longest wildcard, then regexes', () => {
    assert.deepEqual(findServers(layout, 'x.deep.w.test').map((s) => s.names[0]), ['*.deep.w.test']);
    assert.deepEqual(findServers(layout, 'x.w.test').map((s) => s.names[0]), ['*.w.test']);
    assert.deepEqual(findServers(layout, 'r12.test').map((s) => s.names[0]), ['*.w.test']);
    assert.deepEqual(findServers(layout, 'nothing.test'), []);
  });

  it('picks the certificate of the new leaf\'s key type among RSA and ECDSA, relative paths against the conf directory', async () => {
    dir.write('certs/a-ec.crt', readFileSync(fixture('a-ec.fullchain.crt'), 'utf8'));
    const target = new NginxTarget({ conf: join(dir.path, 'nginx.conf') });
    const placement = await target.locateCertificate(['a.test'], leaf('a-ec.crt'));
    assert.deepEqual(placement.destinations, [
      { role: 'certificate', path: join(dir.path, 'certs/a-ec.crt') },
      { role: 'key', path: join(dir.path, 'certs/a-ec.key') },
    ]);
    assert.deepEqual(placement.names, ['www.a.test']);
    assert.equal(placement.endpoints.length, 2);
  });

  it('refuses certificates inherited from http unless told, since every vhost would change', async () => {
    const target = new NginxTarget({ conf: join(dir.path, 'nginx.conf') });
    await assert.rejects(target.locateCertificate(['inherits.test'], leaf('a-ec.crt')), (err: unknown) => {
      assert.ok(err instanceof DeployError);
      assert.equal(err.code, 'HITLESS_ERR_DEPLOY_INPUT');
      assert.match(err.message, /inherited from the http block in .*nginx\.conf:3: changing it changes every server/);
      return true;
    });
    const allowed = await new NginxTarget({ conf: join(dir.path, 'nginx.conf'), allowHttpLevel: true }).locateCertificate(['inherits.test'], leaf('a-ec.crt'));
    assert.equal(allowed.destinations[0]?.path, join(dir.path, 'shared/http.crt'));
    assert.match(allowed.notes.join('\n'), /http-level ssl_certificate/);
  });

  it('refuses a name no TLS server has', async () => {
    const target = new NginxTarget({ conf: join(dir.path, 'nginx.conf') });
    await assert.rejects(target.locateCertificate(['nothing.test'], leaf('a-ec.crt')), /No server block .* matching "nothing\.test"/);
  });
});

describe('the staged configuration nginx -t checks', () => {
  const dir = tempDir({
    'conf/nginx.conf': 'events {}\nhttp {\n    include sites/*.conf;  # relative: against conf/\n    include other.conf;\n}\n',
    'conf/sites/a.conf': 'server {\n    listen 127.0.0.1:1 ssl;\n    server_name a.test;\n    ssl_certificate "../certs/a.crt"; # quoted\n    ssl_certificate_key ../certs/a.key;\n}\n',
    'conf/sites/b.conf': 'server { listen 127.0.0.1:2; server_name b.test; }\n',
    'conf/other.conf': '# untouched\n',
  });
  after(() => dir.remove());
  copyFileSync(fixture('a-rsa.fullchain.crt'), dir.write('certs/a.crt', ''));
  copyFileSync(fixture('a-rsa.key'), dir.write('certs/a.key', ''));
  const conf = join(dir.path, 'conf/nginx.conf');
  const globals = `pid ${join(dir.path, 'nginx.pid')}; error_log ${join(dir.path, 'error.log')};`;

  it('patches exactly the directive words, and includes reach the copies', async () => {
    const stagedCert = dir.write('certs/.a.crt.staged', readFileSync(fixture('a-ec.fullchain.crt'), 'utf8'));
    const stagedKey = dir.write('certs/.a.key.staged', readFileSync(fixture('a-ec.key'), 'utf8'));
    const staged = new Map([
      [join(dir.path, 'certs/a.crt'), stagedCert],
      [join(dir.path, 'certs/a.key'), stagedKey],
    ]);
    const copy = await stageNginxConfig(parseConfig(conf), staged);
    try {
      assert.equal(copy.written.length, 2);
      const main = readFileSync(copy.main, 'utf8');
      const site = copy.written.find((path) => path !== copy.main) as string;
      assert.match(site, /conf\/sites\/\.a\.conf\.hitless-stage\./);
      assert.equal(
        main,
        `events {}\nhttp {\n    include "${site}"; include "${join(dir.path, 'conf/sites/b.conf')}";  # relative: against conf/\n    include other.conf;\n}\n`,
      );
      assert.equal(
        readFileSync(site, 'utf8'),
        `server {\n    listen 127.0.0.1:1 ssl;\n    server_name a.test;\n    ssl_certificate "${stagedCert}"; # quoted\n    ssl_certificate_key "${stagedKey}";\n}\n`,
      );
      const result = nginxTest(copy.main, globals, dir.path);
      assert.equal(result.status, 0, result.output);
    } finally {
      await copy.remove();
    }
    assert.equal(existsSync(copy.main), false);
  });

  it('makes nginx -t see a bad staged certificate in an included vhost', async () => {
    const stagedCert = dir.write('certs/.weak.crt', readFileSync(fixture('a-weak.fullchain.crt'), 'utf8'));
    const stagedKey = dir.write('certs/.weak.key', readFileSync(fixture('a-weak.key'), 'utf8'));
    const target = new NginxTarget({ conf, globals, prefix: `${dir.path}/`, nginx: NGINX });
    await assert.rejects(
      target.validateStaged(new Map([[join(dir.path, 'certs/a.crt'), stagedCert], [join(dir.path, 'certs/a.key'), stagedKey]])),
      /ee key too small/,
    );
    const ok = await target.validateStaged(new Map());
    assert.equal(ok.status, 0);
  });
});
