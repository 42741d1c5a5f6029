// http-proxy (node-http-proxy) behind node:http. Without an agent http-proxy sends
// "Connection: close" upstream (lib/http-proxy/common.js), so it gets a keep-alive http.Agent
// through its documented `agent` option. Usage: node node-http-proxy.js PORT UPSTREAM_PORT
import { Agent, createServer } from 'node:http';
import httpProxy from 'http-proxy';
import { LOOPBACK } from '../../lib/loopback.js';
import { UPSTREAM_KEEPALIVE } from '../configs.js';

const [port, upstreamPort] = process.argv.slice(2).map(Number);

const agent = new Agent({ keepAlive: true, maxFreeSockets: UPSTREAM_KEEPALIVE });
const proxy = httpProxy.createProxyServer({ target: `http://${LOOPBACK}:${upstreamPort}`, agent });
proxy.on('error', (err, _request, response) => {
  // A failed upstream request must show in wrk's error count, not hang the client.
  if ('writeHead' in response && !response.headersSent) response.writeHead(502);
  response.end();
  console.error(err.message);
});
createServer((request, response) => proxy.web(request, response)).listen(port, LOOPBACK);
