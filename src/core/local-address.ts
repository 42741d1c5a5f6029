/**
 * A socket's local address as nginx's `c->local_sockaddr`, which stream `pass` replaces with the
 * address it passes to ($server_addr, $server_port, and the server chosen by address see it).
 * Node's getters read the kernel's: an own property on the socket shadows them, and a TLS socket
 * made over it later takes them over.
 */
import type { Socket } from 'node:net';

const FIELDS = ['localAddress', 'localPort'] as const;

/** Makes `socket` report `address`:`port` as its local address from now on. */
export function setLocalAddress(socket: Socket, address: string, port: number): void {
  Object.defineProperty(socket, 'localAddress', { value: address, configurable: true });
  Object.defineProperty(socket, 'localPort', { value: port, configurable: true });
}

/** Gives `wrapper` (a TLS socket over `raw`) the local address set on `raw`, if one was. */
export function inheritLocalAddress(raw: Socket, wrapper: Socket): void {
  for (const field of FIELDS) {
    const own = Object.getOwnPropertyDescriptor(raw, field);
    if (own !== undefined) Object.defineProperty(wrapper, field, own);
  }
}
