/**
 * The transport seam of the embedded SIP core (RFC 3261 §18), SIP.js style: the layers above
 * see one small interface and never a socket. `UdpTcpTransport` (transport-udp-tcp.ts) is
 * the real one; tests may plug in a pair of in-memory transports.
 */

import type { SipMessage } from './message.ts';

export type SipTransportName = 'udp' | 'tcp';

/** Where a message came from or goes to. For TCP, `connection` names the connection it used. */
export interface SipAddress {
  readonly transport: SipTransportName;
  readonly host: string;
  readonly port: number;
  readonly connection?: string;
}

export interface TransportListener {
  /** A message that parsed; `from` is where it really came from (for rport and responses). */
  message(message: SipMessage, from: SipAddress): void;
  /**
   * Bytes that did not parse. `reply` is set when a 400 can be sent back (the bytes held
   * enough of a request to build a response to); the layer above decides.
   */
  malformed(reason: string, from: SipAddress, reply: SipMessage | undefined): void;
}

export interface SipTransport {
  /** The address this transport is reachable at, per transport name. */
  readonly local: Readonly<Record<SipTransportName, { host: string; port: number } | undefined>>;
  /** Sends a message; TCP reuses the connection named in `to` or opens one. Never throws. */
  send(message: SipMessage, to: SipAddress): void;
  /** Whether messages on this transport are delivered reliably (TCP: no retransmissions). */
  reliable(transport: SipTransportName): boolean;
  close(): Promise<void>;
}

export function formatAddress(a: SipAddress): string {
  const host = a.host.includes(':') && !a.host.startsWith('[') ? `[${a.host}]` : a.host;
  return `${a.transport}:${host}:${a.port}`;
}
