#!/usr/bin/env node
// Runs nginx's own test files (github.com/nginx/nginx-tests, Perl, `prove`) against bin/hitless
// and writes docs/conformance.md. Started by scripts/nginx-tests.sh, which checks the tools; see
// `scripts/nginx-tests.sh --help` for the options.
//
// Each file runs alone under `prove -v`, in a process group of its own, with a time limit, at
// most two at a time; TEST_NGINX_LEAVE keeps the harness's temporary directory (its nginx.conf and
// error.log), and TMPDIR puts it in a directory of the file's own, so that the reason for a
// failure can be read from it afterwards.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';

const repo = resolve(new URL('..', import.meta.url).pathname);

/**
 * Which files are in scope: the nginx-tests files of the modules hitless implements or that its
 * open issues build (the HTTP core with static, index and autoindex; proxy, ssl, stream, upstream,
 * HTTP/2, gRPC, limits, map, realip, split_clients; rewrite, access, auth_basic, headers, gzip;
 * charset, gunzip, sub_filter, mirror; fastcgi, uwsgi, scgi; stub_status), chosen by file name, as nginx-tests names files after their module. A file of such a module
 * that needs a module hitless lacks skips itself (hitless -V disowns the module). Out of scope:
 * the HTTP cache (proxy_cache*, *_proxy_cache*, proxy_h2_cache, fastcgi_cache*, ...), proxy_store and OCSP.
 */
const AREAS = [
  ['HTTP core', /^(http_.*|body.*|merge_slashes|ignore_invalid_headers|server_tokens|limit_rate|msie_refresh|post_action|request_id|error_log|config_dump|binary_upgrade|syslog|debug_connection.*|worker_shutdown_timeout.*|access_log.*)$/],
  ['static, index, autoindex', /^(index|autoindex.*|range.*|not_modified.*)$/],
  ['proxy', /^proxy.*$/],
  ['ssl', /^ssl.*$/],
  ['stream', /^stream.*$/],
  ['upstream', /^upstream.*$/],
  ['HTTP/2', /^h2(_.*)?$/],
  ['gRPC', /^grpc.*$/],
  ['limit_req, limit_conn', /^limit_(req|conn).*$/],
  ['map, split_clients, realip, geo, referer', /^(map.*|split_clients|realip.*|geo.*|referer.*)$/],
  ['rewrite, access, auth_basic, headers, gzip', /^(rewrite.*|access|auth_basic|headers|trailers|gzip.*)$/],
  ['charset, gunzip, sub_filter, mirror', /^(charset.*|gunzip.*|sub_filter.*|mirror.*)$/],
  ['fastcgi, uwsgi, scgi', /^(fastcgi.*|uwsgi.*|scgi.*)$/],
  ['stub_status', /^stub_status$/],
];
const OUT_OF_SCOPE = /^(proxy_cache.*|h2_(ssl_)?proxy_cache|proxy_h2_cache|proxy_store|.*ocsp.*|(fastcgi|scgi|uwsgi)_cache.*)$/;

function usage() {
  return `Usage: scripts/nginx-tests.sh [options] NGINX_TESTS_DIR [FILE.t...]

Runs nginx-tests files against bin/hitless (through scripts/nginx-tests-wrapper). Without FILEs:
every file in scope, and the report goes to docs/conformance.md. With FILEs: those, and the report
is printed (or written to --out).

Options:
  --jobs N          files run at a time (default 2, at most 2)
  --timeout S       seconds per file (default 60)
  --out FILE        where the report goes (default docs/conformance.md without FILEs)
  --keep DIR        keep every file's log and temporary directory in DIR (default: a temporary
                    directory, removed at the end)
  --workaround LIST diagnostics: root,pid (see scripts/nginx-tests-wrapper); the report says so
  --from DIR        run nothing: judge again what an earlier run left in its --keep DIR
  -h, --help        this text
`;
}

function parseArguments(argv) {
  const options = { jobs: 2, timeout: 60, out: undefined, keep: undefined, from: undefined, workaround: '', dir: undefined, files: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      const next = argv[++i];
      if (next === undefined) throw new Error(`${arg} needs a value`);
      return next;
    };
    if (arg === '-h' || arg === '--help') {
      process.stdout.write(usage());
      process.exit(0);
    } else if (arg === '--jobs') options.jobs = Math.min(2, Math.max(1, Number.parseInt(value(), 10) || 1));
    else if (arg === '--timeout') options.timeout = Math.max(1, Number.parseInt(value(), 10) || 60);
    else if (arg === '--out') options.out = resolve(value());
    else if (arg === '--keep') options.keep = resolve(value());
    else if (arg === '--workaround') options.workaround = value();
    else if (arg === '--from') options.from = resolve(value());
    else if (arg.startsWith('-')) throw new Error(`unknown option "${arg}"`);
    else if (options.dir === undefined) options.dir = resolve(arg);
    else options.files.push(basename(arg));
  }
  if (options.dir === undefined) throw new Error('no NGINX_TESTS_DIR given');
  if (!existsSync(join(options.dir, 'lib', 'Test', 'Nginx.pm'))) throw new Error(`"${options.dir}" is not an nginx-tests checkout (no lib/Test/Nginx.pm)`);
  if (options.out === undefined && options.files.length === 0) options.out = join(repo, 'docs', 'conformance.md');
  for (const part of options.workaround.split(',').filter(Boolean)) {
    if (part !== 'root' && part !== 'pid') throw new Error(`unknown workaround "${part}" (root, pid)`);
  }
  return options;
}

function areaOf(name) {
  const stem = name.replace(/\.t$/, '');
  if (OUT_OF_SCOPE.test(stem)) return undefined;
  return AREAS.find(([, pattern]) => pattern.test(stem))?.[0];
}

/** The newest nginx version the checkout's tests ask has_version() about: the one they describe. */
function referenceVersion(dir, files) {
  let best = [0];
  for (const file of files) {
    for (const match of readFileSync(join(dir, file), 'latin1').matchAll(/has_version\('([0-9.]+)'\)/g)) {
      const v = (match[1] ?? '').split('.').map(Number);
      for (let i = 0; i < Math.max(v.length, best.length); i++) {
        const a = v[i] ?? 0;
        const b = best[i] ?? 0;
        if (a !== b) {
          if (a > b) best = v;
          break;
        }
      }
    }
  }
  return best.join('.');
}

/** The process groups of the files running now, ended if the run is interrupted. */
const running = new Set();

/** Runs one file; resolves with its exit status and log, never rejects. */
function runFile(options, env, work, file) {
  const stem = file.replace(/\.t$/, '');
  const tmp = join(work, stem);
  mkdirSync(tmp, { recursive: true });
  const logPath = join(work, `${stem}.log`);
  const fd = openSync(logPath, 'w');
  const started = Date.now();
  return new Promise((done) => {
    const child = spawn('prove', ['-v', file], {
      cwd: options.dir,
      env: { ...env, TMPDIR: tmp },
      stdio: ['ignore', fd, fd],
      detached: true,
    });
    closeSync(fd);
    running.add(child.pid);
    let timedOut = false;
    const killGroup = (signal) => {
      try {
        process.kill(-child.pid, signal);
      } catch {
        // The group is gone.
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup('SIGTERM');
      setTimeout(() => killGroup('SIGKILL'), 5000).unref();
    }, options.timeout * 1000);
    child.on('error', (err) => {
      clearTimeout(timer);
      done({ file, code: 127, timedOut, seconds: 0, log: String(err), tmp });
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      running.delete(child.pid);
      // Whatever the harness left running (a server it could not stop) goes with the group.
      killGroup('SIGKILL');
      killLeftovers(tmp);
      const seconds = Math.round((Date.now() - started) / 100) / 10;
      writeFileSync(join(work, `${stem}.json`), JSON.stringify({ code: code ?? (signal ? 128 : 1), timedOut, seconds }));
      done({ file, code: code ?? (signal ? 128 : 1), timedOut, seconds, log: readFileSync(logPath, 'utf8'), tmp });
    });
  });
}

/** A file's run as an earlier run with --keep left it (its log, temporary directory and status). */
function keptRun(work, file) {
  const stem = file.replace(/\.t$/, '');
  const meta = JSON.parse(readText(join(work, `${stem}.json`)) || '{"code":1,"timedOut":false,"seconds":0}');
  return { file, ...meta, log: readText(join(work, `${stem}.log`)), tmp: join(work, stem) };
}

/** A master started daemonized (its own session) escapes the group: its pid file names it. */
function killLeftovers(tmp) {
  for (const path of walk(tmp)) {
    if (!/\.pid(\.oldbin|\.hitless)?$/.test(path)) continue;
    const pid = Number.parseInt(readText(path), 10);
    if (!Number.isInteger(pid) || pid <= 1) continue;
    // Only a process of this run: its command line names this file's temporary directory.
    if (!readText(`/proc/${pid}/cmdline`).includes(tmp)) continue;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Gone already.
    }
  }
}

function readText(path) {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

function walk(dir) {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  return entries.flatMap((entry) => {
    const path = join(dir, entry.name);
    return entry.isDirectory() ? walk(path) : [path];
  });
}

/** The file's result from prove's -v output (TAP) and the error logs the harness left. */
function judge(run) {
  const lines = run.log.split('\n');
  let planned;
  let skipReason;
  let ok = 0;
  let notOk = 0;
  let todo = 0;
  let firstFailure;
  let alerts = false;
  for (const line of lines) {
    const plan = /^1\.\.(\d+)(?:\s*#\s*skip\s*(.*))?$/i.exec(line);
    if (plan) {
      planned = Number(plan[1]);
      if (planned === 0) skipReason = (plan[2] ?? '').trim() || 'skipped';
      continue;
    }
    const test = /^(not )?ok \d+(?: - ([^#]*))?(?:#\s*(TODO|SKIP)\b.*)?$/i.exec(line);
    if (!test) continue;
    const name = (test[2] ?? '').trim();
    const directive = (test[3] ?? '').toUpperCase();
    if (directive === 'TODO') {
      todo++;
    } else if (test[1]) {
      notOk++;
      firstFailure ??= name || '(unnamed)';
      if (name === 'no alerts') alerts = true;
    } else {
      ok++;
    }
  }
  const skippedLine = lines.find((line) => /\.\. skipped: /.test(line) || /^skipped: /.test(line));
  if (skipReason === undefined && skippedLine) skipReason = skippedLine.replace(/^.*skipped: /, '').trim();
  const logs = walk(run.tmp).filter((path) => basename(path) === 'error.log').sort((a, b) => statSync(a).mtimeMs - statSync(b).mtimeMs);
  const errorLine = firstErrorLine(logs, run.log);

  let status;
  let why = '';
  if (run.timedOut) {
    status = 'fail';
    why = `timed out after ${run.seconds} s` + (firstFailure ? `; first failing: "${firstFailure}"` : '');
  } else if (skipReason !== undefined && run.code === 0) {
    status = 'skipped';
    // try_run() turns a refused configuration into a skip: that one is hitless's failure.
    why = errorLine && /\[emerg\]/.test(errorLine) ? `${skipReason}: hitless refused the configuration: ${errorLine}` : skipReason;
    if (errorLine && /\[emerg\]/.test(errorLine)) status = 'fail';
  } else if (run.code === 0 && notOk === 0) {
    status = 'pass';
  } else {
    status = 'fail';
    const parts = [];
    if (firstFailure) parts.push(`first failing: "${firstFailure}"`);
    const planError = lines.find((line) => /You planned \d+ tests? but ran \d+/.test(line));
    const plan = planError && /You planned (\d+) tests? but ran (\d+)/.exec(planError);
    if (plan && !firstFailure) parts.push(`stopped after ${plan[2]} of ${plan[1]} subtests`);
    if (errorLine) parts.push(errorLine);
    why = parts.join('; ') || `prove exited with ${run.code}`;
  }
  return { file: run.file, area: areaOf(run.file) ?? '(given)', status, planned, ok, notOk, todo, alerts, why, seconds: run.seconds };
}

/**
 * The first line that explains a failure: the harness's own death (a Perl error), else hitless's
 * [emerg], [alert] or [crit] in an error log (why "Can't start nginx"), else the first [error]:
 * nginx-tests provoke many of those on purpose, so they come last.
 */
function firstErrorLine(logs, proveLog) {
  const text = logs.map((path) => readText(path)).join('\n');
  const clean = (line) => line.replace(/^\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d /, '').replace(/ \d+#\d+: (\*\d+ )?/, ' ').replace(/\/\S*\/nginx-test-\w+\//g, '').trim().slice(0, 240);
  // A Perl error other than "Can't start nginx" is what stopped the file; an [emerg] after it is
  // only what the server said while the harness shut it down early.
  const died = proveLog.split('\n').find((l) => /^(Can't |Unable to |Died at |.* at lib\/Test\/Nginx\S* line \d+\.?$|.* at \S+\.t line \d+\.?$)/.test(l) && !l.startsWith('#'));
  if (died && /autoflush" on an undefined value at lib\/Test\/Nginx\/Stream\.pm/.test(died)) return 'died: no connection to the server (Test::Nginx::Stream could not connect)';
  if (died && !/^Can't start nginx/.test(died)) return clean(`died: ${died}`);
  for (const level of ['emerg', 'alert', 'crit']) {
    const line = text.split('\n').find((l) => l.includes(`[${level}]`));
    if (line) return clean(line);
  }
  if (died) return clean(`died: ${died}`);
  const error = text.split('\n').find((l) => l.includes('[error]'));
  return error ? clean(error) : undefined;
}

function escapeCell(text) {
  return String(text).replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

/** The hand-written notes of an earlier report, by file, so that regenerating keeps them. */
function previousNotes(path) {
  const notes = new Map();
  for (const line of readText(path).split('\n')) {
    const cells = line.split(/(?<!\\)\|/).map((cell) => cell.trim());
    const file = /^`([\w.-]+\.t)`$/.exec(cells[1] ?? '')?.[1];
    const note = cells[6];
    if (file && note) notes.set(file, note);
  }
  return notes;
}

/**
 * The hand-written sections of an earlier report (every `## ` section between the generated totals and
 * the generated file table: the history of each session's work), so that regenerating keeps them.
 */
function previousSections(path) {
  const lines = readText(path).split('\n');
  const totals = lines.indexOf('## Totals');
  const files = lines.indexOf('## Files');
  if (totals < 0 || files < totals) return [];
  const first = lines.findIndex((line, i) => i > totals && i < files && line.startsWith('## '));
  return first < 0 ? [] : lines.slice(first, files);
}

function git(args, cwd) {
  return new Promise((done) => {
    const child = spawn('git', args, { cwd, stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.on('data', (chunk) => (out += chunk));
    child.on('error', () => done(''));
    child.on('close', () => done(out.trim()));
  });
}

async function report(options, results, context) {
  const count = (status) => results.filter((r) => r.status === status).length;
  const sum = (key) => results.reduce((n, r) => n + r[key], 0);
  const lacking = results.filter((r) => r.status === 'skipped' && /^no \S+ available$/.test(r.why)).length;
  const notes = options.out ? previousNotes(options.out) : new Map();
  const sections = options.out ? previousSections(options.out) : [];
  const out = [];
  out.push('# Conformance: nginx\'s own test suite');
  out.push('');
  out.push('Generated by `scripts/nginx-tests.sh` (do not edit the figures by hand: re-run it; the **note** column is');
  out.push('kept across runs, for reasons written by hand).');
  out.push('');
  out.push(`- Run: ${context.date}, hitless ${context.hitless}, Node ${process.version}, nginx-tests ${context.tests}${context.judged ? ` (judged again ${context.judged} from its kept logs)` : ''}`);
  out.push(`- The wrapper answers \`-V\` with hitless's own configure arguments (every default module hitless lacks as \`--without-...\`) and \`nginx version: nginx/${context.version}\`, the newest version the checkout's tests ask about.`);
  out.push(`- Command: \`scripts/nginx-tests.sh ${context.command}\`, each file alone under \`prove -v\`, ${context.timeout} s at most, ${context.jobs} at a time.`);
  if (options.workaround) out.push(`- **Diagnostic run with workarounds \`${options.workaround}\`** (scripts/nginx-tests-wrapper): not the conformance figures.`);
  out.push('');
  out.push('To run it: a checkout of github.com/nginx/nginx-tests, perl with IO::Socket::SSL (and FCGI, SCGI and Protocol::WebSocket, without which the files that use them skip themselves: Debian\'s libfcgi-perl, libscgi-perl, libprotocol-websocket-perl), a built hitless, then');
  out.push('`scripts/nginx-tests.sh /path/to/nginx-tests` (this page), or `scripts/nginx-tests.sh /path/to/nginx-tests proxy.t ...`');
  out.push('(printed); `scripts/nginx-tests.sh --help` for the options. `.ci/run` runs it when `NGINX_TESTS_DIR` names a checkout.');
  out.push('');
  out.push('## Selection');
  out.push('');
  out.push('nginx-tests names each file after the module it tests. In scope: the files of the modules hitless implements or that');
  out.push('its open issues build, by name: the HTTP core (`http_*`, `body*`, `merge_slashes`, `ignore_invalid_headers`, `server_tokens`,');
  out.push('`limit_rate`, `msie_refresh`, `post_action`, `request_id`, `error_log`, `config_dump`, `binary_upgrade`, `syslog`,');
  out.push('`debug_connection*`, `worker_shutdown_timeout*`, `access_log*`), static/index/autoindex (`index`, `autoindex*`, `range*`,');
  out.push('`not_modified*`), `proxy*`, `ssl*`, `stream*`, `upstream*`, `h2*`, `grpc*`, `limit_req*`, `limit_conn*`, `map*`,');
  out.push('`split_clients`, `realip*`, `geo*`, `referer*`, `rewrite*`, `access`, `auth_basic`, `headers`, `trailers`, `gzip*`, `charset*`, `gunzip*`,');
  out.push('`sub_filter*`, `mirror*`, `fastcgi*`, `uwsgi*`, `scgi*`, `stub_status`. Out of scope: the HTTP');
  out.push('cache (`proxy_cache*`, `h2_proxy_cache`, `h2_ssl_proxy_cache`, `proxy_h2_cache`, `fastcgi_cache*`, `uwsgi_cache*`, `scgi_cache*`), `proxy_store`, OCSP (`*ocsp*`), and the');
  out.push('modules hitless does not have (mail, memcached, ssi, perl, ...). A file in scope that');
  out.push('needs a module hitless lacks skips itself ("no X available"), because hitless -V disowns the module.');
  out.push('');
  out.push('A file **passes** when prove passes it; it **fails** otherwise, including when hitless refused the configuration (the');
  out.push('harness\'s `try_run()` reports that as a skip; it is counted as a failure here). **skipped** is the harness\'s own skip.');
  out.push('');
  out.push('## Totals');
  out.push('');
  out.push('| files | pass | fail | skipped | of which: a module hitless lacks | subtests ok | not ok | TODO | files with `no alerts` failing |');
  out.push('|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  out.push(`| ${results.length} | ${count('pass')} | ${count('fail')} | ${count('skipped')} | ${lacking} | ${sum('ok')} | ${sum('notOk')} | ${sum('todo')} | ${results.filter((r) => r.alerts).length} |`);
  out.push('');
  out.push('| area | files | pass | fail | skipped |');
  out.push('|---|---:|---:|---:|---:|');
  for (const area of [...AREAS.map(([name]) => name), '(given)']) {
    const of = results.filter((r) => r.area === area);
    if (of.length === 0) continue;
    out.push(`| ${area} | ${of.length} | ${of.filter((r) => r.status === 'pass').length} | ${of.filter((r) => r.status === 'fail').length} | ${of.filter((r) => r.status === 'skipped').length} |`);
  }
  out.push('');
  out.push(...sections);
  out.push('## Files');
  out.push('');
  out.push('"why": the first failing subtest and the first line that explains it (hitless\'s [emerg]/[alert]/[crit], the harness dying,');
  out.push('else the first [error]), or the harness\'s skip reason.');
  out.push('');
  out.push('| file | area | result | subtests ok / not ok (planned) | why | note |');
  out.push('|---|---|---|---|---|---|');
  for (const r of results) {
    const subtests = r.status === 'skipped' || r.planned === 0 ? '—' : `${r.ok} / ${r.notOk}${r.todo ? ` (+${r.todo} TODO)` : ''} (${r.planned ?? '?'})`;
    out.push(`| \`${r.file}\` | ${r.area} | ${r.status} | ${subtests} | ${escapeCell(r.status === 'pass' ? '' : r.why)} | ${escapeCell(notes.get(r.file) ?? '')} |`);
  }
  out.push('');
  return out.join('\n');
}

async function main() {
  let options;
  try {
    options = parseArguments(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`nginx-tests: ${err.message}\n\n${usage()}`);
    process.exit(2);
  }
  const all = readdirSync(options.dir).filter((name) => name.endsWith('.t')).sort();
  const files = options.files.length > 0 ? options.files : all.filter((name) => areaOf(name) !== undefined);
  for (const file of files) {
    if (!all.includes(file)) {
      process.stderr.write(`nginx-tests: no "${file}" in ${options.dir}\n`);
      process.exit(2);
    }
  }
  const version = process.env.NGINX_TESTS_VERSION || referenceVersion(options.dir, all);
  const startedAt = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const hitlessRev = await git(['describe', '--always', '--dirty'], repo);
  // Only the checkout's own history: a copy without .git inside another repository is not that one.
  const testsRev = existsSync(join(options.dir, '.git')) ? await git(['rev-parse', '--short', 'HEAD'], options.dir) : '';
  if (options.from !== undefined) options.keep = options.from;
  const work = options.keep ?? mkdtempSync(join(tmpdir(), 'hitless-nginx-tests-'));
  mkdirSync(work, { recursive: true });
  const env = {
    ...process.env,
    TEST_NGINX_BINARY: join(repo, 'scripts', 'nginx-tests-wrapper'),
    TEST_NGINX_LEAVE: '1',
    NGINX_TESTS_VERSION: version,
    NGINX_TESTS_WORKAROUNDS: options.workaround,
  };
  delete env.TEST_NGINX_CATLOG;
  delete env.TEST_NGINX_VERBOSE;

  const cleanup = () => {
    if (options.keep === undefined) rmSync(work, { recursive: true, force: true });
  };
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.on(signal, () => {
      for (const pid of running) {
        try {
          process.kill(-pid, 'SIGKILL');
        } catch {
          // Gone already.
        }
      }
      cleanup();
      process.exit(130);
    });
  }

  const results = new Array(files.length);
  let next = 0;
  const worker = async () => {
    while (next < files.length) {
      const index = next++;
      const file = files[index];
      const result = judge(options.from === undefined ? await runFile(options, env, work, file) : keptRun(work, file));
      results[index] = result;
      process.stdout.write(`${file.padEnd(44)} ${result.status.padEnd(8)} ${String(result.ok).padStart(3)} ok ${String(result.notOk).padStart(3)} not ok  ${result.seconds} s  ${result.status === 'pass' ? '' : result.why.slice(0, 120)}\n`);
    }
  };
  await Promise.all(Array.from({ length: options.jobs }, worker));

  let context = {
    date: startedAt,
    jobs: options.jobs,
    timeout: options.timeout,
    hitless: hitlessRev || 'unknown revision',
    tests: testsRev || '(checkout without git history)',
    version,
    command: process.env.NGINX_TESTS_COMMAND ?? process.argv.slice(2).join(' '),
  };
  // A run judged again (--from) is described as it ran.
  const runJson = join(work, 'run.json');
  if (options.from === undefined) writeFileSync(runJson, JSON.stringify(context));
  else if (existsSync(runJson)) context = { ...context, ...JSON.parse(readText(runJson)), judged: new Date().toISOString().replace(/\.\d+Z$/, 'Z') };
  const text = await report(options, results, context);
  if (options.out) {
    writeFileSync(options.out, text);
    process.stdout.write(`nginx-tests: wrote ${options.out}\n`);
  } else {
    process.stdout.write(`\n${text}`);
  }
  const count = (status) => results.filter((r) => r.status === status).length;
  process.stdout.write(`nginx-tests: ${results.length} files: ${count('pass')} pass, ${count('fail')} fail, ${count('skipped')} skipped\n`);
  cleanup();
}

await main();
