// @fastify/http-proxy on fastify, as its README shows it, with the upstream connection pool that
// @fastify/reply-from documents (undici, keep-alive). Usage: node fastify-http-proxy.js PORT UPSTREAM_PORT
import fastifyHttpProxy from '@fastify/http-proxy';
import Fastify from 'fastify';
import { LOOPBACK } from '../../lib/loopback.js';
import { UPSTREAM_KEEPALIVE } from '../configs.js';

const [port, upstreamPort] = process.argv.slice(2).map(Number);

const app = Fastify({ logger: false });
await app.register(fastifyHttpProxy, {
  upstream: `http://${LOOPBACK}:${upstreamPort}`,
  undici: { connections: UPSTREAM_KEEPALIVE, pipelining: 1, keepAliveTimeout: 60_000 },
});
await app.listen({ host: LOOPBACK, port });
