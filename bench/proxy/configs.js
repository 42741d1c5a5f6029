// Configuration files for the upstream and for each proxy under test. Every proxy runs one worker
// (or one process, or one thread) and keeps its upstream connections alive where it can, as the
// benchmark's issue asks; nothing logs requests.
import { join } from 'node:path';
import { LOOPBACK } from '../lib/loopback.js';

/** Idle upstream connections each proxy keeps, as nginx's `keepalive 64`. */
export const UPSTREAM_KEEPALIVE = 64;

/** The upstream's response body: 12 bytes. */
export const UPSTREAM_BODY = 'hello world\n';

/**
 * Lines that keep a self-contained nginx (or hitless) instance inside `dir`: pid file, error log
 * and, for nginx, the temporary folders that Debian's build otherwise puts in /var/lib/nginx.
 * @param {string} dir
 * @param {{ tempPaths: boolean }} options
 */
function ownFiles(dir, { tempPaths }) {
  const lines = [`pid ${join(dir, 'nginx.pid')};`, `error_log ${join(dir, 'error.log')};`];
  const temps = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map(
    (kind) => `    ${kind}_temp_path ${join(dir, `${kind}_temp`)};`,
  );
  return { main: lines.join('\n'), http: tempPaths ? temps.join('\n') : '' };
}

/**
 * The upstream: one nginx worker answering every request with 200 and 12 bytes. It never closes
 * a kept-alive connection during a run (nginx closes one after 1000 requests by default), so that
 * no proxy pays for reconnections the others do not.
 * @param {string} dir
 * @param {number} port
 */
export function upstreamNginxConf(dir, port) {
  const files = ownFiles(dir, { tempPaths: true });
  return `# The upstream that every proxy under test forwards to.
worker_processes 1;
daemon off;
${files.main}
events { worker_connections 4096; }
http {
    access_log off;
${files.http}
    keepalive_requests 1000000;
    server {
        listen ${LOOPBACK}:${port};
        location / { return 200 "hello world\\n"; }
    }
}
`;
}

/**
 * The proxying part shared by nginx and hitless, in nginx's syntax.
 * @param {number} port
 * @param {number} upstreamPort
 */
function proxyHttpBlock(port, upstreamPort) {
  return `    upstream up {
        server ${LOOPBACK}:${upstreamPort};
        keepalive ${UPSTREAM_KEEPALIVE};
    }
    server {
        listen ${LOOPBACK}:${port};
        location / {
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }`;
}

/**
 * nginx as a reverse proxy: one worker, upstream keep-alive as nginx's documentation of
 * `keepalive` prescribes (HTTP/1.1 and an empty Connection header towards the upstream).
 * @param {string} dir
 * @param {number} port
 * @param {number} upstreamPort
 */
export function nginxProxyConf(dir, port, upstreamPort) {
  const files = ownFiles(dir, { tempPaths: true });
  return `worker_processes 1;
daemon off;
${files.main}
events { worker_connections 4096; }
http {
    access_log off;
${files.http}
${proxyHttpBlock(port, upstreamPort)}
}
`;
}

/**
 * hitless with the same proxy configuration as nginx; hitless reads nginx's syntax.
 * @param {string} dir
 * @param {number} port
 * @param {number} upstreamPort
 */
export function hitlessConf(dir, port, upstreamPort) {
  return `worker_processes 1;
daemon off;
pid ${join(dir, 'hitless.pid')};
error_log ${join(dir, 'error.log')};
events {}
http {
    access_log off;
${proxyHttpBlock(port, upstreamPort)}
}
`;
}

/**
 * HAProxy in HTTP mode: one thread, keep-alive on both sides (HAProxy's default since 1.8), and
 * `http-reuse always` so that idle server connections are shared between client connections.
 * Without a `log` line HAProxy logs nothing.
 * @param {number} port
 * @param {number} upstreamPort
 */
export function haproxyConf(port, upstreamPort) {
  return `global
    nbthread 1
    maxconn 4096

defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    http-reuse always

frontend bench
    bind ${LOOPBACK}:${port}
    default_backend up

backend up
    server up1 ${LOOPBACK}:${upstreamPort}
`;
}
