/**
 * The ACME server's name resolved through the http block's `resolver`, as nginx-acme does
 * (`Issuer::postconfiguration()` takes the http core module's resolver): a `net` lookup function
 * over hitless's own DNS client (core/dns-client.ts), for the ACME client's HTTPS agent.
 */
import { isIP, type LookupFunction } from 'node:net';
import { DnsClient, dnsErrorText } from '../core/dns-client.js';

/** `resolver` and `resolver_timeout` of the http block. */
export interface AcmeResolverSettings {
  readonly servers: readonly { readonly host: string; readonly port: number }[];
  readonly timeoutMs: number;
  readonly ipv4: boolean;
  readonly ipv6: boolean;
}

/**
 * A lookup function asking `resolver`'s name servers; a name that does not resolve fails with
 * `ENOTFOUND` and nginx's wording (`"acme.test" could not be resolved (3: Host not found)`).
 */
export function resolverLookup(resolver: AcmeResolverSettings): LookupFunction {
  const client = new DnsClient(resolver.servers);
  return (hostname, options, callback) => {
    const family = options.family === 'IPv4' ? 4 : options.family === 'IPv6' ? 6 : typeof options.family === 'number' ? options.family : 0;
    client.resolveAddresses(hostname, { ipv4: resolver.ipv4 && family !== 6, ipv6: resolver.ipv6 && family !== 4, timeoutMs: resolver.timeoutMs }).then(
      (answer) => {
        const addresses = answer.addresses.filter((address) => family === 0 || isIP(address) === family);
        const [first] = addresses;
        if (answer.code !== 0 || first === undefined) {
          const code = answer.code === 0 ? 3 : answer.code;
          const err: NodeJS.ErrnoException = Object.assign(new Error(`"${hostname}" could not be resolved (${code}: ${dnsErrorText(code)})`), { code: 'ENOTFOUND', hostname });
          callback(err, '', 0);
          return;
        }
        if (options.all === true) callback(null, addresses.map((address) => ({ address, family: isIP(address) })));
        else callback(null, first, isIP(first));
      },
      (err: unknown) => callback(err instanceof Error ? err : new Error(String(err)), '', 0),
    );
  };
}
