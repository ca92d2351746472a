/**
 * The socket edge of a call's media: one UDP socket on an even port (RFC 3550 §11: "RTP data
 * SHOULD be carried on an even UDP port number"; no RTCP is sent or read on the odd one).
 * Datagrams are parsed here; what does not parse is counted and dropped, never thrown into the
 * call. `send` never throws. `close()` is idempotent and resolves once the handle is released.
 *
 * Not src/media/relay.ts's RtpEndpoint: that one takes ports from hushpay's configured range and
 * latches onto the first source, dropping others; a simulator measuring what hushpay sends binds
 * an ephemeral port and takes every packet, from wherever it comes.
 */

import dgram from 'node:dgram';
import net from 'node:net';
import type { Clock } from '../src/clock.ts';
import { MediaConfigError } from '../src/errors.ts';
import { RtpDropCounter, type RtpPacket } from '../src/media/rtp.ts';

/** Binds to port 0 until the system hands out an even port, or its odd port's even twin is free. */
const EVEN_PORT_ATTEMPTS = 32;

function bind(host: string, port: number): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket({ type: net.isIPv6(host) ? 'udp6' : 'udp4' });
    socket.once('error', (error) => {
      socket.close();
      reject(error);
    });
    socket.bind({ address: host, port, exclusive: true }, () => {
      socket.removeAllListeners('error');
      resolve(socket);
    });
  });
}

function closeSocket(socket: dgram.Socket): Promise<void> {
  return new Promise((resolve) => {
    try {
      socket.close(() => resolve());
    } catch {
      resolve(); // already closed
    }
  });
}

/** Two turns of the check phase: the handle is released only after the 'close' callback. */
const afterClose = (): Promise<void> => new Promise((resolve) => setImmediate(() => setImmediate(resolve)));

async function bindEven(host: string): Promise<dgram.Socket> {
  for (let attempt = 0; attempt < EVEN_PORT_ATTEMPTS; attempt++) {
    const socket = await bind(host, 0);
    const port = socket.address().port;
    if (port % 2 === 0) return socket;
    await closeSocket(socket);
    try {
      return await bind(host, port - 1);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error;
    }
  }
  throw new MediaConfigError(`no even UDP port free on ${host} after ${EVEN_PORT_ATTEMPTS} attempts`);
}

export class SimRtpSocket {
  readonly host: string;
  readonly port: number;
  readonly #socket: dgram.Socket;
  readonly #drops = new RtpDropCounter();
  #sendErrors = 0;
  #closing: Promise<void> | undefined;

  private constructor(socket: dgram.Socket, host: string, clock: Clock, onPacket: (packet: RtpPacket, arrivalMs: number) => void) {
    this.#socket = socket;
    this.host = host;
    this.port = socket.address().port;
    socket.on('message', (datagram) => {
      const arrivalMs = clock.now();
      const packet = this.#drops.parseOrDrop(datagram);
      if (packet) onPacket(packet, arrivalMs);
    });
    socket.on('error', () => {
      this.#sendErrors++; // e.g. ICMP port unreachable surfacing on a later send
    });
  }

  /** Opens a socket on an even ephemeral port of `host`. */
  static async open(host: string, clock: Clock, onPacket: (packet: RtpPacket, arrivalMs: number) => void): Promise<SimRtpSocket> {
    return new SimRtpSocket(await bindEven(host), host, clock, onPacket);
  }

  /** Datagrams that were not RTP. */
  get malformed(): number {
    return this.#drops.total;
  }

  get sendErrors(): number {
    return this.#sendErrors;
  }

  get closed(): boolean {
    return this.#closing !== undefined;
  }

  send(bytes: Uint8Array, to: { readonly host: string; readonly port: number }): void {
    if (this.#closing) return;
    try {
      this.#socket.send(bytes, to.port, to.host, (error) => {
        if (error) this.#sendErrors++;
      });
    } catch {
      this.#sendErrors++;
    }
  }

  close(): Promise<void> {
    this.#closing ??= closeSocket(this.#socket).then(afterClose);
    return this.#closing;
  }
}
