/**
 * TLS to upstreams with a client certificate, hitless and Debian's nginx side by side on one
 * configuration: proxy_ssl_certificate with an encrypted key and proxy_ssl_password_file, names
 * with variables (a missing file or a key of another certificate is a 500, an empty name no
 * certificate), proxy_ssl_crl with a file of two CRLs (the chain
 * verifies only with both, for proxy_ssl_crl and for a server's ssl_crl), and stream's proxy_ssl_conf_command Certificate/PrivateKey. Then
 * hitless alone (nginx 1.22 has no proxy_ssl_certificate_cache, and loads an empty
 * proxy_ssl_certificate as a file): a cached certificate keeps serving after its file changed,
 * an uncached one does not, and an empty proxy_ssl_certificate cancels an inherited one.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fixture } from '../tls/session-client.js';
import { startPair, type NginxPair } from './helpers/nginx-pair.js';
import { freePort } from './helpers/masters.js';
import { configTest, startHitlessIn } from './helpers/side-by-side.js';

/** GET `path`: the status and what the upstream said of the client certificate (`X-Client`). */
function clientOf(port: number, path: string): Promise<{ status: number; client: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false, timeout: 10_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, client: String(res.headers['x-client'] ?? '') }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path} timed out`)));
    req.on('error', reject);
  });
}

/** A CA chain made with the openssl CLI: root, int (signed by root), end (signed by int, DNS:end), each CA's empty CRL. */
function makeChain(dir: string): void {
  const run = (args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  };
  writeFileSync(join(dir, 'ca.conf'), `[ ca ]\ndefault_ca = myca\n[ myca ]\nnew_certs_dir = ${dir}\ndatabase = ${dir}/index\ndefault_md = sha256\npolicy = any\nserial = ${dir}/serial\ncrlnumber = ${dir}/crlnumber\ndefault_days = 1\ndefault_crl_days = 1\nx509_extensions = exts\ncopy_extensions = copy\n[ any ]\ncommonName = supplied\n[ exts ]\nbasicConstraints = critical,CA:TRUE\n[ leaf ]\nbasicConstraints = CA:FALSE\nsubjectAltName = DNS:end\n`);
  writeFileSync(join(dir, 'index'), '');
  writeFileSync(join(dir, 'serial'), '1000\n');
  writeFileSync(join(dir, 'crlnumber'), '1000\n');
  const key = (name: string): void => run(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${name}.key`]);
  key('root');
  run(['req', '-x509', '-new', '-key', 'root.key', '-subj', '/CN=root', '-days', '1', '-out', 'root.crt', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  for (const [name, signer, ext] of [['int', 'root', 'exts'], ['end', 'int', 'leaf']] as const) {
    key(name);
    run(['req', '-new', '-key', `${name}.key`, '-subj', `/CN=${name}`, '-out', `${name}.csr`]);
    run(['ca', '-batch', '-config', 'ca.conf', '-keyfile', `${signer}.key`, '-cert', `${signer}.crt`, '-extensions', ext, '-in', `${name}.csr`, '-out', `${name}.crt`]);
  }
  for (const ca of ['root', 'int']) run(['ca', '-gencrl', '-config', 'ca.conf', '-keyfile', `${ca}.key`, '-cert', `${ca}.crt`, '-out', `${ca}.crl`]);
  writeFileSync(join(dir, 'both.crl'), readFileSync(join(dir, 'root.crl'), 'latin1') + readFileSync(join(dir, 'int.crl'), 'latin1'));
  writeFileSync(join(dir, 'end.fullchain.crt'), readFileSync(join(dir, 'end.crt'), 'latin1') + readFileSync(join(dir, 'int.crt'), 'latin1'));
}

function setup(dir: string): void {
  makeChain(dir);
  copyFileSync(fixture('client-a.crt'), join(dir, 'one.crt'));
  copyFileSync(fixture('client-a.key'), join(dir, 'one.key'));
  copyFileSync(fixture('a-rsa.crt'), join(dir, 'two.crt'));
  copyFileSync(fixture('a-rsa.key'), join(dir, 'two.key'));
  // nginx's workers (nobody) read the files that names with variables give.
  for (const name of readdirSync(dir)) chmodSync(join(dir, name), 0o644);
}

function conf(port: number, dir: string, [upstream, chained, stream, streamUpstream, verifyBoth, verifyRoot]: readonly number[]): string {
  return `load_module /usr/lib/nginx/modules/ngx_stream_module.so;
events {}
http {
    access_log off;
    proxy_ssl_session_reuse off;
    server {
        listen 127.0.0.1:${port};
        proxy_ssl_certificate ${fixture('client-a.crt')};
        proxy_ssl_certificate_key ${fixture('client-a.key')};
        location /inherited { proxy_pass https://127.0.0.1:${upstream}/; }
        location /encrypted {
            proxy_pass https://127.0.0.1:${upstream}/;
            proxy_ssl_certificate ${fixture('a-rsa.crt')};
            proxy_ssl_certificate_key ${fixture('a-rsa.encrypted.key')};
            proxy_ssl_password_file ${fixture('a-rsa.passwords')};
        }
        location /vars { proxy_pass https://127.0.0.1:${upstream}/; proxy_ssl_certificate ${dir}/$arg_cert; proxy_ssl_certificate_key ${dir}/$arg_key; }
        location /none { proxy_pass https://127.0.0.1:${upstream}/; proxy_ssl_certificate $arg_cert; proxy_ssl_certificate_key $arg_cert; }
        location /crl-both { proxy_pass https://127.0.0.1:${chained}/; proxy_ssl_verify on; proxy_ssl_verify_depth 2; proxy_ssl_name end; proxy_ssl_trusted_certificate ${dir}/root.crt; proxy_ssl_crl ${dir}/both.crl; }
        location /client-crl-both { proxy_pass https://127.0.0.1:${verifyBoth}/; proxy_ssl_certificate ${dir}/end.fullchain.crt; proxy_ssl_certificate_key ${dir}/end.key; }
        location /client-crl-root { proxy_pass https://127.0.0.1:${verifyRoot}/; proxy_ssl_certificate ${dir}/end.fullchain.crt; proxy_ssl_certificate_key ${dir}/end.key; }
        location /crl-root { proxy_pass https://127.0.0.1:${chained}/; proxy_ssl_verify on; proxy_ssl_verify_depth 2; proxy_ssl_name end; proxy_ssl_trusted_certificate ${dir}/root.crt; proxy_ssl_crl ${dir}/root.crl; }
    }
    server {
        listen 127.0.0.1:${upstream} ssl;
        ssl_certificate ${fixture('b-rsa.fullchain.crt')};
        ssl_certificate_key ${fixture('b-rsa.key')};
        ssl_verify_client optional_no_ca;
        location / { add_header X-Client "$ssl_client_verify $ssl_client_s_dn" always; return 200 "ok\\n"; }
    }
    server {
        listen 127.0.0.1:${chained} ssl;
        ssl_certificate ${dir}/end.fullchain.crt;
        ssl_certificate_key ${dir}/end.key;
        ssl_verify_client optional_no_ca;
        location / { add_header X-Client "$ssl_client_verify $ssl_client_s_dn" always; return 200 "ok\\n"; }
    }
    server {
        listen 127.0.0.1:${verifyBoth} ssl;
        ssl_certificate ${fixture('b-rsa.fullchain.crt')};
        ssl_certificate_key ${fixture('b-rsa.key')};
        ssl_verify_client on; ssl_verify_depth 2; ssl_client_certificate ${dir}/root.crt; ssl_crl ${dir}/both.crl;
        location / { add_header X-Client "$ssl_client_verify $ssl_client_s_dn" always; return 200 "ok\\n"; }
    }
    server {
        listen 127.0.0.1:${verifyRoot} ssl;
        ssl_certificate ${fixture('b-rsa.fullchain.crt')};
        ssl_certificate_key ${fixture('b-rsa.key')};
        ssl_verify_client on; ssl_verify_depth 2; ssl_client_certificate ${dir}/root.crt; ssl_crl ${dir}/root.crl;
        location / { add_header X-Client "$ssl_client_verify $ssl_client_s_dn" always; return 200 "ok\\n"; }
    }
    server {
        listen 127.0.0.1:${streamUpstream} ssl;
        ssl_certificate ${fixture('b-rsa.fullchain.crt')};
        ssl_certificate_key ${fixture('b-rsa.key')};
        ssl_verify_client optional_no_ca;
        location / { add_header X-Client "$ssl_client_verify $ssl_client_s_dn" always; return 200 "ok\\n"; }
    }
}
stream {
    server {
        listen 127.0.0.1:${stream};
        proxy_pass 127.0.0.1:${streamUpstream};
        proxy_ssl on;
        proxy_ssl_session_reuse off;
        proxy_ssl_certificate ${fixture('client-a.crt')};
        proxy_ssl_certificate_key ${fixture('client-a.key')};
        proxy_ssl_conf_command Certificate ${fixture('a-rsa.crt')};
        proxy_ssl_conf_command PrivateKey ${fixture('a-rsa.key')};
    }
}
`;
}

describe('proxy_ssl_certificate, proxy_ssl_password_file, proxy_ssl_crl, proxy_ssl_conf_command: hitless and nginx side by side', () => {
  let pair: NginxPair;
  let mismatch: { status: number; client: string } | undefined;
  const answers: Record<'hitless' | 'nginx', Record<string, { status: number; client: string }>> = { hitless: {}, nginx: {} };
  const paths = [
    '/inherited',
    '/encrypted',
    '/vars?cert=one.crt&key=one.key',
    '/vars?cert=two.crt&key=two.key',
    '/vars?cert=missing.crt&key=missing.key',
    '/none',
    '/crl-both',
    '/crl-root',
    '/client-crl-both',
    '/client-crl-root',
  ];

  before(async () => {
    pair = await startPair(conf, setup, 6);
    for (const name of ['hitless', 'nginx'] as const) {
      for (const path of paths) answers[name][path] = await clientOf(pair.ports[name], path);
      answers[name]['stream'] = await clientOf(pair.extra[name][2] as number, '/');
    }
    // nginx on OpenSSL 3.0 drops a certificate whose key does not match and handshakes without
    // one; hitless refuses the pair (500 and the error nginx's ngx_ssl_connection_certificate() logs).
    mismatch = await clientOf(pair.ports.hitless, '/vars?cert=one.crt&key=two.key');
  });
  after(async () => {
    await pair?.stop();
  });

  it('answers every request as nginx does', () => {
    assert.deepEqual(answers.hitless, answers.nginx);
  });

  it('presents the certificate the directives name, and none where they say so', () => {
    const a = answers.hitless;
    // optional_no_ca without a CA: FAILED, with the certificate's name.
    assert.match(a['/inherited']?.client ?? '', /^FAILED:.* CN=client-a,/);
    assert.match(a['/encrypted']?.client ?? '', / CN=a\.test$/);
    assert.match(a['/vars?cert=one.crt&key=one.key']?.client ?? '', /CN=client-a/);
    assert.match(a['/vars?cert=two.crt&key=two.key']?.client ?? '', /CN=a\.test/);
    assert.equal(a['/vars?cert=missing.crt&key=missing.key']?.status, 500);
    assert.equal(mismatch?.status, 500);
    assert.equal(a['/none']?.client, 'NONE');
    assert.match(a['stream']?.client ?? '', /CN=a\.test/, 'proxy_ssl_conf_command Certificate replaces proxy_ssl_certificate');
  });

  it('checks every CRL of a proxy_ssl_crl file, and wants one for each CA of the chain', () => {
    assert.equal(answers.hitless['/crl-both']?.status, 200);
    assert.equal(answers.hitless['/crl-root']?.status, 502);
    // ssl_crl of a server verifying client certificates: the same rule (ssl_crl.t's "no revoked chain").
    assert.deepEqual(answers.hitless['/client-crl-both'], { status: 200, client: 'SUCCESS CN=end' });
    assert.equal(answers.hitless['/client-crl-root']?.status, 400);
  });

  it('logs a certificate that does not load, and no key material', () => {
    const log = readFileSync(join(pair.dir, 'hitless', 'logs', 'error.log'), 'utf8');
    assert.match(log, /\[error\] .*cannot load certificate "[^"]*missing\.crt"/);
    assert.match(log, /SSL_use_PrivateKey\("[^"]*two\.key"\) failed .*key values mismatch/);
    assert.doesNotMatch(log, /PRIVATE KEY/);
  });
});

describe('proxy_ssl_certificate_cache (hitless; nginx 1.22 has none)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hitless-proxy-cert-cache-'));
  let stop: (() => Promise<void>) | undefined;

  after(async () => {
    await stop?.();
    rmSync(dir, { recursive: true, force: true });
  });

  let port = 0;

  it('keeps a cached certificate after its files change, and reads them again without a cache', async () => {
    setup(dir);
    port = await freePort();
    const upstream = await freePort();
    writeFileSync(
      join(dir, 'nginx.conf'),
      `
events {}
http {
    access_log off;
    proxy_ssl_session_reuse off;
    server {
        listen 127.0.0.1:${port};
        proxy_ssl_certificate ${dir}/$arg_cert.crt;
        proxy_ssl_certificate_key ${dir}/$arg_cert.key;
        location /cached { proxy_pass https://127.0.0.1:${upstream}/; proxy_ssl_certificate_cache max=10 valid=1h; }
        location /off { proxy_pass https://127.0.0.1:${upstream}/; }
        location /empty { proxy_pass https://127.0.0.1:${upstream}/; proxy_ssl_certificate ""; proxy_ssl_certificate_key ""; }
    }
    server {
        listen 127.0.0.1:${upstream} ssl;
        ssl_certificate ${fixture('b-rsa.fullchain.crt')};
        ssl_certificate_key ${fixture('b-rsa.key')};
        ssl_verify_client optional_no_ca;
        location / { add_header X-Client "$ssl_client_s_dn" always; return 200 "ok\\n"; }
    }
}
`,
    );
    stop = await startHitlessIn(dir, join(dir, 'nginx.conf'), port);
    assert.match((await clientOf(port, '/cached?cert=one')).client, /CN=client-a/);
    assert.match((await clientOf(port, '/off?cert=one')).client, /CN=client-a/);
    // Both files replaced, as a deploy does (a new inode each).
    for (const ext of ['crt', 'key']) {
      copyFileSync(join(dir, `two.${ext}`), join(dir, `one.${ext}.tmp`));
      renameSync(join(dir, `one.${ext}.tmp`), join(dir, `one.${ext}`));
    }
    assert.match((await clientOf(port, '/cached?cert=one')).client, /CN=client-a/, 'valid=1h: the cached pair serves');
    assert.match((await clientOf(port, '/off?cert=one')).client, /CN=a\.test/, 'no cache: the new files');
  });

  it('takes an empty proxy_ssl_certificate for none, cancelling the inherited one (nginx 1.22 loads the prefix instead)', async () => {
    assert.deepEqual(await clientOf(port, '/empty?cert=one'), { status: 200, client: '' });
  });
});

describe('proxy_ssl_password_file and proxy_ssl_conf_command at -t: hitless and nginx side by side', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hitless-proxy-ssl-t-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** `-t` of both binaries on a location with `directives`: the exit status and the [emerg] or [warn] line, without nginx's time and pid. */
  const both = (directives: string): Record<'hitless' | 'nginx', { status: number | null; line: string }> => {
    const file = join(dir, 'nginx.conf');
    writeFileSync(file, `error_log ${dir}/error.log;\npid ${dir}/pid;\nevents {}\nhttp { server { listen 127.0.0.1:1; location / { proxy_pass https://127.0.0.1:1; ${directives} } } }\n`);
    const result = {} as Record<'hitless' | 'nginx', { status: number | null; line: string }>;
    for (const binary of ['hitless', 'nginx'] as const) {
      const { status, output } = configTest(binary, ['-c', file]);
      const line = /\[(?:emerg|warn)\] (?:\d+#\d+: )?(.*)/.exec(output)?.[1] ?? '';
      result[binary] = { status, line };
    }
    return result;
  };

  it('refuses a password file that does not open, with nginx\'s words', () => {
    const answer = both(`proxy_ssl_password_file ${dir}/none;`);
    assert.equal(answer.hitless.status, 1);
    assert.deepEqual(answer.hitless, answer.nginx);
  });

  it('refuses a command OpenSSL does not know, with nginx\'s words', () => {
    const answer = both('proxy_ssl_conf_command Foo bar;');
    assert.match(answer.hitless.line, /^SSL_CONF_cmd\("Foo", "bar"\) failed/);
    assert.deepEqual(answer.hitless, answer.nginx);
  });

  it('warns of a command OpenSSL knows and Node cannot apply, where nginx applies it', () => {
    const answer = both('proxy_ssl_conf_command RecordPadding 16;');
    assert.equal(answer.nginx.status, 0);
    assert.equal(answer.hitless.status, 0);
    assert.equal(answer.hitless.line, '"proxy_ssl_conf_command RecordPadding" has no effect in hitless (Node has no SSL_CONF_cmd() and no option for it)');
  });
});
