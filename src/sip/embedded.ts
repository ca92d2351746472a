/**
 * The embedded adapter of the signaling port: hushpay's own SIP core (UDP, TCP and TLS
 * transport, transactions, dialogs) in this process. The default engine.
 *
 * Why our own core: the only npm package that does server-side SIP (`sip` 0.0.6) has been
 * unmaintained since 2019, is untyped, and has crashed on malformed input; SIP.js is a
 * client-side (WebSocket) stack; drachtio-srf needs drachtio-server, which is neither on npm
 * nor in Debian. So the core is written here in strict TypeScript after SIP.js's layering.
 */

import type { Clock } from '../clock.ts';
import { readTlsFiles, type TlsFiles } from '../tls.ts';
import { InvalidStateError } from '../errors.ts';
import { TypedEmitter } from '../events.ts';
import { answerChallenge } from './digest.ts';
import type { SipMessage } from './message.ts';
import type { PortDialog, PortInvite, PortResponder, PortUacCallbacks, PortUacOptions, SignalingPort, SignalingPortEvents } from './port.ts';
import type { SipTimers } from './transactions.ts';
import type { SipAddress, TransportListener } from './transport.ts';
import { UdpTcpTransport, type UdpTcpTransportStats } from './transport-udp-tcp.ts';
import { IncomingInvite, InviteResponder, type SipDialog, SipUserAgent } from './ua.ts';

/** `sip.tls` (config.ts): SIP over TLS on its own port, from PEM files. */
export interface EmbeddedSipTlsOptions extends TlsFiles {
  /** 5061 usually; 0 picks a free port. */
  readonly port: number;
  /** Tests only: accept any certificate from the peers hushpay connects to. */
  readonly insecureSkipVerify?: boolean | undefined;
}

export interface EmbeddedSipOptions {
  readonly host: string;
  readonly port: number;
  readonly udp: boolean;
  readonly tcp: boolean;
  /** Listen for SIP over TLS too; the files are read and checked first (ConfigError naming `sip.tls.…`). */
  readonly tls?: EmbeddedSipTlsOptions | undefined;
  readonly advertise?: string | undefined;
  readonly clock: Clock;
  readonly timers?: SipTimers;
  readonly userAgent?: string;
}

export class EmbeddedSipPort extends TypedEmitter<SignalingPortEvents> implements SignalingPort {
  readonly listening: readonly string[];
  readonly #transport: UdpTcpTransport;
  readonly #ua: SipUserAgent;
  #closing: Promise<void> | undefined;

  private constructor(transport: UdpTcpTransport, ua: SipUserAgent) {
    super();
    this.#transport = transport;
    this.#ua = ua;
    this.listening = (['udp', 'tcp', 'tls'] as const).flatMap((t) => (transport.local[t] ? [`${t}:${transport.local[t].host}:${transport.local[t].port}`] : []));
    ua.on('invite', (invite, res) => {
      if (!this.emit('invite', invite, res)) res.send(480);
    });
  }

  static async start(options: EmbeddedSipOptions): Promise<EmbeddedSipPort> {
    const files = options.tls;
    const tls = files ? await readTlsFiles(files, 'sip.tls') : undefined;
    let ua: SipUserAgent | undefined;
    const listener: TransportListener = {
      message: (message: SipMessage, from: SipAddress) => ua?.receive(message, from),
      malformed: (reason: string, from: SipAddress, reply: SipMessage | undefined) => ua?.malformed(reason, from, reply),
    };
    const transport = await UdpTcpTransport.listen({
      host: options.host,
      port: options.port,
      udp: options.udp,
      tcp: options.tcp,
      tls: files && tls ? { port: files.port, cert: tls.cert, key: tls.key, ca: tls.ca, insecureSkipVerify: files.insecureSkipVerify } : undefined,
      listener,
      clock: options.clock,
    });
    ua = new SipUserAgent({
      transport,
      clock: options.clock,
      ...(options.timers ? { timers: options.timers } : {}),
      ...(options.advertise ? { advertise: { host: options.advertise } } : {}),
      userAgent: options.userAgent ?? 'hushpay',
      answerChallenge,
      resolve: async (host) => (await import('node:dns/promises')).lookup(host).then((r) => r.address),
    });
    return new EmbeddedSipPort(transport, ua);
  }

  get counts(): { dialogs: number; transactions: number } {
    const c = this.#ua.counts;
    return { dialogs: c.dialogs, transactions: c.transactions };
  }

  get transportStats(): UdpTcpTransportStats {
    return this.#transport.stats();
  }

  createUAS(invite: PortInvite, res: PortResponder, options: { localSdp: string; headers?: Iterable<readonly [string, string]> }): Promise<PortDialog> {
    if (!(invite instanceof IncomingInvite) || !(res instanceof InviteResponder)) throw new InvalidStateError('not an INVITE of this port');
    return this.#ua.createUAS(invite, res, options) as Promise<SipDialog>;
  }

  createUAC(uri: string, options: PortUacOptions, callbacks: PortUacCallbacks = {}): Promise<PortDialog> {
    return this.#ua.createUAC(uri, options, callbacks);
  }

  /** Ends every dialog and closes the sockets, once. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.#ua.close();
      await this.#transport.close();
      this.removeAllListeners();
    })();
    return this.#closing;
  }
}
