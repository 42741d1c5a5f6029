/** The built-in modules, in the order nginx would run their directive handlers and checks. */
import { httpStubStatusModule } from './http/stub-status-module.js';
import { httpMetricsModule } from './http/metrics-module.js';
import { adminModule } from './admin/admin-module.js';
import { httpAccessModule } from './http/access-module.js';
import { httpAuthBasicModule } from './http/auth-basic-module.js';
import { coreModule } from './conf/core-module.js';
import { httpCoreModule } from './http/core-module.js';
import { httpCharsetModule } from './http/charset-module.js';
import { httpSubFilterModule } from './http/sub-filter-module.js';
import { httpGrpcModule } from './http/grpc-module.js';
import { httpFastcgiModule } from './http/fastcgi-module.js';
import { httpUwsgiModule } from './http/uwsgi-module.js';
import { httpScgiModule } from './http/scgi-module.js';
import { httpBrotliModule } from './http/brotli-module.js';
import { httpBrotliStaticModule } from './http/brotli-static.js';
import { httpGunzipModule } from './http/gunzip-module.js';
import { httpGzipModule } from './http/gzip-module.js';
import { httpGzipStaticModule } from './http/gzip-static.js';
import { httpHeadersModule } from './http/headers-module.js';
import { httpLimitConnModule } from './http/limit-conn-module.js';
import { httpLimitReqModule } from './http/limit-req-module.js';
import { httpLogModule } from './http/log-module.js';
import { httpMapModule } from './http/map-module.js';
import { httpSplitClientsModule } from './http/split-clients-module.js';
import { httpGeoModule } from './http/geo-module.js';
import { httpRefererModule } from './http/referer-module.js';
import { httpMirrorModule } from './http/mirror-module.js';
import { httpMimeTypesModule } from './http/mime-types-module.js';
import { httpAutoindexModule, httpStaticModule } from './http/static-module.js';
import { httpProxyModule } from './http/proxy-module.js';
import { httpRealIpModule } from './http/realip-module.js';
import { httpRewriteModule } from './http/rewrite-module.js';
import { httpV2Module } from './http/v2-module.js';
import { httpSslModule } from './http/ssl-module.js';
import { httpAcmeModule } from './acme/acme-module.js';
import { streamCoreModule } from './stream/core-module.js';
import { upstreamEwmaModule } from './upstream/balancers/ewma.js';
import { streamAccessModule, streamGeoModule, streamLimitConnModule, streamLogModule, streamMapModule, streamRealIpModule, streamReturnModule, streamSetModule, streamSplitClientsModule, streamSslPrereadModule, streamUpstreamModules } from './stream/modules.js';
import { streamProxyModule } from './stream/proxy-module.js';
import { streamPassModule } from './stream/pass.js';
import { streamSslModule } from './stream/ssl-module.js';
import { httpUpstreamHashModule } from './http/upstream-hash-module.js';
import { upstreamIpHashModule } from './upstream/balancers/ip-hash.js';
import { upstreamLeastConnModule } from './upstream/balancers/least-conn.js';
import { upstreamRandomModule } from './upstream/balancers/random.js';
import { httpUpstreamStickyModule } from './http/upstream-sticky-module.js';
import { upstreamHealthCheckModule } from './upstream/health/health-check-module.js';
import { upstreamKeepaliveModule } from './upstream/keepalive-module.js';
import { upstreamModule } from './upstream/upstream-module.js';
import { upstreamZoneModule } from './upstream/zone-module.js';
import { DirectiveRegistry, type ConfModule } from './conf/registry.js';

/** Every module hitless ships, in registration order. */
export const builtinModules: readonly ConfModule[] = [
  coreModule,
  adminModule,
  httpCoreModule,
  httpSslModule,
  httpAcmeModule,
  httpV2Module,
  httpRewriteModule,
  httpHeadersModule,
  httpLogModule,
  httpLimitConnModule,
  httpLimitReqModule,
  httpRealIpModule,
  httpAccessModule,
  httpAuthBasicModule,
  httpMapModule,
  httpSplitClientsModule,
  httpGeoModule,
  httpRefererModule,
  httpMirrorModule,
  httpStubStatusModule,
  httpMetricsModule,
  httpStaticModule,
  httpAutoindexModule,
  httpMimeTypesModule,
  httpCharsetModule,
  httpSubFilterModule,
  httpProxyModule,
  httpGrpcModule,
  httpFastcgiModule,
  httpUwsgiModule,
  httpScgiModule,
  httpGzipModule,
  httpGzipStaticModule,
  httpGunzipModule,
  httpBrotliModule,
  httpBrotliStaticModule,
  upstreamModule,
  httpUpstreamHashModule,
  upstreamIpHashModule,
  upstreamLeastConnModule,
  upstreamRandomModule,
  upstreamEwmaModule,
  httpUpstreamStickyModule,
  upstreamKeepaliveModule,
  upstreamZoneModule,
  upstreamHealthCheckModule,
  streamCoreModule,
  streamSslModule,
  streamSslPrereadModule,
  streamRealIpModule,
  streamLimitConnModule,
  streamAccessModule,
  streamLogModule,
  streamMapModule,
  streamGeoModule,
  streamSplitClientsModule,
  streamSetModule,
  streamReturnModule,
  streamProxyModule,
  streamPassModule,
  ...streamUpstreamModules,
];

/** A registry holding every built-in module. */
export function createRegistry(extra: readonly ConfModule[] = []): DirectiveRegistry {
  return new DirectiveRegistry([...builtinModules, ...extra]);
}
