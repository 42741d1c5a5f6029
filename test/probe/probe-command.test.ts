import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { after, describe, it } from 'node:test';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { probeCommand } from '../../src/cli/probe-command.js';
import type { ProbeReport } from '../../src/probe/probe.js';
import { refusedPort, startHttpServer, type LoopbackServer } from './loopback.js';

const servers: LoopbackServer[] = [];
after(async () => {
  await Promise.all(servers.map((server) => server.close()));
});

async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<LoopbackServer> {
  const server = await startHttpServer(handler);
  servers.push(server);
  return server;
}

/** Runs `hitless probe ...args` and collects what it wrote. */
async function probe(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  stdout.on('data', (chunk: Buffer) => out.push(chunk));
  stderr.on('data', (chunk: Buffer) => err.push(chunk));
  const code = await probeCommand(args, { stdout, stderr });
  return { code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
}

describe('hitless probe', () => {
  it('exits 0 and prints OK when every request succeeds', async () => {
    const server = await serve((_req, res) => res.end('ok'));
    const { code, stdout, stderr } = await probe(server.url, '--requests', '20', '--concurrency', '4');
    assert.equal(code, 0, stdout);
    assert.equal(stderr, '');
    assert.match(stdout, /^probe http:\/\/127\.0\.0\.1:\d+\/: keep-alive, concurrency 4$/m);
    assert.match(stdout, /^ {2}200 +20$/m);
    assert.match(stdout, /^OK: 20 requests, none failed$/m);
  });

  it('prints the report as JSON with --json', async () => {
    const server = await serve((_req, res) => res.end('ok'));
    const { code, stdout } = await probe(server.url, '--json', '--requests=15', '--concurrency=3', '--new-connections');
    assert.equal(code, 0);
    const report = JSON.parse(stdout) as ProbeReport;
    assert.equal(report.total, 15);
    assert.equal(report.ok, 15);
    assert.equal(report.mode, 'new-connections');
    assert.equal(server.connections(), 15);
  });

  it('exits 1 and lists the failures when a request gets a non-2xx status', async () => {
    let served = 0;
    const server = await serve((_req, res) => {
      served += 1;
      res.statusCode = served === 3 ? 503 : 200;
      res.end();
    });
    const { code, stdout } = await probe(server.url, '--requests', '10', '--concurrency', '1');
    assert.equal(code, 1);
    assert.match(stdout, /^ {2}503 +1$/m);
    assert.match(stdout, /^FAILED: 1 of 10 requests failed$/m);
    assert.match(stdout, /^ {2}\+\d+\.\d{3} s {2}503 {2}HTTP 503 Service Unavailable$/m);
  });

  it('exits 1 when the port refuses connections', async () => {
    const port = await refusedPort();
    const { code, stdout } = await probe(`http://127.0.0.1:${port}/`, '--requests', '3', '--json');
    assert.equal(code, 1);
    assert.deepEqual((JSON.parse(stdout) as ProbeReport).byError, { refused: 3 });
  });

  it('stops after --duration and counts what was sent', async () => {
    const server = await serve((_req, res) => res.end('ok'));
    const { code, stdout } = await probe(server.url, '--duration', '200ms', '--concurrency', '2', '--json');
    assert.equal(code, 0);
    const report = JSON.parse(stdout) as ProbeReport;
    assert.equal(report.stoppedBy, 'duration');
    assert.ok(report.total > 0);
    assert.equal(report.failed, 0);
  });

  it('counts a timeout given with --timeout', async () => {
    const server = await serve(() => {
      // Never answers.
    });
    const { code, stdout } = await probe(server.url, '--timeout', '100ms', '--requests', '2', '--json');
    assert.equal(code, 1);
    assert.deepEqual((JSON.parse(stdout) as ProbeReport).byError, { timeout: 2 });
  });

  it('sends every --header, repeated names as repeated lines', async () => {
    const seen: string[][] = [];
    const server = await serve((req, res) => {
      seen.push(req.rawHeaders.filter((_, i) => req.rawHeaders[i - 1]?.toLowerCase() === 'x-probe'));
      res.end();
    });
    const { code } = await probe(server.url, '--requests', '1', '--header', 'X-Probe: one', '--header=x-probe:two');
    assert.equal(code, 0);
    assert.deepEqual(seen, [['one', 'two']]);
  });

  it('stops on its signal (as on Ctrl-C) and still prints the report', async () => {
    const stop = new AbortController();
    let served = 0;
    const server = await serve((_req, res) => {
      served += 1;
      if (served === 10) stop.abort();
      res.end();
    });
    const stdout = new PassThrough();
    const chunks: Buffer[] = [];
    stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
    const code = await probeCommand([server.url, '--duration', '1h', '--concurrency', '2', '--json'], { stdout, stderr: new PassThrough() }, stop.signal);
    assert.equal(code, 0);
    const report = JSON.parse(Buffer.concat(chunks).toString()) as ProbeReport;
    assert.equal(report.stoppedBy, 'signal');
    assert.equal(report.total, served);
  });

  it('prints usage with --help and exits 0', async () => {
    const { code, stdout, stderr } = await probe('--help');
    assert.equal(code, 0);
    assert.match(stdout, /^usage: hitless probe URL /);
    assert.equal(stderr, '');
  });

  const usageErrors: [string[], string][] = [
    [['http://127.0.0.1/', '--bogus'], 'hitless: invalid option: "--bogus"'],
    [['http://127.0.0.1/', '-x'], 'hitless: invalid option: "-x"'],
    [[], 'hitless: no URL given'],
    [['http://127.0.0.1/', 'http://127.0.0.2/'], 'hitless: invalid option: "http://127.0.0.2/"'],
    [['ftp://127.0.0.1/'], 'hitless: invalid option: "ftp://127.0.0.1/": the scheme must be http or https'],
    [['not a url'], 'hitless: invalid option: "not a url": not a URL'],
    [['http://127.0.0.1/', '--duration', '3x'], 'hitless: invalid option: "--duration 3x"'],
    [['http://127.0.0.1/', '--duration', '0'], 'hitless: invalid option: "--duration 0"'],
    [['http://127.0.0.1/', '--timeout', '-1'], 'hitless: invalid option: "--timeout -1"'],
    [['http://127.0.0.1/', '--concurrency', '0'], 'hitless: invalid option: "--concurrency 0"'],
    [['http://127.0.0.1/', '--requests', '1.5'], 'hitless: invalid option: "--requests 1.5"'],
    [['http://127.0.0.1/', '--header', 'no colon'], 'hitless: invalid option: "--header no colon"'],
    [['http://127.0.0.1/', '--method', 'G T'], 'hitless: invalid option: "--method G T"'],
    [['http://127.0.0.1/', '--json=yes'], 'hitless: invalid option: "--json=yes"'],
    [['http://127.0.0.1/', '--duration'], 'hitless: option "--duration" requires parameter'],
  ];
  for (const [args, message] of usageErrors) {
    it(`exits 2 on bad usage: ${args.join(' ') || '(no arguments)'}`, async () => {
      const { code, stdout, stderr } = await probe(...args);
      assert.equal(code, 2);
      assert.equal(stdout, '');
      assert.equal(stderr.split('\n')[0], message);
      assert.match(stderr, /^usage: hitless probe URL /m);
    });
  }

  it('exits 2 when --cacert cannot be read, in nginx words', async () => {
    const { code, stderr } = await probe('https://127.0.0.1/', '--cacert', '/nonexistent/ca.pem', '--requests', '1');
    assert.equal(code, 2);
    assert.equal(stderr, 'hitless: open() "/nonexistent/ca.pem" failed (2: No such file or directory)\n');
  });
});
