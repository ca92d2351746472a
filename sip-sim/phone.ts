/**
 * The shared base of the simulated phones: its own SIP user agent on a UDP socket (and a TLS
 * listener when given a certificate), the calls it has, and the records it reports (as typed
 * events and as JSON lines through `on('record')`).
 *
 * Lifecycle (STYLE.md practice 2): the phone owns its transport, its user agent, its calls and
 * every call set-up still in flight. `close()` runs once: it hangs up or abandons every call,
 * waits (at most BYE_WAIT_MS) for the BYEs to be answered, waits for every set-up to unwind and
 * every call to end (sockets closed, recordings written), then closes the user agent and the
 * transport. Nothing is left open afterwards: no socket, no timer.
 */

import { lookup } from 'node:dns/promises';
import { type Clock, systemClock, type TimerHandle } from '../src/clock.ts';
import { TypedEmitter } from '../src/events.ts';
import { answerChallenge } from '../src/sip/digest.ts';
import type { SipMessage, SipRequest } from '../src/sip/message.ts';
import type { SipAddress, SipTransport, TransportListener } from '../src/sip/transport.ts';
import { UdpTcpTransport } from '../src/sip/transport-udp-tcp.ts';
import { SipUserAgent } from '../src/sip/ua.ts';
import { type CallHost, type CallMediaOptions, prepareSendPlan, SimCall } from './call.ts';
import type { PhoneRole, RecordBody, SimEvents, SimRecord } from './records.ts';
import { SimRtpSocket } from './rtp-socket.ts';

/** How long close() waits for the far ends to answer its BYEs. */
export const BYE_WAIT_MS = 2000;

export interface SimPhoneOptions {
  /** Address SIP and RTP bind to; default 127.0.0.1. */
  readonly host?: string;
  /** SIP (UDP) port; 0, the default, picks a free one. */
  readonly port?: number;
  /** Address written in Contact, Via and SDP; default `host` (127.0.0.1 if `host` is a wildcard). */
  readonly advertise?: string;
  /** Time source for pacing, timers and measurements; default the system's monotonic clock. */
  readonly clock?: Clock;
  /** User-Agent and Server header. */
  readonly userAgent?: string;
  /** Interval of the periodic `rtp` records of each call, ms; 0 (default) reports only at the end. */
  readonly rtpReportIntervalMs?: number;
  /**
   * SIP over TLS too, on a free port of its own: `uri()` then names it (`;transport=tls`), and
   * calls to a `transport=tls` URI go over TLS, the peer's certificate checked against `ca`.
   */
  readonly tls?: SimTlsOptions;
}

/** PEM contents (test/sip/certs.ts makes throwaway ones). */
export interface SimTlsOptions {
  readonly cert: string | Buffer;
  readonly key: string | Buffer;
  /** The CA a peer's certificate must chain to; default Node's and the system's. */
  readonly ca?: string | Buffer;
}

const WILDCARDS = new Set(['0.0.0.0', '::', '']);

export abstract class SimPhone extends TypedEmitter<SimEvents> {
  readonly role: PhoneRole;
  readonly clock: Clock;
  /** Where this phone's SIP socket is bound. */
  readonly sip: { readonly host: string; readonly port: number };
  /** Where its TLS listener is bound, when it has one. */
  readonly sipTls: { readonly host: string; readonly port: number } | undefined;
  protected readonly ua: SipUserAgent;
  readonly #transport: UdpTcpTransport;
  readonly #startedAt: number;
  readonly #calls = new Set<SimCall>();
  readonly #setups = new Set<Promise<unknown>>();
  /** BYEs sent and not yet answered. */
  readonly #byes = new Set<Promise<void>>();
  readonly #host: CallHost;
  /** Aborted when close() starts, so INVITEs in flight stop waiting. */
  readonly #closeSignal = new AbortController();
  #lastRequestSent: SipRequest | undefined;
  #nextCall = 1;
  #closing: Promise<void> | undefined;

  protected constructor(role: PhoneRole, options: SimPhoneOptions, opened: OpenedSip) {
    super();
    this.role = role;
    this.clock = opened.clock;
    this.ua = opened.ua;
    this.#transport = opened.transport;
    this.#startedAt = this.clock.now();
    const local = opened.transport.local.udp!;
    this.sip = { host: local.host, port: local.port };
    this.sipTls = opened.transport.local.tls;
    opened.tap.sent = (message) => {
      if (message.kind === 'request') this.#lastRequestSent = message;
    };
    const host = options.host ?? '127.0.0.1';
    this.#host = {
      clock: this.clock,
      rtpHost: host,
      sdpAddress: advertisedHost(options),
      rtpReportIntervalMs: options.rtpReportIntervalMs ?? 0,
      report: (body) => this.report(body),
      byeSent: (answered) => {
        this.#byes.add(answered);
        const forget = (): boolean => this.#byes.delete(answered);
        answered.then(forget, forget);
      },
      callEnded: (call) => this.#calls.delete(call),
    };
  }

  /** Opens the SIP socket and the user agent on it. */
  protected static async openSip(options: SimPhoneOptions, role: PhoneRole): Promise<OpenedSip> {
    const clock = options.clock ?? systemClock;
    let ua: SipUserAgent | undefined;
    const listener: TransportListener = {
      message: (message: SipMessage, from: SipAddress) => ua?.receive(message, from),
      malformed: (reason: string, from: SipAddress, reply: SipMessage | undefined) => ua?.malformed(reason, from, reply),
    };
    const tls = options.tls ? { port: 0, cert: options.tls.cert, key: options.tls.key, ca: options.tls.ca } : undefined;
    const transport = await UdpTcpTransport.listen({ host: options.host ?? '127.0.0.1', port: options.port ?? 0, udp: true, tcp: false, tls, listener, clock });
    const tap: { sent: ((message: SipMessage) => void) | undefined } = { sent: undefined };
    // the user agent sends through this, so the phone sees each request as it goes out
    const tapped: Pick<SipTransport, 'send' | 'reliable' | 'local'> = {
      local: transport.local,
      reliable: (t) => transport.reliable(t),
      send: (message, to) => {
        tap.sent?.(message);
        transport.send(message, to);
      },
    };
    ua = new SipUserAgent({
      transport: tapped,
      clock,
      advertise: { host: advertisedHost(options) },
      userAgent: options.userAgent ?? `sip-sim ${role}`,
      answerChallenge,
      resolve: async (name) => (await lookup(name)).address,
    });
    return { clock, transport, ua, tap };
  }

  /** `sip:user@host:port` of this phone (`…;transport=tls` on its TLS port, when it has one). */
  uri(user: string = this.role): string {
    const host = this.#host.sdpAddress.includes(':') ? `[${this.#host.sdpAddress}]` : this.#host.sdpAddress;
    return this.sipTls ? `sip:${user}@${host}:${this.sipTls.port};transport=tls` : `sip:${user}@${host}:${this.sip.port}`;
  }

  /** Calls not yet ended. */
  get calls(): readonly SimCall[] {
    return [...this.#calls];
  }

  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /** Reports one record: as `record` and under its own name. */
  protected report(body: RecordBody): void {
    const { event, ...fields } = body;
    const record = { event, atMs: Math.round((this.clock.now() - this.#startedAt) * 100) / 100, phone: this.role, ...fields } as SimRecord;
    this.emit('record', record);
    // each record type is its own event name, with itself as the one argument (SimEvents)
    const emitNamed = this.emit.bind(this) as unknown as (event: SimRecord['event'], record: SimRecord) => boolean;
    emitNamed(record.event, record);
  }

  /**
   * A new call, its send plan checked and its audio read first (errors throw here, before any
   * SIP). `options` may depend on the call's number (a recording path per call).
   */
  protected async newCall(options: CallMediaOptions | ((call: number) => CallMediaOptions)): Promise<SimCall> {
    const index = this.#nextCall++;
    const plan = await prepareSendPlan(typeof options === 'function' ? options(index) : options);
    const call = new SimCall(this.#host, this.role, index, plan);
    this.#calls.add(call);
    return call;
  }

  /**
   * Opens the call's RTP socket; false if the call ended or the phone started closing meanwhile
   * (the socket is closed again and the call ended: nothing is left open).
   */
  protected async openRtp(call: SimCall): Promise<boolean> {
    const rtp = await SimRtpSocket.open(this.#host.rtpHost, this.clock, call.receivePacket);
    if (call.over || this.closed) {
      await rtp.close();
      await call.close();
      return false;
    }
    call.attachRtp(rtp);
    return true;
  }

  /** The SDP address of this phone's media. */
  protected get sdpAddress(): string {
    return this.#host.sdpAddress;
  }

  /**
   * Runs `send` and returns the request it sent synchronously (the user agent sends an INVITE
   * before createUAC first awaits, when it is given its target), to learn the Call-ID it chose.
   */
  protected capturingRequest<T>(send: () => T): { result: T; request: SipRequest | undefined } {
    this.#lastRequestSent = undefined;
    const result = send();
    const request = this.#lastRequestSent;
    this.#lastRequestSent = undefined;
    return { result, request };
  }

  /**
   * `pending`, or undefined as soon as the phone starts closing (a set-up must not hold close()
   * up; what `pending` brings later — a dialog — is ended by the user agent's own close).
   */
  protected untilClosed<T>(pending: Promise<T>): Promise<T | undefined> {
    const signal = this.#closeSignal.signal;
    if (signal.aborted) {
      pending.catch(() => {});
      return Promise.resolve(undefined);
    }
    return new Promise<T | undefined>((resolve, reject) => {
      const onClose = (): void => resolve(undefined);
      signal.addEventListener('abort', onClose, { once: true });
      pending.then(
        (value) => {
          signal.removeEventListener('abort', onClose);
          resolve(value);
        },
        (error: unknown) => {
          signal.removeEventListener('abort', onClose);
          reject(error);
        },
      );
    });
  }

  /** Keeps a set-up in flight known to close(), which waits for it. */
  protected track<T>(setup: Promise<T>): Promise<T> {
    const settled = setup.then(
      () => undefined,
      () => undefined,
    );
    this.#setups.add(settled);
    void settled.then(() => this.#setups.delete(settled));
    return setup;
  }

  /** Hangs up every call and closes everything, once; later calls return the same promise. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#closeSignal.abort();
    const calls = [...this.#calls];
    for (const call of calls) void call.close();
    // the far ends' answers to every BYE, this close()'s and earlier ones, for a while
    let timer: TimerHandle | undefined;
    await Promise.race([Promise.allSettled([...this.#byes]), new Promise<void>((resolve) => (timer = this.clock.setTimeout(resolve, BYE_WAIT_MS)))]);
    if (timer !== undefined) this.clock.clearTimeout(timer);
    await Promise.all([...this.#setups]);
    await Promise.all(calls.map((c) => c.ended));
    // calls a set-up created after the first snapshot (close() ended them as it found them)
    await Promise.all([...this.#calls].map((c) => c.close().then(() => c.ended)));
    await this.ua.close();
    // a response sent just now (a 486, a 200 to a BYE) is still on its way into the socket:
    // dgram sends after an asynchronous address lookup, and closing first would drop it
    await new Promise((resolve) => setImmediate(resolve));
    await this.#transport.close();
    this.removeAllListeners();
  }
}

/** What openSip() opened, for a subclass's constructor. */
export interface OpenedSip {
  readonly clock: Clock;
  readonly transport: UdpTcpTransport;
  readonly ua: SipUserAgent;
  readonly tap: { sent: ((message: SipMessage) => void) | undefined };
}

function advertisedHost(options: SimPhoneOptions): string {
  if (options.advertise !== undefined) return options.advertise;
  const host = options.host ?? '127.0.0.1';
  return WILDCARDS.has(host) ? '127.0.0.1' : host;
}
