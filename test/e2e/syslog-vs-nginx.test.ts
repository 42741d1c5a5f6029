/**
 * `error_log syslog:...` and `access_log syslog:...` side by side with Debian's nginx: each
 * server logs to a UDP receiver of its own, and the datagrams are compared with the time (and,
 * in an error line, the time, pid and connection number) written TIME: PRI from facility and
 * severity (an error line's severity is its level's), the hostname or `nohostname`, the tag, the
 * line itself, one datagram per `access_log` line, `if=`; and nginx's refusals of bad parameters
 * at -t, word for word.
 */
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { once } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { NGINX, nginxTest } from '../deploy/helpers/nginx.js';
import { runHitless } from '../helpers/bin.js';
import { tempDir } from '../helpers/tmp.js';
import { fetchRaw, startPair, type NginxPair } from './helpers/nginx-pair.js';

const SERVERS = ['hitless', 'nginx'] as const;
type Name = (typeof SERVERS)[number];

/** A UDP receiver on loopback keeping every datagram as text. */
interface Receiver {
  readonly socket: Socket;
  readonly port: number;
  readonly messages: string[];
}

async function receiver(): Promise<Receiver> {
  const socket = createSocket('udp4');
  const messages: string[] = [];
  socket.on('message', (data) => messages.push(data.toString('latin1')));
  socket.bind(0, '127.0.0.1');
  await once(socket, 'listening');
  return { socket, port: socket.address().port, messages };
}

/** Waits (at most 5 s) until `count` datagrams with `text` have arrived; returns them, normalized. */
async function messagesWith(from: Receiver, text: string, count = 1): Promise<string[]> {
  for (let i = 0; i < 250; i++) {
    const found = from.messages.filter((message) => message.includes(text));
    if (found.length >= count) return found.map(normalize);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return assert.fail(`fewer than ${count} datagrams with "${text}" within 5 s: ${JSON.stringify(from.messages)}`);
}

/** The syslog time, and an error line's time, pid and connection number, as TIME. */
function normalize(message: string): string {
  return message
    .replace(/^(<\d+>)[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d /, '$1TIME ')
    .replace(/: \d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d (\[\w+\]) \d+#\d+: (\*\d+ )?/, ': TIME $1 ');
}

describe('syslog logging: hitless and nginx side by side', () => {
  let pair: NginxPair;
  const receivers = {} as Record<Name, Receiver>;

  before(async () => {
    for (const name of SERVERS) receivers[name] = await receiver();
    pair = await startPair(
      (port, dir, _extra, name) => {
        const to = `server=127.0.0.1:${receivers[name].port}`;
        return `events {}
http {
    log_format t '$uri $status';
    access_log off;
    server {
        listen 127.0.0.1:${port};
        root ${dir}/html;
        location /err { error_log syslog:${to},facility=user,severity=alert,tag=errtag; }
        location /warn { error_log syslog:${to},tag=warntag warn; }
        location /acc { access_log syslog:severity=alert,${to},tag=acc,facility=local3 t; return 200 "ok\\n"; }
        location /two { access_log syslog:${to},tag=two t; access_log syslog:${to},tag=two t; return 204; }
        location /nohost { access_log syslog:${to},nohostname,tag=nohost t; return 204; }
        location /default { access_log syslog:${to} t; return 204; }
        location /cond { access_log syslog:${to},tag=cond t if=$arg_log; return 204; }
    }
}
`;
      },
      (dir) => {
        mkdirSync(join(dir, 'html'));
        writeFileSync(join(dir, 'html', 'index.html'), 'index\n');
      },
    );
  });

  after(async () => {
    await pair?.stop();
    for (const name of SERVERS) receivers[name]?.socket.close();
  });

  /** Sends `path` to both servers and returns the normalized datagrams with `text` of each, asserting they are equal. */
  const same = async (path: string, text: string, count = 1): Promise<string[]> => {
    for (const name of SERVERS) await fetchRaw(pair.ports[name], path);
    const [ours, theirs] = await Promise.all(SERVERS.map((name) => messagesWith(receivers[name], text, count)));
    assert.deepEqual(ours, theirs);
    return ours ?? [];
  };

  it('sends an error line at its own severity, with the facility and tag set', async () => {
    const [line] = await same('/err/missing', 'errtag:');
    // user (1) * 8 + error (3): severity=alert is the access log's; an error line keeps its level.
    assert.match(line ?? '', /^<11>TIME \S+ errtag: TIME \[error\] open\(\) ".*\/html\/err\/missing" failed \(2: No such file or directory\)/);
  });

  it('leaves out lines below the level (warn admits error)', async () => {
    const [line] = await same('/warn/missing', 'warntag:');
    assert.match(line ?? '', /^<187>TIME \S+ warntag: TIME \[error\] /);
  });

  it('sends an access line with the severity, facility and tag set, in its log_format', async () => {
    // local3 (19) * 8 + alert (1).
    assert.deepEqual(await same('/acc', 'acc:'), [`<153>TIME ${hostnameOf(await messagesWith(receivers.nginx, 'acc:'))} acc: /acc 200`]);
  });

  it('sends one datagram per access_log line, and defaults to local7.info with the tag nginx', async () => {
    assert.equal((await same('/two', 'two:', 2)).length, 2);
    const [line] = await same('/default', '/default 204');
    assert.match(line ?? '', /^<190>TIME \S+ nginx: \/default 204$/);
  });

  it('leaves the hostname out with nohostname', async () => {
    assert.deepEqual(await same('/nohost', 'nohost:'), ['<190>TIME nohost: /nohost 204']);
  });

  it('logs only when if= is neither empty nor 0', async () => {
    for (const path of ['/cond/none', '/cond/empty?log=', '/cond/zero?log=0', '/cond/yes?log=1']) {
      for (const name of SERVERS) await fetchRaw(pair.ports[name], path);
    }
    const [ours, theirs] = await Promise.all(SERVERS.map((name) => messagesWith(receivers[name], '/cond/yes')));
    assert.deepEqual(ours, theirs);
    for (const name of SERVERS) assert.deepEqual(receivers[name].messages.filter((m) => m.includes('cond:')).map(normalize), ['<190>TIME ' + hostnameOf(ours ?? []) + ' cond: /cond/yes 204'], name);
  });
});

/** The hostname field of a normalized datagram. */
function hostnameOf(messages: readonly string[]): string {
  return /^<\d+>TIME (\S+) /.exec(messages[0] ?? '')?.[1] ?? assert.fail('no hostname');
}

describe('syslog parameters nginx refuses at -t, refused with its words', () => {
  const cases = [
    'error_log syslog:server=127.0.0.1:5140,facility=nope;',
    'error_log syslog:server=127.0.0.1:5140,severity=err;',
    'error_log syslog:server=127.0.0.1:5140,tag=a-b;',
    `error_log syslog:server=127.0.0.1:5140,tag=${'x'.repeat(33)};`,
    'error_log syslog:server=127.0.0.1:5140,server=127.0.0.1:5141;',
    'error_log syslog:server=127.0.0.1:5140,facility=user,facility=user;',
    'error_log syslog:facility=user;',
    'error_log syslog:server=127.0.0.1:5140,loud;',
    'error_log syslog:server=127.0.0.1:99999;',
    'http { access_log syslog:server=127.0.0.1:5140 combined buffer=4k; }',
    'http { access_log syslog:server=127.0.0.1:5140 combined gzip; }',
  ];

  for (const directive of cases) {
    it(directive, () => {
      const dir = tempDir({ 'nginx.conf': `events {}\n${directive}\n` });
      try {
        const conf = join(dir.path, 'nginx.conf');
        const ours = runHitless(['-t', '-p', `${dir.path}/`, '-c', conf]);
        const theirs = nginxTest(conf, `pid ${dir.path}/nginx.pid; error_log stderr;`, `${dir.path}/`);
        const emerg = (output: string): string => /\[emerg\] (?:\d+#\d+: )?(.*?)(?: in \/\S+:\d+)?$/m.exec(output)?.[1] ?? `no [emerg] in: ${output}`;
        assert.notEqual(theirs.status, 0, `${NGINX} accepted it`);
        assert.notEqual(ours.status, 0);
        assert.equal(emerg(ours.stderr), emerg(theirs.output));
      } finally {
        dir.remove();
      }
    });
  }
});
