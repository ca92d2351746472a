/**
 * The transport seam of the embedded SIP core (RFC 3261 §18), SIP.js style: the layers above
 * see one small interface and never a socket. `UdpTcpTransport` (transport-udp-tcp.ts) is
 * the real one (UDP, TCP and TLS); tests may plug in a pair of in-memory transports.
 */

import type { SipMessage } from './message.ts';

/** UDP, or a stream: TCP, or TLS over TCP (RFC 3261 §26.2, `SIP/2.0/TLS` in Via). */
export type SipTransportName = 'udp' | 'tcp' | 'tls';

/** RFC 3261 §19.1.2: "the default port value is transport dependent; it is 5060 for UDP, TCP and SCTP. It is 5061 for TLS." */
export const defaultPort = (transport: SipTransportName): number => (transport === 'tls' ? 5061 : 5060);

/** Whether a transport is a stream (framed by Content-Length, §18.3) rather than datagrams. */
export const isStream = (transport: SipTransportName): transport is 'tcp' | 'tls' => transport !== 'udp';

/** Where a message came from or goes to. For TCP and TLS, `connection` names the connection it used. */
export interface SipAddress {
  readonly transport: SipTransportName;
  readonly host: string;
  readonly port: number;
  readonly connection?: string;
  /**
   * TLS only: the host name the URI named, when `host` is the address it resolved to. A new
   * connection sends it as SNI and checks the peer's certificate against it (RFC 5922 §7.2).
   */
  readonly servername?: string;
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
  /** Sends a message; TCP and TLS reuse the connection named in `to` or open one. Never throws. */
  send(message: SipMessage, to: SipAddress): void;
  /** Whether messages on this transport are delivered reliably (TCP, TLS: no retransmissions). */
  reliable(transport: SipTransportName): boolean;
  close(): Promise<void>;
}

export function formatAddress(a: SipAddress): string {
  const host = a.host.includes(':') && !a.host.startsWith('[') ? `[${a.host}]` : a.host;
  return `${a.transport}:${host}:${a.port}`;
}
