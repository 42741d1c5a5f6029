/** Helpers of the process tests. */
import http from 'node:http';

/** A GET of a `/slow/<ms>` path: `started` settles once the worker has sent the head (the request is in a worker). */
export function slowGet(port: number, path: string): { started: Promise<void>; answer: Promise<{ status: number; body: string } | { error: string }> } {
  let headReceived: () => void = () => undefined;
  const started = new Promise<void>((resolve) => (headReceived = resolve));
  const answer = new Promise<{ status: number; body: string } | { error: string }>((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false, timeout: 10_000 }, (res) => {
      headReceived();
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
    req.on('error', (err: NodeJS.ErrnoException) => {
      headReceived();
      resolve({ error: err.code ?? err.message });
    });
  });
  return { started, answer };
}
