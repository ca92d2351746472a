/**
 * RTP sockets: the only file of the media layer that touches the network. A call gets one
 * `RtpEndpoint` per leg — an even RTP port from the configured range, with its odd RTCP port
 * bound beside it (RTCP is received and dropped: hushpay rewrites the streams, so the peers'
 * reports would describe streams the other side never sees).
 *
 * Symmetric RTP (RFC 4961): an endpoint sends to the address the peer's SDP gave until the
 * peer's first packet arrives, then to wherever the peer really sends from ("latching").
 */

import dgram from 'node:dgram';
import { RtpPortsExhaustedError } from '../errors.ts';

export interface RtpAddress {
  readonly host: string;
  readonly port: number;
}

/** Hands out even ports from a range, round-robin, skipping ones in use. */
export class RtpPortRange {
  readonly min: number;
  readonly max: number;
  #next: number;
  readonly #inUse = new Set<number>();

  constructor(min: number, max: number) {
    this.min = min % 2 === 0 ? min : min + 1;
    this.max = max;
    this.#next = this.min;
  }

  get inUse(): number {
    return this.#inUse.size;
  }

  /** Binds an endpoint on the next free even port (and the odd one beside it). */
  async open(host: string, onPacket: (data: Buffer) => void): Promise<RtpEndpoint> {
    const span = Math.floor((this.max - this.min + 1) / 2);
    for (let tries = 0; tries < span; tries++) {
      const port = this.#next;
      this.#next = this.#next + 2 > this.max - 1 ? this.min : this.#next + 2;
      if (this.#inUse.has(port)) continue;
      this.#inUse.add(port);
      try {
        const endpoint = await RtpEndpoint.bind(host, port, onPacket, () => this.#inUse.delete(port));
        return endpoint;
      } catch {
        this.#inUse.delete(port); // taken by someone else: try the next
      }
    }
    throw new RtpPortsExhaustedError(this.min, this.max);
  }
}

function bindSocket(socket: dgram.Socket, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    socket.once('error', onError);
    socket.bind(port, host, () => {
      socket.off('error', onError);
      resolve();
    });
  });
}

export interface RtpEndpointStats {
  readonly packetsIn: number;
  readonly packetsOut: number;
  /**
   * Packets dropped for their source: from port 0 (no peer can be answered there), or from
   * another source in the moment before the socket is connected (after that the kernel drops
   * them unseen).
   */
  readonly strays: number;
  readonly sendErrors: number;
}

export class RtpEndpoint {
  readonly host: string;
  readonly port: number;
  readonly #rtp: dgram.Socket;
  readonly #rtcp: dgram.Socket;
  readonly #released: () => void;
  #remote: RtpAddress | undefined;
  #latched = false;
  #connected: 'no' | 'pending' | 'yes' = 'no';
  #closed = false;
  #packetsIn = 0;
  #packetsOut = 0;
  #strays = 0;
  #sendErrors = 0;

  private constructor(host: string, port: number, rtp: dgram.Socket, rtcp: dgram.Socket, released: () => void) {
    this.host = host;
    this.port = port;
    this.#rtp = rtp;
    this.#rtcp = rtcp;
    this.#released = released;
  }

  static async bind(host: string, port: number, onPacket: (data: Buffer) => void, released: () => void): Promise<RtpEndpoint> {
    const type = host.includes(':') ? 'udp6' : 'udp4';
    const rtp = dgram.createSocket({ type, recvBufferSize: 1 << 20, sendBufferSize: 1 << 20 });
    const rtcp = dgram.createSocket(type);
    try {
      await bindSocket(rtp, host, port);
      await bindSocket(rtcp, host, port + 1);
    } catch (err) {
      rtp.close();
      rtcp.close();
      throw err;
    }
    const endpoint = new RtpEndpoint(host, port, rtp, rtcp, released);
    rtp.on('message', (data, info) => endpoint.#receive(data, info.address, info.port, onPacket));
    rtp.on('error', () => endpoint.#sendErrors++);
    rtcp.on('message', () => {});
    rtcp.on('error', () => {});
    return endpoint;
  }

  /** Packets accepted from the peer so far (the no-RTP watch reads this). */
  get packetsIn(): number {
    return this.#packetsIn;
  }

  get stats(): RtpEndpointStats {
    return { packetsIn: this.#packetsIn, packetsOut: this.#packetsOut, strays: this.#strays, sendErrors: this.#sendErrors };
  }

  get remote(): RtpAddress | undefined {
    return this.#remote;
  }

  /** Where to send, from the peer's SDP; a new address (a re-INVITE) un-latches. */
  setRemote(remote: RtpAddress): void {
    if (this.#remote && this.#remote.host === remote.host && this.#remote.port === remote.port) return;
    this.#remote = remote;
    this.#latched = false;
    if (this.#connected !== 'no') this.#disconnect();
  }

  #receive(data: Buffer, host: string, port: number, onPacket: (data: Buffer) => void): void {
    if (this.#closed) return;
    if (port === 0) {
      // a forged or broken source: latching to it would leave nowhere to send
      this.#strays++;
      return;
    }
    const remote = this.#remote;
    if (!this.#latched) {
      this.#remote = { host, port };
      this.#latched = true;
      this.#connect(host, port);
    } else if (remote && (remote.port !== port || remote.host !== host)) {
      this.#strays++;
      return;
    }
    this.#packetsIn++;
    onPacket(data);
  }

  /**
   * Once latched, the socket is connected to the peer: the kernel then filters strays for us
   * and each send skips the address lookup (a third of the cost of a send).
   */
  #connect(host: string, port: number): void {
    if (this.#connected !== 'no') return;
    this.#connected = 'pending';
    const connected = (err?: Error): void => {
      if (this.#closed) return;
      if (err) {
        this.#connected = 'no'; // sends go by address, as before the latch
        return;
      }
      this.#connected = this.#remote?.host === host && this.#remote.port === port ? 'yes' : 'no';
      if (this.#connected === 'no') this.#disconnect();
    };
    try {
      this.#rtp.connect(port, host, connected);
    } catch (err) {
      connected(err instanceof Error ? err : new Error(String(err)));
    }
  }

  #disconnect(): void {
    try {
      this.#rtp.disconnect();
    } catch {
      // not connected
    }
    this.#connected = 'no';
  }

  send(data: Uint8Array): void {
    const remote = this.#remote;
    if (this.#closed || !remote || remote.port === 0) return;
    this.#packetsOut++;
    if (this.#connected === 'yes') this.#rtp.send(data, this.#onSent);
    else this.#rtp.send(data, remote.port, remote.host, this.#onSent);
  }

  readonly #onSent = (err: Error | null): void => {
    if (err) this.#sendErrors++;
  };

  /** Closes both sockets and gives the port back, exactly once. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#rtp.removeAllListeners('message');
    this.#rtcp.removeAllListeners('message');
    let pending = 2;
    const done = (): void => {
      if (--pending === 0) this.#released();
    };
    this.#rtp.close(done);
    this.#rtcp.close(done);
  }
}
