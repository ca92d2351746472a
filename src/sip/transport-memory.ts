/**
 * An in-memory pair of SIP transports for in-process tests of the layers above (transactions,
 * dialogs, the UA), after SIP.js's `TransportFake`: no sockets, no timers of its own, and the
 * test sees every message sent and can lose some on purpose.
 *
 * Delivery: `a.send(m, to)` serializes `m`, records it in `a.sent`, and hands the bytes to `b`'s
 * listener on the next microtask (never synchronously, so a listener that answers from inside
 * `message()` does not re-enter the sender; FIFO, so order is kept). The bytes are parsed again
 * on the way in — through the real parser, with the same §18.2.1 Via stamping and 400 salvage
 * as `UdpTcpTransport` — so the layers above see exactly what a socket would give them. The
 * pair is a wire: whatever address `to` names, the message goes to the peer; `to` is recorded.
 *
 * `await pair[0].settled()` waits until no delivery is in flight on either side (including
 * ones caused by deliveries), which replaces `Promise.resolve()` chains in tests.
 *
 * Unlike the real transport, a listener that throws is not shielded: the exception escapes
 * the microtask and fails the test, which is what a test wants to hear about.
 */

import { type Clock, systemClock, type TimerHandle } from '../clock.ts';
import { InvalidStateError, SipParseError } from '../errors.ts';
import { parseSipMessage, serializeSipMessage, type SipMessage } from './message.ts';
import { isStream, type SipAddress, type SipTransport, type SipTransportName, type TransportListener } from './transport.ts';
import { salvageBadRequest, stampReceived } from './transport-udp-tcp.ts';

export interface MemoryTransportOptions {
  /** What the pair pretends to be: 'udp' (unreliable), or 'tcp' or 'tls' (reliable). Default 'udp'. */
  readonly transport?: SipTransportName;
  /** Local addresses of the two ends; default 192.0.2.1:5060 and 192.0.2.2:5060 (RFC 5737). */
  readonly addresses?: readonly [{ host: string; port: number }, { host: string; port: number }];
  readonly listeners?: readonly [TransportListener | undefined, TransportListener | undefined];
  /** For `waitSent` timeouts. */
  readonly clock?: Clock;
}

/** One message handed to `send`, in order. */
export interface SentRecord {
  /** Position in `sent` (stays the same after `clearSent`). */
  readonly index: number;
  readonly message: SipMessage;
  readonly to: SipAddress;
  readonly bytes: Uint8Array;
  /** Lost on purpose by `dropNext`, or because an end was closed. */
  readonly dropped: boolean;
}

export interface WaitSentOptions {
  /** Only records with `index >= since` match; default 0, so a message already sent counts. */
  readonly since?: number;
  /** Reject with InvalidStateError after this long; default: wait until close. */
  readonly timeoutMs?: number;
}

interface Waiter {
  readonly predicate: (record: SentRecord) => boolean;
  readonly since: number;
  readonly resolve: (record: SentRecord) => void;
  readonly reject: (error: Error) => void;
  timer: TimerHandle | undefined;
}

/** State the two ends share: deliveries in flight, and who waits for them to settle. */
interface Wire {
  inFlight: number;
  settledWaiters: (() => void)[];
  readonly connection: string;
}

let nextWire = 1;

export class MemoryTransport implements SipTransport {
  readonly local: Readonly<Record<SipTransportName, { host: string; port: number } | undefined>>;
  /** Every message sent, in order (dropped ones too, flagged). */
  readonly sent: SentRecord[] = [];

  readonly #transport: SipTransportName;
  readonly #address: { host: string; port: number };
  readonly #wire: Wire;
  readonly #clock: Clock;
  #listener: TransportListener | undefined;
  #peer: MemoryTransport | undefined;
  #dropSends = 0;
  #dropReceives = 0;
  #sentCount = 0;
  #undelivered = 0;
  readonly #waiters = new Set<Waiter>();
  #closed = false;

  /** Two connected ends. */
  static pair(options: MemoryTransportOptions = {}): [MemoryTransport, MemoryTransport] {
    const transport = options.transport ?? 'udp';
    const [addressA, addressB] = options.addresses ?? [
      { host: '192.0.2.1', port: 5060 },
      { host: '192.0.2.2', port: 5060 },
    ];
    const wire: Wire = { inFlight: 0, settledWaiters: [], connection: `mem-${nextWire++}` };
    const clock = options.clock ?? systemClock;
    const a = new MemoryTransport(transport, addressA, wire, clock, options.listeners?.[0]);
    const b = new MemoryTransport(transport, addressB, wire, clock, options.listeners?.[1]);
    a.#peer = b;
    b.#peer = a;
    return [a, b];
  }

  private constructor(transport: SipTransportName, address: { host: string; port: number }, wire: Wire, clock: Clock, listener: TransportListener | undefined) {
    this.#transport = transport;
    this.#address = address;
    this.#wire = wire;
    this.#clock = clock;
    this.#listener = listener;
    this.local = { udp: transport === 'udp' ? address : undefined, tcp: transport === 'tcp' ? address : undefined, tls: transport === 'tls' ? address : undefined };
  }

  /** Sets who receives what arrives at this end (messages arriving with none are counted and lost). */
  attach(listener: TransportListener): void {
    this.#listener = listener;
  }

  /** The address the peer sees messages from this end coming from. */
  get address(): SipAddress {
    const base = { transport: this.#transport, host: this.#address.host, port: this.#address.port };
    return isStream(this.#transport) ? { ...base, connection: this.#wire.connection } : base;
  }

  /** Messages that arrived but reached no listener (none attached, or dropped on receive). */
  get undelivered(): number {
    return this.#undelivered;
  }

  reliable(transport: SipTransportName): boolean {
    return isStream(transport);
  }

  send(message: SipMessage, to: SipAddress): void {
    let bytes: Uint8Array;
    try {
      bytes = serializeSipMessage(message);
    } catch {
      return; // never throws, like the real one
    }
    const peer = this.#peer;
    const lost = this.#closed || !peer || peer.#closed || this.#dropSends > 0;
    if (this.#dropSends > 0 && !this.#closed) this.#dropSends--;
    const record: SentRecord = { index: this.#sentCount++, message, to, bytes, dropped: lost };
    this.sent.push(record);
    this.#notify(record);
    if (lost || !peer) return;
    const from = this.address;
    this.#wire.inFlight++;
    queueMicrotask(() => {
      try {
        peer.#arrive(bytes, from);
      } finally {
        if (--this.#wire.inFlight === 0) {
          const waiters = this.#wire.settledWaiters;
          this.#wire.settledWaiters = [];
          for (const resolve of waiters) resolve();
        }
      }
    });
  }

  /** The next `count` messages sent from this end are recorded but never arrive. */
  dropNext(count = 1): void {
    this.#dropSends += count;
  }

  /** The next `count` messages arriving at this end are lost (SIP.js `receiveDropOnce`). */
  dropNextReceived(count = 1): void {
    this.#dropReceives += count;
  }

  /**
   * The first record in `sent` (from `since` on) that matches, now or when it is sent. Rejects
   * with InvalidStateError when this end closes or `timeoutMs` passes.
   */
  waitSent(predicate: (record: SentRecord) => boolean, options: WaitSentOptions = {}): Promise<SentRecord> {
    const since = options.since ?? 0;
    const already = this.sent.find((r) => r.index >= since && predicate(r));
    if (already) return Promise.resolve(already);
    if (this.#closed) return Promise.reject(new InvalidStateError('MemoryTransport closed'));
    return new Promise((resolve, reject) => {
      const waiter: Waiter = { predicate, since, resolve, reject, timer: undefined };
      if (options.timeoutMs !== undefined) {
        waiter.timer = this.#clock.setTimeout(() => {
          this.#waiters.delete(waiter);
          reject(new InvalidStateError(`waitSent: nothing matched within ${options.timeoutMs} ms`));
        }, options.timeoutMs);
      }
      this.#waiters.add(waiter);
    });
  }

  /** Forgets what was sent (indices keep counting). */
  clearSent(): void {
    this.sent.length = 0;
  }

  /**
   * Delivers `message` (or raw bytes) to this end's listener as though the peer had sent it,
   * on the next microtask, through the same parse as real traffic.
   */
  receive(message: SipMessage | Uint8Array, from: SipAddress = this.#peer?.address ?? this.address): void {
    const bytes = message instanceof Uint8Array ? message : serializeSipMessage(message);
    this.#wire.inFlight++;
    queueMicrotask(() => {
      try {
        this.#arrive(bytes, from);
      } finally {
        if (--this.#wire.inFlight === 0) {
          const waiters = this.#wire.settledWaiters;
          this.#wire.settledWaiters = [];
          for (const resolve of waiters) resolve();
        }
      }
    });
  }

  /** Resolves once no delivery is in flight on this wire. */
  settled(): Promise<void> {
    if (this.#wire.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.#wire.settledWaiters.push(resolve));
  }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    for (const w of this.#waiters) {
      if (w.timer !== undefined) this.#clock.clearTimeout(w.timer);
      w.reject(new InvalidStateError('MemoryTransport closed'));
    }
    this.#waiters.clear();
    return Promise.resolve();
  }

  #notify(record: SentRecord): void {
    for (const w of this.#waiters) {
      if (record.index < w.since || !w.predicate(record)) continue;
      this.#waiters.delete(w);
      if (w.timer !== undefined) this.#clock.clearTimeout(w.timer);
      w.resolve(record);
    }
  }

  #arrive(bytes: Uint8Array, from: SipAddress): void {
    const listener = this.#listener;
    if (this.#closed || !listener) {
      this.#undelivered++;
      return;
    }
    if (this.#dropReceives > 0) {
      this.#dropReceives--;
      this.#undelivered++;
      return;
    }
    let message: SipMessage;
    try {
      message = parseSipMessage(bytes, this.#transport);
      if (message.kind === 'request') message = stampReceived(message, from);
    } catch (error) {
      const reason = error instanceof SipParseError ? error.reason : 'parser failure';
      listener.malformed(reason, from, salvageBadRequest(bytes, from));
      return;
    }
    listener.message(message, from);
  }
}
