// The tables of the edge benchmark and its section of docs/benchmarks.md: each target of issue 20
// next to the figure of one run.

/** The section of docs/benchmarks.md that bench/edge/run.js writes. */
export const SECTION = 'TLS, HTTP/2, memory and reloads (issue 20)';
/** The section that a --cpu-prof run writes, just after it. */
export const PROFILE_SECTION = 'TLS, HTTP/2, memory and reloads (issue 20): where the CPU goes';

const fmt = {
  count: (/** @type {number | undefined} */ n) => (n === undefined ? '—' : Math.round(n).toLocaleString('en-US')),
  ms: (/** @type {number | undefined} */ n) => (n === undefined ? '—' : `${n.toFixed(2)} ms`),
  mib: (/** @type {number | undefined} */ kib) => (kib === undefined ? '—' : `${(kib / 1024).toFixed(0)} MiB`),
  ratio: (/** @type {number | undefined} */ a, /** @type {number | undefined} */ b) => (a === undefined || b === undefined || b === 0 ? '—' : `${(a / b).toFixed(2)}x`),
};

/**
 * @param {{
 *   results: any,
 *   versions: Map<string, string>,
 *   options: { seconds: number, repeat: number, warmup: number, connections: number, idleConnections: number, reloads: number, reloadSeconds: number },
 *   machine: import('../lib/machine.js').Machine,
 *   date: string,
 *   command: string,
 *   loads: { handshakeConnections: number, h2Clients: number, h2Streams: number },
 * }} input
 * @returns {string}
 */
export function formatReport({ results, versions, options, machine, date, command, loads }) {
  const { load, idleKiB, growth, reload } = results;
  const figure = (/** @type {string} */ name, /** @type {string} */ server) => load[name]?.get(server);
  const growthKiB = (/** @type {string} */ server) => {
    const g = growth.get(server);
    return g === undefined ? undefined : g.afterKiB - g.beforeKiB;
  };
  const perConnection = (/** @type {string} */ server) => {
    const kib = growthKiB(server);
    return kib === undefined ? '' : ` (${((kib * 1024) / options.idleConnections / 1024).toFixed(1)} KiB each)`;
  };
  const grown = (/** @type {string} */ server) => (growthKiB(server) === undefined ? '—' : `+${fmt.mib(growthKiB(server))}${perConnection(server)}`);
  const h = (/** @type {string} */ name, /** @type {string} */ server) => figure(name, server)?.rps;
  const reloadShare = (/** @type {string} */ server) => {
    const r = reload.get(server);
    return r === undefined ? undefined : r.withRps / r.withoutRps;
  };
  const rows = [
    ['HTTPS keep-alive requests/s (wrk -t1 -c' + options.connections + ')', fmt.count(h('keepalive', 'hitless')), fmt.count(h('keepalive', 'nginx')), fmt.ratio(h('keepalive', 'hitless'), h('keepalive', 'nginx')), `node:https ${fmt.count(h('keepalive', 'node:https'))} (hitless ${fmt.ratio(h('keepalive', 'hitless'), h('keepalive', 'node:https'))})`, '>= node:https, >= 0.5x nginx'],
    ['HTTPS keep-alive p99', fmt.ms(figure('keepalive', 'hitless')?.p99Ms), fmt.ms(figure('keepalive', 'nginx')?.p99Ms), fmt.ratio(figure('keepalive', 'hitless')?.p99Ms, figure('keepalive', 'nginx')?.p99Ms), `node:https ${fmt.ms(figure('keepalive', 'node:https')?.p99Ms)}`, ''],
    [`full TLS handshakes/s (wrk -t1 -c${loads.handshakeConnections}, \`Connection: close\`)`, fmt.count(h('handshake', 'hitless')), fmt.count(h('handshake', 'nginx')), fmt.ratio(h('handshake', 'hitless'), h('handshake', 'nginx')), `node:https ${fmt.count(h('handshake', 'node:https'))}`, '>= 0.95x nginx'],
    [`HTTP/2 over TLS requests/s (h2load -t1 -c${loads.h2Clients} -m${loads.h2Streams})`, fmt.count(h('h2', 'hitless')), fmt.count(h('h2', 'nginx')), fmt.ratio(h('h2', 'hitless'), h('h2', 'nginx')), `node:http2 ${fmt.count(h('h2', 'node:http2'))} (hitless ${fmt.ratio(h('h2', 'hitless'), h('h2', 'node:http2'))})`, '>= 0.5x nginx, >= 2x node:http2'],
    ['RSS, master + worker, idle', fmt.mib(idleKiB.get('hitless')), fmt.mib(idleKiB.get('nginx')), fmt.ratio(idleKiB.get('hitless'), idleKiB.get('nginx')), `node:https ${fmt.mib(idleKiB.get('node:https'))}, node:http2 ${fmt.mib(idleKiB.get('node:http2'))}`, '<= 100 MiB'],
    [`RSS growth with ${fmt.count(options.idleConnections)} idle TLS keep-alive connections`, grown('hitless'), grown('nginx'), fmt.ratio(growthKiB('hitless'), growthKiB('nginx')), `node:https ${grown('node:https')}`, "<= nginx's"],
    [`requests/s during ${options.reloads} reloads in ${options.reloadSeconds} s (HTTP/1.1, wrk -t1 -c${options.connections})`, fmt.count(reload.get('hitless')?.withRps), fmt.count(reload.get('nginx')?.withRps), fmt.ratio(reload.get('hitless')?.withRps, reload.get('nginx')?.withRps), '', ''],
    ['the same run without reloads', fmt.count(reload.get('hitless')?.withoutRps), fmt.count(reload.get('nginx')?.withoutRps), fmt.ratio(reload.get('hitless')?.withoutRps, reload.get('nginx')?.withoutRps), '', ''],
    ['during reloads / without', fmt.ratio(reloadShare('hitless'), 1), fmt.ratio(reloadShare('nginx'), 1), '', '', '>= 0.7x'],
    ['failed requests during reloads (without)', failed(reload.get('hitless')), failed(reload.get('nginx')), '', '', '0'],
  ];
  const table = [
    '| figure | hitless | nginx | hitless / nginx | plain Node on the same certificate | target |',
    '|---|--:|--:|--:|--:|---|',
    ...rows.map((row) => `| ${row.join(' | ')} |`),
  ].join('\n');
  const servers = ['hitless', 'nginx', 'node:https', 'node:http2'];
  const cpuUs = (/** @type {string} */ name, /** @type {string} */ server) => figure(name, server)?.cpuUs;
  const cpuRows = /** @type {const} */ (['keepalive', 'handshake', 'h2']).map((name) => {
    const label = { keepalive: 'HTTPS keep-alive', handshake: 'full TLS handshake', h2: 'HTTP/2 over TLS' }[name];
    const node = name === 'h2' ? 'node:http2' : 'node:https';
    const cells = servers.map((s) => (cpuUs(name, s) === undefined ? '—' : `${cpuUs(name, s).toFixed(0)}`));
    return `| ${label} | ${cells.join(' | ')} | ${fmt.ratio(cpuUs(name, 'hitless'), cpuUs(name, 'nginx'))} | ${fmt.ratio(cpuUs(name, 'hitless'), cpuUs(name, node))} |`;
  });
  const cpuTable = ['| CPU µs per request (master + worker) | hitless | nginx | node:https | node:http2 | hitless / nginx | hitless / plain Node |', '|---|--:|--:|--:|--:|--:|--:|', ...cpuRows].join('\n');
  const errors = /** @type {const} */ (['keepalive', 'handshake', 'h2'])
    .flatMap((name) => servers.filter((s) => (figure(name, s)?.errors ?? 0) > 0).map((s) => `${s} ${name}: ${figure(name, s).errors}`));
  const missing = [...results.missing].map(([name, why]) => `${name} ${why}`);
  const versionList = [...versions].map(([name, version]) => `${name} ${version}`).join(', ');
  const other = results.otherLoad;
  return `Side by side in one run, one worker each, every server answering \`GET /\` with 200
\`hello world\\n\` (\`return 200\` for hitless and nginx, from the same nginx.conf): TLS 1.3 only, on an
ECDSA P-256 certificate the run makes, \`ssl_session_cache off\`, \`ssl_session_tickets off\` (the
Node peers: \`SSL_OP_NO_TICKET\`, no session cache), \`keepalive_requests\` high enough that no
keep-alive connection is cut during a run. The peers are \`bench/edge/peers/\`: a node:https hello
world and a node:http2 secure server answering on its \`stream\` event (the core API). All servers
are up during the whole run; each figure is measured server after server, round after round.
A full handshake is a request on a new connection: wrk with \`Connection: close\` reconnects after
every response and never resumes a TLS session. The idle connections are opened by a child process
(\`bench/edge/idle-clients.js\`), each after one request; the RSS is read once all have had their
response and it has settled (two reads 1 s apart within 1%, 15 s at most). The reloads are SIGHUP to the master every ${((options.reloadSeconds - 1) / options.reloads).toFixed(2)} s (\`bench/reload/under-load.js\`), over
cleartext HTTP/1.1 (as \`bench/reload/\`), so that a reload's cost is not mixed with handshakes.
CPU per request is utime + stime of the master and its workers (/proc/PID/stat) over the measured
runs divided by the requests completed: steadier than requests/s on a shared machine. Generated by
\`bench/edge/run.js\`; do not edit by hand.

- Date: ${date}
- Machine: ${machine.cpus} CPUs, ${machine.cpuModel}, ${machine.memory}, ${machine.kernel}, Node ${machine.node}
- Servers: ${versionList}
- Load: median of ${options.repeat} runs of ${options.seconds} s after a ${options.warmup} s warm-up; load generators and servers share the CPUs
- Other load: other processes used at most ${Math.round(other.percent)}% of one CPU during a measured run${other.top.length > 0 ? ` (${other.top.join(', ')})` : ''}
- Command: \`${command}\`${errors.length > 0 ? `\n- Errors during the loads: ${errors.join(', ')}` : ''}${missing.length > 0 ? `\n- Not measured: ${missing.join('; ')}` : ''}

${table}

${cpuTable}
`;
}

/** @param {{ withErrors: number, withoutErrors: number } | undefined} r */
function failed(r) {
  return r === undefined ? '—' : `${r.withErrors} (${r.withoutErrors})`;
}
