/** GET /metrics on an admin unix socket, as Prometheus scrapes it. */
import http from 'node:http';

export interface Scrape {
  readonly status: number;
  readonly type: string;
  readonly body: string;
  /** From the request to the end of the answer, in milliseconds. */
  readonly ms: number;
}

/** Scrapes `/metrics` on the admin socket at `socketPath`, with `accept` if given; 10 s at most. */
export function scrapeMetrics(socketPath: string, accept?: string): Promise<Scrape> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.get({ socketPath, path: '/metrics', headers: accept === undefined ? {} : { accept }, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body, ms: performance.now() - started }));
    });
    req.on('timeout', () => req.destroy(new Error('scrape timed out')));
    req.on('error', reject);
  });
}
