/**
 * The admin listener's status page in a real browser: Debian's Chromium (headless, driven with
 * playwright-core) opens `GET /status` on a loopback TCP admin listener, is asked for the token
 * (the page holds no data; /metrics answers 401 without it), takes it in the form, and shows
 * requests, status classes, an upstream peer, a certificate and the workers; while a bounded load
 * runs the numbers change. The token goes as a header: no request the browser makes carries it in
 * its URL. The screenshot is left at build/status-page.png (docs/observability.md shows one).
 */
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser } from 'playwright-core';
import { MasterUnderTest, TestPrefix, freePort, startMaster, waitFor } from './helpers/masters.js';

const CHROMIUM = '/usr/bin/chromium';
const TLS = new URL('../../../test/fixtures/tls/', import.meta.url).pathname;
const SCREENSHOT = new URL('../../status-page.png', import.meta.url).pathname;
const TOKEN = 'status-page-token-0123456789';

describe('status page in Chromium', () => {
  const prefix = new TestPrefix();
  let master: MasterUnderTest | undefined;
  let browser: Browser | undefined;
  let port = 0;
  let upstream = 0;
  let admin = 0;

  before(async () => {
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is needed (apt-get install chromium)`);
    port = await freePort();
    upstream = await freePort();
    admin = await freePort();
    writeFileSync(join(prefix.dir, 'admin.token'), `${TOKEN}\n`, { mode: 0o600 });
    master = await startMaster({
      prefix,
      port,
      program: 'hitless',
      conf: `worker_processes 1;
admin_listen 127.0.0.1:${admin} token_file=admin.token;
events {}
http {
    access_log off;
    upstream app { server 127.0.0.1:${upstream}; }
    server { listen 127.0.0.1:${upstream}; location / { return 200 "app"; } }
    server {
        listen 127.0.0.1:${port};
        server_name front;
        location /app { proxy_pass http://app; }
        location /missing { return 404; }
        location / { return 200 "ok"; }
    }
    server {
        listen 127.0.0.1:${await freePort()} ssl;
        ssl_certificate ${TLS}a-rsa.crt;
        ssl_certificate_key ${TLS}a-rsa.key;
    }
}
`,
    });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  });

  after(async () => {
    await browser?.close();
    await master?.stop();
    prefix.remove();
  });

  it('asks for the token, then shows live numbers that change under load, never with the token in a URL', { timeout: 60_000 }, async () => {
    const page = await (browser as Browser).newPage({ viewport: { width: 420, height: 900 } });
    const urls: string[] = [];
    page.on('request', (request) => urls.push(request.url()));
    await page.goto(`http://127.0.0.1:${admin}/status`);
    await page.waitForSelector('#login.shown', { timeout: 10_000 });
    await page.fill('#token', TOKEN);
    await page.click('#login button');
    const text = async (selector: string): Promise<string> => (await page.textContent(selector)) ?? '';
    // Polled from here: the page's Content-Security-Policy allows no script evaluated from a string.
    const before = await waitFor('the first numbers', async () => {
      const shown = await text('#requests');
      return /^[0-9,]+$/.test(shown) ? Number(shown.replace(/,/g, '')) : undefined;
    }, 10_000);

    // A bounded load: 300 requests, some to the upstream, some 404.
    const get = (path: string): Promise<void> => new Promise((resolve) => {
      http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
        res.resume();
        res.on('end', resolve);
      }).on('error', () => resolve());
    });
    for (let i = 0; i < 300; i++) await get(i % 3 === 0 ? '/app' : i % 5 === 0 ? '/missing' : '/');

    await waitFor('the page to show the load', async () => {
      const shown = Number((await text('#requests')).replace(/,/g, ''));
      return shown >= before + 300 ? shown : undefined;
    }, 15_000);
    const codes = await text('#codes');
    assert.match(codes, /2xx/);
    assert.match(codes, /4xx/);
    const peers = await text('#peers');
    assert.match(peers, new RegExp(`app127\\.0\\.0\\.1:${upstream}up`));
    assert.match(await text('#certs'), /a-rsa\.crt/);
    assert.match(await text('#workers'), /yes/);
    assert.match(await text('#reloads'), /generation 1 /);
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    assert.ok(urls.length > 2, urls.join('\n'));
    for (const url of urls) assert.doesNotMatch(url, new RegExp(TOKEN), `the token in a URL: ${url}`);
  });
});
