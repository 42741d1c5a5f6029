/** The nginx.conf the e2e process tests serve: `/` returns `body`, `/slow` proxies to a slow upstream. */
export function httpConf(options: { port: number; body: string; workers?: number; slowUpstreamPort?: number; main?: string; extraServer?: string }): string {
  const slow = options.slowUpstreamPort === undefined ? '' : `        location /slow { proxy_pass http://127.0.0.1:${options.slowUpstreamPort}; }\n`;
  return `worker_processes ${options.workers ?? 2};
error_log logs/error.log notice;
${options.main ?? ''}
events {}
http {
    server {
        listen 127.0.0.1:${options.port};
        location / { return 200 "${options.body}\\n"; }
${slow}    }
${options.extraServer ?? ''}
}
`;
}
