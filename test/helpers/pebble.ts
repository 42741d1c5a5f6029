/**
 * Debian's pebble (the ACME test server, /usr/bin/pebble 2.4) and pebble-challtestsrv (its DNS
 * server: every name resolves to 127.0.0.1), started on free loopback ports for one test and
 * stopped by `stop()`. The package ships no TLS certificate for pebble's own API, so one is made
 * here; tests trust it through `caPem`. Pebble 2.4's directory has no `renewalInfo` (ARI).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { request } from 'node:https';
import { connect, createServer } from 'node:net';
import { createSelfSigned } from '../../src/tls/self-signed.js';
import { tempDir } from './tmp.js';

/** Options of {@link startPebble}. */
export interface PebbleOptions {
  /** Lifetime of issued certificates in seconds (pebble's `certificateValidityPeriod`). Default pebble's (5 years). */
  readonly certificateValidityPeriod?: number;
  /** Percent of good nonces pebble rejects with badNonce (PEBBLE_WFE_NONCEREJECT). Default pebble's 5. */
  readonly nonceReject?: number;
  /** External account binding keys, kid -> base64url HMAC key; when given, pebble requires EAB. */
  readonly eab?: Readonly<Record<string, string>>;
  /** The port pebble's VA dials on 127.0.0.1 for http-01. */
  readonly httpPort: number;
  /** The port pebble's VA dials on 127.0.0.1 for tls-alpn-01. */
  readonly tlsPort: number;
}

/** A running pebble. */
export interface Pebble {
  /** The ACME directory, https://127.0.0.1:PORT/dir. */
  readonly directoryUrl: string;
  /** The certificate pebble's API listens with, to trust for the directory. */
  readonly caPem: string;
  /** The root that issued certificates chain to, from the management endpoint /roots/0. */
  rootPem(): Promise<string>;
  /** How many orders pebble has created (new-order requests it accepted, from its log). */
  orders(): number;
  /** Everything pebble logged so far (for a failed test's message). */
  log(): string;
  /** pebble-challtestsrv's management API (`POST /set-txt`, `/clear-txt`), for a dns-01 hook. */
  readonly dnsManagementUrl: string;
  /** Stops pebble and pebble-challtestsrv and removes the temporary directory. */
  stop(): Promise<void>;
}

const PEBBLE = '/usr/bin/pebble';
const CHALLTESTSRV = '/usr/bin/pebble-challtestsrv';
const START_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 5_000;

/** A loopback port free for TCP and for UDP (the DNS server binds both). */
async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const server = createServer();
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
    const address = server.address();
    await new Promise((resolve) => server.close(resolve));
    if (address === null || typeof address === 'string') continue;
    const udp = createSocket('udp4');
    const free = await new Promise<boolean>((resolve) => {
      udp.once('error', () => resolve(false));
      udp.bind(address.port, '127.0.0.1', () => resolve(true));
    });
    await new Promise<void>((resolve) => udp.close(() => resolve()));
    if (free) return address.port;
  }
  throw new Error('No free loopback port for pebble');
}

/**
 * Resolves once `port` accepts a TCP connection. Pebble prints "Listening on:" just before it
 * calls ListenAndServeTLS (cmd/pebble/main.go), so the line alone races the listen by a moment.
 */
async function acceptsConnections(port: number, child: Child, name: string): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    const connected = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (connected) return;
    if (child.exited || Date.now() > deadline) throw new Error(`${name} is not accepting connections on 127.0.0.1:${port}:\n${child.output}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A child process whose output is collected, with a way to wait for a line and to stop it. */
class Child {
  readonly #process: ChildProcess;
  #output = '';
  #exited: Promise<void>;
  #exitedFlag = false;
  #waiters: Array<() => void> = [];

  constructor(command: string, args: readonly string[], env: NodeJS.ProcessEnv, cwd: string) {
    this.#process = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    // A test process that exits without stop() (an uncaught error) takes its pebble with it.
    const killOnExit = (): void => {
      if (!this.#exitedFlag) this.#process.kill('SIGKILL');
    };
    process.on('exit', killOnExit);
    this.#process.once('exit', () => process.removeListener('exit', killOnExit));
    const collect = (chunk: Buffer): void => {
      this.#output += chunk.toString();
      for (const waiter of this.#waiters) waiter();
    };
    this.#process.stdout?.on('data', collect);
    this.#process.stderr?.on('data', collect);
    this.#exited = new Promise((resolve) => {
      this.#process.once('exit', () => {
        this.#exitedFlag = true;
        for (const waiter of this.#waiters) waiter();
        resolve();
      });
      this.#process.once('error', (err) => {
        this.#output += `\nspawn ${command}: ${err.message}\n`;
        this.#exitedFlag = true;
        for (const waiter of this.#waiters) waiter();
        resolve();
      });
    });
  }

  get exited(): boolean {
    return this.#exitedFlag;
  }

  get output(): string {
    return this.#output;
  }

  /** Resolves once `text` has been printed; rejects if the process exits first or after the timeout. */
  waitFor(text: string, name: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => finish(new Error(`${name} did not print "${text}" within ${START_TIMEOUT_MS} ms:\n${this.#output}`)), START_TIMEOUT_MS);
      const check = (): void => {
        if (this.#output.includes(text)) finish();
        else if (this.#exitedFlag) finish(new Error(`${name} exited before printing "${text}":\n${this.#output}`));
      };
      const finish = (err?: Error): void => {
        clearTimeout(timer);
        this.#waiters = this.#waiters.filter((waiter) => waiter !== check);
        if (err) reject(err);
        else resolve();
      };
      this.#waiters.push(check);
      check();
    });
  }

  /** SIGTERM, then SIGKILL if it is still there after a few seconds. */
  async stop(): Promise<void> {
    if (this.#exitedFlag) return;
    this.#process.kill('SIGTERM');
    const timer = setTimeout(() => this.#process.kill('SIGKILL'), STOP_TIMEOUT_MS);
    await this.#exited;
    clearTimeout(timer);
  }
}

/** GET over HTTPS trusting `ca`, the body as text. */
function httpsGet(url: string, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca, timeout: 5_000, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        if (res.statusCode === 200) resolve(body);
        else reject(new Error(`GET ${url}: status ${res.statusCode ?? 0}: ${body}`));
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/** Starts pebble-challtestsrv and pebble on loopback; resolves once pebble accepts connections. */
export async function startPebble(options: PebbleOptions): Promise<Pebble> {
  const dir = tempDir();
  const children: Child[] = [];
  const stopAll = async (): Promise<void> => {
    await Promise.all(children.map((child) => child.stop()));
    dir.remove();
  };
  try {
    const tls = await createSelfSigned(['localhost', '127.0.0.1'], { days: 2 });
    dir.write('cert.pem', tls.cert);
    dir.write('key.pem', tls.key);
    const [listenPort, managementPort, dnsPort, dnsManagementPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
    const config = {
      pebble: {
        listenAddress: `127.0.0.1:${listenPort}`,
        managementListenAddress: `127.0.0.1:${managementPort}`,
        certificate: 'cert.pem',
        privateKey: 'key.pem',
        httpPort: options.httpPort,
        tlsPort: options.tlsPort,
        ocspResponderURL: '',
        externalAccountBindingRequired: options.eab !== undefined,
        ...(options.eab !== undefined ? { externalAccountMACKeys: options.eab } : {}),
        ...(options.certificateValidityPeriod !== undefined ? { certificateValidityPeriod: options.certificateValidityPeriod } : {}),
      },
    };
    dir.write('pebble-config.json', JSON.stringify(config, null, 2));

    const dns = new Child(CHALLTESTSRV, [
      '-defaultIPv4', '127.0.0.1', '-defaultIPv6', '',
      '-dns01', `127.0.0.1:${dnsPort}`, '-http01', '', '-https01', '', '-tlsalpn01', '',
      '-management', `127.0.0.1:${dnsManagementPort}`,
    ], { PATH: process.env.PATH }, dir.path);
    children.push(dns);
    await dns.waitFor('Starting management server', 'pebble-challtestsrv');

    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      // Pebble's VA otherwise sleeps up to 15 s before each validation.
      PEBBLE_VA_NOSLEEP: '1',
      ...(options.nonceReject !== undefined ? { PEBBLE_WFE_NONCEREJECT: String(options.nonceReject) } : {}),
    };
    const pebble = new Child(PEBBLE, ['-config', 'pebble-config.json', '-dnsserver', `127.0.0.1:${dnsPort}`], env, dir.path);
    children.push(pebble);
    await pebble.waitFor('Listening on:', 'pebble');
    await acceptsConnections(listenPort, pebble, 'pebble');
    await acceptsConnections(managementPort, pebble, 'pebble management');

    let rootCache: string | undefined;
    return {
      directoryUrl: `https://127.0.0.1:${listenPort}/dir`,
      caPem: tls.cert,
      async rootPem() {
        rootCache ??= await httpsGet(`https://127.0.0.1:${managementPort}/roots/0`, tls.cert);
        return rootCache;
      },
      orders() {
        return pebble.output.split('Added order ').length - 1;
      },
      log() {
        return `${dns.output}${pebble.output}`;
      },
      dnsManagementUrl: `http://127.0.0.1:${dnsManagementPort}`,
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
